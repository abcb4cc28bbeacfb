//! The ruler's rules and alerts, as Thanos's Rules API carries them: served over gRPC
//! (`thanos.Rules`, so queriers gather them) and as Prometheus's `/api/v1/rules` and
//! `/api/v1/alerts` JSON.

use std::collections::BTreeMap;
use std::sync::Arc;

use storeapi::apis::{Answer, PromApis};
use storeapi::pb;
use tonic::Status;
use tsdb::Labels;

use crate::alerting::State;
use crate::file::Kind;
use crate::group::{Group, Rule};
use crate::manager::Manager;

fn zset(l: &Labels) -> Option<pb::ZLabelSet> {
    Some(pb::ZLabelSet {
        labels: storeapi::convert::labels_to_pb(l),
    })
}

fn zmap(m: &BTreeMap<String, String>) -> Option<pb::ZLabelSet> {
    zset(&Labels::from_pairs(
        m.iter().map(|(k, v)| (k.clone(), v.clone())),
    ))
}

fn timestamp(ms: i64) -> Option<prost_types::Timestamp> {
    if ms == 0 {
        return None;
    }
    Some(prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    })
}

fn state_pb(s: State) -> pb::AlertState {
    match s {
        State::Inactive => pb::AlertState::Inactive,
        State::Pending => pb::AlertState::Pending,
        State::Firing => pb::AlertState::Firing,
    }
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`, as Prometheus writes an alert's value.
pub fn go_exp_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let s = format!("{v:e}");
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
}

pub fn rule_pb(r: &Rule, g: &Group) -> pb::Rule {
    let st = r.state.lock().unwrap_or_else(|e| e.into_inner());
    let strategy = match g.spec.partial_response {
        crate::file::PartialResponse::Abort => pb::PartialResponseStrategy::Abort,
        crate::file::PartialResponse::Warn => pb::PartialResponseStrategy::Warn,
    } as i32;
    let labels = Labels::from_pairs(r.spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    let result = match r.spec.kind {
        Kind::Record => pb::rule::Result::Recording(pb::RecordingRule {
            name: r.spec.name.clone(),
            query: r.spec.expr.clone(),
            labels: zset(&labels),
            health: st.health.to_string(),
            last_error: st.last_error.clone(),
            evaluation_duration_seconds: st.eval_seconds,
            last_evaluation: timestamp(st.last_eval_ms),
        }),
        Kind::Alert => {
            let mut alerts: Vec<&crate::alerting::Alert> = st
                .active
                .alerts
                .values()
                .filter(|a| a.state != State::Inactive)
                .collect();
            alerts.sort_by(|a, b| a.labels.cmp(&b.labels));
            let state = alerts
                .iter()
                .map(|a| a.state)
                .max_by_key(|s| match s {
                    State::Firing => 2,
                    State::Pending => 1,
                    State::Inactive => 0,
                })
                .unwrap_or(State::Inactive);
            pb::rule::Result::Alert(pb::Alert {
                state: state_pb(state) as i32,
                name: r.spec.name.clone(),
                query: r.spec.expr.clone(),
                duration_seconds: r.spec.for_ms as f64 / 1000.0,
                labels: zset(&labels),
                annotations: zmap(&r.spec.annotations),
                alerts: alerts
                    .iter()
                    .map(|a| pb::AlertInstance {
                        labels: zset(&a.labels),
                        annotations: zmap(&a.annotations),
                        state: state_pb(a.state) as i32,
                        active_at: timestamp(a.active_at),
                        value: go_exp_float(a.value),
                        partial_response_strategy: strategy,
                    })
                    .collect(),
                health: st.health.to_string(),
                last_error: st.last_error.clone(),
                evaluation_duration_seconds: st.eval_seconds,
                last_evaluation: timestamp(st.last_eval_ms),
                keep_firing_for_seconds: r.spec.keep_firing_for_ms as f64 / 1000.0,
            })
        }
    };
    pb::Rule {
        result: Some(result),
    }
}

pub fn group_pb(g: &Group, rules: Vec<pb::Rule>) -> pb::RuleGroup {
    let last = *g.last_eval_ms.lock().unwrap_or_else(|e| e.into_inner());
    let took = *g.last_duration.lock().unwrap_or_else(|e| e.into_inner());
    pb::RuleGroup {
        name: g.spec.name.clone(),
        file: g.spec.file.clone(),
        rules,
        interval: g.interval_ms as f64 / 1000.0,
        evaluation_duration_seconds: took,
        last_evaluation: timestamp(last),
        limit: g.spec.limit as i64,
        partial_response_strategy: match g.spec.partial_response {
            crate::file::PartialResponse::Abort => pb::PartialResponseStrategy::Abort,
            crate::file::PartialResponse::Warn => pb::PartialResponseStrategy::Warn,
        } as i32,
    }
}

/// The ruler behind `thanos.Rules`; it has no targets, metadata or exemplars.
pub struct RulerApis(pub Arc<Manager>);

#[async_trait::async_trait]
impl PromApis for RulerApis {
    async fn rules(&self, req: pb::RulesRequest) -> Result<Answer<pb::RuleGroup>, Status> {
        Ok((self.0.rule_groups(&req), Vec::new()))
    }
    async fn targets(&self, _: pb::TargetsRequest) -> Result<Answer<pb::TargetDiscovery>, Status> {
        Err(Status::unimplemented("the ruler has no targets"))
    }
    async fn metric_metadata(
        &self,
        _: pb::MetricMetadataRequest,
    ) -> Result<Answer<pb::MetricMetadata>, Status> {
        Err(Status::unimplemented("the ruler has no metric metadata"))
    }
    async fn exemplars(&self, _: pb::ExemplarsRequest) -> Result<Answer<pb::ExemplarData>, Status> {
        Err(Status::unimplemented("the ruler has no exemplars"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_values_as_go_writes_them() {
        assert_eq!(go_exp_float(1.0), "1e+00");
        assert_eq!(go_exp_float(0.5), "5e-01");
        assert_eq!(go_exp_float(123.25), "1.2325e+02");
        assert_eq!(go_exp_float(f64::NAN), "NaN");
        assert_eq!(go_exp_float(0.0), "0e+00");
    }
}
