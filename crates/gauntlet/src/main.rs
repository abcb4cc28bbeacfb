//! The `gauntlet` binary: Thanos's subcommands and flags, wiring the library crates.
//! Each subcommand declares its flags, builds its parts and runs them; no logic lives here.

mod allocator;
mod compact_cmd;
mod flags;
mod http_edge;
mod logging;
mod query_cmd;
mod server;
mod sidecar_cmd;
mod store_cmd;
mod tools;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "gauntlet",
    version,
    about = "Prometheus long-term storage and global query view, compatible with Thanos"
)]
struct Cli {
    #[command(flatten)]
    log: logging::LogFlags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compactor: compacts, downsamples and applies retention to the blocks of a bucket.
    Compact(compact_cmd::CompactArgs),
    /// Querier: Prometheus HTTP API over every StoreAPI endpoint, deduplicating HA replicas.
    Query(query_cmd::QueryArgs),
    /// Sidecar: serves the StoreAPI over the Prometheus next to it (remote read).
    Sidecar(sidecar_cmd::SidecarArgs),
    /// Store gateway: serves the StoreAPI over the blocks in object storage.
    Store(store_cmd::StoreArgs),
    /// Tools for operators.
    Tools(tools::ToolsArgs),
}

fn main() {
    allocator::tune();
    let cli = Cli::parse();
    logging::init(&cli.log);
    if !matches!(cli.command, Command::Tools(_)) {
        allocator::start_trimmer();
    }
    let result = match cli.command {
        Command::Compact(args) => compact_cmd::run(args),
        Command::Query(args) => query_cmd::run(args),
        Command::Sidecar(args) => sidecar_cmd::run(args),
        Command::Store(args) => store_cmd::run(args),
        Command::Tools(args) => tools::run(args),
    };
    if let Err(e) = result {
        tracing::error!(err = %format!("{e:#}"), "command failed");
        eprintln!("gauntlet: {e:#}");
        std::process::exit(1);
    }
}
