//! Thanos's command lines as its flag parser (kingpin) reads them, rewritten for clap before
//! parsing, so that a deployment written for Thanos starts unchanged:
//! - `--no-<flag>` turns a boolean off (`--flag=false`), as kingpin allows for every boolean;
//! - a Thanos flag that has no meaning in our design is accepted and dropped, and the process
//!   says once at startup that it has no effect and why;
//! - a flag whose absence would make the process less safe than the operator asked for
//!   (TLS, authentication) is refused with an error that names it.

use std::ffi::OsString;

/// A Thanos flag that we accept without acting on it.
struct Inert {
    name: &'static str,
    takes_value: bool,
    why: &'static str,
}

const GO_RUNTIME: &str = "Go runtime tuning; Gauntlet has no garbage collector to tune";
const TRACING: &str = "tracing is not implemented; no spans are exported";
const REQUEST_LOG: &str = "request logging is not configurable; requests are logged at debug level";
const GRACE: &str = "servers stop accepting at once on shutdown and finish the requests in flight";
const CONN_AGE: &str = "gRPC connections are kept until the client closes them";
const WEB_UI: &str = "this component serves no web UI";
const CORS: &str = "CORS headers are not sent";
const ADMIN: &str = "this component has no admin operations to disable";
const TENANCY: &str = "multi-tenancy is not implemented; every request sees every tenant";
const TELEMETRY: &str = "query telemetry histograms use fixed buckets";
const STORE_INDEX: &str =
    "the store gateway always builds its index-header from byte ranges and reads it lazily";
const DISCOVERY: &str = "blocks are discovered by listing the bucket";
const TLS_TUNING: &str = "TLS cipher suites and curves are rustls's safe defaults";

/// Flags of every server component.
const COMMON: &[Inert] = &[
    inert("enable-auto-gomemlimit", false, GO_RUNTIME),
    inert("auto-gomemlimit.ratio", true, GO_RUNTIME),
    inert("tracing.config", true, TRACING),
    inert("tracing.config-file", true, TRACING),
    inert("request.logging-config", true, REQUEST_LOG),
    inert("request.logging-config-file", true, REQUEST_LOG),
    inert("http-grace-period", true, GRACE),
    inert("grpc-grace-period", true, GRACE),
    inert("grpc-server-max-connection-age", true, CONN_AGE),
    inert("web.disable-cors", false, CORS),
    inert("web.prefix-header", true, WEB_UI),
    inert("web.route-prefix", true, WEB_UI),
    inert("web.external-prefix", true, WEB_UI),
    inert("disable-admin-operations", false, ADMIN),
    inert("grpc-server-tls-ciphers", true, TLS_TUNING),
    inert("grpc-server-tls-curves", true, TLS_TUNING),
];

const SIDECAR: &[Inert] = &[
    inert(
        "store.limits.request-series",
        true,
        "the sidecar does not limit Series calls; Prometheus's remote-read limits apply",
    ),
    inert(
        "store.limits.request-samples",
        true,
        "the sidecar does not limit Series calls; Prometheus's remote-read limits apply",
    ),
];

/// The shipper's flags (sidecar and ruler).
const SHIPPER: &[Inert] = &[
    inert(
        "hash-func",
        true,
        "uploaded files carry no content hash in meta.json",
    ),
    inert(
        "shipper.upload-concurrency",
        true,
        "the shipper uploads one block at a time, its files in parallel",
    ),
    inert(
        "shipper.meta-file-name",
        true,
        "the shipper keeps its state in thanos.shipper.json",
    ),
];

const RULE: &[Inert] = &[
    inert(
        "store.limits.request-series",
        true,
        "the ruler's StoreAPI does not limit Series calls",
    ),
    inert(
        "store.limits.request-samples",
        true,
        "the ruler's StoreAPI does not limit Series calls",
    ),
    inert(
        "query.default-step",
        true,
        "alert state is restored from the ruler's own TSDB, without range queries",
    ),
    inert(
        "tsdb.no-lockfile",
        false,
        "no lock file is taken on the data directory",
    ),
    inert(
        "tsdb.wal-compression",
        false,
        "WAL records are always snappy-compressed, as Prometheus's default",
    ),
    inert(
        "tsdb.enable-native-histograms",
        false,
        "deprecated in Thanos, where it has no effect either",
    ),
    inert(
        "grpc-query-endpoint",
        true,
        "the gRPC Query API is not used; give the querier's HTTP address with --query",
    ),
    inert(
        "query.enable-x-functions",
        false,
        "the x-functions (xrate, xincrease, xdelta) are not implemented",
    ),
];

