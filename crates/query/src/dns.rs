//! DNS service discovery as Thanos does it: `dns+host:port` (A and AAAA records),
//! `dnssrv+name` (SRV records, each target resolved to its addresses, the SRV port unless the
//! spec gives one) and `dnssrvnoa+name` (SRV targets used by name); any other address is
//! used as it is. A small stub resolver: UDP with TCP fallback for truncated answers, the
//! name servers, search list and `ndots` of `/etc/resolv.conf`, names in `/etc/hosts` first.
//! `GAUNTLET_DNS_SERVER=host:port` sends every query to that server instead.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;
const TYPE_SRV: u16 = 33;
const TYPE_OPT: u16 = 41;
const RCODE_NXDOMAIN: u8 = 3;

/// The kind of lookup a spec asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    None,
    Ip,
    Srv,
    SrvNoA,
}

/// Splits a spec into its lookup kind and the rest (`dns+a:1` → (`Ip`, `a:1`)).
pub fn parse_spec(spec: &str) -> (Lookup, &str) {
    for (prefix, kind) in [
        ("dnssrvnoa+", Lookup::SrvNoA),
        ("dnssrv+", Lookup::Srv),
        ("dnsdualstack+", Lookup::Ip),
        ("dns+", Lookup::Ip),
    ] {
        if let Some(rest) = spec.strip_prefix(prefix) {
            return (kind, rest);
        }
    }
    (Lookup::None, spec)
}

/// Splits `host:port` (also `[v6]:port`); the port is optional.
fn split_host_port(s: &str) -> (&str, Option<&str>) {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some((host, after)) = rest.split_once(']') {
            return (host, after.strip_prefix(':'));
        }
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (s, None),
    }
}

/// Checks an endpoint address before it is used: `host:port`, or a DNS spec that resolves
/// to such addresses.
pub fn check_spec(spec: &str) -> Result<(), String> {
    let (kind, rest) = parse_spec(spec);
    if rest.contains("://") && kind == Lookup::None {
        return Ok(());
    }
    let (host, port) = split_host_port(rest);
    if host.is_empty() {
        return Err(format!("no host in address {spec:?}"));
    }
    match (kind, port) {
        (Lookup::Srv | Lookup::SrvNoA, None) => Ok(()),
        (_, Some(p)) if p.parse::<u16>().is_ok() => Ok(()),
        (_, Some(p)) => Err(format!("bad port {p:?} in address {spec:?}")),
        (_, None) => Err(format!("missing port in address {spec:?}: want host:port")),
    }
}

fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[derive(Clone, Debug)]
pub struct Resolver {
    servers: Vec<SocketAddr>,
    search: Vec<String>,
    ndots: usize,
    timeout: Duration,
    attempts: usize,
    hosts: Vec<(String, IpAddr)>,
}

/// A failed lookup (the server could not be asked or answered with an error); a name that
/// does not exist is not a failure but an empty answer, as in Thanos.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsError(pub String);

impl std::fmt::Display for DnsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Resolver {
    /// The system's configuration (`/etc/resolv.conf`, `/etc/hosts`), or the server in
    /// `GAUNTLET_DNS_SERVER`.
    pub fn from_system() -> Resolver {
        let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let mut r = Resolver::from_resolv_conf(&conf);
        r.hosts = parse_hosts(&std::fs::read_to_string("/etc/hosts").unwrap_or_default());
        if let Ok(server) = std::env::var("GAUNTLET_DNS_SERVER") {
            match server.parse::<SocketAddr>() {
                Ok(sa) => r.servers = vec![sa],
                Err(_) => {
                    tracing::error!(value = %server, "GAUNTLET_DNS_SERVER is not ip:port; ignored")
                }
            }
        }
        r
    }

    /// A resolver asking only `server`, without search list or hosts file.
    pub fn with_server(server: SocketAddr) -> Resolver {
        Resolver {
            servers: vec![server],
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(2),
            attempts: 2,
            hosts: Vec::new(),
        }
    }

