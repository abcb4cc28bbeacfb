//! A rule group at run time: evaluated on a fixed schedule aligned per group (an offset
//! from a hash of its file and name, as Prometheus spreads groups), rules in file order,
//! results written to the ruler's TSDB, alerts handed to the notifier.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use storeapi::local::LocalTsdb;
use tsdb::Labels;

use crate::alerting::{current_alerts, Active, State};
use crate::file::{GroupSpec, Kind, PartialResponse, RuleSpec};
use crate::notifier::{query_escape, rfc3339, Notification, Notifier};
use crate::query::{Querier, Sample};

/// Prometheus's stale marker.
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// What every group shares.
pub struct Context {
    pub querier: Arc<dyn Querier>,
    pub tsdb: Arc<LocalTsdb>,
    pub notifier: Arc<Notifier>,
    pub external_labels: Labels,
    /// Base of alerts' generator URLs (`--alert.query-url`).
    pub alert_query_url: String,
    /// The generator URL's path, `{{.Expr}}` standing for the escaped expression.
    pub alert_query_template: String,
    pub resend_delay_ms: i64,
    pub outage_tolerance_ms: i64,
    pub for_grace_period_ms: i64,
    /// Labels left out when matching alerts to their saved state (`--restore-ignored-label`).
    pub restore_ignored_labels: Vec<String>,
    pub default_interval_ms: i64,
    pub default_query_offset_ms: i64,
    /// How rule expressions are parsed (`--query.promql-compat`, `--enable-feature`).
    pub dialect: promql::Dialect,
}

/// A rule's run-time state.
#[derive(Default, Clone)]
pub struct RuleState {
    pub health: &'static str,
    pub last_error: String,
    pub last_eval_ms: i64,
    pub eval_seconds: f64,
    /// Series written at the last evaluation (for stale markers when they go).
    pub written: HashSet<Labels>,
    pub active: Active,
}

pub struct Rule {
    pub spec: RuleSpec,
    pub state: Mutex<RuleState>,
}

pub struct Group {
    pub spec: GroupSpec,
    pub interval_ms: i64,
    pub query_offset_ms: i64,
    pub rules: Vec<Rule>,
    pub last_eval_ms: Mutex<i64>,
    pub last_duration: Mutex<f64>,
    key: String,
}

