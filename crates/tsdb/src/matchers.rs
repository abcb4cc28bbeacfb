//! Label matchers (`=`, `!=`, `=~`, `!~`) with Prometheus's anchoring and fast paths
//! for the common regex shapes: literal alternations, prefixes, `.*` and `.+`.

use std::fmt;

use regex_syntax::hir::{Class, Hir, HirKind, Literal};

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchType {
    Equal,
    NotEqual,
    RegexMatch,
    RegexNoMatch,
}

impl MatchType {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchType::Equal => "=",
            MatchType::NotEqual => "!=",
            MatchType::RegexMatch => "=~",
            MatchType::RegexNoMatch => "!~",
        }
    }

    pub fn is_negative(self) -> bool {
        matches!(self, MatchType::NotEqual | MatchType::RegexNoMatch)
    }
}

/// How a regex is evaluated: shapes recognised up front avoid running the regex engine.
#[derive(Clone, Debug)]
enum RegexShape {
    /// `a|b|c` (literal alternatives, sorted and deduplicated).
    Set(Vec<String>),
    /// `prefix.*`. The flag: `.` matches newlines too (`(?s)`, PromQL 3.x).
    Prefix(String, bool),
    /// `.*`: anything (without a newline unless the flag is set).
    Any(bool),
    /// `.+`: anything non-empty (without a newline unless the flag is set).
    NonEmpty(bool),
    General(regex::Regex),
}

#[derive(Clone, Debug)]
pub struct Matcher {
    pub kind: MatchType,
    pub name: String,
    pub value: String,
    shape: Option<RegexShape>,
}

impl PartialEq for Matcher {
    fn eq(&self, o: &Self) -> bool {
        self.kind == o.kind && self.name == o.name && self.value == o.value
    }
}

impl Eq for Matcher {}

impl Matcher {
    pub fn new(kind: MatchType, name: impl Into<String>, value: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let value = value.into();
        let shape = match kind {
            MatchType::RegexMatch | MatchType::RegexNoMatch => Some(compile_shape(&value)?),
            _ => None,
        };
        Ok(Matcher {
            kind,
            name,
            value,
            shape,
        })
    }

    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Matcher {
            kind: MatchType::Equal,
            name: name.into(),
            value: value.into(),
            shape: None,
        }
    }

    pub fn matches(&self, s: &str) -> bool {
        match self.kind {
            MatchType::Equal => s == self.value,
            MatchType::NotEqual => s != self.value,
            MatchType::RegexMatch => self.regex_matches(s),
            MatchType::RegexNoMatch => !self.regex_matches(s),
        }
    }

    fn regex_matches(&self, s: &str) -> bool {
        match &self.shape {
            Some(RegexShape::Set(set)) => set.binary_search_by(|x| x.as_str().cmp(s)).is_ok(),
            Some(RegexShape::Prefix(p, nl)) => {
                s.starts_with(p.as_str()) && (*nl || !s[p.len()..].contains('\n'))
            }
            Some(RegexShape::Any(nl)) => *nl || !s.contains('\n'),
            Some(RegexShape::NonEmpty(nl)) => !s.is_empty() && (*nl || !s.contains('\n')),
            Some(RegexShape::General(re)) => re.is_match(s),
            None => false,
        }
    }

    /// The exact values this matcher accepts, when it accepts a finite set
    /// (`=` and literal alternations); postings lookups use it to skip scanning values.
    pub fn set_matches(&self) -> Option<Vec<&str>> {
        match (self.kind, &self.shape) {
            (MatchType::Equal, _) => Some(vec![self.value.as_str()]),
            (MatchType::RegexMatch, Some(RegexShape::Set(s))) => {
                Some(s.iter().map(String::as_str).collect())
            }
            _ => None,
        }
    }

    /// The literal prefix every accepted value starts with, if the regex has that shape.
    pub fn prefix(&self) -> Option<&str> {
        match (self.kind, &self.shape) {
            (MatchType::RegexMatch, Some(RegexShape::Prefix(p, _))) => Some(p),
            _ => None,
        }
    }

    /// The matcher accepting exactly what this one rejects.
    pub fn inverse(&self) -> Matcher {
        let kind = match self.kind {
            MatchType::Equal => MatchType::NotEqual,
            MatchType::NotEqual => MatchType::Equal,
            MatchType::RegexMatch => MatchType::RegexNoMatch,
            MatchType::RegexNoMatch => MatchType::RegexMatch,
        };
        Matcher {
            kind,
            name: self.name.clone(),
            value: self.value.clone(),
            shape: self.shape.clone(),
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.name, self.kind.as_str())?;
        crate::labels::write_go_quoted(f, &self.value)
    }
}

fn compile_shape(pattern: &str) -> Result<RegexShape> {
    let anchored = format!("^(?:{pattern})$");
    let bad = |e: &dyn fmt::Display| {
        Error::InvalidInput(format!("invalid regular expression {pattern:?}: {e}"))
    };
    let hir = regex_syntax::ParserBuilder::new()
        .build()
        .parse(pattern)
        .map_err(|e| bad(&e))?;
    if let Some(shape) = shape_of(&hir) {
        return Ok(shape);
    }
    let re = regex::Regex::new(&anchored).map_err(|e| bad(&e))?;
    Ok(RegexShape::General(re))
}

