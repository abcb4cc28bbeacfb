//! Where the ruler sends queries and alerts: Thanos's HTTP endpoint configuration
//! (`--query.config`, `--alertmanagers.config`) or the plain address flags, with static
//! addresses (`dns+`/`dnssrv+` looked up), file SD, scheme, path prefix and HTTP client
//! settings.

use std::path::PathBuf;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use query::dns::{Provider, Resolver};
use query::sd::SdFiles;
use serde::Deserialize;
use sidecar::http_client::HttpClientConfig;

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileSd {
    #[serde(default)]
    files: Vec<String>,
    /// Accepted; SD files are checked for changes at every discovery refresh.
    #[serde(default, rename = "refresh_interval")]
    _refresh_interval: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    http_config: HttpClientConfig,
    #[serde(default)]
    static_configs: Vec<String>,
    #[serde(default)]
    file_sd_configs: Vec<FileSd>,
    #[serde(default = "http")]
    scheme: String,
    #[serde(default)]
    path_prefix: String,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    api_version: Option<String>,
}

fn http() -> String {
    "http".into()
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct AlertmanagersFile {
    #[serde(default)]
    alertmanagers: Vec<RawGroup>,
}

/// One group of endpoints sharing scheme, path prefix and client.
pub struct TargetGroup {
    pub scheme: String,
    pub path_prefix: String,
    pub client: reqwest::Client,
    pub timeout: Option<Duration>,
    specs: Vec<String>,
    sd: Option<Mutex<SdFiles>>,
    sd_targets: Mutex<Vec<String>>,
    provider: tokio::sync::Mutex<Provider>,
    resolved: RwLock<Vec<String>>,
}

impl TargetGroup {
    fn new(
        scheme: String,
        path_prefix: String,
        http: &HttpClientConfig,
        timeout: Option<Duration>,
        specs: Vec<String>,
        sd_files: Vec<String>,
    ) -> Result<TargetGroup, String> {
        let mut b = http.builder()?;
        if let Some(t) = timeout {
            b = b.timeout(t);
        }
        let client = b.build().map_err(|e| format!("HTTP client: {e}"))?;
        let prefix = path_prefix.trim_end_matches('/').to_string();
        let prefix = if prefix.is_empty() || prefix.starts_with('/') {
            prefix
        } else {
            format!("/{prefix}")
        };
        for s in &specs {
            query::dns::check_spec(s)?;
        }
        Ok(TargetGroup {
            scheme,
            path_prefix: prefix,
            client,
            timeout,
            specs,
            sd: (!sd_files.is_empty()).then(|| {
                Mutex::new(SdFiles::new(
                    sd_files.into_iter().map(PathBuf::from).collect(),
                ))
            }),
            sd_targets: Mutex::new(Vec::new()),
            provider: tokio::sync::Mutex::new(Provider::default()),
            resolved: RwLock::new(Vec::new()),
        })
    }

    /// Base URLs (`scheme://host:port/prefix`) as last resolved.
    pub fn urls(&self) -> Vec<String> {
        self.resolved
            .read()
            .map(|r| {
                r.iter()
                    .map(|a| format!("{}://{a}{}", self.scheme, self.path_prefix))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Looks the addresses up again (DNS, SD files); failures keep the last good ones and
    /// are returned for logging.
    pub async fn refresh(&self, resolver: &Resolver) -> Vec<String> {
        let mut errors = Vec::new();
        let mut specs = self.specs.clone();
        if let Some(sd) = &self.sd {
            let polled = sd.lock().ok().and_then(|mut s| s.poll(false, &mut errors));
            if let Ok(mut t) = self.sd_targets.lock() {
                if let Some(p) = polled {
                    *t = p;
                }
                specs.extend(t.iter().cloned());
            }
        }
        let (addrs, errs) = self.provider.lock().await.resolve(resolver, &specs).await;
        errors.extend(errs);
        if let Ok(mut r) = self.resolved.write() {
            *r = addrs;
        }
        errors
    }
}

/// Splits `[dns+|dnssrv+]scheme://host:port/prefix` into the scheme, the address spec (with
/// its lookup prefix) and the path prefix.
fn split_url(raw: &str, default_scheme: Option<&str>) -> Result<(String, String, String), String> {
    let (lookup, rest) = match raw.find('+') {
        Some(i) if raw[..i].starts_with("dns") && !raw[..i].contains('/') => {
            (&raw[..=i], &raw[i + 1..])
        }
        _ => ("", raw),
    };
    let (scheme, hostpath) = match rest.split_once("://") {
        Some((s, h)) => (s.to_string(), h),
        None => match default_scheme {
            Some(s) => (s.to_string(), rest),
            None => return Err(format!("{raw:?}: the URL needs a scheme, e.g. http://")),
        },
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!("{raw:?}: unsupported scheme {scheme:?}"));
    }
    let (host, path) = match hostpath.find('/') {
        Some(i) => (&hostpath[..i], &hostpath[i..]),
        None => (hostpath, ""),
    };
    if host.is_empty() {
        return Err(format!("{raw:?}: no host"));
    }
    Ok((scheme, format!("{lookup}{host}"), path.to_string()))
}

fn parse_timeout(t: &Option<String>) -> Result<Option<Duration>, String> {
    match t {
        None => Ok(None),
        Some(s) => tsdb::time::parse_duration(s)
            .map(|ms| Some(Duration::from_millis(ms.max(0) as u64)))
            .map_err(|e| e.to_string()),
    }
}

fn from_raw(g: RawGroup, default_timeout: Option<Duration>) -> Result<TargetGroup, String> {
    if let Some(v) = &g.api_version {
        if v != "v2" {
            return Err(format!(
                "api_version {v:?}: only v2 is supported (Alertmanager 0.16+)"
            ));
        }
    }
    let files = g
        .file_sd_configs
        .into_iter()
        .flat_map(|f| f.files)
        .collect();
    let timeout = parse_timeout(&g.timeout)?.or(default_timeout);
    TargetGroup::new(
        g.scheme,
        g.path_prefix,
        &g.http_config,
        timeout,
        g.static_configs,
        files,
    )
}

/// Query endpoints from `--query` addresses, `--query.sd-files`, or `--query.config` YAML
/// (a list of endpoint groups), the config winning when given.
pub fn query_targets(
    addrs: &[String],
    sd_files: &[String],
    config: &str,
) -> Result<Vec<TargetGroup>, String> {
    if !config.trim().is_empty() {
        let raw: Vec<RawGroup> =
            serde_yaml::from_str(config).map_err(|e| format!("--query.config: {e}"))?;
        return raw.into_iter().map(|g| from_raw(g, None)).collect();
    }
    let mut groups = Vec::new();
    for a in addrs {
        let (scheme, spec, prefix) = split_url(a, Some("http"))?;
        groups.push(TargetGroup::new(
            scheme,
            prefix,
            &HttpClientConfig::default(),
            None,
            vec![spec],
            Vec::new(),
        )?);
    }
    if !sd_files.is_empty() {
        groups.push(TargetGroup::new(
            "http".into(),
            String::new(),
            &HttpClientConfig::default(),
            None,
            Vec::new(),
            sd_files.to_vec(),
        )?);
    }
    Ok(groups)
}

/// Alertmanagers from `--alertmanagers.url` (scheme required; the path is a prefix) or
/// `--alertmanagers.config` YAML (`alertmanagers:` list), the config winning when given.
pub fn alertmanager_targets(
    urls: &[String],
    config: &str,
    send_timeout: Duration,
) -> Result<Vec<TargetGroup>, String> {
    if !config.trim().is_empty() {
        let raw: AlertmanagersFile =
            serde_yaml::from_str(config).map_err(|e| format!("--alertmanagers.config: {e}"))?;
        return raw
            .alertmanagers
            .into_iter()
            .map(|g| from_raw(g, Some(send_timeout)))
            .collect();
    }
    urls.iter()
        .map(|u| {
            let (scheme, spec, prefix) = split_url(u, None)?;
            TargetGroup::new(
                scheme,
                prefix,
                &HttpClientConfig::default(),
                Some(send_timeout),
                vec![spec],
                Vec::new(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_as_thanos_reads_them() {
        assert_eq!(
            split_url("dns+http://am:9093/prefix", None).unwrap(),
            ("http".into(), "dns+am:9093".into(), "/prefix".into())
        );
        assert_eq!(
            split_url("q:10902", Some("http")).unwrap(),
            ("http".into(), "q:10902".into(), "".into())
        );
        assert!(split_url("am:9093", None).unwrap_err().contains("scheme"));
        assert!(split_url("ftp://am", None).is_err());
    }

    #[tokio::test]
    async fn static_groups_resolve_to_urls() {
        let g = alertmanager_targets(
            &["http://127.0.0.1:9093/am".into()],
            "",
            Duration::from_secs(1),
        )
        .unwrap();
        let errs = g[0].refresh(&Resolver::from_system()).await;
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(g[0].urls(), vec!["http://127.0.0.1:9093/am"]);
        let g = query_targets(
            &[],
            &[],
            "- static_configs: ['a:1', 'b:2']\n  scheme: https\n  path_prefix: q\n",
        )
        .unwrap();
        g[0].refresh(&Resolver::from_system()).await;
        assert_eq!(g[0].urls(), vec!["https://a:1/q", "https://b:2/q"]);
        assert!(query_targets(&[], &[], "- bogus: 1\n").is_err());
    }
}
