//! Prometheus 2.42 and promtool from the Debian package.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Result;

use crate::{find_binary, free_port, http_get, run, wait_until, Process};

const HINT: &str = "install the Debian package `prometheus`";

pub struct Prometheus {
    process: Process,
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
        let binary = find_binary("prometheus", HINT)?;
        let port = free_port();
        let cfg = dir.join("prometheus.yml");
        std::fs::write(&cfg, config_for_port(port))?;
        let log = std::fs::File::create(dir.join("prometheus.log"))?;
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
        wait_until("prometheus /-/ready", Duration::from_secs(60), || {
            matches!(http_get(port, "/-/ready"), Ok((200, _)))
        })?;
        process.check_running()?;
        Ok(Prometheus {
            process,
            port,
            data: data.to_path_buf(),
        })
    }

    /// GETs an API path and returns the body, failing on a non-200 status.
    pub fn get(&self, path: &str) -> Result<String> {
        let (code, body) = http_get(self.port, path)?;
        anyhow::ensure!(code == 200, "GET {path}: HTTP {code}: {body}");
        Ok(body)
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
