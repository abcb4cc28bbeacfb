//! TLS and authentication with Thanos's flags, on the real binary with certificates made by
//! the test: the store gateway's gRPC server requires client certificates and its HTTP
//! server TLS and basic auth (`--http.config`); queriers with the right certificates see it
//! healthy, queriers with wrong or missing ones do not; wrong passwords get 401; a sidecar
//! reaches a Prometheus 2.42 that sits behind TLS and basic auth; bad settings stop the
//! process with an error that names them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use testkit::certs::Pki;
use testkit::{free_port, http_get, http_request, wait_until, Process};

fn gauntlet(dir: &Path, name: &str, args: &[String]) -> (Process, PathBuf) {
    testkit::spawn_logged(env!("CARGO_BIN_EXE_gauntlet"), dir, name, args)
}

/// A blocking HTTPS request trusting `ca` (and presenting `client` as `(cert, key)`).
fn https(
    url: &str,
    ca: &str,
    client: Option<(&str, &str)>,
    auth: Option<(&str, &str)>,
) -> Result<(u16, String), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pem = std::fs::read(ca).unwrap();
        let mut b = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
            .timeout(Duration::from_secs(10));
        if let Some((cert, key)) = client {
            let mut id = std::fs::read(cert).unwrap();
            id.extend(std::fs::read(key).unwrap());
            b = b.identity(reqwest::Identity::from_pem(&id).unwrap());
        }
        let c = b.build().map_err(|e| e.to_string())?;
        let mut req = c.get(url);
        if let Some((u, p)) = auth {
            req = req.basic_auth(u, Some(p));
        }
        let r = req.send().await.map_err(|e| format!("{e:?}"))?;
        let code = r.status().as_u16();
        Ok((code, r.text().await.map_err(|e| e.to_string())?))
    })
}

fn objstore(dir: &Path) -> String {
    let bucket = dir.join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    format!(
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket.display()
    )
}

/// The querier's view of its endpoints: (name, lastError) per store.
fn stores(port: u16) -> Vec<(String, Option<String>)> {
    let Ok((200, body)) = http_get(port, "/api/v1/stores") else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut out = Vec::new();
    for list in v["data"].as_object().into_iter().flat_map(|m| m.values()) {
        for s in list.as_array().into_iter().flatten() {
            out.push((
                s["name"].as_str().unwrap_or("").to_string(),
                s["lastError"].as_str().map(str::to_string),
            ));
        }
    }
    out
}

/// Waits until the querier has checked its endpoints once; true when all are healthy.
fn querier_sees_healthy_store(port: u16, log: &Path) -> bool {
    let mut healthy = false;
    let checked = wait_until(
        "querier checked its endpoint",
        Duration::from_secs(30),
        || match http_get(port, "/api/v1/stores") {
            Ok((200, body)) if body.contains("lastCheck") => {
                let s = stores(port);
                healthy = !s.is_empty() && s.iter().all(|(_, e)| e.is_none());
                healthy || s.iter().any(|(_, e)| e.is_some())
            }
            _ => false,
        },
    );
    assert!(checked.is_ok(), "{}", testkit::log_tail(log));
    if healthy {
        return true;
    }
    // An unhealthy answer might be the first, racing the server's start: look again.
    std::thread::sleep(Duration::from_secs(6));
    let s = stores(port);
    !s.is_empty() && s.iter().all(|(_, e)| e.is_none())
}

fn querier(dir: &Path, name: &str, endpoint: &str, tls: &[String]) -> (Process, u16, PathBuf) {
    let http = free_port();
    let mut args = vec![
        "query".to_string(),
        format!("--endpoint={endpoint}"),
        format!("--http-address=127.0.0.1:{http}"),
        format!("--grpc-address=127.0.0.1:{}", free_port()),
        "--endpoint.info-interval=1s".into(),
    ];
    args.extend(tls.iter().cloned());
    let (p, log) = gauntlet(dir, name, &args);
    (p, http, log)
}