    fn from_resolv_conf(text: &str) -> Resolver {
        let mut r = Resolver {
            servers: Vec::new(),
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
            hosts: Vec::new(),
        };
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    if let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) {
                        r.servers.push(SocketAddr::new(ip, 53));
                    }
                }
                Some("search") | Some("domain") => {
                    r.search = words.map(|w| w.trim_end_matches('.').to_string()).collect();
                }
                Some("options") => {
                    for o in words {
                        if let Some(n) = o.strip_prefix("ndots:").and_then(|n| n.parse().ok()) {
                            r.ndots = n;
                        } else if let Some(n) =
                            o.strip_prefix("timeout:").and_then(|n| n.parse().ok())
                        {
                            r.timeout = Duration::from_secs(n);
                        } else if let Some(n) =
                            o.strip_prefix("attempts:").and_then(|n| n.parse().ok())
                        {
                            r.attempts = n;
                        }
                    }
                }
                _ => {}
            }
        }
        if r.servers.is_empty() {
            r.servers = vec![SocketAddr::from(([127, 0, 0, 1], 53))];
        }
        r
    }

    /// The names to try for `name`, in order, as the search list and `ndots` say.
    fn candidates(&self, name: &str) -> Vec<String> {
        if let Some(abs) = name.strip_suffix('.') {
            return vec![abs.to_string()];
        }
        let searched = self.search.iter().map(|d| format!("{name}.{d}"));
        if name.matches('.').count() >= self.ndots {
            std::iter::once(name.to_string()).chain(searched).collect()
        } else {
            searched.chain(std::iter::once(name.to_string())).collect()
        }
    }

    /// Records of `qtype` for `name`: the first candidate name that has any wins.
    async fn lookup(&self, name: &str, qtype: u16) -> Result<Vec<Record>, DnsError> {
        let mut last_err = None;
        for candidate in self.candidates(name) {
            match self.query(&candidate, qtype).await {
                Ok(Answer::Records(r)) if r.iter().any(|r| r.rtype() == qtype) => return Ok(r),
                Ok(_) => {}
                Err(e) => last_err = Some(e),
            }
        }
        match last_err {
            Some(e) => Err(e),
            None => Ok(Vec::new()),
        }
    }

    /// The addresses of `host`: a literal, `/etc/hosts`, then A and AAAA records.
    pub async fn lookup_ip(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let bare = host.trim_end_matches('.');
        let from_hosts: Vec<IpAddr> = self
            .hosts
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(bare))
            .map(|(_, ip)| *ip)
            .collect();
        if !from_hosts.is_empty() {
            return Ok(from_hosts);
        }
        let (v4, v6) = tokio::join!(self.lookup(host, TYPE_A), self.lookup(host, TYPE_AAAA));
        let mut out = Vec::new();
        let mut err = None;
        for r in [v4, v6] {
            match r {
                Ok(records) => out.extend(records.iter().filter_map(|r| match r {
                    Record::Ip(ip) => Some(*ip),
                    _ => None,
                })),
                Err(e) => err = Some(e),
            }
        }
        match (out.is_empty(), err) {
            (true, Some(e)) => Err(e),
            _ => Ok(out),
        }
    }

    /// The SRV records of `name`: (target, port).
    pub async fn lookup_srv(&self, name: &str) -> Result<Vec<(String, u16)>, DnsError> {
        Ok(self
            .lookup(name, TYPE_SRV)
            .await?
            .into_iter()
            .filter_map(|r| match r {
                Record::Srv { target, port } => Some((target, port)),
                _ => None,
            })
            .collect())
    }

    /// The addresses a spec stands for (itself when it has no DNS prefix).
    pub async fn resolve(&self, spec: &str) -> Result<Vec<String>, DnsError> {
        let (kind, rest) = parse_spec(spec);
        let (host, port) = split_host_port(rest);
        match kind {
            Lookup::None => Ok(vec![spec.to_string()]),
            Lookup::Ip => {
                let port = port.ok_or_else(|| {
                    DnsError(format!(
                        "missing port in address given for dns lookup: {rest}"
                    ))
                })?;
                let ips = self.lookup_ip(host).await?;
                if ips.is_empty() {
                    tracing::warn!(host, "DNS lookup found no addresses");
                }
                Ok(ips
                    .iter()
                    .map(|ip| join_host_port(&ip.to_string(), port))
                    .collect())
            }
            Lookup::Srv | Lookup::SrvNoA => {
                let records = self.lookup_srv(host).await?;
                if records.is_empty() {
                    tracing::warn!(name = host, "DNS lookup found no SRV records");
                }
                let mut out = Vec::new();
                for (target, srv_port) in records {
                    let port = port
                        .map(str::to_string)
                        .unwrap_or_else(|| srv_port.to_string());
                    if kind == Lookup::SrvNoA {
                        out.push(join_host_port(target.trim_end_matches('.'), &port));
                        continue;
                    }
                    for ip in self
                        .lookup_ip(&format!("{}.", target.trim_end_matches('.')))
                        .await?
                    {
                        out.push(join_host_port(&ip.to_string(), &port));
                    }
                }
                Ok(out)
            }
        }
    }

    /// One question to the name servers in turn, `attempts` rounds.
    async fn query(&self, name: &str, qtype: u16) -> Result<Answer, DnsError> {
        let id: u16 = rand_id();
        let msg = encode_query(id, name, qtype).map_err(DnsError)?;
        let mut last = DnsError(format!("no name server to ask for {name}"));
        for _ in 0..self.attempts.max(1) {
            for server in &self.servers {
                match self.exchange(*server, id, &msg).await {
                    Ok(a) => return Ok(a),
                    Err(e) => last = DnsError(format!("lookup {name} on {server}: {e}")),
                }
            }
        }
        Err(last)
    }

    async fn exchange(&self, server: SocketAddr, id: u16, msg: &[u8]) -> Result<Answer, String> {
        let bind: SocketAddr = if server.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let sock = tokio::net::UdpSocket::bind(bind)
            .await
            .map_err(|e| e.to_string())?;
        sock.connect(server).await.map_err(|e| e.to_string())?;
        sock.send(msg).await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 4096];
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf))
                .await
                .map_err(|_| "timed out".to_string())?
                .map_err(|e| e.to_string())?;
            let resp = &buf[..n];
            if resp.len() < 12 || u16::from_be_bytes([resp[0], resp[1]]) != id {
                continue; // a stray or late answer
            }
            if resp[2] & 0x02 != 0 {
                return self.exchange_tcp(server, id, msg).await;
            }
            return decode_answer(resp);
        }
    }

    async fn exchange_tcp(
        &self,
        server: SocketAddr,
        id: u16,
        msg: &[u8],
    ) -> Result<Answer, String> {
        let work = async {
            let mut s = tokio::net::TcpStream::connect(server)
                .await
                .map_err(|e| e.to_string())?;
            let mut framed = Vec::with_capacity(msg.len() + 2);
            framed.extend_from_slice(&(msg.len() as u16).to_be_bytes());
            framed.extend_from_slice(msg);
            s.write_all(&framed).await.map_err(|e| e.to_string())?;
            let len = s.read_u16().await.map_err(|e| e.to_string())? as usize;
            let mut resp = vec![0u8; len];
            s.read_exact(&mut resp).await.map_err(|e| e.to_string())?;
            if resp.len() < 12 || u16::from_be_bytes([resp[0], resp[1]]) != id {
                return Err("answer over TCP does not match the question".to_string());
            }
            decode_answer(&resp)
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| "timed out over TCP".to_string())?
    }
}