const STORE: &[Inert] = &[
    inert("block-discovery-strategy", true, DISCOVERY),
    inert(
        "block-meta-fetch-concurrency",
        true,
        "metas are fetched with --block-sync-concurrency",
    ),
    inert("cache-index-header", false, STORE_INDEX),
    inert(
        "chunk-pool-size",
        true,
        "chunk bytes are not pooled; memory per request is bounded by the store limits",
    ),
    inert(
        "delete-delay",
        true,
        "the store gateway never deletes from the bucket",
    ),
    inert(
        "index-cache.config",
        true,
        "the index cache is in memory, sized by --index-cache-size",
    ),
    inert(
        "index-cache.config-file",
        true,
        "the index cache is in memory, sized by --index-cache-size",
    ),
    inert(
        "matcher-cache-size",
        true,
        "compiled matchers are not cached across requests",
    ),
    inert(
        "objstore-parquet.config",
        true,
        "parquet blocks are not served",
    ),
    inert(
        "objstore-parquet.config-file",
        true,
        "parquet blocks are not served",
    ),
    inert("store.enable-index-header-lazy-reader", false, STORE_INDEX),
    inert(
        "store.index-header-lazy-download-strategy",
        true,
        STORE_INDEX,
    ),
    inert(
        "store.enable-lazy-expanded-postings",
        false,
        "postings are always intersected lazily",
    ),
    inert(
        "store.posting-group-max-key-series-ratio",
        true,
        "postings are always intersected lazily",
    ),
    inert(
        "store.grpc.touched-series-limit",
        true,
        "use --store.limits.request-series",
    ),
    inert(
        "store.grpc.downloaded-bytes-limit",
        true,
        "use --store.limits.request-samples",
    ),
    inert("experimental.enable-index-header", false, STORE_INDEX),
    inert(
        "store.caching-bucket.config",
        true,
        "bucket reads are not cached beyond the index cache",
    ),
    inert(
        "store.caching-bucket.config-file",
        true,
        "bucket reads are not cached beyond the index cache",
    ),
];

const QUERY: &[Inert] = &[
    inert("alert.query-url", true, "the web UI has no alerts page"),
    inert(
        "grpc-compression",
        true,
        "StoreAPI requests are sent uncompressed",
    ),
    inert(
        "query.active-query-path",
        true,
        "active queries are not recorded on disk",
    ),
    inert(
        "query.conn-metric.label",
        true,
        "endpoint connection metrics carry fixed labels",
    ),
    inert("query.default-tenant-id", true, TENANCY),
    inert("query.enforce-tenancy", false, TENANCY),
    inert("query.tenant-header", true, TENANCY),
    inert("query.tenant-label-name", true, TENANCY),
    inert("query.tenant-certificate-field", true, TENANCY),
    inert(
        "query.enable-x-functions",
        false,
        "xrate, xincrease and xdelta are not implemented",
    ),
    inert(
        "query.max-concurrent-select",
        true,
        "every selector of a query fans out at once; --query.max-concurrent bounds queries",
    ),
    inert(
        "query.metadata.default-time-range",
        true,
        "metadata calls without a time range cover all data",
    ),
    inert(
        "query.mode",
        true,
        "queries are evaluated locally (distributed mode is not implemented)",
    ),
    inert(
        "query.partition-label",
        true,
        "distributed mode is not implemented",
    ),
    inert(
        "query.promql-engine",
        true,
        "Gauntlet's own PromQL engine evaluates every query",
    ),
    inert(
        "query.telemetry.request-duration-seconds-quantiles",
        true,
        TELEMETRY,
    ),
    inert("query.telemetry.request-samples-quantiles", true, TELEMETRY),
    inert(
        "query.telemetry.request-series-seconds-quantiles",
        true,
        TELEMETRY,
    ),
    inert(
        "store.sd-dns-resolver",
        true,
        "one built-in resolver reads /etc/resolv.conf and /etc/hosts",
    ),
    inert(
        "store.unhealthy-timeout",
        true,
        "unhealthy endpoints stay listed with their last error",
    ),
    inert(
        "store.limits.request-series",
        true,
        "the store gateways' own limits apply",
    ),
    inert(
        "store.limits.request-samples",
        true,
        "the store gateways' own limits apply",
    ),
    inert(
        "selector-label",
        true,
        "the querier's Info advertises its endpoints' label sets",
    ),
    inert(
        "endpoint.sd-config-reload-interval",
        true,
        "--endpoint.sd-files are watched for changes",
    ),
];

