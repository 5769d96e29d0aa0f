//! `kiln push [-q] NAME[:TAG]`: upload an image from the store to the registry its name says.

use std::process::ExitCode;

use registry::Reference;

use super::client;
use super::images::open_store;
use crate::GlobalOptions;
use crate::progress::transfer::{Direction, Renderer, human_size};

/// Arguments of `kiln push`.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// Print only the pushed digest.
    #[arg(short, long)]
    pub quiet: bool,
    /// The image, named with its registry: `registry:5000/team/app:1`.
    #[arg(value_name = "NAME[:TAG]")]
    pub image: String,
}

pub async fn run(global: &GlobalOptions, args: PushArgs) -> anyhow::Result<ExitCode> {
    let reference = Reference::parse(&args.image)?;
    let store = open_store(global)?;
    let client = client(global)?;
    let renderer = Renderer::new(Direction::Push, args.quiet);
    if !args.quiet {
        eprintln!("The push refers to repository [{}]", reference.name());
    }
    let result = registry::push(&client, &store, &reference, &renderer.progress()).await;
    renderer.finish();
    let pushed = result?;
    if !args.quiet {
        eprintln!("Uploaded {}", human_size(pushed.uploaded));
    }
    println!("{}", pushed.manifest.digest());
    Ok(ExitCode::SUCCESS)
}