fn rand_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() as u16
}

fn parse_hosts(text: &str) -> Vec<(String, IpAddr)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) else {
            continue;
        };
        out.extend(words.map(|n| (n.to_string(), ip)));
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Ip(IpAddr),
    Srv { target: String, port: u16 },
    Other(u16),
}

impl Record {
    fn rtype(&self) -> u16 {
        match self {
            Record::Ip(IpAddr::V4(_)) => TYPE_A,
            Record::Ip(IpAddr::V6(_)) => TYPE_AAAA,
            Record::Srv { .. } => TYPE_SRV,
            Record::Other(t) => *t,
        }
    }
}

#[derive(Debug)]
enum Answer {
    /// The name does not exist.
    NoSuchName,
    /// The answer section's records (CNAMEs and all).
    Records(Vec<Record>),
}

/// Appends `name` in wire form (labels; no compression).
pub fn encode_name(out: &mut Vec<u8>, name: &str) -> Result<(), String> {
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        if label.len() > 63 {
            return Err(format!("DNS label too long in {name:?}"));
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    if out.len() > 512 {
        return Err(format!("DNS name too long: {name:?}"));
    }
    Ok(())
}

/// A recursive query for `name`/`qtype`, with an EDNS0 record offering 4 KiB answers.
fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, String> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]);
    encode_name(&mut m, name)?;
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    // OPT: root name, type, UDP payload size, extended rcode/version/flags, no data.
    m.push(0);
    m.extend_from_slice(&TYPE_OPT.to_be_bytes());
    m.extend_from_slice(&4096u16.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    Ok(m)
}

