//! The querier's `/api/v1/rules`, `/api/v1/alerts`, `/api/v1/targets`, `/api/v1/metadata`
//! and `/api/v1/query_exemplars`, as Thanos serves them: fanned out to the endpoints whose
//! Info offers the API (sidecars over Prometheus, rulers), merged, replica labels removed
//! and HA duplicates dropped, and written in Thanos's JSON.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Map, Value};
use storeapi::apis::{format_timestamp, Answer, PromApis};
use storeapi::pb;
use tonic::Status;

use crate::api::{bad_data, json_response, read_request, time_param, Api, ApiError};
use crate::endpoints::Offered;
use crate::json;
use crate::params::{MAX_TIME, MIN_TIME};

fn internal(msg: String) -> ApiError {
    ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        kind: "internal",
        msg,
    }
}

/// Calls `call` on every healthy endpoint offering `api` (see [`EndpointSet::gather`]),
/// within the query timeout; a failure is Thanos's internal error naming the endpoint.
///
/// [`EndpointSet::gather`]: crate::endpoints::EndpointSet::gather
async fn fan_out<T, F, Fut>(
    api: &Api,
    offered: Offered,
    strategy: pb::PartialResponseStrategy,
    what: &str,
    call: F,
) -> Result<Answer<T>, ApiError>
where
    F: Fn(Arc<dyn PromApis>) -> Fut,
    Fut: std::future::Future<Output = Result<Answer<T>, Status>>,
{
    let gathered = api.endpoints.gather(offered, strategy as i32, call);
    tokio::time::timeout(api.cfg.timeout, gathered)
        .await
        .map_err(|_| internal(format!("error retrieving {what}: timed out")))?
        .map_err(|e| internal(format!("error retrieving {what}: {}", e.message())))
}

/// A label set as Prometheus writes one: an object in label order.
fn labels_json(set: &Option<pb::ZLabelSet>) -> Value {
    let mut m = Map::new();
    let mut pairs: Vec<&pb::Label> = set.iter().flat_map(|s| s.labels.iter()).collect();
    pairs.sort_by(|a, b| a.name.cmp(&b.name));
    for l in pairs {
        m.insert(
            l.name_str().to_string(),
            Value::String(l.value_str().to_string()),
        );
    }
    Value::Object(m)
}

fn time_json(t: &Option<prost_types::Timestamp>) -> Value {
    let zero = prost_types::Timestamp {
        seconds: -62_135_596_800,
        nanos: 0,
    };
    Value::String(format_timestamp(t.as_ref().unwrap_or(&zero)))
}

/// A float as Go's JSON writes it: whole numbers without a fraction (`1`, not `1.0`).
fn go_float(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        Value::from(f as i64)
    } else {
        json!(f)
    }
}

fn strategy_json(s: i32) -> Value {
    let name = match pb::PartialResponseStrategy::try_from(s) {
        Ok(pb::PartialResponseStrategy::Abort) => "ABORT",
        _ => "WARN",
    };
    Value::String(name.into())
}

fn alert_state_name(s: i32) -> &'static str {
    match pb::AlertState::try_from(s).unwrap_or(pb::AlertState::Unknown) {
        pb::AlertState::Unknown => "unknown",
        pb::AlertState::Inactive => "inactive",
        pb::AlertState::Pending => "pending",
        pb::AlertState::Firing => "firing",
    }
}

fn alert_instance_json(a: &pb::AlertInstance) -> Value {
    let mut v = json!({
        "labels": labels_json(&a.labels),
        "annotations": labels_json(&a.annotations),
        "state": alert_state_name(a.state),
    });
    if a.active_at.is_some() {
        v["activeAt"] = time_json(&a.active_at);
    }
    v["value"] = Value::String(a.value.clone());
    v["partialResponseStrategy"] = strategy_json(a.partial_response_strategy);
    v
}

