//! Compaction groups: blocks of one stream (resolution and external labels, replica labels
//! already removed) compact only with each other. A group is named as Thanos names it,
//! `<resolution>@<hash of the labels>`, the hash being xxhash64 over `name 0xff value 0xff …`
//! in label order (Thanos's label hash), so logs and directories match Thanos's.

use std::collections::BTreeMap;

use tsdb::meta::BlockMeta;

#[derive(Debug, Clone)]
pub struct Group {
    pub key: String,
    pub resolution: i64,
    pub labels: BTreeMap<String, String>,
    /// The group's blocks, sorted by min time (then ULID).
    pub metas: Vec<BlockMeta>,
}

impl Group {
    /// `res@{k="v", ...}` for logs.
    pub fn describe(&self) -> String {
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        format!("{}@{{{}}}", self.resolution, labels.join(", "))
    }
}

/// Thanos's hash of a label set.
pub fn labels_hash(labels: &BTreeMap<String, String>) -> u64 {
    let mut buf = Vec::with_capacity(256);
    for (k, v) in labels {
        buf.extend_from_slice(k.as_bytes());
        buf.push(0xff);
        buf.extend_from_slice(v.as_bytes());
        buf.push(0xff);
    }
    xxhash_rust::xxh64::xxh64(&buf, 0)
}

/// Thanos's group key of a block.
pub fn group_key(resolution: i64, labels: &BTreeMap<String, String>) -> String {
    format!("{resolution}@{}", labels_hash(labels))
}

/// The blocks grouped by stream, groups sorted by key.
pub fn groups(metas: &[BlockMeta]) -> Vec<Group> {
    let mut by_key: BTreeMap<String, Group> = BTreeMap::new();
    for m in metas {
        let labels = m.external_labels();
        let key = group_key(m.resolution(), &labels);
        by_key
            .entry(key.clone())
            .or_insert_with(|| Group {
                key,
                resolution: m.resolution(),
                labels,
                metas: Vec::new(),
            })
            .metas
            .push(m.clone());
    }
    let mut out: Vec<Group> = by_key.into_values().collect();
    for g in &mut out {
        g.metas.sort_by(|a, b| {
            a.min_time
                .cmp(&b.min_time)
                .then_with(|| a.ulid.cmp(&b.ulid))
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_label_set_hashes_as_xxhash_of_nothing() {
        assert_eq!(labels_hash(&BTreeMap::new()), 0xef46db3751d8e999);
    }

    #[test]
    fn key_names_resolution_and_labels() {
        let mut l = BTreeMap::new();
        l.insert("cluster".to_string(), "a".to_string());
        let k = group_key(300_000, &l);
        assert!(k.starts_with("300000@"));
        assert_ne!(k, group_key(0, &l));
    }
}
