//! Structured logging: one line per event, logfmt (default) or JSON, as Thanos's
//! `--log.level` and `--log.format` select.

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Logfmt,
    Json,
}

#[derive(Args)]
pub struct LogFlags {
    /// Log filtering level.
    #[arg(long = "log.level", value_enum, default_value = "info", global = true)]
    pub level: Level,
    /// Log format to use.
    #[arg(
        long = "log.format",
        value_enum,
        default_value = "logfmt",
        global = true
    )]
    pub format: Format,
}

pub fn init(flags: &LogFlags) {
    let level = match flags.level {
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match flags.format {
        Format::Logfmt => builder.compact().with_ansi(false).init(),
        Format::Json => builder.json().flatten_event(true).init(),
    }
}