fn web_config(pki: &Pki, users: &[(&str, &str)], tls: bool) -> PathBuf {
    let mut y = String::new();
    if tls {
        // Relative paths resolve against the config file's directory.
        y.push_str("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n");
    }
    y.push_str("http_server_config:\n  headers:\n    X-Frame-Options: deny\n");
    if !users.is_empty() {
        y.push_str("basic_auth_users:\n");
        for (u, p) in users {
            y.push_str(&format!("  {u}: {}\n", bcrypt::hash(p, 4).unwrap()));
        }
    }
    let path = pki
        .dir
        .join(format!("web-{}.yml", if tls { "tls" } else { "plain" }));
    std::fs::write(&path, y).unwrap();
    path
}

#[test]
fn grpc_and_http_tls_client_certificates_and_basic_auth() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let pki = testkit::certs::make(&d.join("pki")).unwrap();
    let (http, grpc) = (free_port(), free_port());
    let web = web_config(&pki, &[("admin", "s3cret")], true);
    let (_store, store_log) = gauntlet(
        d,
        "store",
        &[
            "store".into(),
            objstore(d),
            format!("--data-dir={}", d.join("store").display()),
            format!("--http-address=127.0.0.1:{http}"),
            format!("--grpc-address=127.0.0.1:{grpc}"),
            format!("--grpc-server-tls-cert={}", pki.path("server.crt")),
            format!("--grpc-server-tls-key={}", pki.path("server.key")),
            format!("--grpc-server-tls-client-ca={}", pki.path("ca.crt")),
            format!("--http.config={}", web.display()),
        ],
    );
    let ca = pki.path("ca.crt");
    let url = |p: &str| format!("https://localhost:{http}{p}");
    let ready = wait_until("store ready over HTTPS", Duration::from_secs(60), || {
        matches!(
            https(&url("/-/ready"), &ca, None, Some(("admin", "s3cret"))),
            Ok((200, _))
        )
    });
    assert!(ready.is_ok(), "{}", testkit::log_tail(&store_log));

    // Basic auth: no password, a wrong one, an unknown user are refused on every path.
    for auth in [None, Some(("admin", "wrong")), Some(("root", "s3cret"))] {
        for path in ["/-/ready", "/-/healthy", "/metrics"] {
            let r = https(&url(path), &ca, None, auth).unwrap();
            assert_eq!(r.0, 401, "{path} with {auth:?}");
        }
    }
    let (code, metrics) = https(&url("/metrics"), &ca, None, Some(("admin", "s3cret"))).unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("thanos_build_info"));
    // TLS: a client that trusts another CA fails; plain HTTP gets no answer.
    let rogue = https(
        &url("/-/ready"),
        &pki.path("rogue-ca.crt"),
        None,
        Some(("admin", "s3cret")),
    );
    assert!(rogue.is_err(), "{rogue:?}");
    assert!(!matches!(http_get(http, "/-/ready"), Ok((200, _))));

    // gRPC: the right CA and client certificate make a healthy endpoint, by IP or by name.
    let good_client = [
        "--grpc-client-tls-secure".to_string(),
        format!("--grpc-client-tls-ca={ca}"),
        format!("--grpc-client-tls-cert={}", pki.path("client.crt")),
        format!("--grpc-client-tls-key={}", pki.path("client.key")),
    ];
    let by_ip = format!("127.0.0.1:{grpc}");
    let by_name = format!("localhost:{grpc}");
    let (_q, port, log) = querier(d, "q-good", &by_ip, &good_client);
    assert!(querier_sees_healthy_store(port, &log), "{:?}", stores(port));
    let (_q, port, log) = querier(d, "q-name", &by_name, &good_client);
    assert!(querier_sees_healthy_store(port, &log), "{:?}", stores(port));
    let mut skip = good_client.to_vec();
    skip[1] = "--grpc-client-tls-skip-verify".into();
    let (_q, port, log) = querier(d, "q-skip", &by_ip, &skip);
    assert!(querier_sees_healthy_store(port, &log), "{:?}", stores(port));

    // Refused: no TLS, no client certificate, a client certificate of another CA, a server
    // certificate checked against the wrong CA or under the wrong name.
    let refused: Vec<(&str, Vec<String>)> = vec![
        ("q-plain", vec![]),
        ("q-nocert", good_client[..2].to_vec()),
        (
            "q-rogue-client",
            vec![
                good_client[0].clone(),
                good_client[1].clone(),
                format!("--grpc-client-tls-cert={}", pki.path("rogue-client.crt")),
                format!("--grpc-client-tls-key={}", pki.path("rogue-client.key")),
            ],
        ),
        ("q-wrong-ca", {
            let mut v = good_client.to_vec();
            v[1] = format!("--grpc-client-tls-ca={}", pki.path("rogue-ca.crt"));
            v
        }),
        ("q-wrong-name", {
            let mut v = good_client.to_vec();
            v.push("--grpc-client-server-name=other.example".into());
            v
        }),
    ];
    for (name, flags) in refused {
        let (_q, port, log) = querier(d, name, &by_ip, &flags);
        assert!(
            !querier_sees_healthy_store(port, &log),
            "{name}: {:?}",
            stores(port)
        );
    }
}

