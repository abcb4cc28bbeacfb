//! Block tables as `tools bucket inspect` prints them: bordered table, CSV or TSV.

use std::fmt::Write as _;

use tsdb::meta::{BlockMeta, RES_1H, RES_5M};
use tsdb::time::{format_rfc3339, go_duration_string, MS_PER_DAY, MS_PER_HOUR};

pub const COLUMNS: [&str; 13] = [
    "ULID",
    "FROM",
    "UNTIL",
    "RANGE",
    "UNTIL-DOWN",
    "#SERIES",
    "#SAMPLES",
    "#CHUNKS",
    "COMP-LEVEL",
    "COMP-FAILED",
    "LABELS",
    "RESOLUTION",
    "SOURCE",
];

/// Time left until the compactor downsamples a block of this span, as Thanos computes it.
fn until_next_downsampling(m: &BlockMeta) -> Option<i64> {
    let span = m.max_time - m.min_time;
    match m.resolution() {
        RES_1H => None,
        RES_5M => Some(10 * MS_PER_DAY - span),
        _ => Some(40 * MS_PER_HOUR - span),
    }
}

/// Groups digits by thousands as Go's English message printer does.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One row per block, columns as [`COLUMNS`].
pub fn rows(metas: &[BlockMeta]) -> Vec<Vec<String>> {
    metas
        .iter()
        .map(|m| {
            let labels: Vec<String> = m
                .external_labels()
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            vec![
                m.ulid.clone(),
                format_rfc3339(m.min_time),
                format_rfc3339(m.max_time),
                go_duration_string(m.max_time - m.min_time),
                until_next_downsampling(m).map_or_else(|| "-".into(), go_duration_string),
                thousands(m.stats.num_series),
                thousands(m.stats.num_samples),
                thousands(m.stats.num_chunks),
                thousands(u64::from(m.compaction.level)),
                m.compaction.failed.to_string(),
                labels.join(","),
                go_duration_string(m.resolution()),
                m.thanos
                    .as_ref()
                    .map(|t| t.source.clone())
                    .unwrap_or_default(),
            ]
        })
        .collect()
}

/// Sorts rows by the named columns, in order (string comparison, as Thanos does).
pub fn sort_rows(rows: &mut [Vec<String>], sort_by: &[String]) -> anyhow::Result<()> {
    let mut idx = Vec::with_capacity(sort_by.len());
    for col in sort_by {
        match COLUMNS.iter().position(|c| c == col) {
            Some(i) => idx.push(i),
            None => anyhow::bail!("column {col} not found; columns are {}", COLUMNS.join(", ")),
        }
    }
    rows.sort_by(|a, b| {
        idx.iter()
            .map(|&i| a[i].cmp(&b[i]))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    Ok(())
}

/// A table with `|` borders left and right and a dashed line under the header.
pub fn render_table(rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = COLUMNS.iter().map(|c| c.len()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        out.push('|');
        for (cell, w) in cells.zip(&widths) {
            let _ = write!(out, " {cell:<w$} |");
        }
        out.push('\n');
    };
    line(&mut out, &mut COLUMNS.iter().copied());
    out.push('|');
    for w in &widths {
        out.push_str(&"-".repeat(w + 2));
        out.push('|');
    }
    out.push('\n');
    for r in rows {
        line(&mut out, &mut r.iter().map(String::as_str));
    }
    out
}

/// CSV (`sep` = ',') or TSV (`sep` = '\t') with Go's encoding/csv quoting.
pub fn render_separated(rows: &[Vec<String>], sep: char) -> String {
    let quote = |s: &str| -> String {
        if s.contains(sep) || s.contains('"') || s.contains('\n') || s.starts_with(' ') {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut out = String::new();
    let header: Vec<String> = COLUMNS.iter().map(|c| quote(c)).collect();
    out.push_str(&header.join(&sep.to_string()));
    out.push('\n');
    for r in rows {
        let cells: Vec<String> = r.iter().map(|c| quote(c)).collect();
        out.push_str(&cells.join(&sep.to_string()));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_thanos() {
        let mut m = BlockMeta::new(ulid::Ulid::nil(), 0, 2 * MS_PER_HOUR);
        m.stats.num_series = 1234;
        m.stats.num_samples = 1_234_567;
        m.thanos_mut().labels.insert("replica".into(), "a".into());
        m.thanos_mut().source = "sidecar".into();
        let r = rows(&[m]);
        assert_eq!(r[0][1], "1970-01-01T00:00:00Z");
        assert_eq!(r[0][3], "2h0m0s");
        assert_eq!(r[0][4], "38h0m0s");
        assert_eq!(r[0][5], "1,234");
        assert_eq!(r[0][6], "1,234,567");
        assert_eq!(r[0][10], "replica=a");
        assert_eq!(r[0][11], "0s");
        let t = render_table(&r);
        assert!(t.starts_with("| ULID "));
        let csv = render_separated(&r, ',');
        assert!(csv.contains("\"1,234\""));
    }
}
