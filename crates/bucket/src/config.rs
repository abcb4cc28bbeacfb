//! Thanos's objstore YAML to an object store.
//!
//! ```yaml
//! type: S3            # FILESYSTEM | S3 | GCS | AZURE (case-insensitive)
//! config:
//!   bucket: thanos
//!   endpoint: 127.0.0.1:3900
//!   region: garage
//!   access_key: ...
//!   secret_key: ...
//!   insecure: true              # plain HTTP
//!   bucket_lookup_type: path    # auto | virtual-hosted | path
//! prefix: optional/sub/path
//! ```
//! Field names and validation follow thanos-io/objstore (`providers/*/`): an S3 config needs
//! `endpoint`, `access_key` and `secret_key` come in pairs, unknown S3 keys are errors (Thanos
//! parses S3 strictly). Fields Thanos knows but that do not apply here (HTTP tuning, tracing,
//! part size, ...) are accepted and ignored; unknown keys of the other types are logged.
//! Flag contents get Thanos's `$(ENV_VAR)` substitution ([`expand_env`]).
//!
//! S3 `region`: taken from AWS endpoints (`s3.<region>.amazonaws.com`) when empty; otherwise
//! requests are signed for us-east-1. Thanos (minio-go) instead asks the server for the
//! bucket's region, so servers with their own region name (Garage: `garage`) need `region:`
//! set here. Credentials: `access_key`/`secret_key`(/`session_token`) when given, else the
//! `AWS_*` environment, web identity and instance metadata (not `~/.aws/credentials`).

use std::path::Path;
use std::sync::Arc;

use object_store::ObjectStore;
use serde::Deserialize;
use serde_yaml::{Mapping, Value};

use crate::error::{Error, Result};
use crate::Bucket;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    config: Option<Mapping>,
    #[serde(default)]
    prefix: Option<String>,
}

