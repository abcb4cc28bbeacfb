//! DNS discovery of endpoints, as Thanos does it, against a DNS server the test runs on
//! loopback (`GAUNTLET_DNS_SERVER`): `dns+` (A records), `dnssrv+` (SRV, then A) and
//! `dnssrvnoa+` (SRV targets by name) addresses in `--endpoint`, the endpoint config and SD
//! files (with a glob); records that change are picked up on the next
//! `--store.sd-dns-interval`; a failing DNS server keeps the last addresses and is counted.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use testkit::{free_port, http_get, wait_until, Process};

/// What the test DNS server answers: A records and SRV records (target, port) by name;
/// `fail` answers every question with SERVFAIL.
#[derive(Default)]
struct Zone {
    a: BTreeMap<String, Vec<Ipv4Addr>>,
    srv: BTreeMap<String, Vec<(String, u16)>>,
    fail: bool,
}

/// Serves `zone` over UDP on a free loopback port until the test ends.
fn dns_server(zone: Arc<Mutex<Zone>>) -> u16 {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            if let Some(answer) = answer(&buf[..n], &zone.lock().unwrap()) {
                let _ = sock.send_to(&answer, from);
            }
        }
    });
    port
}

fn answer(q: &[u8], zone: &Zone) -> Option<Vec<u8>> {
    let (name, end) = query::dns::decode_name(q, 12).ok()?;
    let qtype = u16::from_be_bytes([*q.get(end)?, *q.get(end + 1)?]);
    let question = &q[12..end + 4];
    let key = name.to_ascii_lowercase();
    let mut answers: Vec<(u16, Vec<u8>)> = Vec::new();
    match qtype {
        1 => {
            for ip in zone.a.get(&key).into_iter().flatten() {
                answers.push((1, ip.octets().to_vec()));
            }
        }
        33 => {
            for (target, port) in zone.srv.get(&key).into_iter().flatten() {
                let mut rdata = vec![0, 10, 0, 5];
                rdata.extend_from_slice(&port.to_be_bytes());
                query::dns::encode_name(&mut rdata, target).ok()?;
                answers.push((33, rdata));
            }
        }
        _ => {}
    }
    let known = zone.a.contains_key(&key) || zone.srv.contains_key(&key);
    let rcode = if zone.fail {
        2
    } else if known {
        0
    } else {
        3
    };
    let mut m = Vec::new();
    m.extend_from_slice(&q[..2]);
    m.extend_from_slice(&[0x81, 0x80 | rcode, 0, 1]);
    m.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    m.extend_from_slice(question);
    for (rtype, rdata) in answers {
        m.extend_from_slice(&[0xC0, 0x0C]);
        m.extend_from_slice(&rtype.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0, 5]);
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(&rdata);
    }
    Some(m)
}