const COMPACT: &[Inert] = &[
    inert("block-discovery-strategy", true, DISCOVERY),
    inert(
        "hash-func",
        true,
        "uploaded files carry no content hash in meta.json",
    ),
];

const TOOLS: &[Inert] = &[
    inert("enable-auto-gomemlimit", false, GO_RUNTIME),
    inert("auto-gomemlimit.ratio", true, GO_RUNTIME),
    inert("tracing.config", true, TRACING),
    inert("tracing.config-file", true, TRACING),
    inert("http-grace-period", true, GRACE),
    inert(
        "objstore-backup.config",
        true,
        "verify --repair is not supported, so nothing is backed up",
    ),
    inert(
        "objstore-backup.config-file",
        true,
        "verify --repair is not supported, so nothing is backed up",
    ),
    inert(
        "delete-delay",
        true,
        "verify --repair is not supported, so nothing is deleted",
    ),
];

/// Flags we refuse: accepting them without acting would leave the process less safe than the
/// operator asked for.
const REFUSED: &[(&str, &str)] = &[
    (
        "http.config",
        "TLS and basic auth are not implemented for this command's HTTP server",
    ),
    (
        "remote-write.config",
        "the stateless ruler (remote write) is not implemented; rule results would not be stored",
    ),
    (
        "remote-write.config-file",
        "the stateless ruler (remote write) is not implemented; rule results would not be stored",
    ),
];

const fn inert(name: &'static str, takes_value: bool, why: &'static str) -> Inert {
    Inert {
        name,
        takes_value,
        why,
    }
}

/// The command line for clap, and what to say once logging is up.
pub struct Normalized {
    pub args: Vec<OsString>,
    /// `(flag, reason)` for each accepted flag that has no effect.
    pub no_effect: Vec<(String, &'static str)>,
}

fn inert_table(path: &[String]) -> Vec<&'static [Inert]> {
    let first = path.first().map(String::as_str);
    let own: &'static [Inert] = match first {
        Some("sidecar") => return vec![COMMON, SIDECAR, SHIPPER],
        Some("store") => STORE,
        Some("query") => QUERY,
        Some("compact") => COMPACT,
        Some("rule") => return vec![COMMON, RULE, SHIPPER],
        Some("tools") => return vec![TOOLS],
        _ => return Vec::new(),
    };
    vec![COMMON, own]
}

fn find_arg<'a>(cmd: &'a clap::Command, long: &str) -> Option<&'a clap::Arg> {
    cmd.get_arguments().find(|a| {
        a.get_long() == Some(long)
            || a.get_all_aliases()
                .is_some_and(|aliases| aliases.contains(&long))
    })
}

