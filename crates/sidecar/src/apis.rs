//! The sidecar's Rules, Targets, Metadata and Exemplars APIs over Prometheus's HTTP API, as
//! Thanos's sidecar serves them: Prometheus's answers converted to Thanos's messages, with
//! the external labels added to rule, alert, target and exemplar series labels.

use serde_json::Value;
use storeapi::apis::{timestamp_from_rfc3339, Answer, PromApis};
use storeapi::pb;
use tonic::Status;
use tsdb::Labels;

use crate::PrometheusStore;

fn bad_answer(what: &str, e: impl std::fmt::Display) -> Status {
    Status::internal(format!(
        "unexpected answer from Prometheus's {what} API: {e}"
    ))
}

/// The `data` of a Prometheus API answer.
fn data(body: &str, what: &str) -> Result<Value, Status> {
    let mut v: Value = serde_json::from_str(body).map_err(|e| bad_answer(what, e))?;
    if v["status"] != "success" {
        return Err(Status::internal(format!(
            "Prometheus's {what} API: {}",
            v["error"].as_str().unwrap_or("failed")
        )));
    }
    Ok(v["data"].take())
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// A JSON label map, with `ext` added (the external labels win, as in Thanos).
fn label_set(v: &Value, ext: &Labels) -> pb::ZLabelSet {
    let mut pairs: Vec<(String, String)> = v
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| ext.get(k.as_str()).is_none())
                .map(|(k, v)| (k.clone(), str_of(v)))
                .collect()
        })
        .unwrap_or_default();
    pairs.extend(ext.iter().map(|l| (l.name.clone(), l.value.clone())));
    pairs.sort();
    pb::ZLabelSet {
        labels: pairs
            .into_iter()
            .map(|(name, value)| pb::Label {
                name: name.into(),
                value: value.into(),
            })
            .collect(),
    }
}

fn timestamp(v: &Value) -> Option<prost_types::Timestamp> {
    v.as_str().and_then(timestamp_from_rfc3339)
}

fn alert_state(s: &str) -> pb::AlertState {
    match s {
        "inactive" => pb::AlertState::Inactive,
        "pending" => pb::AlertState::Pending,
        "firing" => pb::AlertState::Firing,
        _ => pb::AlertState::Unknown,
    }
}

fn rule(v: &Value, ext: &Labels) -> Option<pb::Rule> {
    let result = match v["type"].as_str()? {
        "recording" => pb::rule::Result::Recording(pb::RecordingRule {
            name: str_of(&v["name"]),
            query: str_of(&v["query"]),
            labels: Some(label_set(&v["labels"], ext)),
            health: str_of(&v["health"]),
            last_error: str_of(&v["lastError"]),
            evaluation_duration_seconds: v["evaluationTime"].as_f64().unwrap_or(0.0),
            last_evaluation: timestamp(&v["lastEvaluation"]),
        }),
        "alerting" => pb::rule::Result::Alert(pb::Alert {
            state: alert_state(v["state"].as_str().unwrap_or("")) as i32,
            name: str_of(&v["name"]),
            query: str_of(&v["query"]),
            duration_seconds: v["duration"].as_f64().unwrap_or(0.0),
            labels: Some(label_set(&v["labels"], ext)),
            annotations: Some(label_set(&v["annotations"], &Labels::empty())),
            alerts: v["alerts"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| pb::AlertInstance {
                    // As Thanos's sidecar: the rule's labels get the external labels, the
                    // alerts' own do not.
                    labels: Some(label_set(&a["labels"], &Labels::empty())),
                    annotations: Some(label_set(&a["annotations"], &Labels::empty())),
                    state: alert_state(a["state"].as_str().unwrap_or("")) as i32,
                    active_at: timestamp(&a["activeAt"]),
                    value: str_of(&a["value"]),
                    partial_response_strategy: 0,
                })
                .collect(),
            health: str_of(&v["health"]),
            last_error: str_of(&v["lastError"]),
            evaluation_duration_seconds: v["evaluationTime"].as_f64().unwrap_or(0.0),
            last_evaluation: timestamp(&v["lastEvaluation"]),
            keep_firing_for_seconds: v["keepFiringFor"].as_f64().unwrap_or(0.0),
        }),
        _ => return None,
    };
    Some(pb::Rule {
        result: Some(result),
    })
}

