//! A single-node Garage S3 server (sqlite metadata, replication factor 1) with one bucket and
//! one key allowed to read and write it.
//!
//! Setup, as DESIGN.md describes: write `garage.toml` (free loopback ports for RPC and S3,
//! a random 64-hex `rpc_secret`, region `garage`), start `garage -c FILE server`, poll
//! `garage status` until the node answers, then `node id`, `layout assign -z dc1 -c 1G`,
//! `layout apply --version 1`, `bucket create`, `key create` and `bucket allow --read --write
//! --owner`. The server is killed on drop; its temp dir (data, metadata, log) removed after.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::{find_binary, free_port, run, wait_until, Process};

/// Environment variables that would override the generated config.
const OVERRIDES: &[&str] = &[
    "GARAGE_CONFIG_FILE",
    "GARAGE_RPC_SECRET",
    "GARAGE_RPC_SECRET_FILE",
    "GARAGE_ADMIN_TOKEN",
    "GARAGE_ADMIN_TOKEN_FILE",
    "GARAGE_METRICS_TOKEN",
    "GARAGE_METRICS_TOKEN_FILE",
];

pub struct Garage {
    // Field order matters: the server is killed before its directory is removed.
    process: Process,
    dir: tempfile::TempDir,
    binary: PathBuf,
    config: PathBuf,
    pub s3_port: u16,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
}

fn spawn_server(binary: &Path, config: &Path, dir: &Path) -> Result<Process> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("garage.log"))?;
    let mut cmd = Command::new(binary);
    cmd.arg("-c")
        .arg(config)
        .arg("server")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log);
    for v in OVERRIDES {
        cmd.env_remove(v);
    }
    Process::spawn("garage server", &mut cmd)
}

impl Garage {
    /// Starts Garage and creates `bucket` with a read/write key.
    pub fn start(bucket: &str) -> Result<Garage> {
        let binary = find_binary(
            "garage",
            "install with `cargo install garage --locked --version 2.5.0`",
        )?;
        let dir = tempfile::tempdir()?;
        let (s3_port, rpc_port) = (free_port(), free_port());
        let secret: String = (0..4).map(|_| format!("{:016x}", random_u64())).collect();
        let config = dir.path().join("garage.toml");
        std::fs::write(
            &config,
            format!(
                "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"sqlite\"\n\
                 replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc_port}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc_port}\"\nrpc_secret = \"{secret}\"\n\n\
                 [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3_port}\"\n\
                 root_domain = \".s3.garage.localhost\"\n",
                meta = dir.path().join("meta").display(),
                data = dir.path().join("data").display(),
            ),
        )?;
        let process = spawn_server(&binary, &config, dir.path())?;
        let mut g = Garage {
            dir,
            binary,
            config,
            process,
            s3_port,
            bucket: bucket.to_string(),
            key_id: String::new(),
            secret: String::new(),
        };
        let ready = wait_until("garage to answer `status`", Duration::from_secs(30), || {
            g.process.check_running().is_err() || g.cli(&["status"]).is_ok()
        });
        if let Err(e) = ready.and_then(|()| g.process.check_running()) {
            return Err(e.context(g.log_tail()));
        }
        let node = g.cli(&["node", "id", "-q"])?;
        let node = node
            .trim()
            .split('@')
            .next()
            .unwrap_or_default()
            .to_string();
        g.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node])?;
        g.cli(&["layout", "apply", "--version", "1"])?;
        g.cli(&["bucket", "create", bucket])?;
        let key = g.cli(&["key", "create", "gauntlet-test"])?;
        let field = |name: &str| -> Result<String> {
            key.lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
                .with_context(|| format!("no {name:?} in `garage key create` output: {key}"))
        };
        g.key_id = field("Key ID:")?;
        g.secret = field("Secret key:")?;
        g.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            bucket,
            "--key",
            "gauntlet-test",
        ])?;
        Ok(g)
    }

    /// Kills the server (SIGKILL): S3 requests fail until [`restart`](Self::restart).
    pub fn stop(&mut self) {
        self.process.kill();
    }

    /// Starts the server again on the same data, ports and keys, and waits until it answers.
    pub fn restart(&mut self) -> Result<()> {
        self.process.kill();
        self.process = spawn_server(&self.binary, &self.config, self.dir.path())?;
        wait_until("garage to answer again", Duration::from_secs(30), || {
            self.cli(&["status"]).is_ok()
        })
    }

    /// Runs a `garage` CLI command against this server and returns its stdout.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("-c").arg(&self.config).args(args);
        for v in OVERRIDES {
            cmd.env_remove(v);
        }
        let out = run(&mut cmd)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The S3 endpoint URL, e.g. `http://127.0.0.1:3900`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The server's log (stderr), for failure messages.
    pub fn log_tail(&self) -> String {
        crate::log_tail(&self.dir.path().join("garage.log"))
    }

    /// Thanos objstore YAML for this bucket (`type: S3`, plain HTTP, path-style, region
    /// `garage`).
    pub fn objstore_yaml(&self) -> String {
        format!(
            "type: S3\nconfig:\n  bucket: {}\n  endpoint: 127.0.0.1:{}\n  region: garage\n  access_key: {}\n  secret_key: {}\n  insecure: true\n  bucket_lookup_type: path\n",
            self.bucket, self.s3_port, self.key_id, self.secret
        )
    }

    /// [`Self::objstore_yaml`] with a top-level `prefix:`.
    pub fn objstore_yaml_with_prefix(&self, prefix: &str) -> String {
        format!("{}prefix: {prefix}\n", self.objstore_yaml())
    }
}

fn random_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}
