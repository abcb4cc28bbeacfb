//! TLS and authentication as Thanos configures them: the gRPC server and client TLS flags,
//! and `--http.config` (Prometheus's web config file: TLS, basic auth with bcrypt hashes,
//! response headers) for every HTTP server.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use clap::Args;
use storeapi::tls::{ClientAuth, ServerFiles, TlsConnector};

/// Thanos's gRPC server TLS flags.
#[derive(Args, Clone, Default)]
pub struct GrpcServerTlsFlags {
    /// TLS certificate for the gRPC server; empty serves in the clear.
    #[arg(long = "grpc-server-tls-cert", default_value = "")]
    server_cert: String,
    /// TLS key for the gRPC server.
    #[arg(long = "grpc-server-tls-key", default_value = "")]
    server_key: String,
    /// CA to verify clients against; set, every client must present a certificate it signed.
    #[arg(long = "grpc-server-tls-client-ca", default_value = "")]
    server_client_ca: String,
    /// Lowest TLS version the gRPC server accepts (1.2 or 1.3; lower ones mean 1.2).
    #[arg(long = "grpc-server-tls-min-version", default_value = "1.3")]
    server_min_version: String,
}

impl GrpcServerTlsFlags {
    pub fn config(&self) -> Result<Option<Arc<rustls::ServerConfig>>> {
        storeapi::tls::grpc_server_config(&ServerFiles {
            cert: self.server_cert.clone(),
            key: self.server_key.clone(),
            client_ca: self.server_client_ca.clone(),
            min_version: self.server_min_version.clone(),
        })
        .map_err(|e| anyhow!("gRPC server TLS: {e}"))
    }
}

/// Thanos's gRPC client TLS flags (how a querier or ruler reaches its endpoints).
#[derive(Args, Clone, Default)]
pub struct GrpcClientTlsFlags {
    /// Use TLS towards gRPC endpoints (the system's CAs unless --grpc-client-tls-ca).
    #[arg(long = "grpc-client-tls-secure", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    client_secure: bool,
    /// Accept any server certificate (TLS without verification).
    #[arg(long = "grpc-client-tls-skip-verify", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    client_skip_verify: bool,
    /// Client certificate presented to endpoints.
    #[arg(long = "grpc-client-tls-cert", default_value = "")]
    client_cert: String,
    /// Key of the client certificate.
    #[arg(long = "grpc-client-tls-key", default_value = "")]
    client_key: String,
    /// CA that endpoint certificates are verified against.
    #[arg(long = "grpc-client-tls-ca", default_value = "")]
    client_ca: String,
    /// Name endpoint certificates are verified by (default: the endpoint's host).
    #[arg(long = "grpc-client-server-name", default_value = "")]
    client_server_name: String,
    /// Lowest TLS version used towards endpoints.
    #[arg(long = "grpc-client-tls-min-version", default_value = "1.3")]
    client_min_version: String,
}

impl GrpcClientTlsFlags {
    /// The connector for TLS endpoints, or `None` without `--grpc-client-tls-secure`.
    pub fn connector(&self) -> Result<Option<TlsConnector>> {
        if !self.client_secure {
            let set = [
                &self.client_cert,
                &self.client_key,
                &self.client_ca,
                &self.client_server_name,
            ]
            .iter()
            .any(|v| !v.is_empty());
            if set || self.client_skip_verify {
                tracing::warn!(
                    "gRPC client TLS options are set but --grpc-client-tls-secure is not: \
                     endpoints are reached in the clear"
                );
            }
            return Ok(None);
        }
        let cfg = storeapi::tls::client_config(
            &storeapi::tls::ClientOptions {
                skip_verify: self.client_skip_verify,
                cert: self.client_cert.clone(),
                key: self.client_key.clone(),
                ca: self.client_ca.clone(),
                server_name: self.client_server_name.clone(),
                min_version: self.client_min_version.clone(),
            },
            &[b"h2"],
        )
        .map_err(|e| anyhow!("gRPC client TLS: {e}"))?;
        Ok(Some(TlsConnector::new(cfg, &self.client_server_name)))
    }
}

/// `--http.config`, shared by every HTTP server.
#[derive(Args, Clone, Default)]
pub struct HttpConfigFlag {
    /// Prometheus web config file: TLS, basic auth and headers for the HTTP server.
    #[arg(long = "http.config", default_value = "")]
    http_config_path: String,
}

impl HttpConfigFlag {
    pub fn load(&self) -> Result<WebConfig> {
        if self.http_config_path.is_empty() {
            return Ok(WebConfig::default());
        }
        WebConfig::load(Path::new(&self.http_config_path))
            .with_context(|| format!("--http.config {}", self.http_config_path))
    }
}

/// What a component's servers are secured with.
#[derive(Clone, Default)]
pub struct Security {
    pub http: WebConfig,
    pub grpc_tls: Option<Arc<rustls::ServerConfig>>,
}

