//! Block selection by relabelling (`--selector.relabel-config`), as Thanos applies it to a
//! block's external labels plus `__block_id`: Prometheus's relabel rules with the actions a
//! selector may use, `keep`, `drop` and `hashmod` (which shards blocks across compactors or
//! store gateways).
//!
//! ```yaml
//! - action: hashmod
//!   source_labels: [cluster]
//!   modulus: 2
//!   target_label: shard
//! - action: keep
//!   source_labels: [shard]
//!   regex: "0"
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    source_labels: Vec<String>,
    #[serde(default)]
    separator: Option<String>,
    #[serde(default)]
    regex: Option<String>,
    #[serde(default)]
    modulus: u64,
    #[serde(default)]
    target_label: String,
    #[serde(default)]
    replacement: Option<String>,
    #[serde(default)]
    action: Option<String>,
}

#[derive(Clone, Debug)]
enum Action {
    Keep,
    Drop,
    HashMod { modulus: u64, target: String },
    Replace { target: String, replacement: String },
    LabelDrop,
    LabelKeep,
    LabelMap { replacement: String },
    Lowercase { target: String },
    Uppercase { target: String },
}

/// One relabel rule, compiled.
#[derive(Clone, Debug)]
struct Rule {
    source_labels: Vec<String>,
    separator: String,
    regex: regex::Regex,
    action: Action,
}

/// A selector: relabel rules that keep or drop a label set.
#[derive(Clone, Debug, Default)]
pub struct Relabel {
    rules: Vec<Rule>,
}

impl Relabel {
    /// Parses a relabel config (a YAML list of rules). Actions other than keep, drop and
    /// hashmod are refused, as Thanos refuses them for selection.
    pub fn parse(yaml: &str) -> Result<Relabel> {
        Self::parse_with(yaml, false)
    }

    /// Parses a relabel config that may also rewrite labels (`replace`, `labeldrop`,
    /// `labelkeep`, `labelmap`, `lowercase`, `uppercase`), as for alerts.
    pub fn parse_rewriting(yaml: &str) -> Result<Relabel> {
        Self::parse_with(yaml, true)
    }

