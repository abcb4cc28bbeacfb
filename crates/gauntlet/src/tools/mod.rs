//! `gauntlet tools ...`: operator tools.

mod bucket;
mod bucket_admin;
mod bucket_web;
mod rules_check;
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
    /// Check that the rule files are valid (Thanos's rules-check).
    #[command(name = "rules-check")]
    RulesCheck(rules_check::RulesCheckArgs),
}

pub fn run(args: ToolsArgs) -> Result<()> {
    match args.command {
        ToolsCommand::Bucket(a) => bucket::run(a),
        ToolsCommand::RulesCheck(a) => rules_check::run(a),
    }
}
