//! Alerts to Alertmanager, as Thanos's ruler sends them: external labels added, the
//! `--alert.label-drop` labels removed, relabelled, queued (10,000 at most, the oldest
//! dropped), and posted in batches of 100 to every Alertmanager's v2 API; a batch counts
//! as sent when at least one Alertmanager accepts it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use tsdb::Labels;

use crate::targets::TargetGroup;

const QUEUE_CAPACITY: usize = 10_000;
const MAX_BATCH: usize = 100;

/// An alert as Alertmanager's v2 API takes it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Notification {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt")]
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

pub struct Notifier {
    external: Labels,
    drop_labels: Vec<String>,
    relabel: bucket::relabel::Relabel,
    pub alertmanagers: Arc<Vec<TargetGroup>>,
    queue: Mutex<VecDeque<Notification>>,
    wake: tokio::sync::Notify,
}

fn counter(name: &str, help: &str) -> telemetry::Counter {
    telemetry::counter(name, help, &[])
}

impl Notifier {
    pub fn new(
        external: Labels,
        drop_labels: Vec<String>,
        relabel: bucket::relabel::Relabel,
        alertmanagers: Arc<Vec<TargetGroup>>,
    ) -> Self {
        counter(
            "thanos_alert_queue_alerts_dropped_total",
            "Total number of alerts that were dropped from the queue.",
        );
        counter(
            "thanos_alert_sender_alerts_dropped_total",
            "Total number of alerts dropped in case of all sends to Alertmanagers failed.",
        );
        Notifier {
            external,
            drop_labels,
            relabel,
            alertmanagers,
            queue: Mutex::new(VecDeque::new()),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// The labels an alert is sent with: its own, the external labels over them, the
    /// dropped labels removed, then relabelled (`None` when relabelling drops it).
    pub fn labels_for(&self, alert: &Labels) -> Option<Labels> {
        let mut pairs: BTreeMap<String, String> = alert
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        for l in self.external.iter() {
            pairs.insert(l.name.clone(), l.value.clone());
        }
        for d in &self.drop_labels {
            pairs.remove(d);
        }
        if !self.relabel.process(&mut pairs) {
            return None;
        }
        Some(Labels::from_pairs(pairs))
    }

    /// Queues alerts for sending; the oldest go when the queue is full.
    pub fn push(&self, alerts: Vec<Notification>) {
        if alerts.is_empty() {
            return;
        }
        counter(
            "thanos_alert_queue_alerts_pushed_total",
            "Total number of alerts pushed to the queue.",
        )
        .add(alerts.len() as f64);
        if let Ok(mut q) = self.queue.lock() {
            q.extend(alerts);
            let over = q.len().saturating_sub(QUEUE_CAPACITY);
            if over > 0 {
                q.drain(..over);
                counter(
                    "thanos_alert_queue_alerts_dropped_total",
                    "Total number of alerts that were dropped from the queue.",
                )
                .add(over as f64);
            }
        }
        self.wake.notify_one();
    }

    fn pop_batch(&self) -> Vec<Notification> {
        match self.queue.lock() {
            Ok(mut q) => {
                let n = q.len().min(MAX_BATCH);
                q.drain(..n).collect()
            }
            Err(_) => Vec::new(),
        }
    }

    /// Sends queued alerts until `stop` resolves.
    pub async fn run(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let batch = self.pop_batch();
            if batch.is_empty() {
                tokio::select! {
                    _ = self.wake.notified() => continue,
                    _ = &mut stop => return,
                }
            }
            self.send(&batch).await;
        }
    }

    /// Posts one batch to every Alertmanager; true when one accepted it.
    pub async fn send(&self, batch: &[Notification]) -> bool {
        let body = match serde_json::to_vec(batch) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(err = %e, "encoding alerts");
                return false;
            }
        };
        let mut sends = Vec::new();
        for g in self.alertmanagers.iter() {
            for base in g.urls() {
                let url = format!("{base}/api/v2/alerts");
                let req = g
                    .client
                    .post(url.clone())
                    .header("Content-Type", "application/json")
                    .body(body.clone());
                sends.push(async move {
                    let started = Instant::now();
                    let r = match req.send().await {
                        Ok(resp) if resp.status().is_success() => Ok(()),
                        Ok(resp) => {
                            let status = resp.status();
                            let text = resp.text().await.unwrap_or_default();
                            Err(format!("HTTP {status}: {}", text.trim()))
                        }
                        Err(e) => Err(e.to_string()),
                    };
                    (base, url, started.elapsed(), r)
                });
            }
        }
        if sends.is_empty() {
            tracing::warn!(
                alerts = batch.len(),
                "no Alertmanager configured or discovered; alerts dropped"
            );
        }
        let mut ok = false;
        for (base, url, took, r) in futures::future::join_all(sends).await {
            let host = base
                .split_once("://")
                .map_or(base.as_str(), |(_, h)| h)
                .to_string();
            telemetry::histogram(
                "thanos_alert_sender_latency_seconds",
                "Latency for sending alert notifications (not including dropped notifications).",
                &[("alertmanager", &host)],
                telemetry::DEFAULT_BUCKETS,
            )
            .observe(took.as_secs_f64());
            match r {
                Ok(()) => {
                    ok = true;
                    telemetry::counter(
                        "thanos_alert_sender_alerts_sent_total",
                        "Total number of alerts sent by alertmanager.",
                        &[("alertmanager", &host)],
                    )
                    .add(batch.len() as f64);
                }
                Err(e) => {
                    tracing::warn!(alertmanager = %url, err = %e, alerts = batch.len(), "sending alerts failed");
                    telemetry::counter(
                        "thanos_alert_sender_errors_total",
                        "Total number of errors while sending alerts to alertmanager.",
                        &[("alertmanager", &host)],
                    )
                    .inc();
                }
            }
        }
        if !ok {
            counter(
                "thanos_alert_sender_alerts_dropped_total",
                "Total number of alerts dropped in case of all sends to Alertmanagers failed.",
            )
            .add(batch.len() as f64);
        }
        ok
    }
}

