//! `/api/v1/blocks`, as Thanos's block viewer reads it: `{label, blocks, refreshedAt, err}`
//! for the whole bucket (the default view) or the blocks a store gateway has loaded
//! (`view=loaded`). `marks` adds, per block, the marker files it has.

use std::collections::BTreeMap;
use std::sync::RwLock;

use serde_json::{json, Value};
use tsdb::meta::BlockMeta;

/// Marker names per block ULID.
type Marks = BTreeMap<String, Vec<&'static str>>;

#[derive(Default)]
struct Info {
    blocks: Vec<Value>,
    marks: Marks,
    refreshed_at: Option<i64>,
    err: Option<String>,
}

impl Info {
    /// Keeps the last good view when a refresh fails, as Thanos does.
    fn set(&mut self, r: Result<(Vec<Value>, Marks), String>) {
        self.refreshed_at = Some(tsdb::time::now_ms());
        match r {
            Ok((blocks, marks)) => {
                self.blocks = blocks;
                self.marks = marks;
                self.err = None;
            }
            Err(e) => self.err = Some(e),
        }
    }
}

/// The blocks the viewer shows; `label` is `--bucket-web-label` / `--label`, the external
/// label that titles each group.
pub struct BlocksApi {
    label: String,
    global: RwLock<Info>,
    loaded: RwLock<Info>,
    /// The bucket that marks are written to; `None` when admin operations are disabled.
    admin: Option<bucket::Bucket>,
}

/// What `POST /api/v1/blocks/mark` may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkAction {
    Deletion,
    NoCompaction,
}

impl MarkAction {
    /// Thanos's action names.
    pub fn parse(s: &str) -> Option<MarkAction> {
        match s {
            "DELETION" => Some(MarkAction::Deletion),
            "NO_COMPACTION" => Some(MarkAction::NoCompaction),
            _ => None,
        }
    }

    fn mark_name(self) -> &'static str {
        match self {
            MarkAction::Deletion => "deletion",
            MarkAction::NoCompaction => "no-compact",
        }
    }
}

fn meta_values(metas: &[BlockMeta]) -> Vec<Value> {
    metas
        .iter()
        .filter_map(|m| serde_json::to_value(m).ok())
        .collect()
}

impl BlocksApi {
    pub fn new(label: &str) -> BlocksApi {
        BlocksApi {
            label: label.to_string(),
            global: RwLock::new(Info::default()),
            loaded: RwLock::new(Info::default()),
            admin: None,
        }
    }

    /// Enables marking blocks from the viewer (Thanos's default, unless
    /// `--disable-admin-operations`).
    pub fn with_admin(mut self, bucket: bucket::Bucket) -> BlocksApi {
        self.admin = Some(bucket);
        self
    }

    /// Writes a deletion or no-compact mark for block `id`; the error is the API's message.
    pub async fn mark(&self, id: &str, action: &str, detail: &str) -> Result<(), String> {
        let Some(bucket) = &self.admin else {
            return Err("Admin operations are disabled".into());
        };
        if id.is_empty() {
            return Err("ID cannot be empty".into());
        }
        if action.is_empty() {
            return Err("Action cannot be empty".into());
        }
        let ulid: ulid::Ulid = id
            .parse()
            .map_err(|e| format!("ULID {id:?} is not valid: {e}"))?;
        let action =
            MarkAction::parse(action).ok_or_else(|| format!("not supported marker {action}"))?;
        let written = match action {
            MarkAction::Deletion => {
                bucket::markers::mark_for_deletion(bucket.as_ref(), ulid, detail).await
            }
            MarkAction::NoCompaction => {
                bucket::markers::mark_no_compact(bucket.as_ref(), ulid, "manual", detail).await
            }
        };
        written.map_err(|e| e.to_string())?;
        tracing::info!(block = %id, mark = action.mark_name(), "block marked from the block viewer");
        if let Ok(mut g) = self.global.write() {
            let marks = g.marks.entry(id.to_string()).or_default();
            if !marks.contains(&action.mark_name()) {
                marks.push(action.mark_name());
            }
        }
        Ok(())
    }

    /// The bucket's view after a fetch (or why it failed).
    pub fn set_global(&self, view: Result<&bucket::fetcher::View, String>) {
        let r = view.map(|v| {
            let mut marks = Marks::new();
            for id in v.deletion_marks.keys() {
                marks.entry(id.clone()).or_default().push("deletion");
            }
            for id in &v.no_compact {
                marks.entry(id.clone()).or_default().push("no-compact");
            }
            for id in &v.no_downsample {
                marks.entry(id.clone()).or_default().push("no-downsample");
            }
            (meta_values(&v.metas), marks)
        });
        if let Ok(mut g) = self.global.write() {
            g.set(r);
        }
    }