fn rule_json(r: &pb::Rule) -> Value {
    match &r.result {
        Some(pb::rule::Result::Recording(rr)) => {
            let mut v = json!({
                "name": rr.name,
                "query": rr.query,
                "labels": labels_json(&rr.labels),
                "health": rr.health,
            });
            if !rr.last_error.is_empty() {
                v["lastError"] = Value::String(rr.last_error.clone());
            }
            v["evaluationTime"] = go_float(rr.evaluation_duration_seconds);
            v["lastEvaluation"] = time_json(&rr.last_evaluation);
            v["type"] = json!("recording");
            v
        }
        Some(pb::rule::Result::Alert(a)) => {
            let mut v = json!({
                "state": alert_state_name(a.state),
                "name": a.name,
                "query": a.query,
                "duration": go_float(a.duration_seconds),
                "labels": labels_json(&a.labels),
                "annotations": labels_json(&a.annotations),
                "alerts": a.alerts.iter().map(alert_instance_json).collect::<Vec<_>>(),
                "health": a.health,
            });
            if !a.last_error.is_empty() {
                v["lastError"] = Value::String(a.last_error.clone());
            }
            v["evaluationTime"] = go_float(a.evaluation_duration_seconds);
            v["lastEvaluation"] = time_json(&a.last_evaluation);
            v["keepFiringFor"] = go_float(a.keep_firing_for_seconds);
            v["type"] = json!("alerting");
            v
        }
        None => Value::Null,
    }
}

fn group_json(g: &pb::RuleGroup) -> Value {
    json!({
        "name": g.name,
        "file": g.file,
        "rules": g.rules.iter().map(rule_json).collect::<Vec<_>>(),
        "interval": go_float(g.interval),
        "evaluationTime": go_float(g.evaluation_duration_seconds),
        "lastEvaluation": time_json(&g.last_evaluation),
        "limit": g.limit,
        "partialResponseStrategy": strategy_json(g.partial_response_strategy),
    })
}

fn strip(set: &mut Option<pb::ZLabelSet>, replica_labels: &[String]) {
    if let Some(s) = set {
        s.labels.retain(|l| !l.named_any_of(replica_labels));
    }
}

fn rule_labels(r: &pb::Rule) -> Vec<(&str, &str)> {
    let set = match &r.result {
        Some(pb::rule::Result::Recording(rr)) => &rr.labels,
        Some(pb::rule::Result::Alert(a)) => &a.labels,
        None => &None,
    };
    let mut v: Vec<(&str, &str)> = set
        .iter()
        .flat_map(|s| s.labels.iter())
        .map(|l| (l.name_str(), l.value_str()))
        .collect();
    v.sort();
    v
}

/// Kind (alerting first), name, query and `for` of a rule.
fn rule_key(r: &pb::Rule) -> (u8, &str, &str, f64) {
    match &r.result {
        Some(pb::rule::Result::Alert(x)) => (0, &x.name, &x.query, x.duration_seconds),
        Some(pb::rule::Result::Recording(x)) => (1, &x.name, &x.query, 0.0),
        None => (2, "", "", 0.0),
    }
}

/// Thanos's order of rules: alerting first, then by name, labels, query and `for`.
fn rule_order(a: &pb::Rule, b: &pb::Rule) -> Ordering {
    let (ka, kb) = (rule_key(a), rule_key(b));
    (ka.0, ka.1)
        .cmp(&(kb.0, kb.1))
        .then_with(|| rule_labels(a).cmp(&rule_labels(b)))
        .then_with(|| ka.2.cmp(kb.2))
        .then_with(|| ka.3.total_cmp(&kb.3))
}

/// Of two equal rules, whether `b` should replace `a`: a later evaluation, and for alerting
/// rules first a more critical state.
fn replaces(a: &pb::Rule, b: &pb::Rule) -> bool {
    use pb::rule::Result::{Alert, Recording};
    let secs = |t: &Option<prost_types::Timestamp>| {
        t.as_ref().map_or((i64::MIN, 0), |t| (t.seconds, t.nanos))
    };
    match (&a.result, &b.result) {
        (Some(Recording(x)), Some(Recording(y))) => {
            secs(&y.last_evaluation) > secs(&x.last_evaluation)
        }
        (Some(Alert(x)), Some(Alert(y))) => {
            y.state > x.state
                || (y.state == x.state && secs(&y.last_evaluation) > secs(&x.last_evaluation))
        }
        _ => false,
    }
}