impl Security {
    /// From a server component's flags.
    pub fn from_flags(grpc: &GrpcServerTlsFlags, http: &HttpConfigFlag) -> Result<Security> {
        Ok(Security {
            http: http.load()?,
            grpc_tls: grpc.config()?,
        })
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WebConfigFile {
    #[serde(default)]
    tls_server_config: Option<TlsServerConfig>,
    #[serde(default)]
    http_server_config: Option<HttpServerConfig>,
    #[serde(default)]
    basic_auth_users: HashMap<String, String>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TlsServerConfig {
    #[serde(default)]
    cert_file: String,
    #[serde(default)]
    key_file: String,
    #[serde(default)]
    client_auth_type: String,
    #[serde(default)]
    client_ca_file: String,
    #[serde(default)]
    min_version: String,
    #[serde(default)]
    max_version: Option<String>,
    #[serde(default)]
    cipher_suites: Vec<String>,
    #[serde(default)]
    curve_preferences: Vec<String>,
    #[serde(default)]
    prefer_server_cipher_suites: Option<bool>,
    #[serde(default)]
    client_allowed_sans: Vec<String>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HttpServerConfig {
    #[serde(default)]
    http2: Option<bool>,
    #[serde(default)]
    headers: HashMap<String, String>,
}

/// A loaded web config.
#[derive(Clone, Default)]
pub struct WebConfig {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    auth: Option<Arc<BasicAuth>>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// Resolves `p` against the config file's directory, as Prometheus does.
fn relative_to(dir: &Path, p: &str) -> String {
    if p.is_empty() || Path::new(p).is_absolute() {
        return p.to_string();
    }
    dir.join(p).to_string_lossy().into_owned()
}

/// Headers Prometheus does not let a web config set.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "www-authenticate",
    "content-type",
    "content-encoding",
    "server",
];

impl WebConfig {
    pub fn load(path: &Path) -> Result<WebConfig> {
        let text = std::fs::read_to_string(path).context("read")?;
        let file: WebConfigFile = if text.trim().is_empty() {
            WebConfigFile::default()
        } else {
            serde_yaml::from_str(&text).context("parse")?
        };
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let tls = match file.tls_server_config {
            None => None,
            Some(t) => Some(Self::tls(&dir, t)?),
        };
        let mut headers = Vec::new();
        if let Some(h) = file.http_server_config {
            if h.http2 == Some(true) {
                tracing::debug!("http_server_config.http2: the HTTP server speaks HTTP/1.1");
            }
            for (k, v) in h.headers {
                if RESERVED_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
                    bail!("http_server_config.headers: {k:?} cannot be set");
                }
                let name = HeaderName::try_from(k.as_str()).with_context(|| {
                    format!("http_server_config.headers: bad header name {k:?}")
                })?;
                let value = HeaderValue::try_from(v.as_str())
                    .with_context(|| format!("http_server_config.headers: bad value for {k}"))?;
                headers.push((name, value));
            }
        }
        let mut users = HashMap::new();
        for (user, hash) in file.basic_auth_users {
            bcrypt_cost(&hash)
                .with_context(|| format!("basic_auth_users: the hash of {user:?} is not bcrypt"))?;
            users.insert(user, hash);
        }
        let auth = (!users.is_empty()).then(|| {
            Arc::new(BasicAuth {
                users,
                verified: Mutex::new(HashMap::new()),
                hasher: std::collections::hash_map::RandomState::new(),
            })
        });
        Ok(WebConfig { tls, auth, headers })
    }

    fn tls(dir: &Path, t: TlsServerConfig) -> Result<Arc<rustls::ServerConfig>> {
        if t.cert_file.is_empty() || t.key_file.is_empty() {
            bail!("tls_server_config needs cert_file and key_file");
        }
        if t.max_version.as_deref().is_some_and(|v| !v.is_empty()) {
            tracing::info!("tls_server_config.max_version: rustls offers TLS 1.2 and 1.3");
        }
        if !t.cipher_suites.is_empty()
            || !t.curve_preferences.is_empty()
            || t.prefer_server_cipher_suites.is_some()
        {
            tracing::info!(
                "tls_server_config: cipher suites and curves are rustls's safe defaults"
            );
        }
        if !t.client_allowed_sans.is_empty() {
            bail!("tls_server_config.client_allowed_sans is not supported");
        }
        let mut auth = ClientAuth::parse(&t.client_auth_type).map_err(anyhow::Error::msg)?;
        if auth == ClientAuth::None && !t.client_ca_file.is_empty() {
            // Go verifies client certificates when a CA is given and no type is.
            if t.client_auth_type.is_empty() {
                auth = ClientAuth::RequireAndVerify;
            }
        }
        let files = ServerFiles {
            cert: relative_to(dir, &t.cert_file),
            key: relative_to(dir, &t.key_file),
            client_ca: relative_to(dir, &t.client_ca_file),
            min_version: if t.min_version.is_empty() {
                "TLS12".into()
            } else {
                t.min_version
            },
        };
        storeapi::tls::server_config(&files, auth, &[b"http/1.1"]).map_err(anyhow::Error::msg)
    }

    /// `app` behind this config's basic auth, with its headers on every response.
    pub fn apply(&self, app: axum::Router) -> axum::Router {
        let mut app = app;
        if !self.headers.is_empty() {
            let headers = Arc::new(self.headers.clone());
            app = app.layer(axum::middleware::from_fn(
                move |req, next: axum::middleware::Next| {
                    let headers = headers.clone();
                    async move {
                        let mut resp = next.run(req).await;
                        for (k, v) in headers.iter() {
                            resp.headers_mut().insert(k.clone(), v.clone());
                        }
                        resp
                    }
                },
            ));
        }
        if let Some(auth) = &self.auth {
            let auth = auth.clone();
            app = app.layer(axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| {
                    let auth = auth.clone();
                    async move {
                        let given = req
                            .headers()
                            .get(header::AUTHORIZATION)
                            .and_then(|v| v.to_str().ok())
                            .and_then(parse_basic);
                        let allowed = match given {
                            Some((user, password)) => auth.check(user, password).await,
                            None => false,
                        };
                        if allowed {
                            next.run(req).await
                        } else {
                            unauthorized()
                        }
                    }
                },
            ));
        }
        app
    }
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic")],
        "Unauthorized\n",
    )
        .into_response()
}

/// The cost of a bcrypt hash (`$2a$10$…`), which also checks its form.
fn bcrypt_cost(hash: &str) -> Result<u32> {
    let parts: Vec<&str> = hash.split('$').collect();
    match parts.as_slice() {
        ["", "2a" | "2b" | "2y" | "2x", cost, rest] if rest.len() == 53 => {
            cost.parse().context("bad cost")
        }
        _ => bail!("want $2a$, $2b$ or $2y$ followed by a cost and 53 characters"),
    }
}

/// `Basic <base64(user:password)>` from an Authorization header.
fn parse_basic(v: &str) -> Option<(String, String)> {
    let b64 = v
        .strip_prefix("Basic ")
        .or_else(|| v.strip_prefix("basic "))?;
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Users and their bcrypt hashes; a verified pair is remembered (as a keyed hash) so that
/// bcrypt runs once per client, not once per request.
struct BasicAuth {
    users: HashMap<String, String>,
    verified: Mutex<HashMap<u64, ()>>,
    hasher: std::collections::hash_map::RandomState,
}

/// A hash any unknown user's password is checked against, so that a wrong user name costs
/// as long as a wrong password.
fn dummy_hash() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| bcrypt::hash("no such user", bcrypt::DEFAULT_COST).unwrap_or_default())
        .clone()
}

