//! `info(v, [data-label-selector])` (Prometheus 3.x, experimental): adds to each series the
//! data labels of the info series (`target_info` unless the selector names others) that
//! share its identifying labels (`instance`, `job`), as 3.14's `promql/info.go` does.

use super::select::selector_matchers;
use super::*;
use std::collections::{BTreeSet, HashMap};

const TARGET_INFO: &str = "target_info";
const IDENTIFYING: [&str; 2] = ["instance", "job"];

/// The name matchers info series must meet: those given, unless none of them is `=` or
/// `=~` (then `.+_info` is added), or `target_info` when none are given.
fn effective_name_matchers(given: Vec<Matcher>) -> Result<Vec<Matcher>> {
    if given
        .iter()
        .any(|m| matches!(m.kind, MatchType::Equal | MatchType::RegexMatch))
    {
        return Ok(given);
    }
    if !given.is_empty() {
        let mut out = vec![Matcher::new(MatchType::RegexMatch, METRIC_NAME, ".+_info")
            .map_err(|e| Error::exec(e.to_string()))?];
        out.extend(given);
        return Ok(out);
    }
    Ok(vec![Matcher::equal(METRIC_NAME, TARGET_INFO)])
}

/// `name` plus the identifying labels `l` has: what a base series and an info series share.
fn signature(name: &str, l: &Labels) -> String {
    let mut sig = String::from(name);
    for id in IDENTIFYING {
        if let Some(v) = l.get(id) {
            sig.push('\u{ff}');
            sig.push_str(id);
            sig.push('=');
            sig.push_str(v);
        }
    }
    sig
}

impl<'a> Evaluator<'a, '_> {
    pub(super) fn info(&self, args: &[&Expr]) -> Result<Val> {
        let base = match self.eval(args[0])? {
            Val::Vector(s) => s,
            _ => return Err(Error::exec("info: expected an instant vector")),
        };
        // Data label matchers by label name; the name matchers pick the info metrics.
        let mut data: Vec<Matcher> = Vec::new();
        let mut name_matchers: Vec<Matcher> = Vec::new();
        match args.get(1) {
            None => {}
            Some(Expr::VectorSelector(vs)) => {
                for m in selector_matchers(vs, self.ctx.v3)? {
                    if m.name == METRIC_NAME {
                        name_matchers.push(m);
                    } else {
                        data.push(m);
                    }
                }
            }
            Some(_) => {
                return Err(Error::Parse(
                    "parse error: expected label selectors as the second argument of info()".into(),
                ))
            }
        }
        let names = effective_name_matchers(name_matchers)?;
        // Info series among the input pass through unchanged.
        let ignored: Vec<bool> = base
            .iter()
            .map(|s| {
                let n = s.labels.get(METRIC_NAME).unwrap_or("");
                names.iter().all(|m| m.matches(n))
            })
            .collect();
        let mut id_values: HashMap<&str, BTreeSet<&str>> = HashMap::new();
        for (s, _) in base.iter().zip(&ignored).filter(|(_, &ig)| !ig) {
            for id in IDENTIFYING {
                if let Some(v) = s.labels.get(id).filter(|v| !v.is_empty()) {
                    id_values.entry(id).or_default().insert(v);
                }
            }
        }
        let mut infos: Vec<Series> = Vec::new();
        if !id_values.is_empty() {
            let mut matchers: Vec<Matcher> = Vec::new();
            for id in IDENTIFYING {
                if let Some(vals) = id_values.get(id) {
                    let alternation: Vec<String> = vals.iter().map(|v| regex::escape(v)).collect();
                    matchers.push(
                        Matcher::new(MatchType::RegexMatch, id, alternation.join("|"))
                            .map_err(|e| Error::exec(e.to_string()))?,
                    );
                }
            }
            matchers.extend(data.iter().cloned());
            matchers.extend(names.iter().cloned());
            // Each step's latest info sample, valued at its time: the newest one wins.
            self.lookback_each(&matchers, None, 0, true, &mut |s| {
                infos.push(s);
                Ok(())
            })?;
        }
        let info_names: BTreeSet<String> = infos
            .iter()
            .map(|s| s.labels.get(METRIC_NAME).unwrap_or("").to_string())
            .collect();
        let info_sigs: Vec<String> = infos
            .iter()
            .map(|s| signature(s.labels.get(METRIC_NAME).unwrap_or(""), &s.labels))
            .collect();
        let base_sigs: Vec<Vec<(String, String)>> = base
            .iter()
            .map(|s| {
                info_names
                    .iter()
                    .map(|n| (n.clone(), signature(n, &s.labels)))
                    .collect()
            })
            .collect();
        let empty_ok = data.iter().all(|m| m.matches(""));
        let steps = self.range.steps();
        let (mut base_cur, mut info_cur) =
            (StepCursor::new(base.len()), StepCursor::new(infos.len()));
        let mut latest: HashMap<&str, (usize, f64)> = HashMap::new();
        let mut out = OutBuilder::new();
        for step in 0..steps {
            self.ctx.check_every(step)?;
            let ts = self.range.ts(step);
            latest.clear();
            for (k, sig) in info_sigs.iter().enumerate() {
                let Some(t) = info_cur.at(&infos, k, ts) else {
                    continue;
                };
                match latest.get(sig.as_str()) {
                    Some(&(_, seen)) if seen > t => {}
                    Some(&(other, seen)) if seen == t => {
                        return Err(Error::exec(format!(
                            "found duplicate series for info metric: existing {} @ {}, new {} @ {}",
                            infos[other].labels,
                            (seen * 1000.0) as i64,
                            infos[k].labels,
                            (t * 1000.0) as i64
                        )));
                    }
                    _ => {
                        latest.insert(sig, (k, t));
                    }
                }
            }
            for (b, s) in base.iter().enumerate() {
                let Some(v) = base_cur.at(&base, b, ts) else {
                    continue;
                };
                if ignored[b] {
                    let slot = out.slot(s.labels.clone());
                    out.push(slot, step, ts, v)?;
                    continue;
                }
                let mut added: Vec<(&str, &str)> = Vec::new();
                let mut seen_any = false;
                for (_, sig) in &base_sigs[b] {
                    let Some(&(k, _)) = latest.get(sig.as_str()) else {
                        continue;
                    };
                    seen_any = true;
                    for l in infos[k].labels.iter() {
                        if l.name == METRIC_NAME
                            || (!data.is_empty() && !data.iter().any(|m| m.name == l.name))
                        {
                            continue;
                        }
                        if let Some(&(_, v)) = added.iter().find(|(n, _)| *n == l.name) {
                            if v != l.value {
                                return Err(Error::exec(format!("conflicting label: {}", l.name)));
                            }
                            continue;
                        }
                        if s.labels.get(&l.name).is_some() {
                            continue;
                        }
                        added.push((&l.name, &l.value));
                    }
                }
                if !seen_any && !empty_ok {
                    continue;
                }
                let mut labels = s.labels.clone();
                for (n, v) in added {
                    labels.set(n, v);
                }
                let slot = out.slot(labels);
                out.push(slot, step, ts, v)?;
            }
        }
        Ok(Val::Vector(out.finish()))
    }
}