#[test]
fn basic_auth_without_tls_on_the_querier() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let pki = testkit::certs::make(&d.join("pki")).unwrap();
    let web = web_config(&pki, &[("grafana", "pa55"), ("ops", "other")], false);
    let http = free_port();
    let (_q, log) = gauntlet(
        d,
        "query",
        &[
            "query".into(),
            format!("--endpoint=127.0.0.1:{}", free_port()),
            format!("--http-address=127.0.0.1:{http}"),
            format!("--grpc-address=127.0.0.1:{}", free_port()),
            format!("--http.config={}", web.display()),
        ],
    );
    let basic = |u: &str, p: &str| {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    };
    let get = |auth: Option<String>| {
        let h: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        http_request(http, "GET", b"/api/v1/query?query=1", &h, b"")
    };
    let up = wait_until(
        "querier answers",
        Duration::from_secs(30),
        || matches!(get(Some(basic("grafana", "pa55"))), Ok(r) if r.status == 200),
    );
    assert!(up.is_ok(), "{}", testkit::log_tail(&log));
    let ok = get(Some(basic("ops", "other"))).unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("x-frame-options"), Some("deny"));
    for auth in [
        None,
        Some(basic("grafana", "PA55")),
        Some(basic("ops", "pa55")),
    ] {
        let r = get(auth.clone()).unwrap();
        assert_eq!(r.status, 401, "{auth:?}");
        assert_eq!(r.header("www-authenticate"), Some("Basic"));
    }
}

