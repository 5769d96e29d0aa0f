//! `kiln version`: what this binary is (version, commit, target, profile), as text or JSON.

use std::io::Write;
use std::process::ExitCode;

/// Arguments of `kiln version`.
#[derive(Debug, clap::Args)]
pub struct VersionArgs {
    /// Output format: `json` for one JSON object.
    #[arg(long, short = 'f', value_name = "FORMAT")]
    pub format: Option<String>,
}

/// The facts `kiln version` prints.
fn facts() -> [(&'static str, &'static str); 4] {
    [
        ("Version", env!("CARGO_PKG_VERSION")),
        ("GitCommit", env!("KILN_COMMIT")),
        ("Target", env!("KILN_TARGET")),
        ("Profile", env!("KILN_PROFILE")),
    ]
}

pub fn run(args: VersionArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match args.format.as_deref() {
        None => {
            writeln!(out, "kiln version {}", env!("CARGO_PKG_VERSION"))?;
            for (key, value) in &facts()[1..] {
                writeln!(out, " {:<12}{value}", format!("{key}:"))?;
            }
        }
        Some("json") => {
            let object: serde_json::Map<String, serde_json::Value> =
                facts().iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v))).collect();
            writeln!(out, "{}", serde_json::Value::Object(object))?;
        }
        Some(other) => anyhow::bail!("unsupported --format {other:?} (json)"),
    }
    Ok(ExitCode::SUCCESS)
}
