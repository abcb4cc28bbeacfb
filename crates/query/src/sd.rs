//! File service discovery of endpoints (`--endpoint.sd-files`), Prometheus's `file_sd`
//! format: YAML or JSON lists of `{targets: [host:port, ...], labels: {...}}`.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;

#[derive(Deserialize)]
struct TargetGroup {
    #[serde(default)]
    targets: Vec<String>,
}

/// Targets of one SD file; errors name the file.
pub fn read_targets(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let groups: Vec<TargetGroup> = serde_yaml::from_str(&text)
        .map_err(|e| format!("{}: not a file_sd target list: {e}", path.display()))?;
    Ok(groups.into_iter().flat_map(|g| g.targets).collect())
}

/// Watches SD files (patterns may hold globs) by modification time.
pub struct SdFiles {
    patterns: Vec<PathBuf>,
    /// Modification time seen of each file, and its last targets read successfully.
    files: std::collections::BTreeMap<PathBuf, (Option<SystemTime>, Vec<String>)>,
}

impl SdFiles {
    pub fn new(patterns: Vec<PathBuf>) -> Self {
        SdFiles {
            patterns,
            files: Default::default(),
        }
    }

    /// All targets if any file changed, appeared or went away since the last call (or
    /// `force`), else `None`. A file that cannot be read is reported in `errors` and keeps
    /// its last good targets, like Prometheus's file SD.
    pub fn poll(&mut self, force: bool, errors: &mut Vec<String>) -> Option<Vec<String>> {
        let current: Vec<PathBuf> = self
            .patterns
            .iter()
            .flat_map(|p| tsdb::glob::expand(p))
            .collect();
        let mut changed = force || current.len() != self.files.len();
        self.files.retain(|f, _| current.contains(f));
        for f in &current {
            let m = std::fs::metadata(f).and_then(|m| m.modified()).ok();
            let entry = self.files.entry(f.clone()).or_insert((None, Vec::new()));
            if m != entry.0 || force {
                if m != entry.0 {
                    changed = true;
                }
                entry.0 = m;
                match read_targets(f) {
                    Ok(t) => entry.1 = t,
                    Err(e) => errors.push(e),
                }
            }
        }
        if !changed {
            return None;
        }
        let mut out: Vec<String> = self
            .files
            .values()
            .flat_map(|(_, t)| t.iter().cloned())
            .collect();
        out.sort();
        out.dedup();
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_yaml_and_json_and_notices_changes() {
        let dir = tempfile::tempdir().unwrap();
        let y = dir.path().join("a.yml");
        let j = dir.path().join("b.json");
        std::fs::write(
            &y,
            "- targets: ['s1:10901', 's2:10901']\n  labels: {a: b}\n",
        )
        .unwrap();
        std::fs::write(&j, r#"[{"targets": ["s3:10901"]}]"#).unwrap();
        let mut sd = SdFiles::new(vec![y.clone(), j]);
        let mut errs = Vec::new();
        assert_eq!(
            sd.poll(false, &mut errs).unwrap(),
            vec!["s1:10901", "s2:10901", "s3:10901"]
        );
        assert!(sd.poll(false, &mut errs).is_none());
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&y, "- targets: ['s9:1']\n").unwrap();
        let t = sd.poll(true, &mut errs).unwrap();
        assert_eq!(t, vec!["s3:10901", "s9:1"]);
        std::fs::write(&y, "{not a list").unwrap();
        let t = sd.poll(true, &mut errs).unwrap();
        assert!(errs[0].contains("a.yml"), "{errs:?}");
        assert_eq!(t, vec!["s3:10901", "s9:1"], "last good targets are kept");
    }

    #[test]
    fn globs_pick_up_files_that_appear_and_drop_ones_that_go() {
        let dir = tempfile::tempdir().unwrap();
        let mut sd = SdFiles::new(vec![dir.path().join("*.yml")]);
        let mut errs = Vec::new();
        assert_eq!(sd.poll(false, &mut errs), None);
        std::fs::write(dir.path().join("a.yml"), "- targets: ['a:1']\n").unwrap();
        std::fs::write(dir.path().join("b.txt"), "- targets: ['x:1']\n").unwrap();
        assert_eq!(sd.poll(false, &mut errs).unwrap(), vec!["a:1"]);
        std::fs::write(dir.path().join("c.yml"), "- targets: ['c:1']\n").unwrap();
        assert_eq!(sd.poll(false, &mut errs).unwrap(), vec!["a:1", "c:1"]);
        std::fs::remove_file(dir.path().join("a.yml")).unwrap();
        assert_eq!(sd.poll(false, &mut errs).unwrap(), vec!["c:1"]);
        assert!(errs.is_empty(), "{errs:?}");
    }
}