/// Rewrites `args` (program name first) for `cmd`, the binary's clap command. Errors name a
/// refused flag and why.
pub fn normalize(args: Vec<OsString>, cmd: &clap::Command) -> Result<Normalized, String> {
    let mut cmd = cmd.clone();
    cmd.build();
    let mut out = Vec::with_capacity(args.len());
    let mut no_effect = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut current = cmd.clone();
    let mut iter = args.into_iter();
    if let Some(program) = iter.next() {
        out.push(program);
    }
    while let Some(arg) = iter.next() {
        let Some(text) = arg.to_str().map(str::to_string) else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            out.push(arg);
            out.extend(iter.by_ref());
            break;
        }
        let Some(flag) = text.strip_prefix("--") else {
            if !text.starts_with('-') {
                if let Some(sub) = current.find_subcommand(&text).cloned() {
                    path.push(text.clone());
                    current = sub;
                }
            }
            out.push(arg);
            continue;
        };
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.to_string(), None),
        };
        let known = find_arg(&current, &name);
        if known.is_none() {
            if let Some((_, why)) = REFUSED.iter().find(|(n, _)| *n == name) {
                let given = match value.clone() {
                    Some(v) => v,
                    None => iter
                        .next()
                        .map(|v| v.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                };
                // An empty value is the default: nothing was asked for.
                if given.is_empty() {
                    continue;
                }
                return Err(format!("--{name} is not supported: {why}"));
            }
        }
        if known.is_none() {
            if let Some(base) = name.strip_prefix("no-") {
                if let Some(a) = find_arg(&current, base) {
                    // kingpin's negation: `--flag=false` where the flag takes an optional
                    // value; a plain switch is off by default, so the negation is a no-op.
                    let optional_value = a
                        .get_num_args()
                        .is_some_and(|r| r.min_values() == 0 && r.max_values() >= 1);
                    if optional_value {
                        out.push(OsString::from(format!("--{base}=false")));
                    }
                    continue;
                }
            }
        }
        if known.is_none() {
            let base = name.strip_prefix("no-").unwrap_or(&name);
            let found = inert_table(&path)
                .into_iter()
                .flat_map(|t| t.iter())
                .find(|i| i.name == name || (!i.takes_value && i.name == base));
            if let Some(i) = found {
                if i.takes_value && value.is_none() {
                    iter.next();
                }
                no_effect.push((format!("--{}", i.name), i.why));
                continue;
            }
        }
        out.push(arg);
        // A value given as the next word must not be taken for a subcommand.
        if let (Some(a), None) = (known, &value) {
            let needs_value = a.get_action().takes_values()
                && a.get_num_args().is_some_and(|r| r.min_values() > 0);
            if needs_value {
                if let Some(v) = iter.next() {
                    out.push(v);
                }
            }
        }
    }
    Ok(Normalized {
        args: out,
        no_effect,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction, Command};

    fn cli() -> Command {
        Command::new("gauntlet").subcommand(
            Command::new("query")
                .arg(
                    Arg::new("endpoint")
                        .long("endpoint")
                        .action(ArgAction::Append),
                )
                .arg(
                    Arg::new("pr")
                        .long("query.partial-response")
                        .action(ArgAction::Set)
                        .num_args(0..=1)
                        .default_missing_value("true"),
                )
                .arg(
                    Arg::new("auto")
                        .long("query.auto-downsampling")
                        .action(ArgAction::SetTrue),
                ),
        )
    }

    fn norm(args: &[&str]) -> Result<(Vec<String>, Vec<String>), String> {
        let n = normalize(
            std::iter::once("gauntlet")
                .chain(args.iter().copied())
                .map(OsString::from)
                .collect(),
            &cli(),
        )?;
        Ok((
            n.args
                .iter()
                .skip(1)
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            n.no_effect.into_iter().map(|(f, _)| f).collect(),
        ))
    }

    #[test]
    fn negated_booleans_become_false() {
        let (args, _) = norm(&["query", "--no-query.partial-response"]).unwrap();
        assert_eq!(args, ["query", "--query.partial-response=false"]);
        let (args, _) = norm(&["query", "--no-query.auto-downsampling"]).unwrap();
        assert_eq!(args, ["query"]);
    }

    #[test]
    fn inert_flags_are_dropped_with_their_values_and_reported() {
        let (args, said) = norm(&[
            "query",
            "--query.promql-engine",
            "thanos",
            "--endpoint",
            "a:1",
            "--no-web.disable-cors",
            "--grpc-grace-period=2m",
            "--enable-auto-gomemlimit",
        ])
        .unwrap();
        assert_eq!(args, ["query", "--endpoint", "a:1"]);
        assert_eq!(
            said,
            [
                "--query.promql-engine",
                "--web.disable-cors",
                "--grpc-grace-period",
                "--enable-auto-gomemlimit"
            ]
        );
    }

    #[test]
    fn unknown_flags_reach_clap_and_security_flags_are_refused() {
        let (args, said) = norm(&["query", "--bogus=1"]).unwrap();
        assert_eq!((args.len(), said.len()), (2, 0));
        let e = norm(&["query", "--http.config=/web.yml"]).unwrap_err();
        assert!(e.contains("--http.config") && e.contains("TLS"), "{e}");
        // Empty means the default (no TLS), as charts pass it.
        let (args, _) = norm(&["query", "--http.config=", "--http.config", ""]).unwrap();
        assert_eq!(args, ["query"]);
    }

    #[test]
    fn a_value_word_is_not_taken_for_a_subcommand() {
        let (args, _) = norm(&["query", "--endpoint", "query"]).unwrap();
        assert_eq!(args, ["query", "--endpoint", "query"]);
    }
}
