//! Conversions between wire messages and `tsdb` types.

use tsdb::chunkenc::Encoding;
use tsdb::{Label, Labels, MatchType, Matcher};

use crate::pb;

pub fn labels_to_pb(l: &Labels) -> Vec<pb::Label> {
    l.iter()
        .map(|l| pb::Label::new(l.name.as_str(), l.value.as_str()))
        .collect()
}

impl pb::Label {
    /// A label of copies of `name` and `value`.
    pub fn new(name: &str, value: &str) -> Self {
        pb::Label {
            name: bytes::Bytes::copy_from_slice(name.as_bytes()),
            value: bytes::Bytes::copy_from_slice(value.as_bytes()),
        }
    }

    /// The name as text: empty when it is not UTF-8 (such labels are refused on
    /// conversion by [`labels_from_pb`]).
    pub fn name_str(&self) -> &str {
        std::str::from_utf8(&self.name).unwrap_or_default()
    }

    /// Whether the name is one of `names` (replica labels, labels to drop).
    pub fn named_any_of(&self, names: &[String]) -> bool {
        names.iter().any(|n| self.name == n.as_bytes())
    }

    /// The value as text, like [`Self::name_str`].
    pub fn value_str(&self) -> &str {
        std::str::from_utf8(&self.value).unwrap_or_default()
    }
}

/// The text of a label name or value from the wire; an error naming it when it is not UTF-8.
fn text(b: &[u8]) -> Result<String, String> {
    match std::str::from_utf8(b) {
        Ok(s) => Ok(s.to_string()),
        Err(_) => Err(format!(
            "label name or value {:?} is not valid UTF-8",
            String::from_utf8_lossy(b)
        )),
    }
}

/// Labels from the wire, sorted by name (senders should sort; we do not rely on it); an
/// error when a name or value is not UTF-8.
pub fn labels_from_pb(v: &[pb::Label]) -> Result<Labels, String> {
    let mut out = Vec::with_capacity(v.len());
    for l in v {
        out.push(Label {
            name: text(&l.name)?,
            value: text(&l.value)?,
        });
    }
    if out.windows(2).all(|w| w[0].name < w[1].name) {
        return Ok(Labels::from_sorted(out));
    }
    Ok(Labels::from_pairs(
        out.into_iter().map(|l| (l.name, l.value)),
    ))
}

pub fn matcher_to_pb(m: &Matcher) -> pb::LabelMatcher {
    let t = match m.kind {
        MatchType::Equal => pb::label_matcher::Type::Eq,
        MatchType::NotEqual => pb::label_matcher::Type::Neq,
        MatchType::RegexMatch => pb::label_matcher::Type::Re,
        MatchType::RegexNoMatch => pb::label_matcher::Type::Nre,
    };
    pb::LabelMatcher {
        r#type: t as i32,
        name: m.name.clone(),
        value: m.value.clone(),
    }
}

/// Matchers from the wire; a bad regex or unknown type is an error naming the matcher.
pub fn matchers_from_pb(v: &[pb::LabelMatcher]) -> Result<Vec<Matcher>, String> {
    v.iter()
        .map(|m| {
            let kind = match pb::label_matcher::Type::try_from(m.r#type) {
                Ok(pb::label_matcher::Type::Eq) => MatchType::Equal,
                Ok(pb::label_matcher::Type::Neq) => MatchType::NotEqual,
                Ok(pb::label_matcher::Type::Re) => MatchType::RegexMatch,
                Ok(pb::label_matcher::Type::Nre) => MatchType::RegexNoMatch,
                Err(_) => {
                    return Err(format!(
                        "unknown matcher type {} for label {:?}",
                        m.r#type, m.name
                    ))
                }
            };
            Matcher::new(kind, &m.name, &m.value)
                .map_err(|e| format!("matcher on {:?}: {e}", m.name))
        })
        .collect()
}

/// The wire encoding of an on-disk chunk encoding (XOR is 1 on disk, 0 on the wire).
pub fn encoding_to_pb(e: Encoding) -> Option<pb::chunk::Encoding> {
    match e {
        Encoding::XOR => Some(pb::chunk::Encoding::Xor),
        Encoding::HISTOGRAM => Some(pb::chunk::Encoding::Histogram),
        Encoding::FLOAT_HISTOGRAM => Some(pb::chunk::Encoding::FloatHistogram),
        _ => None,
    }
}

pub fn encoding_from_pb(e: i32) -> Option<Encoding> {
    match pb::chunk::Encoding::try_from(e).ok()? {
        pb::chunk::Encoding::Xor => Some(Encoding::XOR),
        pb::chunk::Encoding::Histogram => Some(Encoding::HISTOGRAM),
        pb::chunk::Encoding::FloatHistogram => Some(Encoding::FLOAT_HISTOGRAM),
    }
}

/// Compares two wire label lists as `Labels` compare, without allocating.
pub fn compare_pb_labels(a: &[pb::Label], b: &[pb::Label]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        let c = x.name.cmp(&y.name).then_with(|| x.value.cmp(&y.value));
        if c.is_ne() {
            return c;
        }
    }
    a.len().cmp(&b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1")]);
        assert_eq!(labels_from_pb(&labels_to_pb(&l)), Ok(l));
        let bad = pb::Label {
            name: "job".into(),
            value: bytes::Bytes::from_static(b"\xff"),
        };
        assert!(labels_from_pb(&[bad]).unwrap_err().contains("UTF-8"));
        let m = Matcher::new(MatchType::RegexNoMatch, "job", "a|b").unwrap();
        assert_eq!(matchers_from_pb(&[matcher_to_pb(&m)]).unwrap(), vec![m]);
        assert_eq!(encoding_to_pb(Encoding::XOR).map(|e| e as i32), Some(0));
        assert_eq!(encoding_from_pb(0), Some(Encoding::XOR));
        let bad = pb::LabelMatcher {
            r#type: 2,
            name: "x".into(),
            value: "(".into(),
        };
        assert!(matchers_from_pb(&[bad]).unwrap_err().contains("\"x\""));
    }
}
