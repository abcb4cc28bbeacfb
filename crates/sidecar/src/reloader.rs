//! The sidecar's config reloader, as Thanos's: watches Prometheus's config file (written out
//! with `$(ENV_VAR)` references expanded when an output file is given; gzip input is
//! decompressed) and rule directories, and when their contents change asks Prometheus to
//! reload (`POST /-/reload`, or SIGHUP to the process by name), retrying until it succeeds.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How Prometheus is told to reload.
#[derive(Clone)]
pub enum Trigger {
    /// `POST <url>/-/reload` (Prometheus needs `--web.enable-lifecycle`).
    Http {
        url: String,
        client: reqwest::Client,
    },
    /// SIGHUP to every process with this name.
    Signal { process_name: String },
}

pub struct Reloader {
    pub config_file: Option<PathBuf>,
    pub config_output: Option<PathBuf>,
    pub rule_dirs: Vec<PathBuf>,
    pub watch_interval: Duration,
    pub retry_interval: Duration,
    pub trigger: Trigger,
}

/// Replaces `$(NAME)` with the environment variable's value; an unset one is an error.
pub fn expand_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find(')');
        let name = end.map(|e| &after[..e]);
        match name {
            Some(n)
                if !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                let v = lookup(n).ok_or_else(|| {
                    format!("found reference to unset environment variable {n:?}")
                })?;
                out.push_str(&v);
                rest = &after[n.len() + 1..];
            }
            _ => {
                out.push_str("$(");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// FNV-1a over the bytes given, for change detection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Fingerprint(u64);

impl Fingerprint {
    fn new() -> Self {
        Fingerprint(0xcbf2_9ce4_8422_2325)
    }
    fn add(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn read_config(path: &Path) -> Result<Vec<u8>, String> {
    let raw = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    if raw.starts_with(&[0x1f, 0x8b, 0x08]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| format!("decompress {}: {e}", path.display()))?;
        return Ok(out);
    }
    Ok(raw)
}

/// Every regular file under `dir` (symlinks followed, as Kubernetes mounts ConfigMaps),
/// sorted, so the fingerprint does not depend on listing order.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("read dir {}: {e}", dir.display()))?;
    let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with("..") {
            // Kubernetes' own bookkeeping (`..data`, timestamped dirs) behind the symlinks.
            continue;
        }
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => files_under(&p, out)?,
            Ok(_) => out.push(p),
            Err(e) => return Err(format!("stat {}: {e}", p.display())),
        }
    }
    Ok(())
}

impl Reloader {
    /// Writes the expanded config (only when it changed) and fingerprints everything watched.
    fn apply(&self) -> Result<Fingerprint, String> {
        let mut fp = Fingerprint::new();
        if let Some(cfg) = &self.config_file {
            let raw = read_config(cfg)?;
            let content = match &self.config_output {
                Some(out) => {
                    let text = String::from_utf8(raw)
                        .map_err(|_| format!("{} is not UTF-8 text", cfg.display()))?;
                    let expanded = expand_env(&text, |n| std::env::var(n).ok())
                        .map_err(|e| format!("expand {}: {e}", cfg.display()))?;
                    if std::fs::read(out).ok().as_deref() != Some(expanded.as_bytes()) {
                        let tmp = out.with_extension("tmp");
                        std::fs::write(&tmp, &expanded)
                            .and_then(|()| std::fs::rename(&tmp, out))
                            .map_err(|e| format!("write {}: {e}", out.display()))?;
                    }
                    expanded.into_bytes()
                }
                None => raw,
            };
            fp.add(&content);
        }
        for dir in &self.rule_dirs {
            let mut files = Vec::new();
            files_under(dir, &mut files)?;
            for f in files {
                fp.add(&[0xff]);
                fp.add(f.to_string_lossy().as_bytes());
                fp.add(&[0xff]);
                fp.add(&std::fs::read(&f).map_err(|e| format!("read {}: {e}", f.display()))?);
            }
        }
        Ok(fp)
    }

    async fn reload(&self) -> Result<(), String> {
        match &self.trigger {
            Trigger::Http { url, client } => {
                let target = format!("{}/-/reload", url.trim_end_matches('/'));
                let resp = client
                    .post(&target)
                    .timeout(Duration::from_secs(30))
                    .send()
                    .await
                    .map_err(|e| format!("POST {target}: {e}"))?;
                let status = resp.status();
                if status.is_success() {
                    return Ok(());
                }
                let body = resp.text().await.unwrap_or_default();
                Err(format!("POST {target}: HTTP {status}: {}", body.trim()))
            }
            Trigger::Signal { process_name } => signal_processes(process_name),
        }
    }

