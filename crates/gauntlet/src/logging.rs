//! Structured logging: one line per event, logfmt (default, as Thanos prints:
//! `ts=… level=info msg="…" key=value`) or JSON, chosen by `--log.level` and `--log.format`.

use std::fmt;

use clap::{Args, ValueEnum};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
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
        .with_writer(std::io::stderr);
    match flags.format {
        Format::Logfmt => builder.event_format(Logfmt).init(),
        Format::Json => builder.json().flatten_event(true).with_target(false).init(),
    }
}

/// Formats events as logfmt.
struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let ms = now.as_millis() as i64;
        let ts = tsdb::time::format_rfc3339(ms);
        write!(
            w,
            "ts={}.{:03}Z level={}",
            ts.trim_end_matches('Z'),
            ms % 1000,
            event.metadata().level().as_str().to_ascii_lowercase()
        )?;
        let mut v = FieldWriter {
            w: &mut w,
            result: Ok(()),
        };
        event.record(&mut v);
        v.result?;
        writeln!(w)
    }
}

struct FieldWriter<'a, 'b> {
    w: &'a mut Writer<'b>,
    result: fmt::Result,
}

impl FieldWriter<'_, '_> {
    fn pair(&mut self, key: &str, value: &str) {
        if self.result.is_err() {
            return;
        }
        let key = if key == "message" { "msg" } else { key };
        let needs_quotes = value.is_empty()
            || value
                .chars()
                .any(|c| c == ' ' || c == '"' || c == '=' || c.is_control());
        self.result = if needs_quotes {
            write!(self.w, " {key}={value:?}")
        } else {
            write!(self.w, " {key}={value}")
        };
    }
}

impl Visit for FieldWriter<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.pair(field.name(), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.pair(field.name(), &format!("{value:?}"));
    }
}
