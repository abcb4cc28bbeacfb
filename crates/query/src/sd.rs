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

/// Watches a set of SD files by modification time.
pub struct SdFiles {
    files: Vec<PathBuf>,
    seen: Vec<Option<SystemTime>>,
    /// Last targets read successfully from each file.
    good: Vec<Vec<String>>,
}

impl SdFiles {
    pub fn new(files: Vec<PathBuf>) -> Self {
        let n = files.len();
        SdFiles {
            files,
            seen: vec![None; n],
            good: vec![Vec::new(); n],
        }
    }

    /// All targets if any file changed since the last call (or `force`), else `None`. A file
    /// that cannot be read is reported in `errors` and keeps its last good targets, like
    /// Prometheus's file SD.
    pub fn poll(&mut self, force: bool, errors: &mut Vec<String>) -> Option<Vec<String>> {
        let mut changed = force;
        for (i, f) in self.files.iter().enumerate() {
            let m = std::fs::metadata(f).and_then(|m| m.modified()).ok();
            if m != self.seen[i] {
                self.seen[i] = m;
                changed = true;
            }
        }
        if !changed {
            return None;
        }
        let mut out = Vec::new();
        for (f, good) in self.files.iter().zip(self.good.iter_mut()) {
            match read_targets(f) {
                Ok(t) => *good = t,
                Err(e) => errors.push(e),
            }
            out.extend(good.iter().cloned());
        }
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
}