/// Merges groups of the same file and name, removes replica labels and keeps one of each
/// set of equal rules, as Thanos's querier does.
fn dedup_groups(mut groups: Vec<pb::RuleGroup>, replica_labels: &[String]) -> Vec<pb::RuleGroup> {
    groups.sort_by(|a, b| (&a.file, &a.name).cmp(&(&b.file, &b.name)));
    let mut out: Vec<pb::RuleGroup> = Vec::with_capacity(groups.len());
    for g in groups {
        match out.last_mut() {
            Some(last) if last.file == g.file && last.name == g.name => last.rules.extend(g.rules),
            _ => out.push(g),
        }
    }
    for g in &mut out {
        for r in &mut g.rules {
            match &mut r.result {
                Some(pb::rule::Result::Recording(rr)) => strip(&mut rr.labels, replica_labels),
                Some(pb::rule::Result::Alert(a)) => {
                    strip(&mut a.labels, replica_labels);
                    for i in &mut a.alerts {
                        strip(&mut i.labels, replica_labels);
                    }
                }
                None => {}
            }
        }
        g.rules.sort_by(rule_order);
        let mut kept: Vec<pb::Rule> = Vec::with_capacity(g.rules.len());
        for r in std::mem::take(&mut g.rules) {
            match kept.last_mut() {
                Some(last) if rule_order(last, &r) == Ordering::Equal => {
                    if replaces(last, &r) {
                        *last = r;
                    }
                }
                _ => kept.push(r),
            }
        }
        g.rules = kept;
    }
    out
}

/// `/api/v1/rules` and `/api/v1/alerts` read the same groups.
async fn rule_groups(
    api: &Api,
    req: Request,
) -> Result<(Vec<pb::RuleGroup>, Vec<String>), ApiError> {
    let r = read_request(req).await;
    let f = &r.form;
    let kind = match String::from_utf8_lossy(f.get("type"))
        .to_lowercase()
        .as_str()
    {
        "" => pb::rules_request::Type::All,
        "alert" => pb::rules_request::Type::Alert,
        "record" => pb::rules_request::Type::Record,
        other => return Err(bad_data(format!("invalid rule type {other:?}"))),
    };
    let strings = |name: &str| -> Vec<String> {
        f.all(name)
            .into_iter()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect()
    };
    let o = api.read_options(f)?;
    let request = pb::RulesRequest {
        r#type: kind as i32,
        partial_response_strategy: o.strategy as i32,
        matcher_string: strings("match[]"),
        rule_name: strings("rule_name[]"),
        rule_group: strings("rule_group[]"),
        file: strings("file[]"),
    };
    let (groups, warnings) = fan_out(api, Offered::Rules, o.strategy, "rules", |a| {
        let request = request.clone();
        async move { a.rules(request).await }
    })
    .await?;
    let replica_labels = if o.dedup {
        o.replica_labels
    } else {
        Vec::new()
    };
    Ok((dedup_groups(groups, &replica_labels), warnings))
}

pub(crate) async fn rules(State(api): State<Arc<Api>>, req: Request) -> Result<Response, ApiError> {
    let (groups, warnings) = rule_groups(&api, req).await?;
    Ok(json_response(rules_body(&groups, &warnings)))
}

/// The `/api/v1/rules` answer for `groups`, as Prometheus (and Thanos's ruler) writes it.
pub fn rules_body(groups: &[pb::RuleGroup], warnings: &[String]) -> Vec<u8> {
    let data = json!({ "groups": groups.iter().map(group_json).collect::<Vec<_>>() });
    json::success(
        |out| out.extend_from_slice(data.to_string().as_bytes()),
        warnings,
    )
}

/// The `/api/v1/alerts` answer: the alert instances of every alerting rule of `groups`.
pub fn alerts_body(groups: &[pb::RuleGroup], warnings: &[String]) -> Vec<u8> {
    let alerts: Vec<Value> = groups
        .iter()
        .flat_map(|g| g.rules.iter())
        .filter_map(|r| match &r.result {
            Some(pb::rule::Result::Alert(a)) => Some(a.alerts.iter().map(alert_instance_json)),
            _ => None,
        })
        .flatten()
        .collect();
    let data = json!({ "alerts": alerts });
    json::success(
        |out| out.extend_from_slice(data.to_string().as_bytes()),
        warnings,
    )
}

pub(crate) async fn alerts(
    State(api): State<Arc<Api>>,
    req: Request,
) -> Result<Response, ApiError> {
    let (groups, warnings) = rule_groups(&api, req).await?;
    Ok(json_response(alerts_body(&groups, &warnings)))
}

