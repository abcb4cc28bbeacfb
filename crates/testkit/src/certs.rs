//! Test certificates made with the `openssl` command: a CA, a server certificate for
//! `localhost` and 127.0.0.1, a client certificate, and a second CA with its own server and
//! client certificates that the first one does not trust.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::run;

/// PEM files in one directory.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    run(Command::new("openssl").current_dir(dir).args(args))
        .context("openssl (install the Debian package `openssl`)")?;
    Ok(())
}

fn ca(dir: &Path, name: &str) -> Result<()> {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ],
    )
}

fn signed(dir: &Path, ca: &str, name: &str, extensions: &str) -> Result<()> {
    let ext = format!("{name}.ext");
    std::fs::write(dir.join(&ext), extensions)?;
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &format!("{name}.crt"),
        ],
    )
}

const SERVER_EXT: &str = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n";
const CLIENT_EXT: &str = "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n";

/// Makes `ca.crt`, `server.{crt,key}`, `client.{crt,key}` and, under an untrusted CA
/// `rogue-ca.crt`, `rogue-server.{crt,key}` and `rogue-client.{crt,key}` in `dir`.
pub fn make(dir: &Path) -> Result<Pki> {
    std::fs::create_dir_all(dir)?;
    ca(dir, "ca")?;
    signed(dir, "ca", "server", SERVER_EXT)?;
    signed(dir, "ca", "client", CLIENT_EXT)?;
    ca(dir, "rogue-ca")?;
    signed(dir, "rogue-ca", "rogue-server", SERVER_EXT)?;
    signed(dir, "rogue-ca", "rogue-client", CLIENT_EXT)?;
    Ok(Pki {
        dir: dir.to_path_buf(),
    })
}