/// A parsed objstore configuration: where blocks live, and under which key prefix.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjstoreConfig {
    pub backend: Backend,
    /// Key prefix inside the bucket, without leading or trailing `/`; empty for none.
    pub prefix: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Backend {
    Filesystem { directory: String },
    S3(S3Config),
    Gcs(GcsConfig),
    Azure(AzureConfig),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct S3Config {
    pub bucket: String,
    /// Host and port, as Thanos takes it (a scheme is tolerated).
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    pub session_token: String,
    /// Plain HTTP instead of HTTPS.
    pub insecure: bool,
    /// Path-style requests (`endpoint/bucket/key`) rather than virtual-hosted ones.
    pub path_style: bool,
    pub sse: Option<S3Sse>,
}

/// Server-side encryption, from Thanos's `sse_config`.
#[derive(Clone, Debug, PartialEq)]
pub enum S3Sse {
    /// `SSE-S3`
    S3,
    /// `SSE-KMS` with `kms_key_id`.
    Kms { key_id: String },
    /// `SSE-C` with the raw 32-byte key read from the `encryption_key` file.
    C { key_file: String },
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct GcsConfig {
    pub bucket: String,
    /// Service account key JSON (the content, not a path); empty for ambient credentials.
    pub service_account: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct AzureConfig {
    pub storage_account: String,
    pub storage_account_key: String,
    pub container: String,
    /// Host suffix: the account URL is `https://<storage_account>.<endpoint>`.
    pub endpoint: String,
    /// A full blob endpoint URL from a connection string; overrides `endpoint`.
    pub blob_endpoint: String,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub user_assigned_id: String,
}

const S3_FIELDS: &[&str] = &[
    "bucket",
    "endpoint",
    "region",
    "disable_dualstack",
    "aws_sdk_auth",
    "access_key",
    "insecure",
    "signature_version2",
    "secret_key",
    "session_token",
    "put_user_metadata",
    "http_config",
    "trace",
    "list_objects_version",
    "bucket_lookup_type",
    "send_content_md5",
    "disable_multipart",
    "part_size",
    "sse_config",
    "sts_endpoint",
    "max_retries",
];
const GCS_FIELDS: &[&str] = &[
    "bucket",
    "service_account",
    "use_grpc",
    "grpc_conn_pool_size",
    "http_config",
    "chunk_size_bytes",
    "no_auth",
    "max_retries",
];
const AZURE_FIELDS: &[&str] = &[
    "az_tenant_id",
    "client_id",
    "client_secret",
    "storage_account",
    "storage_account_key",
    "storage_connection_string",
    "storage_create_container",
    "container",
    "endpoint",
    "user_assigned_id",
    "max_retries",
    "reader_config",
    "pipeline_config",
    "http_config",
    "msi_resource",
];
const AZURE_DEFAULT_ENDPOINT: &str = "blob.core.windows.net";

/// Typed access to one `config:` mapping; errors name the key as `config.<key>`.
struct Fields<'a> {
    map: &'a Mapping,
}

impl<'a> Fields<'a> {
    fn value(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn str(&self, key: &str) -> Result<String> {
        match self.value(key) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(Value::Bool(b)) => Ok(b.to_string()),
            Some(_) => Err(Error::field(&format!("config.{key}"), "must be a string")),
        }
    }

    fn required(&self, key: &str) -> Result<String> {
        let v = self.str(key)?;
        if v.is_empty() {
            return Err(Error::field(&format!("config.{key}"), "is required"));
        }
        Ok(v)
    }

    fn bool(&self, key: &str) -> Result<bool> {
        match self.value(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(Error::field(
                &format!("config.{key}"),
                "must be true or false",
            )),
        }
    }

    fn mapping(&self, key: &str) -> Result<Option<Fields<'a>>> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::Mapping(map)) => Ok(Some(Fields { map })),
            Some(_) => Err(Error::field(&format!("config.{key}"), "must be a mapping")),
        }
    }

    /// Keys not in `known` are an error, as Thanos reads its objstore config strictly.
    fn check_known(&self, kind: &str, known: &[&str]) -> Result<()> {
        for k in self.map.keys() {
            let name = match k {
                Value::String(s) => s.as_str(),
                _ => return Err(Error::field("config", "keys must be strings")),
            };
            if known.contains(&name) {
                continue;
            }
            return Err(Error::field(
                &format!("config.{name}"),
                format!(
                    "unknown field for type {kind}; known fields: {}",
                    known.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

impl ObjstoreConfig {
    /// Parses Thanos's objstore YAML (no environment substitution; see [`expand_env`]).
    pub fn parse(yaml: &str) -> Result<Self> {
        let doc: Document =
            serde_yaml::from_str(yaml).map_err(|e| Error::Config(format!("invalid YAML: {e}")))?;
        let kind = doc
            .kind
            .filter(|k| !k.is_empty())
            .ok_or_else(|| Error::field("type", "is required (FILESYSTEM, S3, GCS or AZURE)"))?;
        let empty = Mapping::new();
        let f = Fields {
            map: doc.config.as_ref().unwrap_or(&empty),
        };
        let backend = match kind.to_ascii_uppercase().as_str() {
            "FILESYSTEM" => {
                f.check_known("FILESYSTEM", &["directory"])?;
                Backend::Filesystem {
                    directory: f.required("directory")?,
                }
            }
            "S3" => Backend::S3(parse_s3(&f)?),
            "GCS" => {
                f.check_known("GCS", GCS_FIELDS)?;
                Backend::Gcs(GcsConfig {
                    bucket: f.required("bucket")?,
                    service_account: f.str("service_account")?,
                })
            }
            "AZURE" => Backend::Azure(parse_azure(&f)?),
            other => {
                return Err(Error::field(
                    "type",
                    format!(
                    "unsupported objstore type {other:?}; supported: FILESYSTEM, S3, GCS, AZURE"
                ),
                ))
            }
        };
        Ok(ObjstoreConfig {
            backend,
            prefix: doc.prefix.unwrap_or_default().trim_matches('/').to_string(),
        })
    }

    /// The configuration from Thanos's flag pair `--objstore.config-file` / `--objstore.config`:
    /// exactly one must be given and non-empty; `$(ENV_VAR)` references are substituted.
    pub fn from_flags(file: Option<&Path>, content: Option<&str>) -> Result<Self> {
        let text = match (file, content.filter(|c| !c.is_empty())) {
            (Some(_), Some(_)) => {
                return Err(Error::Config(
                    "both --objstore.config-file and --objstore.config are set; use one".into(),
                ))
            }
            (Some(path), None) => std::fs::read_to_string(path)
                .map_err(|e| Error::local("read --objstore.config-file", path, e))?,
            (None, Some(c)) => c.to_string(),
            (None, None) => String::new(),
        };
        if text.trim().is_empty() {
            return Err(Error::Config(
                "--objstore.config-file or --objstore.config is required and must not be empty"
                    .into(),
            ));
        }
        Self::parse(&expand_env(&text)?)
    }

    /// Builds the object store, wrapped in a prefix store when `prefix` is set. A filesystem
    /// directory is created when missing. Nothing is contacted over the network here.
    pub fn build(&self) -> Result<Bucket> {
        let store: Arc<dyn ObjectStore> = match &self.backend {
            Backend::Filesystem { directory } => {
                let dir = Path::new(directory);
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::local("create bucket directory", dir, e))?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| Error::field("config.directory", e.to_string()))?
                    .with_automatic_cleanup(true);
                Arc::new(crate::local::LocalBucket::new(fs))
            }
            Backend::S3(c) => build_s3(c)?,
            Backend::Gcs(c) => {
                let mut b = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(&c.bucket);
                if !c.service_account.is_empty() {
                    b = b.with_service_account_key(&c.service_account);
                }
                Arc::new(b.build().map_err(|e| Error::Config(format!("GCS: {e}")))?)
            }
            Backend::Azure(c) => build_azure(c)?,
        };
        // The `bucket` label of the objstore metrics, as Thanos names the bucket.
        let name = match &self.backend {
            Backend::Filesystem { directory } => directory.as_str(),
            Backend::S3(c) => c.bucket.as_str(),
            Backend::Gcs(c) => c.bucket.as_str(),
            Backend::Azure(c) => c.container.as_str(),
        };
        let store = crate::instrumented::instrument(store, name);
        if self.prefix.is_empty() {
            return Ok(store);
        }
        Ok(Arc::new(object_store::prefix::PrefixStore::new(
            store,
            self.prefix.as_str(),
        )))
    }
}

fn parse_s3(f: &Fields) -> Result<S3Config> {
    f.check_known("S3", S3_FIELDS)?;
    let endpoint = f.required("endpoint")?;
    let access_key = f.str("access_key")?;
    let secret_key = f.str("secret_key")?;
    if f.bool("aws_sdk_auth")? && !access_key.is_empty() {
        return Err(Error::field(
            "config.aws_sdk_auth",
            "aws_sdk_auth and access_key are mutually exclusive",
        ));
    }
    if access_key.is_empty() != secret_key.is_empty() {
        let missing = if access_key.is_empty() {
            "config.access_key"
        } else {
            "config.secret_key"
        };
        return Err(Error::field(
            missing,
            "access_key and secret_key must be given together (or neither, for env/IAM credentials)",
        ));
    }
    if f.bool("signature_version2")? {
        return Err(Error::field(
            "config.signature_version2",
            "signature v2 is not supported; only v4",
        ));
    }
    let lookup = f.str("bucket_lookup_type")?;
    let path_style = match lookup.as_str() {
        "path" => true,
        "virtual-hosted" => false,
        // minio-go's auto: virtual-hosted for AWS (and Google) endpoints, path style elsewhere.
        "" | "auto" => {
            let host = strip_scheme(&endpoint);
            !(host.ends_with("amazonaws.com") || host.ends_with("googleapis.com"))
        }
        other => {
            return Err(Error::field(
                "config.bucket_lookup_type",
                format!("unsupported value {other:?}; want auto, virtual-hosted or path"),
            ))
        }
    };
    let sse = match f.mapping("sse_config")? {
        None => None,
        Some(s) => parse_sse(&s)?,
    };
    let mut region = f.str("region")?;
    if region.is_empty() {
        region = aws_region_of(&endpoint).unwrap_or_default();
    }
    Ok(S3Config {
        bucket: f.required("bucket")?,
        endpoint,
        region,
        access_key,
        secret_key,
        session_token: f.str("session_token")?,
        insecure: f.bool("insecure")?,
        path_style,
        sse,
    })
}

fn parse_sse(s: &Fields) -> Result<Option<S3Sse>> {
    let kind = s.str("type")?;
    let ctx = s.mapping("kms_encryption_context")?;
    if ctx.is_some_and(|c| !c.map.is_empty()) {
        return Err(Error::field(
            "config.sse_config.kms_encryption_context",
            "is not supported",
        ));
    }
    match kind.as_str() {
        "" => Ok(None),
        "SSE-S3" => Ok(Some(S3Sse::S3)),
        "SSE-KMS" => {
            let key_id = s.str("kms_key_id")?;
            if key_id.is_empty() {
                return Err(Error::field(
                    "config.sse_config.kms_key_id",
                    "must be set when sse_config.type is SSE-KMS",
                ));
            }
            Ok(Some(S3Sse::Kms { key_id }))
        }
        "SSE-C" => {
            let key_file = s.str("encryption_key")?;
            if key_file.is_empty() {
                return Err(Error::field(
                    "config.sse_config.encryption_key",
                    "must be set when sse_config.type is SSE-C",
                ));
            }
            Ok(Some(S3Sse::C { key_file }))
        }
        other => Err(Error::field(
            "config.sse_config.type",
            format!("unsupported type {other:?}; supported: SSE-S3, SSE-KMS, SSE-C"),
        )),
    }
}

fn strip_scheme(endpoint: &str) -> &str {
    endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest)
        .trim_end_matches('/')
}

/// The region named by an AWS S3 endpoint (`s3.<region>.amazonaws.com`,
/// `s3-<region>.amazonaws.com`, `s3.dualstack.<region>.amazonaws.com`; the global
/// `s3.amazonaws.com` is us-east-1). Other endpoints name none.
fn aws_region_of(endpoint: &str) -> Option<String> {
    let host = strip_scheme(endpoint);
    let host = host.split(':').next().unwrap_or(host);
    let rest = host.strip_suffix(".amazonaws.com")?;
    let rest = rest.strip_prefix("s3.dualstack.").unwrap_or(rest);
    if rest == "s3" {
        return Some("us-east-1".into());
    }
    let region = rest
        .strip_prefix("s3.")
        .or_else(|| rest.strip_prefix("s3-"))?;
    (!region.is_empty() && !region.contains('.')).then(|| region.to_string())
}

fn build_s3(c: &S3Config) -> Result<Arc<dyn ObjectStore>> {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
    // Static keys from the config; otherwise the environment / instance credentials, as
    // Thanos falls back to its env and IAM chain.
    let mut b = if c.access_key.is_empty() {
        AmazonS3Builder::from_env()
    } else {
        let b = AmazonS3Builder::new()
            .with_access_key_id(&c.access_key)
            .with_secret_access_key(&c.secret_key);
        if c.session_token.is_empty() {
            b
        } else {
            b.with_token(&c.session_token)
        }
    };
    let scheme = if c.insecure { "http" } else { "https" };
    let (scheme, host) = match c.endpoint.split_once("://") {
        Some((s, rest)) => (s, rest.trim_end_matches('/')),
        None => (scheme, c.endpoint.trim_end_matches('/')),
    };
    // object_store wants the bucket in the endpoint for virtual-hosted requests.
    let url = if c.path_style {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{}.{host}", c.bucket)
    };
    b = b
        .with_bucket_name(&c.bucket)
        .with_endpoint(url)
        .with_virtual_hosted_style_request(!c.path_style)
        .with_allow_http(scheme == "http");
    if !c.region.is_empty() {
        b = b.with_region(&c.region);
    }
    match &c.sse {
        None => {}
        Some(S3Sse::S3) => {
            let key: AmazonS3ConfigKey = "aws_server_side_encryption"
                .parse()
                .map_err(|e| Error::Config(format!("S3 SSE-S3: {e}")))?;
            b = b.with_config(key, "AES256");
        }
        Some(S3Sse::Kms { key_id }) => b = b.with_sse_kms_encryption(key_id),
        Some(S3Sse::C { key_file }) => {
            let key = std::fs::read(key_file).map_err(|e| {
                Error::local("read sse_config.encryption_key", Path::new(key_file), e)
            })?;
            if key.len() != 32 {
                return Err(Error::field(
                    "config.sse_config.encryption_key",
                    format!(
                        "{key_file} holds {} bytes; SSE-C needs a 32-byte key",
                        key.len()
                    ),
                ));
            }
            b = b.with_ssec_encryption(base64(&key));
        }
    }
    Ok(Arc::new(b.build().map_err(|e| {
        Error::Config(format!("S3 bucket {:?}: {e}", c.bucket))
    })?))
}

fn parse_azure(f: &Fields) -> Result<AzureConfig> {
    f.check_known("AZURE", AZURE_FIELDS)?;
    let mut c = AzureConfig {
        storage_account: f.str("storage_account")?,
        storage_account_key: f.str("storage_account_key")?,
        container: f.required("container")?,
        endpoint: f.str("endpoint")?,
        tenant_id: f.str("az_tenant_id")?,
        client_id: f.str("client_id")?,
        client_secret: f.str("client_secret")?,
        user_assigned_id: f.str("user_assigned_id")?,
        ..Default::default()
    };
    let conn = f.str("storage_connection_string")?;
    if !c.user_assigned_id.is_empty() && !c.storage_account_key.is_empty() {
        return Err(Error::field(
            "config.user_assigned_id",
            "cannot be set together with storage_account_key",
        ));
    }
    if !conn.is_empty() {
        if !c.storage_account_key.is_empty() || !c.user_assigned_id.is_empty() {
            return Err(Error::field(
                "config.storage_connection_string",
                "cannot be set together with storage_account_key or user_assigned_id",
            ));
        }
        for part in conn.split(';').filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return Err(Error::field(
                    "config.storage_connection_string",
                    format!("part {part:?} is not key=value"),
                ));
            };
            match k {
                "AccountName" if c.storage_account.is_empty() => c.storage_account = v.into(),
                "AccountKey" => c.storage_account_key = v.into(),
                "BlobEndpoint" => c.blob_endpoint = v.trim_end_matches('/').into(),
                "EndpointSuffix" if c.endpoint.is_empty() => c.endpoint = format!("blob.{v}"),
                _ => {}
            }
        }
    }
    if c.storage_account.is_empty() {
        return Err(Error::field("config.storage_account", "is required"));
    }
    if c.endpoint.is_empty() {
        c.endpoint = AZURE_DEFAULT_ENDPOINT.into();
    }
    Ok(c)
}

fn build_azure(c: &AzureConfig) -> Result<Arc<dyn ObjectStore>> {
    let mut b = object_store::azure::MicrosoftAzureBuilder::from_env()
        .with_account(&c.storage_account)
        .with_container_name(&c.container);
    if !c.storage_account_key.is_empty() {
        b = b.with_access_key(&c.storage_account_key);
    }
    if !c.tenant_id.is_empty() {
        b = b.with_tenant_id(&c.tenant_id);
    }
    if !c.client_secret.is_empty() {
        b = b.with_client_secret(&c.client_secret);
    }
    // A user-assigned managed identity is selected by its client id.
    let client_id = if c.client_id.is_empty() {
        &c.user_assigned_id
    } else {
        &c.client_id
    };
    if !client_id.is_empty() {
        b = b.with_client_id(client_id);
    }
    if !c.blob_endpoint.is_empty() {
        b = b
            .with_allow_http(c.blob_endpoint.starts_with("http://"))
            .with_endpoint(c.blob_endpoint.clone());
    } else if c.endpoint != AZURE_DEFAULT_ENDPOINT {
        b = b.with_endpoint(format!("https://{}.{}", c.storage_account, c.endpoint));
    }
    Ok(Arc::new(b.build().map_err(|e| {
        Error::Config(format!("Azure container {:?}: {e}", c.container))
    })?))
}

/// Standard base64 with padding (for the SSE-C key header).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Thanos's substitution in flag contents: each `$(NAME)` becomes environment variable NAME
/// (letters, digits, `_`); a reference to an unset variable is an error.
pub fn expand_env(text: &str) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if name_len == 0 || !after[name_len..].starts_with(')') {
            // Not a reference; keep the text as it is.
            out.push_str("$(");
            rest = after;
            continue;
        }
        let name = &after[..name_len];
        let value = std::env::var(name).map_err(|_| {
            Error::Config(format!(
                "found reference to unset environment variable {name:?}"
            ))
        })?;
        out.push_str(&value);
        rest = &after[name_len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Substitutes `$(ENV_VAR)` references, parses and builds: the whole path from a
/// `--objstore.config` flag value to a store.
pub fn bucket_from_yaml(yaml: &str) -> Result<Bucket> {
    ObjstoreConfig::parse(&expand_env(yaml)?)?.build()
}

/// Whether an objstore configuration is a local directory (type FILESYSTEM).
pub fn is_filesystem(yaml: &str) -> Result<bool> {
    let cfg = ObjstoreConfig::parse(&expand_env(yaml)?)?;
    Ok(matches!(cfg.backend, Backend::Filesystem { .. }))
}

/// [`bucket_from_yaml`] for readers that must not create anything: a filesystem bucket
/// whose directory does not exist is an error rather than a new empty directory.
pub fn existing_bucket_from_yaml(yaml: &str) -> Result<Bucket> {
    let cfg = ObjstoreConfig::parse(&expand_env(yaml)?)?;
    if let Backend::Filesystem { directory } = &cfg.backend {
        if !Path::new(directory).is_dir() {
            return Err(Error::field(
                "config.directory",
                format!("bucket directory {directory:?} does not exist"),
            ));
        }
    }
    cfg.build()
}

/// [`ObjstoreConfig::from_flags`], then built.
pub fn bucket_from_flags(file: Option<&Path>, content: Option<&str>) -> Result<Bucket> {
    ObjstoreConfig::from_flags(file, content)?.build()
}

#[cfg(test)]
mod tests;
