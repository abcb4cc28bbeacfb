//! Recently parsed short queries. The querier parses a query when it checks it and again
//! for each evaluation attempt, and dashboards send the same queries over and over;
//! parsing compiles every regex matcher, which costs more than a small query's evaluation.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use promql_parser::parser::Expr;

use crate::durations::QueryShape;
use crate::parse::Dialect;
use crate::positions::Positions;

/// Queries kept.
const ENTRIES: usize = 64;
/// Longest query text kept.
pub(crate) const MAX_TEXT: usize = 2048;

/// A parsed, checked query. The tree is boxed: positions are keyed by node address, so its
/// root must not move once they are taken.
pub(crate) struct Parsed {
    pub expr: Box<Expr>,
    pub positions: Positions,
    pub nesting: usize,
}

struct Entry {
    text: Box<[u8]>,
    dialect: Dialect,
    shape: QueryShape,
    parsed: Arc<Parsed>,
}

fn entries() -> &'static Mutex<VecDeque<Entry>> {
    static ENTRIES: Mutex<VecDeque<Entry>> = Mutex::new(VecDeque::new());
    &ENTRIES
}

/// The parse of `text` in `dialect` for a query of `shape`, if kept.
pub(crate) fn get(text: &[u8], dialect: Dialect, shape: QueryShape) -> Option<Arc<Parsed>> {
    if text.len() > MAX_TEXT {
        return None;
    }
    let all = entries().lock().unwrap_or_else(PoisonError::into_inner);
    all.iter()
        .find(|e| e.dialect == dialect && e.shape == shape && *e.text == *text)
        .map(|e| e.parsed.clone())
}

/// Keeps `parsed`, the newest entry, dropping the oldest past [`ENTRIES`].
pub(crate) fn put(text: &[u8], dialect: Dialect, shape: QueryShape, parsed: Arc<Parsed>) {
    let mut all = entries().lock().unwrap_or_else(PoisonError::into_inner);
    all.push_front(Entry {
        text: text.into(),
        dialect,
        shape,
        parsed,
    });
    all.truncate(ENTRIES);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_for_query;

    /// Where the query's outer and inner expressions start, as a parse reports them.
    fn starts(text: &str, shape: QueryShape) -> (Option<usize>, Option<usize>) {
        parse_for_query(text.as_bytes(), Dialect::V2, shape, |e, p| {
            let inner = match e {
                Expr::Binary(b) => p.start(&*b.rhs),
                _ => None,
            };
            Ok((p.start(e), inner))
        })
        .unwrap()
    }

    #[test]
    fn a_query_parsed_again_comes_from_the_cache_with_its_positions() {
        let text = "sum(rate(cache_test_a[5m]))   +   cache_test_b{x=~\"a.*b\"}";
        let shape = QueryShape {
            step_ms: 15_000,
            range_ms: 3_600_000,
        };
        assert!(get(text.as_bytes(), Dialect::V2, QueryShape::default()).is_none());
        let first = starts(text, shape);
        assert_eq!(first, (Some(0), Some(34)));
        // Kept: 2.x reads no shape, so any shape finds it; 3.x's durations may read it.
        assert!(get(text.as_bytes(), Dialect::V2, QueryShape::default()).is_some());
        assert!(get(text.as_bytes(), Dialect::default(), QueryShape::default()).is_none());
        assert_eq!(starts(text, shape), first);
        // Another text is parsed on its own.
        assert_eq!(
            starts(&text.replace("   ", " "), shape),
            (Some(0), Some(30))
        );
        // Texts too long are not kept.
        let long = format!("{}{}", " ".repeat(MAX_TEXT), "cache_test_c");
        assert_eq!(starts(&long, shape).0, Some(MAX_TEXT));
        assert!(get(long.as_bytes(), Dialect::V2, QueryShape::default()).is_none());
    }
}
