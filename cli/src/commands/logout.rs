//! `kiln logout [SERVER]`: forget the saved credentials for a registry (docker's
//! `config.json`, see `registry::AuthConfig`).

use std::process::ExitCode;

use registry::{AuthConfig, Removal};

use super::login::normalise_server;
use crate::GlobalOptions;

/// Arguments of `kiln logout`.
#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    /// Registry host; default Docker Hub.
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

pub async fn run(_global: &GlobalOptions, args: LogoutArgs) -> anyhow::Result<ExitCode> {
    let server = normalise_server(args.server.as_deref())?;
    let config = AuthConfig::from_env();
    match config.remove(&server)? {
        Removal::Removed => println!("Removing login credentials for {server}"),
        Removal::OnlyInFallback(path) => println!(
            "Not logged in to {server} in {}; the credentials in {} are left untouched",
            config.file.display(),
            path.display()
        ),
        Removal::NotLoggedIn => println!("Not logged in to {server}"),
    }
    Ok(ExitCode::SUCCESS)
}