impl BasicAuth {
    fn key(&self, user: &str, password: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        user.hash(&mut h);
        password.hash(&mut h);
        h.finish()
    }

    async fn check(&self, user: String, password: String) -> bool {
        let key = self.key(&user, &password);
        if self.verified.lock().is_ok_and(|m| m.contains_key(&key)) {
            return true;
        }
        let (known, hash) = match self.users.get(&user) {
            Some(h) => (true, h.clone()),
            None => (false, dummy_hash()),
        };
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false)
                && known;
        if ok {
            if let Ok(mut m) = self.verified.lock() {
                if m.len() >= 1024 {
                    m.clear();
                }
                m.insert(key, ());
            }
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_headers_decode() {
        assert_eq!(
            parse_basic("Basic dXNlcjpwYXNz"),
            Some(("user".into(), "pass".into()))
        );
        assert_eq!(
            parse_basic("Basic YTpiOmM="),
            Some(("a".into(), "b:c".into()))
        );
        assert_eq!(parse_basic("Bearer x"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }

    #[test]
    fn bcrypt_hashes_are_checked_on_load() {
        assert_eq!(bcrypt_cost(&dummy_hash()).unwrap(), bcrypt::DEFAULT_COST);
        assert!(bcrypt_cost("plaintext").is_err());
        assert!(bcrypt_cost("$2y$10$short").is_err());
    }

    #[tokio::test]
    async fn passwords_are_verified_with_bcrypt() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let auth = BasicAuth {
            users: [("admin".to_string(), hash)].into_iter().collect(),
            verified: Mutex::new(HashMap::new()),
            hasher: Default::default(),
        };
        assert!(auth.check("admin".into(), "s3cret".into()).await);
        assert!(auth.check("admin".into(), "s3cret".into()).await);
        assert!(!auth.check("admin".into(), "wrong".into()).await);
        assert!(!auth.check("nobody".into(), "s3cret".into()).await);
    }
}