    fn parse_with(yaml: &str, rewriting: bool) -> Result<Relabel> {
        if yaml.trim().is_empty() {
            return Ok(Relabel::default());
        }
        let raw: Vec<RawRule> = serde_yaml::from_str(yaml)
            .map_err(|e| Error::Config(format!("relabel config: {e}")))?;
        let mut rules = Vec::with_capacity(raw.len());
        for (i, r) in raw.into_iter().enumerate() {
            let at = |msg: String| Error::Config(format!("relabel config rule {}: {msg}", i + 1));
            let pattern = r.regex.unwrap_or_else(|| "(.*)".into());
            let regex = regex::Regex::new(&format!("^(?:{pattern})$"))
                .map_err(|e| at(format!("regex {pattern:?}: {e}")))?;
            let action = match r
                .action
                .as_deref()
                .unwrap_or("replace")
                .to_ascii_lowercase()
                .as_str()
            {
                "keep" => Action::Keep,
                "drop" => Action::Drop,
                "hashmod" => {
                    if r.modulus == 0 {
                        return Err(at("hashmod needs a modulus above 0".into()));
                    }
                    if r.target_label.is_empty() {
                        return Err(at("hashmod needs a target_label".into()));
                    }
                    Action::HashMod {
                        modulus: r.modulus,
                        target: r.target_label,
                    }
                }
                "replace" if rewriting => {
                    if r.target_label.is_empty() {
                        return Err(at("replace needs a target_label".into()));
                    }
                    Action::Replace {
                        target: r.target_label,
                        replacement: r.replacement.clone().unwrap_or_else(|| "$1".into()),
                    }
                }
                "labeldrop" if rewriting => Action::LabelDrop,
                "labelkeep" if rewriting => Action::LabelKeep,
                "labelmap" if rewriting => Action::LabelMap {
                    replacement: r.replacement.clone().unwrap_or_else(|| "$1".into()),
                },
                "lowercase" if rewriting => Action::Lowercase {
                    target: r.target_label,
                },
                "uppercase" if rewriting => Action::Uppercase {
                    target: r.target_label,
                },
                other if rewriting => return Err(at(format!("unknown relabel action {other:?}"))),
                other => {
                    return Err(at(format!(
                        "action {other:?} is not allowed for selection; use keep, drop or hashmod"
                    )))
                }
            };
            rules.push(Rule {
                source_labels: r.source_labels,
                separator: r.separator.unwrap_or_else(|| ";".into()),
                regex,
                action,
            });
        }
        Ok(Relabel { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether the label set survives the rules.
    pub fn keeps(&self, labels: &BTreeMap<String, String>) -> bool {
        let mut labels = labels.clone();
        self.process(&mut labels)
    }

    /// Applies the rules to `labels`; false when a rule drops the set (or it ends empty).
    pub fn process(&self, labels: &mut BTreeMap<String, String>) -> bool {
        for r in &self.rules {
            let value = r
                .source_labels
                .iter()
                .map(|n| labels.get(n).map(String::as_str).unwrap_or(""))
                .collect::<Vec<_>>()
                .join(&r.separator);
            match &r.action {
                Action::Keep => {
                    if !r.regex.is_match(&value) {
                        return false;
                    }
                }
                Action::Drop => {
                    if r.regex.is_match(&value) {
                        return false;
                    }
                }
                Action::HashMod { modulus, target } => {
                    let h = md5(value.as_bytes());
                    let n =
                        u64::from_be_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
                    labels.insert(target.clone(), (n % modulus).to_string());
                }
                Action::Replace {
                    target,
                    replacement,
                } => {
                    if let Some(c) = r.regex.captures(&value) {
                        let mut t = String::new();
                        c.expand(target, &mut t);
                        let mut v = String::new();
                        c.expand(replacement, &mut v);
                        if !t.is_empty() {
                            if v.is_empty() {
                                labels.remove(&t);
                            } else {
                                labels.insert(t, v);
                            }
                        }
                    }
                }
                Action::LabelDrop => labels.retain(|k, _| !r.regex.is_match(k)),
                Action::LabelKeep => labels.retain(|k, _| r.regex.is_match(k)),
                Action::LabelMap { replacement } => {
                    let mapped: Vec<(String, String)> = labels
                        .iter()
                        .filter_map(|(k, v)| {
                            let c = r.regex.captures(k)?;
                            let mut n = String::new();
                            c.expand(replacement, &mut n);
                            Some((n, v.clone()))
                        })
                        .collect();
                    labels.extend(mapped);
                }
                Action::Lowercase { target } => {
                    labels.insert(target.clone(), value.to_lowercase());
                }
                Action::Uppercase { target } => {
                    labels.insert(target.clone(), value.to_uppercase());
                }
            }
        }
        !labels.is_empty()
    }
}

/// MD5 (RFC 1321), as Prometheus's hashmod uses it.
pub fn md5(input: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32)
        .collect();
    let (mut a0, mut b0, mut c0, mut d0) = (
        0x6745_2301u32,
        0xefcd_ab89u32,
        0x98ba_dcfeu32,
        0x1032_5476u32,
    );
    let mut msg = input.to_vec();
    let bit_len = (input.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_le_bytes());
    for block in msg.chunks_exact(64) {
        let m: Vec<u32> = block
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let (mut a, mut b, mut c, mut d) = (a0, b0, c0, d0);
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        a0 = a0.wrapping_add(a);
        b0 = b0.wrapping_add(b);
        c0 = c0.wrapping_add(c);
        d0 = d0.wrapping_add(d);
    }
    let mut out = [0u8; 16];
    for (i, w) in [a0, b0, c0, d0].iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn md5_matches_rfc_1321() {
        assert_eq!(hex(&md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex(&md5(b"abc")), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            hex(&md5(
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890"
            )),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn keep_drop_and_hashmod_shard_blocks() {
        let r =
            Relabel::parse("- action: keep\n  source_labels: [cluster]\n  regex: eu-.*\n").unwrap();
        assert!(r.keeps(&labels(&[("cluster", "eu-1")])));
        assert!(!r.keeps(&labels(&[("cluster", "us-1")])));
        let r =
            Relabel::parse("- action: drop\n  source_labels: [cluster]\n  regex: us-.*\n").unwrap();
        assert!(r.keeps(&labels(&[("cluster", "eu-1")])));
        assert!(!r.keeps(&labels(&[("cluster", "us-1")])));
        // Two shards split the clusters between them, each cluster to exactly one.
        let shard = |n: u32| {
            Relabel::parse(&format!(
                "- action: hashmod\n  source_labels: [cluster]\n  modulus: 2\n  target_label: shard\n- action: keep\n  source_labels: [shard]\n  regex: \"{n}\"\n"
            ))
            .unwrap()
        };
        let (s0, s1) = (shard(0), shard(1));
        for c in ["a", "b", "c", "d", "e", "f"] {
            let l = labels(&[("cluster", c)]);
            assert!(s0.keeps(&l) != s1.keeps(&l), "{c}");
        }
        assert!(Relabel::parse("- action: labelmap\n  regex: x\n").is_err());
    }

    #[test]
    fn rewriting_actions_for_alerts() {
        let r = Relabel::parse_rewriting(
            "- source_labels: [severity]\n  regex: (.*)\n  target_label: level\n  replacement: sev-$1\n- action: labeldrop\n  regex: replica\n- action: labelmap\n  regex: team_(.*)\n- action: uppercase\n  source_labels: [env]\n  target_label: env\n",
        )
        .unwrap();
        let mut l = labels(&[
            ("severity", "page"),
            ("replica", "a"),
            ("team_x", "1"),
            ("env", "prod"),
        ]);
        assert!(r.process(&mut l));
        assert_eq!(
            l,
            labels(&[
                ("severity", "page"),
                ("level", "sev-page"),
                ("team_x", "1"),
                ("x", "1"),
                ("env", "PROD")
            ])
        );
        assert!(Relabel::parse_rewriting("- action: bogus\n").is_err());
    }
}