    /// Watches until `stop` changes: checks every second for changes (and re-reads everything
    /// every `watch_interval`), reloading Prometheus once after start and after each change.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let this = std::sync::Arc::new(self);
        let counters = Counters::new();
        let mut applied: Option<Fingerprint> = None;
        let mut pending: Option<Fingerprint> = None;
        let poll = Duration::from_secs(1).min(this.watch_interval.max(Duration::from_millis(100)));
        let mut last_retry = tokio::time::Instant::now() - this.retry_interval;
        loop {
            counters.apply_total.inc();
            // Reading and hashing files blocks: off the async threads.
            let applying = this.clone();
            let applied_now = tokio::task::spawn_blocking(move || applying.apply())
                .await
                .unwrap_or_else(|e| Err(format!("config apply task failed: {e}")));
            match applied_now {
                Ok(fp) if Some(fp) != applied => pending = Some(fp),
                Ok(_) => {}
                Err(e) => {
                    counters.apply_failed.inc();
                    tracing::error!(err = %e, "reloader: applying config failed");
                }
            }
            if let Some(fp) = pending {
                if last_retry.elapsed() >= this.retry_interval {
                    last_retry = tokio::time::Instant::now();
                    counters.reloads.inc();
                    match this.reload().await {
                        Ok(()) => {
                            applied = Some(fp);
                            pending = None;
                            counters.last_success.set(1.0);
                            counters
                                .last_success_time
                                .set(tsdb::time::now_ms() as f64 / 1000.0);
                            tracing::info!(
                                cfg_in = ?this.config_file,
                                cfg_out = ?this.config_output,
                                rule_dirs = ?this.rule_dirs,
                                "reload triggered"
                            );
                        }
                        Err(e) => {
                            counters.reloads_failed.inc();
                            counters.last_success.set(0.0);
                            tracing::error!(err = %e, retry_in = ?this.retry_interval, "reloader: reload failed; retrying");
                        }
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

/// Thanos's reloader metrics.
struct Counters {
    reloads: telemetry::Counter,
    reloads_failed: telemetry::Counter,
    apply_total: telemetry::Counter,
    apply_failed: telemetry::Counter,
    last_success: telemetry::Gauge,
    last_success_time: telemetry::Gauge,
}

impl Counters {
    fn new() -> Counters {
        Counters {
            reloads: telemetry::counter(
                "reloader_reloads_total",
                "Total number of reload requests.",
                &[],
            ),
            reloads_failed: telemetry::counter(
                "reloader_reloads_failed_total",
                "Total number of reload requests that failed.",
                &[],
            ),
            apply_total: telemetry::counter(
                "reloader_config_apply_operations_total",
                "Total number of config apply operations.",
                &[],
            ),
            apply_failed: telemetry::counter(
                "reloader_config_apply_operations_failed_total",
                "Total number of config apply operations that failed.",
                &[],
            ),
            last_success: telemetry::gauge(
                "reloader_last_reload_successful",
                "Whether the last reload attempt was successful",
                &[],
            ),
            last_success_time: telemetry::gauge(
                "reloader_last_reload_success_timestamp_seconds",
                "Timestamp of the last successful reload",
                &[],
            ),
        }
    }
}

/// SIGHUP to the processes whose name (`/proc/<pid>/comm`) is `name`.
fn signal_processes(name: &str) -> Result<(), String> {
    let mut sent = 0;
    let rd = std::fs::read_dir("/proc").map_err(|e| format!("read /proc: {e}"))?;
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim_end() == name {
            // SAFETY: kill(2) with a pid read from /proc and a valid signal number.
            if unsafe { libc::kill(pid, libc::SIGHUP) } == 0 {
                sent += 1;
            }
        }
    }
    if sent == 0 {
        return Err(format!("no process named {name:?} to send SIGHUP to"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_references_expand_as_thanos_expands_them() {
        let env = |n: &str| (n == "POD_NAME").then(|| "prom-0".to_string());
        assert_eq!(
            expand_env("replica: $(POD_NAME)\nx: $HOME $(", env).unwrap(),
            "replica: prom-0\nx: $HOME $("
        );
        assert_eq!(
            expand_env("a $(not-valid) b", env).unwrap(),
            "a $(not-valid) b"
        );
        let e = expand_env("cluster: $(CLUSTER)", env).unwrap_err();
        assert!(e.contains("CLUSTER"), "{e}");
    }

    #[test]
    fn fingerprints_follow_contents_of_config_and_rule_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("prometheus.yml.tmpl");
        let out = dir.path().join("prometheus.yml");
        let rules = dir.path().join("rules");
        std::fs::create_dir_all(rules.join("sub")).unwrap();
        std::fs::write(&cfg, "global: {}\n").unwrap();
        std::fs::write(rules.join("a.yml"), "groups: []\n").unwrap();
        let r = Reloader {
            config_file: Some(cfg.clone()),
            config_output: Some(out.clone()),
            rule_dirs: vec![rules.clone()],
            watch_interval: Duration::from_secs(1),
            retry_interval: Duration::from_secs(1),
            trigger: Trigger::Signal {
                process_name: "none".into(),
            },
        };
        let a = r.apply().unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "global: {}\n");
        assert_eq!(r.apply().unwrap(), a);
        std::fs::write(rules.join("sub/b.yml"), "groups: []\n").unwrap();
        let b = r.apply().unwrap();
        assert_ne!(a, b);
        std::fs::write(&cfg, "global: {scrape_interval: 5s}\n").unwrap();
        assert_ne!(r.apply().unwrap(), b);
        std::fs::write(&cfg, "x: $(SURELY_UNSET_VARIABLE_123)\n").unwrap();
        assert!(r.apply().unwrap_err().contains("SURELY_UNSET_VARIABLE_123"));
        assert!(signal_processes("no-such-process-name").is_err());
    }
}