pub(crate) async fn targets(
    State(api): State<Arc<Api>>,
    req: Request,
) -> Result<Response, ApiError> {
    let r = read_request(req).await;
    let f = &r.form;
    let state = match String::from_utf8_lossy(f.get("state"))
        .to_lowercase()
        .as_str()
    {
        "" | "any" => pb::targets_request::State::Any,
        "active" => pb::targets_request::State::Active,
        "dropped" => pb::targets_request::State::Dropped,
        other => {
            return Err(bad_data(format!(
                "invalid targets parameter state={other:?}"
            )))
        }
    };
    let o = api.read_options(f)?;
    let request = pb::TargetsRequest {
        state: state as i32,
        partial_response_strategy: o.strategy as i32,
    };
    let (found, warnings) = fan_out(
        &api,
        Offered::Targets,
        o.strategy,
        "targets",
        |a| async move { a.targets(request).await },
    )
    .await?;
    let replica_labels = if o.dedup {
        o.replica_labels
    } else {
        Vec::new()
    };
    let mut active: BTreeMap<String, Value> = BTreeMap::new();
    let mut dropped: BTreeMap<String, Value> = BTreeMap::new();
    for mut d in found {
        for mut t in d.active_targets.drain(..) {
            strip(&mut t.labels, &replica_labels);
            strip(&mut t.discovered_labels, &replica_labels);
            let health = match pb::TargetHealth::try_from(t.health) {
                Ok(pb::TargetHealth::Up) => "up",
                Ok(pb::TargetHealth::Down) => "down",
                _ => "unknown",
            };
            let v = json!({
                "discoveredLabels": labels_json(&t.discovered_labels),
                "labels": labels_json(&t.labels),
                "scrapePool": t.scrape_pool,
                "scrapeUrl": t.scrape_url,
                "globalUrl": t.global_url,
                "lastError": t.last_error,
                "lastScrape": time_json(&t.last_scrape),
                "lastScrapeDuration": go_float(t.last_scrape_duration),
                "health": health,
            });
            let key = format!("{}\u{0}{}", t.scrape_url, labels_json(&t.labels));
            active.entry(key).or_insert(v);
        }
        for mut t in d.dropped_targets.drain(..) {
            strip(&mut t.discovered_labels, &replica_labels);
            let v = json!({ "discoveredLabels": labels_json(&t.discovered_labels) });
            dropped.entry(v.to_string()).or_insert(v);
        }
    }
    let data = json!({
        "activeTargets": active.into_values().collect::<Vec<_>>(),
        "droppedTargets": dropped.into_values().collect::<Vec<_>>(),
    });
    Ok(json_response(json::success(
        |out| out.extend_from_slice(data.to_string().as_bytes()),
        &warnings,
    )))
}