fn shape_of(hir: &Hir) -> Option<RegexShape> {
    let hir = strip_captures(hir);
    if let Some(mut set) = finite_set(hir) {
        set.sort();
        set.dedup();
        return Some(RegexShape::Set(set));
    }
    if let Some(nl) = is_dot_star(hir) {
        return Some(RegexShape::Any(nl));
    }
    if let Some(nl) = is_dot_plus(hir) {
        return Some(RegexShape::NonEmpty(nl));
    }
    if let HirKind::Concat(parts) = hir.kind() {
        let (last, head) = parts.split_last()?;
        if let Some(nl) = is_dot_star(last) {
            let mut prefix = finite_set(&Hir::concat(head.to_vec()))?;
            if prefix.len() == 1 {
                return prefix.pop().map(|p| RegexShape::Prefix(p, nl));
            }
        }
    }
    None
}

/// Largest set of strings a regex may expand to and still be matched as a set.
const MAX_SET: usize = 256;

/// All strings `h` matches, when that is a small finite set.
fn finite_set(h: &Hir) -> Option<Vec<String>> {
    match h.kind() {
        HirKind::Empty => Some(vec![String::new()]),
        HirKind::Literal(Literal(bytes)) => Some(vec![String::from_utf8(bytes.to_vec()).ok()?]),
        HirKind::Capture(c) => finite_set(&c.sub),
        HirKind::Class(Class::Unicode(cls)) => {
            let mut out = Vec::new();
            for r in cls.iter() {
                for c in r.start()..=r.end() {
                    out.push(c.to_string());
                    if out.len() > MAX_SET {
                        return None;
                    }
                }
            }
            Some(out)
        }
        HirKind::Alternation(alts) => {
            let mut out = Vec::new();
            for a in alts {
                out.extend(finite_set(a)?);
                if out.len() > MAX_SET {
                    return None;
                }
            }
            Some(out)
        }
        HirKind::Concat(parts) => {
            let mut out = vec![String::new()];
            for p in parts {
                let tails = finite_set(p)?;
                if out.len() * tails.len() > MAX_SET {
                    return None;
                }
                out = out
                    .iter()
                    .flat_map(|head| tails.iter().map(move |t| format!("{head}{t}")))
                    .collect();
            }
            Some(out)
        }
        _ => None,
    }
}

fn strip_captures(h: &Hir) -> &Hir {
    match h.kind() {
        HirKind::Capture(c) => strip_captures(&c.sub),
        _ => h,
    }
}

/// `Some(newline)` if `h` repeats `.` at least `min` times without bound; `newline` tells
/// whether that `.` matches `\n` (the `s` flag).
fn repetition_of_dot(h: &Hir, min: u32) -> Option<bool> {
    match strip_captures(h).kind() {
        HirKind::Repetition(r) if r.min == min && r.max.is_none() => {
            if *r.sub == Hir::dot(regex_syntax::hir::Dot::AnyCharExceptLF) {
                Some(false)
            } else if *r.sub == Hir::dot(regex_syntax::hir::Dot::AnyChar) {
                Some(true)
            } else {
                None
            }
        }
        _ => None,
    }
}

fn is_dot_star(h: &Hir) -> Option<bool> {
    repetition_of_dot(h, 0)
}

fn is_dot_plus(h: &Hir) -> Option<bool> {
    repetition_of_dot(h, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(p: &str) -> Matcher {
        Matcher::new(MatchType::RegexMatch, "x", p).unwrap()
    }

    #[test]
    fn shapes_agree_with_the_regex_engine() {
        let inputs = [
            "", "a", "ab", "abc", "foo", "foobar", "bar", "a\nb", "foo\n", "b",
        ];
        for p in [
            "a|b|ab",
            "foo.*",
            ".*",
            ".+",
            "(a|b)",
            "abc",
            "",
            "a.c",
            "fo+",
            "(?i)foo",
            "f(o)o.*",
            "x|",
            "(?s:.*)",
            "(?s:.+)",
            "(?s:foo.*)",
            "(?s:a.c)",
        ] {
            let m = re(p);
            let plain = regex::Regex::new(&format!("^(?:{p})$")).unwrap();
            for s in inputs {
                assert_eq!(m.matches(s), plain.is_match(s), "pattern {p:?} input {s:?}");
            }
        }
    }

    #[test]
    fn set_and_prefix_detected() {
        assert_eq!(re("b|a|a").set_matches(), Some(vec!["a", "b"]));
        assert_eq!(re("foo.*").prefix(), Some("foo"));
        // PromQL 3.x sends dot-all regexes: the shapes still apply.
        assert_eq!(re("(?s:foo.*)").prefix(), Some("foo"));
        assert_eq!(re("(?s:b|a)").set_matches(), Some(vec!["a", "b"]));
        assert!(re("fo+").set_matches().is_none());
    }

    #[test]
    fn bad_regex_is_an_error() {
        let err = Matcher::new(MatchType::RegexMatch, "x", "(").unwrap_err();
        assert!(err.to_string().contains("invalid regular expression"));
    }

    #[test]
    fn negative_and_inverse() {
        let m = Matcher::new(MatchType::RegexNoMatch, "x", "a|b").unwrap();
        assert!(!m.matches("a") && m.matches("c"));
        assert!(m.inverse().matches("a"));
        assert_eq!(m.to_string(), r#"x!~"a|b""#);
    }
}
