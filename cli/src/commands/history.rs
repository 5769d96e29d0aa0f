//! `kiln history IMAGE`: the layers of an image and the steps that made them, newest first.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use super::images::{ListFormat, created_at, human_size, open_store, resolve, short_id, since, write_table};
use crate::GlobalOptions;

/// Arguments of `kiln history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// The image: name, name@digest, or image ID.
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Do not truncate IDs and commands.
    #[arg(long)]
    pub no_trunc: bool,
    /// Show timestamps instead of ages.
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub human: bool,
    /// Only show image IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

struct Row {
    id: String,
    created: String,
    created_by: String,
    size: u64,
    comment: String,
}

pub async fn run(global: &GlobalOptions, args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(global)?;
    let (records, _) = resolve(&store, &args.image)?;
    let record = records.first().ok_or_else(|| anyhow::anyhow!("no such image: {}", args.image))?;
    let image = store
        .content()
        .read_image(&record.target)
        .with_context(|| format!("cannot read image {}", args.image))?;
    let mut layers = super::images::layer_sizes(&store, &image).into_iter();
    let mut rows = Vec::new();
    let history = image.config.history().clone().unwrap_or_default();
    for entry in &history {
        let empty = entry.empty_layer().unwrap_or(false);
        let size = if empty { 0 } else { layers.next().unwrap_or(0) };
        rows.push(Row {
            id: "<missing>".into(),
            created: entry.created().clone().unwrap_or_default(),
            created_by: entry.created_by().clone().unwrap_or_default(),
            size,
            comment: entry.comment().clone().unwrap_or_default(),
        });
    }
    // layers without history entries (images made by tools that skip history)
    for size in layers {
        rows.push(Row {
            id: "<missing>".into(),
            created: String::new(),
            created_by: String::new(),
            size,
            comment: String::new(),
        });
    }
    rows.reverse();
    if let Some(top) = rows.first_mut() {
        top.id = short_id(image.id(), args.no_trunc);
    }
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for row in &rows {
            writeln!(out, "{}", row.id)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let when = |created: &str| {
        if created.is_empty() {
            "N/A".to_owned()
        } else if args.human {
            since(created)
        } else {
            created.to_owned()
        }
    };
    match args.format {
        ListFormat::Json => {
            for row in &rows {
                let line = serde_json::json!({
                    "Comment": row.comment,
                    "CreatedAt": created_at(&row.created),
                    "CreatedBy": row.created_by,
                    "CreatedSince": when(&row.created),
                    "ID": row.id,
                    "Size": human_size(row.size),
                });
                writeln!(out, "{line}")?;
            }
        }
        ListFormat::Table => {
            let mut table =
                vec![["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"].map(str::to_owned).to_vec()];
            for row in &rows {
                let created_by =
                    if args.no_trunc { row.created_by.clone() } else { truncate(&row.created_by, 45) };
                table.push(vec![
                    row.id.clone(),
                    when(&row.created),
                    created_by,
                    human_size(row.size),
                    row.comment.clone(),
                ]);
            }
            write_table(&mut out, &table)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Cuts `text` to `max` characters, ending with `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}
