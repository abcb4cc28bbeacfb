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
//! Fields Thanos knows but that do not apply here (HTTP tuning, tracing, ...) are accepted
//! and ignored, so existing Thanos config files work unchanged.

use std::sync::Arc;

use object_store::ObjectStore;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::Bucket;

#[derive(Debug, Deserialize)]
struct Document {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    config: serde_yaml::Mapping,
    #[serde(default)]
    prefix: String,
}

/// A parsed objstore configuration.
#[derive(Clone, Debug, PartialEq)]
pub enum ObjstoreConfig {
    Filesystem {
        directory: String,
        prefix: String,
    },
    S3 {
        bucket: String,
        endpoint: String,
        region: String,
        access_key: String,
        secret_key: String,
        session_token: String,
        insecure: bool,
        path_style: bool,
        prefix: String,
    },
    Gcs {
        bucket: String,
        service_account: String,
        prefix: String,
    },
    Azure {
        storage_account: String,
        storage_account_key: String,
        container: String,
        endpoint: String,
        prefix: String,
    },
}

fn get_str(m: &serde_yaml::Mapping, key: &str, kind: &str) -> Result<String> {
    match m.get(key) {
        None | Some(serde_yaml::Value::Null) => Ok(String::new()),
        Some(serde_yaml::Value::String(s)) => Ok(s.clone()),
        Some(serde_yaml::Value::Number(n)) => Ok(n.to_string()),
        Some(serde_yaml::Value::Bool(b)) => Ok(b.to_string()),
        Some(_) => Err(Error::Config(format!(
            "{kind} config field `{key}` must be a string"
        ))),
    }
}

fn get_bool(m: &serde_yaml::Mapping, key: &str, kind: &str) -> Result<bool> {
    match m.get(key) {
        None | Some(serde_yaml::Value::Null) => Ok(false),
        Some(serde_yaml::Value::Bool(b)) => Ok(*b),
        Some(_) => Err(Error::Config(format!(
            "{kind} config field `{key}` must be true or false"
        ))),
    }
}

fn require(value: String, key: &str, kind: &str) -> Result<String> {
    if value.is_empty() {
        return Err(Error::Config(format!(
            "{kind} config field `{key}` is required"
        )));
    }
    Ok(value)
}

impl ObjstoreConfig {
    /// Parses Thanos's objstore YAML.
    pub fn parse(yaml: &str) -> Result<Self> {
        let doc: Document =
            serde_yaml::from_str(yaml).map_err(|e| Error::Config(format!("invalid YAML: {e}")))?;
        let m = &doc.config;
        let prefix = doc.prefix.trim_matches('/').to_string();
        match doc.kind.to_ascii_uppercase().as_str() {
            "FILESYSTEM" => Ok(ObjstoreConfig::Filesystem {
                directory: require(
                    get_str(m, "directory", "FILESYSTEM")?,
                    "directory",
                    "FILESYSTEM",
                )?,
                prefix,
            }),
            "S3" => {
                let endpoint = get_str(m, "endpoint", "S3")?;
                let lookup = get_str(m, "bucket_lookup_type", "S3")?;
                let path_style = match lookup.as_str() {
                    "path" => true,
                    "virtual-hosted" => false,
                    // minio-go's auto: virtual-hosted for AWS, path style elsewhere.
                    "" | "auto" => !(endpoint.is_empty() || endpoint.contains("amazonaws.com")),
                    other => {
                        return Err(Error::Config(format!(
                            "S3 config field `bucket_lookup_type` is {other:?}; want auto, virtual-hosted or path"
                        )))
                    }
                };
                Ok(ObjstoreConfig::S3 {
                    bucket: require(get_str(m, "bucket", "S3")?, "bucket", "S3")?,
                    endpoint,
                    region: get_str(m, "region", "S3")?,
                    access_key: get_str(m, "access_key", "S3")?,
                    secret_key: get_str(m, "secret_key", "S3")?,
                    session_token: get_str(m, "session_token", "S3")?,
                    insecure: get_bool(m, "insecure", "S3")?,
                    path_style,
                    prefix,
                })
            }
            "GCS" => Ok(ObjstoreConfig::Gcs {
                bucket: require(get_str(m, "bucket", "GCS")?, "bucket", "GCS")?,
                service_account: get_str(m, "service_account", "GCS")?,
                prefix,
            }),
            "AZURE" => {
                let endpoint = get_str(m, "endpoint", "AZURE")?;
                Ok(ObjstoreConfig::Azure {
                    storage_account: require(
                        get_str(m, "storage_account", "AZURE")?,
                        "storage_account",
                        "AZURE",
                    )?,
                    storage_account_key: get_str(m, "storage_account_key", "AZURE")?,
                    container: require(get_str(m, "container", "AZURE")?, "container", "AZURE")?,
                    endpoint: if endpoint.is_empty() {
                        "blob.core.windows.net".into()
                    } else {
                        endpoint
                    },
                    prefix,
                })
            }
            other => Err(Error::Config(format!(
                "unsupported objstore type {other:?}; supported: FILESYSTEM, S3, GCS, AZURE"
            ))),
        }
    }

    fn prefix(&self) -> &str {
        match self {
            ObjstoreConfig::Filesystem { prefix, .. }
            | ObjstoreConfig::S3 { prefix, .. }
            | ObjstoreConfig::Gcs { prefix, .. }
            | ObjstoreConfig::Azure { prefix, .. } => prefix,
        }
    }

