//! `kiln logout [SERVER]`: forget kiln's saved credentials for a registry.

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
        Removal::OnlyInDockerConfig(path) => println!(
            "Not logged in to {server} with kiln; the credentials in {} (docker's) are left untouched",
            path.display()
        ),
        Removal::NotLoggedIn => println!("Not logged in to {server}"),
    }
    Ok(ExitCode::SUCCESS)
}
