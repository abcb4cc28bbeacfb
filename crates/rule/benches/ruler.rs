//! Ruler throughput, printed: head + WAL appends (samples/s) and evaluations of 1,000
//! recording rules against an in-process query API (rules/s), with peak RSS.
//! Run: `cargo bench -p rule --bench ruler`.

use std::sync::Arc;
use std::time::Instant;

use rule::file::{GroupSpec, Kind, PartialResponse, RuleSpec};
use rule::group::{Context, Group};
use rule::query::{Querier, QueryResult, Sample};
use tsdb::Labels;

/// Peak resident set size of this process (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Answers every query at once with ten series.
struct Instant10;

#[async_trait::async_trait]
impl Querier for Instant10 {
    async fn query(&self, _: &str, _: i64, _: bool) -> Result<QueryResult, String> {
        Ok(QueryResult {
            samples: (0..10)
                .map(|i| Sample {
                    labels: Labels::from_pairs([
                        ("instance", format!("host-{i}")),
                        ("job", "node".into()),
                    ]),
                    value: i as f64,
                })
                .collect(),
            warnings: Vec::new(),
        })
    }
}

fn wal_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (head, _) = tsdb::head::Head::open(dir.path(), i64::MIN).expect("open head");
    let series: Vec<Labels> = (0..1000)
        .map(|i| Labels::from_pairs([("__name__", "bench:rule".to_string()), ("i", i.to_string())]))
        .collect();
    let mut batch: Vec<(Labels, i64, f64)> = series.iter().map(|l| (l.clone(), 0, 0.0)).collect();
    let rounds = 1000;
    let started = Instant::now();
    for t in 0..rounds {
        for (i, s) in batch.iter_mut().enumerate() {
            s.1 = t * 15_000;
            s.2 = (t as f64) * 0.5 + i as f64;
        }
        head.append(&batch).expect("append");
    }
    let took = started.elapsed().as_secs_f64();
    let n = (rounds as usize * series.len()) as f64;
    let wal_bytes: u64 = std::fs::read_dir(dir.path().join("wal"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    println!(
        "head+WAL append: {n:.0} samples in {took:.2} s = {:.0} samples/s, batches of 1000; WAL {:.1} MiB ({:.2} bytes/sample); peak RSS {:.0} MiB",
        n / took,
        wal_bytes as f64 / 1048576.0,
        wal_bytes as f64 / n,
        peak_rss_mib()
    );
}

fn evaluations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (tsdb, _) = storeapi::local::LocalTsdb::open(
        dir.path(),
        Labels::from_pairs([("replica", "a")]),
        "rule",
    )
    .expect("open tsdb");
    let ctx = Context {
        querier: Arc::new(Instant10),
        tsdb: Arc::new(tsdb),
        notifier: Arc::new(rule::notifier::Notifier::new(
            Labels::empty(),
            Vec::new(),
            bucket::relabel::Relabel::default(),
            Arc::new(Vec::new()),
        )),
        external_labels: Labels::empty(),
        alert_query_url: String::new(),
        alert_query_template: "/graph?g0.expr={{.Expr}}&g0.tab=1".into(),
        resend_delay_ms: 60_000,
        outage_tolerance_ms: 3_600_000,
        for_grace_period_ms: 600_000,
        restore_ignored_labels: Vec::new(),
        default_interval_ms: 15_000,
        default_query_offset_ms: 0,
        dialect: promql::Dialect::default(),
    };
    let spec = GroupSpec {
        file: "bench.yml".into(),
        name: "bench".into(),
        interval_ms: Some(15_000),
        query_offset_ms: None,
        limit: 0,
        partial_response: PartialResponse::Abort,
        rules: (0..1000)
            .map(|i| RuleSpec {
                kind: Kind::Record,
                name: format!("bench:rule_{i}"),
                expr: format!("sum by (instance) (rate(x_{i}[5m]))"),
                for_ms: 0,
                keep_firing_for_ms: 0,
                labels: Default::default(),
                annotations: Default::default(),
            })
            .collect(),
    };
    let group = Group::new(spec, &ctx);
    let evals = 50;
    let started = Instant::now();
    rt.block_on(async {
        for t in 0..evals {
            group.eval(&ctx, 1_000_000 + t * 15_000).await;
        }
    });
    let took = started.elapsed().as_secs_f64();
    let rules = (evals * 1000) as f64;
    println!(
        "evaluation: {evals} rounds of 1000 recording rules (10 series each) in {took:.2} s = {:.0} rule evaluations/s, {:.0} samples/s written; peak RSS {:.0} MiB",
        rules / took,
        rules * 10.0 / took,
        peak_rss_mib()
    );
}

fn main() {
    // `cargo test --benches` runs this with --bench absent; keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    wal_appends();
    evaluations();
}