    /// Builds the object store. A filesystem directory is created when missing.
    pub fn build(&self) -> Result<Bucket> {
        let store: Arc<dyn ObjectStore> = match self {
            ObjstoreConfig::Filesystem { directory, .. } => {
                std::fs::create_dir_all(directory).map_err(|e| {
                    Error::local(
                        "create bucket directory",
                        std::path::Path::new(directory),
                        e,
                    )
                })?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(directory)
                    .map_err(|e| Error::store("open filesystem bucket", directory, e))?
                    .with_automatic_cleanup(true);
                Arc::new(fs)
            }
            ObjstoreConfig::S3 {
                bucket,
                endpoint,
                region,
                access_key,
                secret_key,
                session_token,
                insecure,
                path_style,
                ..
            } => {
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_virtual_hosted_style_request(!path_style)
                    .with_allow_http(*insecure);
                if !endpoint.is_empty() {
                    let scheme = if *insecure { "http" } else { "https" };
                    let url = if endpoint.contains("://") {
                        endpoint.clone()
                    } else {
                        format!("{scheme}://{endpoint}")
                    };
                    b = b.with_endpoint(url);
                }
                if !region.is_empty() {
                    b = b.with_region(region);
                }
                if !access_key.is_empty() {
                    b = b
                        .with_access_key_id(access_key)
                        .with_secret_access_key(secret_key);
                }
                if !session_token.is_empty() {
                    b = b.with_token(session_token);
                }
                Arc::new(
                    b.build()
                        .map_err(|e| Error::store("configure S3 bucket", bucket, e))?,
                )
            }
            ObjstoreConfig::Gcs {
                bucket,
                service_account,
                ..
            } => {
                let mut b = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket);
                if !service_account.is_empty() {
                    b = b.with_service_account_key(service_account);
                }
                Arc::new(
                    b.build()
                        .map_err(|e| Error::store("configure GCS bucket", bucket, e))?,
                )
            }
            ObjstoreConfig::Azure {
                storage_account,
                storage_account_key,
                container,
                endpoint,
                ..
            } => {
                let mut b = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_account(storage_account)
                    .with_container_name(container);
                if !storage_account_key.is_empty() {
                    b = b.with_access_key(storage_account_key);
                }
                if endpoint != "blob.core.windows.net" {
                    b = b.with_endpoint(format!("https://{storage_account}.{endpoint}"));
                }
                Arc::new(
                    b.build()
                        .map_err(|e| Error::store("configure Azure container", container, e))?,
                )
            }
        };
        if self.prefix().is_empty() {
            return Ok(store);
        }
        Ok(Arc::new(object_store::prefix::PrefixStore::new(
            store,
            self.prefix(),
        )))
    }
}

/// Parses and builds in one step.
pub fn bucket_from_yaml(yaml: &str) -> Result<Bucket> {
    ObjstoreConfig::parse(yaml)?.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_types() {
        let c = ObjstoreConfig::parse("type: FILESYSTEM\nconfig:\n  directory: /tmp/b\n").unwrap();
        assert_eq!(
            c,
            ObjstoreConfig::Filesystem {
                directory: "/tmp/b".into(),
                prefix: String::new()
            }
        );
        let c = ObjstoreConfig::parse(
            "type: s3\nconfig:\n  bucket: b\n  endpoint: 127.0.0.1:3900\n  access_key: k\n  secret_key: s\n  insecure: true\n  http_config:\n    idle_conn_timeout: 1m30s\nprefix: /p/\n",
        )
        .unwrap();
        match c {
            ObjstoreConfig::S3 {
                path_style,
                insecure,
                prefix,
                ..
            } => assert!(path_style && insecure && prefix == "p"),
            other => panic!("{other:?}"),
        }
        let c = ObjstoreConfig::parse(
            "type: S3\nconfig:\n  bucket: b\n  endpoint: s3.us-east-1.amazonaws.com\n",
        )
        .unwrap();
        assert!(matches!(
            c,
            ObjstoreConfig::S3 {
                path_style: false,
                ..
            }
        ));
        assert!(matches!(
            ObjstoreConfig::parse("type: GCS\nconfig:\n  bucket: g\n").unwrap(),
            ObjstoreConfig::Gcs { .. }
        ));
        assert!(matches!(
            ObjstoreConfig::parse("type: AZURE\nconfig:\n  storage_account: a\n  container: c\n")
                .unwrap(),
            ObjstoreConfig::Azure { .. }
        ));
    }

    #[test]
    fn errors_name_the_field() {
        let e = ObjstoreConfig::parse("type: S3\nconfig:\n  endpoint: x\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`bucket` is required"), "{e}");
        let e = ObjstoreConfig::parse("type: COS\nconfig: {}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unsupported objstore type"), "{e}");
        let e = ObjstoreConfig::parse("type: S3\nconfig:\n  bucket: b\n  insecure: maybe\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`insecure`"), "{e}");
        let e = ObjstoreConfig::parse("config: {}").unwrap_err().to_string();
        assert!(e.contains("invalid YAML"), "{e}");
    }

    #[test]
    fn filesystem_bucket_with_prefix_builds() {
        let d = tempfile::tempdir().unwrap();
        let yaml = format!(
            "type: FILESYSTEM\nconfig:\n  directory: {}\nprefix: tenant-a\n",
            d.path().display()
        );
        bucket_from_yaml(&yaml).unwrap();
    }
}