fn fnv64a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Group {
    pub fn new(spec: GroupSpec, ctx: &Context) -> Group {
        let interval_ms = spec.interval_ms.unwrap_or(ctx.default_interval_ms).max(1);
        let query_offset_ms = spec.query_offset_ms.unwrap_or(ctx.default_query_offset_ms);
        let rules = spec
            .rules
            .iter()
            .map(|r| Rule {
                spec: r.clone(),
                state: Mutex::new(RuleState {
                    health: "unknown",
                    ..Default::default()
                }),
            })
            .collect();
        let key = format!("{};{}", spec.file, spec.name);
        Group {
            spec,
            interval_ms,
            query_offset_ms,
            rules,
            last_eval_ms: Mutex::new(0),
            last_duration: Mutex::new(0.0),
            key,
        }
    }

    /// `file;name`, the `rule_group` label of Prometheus's metrics.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Takes over state of the same rules from the group this one replaces (on reload):
    /// rules match by kind, name and position among rules of that name.
    pub fn copy_state(&self, old: &Group) {
        let mut seen: HashMap<(bool, &str), usize> = HashMap::new();
        for r in &self.rules {
            let k = (r.spec.kind == Kind::Alert, r.spec.name.as_str());
            let nth = seen.entry(k).or_default();
            let prev = old
                .rules
                .iter()
                .filter(|o| (o.spec.kind == Kind::Alert, o.spec.name.as_str()) == k)
                .nth(*nth);
            *nth += 1;
            if let Some(o) = prev {
                *lock(&r.state) = lock(&o.state).clone();
            }
        }
        *lock(&self.last_eval_ms) = *lock(&old.last_eval_ms);
    }

    /// The evaluation time at or before `now`: `now` rounded down to the group's grid.
    pub fn eval_timestamp(&self, now_ms: i64) -> i64 {
        let offset = (fnv64a(self.key.as_bytes()) % self.interval_ms as u64) as i64;
        let adj = now_ms - offset;
        adj - adj.rem_euclid(self.interval_ms) + offset
    }

    fn metric_labels(&self) -> [(&str, &str); 1] {
        [("rule_group", self.key.as_str())]
    }

    /// Evaluates every rule at `ts`, writes the results and queues the alerts due.
    pub async fn eval(&self, ctx: &Context, ts: i64) {
        let started = Instant::now();
        let labels = self.metric_labels();
        let mut samples_total = 0usize;
        for rule in &self.rules {
            let rule_started = Instant::now();
            telemetry::counter(
                "prometheus_rule_evaluations_total",
                "The total number of rule evaluations.",
                &labels,
            )
            .inc();
            let result = self.eval_rule(ctx, rule, ts).await;
            let took = rule_started.elapsed().as_secs_f64();
            telemetry::summary(
                "prometheus_rule_evaluation_duration_seconds",
                "The duration for a rule to execute.",
                &[],
            )
            .observe(took);
            let mut st = lock(&rule.state);
            st.last_eval_ms = ts;
            st.eval_seconds = took;
            match result {
                Ok(n) => {
                    samples_total += n;
                    st.health = "ok";
                    st.last_error.clear();
                }
                Err(e) => {
                    tracing::warn!(group = %self.spec.name, file = %self.spec.file, rule = %rule.spec.name, err = %e, "rule evaluation failed");
                    telemetry::counter(
                        "prometheus_rule_evaluation_failures_total",
                        "The total number of rule evaluation failures.",
                        &labels,
                    )
                    .inc();
                    st.health = "err";
                    st.last_error = e;
                }
            }
        }
        self.send_alerts(ctx, ts);
        let took = started.elapsed().as_secs_f64();
        *lock(&self.last_eval_ms) = ts;
        *lock(&self.last_duration) = took;
        telemetry::summary(
            "prometheus_rule_group_duration_seconds",
            "The duration of rule group evaluations.",
            &[],
        )
        .observe(took);
        for (name, help, v) in [
            (
                "prometheus_rule_group_last_duration_seconds",
                "The duration of the last rule group evaluation.",
                took,
            ),
            (
                "prometheus_rule_group_last_evaluation_timestamp_seconds",
                "The timestamp of the last rule group evaluation in seconds.",
                ts as f64 / 1000.0,
            ),
            (
                "prometheus_rule_group_last_evaluation_samples",
                "The number of samples returned during the last rule group evaluation.",
                samples_total as f64,
            ),
        ] {
            telemetry::gauge(name, help, &labels).set(v);
        }
    }

    async fn query(&self, ctx: &Context, expr: &str, ts: i64) -> Result<Vec<Sample>, String> {
        let partial = self.spec.partial_response == PartialResponse::Warn;
        let r = ctx.querier.query(expr, ts, partial).await?;
        if !r.warnings.is_empty() {
            telemetry::counter(
                "thanos_rule_evaluation_with_warnings_total",
                "The total number of rule evaluation that were successful but had warnings which can indicate partial error.",
                &[("strategy", &self.spec.partial_response.name().to_ascii_lowercase())],
            )
            .inc();
            tracing::warn!(group = %self.spec.name, expr, warnings = ?r.warnings, "rule evaluation with warnings");
        }
        Ok(r.samples)
    }

    /// Evaluates one rule; returns the number of samples it produced.
    async fn eval_rule(&self, ctx: &Context, rule: &Rule, ts: i64) -> Result<usize, String> {
        let query_ts = ts - self.query_offset_ms;
        let samples = self.query(ctx, &rule.spec.expr, query_ts).await?;
        let limit = self.spec.limit;
        match rule.spec.kind {
            Kind::Record => {
                let mut out: Vec<(Labels, i64, f64)> = Vec::with_capacity(samples.len());
                let mut seen = HashSet::with_capacity(samples.len());
                for s in &samples {
                    let mut pairs: BTreeMap<String, String> = s
                        .labels
                        .iter()
                        .map(|l| (l.name.clone(), l.value.clone()))
                        .collect();
                    pairs.insert("__name__".into(), rule.spec.name.clone());
                    for (k, v) in &rule.spec.labels {
                        pairs.insert(k.clone(), v.clone());
                    }
                    let l = Labels::from_pairs(pairs);
                    if !seen.insert(l.clone()) {
                        return Err("vector contains metrics with the same labelset after applying rule labels".into());
                    }
                    out.push((l, query_ts, s.value));
                }
                if limit > 0 && out.len() > limit {
                    return Err(format!(
                        "exceeded limit of {limit} with {} series",
                        out.len()
                    ));
                }
                let n = out.len();
                self.write(ctx, rule, out, query_ts)?;
                Ok(n)
            }
            Kind::Alert => {
                let current = {
                    let handle = tokio::runtime::Handle::current();
                    let querier = ctx.querier.clone();
                    let partial = self.spec.partial_response == PartialResponse::Warn;
                    let query_fn = move |q: &str| -> Result<Vec<template::QuerySample>, String> {
                        let r = tokio::task::block_in_place(|| {
                            handle.block_on(querier.query(q, query_ts, partial))
                        })?;
                        Ok(r.samples
                            .into_iter()
                            .map(|s| template::QuerySample {
                                labels: s
                                    .labels
                                    .iter()
                                    .map(|l| (l.name.clone(), l.value.clone()))
                                    .collect(),
                                value: s.value,
                            })
                            .collect())
                    };
                    let ext: BTreeMap<String, String> = ctx
                        .external_labels
                        .iter()
                        .map(|l| (l.name.clone(), l.value.clone()))
                        .collect();
                    let tmpl_name = format!("__alert_{}", rule.spec.name);
                    let expand_map =
                        |map: &BTreeMap<String, String>, data: &template::AlertData| {
                            map.iter()
                            .map(|(k, v)| {
                                let out = template::expand_alert(&tmpl_name, v, data, &query_fn, ts)
                                    .unwrap_or_else(|e| {
                                        tracing::warn!(rule = %rule.spec.name, template = %k, err = %e, "expanding alert template failed");
                                        format!("<error expanding template: {e}>")
                                    });
                                (k.clone(), out)
                            })
                            .collect::<BTreeMap<_, _>>()
                        };
                    current_alerts(&samples, &rule.spec.name, |s| {
                        let labels: BTreeMap<String, String> = s
                            .labels
                            .iter()
                            .map(|l| (l.name.clone(), l.value.clone()))
                            .collect();
                        let data = template::AlertData {
                            labels: &labels,
                            external_labels: &ext,
                            external_url: &ctx.alert_query_url,
                            value: s.value,
                        };
                        (
                            expand_map(&rule.spec.labels, &data),
                            expand_map(&rule.spec.annotations, &data),
                        )
                    })
                };
                let series = {
                    let mut st = lock(&rule.state);
                    st.active.update(
                        ts,
                        current,
                        rule.spec.for_ms,
                        rule.spec.keep_firing_for_ms,
                    )?;
                    let firing_or_pending = st
                        .active
                        .alerts
                        .values()
                        .filter(|a| a.state != State::Inactive)
                        .count();
                    if limit > 0 && firing_or_pending > limit {
                        st.active.alerts.clear();
                        return Err(format!(
                            "exceeded limit of {limit} with {firing_or_pending} alerts"
                        ));
                    }
                    st.active.series(ts)
                };
                let n = series.len();
                self.write(ctx, rule, series, ts)?;
                Ok(n)
            }
        }
    }

    /// Appends a rule's samples, with stale markers for series it wrote last time and not now.
    fn write(
        &self,
        ctx: &Context,
        rule: &Rule,
        mut samples: Vec<(Labels, i64, f64)>,
        ts: i64,
    ) -> Result<(), String> {
        let now: HashSet<Labels> = samples.iter().map(|s| s.0.clone()).collect();
        {
            let st = lock(&rule.state);
            for gone in st.written.difference(&now) {
                samples.push((gone.clone(), ts, f64::from_bits(STALE_NAN)));
            }
        }
        let stats = ctx
            .tsdb
            .head()
            .append(&samples)
            .map_err(|e| format!("writing results: {e}"))?;
        if stats.out_of_order + stats.duplicate + stats.out_of_bounds > 0 {
            tracing::warn!(rule = %rule.spec.name, out_of_order = stats.out_of_order, duplicate = stats.duplicate, out_of_bounds = stats.out_of_bounds, "rule results refused by the TSDB");
        }
        lock(&rule.state).written = now;
        Ok(())
    }

    /// Queues the alerts due for (re)sending, as Prometheus's `sendAlerts` decides.
    fn send_alerts(&self, ctx: &Context, ts: i64) {
        let delta = ctx.resend_delay_ms.max(self.interval_ms);
        let mut out = Vec::new();
        for rule in &self.rules {
            if rule.spec.kind != Kind::Alert {
                continue;
            }
            let mut st = lock(&rule.state);
            for a in st.active.alerts.values_mut() {
                if !a.needs_sending(ts, ctx.resend_delay_ms) {
                    continue;
                }
                a.last_sent_at = ts;
                a.valid_until = ts + 4 * delta;
                let Some(labels) = ctx.notifier.labels_for(&a.labels) else {
                    continue;
                };
                let ends = if a.resolved_at != 0 {
                    a.resolved_at
                } else {
                    a.valid_until
                };
                out.push(Notification {
                    labels: labels
                        .iter()
                        .map(|l| (l.name.clone(), l.value.clone()))
                        .collect(),
                    annotations: a.annotations.clone(),
                    starts_at: rfc3339(a.fired_at),
                    ends_at: rfc3339(ends),
                    generator_url: format!(
                        "{}{}",
                        ctx.alert_query_url.trim_end_matches('/'),
                        ctx.alert_query_template
                            .replace("{{.Expr}}", &query_escape(&rule.spec.expr))
                    ),
                });
            }
        }
        ctx.notifier.push(out);
    }

    /// Restores `for` state of alerting rules from `ALERTS_FOR_STATE` in the local TSDB
    /// (after the first evaluation following a start).
    pub fn restore(&self, ctx: &Context, ts: i64) {
        for rule in &self.rules {
            if rule.spec.kind != Kind::Alert || rule.spec.for_ms == 0 {
                continue;
            }
            let matchers = [
                tsdb::Matcher::equal("__name__", "ALERTS_FOR_STATE"),
                tsdb::Matcher::equal("alertname", rule.spec.name.clone()),
            ];
            let mint = ts - ctx.outage_tolerance_ms;
            // The sample written at `ts` by the first evaluation is not the state before.
            let found = match ctx.tsdb.head().select(&matchers, mint, ts - 1) {
                Ok(series) => series,
                Err(e) => {
                    tracing::warn!(rule = %rule.spec.name, err = %e, "reading ALERTS_FOR_STATE to restore alert state");
                    continue;
                }
            };
            let mut last: HashMap<Labels, (i64, f64)> = HashMap::new();
            let mut buf = Vec::new();
            for s in found {
                buf.clear();
                for (_, _, c) in &s.chunks {
                    if tsdb::chunkenc::xor::decode_all(c, &mut buf).is_err() {
                        break;
                    }
                }
                let Some(&(t, v)) = buf
                    .iter()
                    .rev()
                    .find(|(t, v)| *t < ts && *t >= mint && v.to_bits() != STALE_NAN)
                else {
                    continue;
                };
                let l = Labels::from_pairs(
                    s.labels
                        .iter()
                        .filter(|l| l.name != "__name__")
                        .filter(|l| !ctx.restore_ignored_labels.contains(&l.name))
                        .map(|l| (l.name.clone(), l.value.clone())),
                );
                last.insert(l, (t, v));
            }
            let mut st = lock(&rule.state);
            st.active.restore(
                ts,
                rule.spec.for_ms,
                ctx.for_grace_period_ms,
                &last,
                &ctx.restore_ignored_labels,
            );
            if !last.is_empty() {
                tracing::info!(rule = %rule.spec.name, restored = last.len(), "alert state restored from ALERTS_FOR_STATE");
            }
        }
    }

    /// Runs the group until `stop` is set: aligned evaluations, missed ones counted.
    pub async fn run(
        self: Arc<Self>,
        ctx: Arc<Context>,
        mut stop: tokio::sync::watch::Receiver<bool>,
        restore: bool,
    ) {
        let labels = self.metric_labels();
        telemetry::gauge(
            "prometheus_rule_group_interval_seconds",
            "The interval of a rule group.",
            &labels,
        )
        .set(self.interval_ms as f64 / 1000.0);
        telemetry::gauge(
            "prometheus_rule_group_rules",
            "The number of rules.",
            &labels,
        )
        .set(self.rules.len() as f64);
        let iterations = telemetry::counter(
            "prometheus_rule_group_iterations_total",
            "The total number of scheduled rule group evaluations, whether executed or missed.",
            &labels,
        );
        let missed = telemetry::counter(
            "prometheus_rule_group_iterations_missed_total",
            "The total number of rule group evaluations missed due to slow rule group evaluation.",
            &labels,
        );
        let mut next = self.eval_timestamp(tsdb::time::now_ms()) + self.interval_ms;
        let mut first = true;
        loop {
            let wait = (next - tsdb::time::now_ms()).max(0) as u64;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            iterations.inc();
            self.eval(&ctx, next).await;
            if first && restore {
                self.restore(&ctx, next);
            }
            first = false;
            let now = tsdb::time::now_ms();
            let behind = (now - next) / self.interval_ms;
            if behind > 0 {
                missed.add(behind as f64);
                iterations.add(behind as f64);
                tracing::warn!(group = %self.spec.name, missed = behind, "rule group evaluation took longer than its interval");
            }
            next += (behind + 1) * self.interval_ms;
        }
    }
}
