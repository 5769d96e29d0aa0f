//! `kiln inspect NAME…`: docker-like JSON about containers (looked up first, as docker does)
//! and images.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;

use super::images::{familiar, open_store, resolve};
use crate::GlobalOptions;

/// Arguments of `kiln inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Only look for this kind of object: `container` or `image`.
    #[arg(long = "type", value_name = "TYPE", value_parser = ["container", "image"])]
    pub kind: Option<String>,
    /// Format the output with a Go template (`{{.State.Status}}`, `{{json .Config}}`).
    #[arg(short, long, value_name = "TEMPLATE")]
    pub format: Option<String>,
    /// Containers (names or IDs) or images (names, name@digest, or image IDs).
    #[arg(required = true, value_name = "NAME")]
    pub images: Vec<String>,
}

pub async fn run(global: &GlobalOptions, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(global)?;
    let containers = super::container::open(global)?;
    let mut out = Vec::new();
    for query in &args.images {
        if args.kind.as_deref() != Some("image") {
            match containers.find(query) {
                Ok(container) => {
                    out.push(super::inspect_container::container_json(&container));
                    continue;
                }
                Err(executor::runtime::RuntimeError::NoSuchContainer(_)) if args.kind.is_none() => {}
                Err(err) => return Err(err.into()),
            }
        }
        let (records, _) = resolve(&store, query)?;
        let first = records.first().ok_or_else(|| anyhow::anyhow!("no such image: {query}"))?;
        let image = store
            .content()
            .read_image(&first.target)
            .with_context(|| format!("cannot read image {query}"))?;
        let all = store.images().names_of(image.id())?;
        let repo_tags: Vec<String> = all.iter().filter_map(familiar).filter(|n| !n.contains('@')).collect();
        let mut repo_digests: Vec<String> = all
            .iter()
            .filter(|r| !r.is_untagged())
            .filter_map(|r| registry::Reference::parse(&r.name).ok())
            .map(|r| format!("{}@{}", r.familiar_name(), first.target.digest()))
            .collect();
        repo_digests.sort();
        repo_digests.dedup();
        let config = &image.config;
        let comment = config
            .history()
            .as_ref()
            .and_then(|h| h.last())
            .and_then(|h| h.comment().clone())
            .unwrap_or_default();
        let mut entry = json!({
            "Id": image.id().to_string(),
            "RepoTags": repo_tags,
            "RepoDigests": repo_digests,
            "Parent": "",
            "Comment": comment,
            "Created": config.created().clone().unwrap_or_default(),
            "DockerVersion": "",
            "Author": config.author().clone().unwrap_or_default(),
            "Config": config.config(),
            "Architecture": config.architecture().to_string(),
            "Os": config.os().to_string(),
            "Size": image.content_size(),
            "RootFS": {
                "Type": config.rootfs().typ(),
                "Layers": config.rootfs().diff_ids(),
            },
            "Metadata": {
                "LastTagTime": first.tagged_at,
            },
            "Descriptor": image.manifest_descriptor,
        });
        if !image.docker.is_empty() {
            // Healthcheck, OnBuild, Shell: docker shows them in Config too
            let merged = cache::merge_extras(config, &image.docker)?;
            entry["Config"] = merged["config"].clone();
        }
        if let Some(variant) = config.variant() {
            entry["Variant"] = json!(variant);
        }
        out.push(entry);
    }
    let mut stdout = std::io::stdout().lock();
    if let Some(format) = &args.format {
        write!(stdout, "{}", crate::format::Format::parse(format, &[])?.render(&out)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    serde_json::to_writer_pretty(&mut stdout, &out)?;
    writeln!(stdout)?;
    Ok(ExitCode::SUCCESS)
}