    /// The blocks a store gateway serves.
    pub fn set_loaded(&self, metas: &[BlockMeta]) {
        if let Ok(mut l) = self.loaded.write() {
            l.set(Ok((meta_values(metas), BTreeMap::new())));
        }
    }

    /// Lists the whole bucket (every block, with its marks) and shows it.
    pub async fn refresh(
        &self,
        bucket: &dyn bucket::ObjectStore,
        filters: &bucket::fetcher::Filters,
    ) {
        let filters = bucket::fetcher::Filters {
            gather_marks: true,
            deduplicate: false,
            ignore_deletion_marks_delay_ms: None,
            consistency_delay_ms: 0,
            replica_labels: Vec::new(),
            concurrency: filters.concurrency.max(16),
            ..filters.clone()
        };
        match bucket::fetcher::fetch(bucket, &filters, tsdb::time::now_ms()).await {
            Ok(view) => {
                for (id, e) in &view.unreadable {
                    tracing::warn!(block = %id, err = %e, "block viewer: unreadable meta.json");
                }
                self.set_global(Ok(&view));
            }
            Err(e) => {
                tracing::warn!(err = %e, "block viewer: listing the bucket failed");
                self.set_global(Err(e.to_string()));
            }
        }
    }

    /// The API answer for one view.
    pub fn json(&self, loaded: bool) -> String {
        let lock = if loaded { &self.loaded } else { &self.global };
        let Ok(info) = lock.read() else {
            return json!({"status": "error", "errorType": "internal", "error": "lock poisoned"})
                .to_string();
        };
        json!({
            "status": "success",
            "data": {
                "label": self.label,
                "blocks": info.blocks,
                "refreshedAt": tsdb::time::format_rfc3339(info.refreshed_at.unwrap_or(-62_135_596_800_000)),
                "err": info.err,
                "marks": info.marks,
            }
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_keep_the_last_good_blocks_on_error() {
        let api = BlocksApi::new("cluster");
        let mut view = bucket::fetcher::View::default();
        view.metas
            .push(BlockMeta::new(ulid::Ulid::from_parts(1, 2), 0, 7_200_000));
        view.no_compact.insert(view.metas[0].ulid.clone());
        api.set_global(Ok(&view));
        api.set_global(Err("bucket unreachable".into()));
        let v: Value = serde_json::from_str(&api.json(false)).unwrap();
        assert_eq!(v["data"]["label"], "cluster");
        assert_eq!(v["data"]["blocks"][0]["maxTime"], 7_200_000);
        assert_eq!(v["data"]["blocks"][0]["compaction"]["level"], 1);
        assert_eq!(v["data"]["err"], "bucket unreachable");
        let id = view.metas[0].ulid.as_str();
        assert_eq!(v["data"]["marks"][id][0], "no-compact");
        let l: Value = serde_json::from_str(&api.json(true)).unwrap();
        assert_eq!(l["data"]["blocks"].as_array().map(Vec::len), Some(0));
        assert_eq!(l["data"]["refreshedAt"], "0001-01-01T00:00:00Z");
    }

    #[tokio::test]
    async fn marks_need_admin_operations_and_valid_input() {
        let api = BlocksApi::new("");
        let id = ulid::Ulid::from_parts(1, 2).to_string();
        let e = api.mark(&id, "DELETION", "").await.unwrap_err();
        assert_eq!(e, "Admin operations are disabled");
        let dir = tempfile::tempdir().unwrap();
        let store = bucket::config::bucket_from_yaml(&format!(
            "type: FILESYSTEM\nconfig:\n  directory: {}\n",
            dir.path().display()
        ))
        .unwrap();
        let api = BlocksApi::new("").with_admin(store);
        assert_eq!(
            api.mark("", "DELETION", "").await.unwrap_err(),
            "ID cannot be empty"
        );
        assert!(api
            .mark("nope", "DELETION", "")
            .await
            .unwrap_err()
            .starts_with("ULID \"nope\" is not valid"));
        assert_eq!(
            api.mark(&id, "PURGE", "").await.unwrap_err(),
            "not supported marker PURGE"
        );
        api.mark(&id, "NO_COMPACTION", "why").await.unwrap();
        let m: Value = serde_json::from_slice(
            &std::fs::read(dir.path().join(&id).join("no-compact-mark.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            (m["reason"].as_str(), m["details"].as_str()),
            (Some("manual"), Some("why"))
        );
        let v: Value = serde_json::from_str(&api.json(false)).unwrap();
        assert_eq!(v["data"]["marks"][&id][0], "no-compact");
    }
}
