//! `kiln login [-u USER] [-p PASSWORD | --password-stdin] [SERVER]`: check credentials against a
//! registry and save them (docker `config.json` format, see `registry::AuthConfig`).

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use registry::{AuthConfig, Credentials};

use super::client;
use crate::GlobalOptions;

/// Arguments of `kiln login`.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// Username (prompted for on a terminal if missing).
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (prefer --password-stdin: command lines are visible to other users).
    #[arg(short, long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Registry host (`registry.example:5000`); default Docker Hub.
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

/// `https://index.docker.io/v1/` → `docker.io`; `http://host:5000/x` → `host:5000`.
pub fn normalise_server(server: Option<&str>) -> anyhow::Result<String> {
    let Some(server) = server else { return Ok(registry::DEFAULT_DOMAIN.to_owned()) };
    let server = server.trim();
    let host = server.strip_prefix("https://").or_else(|| server.strip_prefix("http://")).unwrap_or(server);
    let host = host.split('/').next().unwrap_or(host);
    if host.is_empty() || host.contains(char::is_whitespace) {
        bail!("invalid registry address {server:?}");
    }
    Ok(match host {
        "index.docker.io" | "registry-1.docker.io" => registry::DEFAULT_DOMAIN.to_owned(),
        other => other.to_owned(),
    })
}

pub async fn run(global: &GlobalOptions, args: LoginArgs) -> anyhow::Result<ExitCode> {
    let server = normalise_server(args.server.as_deref())?;
    let interactive = std::io::stdin().is_terminal();
    let username = match args.username {
        Some(username) => username,
        None if interactive && !args.password_stdin => {
            eprint!("Username: ");
            std::io::stderr().flush().ok();
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).context("cannot read the username")?;
            line.trim().to_owned()
        }
        None => bail!("a username is needed: pass --username"),
    };
    if username.is_empty() {
        bail!("the username is empty");
    }
    let password = if let Some(password) = args.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        password
    } else if args.password_stdin {
        let mut text = String::new();
        std::io::stdin().lock().read_line(&mut text).context("cannot read the password from stdin")?;
        text.trim_end_matches(['\n', '\r']).to_owned()
    } else if interactive {
        rpassword::prompt_password("Password: ").context("cannot read the password")?
    } else {
        bail!("a password is needed: pass --password-stdin (or --password)");
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    let credentials = Credentials { username, password };
    let client = client(global)?;
    client
        .check_credentials(&server, &credentials)
        .await
        .with_context(|| format!("cannot log in to {server}"))?;
    let config = AuthConfig::from_env();
    config.store(&server, &credentials)?;
    eprintln!("Credentials saved in {}", config.file.display());
    println!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_normalise_like_docker() {
        for (input, want) in [
            (None, "docker.io"),
            (Some("https://index.docker.io/v1/"), "docker.io"),
            (Some("localhost:5000"), "localhost:5000"),
            (Some("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000"),
        ] {
            assert_eq!(normalise_server(input).unwrap_or_default(), want);
        }
        assert!(normalise_server(Some("")).is_err());
    }
}
