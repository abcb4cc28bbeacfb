//! Alert state of one alerting rule, as Prometheus keeps it: pending until the condition has
//! held for `for`, then firing; kept firing for `keep_firing_for` after the condition
//! clears; resolved alerts kept for 15 minutes so Alertmanager hears of the resolution; and
//! the `ALERTS` / `ALERTS_FOR_STATE` series written at each evaluation.

use std::collections::{BTreeMap, HashMap};

use tsdb::Labels;

use crate::query::Sample;

/// How long resolved alerts are kept (and re-sent) after resolution.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Inactive,
    Pending,
    Firing,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Inactive => "inactive",
            State::Pending => "pending",
            State::Firing => "firing",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Alert {
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub state: State,
    pub value: f64,
    pub active_at: i64,
    pub fired_at: i64,
    pub resolved_at: i64,
    pub last_sent_at: i64,
    pub valid_until: i64,
    pub keep_firing_since: i64,
}

impl Alert {
    /// Prometheus's rule: never pending ones; resolved since the last send; or due again.
    pub fn needs_sending(&self, ts: i64, resend_delay: i64) -> bool {
        if self.state == State::Pending {
            return false;
        }
        if self.resolved_at > self.last_sent_at {
            return true;
        }
        self.last_sent_at + resend_delay < ts
    }
}

/// Alerts of one rule by label set.
#[derive(Default, Clone, Debug)]
pub struct Active {
    pub alerts: HashMap<Labels, Alert>,
    /// Whether state was restored from `ALERTS_FOR_STATE` after a restart.
    pub restored: bool,
}

