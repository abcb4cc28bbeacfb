//! Flag groups shared by several subcommands.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

/// Thanos's object storage flags: a YAML file or the YAML itself.
#[derive(Args, Clone, Debug)]
pub struct ObjstoreFlags {
    /// Path to YAML file that contains object store configuration.
    #[arg(long = "objstore.config-file", global = true)]
    pub config_file: Option<PathBuf>,
    /// Alternative to 'objstore.config-file' flag: object store configuration in YAML.
    #[arg(long = "objstore.config", global = true)]
    pub config: Option<String>,
}

impl ObjstoreFlags {
    /// The configuration YAML, from whichever flag was given.
    pub fn yaml(&self) -> Result<String> {
        match (&self.config_file, &self.config) {
            (Some(_), Some(_)) => {
                bail!("both --objstore.config-file and --objstore.config are set; use one")
            }
            (Some(p), None) => std::fs::read_to_string(p)
                .with_context(|| format!("read --objstore.config-file {}", p.display())),
            (None, Some(y)) => Ok(y.clone()),
            (None, None) => bail!(
                "no object storage configured: set --objstore.config-file or --objstore.config"
            ),
        }
    }
}

/// Thanos's web prefix flags of components with a UI.
#[derive(Args, Clone, Debug)]
pub struct WebPrefixFlags {
    /// Prefix for API and UI endpoints (a sub-path); defaults to --web.external-prefix.
    #[arg(long = "web.route-prefix", default_value = "")]
    pub route_prefix: String,
    /// Static prefix for links and redirects in the UI, behind a path-stripping proxy.
    #[arg(long = "web.external-prefix", default_value = "")]
    pub external_prefix: String,
    /// Request header giving the prefix of UI links when --web.external-prefix is unset (set
    /// it only behind a proxy that always sets the header, e.g. X-Forwarded-Prefix).
    #[arg(long = "web.prefix-header", default_value = "")]
    pub prefix_header: String,
}

impl WebPrefixFlags {
    pub fn prefixes(&self) -> webui::Prefixes {
        webui::Prefixes::new(
            &self.route_prefix,
            &self.external_prefix,
            &self.prefix_header,
        )
    }
}

/// The block viewer's flags of the compactor and the store gateway.
#[derive(Args, Clone, Debug)]
pub struct BlockViewerFlags {
    /// Disable the block viewer UI.
    #[arg(long = "web.disable")]
    pub disable: bool,
    #[command(flatten)]
    pub web: WebPrefixFlags,
    /// External block label to use as group title in the block viewer.
    #[arg(long = "bucket-web-label", default_value = "")]
    pub label: String,
    /// Disable marking blocks for deletion or no compaction from the block viewer.
    #[arg(long = "disable-admin-operations")]
    pub disable_admin_operations: bool,
}

impl BlockViewerFlags {
    /// The viewer's API over `bucket`, unless disabled.
    pub fn viewer(&self, bucket: &bucket::Bucket) -> Option<std::sync::Arc<webui::BlocksApi>> {
        if self.disable {
            return None;
        }
        let api = webui::BlocksApi::new(&self.label);
        Some(std::sync::Arc::new(if self.disable_admin_operations {
            api
        } else {
            api.with_admin(bucket.clone())
        }))
    }
}

/// Parses Thanos's `--label=name="value"` flags into sorted pairs.
pub fn parse_flag_labels(flags: &[String]) -> Result<tsdb::Labels> {
    let mut pairs = Vec::with_capacity(flags.len());
    for f in flags {
        let Some((name, raw)) = f.split_once('=') else {
            bail!("unrecognized label {f:?}: want name=\"value\"");
        };
        if !is_valid_label_name(name) {
            bail!("unsupported format for label {f}");
        }
        let value = unquote(raw).with_context(|| format!("unquote label value of {f}"))?;
        pairs.push((name.to_string(), value));
    }
    Ok(tsdb::Labels::from_pairs(pairs))
}

fn is_valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Go's `strconv.Unquote` for double-quoted and backquoted strings.
fn unquote(s: &str) -> Result<String> {
    if s.len() >= 2 && s.starts_with('`') && s.ends_with('`') {
        return Ok(s[1..s.len() - 1].to_string());
    }
    if !(s.len() >= 2 && s.starts_with('"') && s.ends_with('"')) {
        bail!("invalid syntax: value must be quoted, e.g. name=\"value\"");
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s[1..s.len() - 1].chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            if c == '"' {
                bail!("invalid syntax: unescaped quote");
            }
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('\'') => out.push('\''),
            other => bail!("invalid syntax: unsupported escape {other:?}"),
        }
    }
    Ok(out)
}

/// Parses a Prometheus-style duration flag (`15m`, `24h`, `0s`).
pub fn parse_duration_flag(s: &str) -> Result<std::time::Duration, String> {
    tsdb::time::parse_duration(s)
        .map(|ms| std::time::Duration::from_millis(ms.max(0) as u64))
        .map_err(|e| e.to_string())
}

