//! `gauntlet tools ...`: operator tools.

mod bucket;
mod bucket_admin;
mod table;

use anyhow::Result;
use clap::{Args, Subcommand};

#[derive(Args)]
pub struct ToolsArgs {
    #[command(subcommand)]
    command: ToolsCommand,
}

#[derive(Subcommand)]
enum ToolsCommand {
    /// Bucket utility commands.
    Bucket(bucket::BucketArgs),
}

pub fn run(args: ToolsArgs) -> Result<()> {
    match args.command {
        ToolsCommand::Bucket(a) => bucket::run(a),
    }
}