pub(crate) async fn metadata(
    State(api): State<Arc<Api>>,
    req: Request,
) -> Result<Response, ApiError> {
    let r = read_request(req).await;
    let f = &r.form;
    let limit = match f.get("limit") {
        b"" => -1,
        v => String::from_utf8_lossy(v)
            .parse::<i32>()
            .map_err(|_| bad_data("limit must be a number"))?,
    };
    let o = api.read_options(f)?;
    let request = pb::MetricMetadataRequest {
        metric: String::from_utf8_lossy(f.get("metric")).into_owned(),
        limit,
        partial_response_strategy: o.strategy as i32,
    };
    let (found, warnings) = fan_out(&api, Offered::Metadata, o.strategy, "metadata", |a| {
        let request = request.clone();
        async move { a.metric_metadata(request).await }
    })
    .await?;
    let mut merged: BTreeMap<String, Vec<(String, String, String)>> = BTreeMap::new();
    for m in found {
        for (metric, entry) in m.metadata {
            let metas = merged.entry(metric).or_default();
            for meta in entry.metas {
                let t = (meta.r#type, meta.help, meta.unit);
                if !metas.contains(&t) {
                    metas.push(t);
                }
            }
        }
    }
    let mut out = Map::new();
    for (metric, metas) in merged {
        if limit >= 0 && out.len() >= limit as usize {
            break;
        }
        let list: Vec<Value> = metas
            .into_iter()
            .map(|(t, h, u)| json!({"type": t, "help": h, "unit": u}))
            .collect();
        out.insert(metric, Value::Array(list));
    }
    let data = Value::Object(out).to_string();
    Ok(json_response(json::success(
        |o| o.extend_from_slice(data.as_bytes()),
        &warnings,
    )))
}

/// An exemplar: time (ms), value as text, labels.
type ExemplarItem = (i64, String, Value);

pub(crate) async fn exemplars(
    State(api): State<Arc<Api>>,
    req: Request,
) -> Result<Response, ApiError> {
    let r = read_request(req).await;
    let f = &r.form;
    let query = String::from_utf8_lossy(f.get("query")).into_owned();
    promql::parse_bytes_with(query.as_bytes(), api.dialect(), |_| Ok(()))
        .map_err(|e| bad_data(format!("invalid parameter \"query\": {e}")))?;
    let start = time_param(f, "start", MIN_TIME)?.from_time_ms();
    let end = time_param(f, "end", MAX_TIME)?.from_time_ms();
    if end < start {
        return Err(bad_data("end timestamp must not be before start timestamp"));
    }
    let o = api.read_options(f)?;
    let request = pb::ExemplarsRequest {
        query,
        start,
        end,
        partial_response_strategy: o.strategy as i32,
    };
    let (found, warnings) = fan_out(&api, Offered::Exemplars, o.strategy, "exemplars", |a| {
        let request = request.clone();
        async move { a.exemplars(request).await }
    })
    .await?;
    let replica_labels = if o.dedup {
        o.replica_labels
    } else {
        Vec::new()
    };
    // Series (replica labels removed) with their exemplars merged, by time, once each.
    let mut series: BTreeMap<String, (Value, Vec<ExemplarItem>)> = BTreeMap::new();
    for mut d in found {
        strip(&mut d.series_labels, &replica_labels);
        let labels = labels_json(&d.series_labels);
        let entry = series
            .entry(labels.to_string())
            .or_insert_with(|| (labels, Vec::new()));
        for e in d.exemplars {
            let item = (e.ts, promql::format_value(e.value), labels_json(&e.labels));
            if !entry.1.contains(&item) {
                entry.1.push(item);
            }
        }
    }
    let data: Vec<Value> = series
        .into_values()
        .map(|(labels, mut ex)| {
            ex.sort_by_key(|e| e.0);
            json!({
                "seriesLabels": labels,
                "exemplars": ex.into_iter().map(|(ts, value, labels)| {
                    json!({"labels": labels, "value": value, "timestamp": ts as f64 / 1000.0})
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    let data = Value::Array(data).to_string();
    Ok(json_response(json::success(
        |o| o.extend_from_slice(data.as_bytes()),
        &warnings,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recording(name: &str, replica: &str, eval_s: i64) -> pb::Rule {
        pb::Rule {
            result: Some(pb::rule::Result::Recording(pb::RecordingRule {
                name: name.into(),
                query: "vector(1)".into(),
                labels: Some(pb::ZLabelSet {
                    labels: vec![pb::Label::new("replica", replica)],
                }),
                last_evaluation: Some(prost_types::Timestamp {
                    seconds: eval_s,
                    nanos: 0,
                }),
                ..Default::default()
            })),
        }
    }

    fn alert(name: &str, state: pb::AlertState) -> pb::Rule {
        pb::Rule {
            result: Some(pb::rule::Result::Alert(pb::Alert {
                name: name.into(),
                state: state as i32,
                ..Default::default()
            })),
        }
    }

    #[test]
    fn ha_rule_groups_merge_into_one_with_the_freshest_rules() {
        let group = |rules: Vec<pb::Rule>| pb::RuleGroup {
            name: "g".into(),
            file: "/r.yml".into(),
            rules,
            ..Default::default()
        };
        let groups = vec![
            group(vec![
                recording("r", "a", 10),
                alert("A", pb::AlertState::Pending),
            ]),
            group(vec![
                recording("r", "b", 20),
                alert("A", pb::AlertState::Firing),
            ]),
        ];
        let out = dedup_groups(groups, &["replica".to_string()]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].rules.len(), 2);
        let Some(pb::rule::Result::Alert(a)) = &out[0].rules[0].result else {
            panic!("alerting rules come first: {out:?}")
        };
        assert_eq!(a.state, pb::AlertState::Firing as i32);
        let Some(pb::rule::Result::Recording(r)) = &out[0].rules[1].result else {
            panic!("{out:?}")
        };
        assert_eq!(r.last_evaluation.as_ref().unwrap().seconds, 20);
        assert!(r.labels.as_ref().unwrap().labels.is_empty());
        let v = group_json(&out[0]);
        assert_eq!(v["partialResponseStrategy"], "WARN");
        assert_eq!(v["rules"][1]["type"], "recording");
        assert_eq!(v["rules"][1]["lastEvaluation"], "1970-01-01T00:00:20Z");
        assert_eq!(v["rules"][0]["alerts"], json!([]));
    }
}