/// A store gateway over an empty bucket on `ip:port`.
fn store(dir: &Path, name: &str, ip: &str, port: u16) -> Process {
    let bucket = dir.join(format!("{name}-bucket"));
    std::fs::create_dir_all(&bucket).unwrap();
    Process::spawn(
        name,
        Command::new(env!("CARGO_BIN_EXE_gauntlet"))
            .args([
                "store".to_string(),
                format!(
                    "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
                    bucket.display()
                ),
                format!("--data-dir={}", dir.join(name).display()),
                format!("--http-address=127.0.0.1:{}", free_port()),
                format!("--grpc-address={ip}:{port}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .unwrap()
}

/// Healthy endpoint names the querier lists.
fn healthy(port: u16) -> Vec<String> {
    let Ok((200, body)) = http_get(port, "/api/v1/stores") else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut out = Vec::new();
    for list in v["data"].as_object().into_iter().flat_map(|m| m.values()) {
        for s in list.as_array().into_iter().flatten() {
            if s["lastError"].is_null() && s["lastCheck"].is_string() {
                out.push(s["name"].as_str().unwrap_or("").to_string());
            }
        }
    }
    out.sort();
    out
}

fn metric(port: u16, name: &str) -> f64 {
    let (_, body) = http_get(port, "/metrics").unwrap();
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

fn expect(port: u16, want: &[String], what: &str, log: &Path) {
    let mut want = want.to_vec();
    want.sort();
    let r = wait_until(what, Duration::from_secs(30), || healthy(port) == want);
    assert!(
        r.is_ok(),
        "{what}: want {want:?}, have {:?}\n{}",
        healthy(port),
        testkit::log_tail(log)
    );
}

#[test]
fn dns_srv_and_sd_file_endpoints_follow_the_records() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Three stores on one port, told apart by loopback address, and two on their own ports.
    let shared = free_port();
    let (p1, p2) = (free_port(), free_port());
    let _s = [
        store(d, "a1", "127.0.0.1", shared),
        store(d, "a2", "127.0.0.2", shared),
        store(d, "a3", "127.0.0.3", shared),
        store(d, "srv1", "127.0.0.1", p1),
        store(d, "srv2", "127.0.0.1", p2),
    ];
    let zone = Arc::new(Mutex::new(Zone::default()));
    {
        let mut z = zone.lock().unwrap();
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        z.a.insert("stores.test".into(), vec![ip("127.0.0.1"), ip("127.0.0.2")]);
        z.a.insert("one.test".into(), vec![ip("127.0.0.1")]);
        z.srv.insert(
            "_grpc._tcp.gateways.test".into(),
            vec![("one.test".into(), p1)],
        );
        z.srv.insert(
            "_grpc._tcp.byname.test".into(),
            vec![("localhost.".into(), p2)],
        );
    }
    let dns_port = dns_server(zone.clone());
    let sd_dir = d.join("sd");
    std::fs::create_dir_all(&sd_dir).unwrap();
    std::fs::write(
        sd_dir.join("byname.yml"),
        "- targets: ['dnssrvnoa+_grpc._tcp.byname.test']\n",
    )
    .unwrap();
    let http = free_port();
    let log = d.join("query.log");
    let _q = Process::spawn(
        "query",
        Command::new(env!("CARGO_BIN_EXE_gauntlet"))
            .env("GAUNTLET_DNS_SERVER", format!("127.0.0.1:{dns_port}"))
            .args([
                "query".to_string(),
                format!("--endpoint=dns+stores.test:{shared}"),
                "--endpoint.sd-config=endpoints:\n  - address: dnssrv+_grpc._tcp.gateways.test\n"
                    .to_string(),
                format!("--store.sd-files={}/*.yml", sd_dir.display()),
                "--store.sd-dns-interval=1s".into(),
                "--endpoint.info-interval=1s".into(),
                format!("--http-address=127.0.0.1:{http}"),
                format!("--grpc-address=127.0.0.1:{}", free_port()),
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap()),
    )
    .unwrap();
    let mut want = vec![
        format!("127.0.0.1:{shared}"),
        format!("127.0.0.2:{shared}"),
        format!("127.0.0.1:{p1}"),
        format!("localhost:{p2}"),
    ];
    expect(http, &want, "every kind of DNS address resolved", &log);

    // A new A record joins on the next resolution; a removed SRV target leaves.
    zone.lock()
        .unwrap()
        .a
        .get_mut("stores.test")
        .unwrap()
        .push("127.0.0.3".parse().unwrap());
    want.push(format!("127.0.0.3:{shared}"));
    expect(http, &want, "added A record", &log);
    zone.lock()
        .unwrap()
        .srv
        .insert("_grpc._tcp.gateways.test".into(), vec![]);
    want.retain(|w| w != &format!("127.0.0.1:{p1}"));
    expect(http, &want, "removed SRV record", &log);

    // The DNS server fails: the endpoints stay, and the failures are counted.
    let failures = metric(http, "thanos_query_store_apis_dns_failures_total");
    zone.lock().unwrap().fail = true;
    let counted = wait_until("DNS failures counted", Duration::from_secs(15), || {
        metric(http, "thanos_query_store_apis_dns_failures_total") > failures
    });
    assert!(counted.is_ok(), "{}", testkit::log_tail(&log));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(healthy(http), {
        let mut w = want.clone();
        w.sort();
        w
    });
    assert!(metric(http, "thanos_query_store_apis_dns_lookups_total") > 3.0);
    assert!(testkit::log_tail(&log).contains("server failure"));

    // A new SD file (matching the glob) adds endpoints without a restart.
    zone.lock().unwrap().fail = false;
    std::fs::write(
        sd_dir.join("more.yml"),
        format!("- targets: ['127.0.0.1:{p1}']\n"),
    )
    .unwrap();
    want.push(format!("127.0.0.1:{p1}"));
    expect(http, &want, "endpoint from a new SD file", &log);
}
