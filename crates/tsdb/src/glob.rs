//! File-name globs for lists of config files (`--rule-file`, SD files): `*` and `?` in the
//! last path element, as Prometheus and Thanos accept them.

use std::path::{Path, PathBuf};

/// Whether `name` matches a glob of `*` (any run) and `?` (one character).
pub fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((sp, sn)) = star {
            p = sp + 1;
            n = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// The files a pattern names now: itself, or, with `*`/`?` in its last element (as
/// Prometheus allows), the matching files of its directory, sorted.
pub fn expand(pattern: &Path) -> Vec<PathBuf> {
    let name = pattern
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.contains(['*', '?']) {
        return vec![pattern.to_path_buf()];
    }
    let dir = match pattern.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| glob_match(name.as_bytes(), e.file_name().as_encoded_bytes()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_stars_and_question_marks() {
        assert!(glob_match(b"*.yml", b"a.yml"));
        assert!(glob_match(b"s?-*.json", b"s1-x.json"));
        assert!(!glob_match(b"*.yml", b"a.json"));
        assert!(glob_match(b"*", b""));
    }
}
