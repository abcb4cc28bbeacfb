use super::*;

fn s3(yaml: &str) -> S3Config {
    match ObjstoreConfig::parse(yaml).unwrap().backend {
        Backend::S3(c) => c,
        other => panic!("{other:?}"),
    }
}

fn err(yaml: &str) -> String {
    ObjstoreConfig::parse(yaml).unwrap_err().to_string()
}

#[test]
fn filesystem() {
    let c = ObjstoreConfig::parse("type: FILESYSTEM\nconfig:\n  directory: /tmp/b\n").unwrap();
    assert_eq!(
        c,
        ObjstoreConfig {
            backend: Backend::Filesystem {
                directory: "/tmp/b".into()
            },
            prefix: String::new()
        }
    );
    assert!(err("type: FILESYSTEM\nconfig: {}\n").contains("`config.directory`: is required"));
}

#[test]
fn s3_garage_style() {
    let c = s3(
        "type: s3\nconfig:\n  bucket: b\n  endpoint: 127.0.0.1:3900\n  region: garage\n  access_key: k\n  secret_key: s\n  insecure: true\n  bucket_lookup_type: path\n  http_config:\n    idle_conn_timeout: 1m30s\n  part_size: 67108864\nprefix: /p/\n",
    );
    assert_eq!(
        c,
        S3Config {
            bucket: "b".into(),
            endpoint: "127.0.0.1:3900".into(),
            region: "garage".into(),
            access_key: "k".into(),
            secret_key: "s".into(),
            insecure: true,
            path_style: true,
            ..Default::default()
        }
    );
    let full = ObjstoreConfig::parse(
        "type: S3\nconfig:\n  bucket: b\n  endpoint: 127.0.0.1:3900\nprefix: /p/q/\n",
    )
    .unwrap();
    assert_eq!(full.prefix, "p/q");
}

#[test]
fn s3_lookup_and_region() {
    // auto: virtual-hosted on AWS with the region taken from the endpoint, path elsewhere.
    let c = s3("type: S3\nconfig:\n  bucket: b\n  endpoint: s3.eu-west-1.amazonaws.com\n");
    assert!(!c.path_style);
    assert_eq!(c.region, "eu-west-1");
    let c = s3("type: S3\nconfig:\n  bucket: b\n  endpoint: s3.amazonaws.com\n");
    assert_eq!(c.region, "us-east-1");
    let c = s3("type: S3\nconfig:\n  bucket: b\n  endpoint: minio:9000\n");
    assert!(c.path_style);
    assert_eq!(c.region, "");
    let c = s3(
        "type: S3\nconfig:\n  bucket: b\n  endpoint: minio:9000\n  bucket_lookup_type: virtual-hosted\n",
    );
    assert!(!c.path_style);
}

#[test]
fn s3_sse() {
    let c = s3(
        "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  sse_config:\n    type: SSE-KMS\n    kms_key_id: k1\n",
    );
    assert_eq!(
        c.sse,
        Some(S3Sse::Kms {
            key_id: "k1".into()
        })
    );
    let e =
        err("type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  sse_config:\n    type: SSE-KMS\n");
    assert!(e.contains("`config.sse_config.kms_key_id`"), "{e}");
    let e = err("type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  sse_config:\n    type: AES\n");
    assert!(e.contains("`config.sse_config.type`"), "{e}");
}

#[test]
fn s3_errors_name_the_field() {
    let cases = [
        (
            "type: S3\nconfig:\n  endpoint: x\n",
            "`config.bucket`: is required",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n",
            "`config.endpoint`: is required",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  access_key: k\n",
            "`config.secret_key`",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  secret_key: k\n",
            "`config.access_key`",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  insecure: maybe\n",
            "`config.insecure`: must be true or false",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  acess_key: k\n",
            "`config.acess_key`: unknown field for type S3",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  bucket_lookup_type: dns\n",
            "`config.bucket_lookup_type`",
        ),
        (
            "type: S3\nconfig:\n  bucket: [a]\n  endpoint: e\n",
            "`config.bucket`: must be a string",
        ),
        (
            "type: COS\nconfig: {}\n",
            "`type`: unsupported objstore type \"COS\"",
        ),
        ("config: {}\n", "`type`: is required"),
        ("type: S3\nconfig: {}\nprefx: a\n", "unknown field `prefx`"),
        ("type: [S3\n", "invalid YAML"),
    ];
    for (yaml, want) in cases {
        let e = err(yaml);
        assert!(e.contains(want), "{yaml:?}: {e}");
    }
}