/// The labels of an alert from a query result: the sample's labels without the metric name,
/// then the rule's (expanded) labels, then `alertname`.
pub fn alert_labels(
    sample: &Labels,
    rule_labels: &BTreeMap<String, String>,
    alertname: &str,
) -> Labels {
    let mut pairs: Vec<(String, String)> = sample
        .iter()
        .filter(|l| l.name != tsdb::labels::METRIC_NAME)
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect();
    pairs.extend(rule_labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    pairs.push(("alertname".into(), alertname.into()));
    Labels::from_pairs(pairs)
}

impl Active {
    /// Updates the state with an evaluation at `ts` whose result gave `current` (alert
    /// labels, annotations, value). Returns an error on clashing label sets.
    pub fn update(
        &mut self,
        ts: i64,
        current: Vec<(Labels, BTreeMap<String, String>, f64)>,
        hold_ms: i64,
        keep_firing_for_ms: i64,
    ) -> Result<(), String> {
        let mut seen: HashMap<Labels, ()> = HashMap::with_capacity(current.len());
        for (labels, annotations, value) in current {
            if seen.insert(labels.clone(), ()).is_some() {
                return Err(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .into(),
                );
            }
            match self.alerts.get_mut(&labels) {
                Some(a) if a.state != State::Inactive => {
                    a.value = value;
                    a.annotations = annotations;
                }
                _ => {
                    self.alerts.insert(
                        labels.clone(),
                        Alert {
                            labels,
                            annotations,
                            state: State::Pending,
                            value,
                            active_at: ts,
                            fired_at: 0,
                            resolved_at: 0,
                            last_sent_at: 0,
                            valid_until: 0,
                            keep_firing_since: 0,
                        },
                    );
                }
            }
        }
        self.alerts.retain(|labels, a| {
            if seen.contains_key(labels) {
                if a.state == State::Pending && ts - a.active_at >= hold_ms {
                    a.state = State::Firing;
                    a.fired_at = ts;
                }
                a.keep_firing_since = 0;
                return true;
            }
            // Gone from the result.
            if a.state == State::Pending
                || (a.resolved_at != 0 && ts - a.resolved_at > RESOLVED_RETENTION_MS)
            {
                return false;
            }
            if a.state == State::Firing {
                if keep_firing_for_ms > 0 {
                    if a.keep_firing_since == 0 {
                        a.keep_firing_since = ts;
                    }
                    if ts - a.keep_firing_since < keep_firing_for_ms {
                        return true;
                    }
                }
                a.state = State::Inactive;
                a.resolved_at = ts;
            }
            true
        });
        Ok(())
    }

    /// The `ALERTS` and `ALERTS_FOR_STATE` samples for the active (pending or firing) alerts.
    pub fn series(&self, ts: i64) -> Vec<(Labels, i64, f64)> {
        let mut out = Vec::new();
        for a in self.alerts.values() {
            if a.state == State::Inactive {
                continue;
            }
            let mut l: Vec<(String, String)> = a
                .labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            l.push(("__name__".into(), "ALERTS_FOR_STATE".into()));
            out.push((
                Labels::from_pairs(l.clone()),
                ts,
                (a.active_at / 1000) as f64,
            ));
            l.pop();
            l.push(("__name__".into(), "ALERTS".into()));
            l.push(("alertstate".into(), a.state.name().into()));
            out.push((Labels::from_pairs(l), ts, 1.0));
        }
        out
    }

    /// Restores `active_at` of pending alerts from the last `ALERTS_FOR_STATE` sample before
    /// the restart (`(sample time, active_at seconds)` per alert label set), as Prometheus
    /// does: firing alerts keep their start; alerts that were pending continue where they
    /// stopped, but get at least `grace_ms` before firing.
    /// Labels in `ignored` (`--restore-ignored-label`) are left out when matching alerts
    /// to `found`, whose keys must already be without them.
    pub fn restore(
        &mut self,
        ts: i64,
        hold_ms: i64,
        grace_ms: i64,
        found: &HashMap<Labels, (i64, f64)>,
        ignored: &[String],
    ) {
        self.restored = true;
        if hold_ms < grace_ms {
            return;
        }
        for a in self.alerts.values_mut() {
            let key = without(&a.labels, ignored);
            let Some(&(down_at, active_s)) = found.get(&key) else {
                continue;
            };
            let down_at = down_at / 1000 * 1000;
            let mut active_at = (active_s as i64) * 1000;
            let remaining = hold_ms - (down_at - active_at);
            if remaining <= 0 {
                // Was firing: keep its start.
            } else if remaining < grace_ms {
                active_at = ts + grace_ms - hold_ms;
            } else {
                active_at += ts - down_at;
            }
            a.active_at = active_at;
        }
    }
}

/// `labels` without the labels named in `ignored`.
pub fn without(labels: &Labels, ignored: &[String]) -> Labels {
    if ignored.is_empty() {
        return labels.clone();
    }
    Labels::from_sorted(
        labels
            .iter()
            .filter(|l| !ignored.contains(&l.name))
            .cloned()
            .collect(),
    )
}

/// Turns a query result into alerts' labels and values (label templates expanded by
/// `expand`, which gets the sample's labels and value).
pub fn current_alerts(
    samples: &[Sample],
    alertname: &str,
    mut expand: impl FnMut(&Sample) -> (BTreeMap<String, String>, BTreeMap<String, String>),
) -> Vec<(Labels, BTreeMap<String, String>, f64)> {
    samples
        .iter()
        .map(|s| {
            let (labels, annotations) = expand(s);
            (
                alert_labels(&s.labels, &labels, alertname),
                annotations,
                s.value,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(n: usize) -> Vec<(Labels, BTreeMap<String, String>, f64)> {
        (0..n)
            .map(|i| {
                (
                    Labels::from_pairs([("alertname", "A".to_string()), ("i", i.to_string())]),
                    BTreeMap::new(),
                    1.0,
                )
            })
            .collect()
    }

    fn states(a: &Active) -> Vec<&'static str> {
        let mut v: Vec<_> = a.alerts.values().map(|a| a.state.name()).collect();
        v.sort();
        v
    }

    #[test]
    fn pending_firing_resolved() {
        let mut a = Active::default();
        a.update(0, cur(1), 60_000, 0).unwrap();
        assert_eq!(states(&a), ["pending"]);
        a.update(30_000, cur(1), 60_000, 0).unwrap();
        assert_eq!(states(&a), ["pending"]);
        a.update(60_000, cur(1), 60_000, 0).unwrap();
        assert_eq!(states(&a), ["firing"]);
        let s = a.series(60_000);
        assert_eq!(s.len(), 2);
        assert!(s
            .iter()
            .any(|(l, _, v)| l.get("alertstate") == Some("firing") && *v == 1.0));
        assert!(s
            .iter()
            .any(|(l, _, v)| l.metric_name() == Some("ALERTS_FOR_STATE") && *v == 0.0));
        a.update(90_000, cur(0), 60_000, 0).unwrap();
        assert_eq!(states(&a), ["inactive"]);
        assert!(a.series(90_000).is_empty());
        let al = a.alerts.values().next().unwrap();
        assert_eq!(al.resolved_at, 90_000);
        assert!(al.needs_sending(90_000, 60_000));
        a.update(90_000 + RESOLVED_RETENTION_MS + 1, cur(0), 60_000, 0)
            .unwrap();
        assert!(a.alerts.is_empty());
        // A pending alert that goes away is dropped at once.
        a.update(0, cur(1), 60_000, 0).unwrap();
        a.update(10_000, cur(0), 60_000, 0).unwrap();
        assert!(a.alerts.is_empty());
    }

    #[test]
    fn keep_firing_for_and_duplicates() {
        let mut a = Active::default();
        a.update(0, cur(1), 0, 120_000).unwrap();
        assert_eq!(states(&a), ["firing"]);
        a.update(60_000, cur(0), 0, 120_000).unwrap();
        assert_eq!(states(&a), ["firing"]);
        a.update(179_000, cur(0), 0, 120_000).unwrap();
        assert_eq!(states(&a), ["firing"]);
        a.update(180_000, cur(0), 0, 120_000).unwrap();
        assert_eq!(states(&a), ["inactive"]);
        let mut dup = cur(1);
        dup.extend(cur(1));
        assert!(a
            .update(0, dup, 0, 0)
            .unwrap_err()
            .contains("same labelset"));
    }

    #[test]
    fn restores_for_state() {
        let mut a = Active::default();
        let now = 10_000_000;
        a.update(now, cur(3), 600_000, 0).unwrap();
        let l =
            |i: usize| Labels::from_pairs([("alertname", "A".to_string()), ("i", i.to_string())]);
        let found: HashMap<Labels, (i64, f64)> = [
            // Was firing (active 20 min before going down).
            (
                l(0),
                (now - 60_000, ((now - 60_000 - 1_200_000) / 1000) as f64),
            ),
            // Pending 1 of 10 minutes: continues, shifted by the downtime.
            (l(1), (now - 60_000, ((now - 120_000) / 1000) as f64)),
            // Pending 9 of 10 minutes: gets the grace period.
            (
                l(2),
                (now - 60_000, ((now - 60_000 - 540_000) / 1000) as f64),
            ),
        ]
        .into_iter()
        .collect();
        a.restore(now, 600_000, 300_000, &found, &[]);
        assert_eq!(a.alerts[&l(0)].active_at, now - 60_000 - 1_200_000);
        assert_eq!(a.alerts[&l(1)].active_at, now - 60_000);
        assert_eq!(a.alerts[&l(2)].active_at, now + 300_000 - 600_000);
        a.update(now + 1000, cur(3), 600_000, 0).unwrap();
        assert_eq!(a.alerts[&l(0)].state, State::Firing);
        assert_eq!(a.alerts[&l(1)].state, State::Pending);

        // An ignored label (here `i`) does not take part in matching.
        let mut b = Active::default();
        b.update(now, cur(1), 600_000, 0).unwrap();
        let key = without(&l(0), &["i".to_string()]);
        let found: HashMap<Labels, (i64, f64)> =
            [(key, (now - 60_000, ((now - 1_800_000) / 1000) as f64))]
                .into_iter()
                .collect();
        b.restore(now, 600_000, 300_000, &found, &["i".to_string()]);
        assert_eq!(b.alerts[&l(0)].active_at, now - 1_800_000);
    }
}
