//! `kiln pull [--platform P] [-q] NAME[:TAG|@DIGEST]`: download an image from a registry into
//! the store and tag it.

use std::process::ExitCode;

use registry::{Platform, PullOptions, Reference};

use super::client;
use super::images::open_store;
use crate::GlobalOptions;
use crate::progress::transfer::{Direction, Renderer};

/// Arguments of `kiln pull`.
#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// Platform to pick from a multi-platform image (`linux/arm64`, `linux/arm/v7`); default:
    /// the host's.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Print only the pulled image's name.
    #[arg(short, long)]
    pub quiet: bool,
    /// The image: `busybox`, `registry:5000/team/app:1`, `name@sha256:…`.
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub image: String,
}

pub async fn run(global: &GlobalOptions, args: PullArgs) -> anyhow::Result<ExitCode> {
    let reference = Reference::parse(&args.image)?;
    let platform = args.platform.as_deref().map(str::parse::<Platform>).transpose()?;
    let store = open_store(global)?;
    let client = client(global)?;
    let local_name = match reference.digest() {
        Some(digest) => format!("{}@{digest}", reference.name()),
        None => reference.to_string(),
    };
    let before = store.images().get(&local_name).ok().flatten().map(|record| record.target.digest().clone());
    let renderer = Renderer::new(Direction::Pull, args.quiet);
    if !args.quiet {
        eprintln!("{}: Pulling from {}", reference.tag().unwrap_or("digest"), reference.repository());
    }
    let result =
        registry::pull(&client, &store, &reference, &PullOptions { platform }, &renderer.progress()).await;
    renderer.finish();
    let pulled = result?;
    super::unpack_image(&store, &pulled.manifest)?;
    if !args.quiet {
        eprintln!("Digest: {}", pulled.repo_digest());
        for digest in &pulled.repaired {
            eprintln!("Repaired: {digest} was damaged in the store and was downloaded again");
        }
        if before.as_ref() == Some(pulled.manifest.digest()) && pulled.repaired.is_empty() {
            eprintln!("Status: Image is up to date for {}", reference.familiar());
        } else {
            eprintln!("Status: Downloaded newer image for {}", reference.familiar());
        }
    }
    println!("{}", pulled.name);
    Ok(ExitCode::SUCCESS)
}