#[test]
fn gcs_and_azure() {
    let c = ObjstoreConfig::parse(
        "type: GCS\nconfig:\n  bucket: g\n  service_account: |-\n    {\"type\": \"service_account\"}\n  use_grpc: false\n",
    )
    .unwrap();
    assert_eq!(
        c.backend,
        Backend::Gcs(GcsConfig {
            bucket: "g".into(),
            service_account: "{\"type\": \"service_account\"}".into()
        })
    );
    assert!(err("type: GCS\nconfig: {}\n").contains("`config.bucket`: is required"));

    let c = ObjstoreConfig::parse(
        "type: AZURE\nconfig:\n  storage_account: a\n  storage_account_key: k\n  container: c\n",
    )
    .unwrap();
    match c.backend {
        Backend::Azure(a) => {
            assert_eq!(
                (a.storage_account.as_str(), a.container.as_str()),
                ("a", "c")
            );
            assert_eq!(a.endpoint, "blob.core.windows.net");
        }
        other => panic!("{other:?}"),
    }
    let c = ObjstoreConfig::parse(
        "type: azure\nconfig:\n  container: c\n  storage_connection_string: DefaultEndpointsProtocol=https;AccountName=acc;AccountKey=a2V5;EndpointSuffix=core.chinacloudapi.cn\n",
    )
    .unwrap();
    match c.backend {
        Backend::Azure(a) => {
            assert_eq!(a.storage_account, "acc");
            assert_eq!(a.storage_account_key, "a2V5");
            assert_eq!(a.endpoint, "blob.core.chinacloudapi.cn");
        }
        other => panic!("{other:?}"),
    }
    let e = err("type: AZURE\nconfig:\n  container: c\n");
    assert!(e.contains("`config.storage_account`: is required"), "{e}");
    let e = err("type: AZURE\nconfig:\n  storage_account: a\n");
    assert!(e.contains("`config.container`: is required"), "{e}");
    let e = err(
        "type: AZURE\nconfig:\n  storage_account: a\n  container: c\n  storage_account_key: k\n  user_assigned_id: u\n",
    );
    assert!(e.contains("`config.user_assigned_id`"), "{e}");
}

#[test]
fn builds_every_type_offline() {
    let d = tempfile::tempdir().unwrap();
    let yamls = [
        format!(
            "type: FILESYSTEM\nconfig:\n  directory: {}\nprefix: tenant-a\n",
            d.path().join("fs").display()
        ),
        "type: S3\nconfig:\n  bucket: b\n  endpoint: 127.0.0.1:1\n  access_key: k\n  secret_key: s\n  insecure: true\n".into(),
        "type: S3\nconfig:\n  bucket: b\n  endpoint: s3.eu-west-1.amazonaws.com\n  access_key: k\n  secret_key: s\n  sse_config:\n    type: SSE-S3\n".into(),
        "type: GCS\nconfig:\n  bucket: g\n".into(),
        "type: AZURE\nconfig:\n  storage_account: a\n  storage_account_key: a2V5\n  container: c\n  endpoint: blob.core.chinacloudapi.cn\n".into(),
    ];
    for y in &yamls {
        bucket_from_yaml(y).unwrap_or_else(|e| panic!("{y}: {e}"));
    }
    assert!(d.path().join("fs").is_dir());
}

#[test]
fn ssec_key_file_is_checked() {
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("key");
    std::fs::write(&key, [7u8; 16]).unwrap();
    let yaml = format!(
        "type: S3\nconfig:\n  bucket: b\n  endpoint: e:1\n  sse_config:\n    type: SSE-C\n    encryption_key: {}\n",
        key.display()
    );
    let e = bucket_from_yaml(&yaml).err().unwrap().to_string();
    assert!(e.contains("needs a 32-byte key"), "{e}");
    std::fs::write(&key, [7u8; 32]).unwrap();
    bucket_from_yaml(&yaml).unwrap();
}

#[test]
fn base64_matches_rfc4648() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(b"foobar"), "Zm9vYmFy");
}

#[test]
fn env_substitution_and_flags() {
    // The variable name is unique to this test.
    std::env::set_var("GAUNTLET_TEST_OBJSTORE_DIR", "/tmp/from-env");
    let text = "type: FILESYSTEM\nconfig:\n  directory: $(GAUNTLET_TEST_OBJSTORE_DIR)\n";
    assert_eq!(
        expand_env(text).unwrap(),
        "type: FILESYSTEM\nconfig:\n  directory: /tmp/from-env\n"
    );
    assert_eq!(expand_env("a $(x y) $( $").unwrap(), "a $(x y) $( $");
    let e = expand_env("$(GAUNTLET_TEST_SURELY_UNSET_VAR)")
        .unwrap_err()
        .to_string();
    assert!(e.contains("GAUNTLET_TEST_SURELY_UNSET_VAR"), "{e}");

    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("objstore.yml");
    std::fs::write(&file, text).unwrap();
    let c = ObjstoreConfig::from_flags(Some(&file), None).unwrap();
    assert_eq!(
        c.backend,
        Backend::Filesystem {
            directory: "/tmp/from-env".into()
        }
    );
    assert_eq!(ObjstoreConfig::from_flags(None, Some(text)).unwrap(), c);
    let e = ObjstoreConfig::from_flags(Some(&file), Some(text)).unwrap_err();
    assert!(e.to_string().contains("both"), "{e}");
    let e = ObjstoreConfig::from_flags(None, None).unwrap_err();
    assert!(e.to_string().contains("is required"), "{e}");
    let e = ObjstoreConfig::from_flags(Some(&d.path().join("missing.yml")), None).unwrap_err();
    assert!(e.to_string().contains("missing.yml"), "{e}");
}
