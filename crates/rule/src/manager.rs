//! The rule manager: loads the rule files, runs one task per group, and on reload swaps in
//! the new groups, handing each rule's state (active alerts, last evaluation) to its
//! successor. A reload whose files do not check keeps the running rules.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use storeapi::pb;

use crate::file::{self, Kind};
use crate::group::{Context, Group};

struct Running {
    group: Arc<Group>,
    stop: tokio::sync::watch::Sender<bool>,
}

pub struct Manager {
    ctx: Arc<Context>,
    patterns: Vec<String>,
    running: Mutex<Vec<Running>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Manager {
    pub fn new(ctx: Arc<Context>, patterns: Vec<String>) -> Manager {
        Manager {
            ctx,
            patterns,
            running: Mutex::new(Vec::new()),
        }
    }

    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Loads the rule files and (re)starts the groups. On error the running groups stay.
    pub fn reload(&self) -> Result<usize, Vec<String>> {
        let result = file::load(&self.patterns, self.ctx.dialect);
        let ok = result.is_ok();
        telemetry::gauge(
            "thanos_rule_config_last_reload_successful",
            "Whether the last configuration reload attempt was successful.",
            &[],
        )
        .set(if ok { 1.0 } else { 0.0 });
        telemetry::gauge(
            "prometheus_rule_group_last_reload_successful",
            "Whether the last rule reload attempt was successful.",
            &[],
        )
        .set(if ok { 1.0 } else { 0.0 });
        let specs = result?;
        telemetry::gauge(
            "thanos_rule_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration reload.",
            &[],
        )
        .set(tsdb::time::now_ms() as f64 / 1000.0);
        let mut running = lock(&self.running);
        let old: HashMap<String, Running> = running
            .drain(..)
            .map(|r| (r.group.key().to_string(), r))
            .collect();
        let first_load = old.is_empty();
        let mut next = Vec::with_capacity(specs.len());
        let mut rules = 0;
        for spec in specs {
            let g = Arc::new(Group::new(spec, &self.ctx));
            rules += g.rules.len();
            let prev = old.get(g.key());
            if let Some(p) = prev {
                g.copy_state(&p.group);
            }
            telemetry::gauge(
                "thanos_rule_loaded_rules",
                "Loaded rules partitioned by file and group.",
                &[
                    ("file", &g.spec.file),
                    ("group", &g.spec.name),
                    (
                        "strategy",
                        &g.spec.partial_response.name().to_ascii_lowercase(),
                    ),
                ],
            )
            .set(g.rules.len() as f64);
            let (tx, rx) = tokio::sync::watch::channel(false);
            // State is restored from the TSDB only for groups that start fresh.
            let restore = first_load || prev.is_none();
            tokio::spawn(g.clone().run(self.ctx.clone(), rx, restore));
            next.push(Running { group: g, stop: tx });
        }
        for (_, r) in old {
            let _ = r.stop.send(true);
        }
        *running = next;
        Ok(rules)
    }

    pub fn groups(&self) -> Vec<Arc<Group>> {
        lock(&self.running)
            .iter()
            .map(|r| r.group.clone())
            .collect()
    }

    /// Stops every group.
    pub fn stop(&self) {
        for r in lock(&self.running).drain(..) {
            let _ = r.stop.send(true);
        }
    }

    /// The groups as Thanos's Rules API carries them, filtered as the request asks.
    pub fn rule_groups(&self, req: &pb::RulesRequest) -> Vec<pb::RuleGroup> {
        let want_alerts = req.r#type != pb::rules_request::Type::Record as i32;
        let want_records = req.r#type != pb::rules_request::Type::Alert as i32;
        let mut out = Vec::new();
        for g in self.groups() {
            if !req.rule_group.is_empty() && !req.rule_group.contains(&g.spec.name) {
                continue;
            }
            if !req.file.is_empty() && !req.file.contains(&g.spec.file) {
                continue;
            }
            let rules: Vec<pb::Rule> = g
                .rules
                .iter()
                .filter(|r| match r.spec.kind {
                    Kind::Alert => want_alerts,
                    Kind::Record => want_records,
                })
                .filter(|r| req.rule_name.is_empty() || req.rule_name.contains(&r.spec.name))
                .map(|r| crate::api::rule_pb(r, &g))
                .collect();
            if rules.is_empty() && (!req.rule_name.is_empty() || req.r#type != 0) {
                continue;
            }
            out.push(crate::api::group_pb(&g, rules));
        }
        out
    }
}