/// Reads a (possibly compressed) name at `pos`; returns it and the position after it.
pub fn decode_name(msg: &[u8], mut pos: usize) -> Result<(String, usize), String> {
    let mut name = String::new();
    let mut end = None;
    for _ in 0..128 {
        let len = *msg.get(pos).ok_or("name runs past the message")? as usize;
        match len {
            0 => {
                return Ok((name, end.unwrap_or(pos + 1)));
            }
            l if l & 0xC0 == 0xC0 => {
                let lo = *msg.get(pos + 1).ok_or("pointer runs past the message")? as usize;
                end.get_or_insert(pos + 2);
                pos = ((l & 0x3F) << 8) | lo;
            }
            l if l < 64 => {
                let label = msg
                    .get(pos + 1..pos + 1 + l)
                    .ok_or("label runs past the message")?;
                if !name.is_empty() {
                    name.push('.');
                }
                name.push_str(&String::from_utf8_lossy(label));
                pos += 1 + l;
            }
            _ => return Err("bad label type".into()),
        }
    }
    Err("name has too many labels or a pointer loop".into())
}

fn decode_answer(msg: &[u8]) -> Result<Answer, String> {
    let u16_at = |p: usize| -> Result<u16, String> {
        msg.get(p..p + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "answer cut short".to_string())
    };
    if msg.len() < 12 {
        return Err("answer shorter than a header".into());
    }
    let rcode = msg[3] & 0x0F;
    if rcode == RCODE_NXDOMAIN {
        return Ok(Answer::NoSuchName);
    }
    if rcode != 0 {
        let what = match rcode {
            1 => "format error",
            2 => "server failure",
            4 => "not implemented",
            5 => "refused",
            _ => "error",
        };
        return Err(format!("server answered {what} (rcode {rcode})"));
    }
    let (qd, an) = (u16_at(4)?, u16_at(6)?);
    let mut pos = 12;
    for _ in 0..qd {
        pos = decode_name(msg, pos)?.1 + 4;
    }
    let mut records = Vec::with_capacity(an as usize);
    for _ in 0..an {
        let (_, p) = decode_name(msg, pos)?;
        let rtype = u16_at(p)?;
        let rdlen = u16_at(p + 8)? as usize;
        let rdata_at = p + 10;
        let rdata = msg
            .get(rdata_at..rdata_at + rdlen)
            .ok_or("record data cut short")?;
        records.push(match (rtype, rdlen) {
            (TYPE_A, 4) => Record::Ip(IpAddr::from([rdata[0], rdata[1], rdata[2], rdata[3]])),
            (TYPE_AAAA, 16) => {
                let mut b = [0u8; 16];
                b.copy_from_slice(rdata);
                Record::Ip(IpAddr::from(b))
            }
            (TYPE_SRV, n) if n >= 7 => Record::Srv {
                port: u16_at(rdata_at + 4)?,
                target: decode_name(msg, rdata_at + 6)?.0,
            },
            (TYPE_CNAME, _) => Record::Other(TYPE_CNAME),
            (t, _) => Record::Other(t),
        });
        pos = rdata_at + rdlen;
    }
    Ok(Answer::Records(records))
}

/// The querier's lookup and failure counters, under Thanos's names (exported from the
/// start, at zero).
pub fn lookup_counters() -> (telemetry::Counter, telemetry::Counter) {
    (
        telemetry::counter(
            "thanos_query_store_apis_dns_lookups_total",
            "The number of DNS lookups resolutions attempts",
            &[],
        ),
        telemetry::counter(
            "thanos_query_store_apis_dns_failures_total",
            "The number of DNS lookup failures",
            &[],
        ),
    )
}

fn count_lookup(failed: bool) {
    let (lookups, failures) = lookup_counters();
    lookups.inc();
    if failed {
        failures.inc();
    }
}

/// Resolves specs, keeping the last good addresses of a spec whose lookup fails (as Thanos
/// does), so one DNS hiccup does not drop endpoints.
#[derive(Default)]
pub struct Provider {
    resolved: std::collections::BTreeMap<String, Vec<String>>,
}