#[test]
fn sidecar_reaches_prometheus_behind_tls_and_basic_auth() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let pki = testkit::certs::make(&d.join("pki")).unwrap();
    let web = web_config(&pki, &[("sidecar", "sesame")], true);
    let prom_port = free_port();
    let cfg = d.join("prometheus.yml");
    std::fs::write(
        &cfg,
        "global:\n  external_labels:\n    cluster: secure\n    replica: a\n",
    )
    .unwrap();
    let prom_bin =
        testkit::find_binary("prometheus", "install the Debian package `prometheus`").unwrap();
    let _prom = Process::spawn(
        "prometheus",
        Command::new(prom_bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", d.join("prom").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg(format!("--web.config.file={}", web.display()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("prometheus.log")).unwrap()),
    )
    .unwrap();
    let ca = pki.path("ca.crt");
    let prom_url = format!("https://localhost:{prom_port}");
    let prom_ready = wait_until("prometheus ready", Duration::from_secs(60), || {
        matches!(
            https(
                &format!("{prom_url}/-/ready"),
                &ca,
                None,
                Some(("sidecar", "sesame"))
            ),
            Ok((200, _))
        )
    });
    assert!(
        prom_ready.is_ok(),
        "{}",
        testkit::log_tail(&d.join("prometheus.log"))
    );

    let sidecar = |name: &str, password: &str| {
        let client = d.join(format!("{name}-client.yml"));
        std::fs::write(
            &client,
            format!(
                "basic_auth:\n  username: sidecar\n  password_file: {name}-password\ntls_config:\n  ca_file: {ca}\n"
            ),
        )
        .unwrap();
        std::fs::write(d.join(format!("{name}-password")), format!("{password}\n")).unwrap();
        let http = free_port();
        let grpc = free_port();
        let log = d.join(format!("{name}.log"));
        let p = Process::spawn(
            name,
            Command::new(env!("CARGO_BIN_EXE_gauntlet"))
                .current_dir(d)
                .args([
                    "sidecar".to_string(),
                    format!("--prometheus.url={prom_url}"),
                    format!("--prometheus.http-client-file={}", client.display()),
                    format!("--tsdb.path={}", d.join("prom").display()),
                    format!("--http-address=127.0.0.1:{http}"),
                    format!("--grpc-address=127.0.0.1:{grpc}"),
                ])
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap()),
        )
        .unwrap();
        (p, http, grpc, log)
    };
    let (_good, http, grpc, log) = sidecar("good", "sesame");
    let ready = wait_until("sidecar ready", Duration::from_secs(30), || {
        matches!(http_get(http, "/-/ready"), Ok((200, _)))
    });
    assert!(ready.is_ok(), "{}", testkit::log_tail(&log));
    let (_q, qport, qlog) = querier(d, "q", &format!("127.0.0.1:{grpc}"), &[]);
    assert!(
        querier_sees_healthy_store(qport, &qlog),
        "{:?}",
        stores(qport)
    );
    let (_, body) = http_get(qport, "/api/v1/stores").unwrap();
    assert!(body.contains("\"cluster\":\"secure\""), "{body}");

    let (_bad, http, _, log) = sidecar("bad", "not-sesame");
    std::thread::sleep(Duration::from_secs(5));
    assert!(!matches!(http_get(http, "/-/ready"), Ok((200, _))));
    assert!(
        testkit::log_tail(&log).contains("401"),
        "{}",
        testkit::log_tail(&log)
    );
}

/// Runs the binary expecting it to fail at startup; returns its stderr.
fn fails(args: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_security_settings_stop_the_process_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let pki = testkit::certs::make(&d.join("pki")).unwrap();
    let base = |extra: &[String]| {
        let mut v = vec![
            "store".to_string(),
            objstore(d),
            format!("--data-dir={}", d.join("store").display()),
            format!("--http-address=127.0.0.1:{}", free_port()),
            format!("--grpc-address=127.0.0.1:{}", free_port()),
        ];
        v.extend(extra.iter().cloned());
        v
    };
    let e = fails(&base(&[format!(
        "--grpc-server-tls-cert={}",
        pki.path("server.crt")
    )]));
    assert!(e.contains("--grpc-server-tls-key"), "{e}");
    let e = fails(&base(&[
        format!("--grpc-server-tls-cert={}", pki.path("missing.crt")),
        format!("--grpc-server-tls-key={}", pki.path("server.key")),
    ]));
    assert!(e.contains("missing.crt"), "{e}");
    let e = fails(&base(&[
        format!("--grpc-server-tls-cert={}", pki.path("server.crt")),
        format!("--grpc-server-tls-key={}", pki.path("server.key")),
        "--grpc-server-tls-min-version=1.4".into(),
    ]));
    assert!(e.contains("1.4"), "{e}");
    let plain = d.join("plain-password.yml");
    std::fs::write(&plain, "basic_auth_users:\n  admin: hunter2\n").unwrap();
    let e = fails(&base(&[format!("--http.config={}", plain.display())]));
    assert!(e.contains("admin") && e.contains("bcrypt"), "{e}");
    let typo = d.join("typo.yml");
    std::fs::write(&typo, "tls_server_config:\n  cert: a\n").unwrap();
    let e = fails(&base(&[format!("--http.config={}", typo.display())]));
    assert!(e.contains("typo.yml") && e.contains("cert"), "{e}");
    let e = fails(&[
        "query".into(),
        "--endpoint=127.0.0.1:1".into(),
        "--grpc-client-tls-secure".into(),
        format!("--grpc-client-tls-ca={}", pki.path("nope.crt")),
    ]);
    assert!(e.contains("nope.crt"), "{e}");
}