/// Parses a byte size flag as Thanos's kingpin does (`units.ParseStrictBytes`): base 2 for
/// `KB`/`KiB`, `MB`/`MiB`, `GB`/`GiB`, `TB`/`TiB`, `PB`/`PiB`, `EB`/`EiB` (so `250MB` is
/// 262,144,000), `kB` for 1,000, `B` for bytes; units are case-sensitive and may be
/// chained (`1GB512MB`). A bare number is taken as bytes.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().map_err(|_| format!("invalid size {s:?}"));
    }
    let mut rest = t;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(format!("invalid size {s:?}"));
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid size {s:?}"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let mult = match unit {
            "B" => 1.0,
            "kB" => 1e3,
            "KB" | "KiB" => 1024.0,
            "MB" | "MiB" => 1024f64.powi(2),
            "GB" | "GiB" => 1024f64.powi(3),
            "TB" | "TiB" => 1024f64.powi(4),
            "PB" | "PiB" => 1024f64.powi(5),
            "EB" | "EiB" => 1024f64.powi(6),
            "" => return Err(format!("missing unit in {s:?} (use B, KB, MB, GB, ...)")),
            other => return Err(format!("unknown unit {other:?} in {s:?}")),
        };
        total += n * mult;
    }
    if total >= u64::MAX as f64 {
        return Err(format!("size {s:?} is too large"));
    }
    Ok(total as u64)
}

/// Parses a time flag (RFC 3339 or relative duration such as -2w).
pub fn parse_time_flag(name: &str, value: &str) -> Result<i64> {
    tsdb::time::parse_time_or_duration(value, tsdb::time::now_ms())
        .with_context(|| format!("invalid --{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_like_thanos() {
        let l = parse_flag_labels(&["replica=\"a\"".into(), "cluster=\"eu \\\"1\\\"\"".into()])
            .unwrap();
        assert_eq!(l.to_string(), r#"{cluster="eu \"1\"", replica="a"}"#);
        assert!(parse_flag_labels(&["replica=a".into()]).is_err());
        assert!(parse_flag_labels(&["1x=\"a\"".into()]).is_err());
        assert!(parse_flag_labels(&["novalue".into()]).is_err());
    }

    #[test]
    fn byte_sizes_are_base_2_as_kingpin() {
        for (text, bytes) in [
            ("250MB", 262_144_000),
            ("250MiB", 262_144_000),
            ("1GB512MB", 1_610_612_736),
            ("2kB", 2_000),
            ("2KB", 2_048),
            ("1.5KiB", 1_536),
            ("0", 0),
            ("4096", 4_096),
            ("7B", 7),
        ] {
            assert_eq!(parse_bytes(text), Ok(bytes), "{text}");
        }
        for bad in ["", "1.2.3MB", "12XB", "1mb", "MB"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }
}

/// The PromQL dialect of the querier and the ruler.
#[derive(Args, Clone, Debug)]
pub struct PromqlFlags {
    /// Which Prometheus's PromQL to answer as: `v3` (Prometheus 3.x, as current Thanos:
    /// left-open windows, `.` matching newlines, 3.x functions) or `v2` (Prometheus 2.42).
    #[arg(long = "query.promql-compat", default_value = "v3", value_parser = ["v2", "v3"])]
    pub compat: String,
    /// Comma separated feature names to enable. Valid options for now:
    /// promql-experimental-functions (enables promql experimental functions),
    /// promql-binop-fill-modifiers (Prometheus's: fill() after binary operators).
    #[arg(long = "enable-feature")]
    pub enable_feature: Vec<String>,
}

impl PromqlFlags {
    /// The dialect these flags select. Feature names other than Thanos's are ignored with a
    /// warning, as Thanos ignores them.
    pub fn dialect(&self) -> Result<promql::Dialect> {
        let (mut experimental_functions, mut binop_fill_modifiers) = (false, false);
        for f in self.enable_feature.iter().flat_map(|f| f.split(',')) {
            match f.trim() {
                "" => {}
                "promql-experimental-functions" => {
                    experimental_functions = true;
                    tracing::info!(option = f, "experimental PromQL functions enabled");
                }
                "promql-binop-fill-modifiers" => {
                    binop_fill_modifiers = true;
                    tracing::info!(
                        option = f,
                        "PromQL fill modifiers for binary operators enabled"
                    );
                }
                "promql-at-modifier" | "promql-negative-offset" => tracing::warn!(
                    option = f,
                    "this option for --enable-feature is permanently enabled and a no-op"
                ),
                other => tracing::warn!(option = other, "unknown --enable-feature option ignored"),
            }
        }
        let compat = self
            .compat
            .parse::<promql::Compat>()
            .map_err(anyhow::Error::msg)?;
        if compat == promql::Compat::V2 {
            for (on, name) in [
                (experimental_functions, "promql-experimental-functions"),
                (binop_fill_modifiers, "promql-binop-fill-modifiers"),
            ] {
                if on {
                    bail!("--enable-feature={name} needs --query.promql-compat=v3");
                }
            }
        }
        Ok(promql::Dialect {
            compat,
            experimental_functions,
            binop_fill_modifiers,
        })
    }
}