/// Go's `time.Time` in RFC 3339 with milliseconds, as Alertmanager reads it.
pub fn rfc3339(ms: i64) -> String {
    tsdb::time::format_rfc3339(ms)
}

/// Go's `url.QueryEscape`: what Thanos puts for `{{.Expr}}` in `--alert.query-template`.
pub fn query_escape(expr: &str) -> String {
    let mut enc = String::new();
    for b in expr.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                enc.push(b as char)
            }
            b' ' => enc.push('+'),
            _ => enc.push_str(&format!("%{b:02X}")),
        }
    }
    enc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_get_external_and_lose_dropped() {
        let n = Notifier::new(
            Labels::from_pairs([("replica", "a"), ("cluster", "eu")]),
            vec!["replica".into()],
            bucket::relabel::Relabel::default(),
            Arc::new(Vec::new()),
        );
        let l = n
            .labels_for(&Labels::from_pairs([("alertname", "X"), ("cluster", "us")]))
            .unwrap();
        assert_eq!(
            l,
            Labels::from_pairs([("alertname", "X"), ("cluster", "eu")])
        );
        assert_eq!(query_escape("up == 0"), "up+%3D%3D+0");
    }

    #[test]
    fn queue_drops_oldest_when_full() {
        let n = Notifier::new(
            Labels::empty(),
            Vec::new(),
            bucket::relabel::Relabel::default(),
            Arc::new(Vec::new()),
        );
        let a = |i: usize| Notification {
            labels: [("i".to_string(), i.to_string())].into_iter().collect(),
            annotations: BTreeMap::new(),
            starts_at: String::new(),
            ends_at: String::new(),
            generator_url: String::new(),
        };
        n.push((0..QUEUE_CAPACITY + 5).map(a).collect());
        let first = n.pop_batch();
        assert_eq!(first.len(), MAX_BATCH);
        assert_eq!(first[0], a(5));
    }
}
