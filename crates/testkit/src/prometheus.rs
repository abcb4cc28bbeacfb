//! Prometheus 2.42 and promtool from the Debian package: a server on a free loopback port
//! (ready once `/-/ready` answers 200, killed on drop), and the promtool runs the oracle
//! tests use (`tsdb create-blocks-from openmetrics`, `tsdb dump`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Result;

use crate::{find_binary, free_port, http_get, run, wait_until, Process};

const HINT: &str = "install the Debian package `prometheus`";

pub struct Prometheus {
    process: Process,
    log: PathBuf,
    pub port: u16,
    pub data: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus on `data` with config file `cfg` and waits until it is ready.
    /// `config_for_port` gets the chosen port, so a config can scrape Prometheus itself.
    pub fn start(
        dir: &Path,
        data: &Path,
        config_for_port: impl Fn(u16) -> String,
        extra: &[&str],
    ) -> Result<Prometheus> {
        Self::start_on(free_port(), dir, data, config_for_port, extra)
    }

    /// As [`start`](Self::start), on a given port (to restart a stopped server in place).
    pub fn start_on(
        port: u16,
        dir: &Path,
        data: &Path,
        config_for_port: impl Fn(u16) -> String,
        extra: &[&str],
    ) -> Result<Prometheus> {
        let binary = find_binary("prometheus", HINT)?;
        Self::start_binary(&binary, port, dir, data, config_for_port, extra)
    }

    /// As [`start_on`](Self::start_on) with a given Prometheus binary (e.g. a 3.x one
    /// built by hand, from `PROMETHEUS3_BIN`).
    pub fn start_binary(
        binary: &Path,
        port: u16,
        dir: &Path,
        data: &Path,
        config_for_port: impl Fn(u16) -> String,
        extra: &[&str],
    ) -> Result<Prometheus> {
        let cfg = dir.join("prometheus.yml");
        std::fs::write(&cfg, config_for_port(port))?;
        let log_path = dir.join("prometheus.log");
        let log = std::fs::File::create(&log_path)?;
        let mut process = Process::spawn(
            "prometheus",
            Command::new(binary)
                .arg(format!("--config.file={}", cfg.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--storage.tsdb.retention.time=100y")
                .args(extra)
                .stdout(Stdio::null())
                .stderr(log),
        )?;
        let ready = wait_until("prometheus /-/ready", Duration::from_secs(60), || {
            process.check_running().is_err() || matches!(http_get(port, "/-/ready"), Ok((200, _)))
        });
        if let Err(e) = ready.and_then(|()| process.check_running()) {
            return Err(e.context(crate::log_tail(&log_path)));
        }
        Ok(Prometheus {
            process,
            log: log_path,
            port,
            data: data.to_path_buf(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The base URL, e.g. `http://127.0.0.1:9090`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's log (stderr), for failure messages.
    pub fn log_tail(&self) -> String {
        crate::log_tail(&self.log)
    }

    /// GETs an API path and returns the body, failing on a non-200 status.
    pub fn get(&self, path: &str) -> Result<String> {
        let (code, body) = http_get(self.port, path)?;
        anyhow::ensure!(code == 200, "GET {path}: HTTP {code}: {body}");
        Ok(body)
    }

    /// GETs an API path and returns the body whatever the status (errors are JSON too).
    pub fn get_any(&self, path: &str) -> String {
        match http_get(self.port, path) {
            Ok((_, body)) => body,
            Err(e) => panic!("GET {path}: {e}\n{}", self.log_tail()),
        }
    }

    pub fn stop(&mut self) {
        self.process.kill();
    }
}

/// Runs promtool and returns its stdout. For `tsdb dump DIR`, an empty `wal` directory is
/// created first (promtool opens the directory as a database).
pub fn promtool(args: &[&str]) -> Result<String> {
    let binary = find_binary("promtool", HINT)?;
    if args.starts_with(&["tsdb", "dump"]) {
        if let Some(dir) = args.get(2) {
            std::fs::create_dir_all(Path::new(dir).join("wal"))?;
        }
    }
    let out = run(Command::new(binary).args(args))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `promtool tsdb create-blocks-from openmetrics FILE OUTDIR`: writes 2h blocks of the
/// OpenMetrics text in `file` into `outdir` and returns the new block directories, sorted.
pub fn create_blocks_from_openmetrics(file: &Path, outdir: &Path) -> Result<Vec<PathBuf>> {
    let before: Vec<PathBuf> = block_dirs(outdir)?;
    let (f, o) = (file.display().to_string(), outdir.display().to_string());
    promtool(&["tsdb", "create-blocks-from", "openmetrics", &f, &o])?;
    let mut out: Vec<PathBuf> = block_dirs(outdir)?
        .into_iter()
        .filter(|d| !before.contains(d))
        .collect();
    out.sort();
    Ok(out)
}

/// `promtool tsdb dump DIR`: every sample of the blocks in `dir`, one `series value ts` line
/// each.
pub fn tsdb_dump(dir: &Path) -> Result<String> {
    promtool(&["tsdb", "dump", &dir.display().to_string()])
}

/// Subdirectories of `dir` holding a meta.json.
fn block_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("list {}", dir.display()))),
    };
    for entry in rd {
        let p = entry?.path();
        if p.join("meta.json").is_file() {
            out.push(p);
        }
    }
    Ok(out)
}

/// A rule file with a recording rule and an alert that fires at once, evaluated every
/// second.
pub const RULES_YAML: &str = "groups:\n- name: example\n  interval: 1s\n  rules:\n  - record: job:up:sum\n    expr: sum by (job) (up)\n  - alert: AlwaysFiring\n    expr: vector(1)\n    labels:\n      severity: page\n    annotations:\n      summary: it fires\n";

/// Serves an OpenMetrics page with a counter `test_requests_total` and an exemplar
/// (`trace_id="abc123"`) on a free loopback port, for the life of the test.
pub fn exemplar_target() -> u16 {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = "# TYPE test_requests counter\n# HELP test_requests Requests served.\ntest_requests_total 5 # {trace_id=\"abc123\"} 1.0\n# EOF\n";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// A Prometheus HA replica (`replica` external label, `cluster: eu`) loading `rules` and
/// scraping the exemplar target every second, with exemplar storage on.
pub fn start_with_rules(
    dir: &Path,
    replica: &str,
    rules: &Path,
    target: u16,
) -> Result<Prometheus> {
    let home = dir.join(format!("prom-{replica}"));
    std::fs::create_dir_all(&home)?;
    let (replica, rules) = (replica.to_string(), rules.display().to_string());
    Prometheus::start(
        &home,
        &home.join("data"),
        move |_| {
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  external_labels:\n    cluster: eu\n    replica: {replica}\nrule_files:\n  - {rules}\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
            )
        },
        &["--enable-feature=exemplar-storage"],
    )
}