impl Provider {
    /// The addresses of all `specs`; errors are returned for logging, the addresses stay.
    pub async fn resolve(
        &mut self,
        resolver: &Resolver,
        specs: &[String],
    ) -> (Vec<String>, Vec<String>) {
        let mut errors = Vec::new();
        let mut next = std::collections::BTreeMap::new();
        for spec in specs {
            if parse_spec(spec).0 == Lookup::None {
                next.insert(spec.clone(), vec![spec.clone()]);
                continue;
            }
            let r = resolver.resolve(spec).await;
            count_lookup(r.is_err());
            match r {
                Ok(addrs) => {
                    next.insert(spec.clone(), addrs);
                }
                Err(e) => {
                    errors.push(format!("{spec}: {e}"));
                    if let Some(old) = self.resolved.get(spec) {
                        next.insert(spec.clone(), old.clone());
                    }
                }
            }
        }
        for (spec, addrs) in &next {
            telemetry::gauge(
                "thanos_query_store_apis_dns_provider_results",
                "The number of resolved endpoints for each configured address",
                &[("addr", spec)],
            )
            .set(addrs.len() as f64);
        }
        self.resolved = next;
        let mut all: Vec<String> = self.resolved.values().flatten().cloned().collect();
        let mut seen = std::collections::HashSet::new();
        all.retain(|a| seen.insert(a.clone()));
        (all, errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_as_thanos_writes_them() {
        assert_eq!(parse_spec("dns+store:10901"), (Lookup::Ip, "store:10901"));
        assert_eq!(
            parse_spec("dnssrv+_grpc._tcp.s"),
            (Lookup::Srv, "_grpc._tcp.s")
        );
        assert_eq!(
            parse_spec("dnssrvnoa+_grpc._tcp.s"),
            (Lookup::SrvNoA, "_grpc._tcp.s")
        );
        assert_eq!(
            parse_spec("10.0.0.1:10901"),
            (Lookup::None, "10.0.0.1:10901")
        );
        assert_eq!(split_host_port("[::1]:80"), ("::1", Some("80")));
        assert_eq!(split_host_port("a.b"), ("a.b", None));
        assert_eq!(join_host_port("::1", "80"), "[::1]:80");
        assert!(check_spec("dns+store:10901").is_ok());
        assert!(check_spec("dnssrv+_grpc._tcp.store").is_ok());
        assert!(check_spec("dns+store").is_err());
        assert!(check_spec("store:x").is_err());
        assert!(check_spec("10.0.0.1:10901").is_ok());
    }

    #[test]
    fn resolv_conf_search_and_ndots() {
        let r = Resolver::from_resolv_conf(
            "nameserver 10.96.0.10\nsearch monitoring.svc.cluster.local svc.cluster.local\noptions ndots:5 timeout:1\n",
        );
        assert_eq!(r.servers, [SocketAddr::from(([10, 96, 0, 10], 53))]);
        assert_eq!(r.ndots, 5);
        assert_eq!(
            r.candidates("thanos-store"),
            [
                "thanos-store.monitoring.svc.cluster.local",
                "thanos-store.svc.cluster.local",
                "thanos-store"
            ]
        );
        assert_eq!(
            r.candidates("a.b.c.d.e.f"),
            [
                "a.b.c.d.e.f",
                "a.b.c.d.e.f.monitoring.svc.cluster.local",
                "a.b.c.d.e.f.svc.cluster.local"
            ]
        );
        assert_eq!(r.candidates("abs.name."), ["abs.name"]);
        assert_eq!(
            parse_hosts("127.0.0.1 localhost me # x\n::1 localhost\n").len(),
            3
        );
    }

    #[test]
    fn names_and_answers_decode_and_bad_bytes_fail() {
        let q = encode_query(7, "_grpc._tcp.store", TYPE_SRV).unwrap();
        assert_eq!(decode_name(&q, 12).unwrap().0, "_grpc._tcp.store");
        // A pointer loop and a cut message are errors, not hangs or panics.
        assert!(decode_name(&[0xC0, 0x00], 0).is_err());
        assert!(decode_name(&[5, b'a'], 0).is_err());
        let mut truncated = q.clone();
        truncated[7] = 3; // claims three answers it does not hold
        assert!(decode_answer(&truncated).is_err());
        assert!(encode_query(1, &"x".repeat(64), TYPE_A).is_err());
    }
}