/// Keeps the rules a request asks for (type, names, groups, files), as Prometheus filters.
fn wanted(req: &pb::RulesRequest, group: &pb::RuleGroup, r: &pb::Rule) -> bool {
    use pb::rules_request::Type;
    let (is_alert, name) = match &r.result {
        Some(pb::rule::Result::Alert(a)) => (true, &a.name),
        Some(pb::rule::Result::Recording(rr)) => (false, &rr.name),
        None => return false,
    };
    let type_ok = match Type::try_from(req.r#type).unwrap_or(Type::All) {
        Type::All => true,
        Type::Alert => is_alert,
        Type::Record => !is_alert,
    };
    let any_of = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
    type_ok
        && any_of(&req.rule_name, name)
        && any_of(&req.rule_group, &group.name)
        && any_of(&req.file, &group.file)
}

fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[async_trait::async_trait]
impl PromApis for PrometheusStore {
    async fn rules(&self, req: pb::RulesRequest) -> Result<Answer<pb::RuleGroup>, Status> {
        use pb::rules_request::Type;
        let kind = match Type::try_from(req.r#type).unwrap_or(Type::All) {
            Type::All => "",
            Type::Alert => "?type=alert",
            Type::Record => "?type=record",
        };
        let v = data(&self.get(&format!("/api/v1/rules{kind}")).await?, "rules")?;
        let ext = self.external_labels();
        let mut groups = Vec::new();
        for g in v["groups"].as_array().into_iter().flatten() {
            let mut group = pb::RuleGroup {
                name: str_of(&g["name"]),
                file: str_of(&g["file"]),
                rules: Vec::new(),
                interval: g["interval"].as_f64().unwrap_or(0.0),
                evaluation_duration_seconds: g["evaluationTime"].as_f64().unwrap_or(0.0),
                last_evaluation: timestamp(&g["lastEvaluation"]),
                limit: g["limit"].as_i64().unwrap_or(0),
                // Prometheus has no partial responses: its groups abort, as Thanos marks them.
                partial_response_strategy: pb::PartialResponseStrategy::Abort as i32,
            };
            let rules: Vec<pb::Rule> = g["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| rule(r, &ext))
                .filter(|r| wanted(&req, &group, r))
                .collect();
            let filtered = req.r#type != 0
                || !req.rule_name.is_empty()
                || !req.rule_group.is_empty()
                || !req.file.is_empty();
            if rules.is_empty() && filtered {
                continue;
            }
            group.rules = rules;
            groups.push(group);
        }
        Ok((groups, Vec::new()))
    }

    async fn targets(
        &self,
        req: pb::TargetsRequest,
    ) -> Result<Answer<pb::TargetDiscovery>, Status> {
        use pb::targets_request::State;
        let state = match State::try_from(req.state).unwrap_or(State::Any) {
            State::Any => "any",
            State::Active => "active",
            State::Dropped => "dropped",
        };
        let v = data(
            &self.get(&format!("/api/v1/targets?state={state}")).await?,
            "targets",
        )?;
        let ext = self.external_labels();
        let active = v["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| pb::ActiveTarget {
                discovered_labels: Some(label_set(&t["discoveredLabels"], &ext)),
                labels: Some(label_set(&t["labels"], &ext)),
                scrape_pool: str_of(&t["scrapePool"]),
                scrape_url: str_of(&t["scrapeUrl"]),
                global_url: str_of(&t["globalUrl"]),
                last_error: str_of(&t["lastError"]),
                last_scrape: timestamp(&t["lastScrape"]),
                last_scrape_duration: t["lastScrapeDuration"].as_f64().unwrap_or(0.0),
                health: match t["health"].as_str() {
                    Some("up") => pb::TargetHealth::Up,
                    Some("down") => pb::TargetHealth::Down,
                    _ => pb::TargetHealth::UnknownHealth,
                } as i32,
            })
            .collect();
        let dropped = v["droppedTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| pb::DroppedTarget {
                discovered_labels: Some(label_set(&t["discoveredLabels"], &ext)),
            })
            .collect();
        Ok((
            vec![pb::TargetDiscovery {
                active_targets: active,
                dropped_targets: dropped,
            }],
            Vec::new(),
        ))
    }

    async fn metric_metadata(
        &self,
        req: pb::MetricMetadataRequest,
    ) -> Result<Answer<pb::MetricMetadata>, Status> {
        let mut path = format!("/api/v1/metadata?metric={}", query_escape(&req.metric));
        if req.limit >= 0 {
            path.push_str(&format!("&limit={}", req.limit));
        }
        let v = data(&self.get(&path).await?, "metadata")?;
        let mut metadata = std::collections::HashMap::new();
        for (metric, metas) in v.as_object().into_iter().flatten() {
            let metas = metas
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| pb::Meta {
                    r#type: str_of(&m["type"]),
                    help: str_of(&m["help"]),
                    unit: str_of(&m["unit"]),
                })
                .collect();
            metadata.insert(metric.clone(), pb::MetricMetadataEntry { metas });
        }
        Ok((vec![pb::MetricMetadata { metadata }], Vec::new()))
    }

    async fn exemplars(
        &self,
        req: pb::ExemplarsRequest,
    ) -> Result<Answer<pb::ExemplarData>, Status> {
        let secs = |ms: i64| format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000));
        let path = format!(
            "/api/v1/query_exemplars?query={}&start={}&end={}",
            query_escape(&req.query),
            secs(req.start),
            secs(req.end)
        );
        let v = data(&self.get(&path).await?, "exemplars")?;
        let ext = self.external_labels();
        let out = v
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| pb::ExemplarData {
                series_labels: Some(label_set(&d["seriesLabels"], &ext)),
                exemplars: d["exemplars"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| pb::Exemplar {
                        labels: Some(label_set(&e["labels"], &Labels::empty())),
                        value: e["value"]
                            .as_str()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(f64::NAN),
                        ts: (e["timestamp"].as_f64().unwrap_or(0.0) * 1000.0).round() as i64,
                    })
                    .collect(),
            })
            .collect();
        Ok((out, Vec::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_convert_with_external_labels() {
        let body = r#"{"status":"success","data":{"groups":[{"name":"g","file":"/r.yml","interval":15,"limit":0,"evaluationTime":0.001,"lastEvaluation":"2026-12-02T06:40:00.5Z","rules":[
            {"name":"r","query":"vector(1)","labels":{"team":"a","cluster":"x"},"health":"ok","evaluationTime":0.0001,"lastEvaluation":"2026-12-02T06:40:00.5Z","type":"recording"},
            {"state":"firing","name":"A","query":"up == 0","duration":60,"labels":{"severity":"page"},"annotations":{"summary":"s"},"alerts":[{"labels":{"alertname":"A"},"annotations":{"summary":"s"},"state":"firing","activeAt":"2026-12-02T06:39:00Z","value":"1e+00"}],"health":"ok","evaluationTime":0.0002,"lastEvaluation":"2026-12-02T06:40:00.5Z","type":"alerting"}]}]}}"#;
        let v = data(body, "rules").unwrap();
        let ext = Labels::from_pairs([("cluster", "eu")]);
        let rules: Vec<pb::Rule> = v["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| rule(r, &ext))
            .collect();
        let Some(pb::rule::Result::Recording(rec)) = &rules[0].result else {
            panic!("{rules:?}")
        };
        let labels: Vec<_> = rec
            .labels
            .as_ref()
            .unwrap()
            .labels
            .iter()
            .map(|l| (l.name_str(), l.value_str()))
            .collect();
        assert_eq!(labels, [("cluster", "eu"), ("team", "a")]);
        let Some(pb::rule::Result::Alert(alert)) = &rules[1].result else {
            panic!("{rules:?}")
        };
        assert_eq!(alert.state, pb::AlertState::Firing as i32);
        assert_eq!(alert.alerts[0].value, "1e+00");
        assert_eq!(alert.alerts[0].labels.as_ref().unwrap().labels.len(), 1);
        assert_eq!(alert.duration_seconds, 60.0);
        assert!(data(r#"{"status":"error","error":"bad"}"#, "rules").is_err());
        assert_eq!(query_escape("up{a=\"b\"}"), "up%7Ba%3D%22b%22%7D");
    }
}
