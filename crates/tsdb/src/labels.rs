//! Label sets: sorted name/value pairs identifying a series.

use std::cmp::Ordering;
use std::fmt;

/// The label holding the metric name.
pub const METRIC_NAME: &str = "__name__";

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Label {
    pub name: String,
    pub value: String,
}

impl Label {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A label set, sorted by name, names unique. Ordering is Prometheus's `labels.Compare`:
/// pairwise by name then value, a shorter prefix first.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Labels(Vec<Label>);

impl Labels {
    pub const fn empty() -> Self {
        Labels(Vec::new())
    }

    /// Builds a label set from pairs in any order; later duplicates of a name win;
    /// empty values are dropped as Prometheus does.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let mut v: Vec<Label> = pairs.into_iter().map(|(n, v)| Label::new(n, v)).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out: Vec<Label> = Vec::with_capacity(v.len());
        for l in v {
            match out.last_mut() {
                Some(last) if last.name == l.name => *last = l,
                _ => out.push(l),
            }
        }
        out.retain(|l| !l.value.is_empty());
        Labels(out)
    }

    /// Wraps labels already sorted by unique name (not checked in release builds).
    pub fn from_sorted(v: Vec<Label>) -> Self {
        debug_assert!(v.windows(2).all(|w| w[0].name < w[1].name));
        Labels(v)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    /// The value of `name`, or "" when absent (Prometheus semantics).
    pub fn value_of(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<Label> {
        self.0
    }

    /// Sets `name` to `value` (removes it when `value` is empty).
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                self.0.remove(i);
            }
            Ok(i) => value.clone_into(&mut self.0[i].value),
            Err(_) if value.is_empty() => {}
            Err(i) => self.0.insert(i, Label::new(name, value)),
        }
    }

    pub fn remove(&mut self, name: &str) {
        if let Ok(i) = self.0.binary_search_by(|l| l.name.as_str().cmp(name)) {
            self.0.remove(i);
        }
    }

    pub fn retain(&mut self, f: impl FnMut(&Label) -> bool) {
        self.0.retain(f);
    }

    /// The label set without the metric name.
    pub fn without_metric_name(&self) -> Labels {
        let mut l = self.clone();
        l.remove(METRIC_NAME);
        l
    }

    /// Adds `ext` labels, which win over labels of the same name (Thanos's external labels).
    pub fn merge_overriding(&self, ext: &Labels) -> Labels {
        let mut out = self.clone();
        for l in ext.iter() {
            out.set(&l.name, &l.value);
        }
        out
    }

    /// Prometheus's `labels.Compare`.
    pub fn compare(&self, other: &Labels) -> Ordering {
        compare_label_slices(&self.0, &other.0)
    }
}

/// Compares two sorted label slices as Prometheus does.
pub fn compare_label_slices(a: &[Label], b: &[Label]) -> Ordering {
    for (x, y) in a.iter().zip(b.iter()) {
        let c = x.name.cmp(&y.name).then_with(|| x.value.cmp(&y.value));
        if c != Ordering::Equal {
            return c;
        }
    }
    a.len().cmp(&b.len())
}

impl Ord for Labels {
    fn cmp(&self, other: &Self) -> Ordering {
        self.compare(other)
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Prints as Prometheus's `Labels.String()`: `{a="1", b="2"}` with Go-style quoting.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}=", l.name)?;
            write_go_quoted(f, &l.value)?;
        }
        f.write_str("}")
    }
}

/// Writes `s` quoted as Go's `strconv.Quote` does for printable UTF-8.
pub fn write_go_quoted(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            '\u{7}' => f.write_str("\\a")?,
            '\u{8}' => f.write_str("\\b")?,
            '\u{c}' => f.write_str("\\f")?,
            '\u{b}' => f.write_str("\\v")?,
            c if (c as u32) < 0x20 || c as u32 == 0x7f => write!(f, "\\x{:02x}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_dedups_and_prints() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", ""), ("b", "3")]);
        assert_eq!(l.to_string(), r#"{a="1", b="3"}"#);
        assert_eq!(l.get("b"), Some("3"));
        assert_eq!(l.value_of("zz"), "");
    }

    #[test]
    fn compare_prefix_first() {
        let a = Labels::from_pairs([("a", "1")]);
        let b = Labels::from_pairs([("a", "1"), ("b", "1")]);
        assert!(a < b);
        let c = Labels::from_pairs([("a", "2")]);
        assert!(b < c);
    }

    #[test]
    fn set_and_remove() {
        let mut l = Labels::from_pairs([("a", "1")]);
        l.set("c", "3");
        l.set("b", "2");
        l.set("a", "");
        assert_eq!(l.to_string(), r#"{b="2", c="3"}"#);
    }
}
