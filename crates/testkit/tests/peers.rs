//! The peers themselves: promtool writes blocks, Prometheus serves them, Garage answers its
//! CLI. Fails (never skips) when a binary is missing.

use testkit::garage::Garage;
use testkit::prometheus::{create_blocks_from_openmetrics, tsdb_dump, Prometheus};

#[test]
fn promtool_blocks_served_by_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let om = dir.path().join("data.om");
    // Two series over 3h: promtool cuts 2h blocks, so two blocks.
    let mut text = String::from("# TYPE up gauge\n");
    for job in ["a", "b"] {
        for i in 0..=(3 * 60) {
            text.push_str(&format!(
                "up{{job=\"{job}\"}} {i} {}\n",
                1_700_000_000 + i * 60
            ));
        }
    }
    text.push_str("# EOF\n");
    std::fs::write(&om, text).unwrap();
    let data = dir.path().join("data");
    let blocks = create_blocks_from_openmetrics(&om, &data).unwrap();
    assert_eq!(blocks.len(), 2, "{blocks:?}");

    let dump = tsdb_dump(&data).unwrap();
    assert_eq!(
        dump.lines().count(),
        2 * 181,
        "{}",
        &dump[..dump.len().min(500)]
    );
    assert!(
        dump.contains("{__name__=\"up\", job=\"b\"} 180 1700010800000"),
        "{}",
        &dump[..200]
    );

    let prom = Prometheus::start(
        dir.path(),
        &data,
        |_| "global:\n  scrape_interval: 1m\n".to_string(),
        &[],
    )
    .unwrap();
    let body = prom
        .get("/api/v1/query?query=sum(up)&time=1700005400")
        .unwrap();
    // 1700005400 is minute 90: 90 + 90.
    assert!(body.contains("\"180\""), "{body}");
    assert!(prom.url().starts_with("http://127.0.0.1:"));
}

#[test]
fn garage_answers_its_cli() {
    let g = Garage::start("probe").unwrap();
    let info = g.cli(&["bucket", "info", "probe"]).unwrap();
    assert!(info.contains("probe"), "{info}");
    assert!(g
        .objstore_yaml()
        .contains(&format!("endpoint: 127.0.0.1:{}", g.s3_port)));
    assert_eq!(g.endpoint(), format!("http://127.0.0.1:{}", g.s3_port));
    assert_eq!(g.key_id.len(), 26, "{}", g.key_id);
}
