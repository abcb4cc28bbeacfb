//! Block `meta.json`: Prometheus's block metadata plus the Thanos section.
//!
//! Written as Go's `json.MarshalIndent(meta, "", "\t")` would (same field order, tab indent)
//! to `meta.json.tmp`, then renamed. Fields we do not know are kept and written back.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

pub const META_FILENAME: &str = "meta.json";
pub const RES_RAW: i64 = 0;
pub const RES_5M: i64 = 300_000;
pub const RES_1H: i64 = 3_600_000;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BlockStats {
    #[serde(rename = "numSamples", default, skip_serializing_if = "is_zero")]
    pub num_samples: u64,
    #[serde(rename = "numFloatSamples", default, skip_serializing_if = "is_zero")]
    pub num_float_samples: u64,
    #[serde(
        rename = "numHistogramSamples",
        default,
        skip_serializing_if = "is_zero"
    )]
    pub num_histogram_samples: u64,
    #[serde(rename = "numSeries", default, skip_serializing_if = "is_zero")]
    pub num_series: u64,
    #[serde(rename = "numChunks", default, skip_serializing_if = "is_zero")]
    pub num_chunks: u64,
    #[serde(rename = "numTombstones", default, skip_serializing_if = "is_zero")]
    pub num_tombstones: u64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockDesc {
    pub ulid: String,
    #[serde(rename = "minTime")]
    pub min_time: i64,
    #[serde(rename = "maxTime")]
    pub max_time: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Compaction {
    pub level: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub deletable: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<BlockDesc>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub failed: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Downsample {
    pub resolution: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BlockFile {
    pub rel_path: String,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub size_bytes: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<Value>,
}

fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

/// The `thanos` section Thanos adds to meta.json.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ThanosMeta {
    #[serde(default)]
    pub version: u32,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub downsample: Downsample,
    #[serde(default)]
    pub source: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segment_files: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<BlockFile>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockMeta {
    pub ulid: String,
    #[serde(rename = "minTime")]
    pub min_time: i64,
    #[serde(rename = "maxTime")]
    pub max_time: i64,
    #[serde(default)]
    pub stats: BlockStats,
    #[serde(default)]
    pub compaction: Compaction,
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thanos: Option<ThanosMeta>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl BlockMeta {
    /// A fresh level-1 meta for a new block.
    pub fn new(ulid: ulid::Ulid, min_time: i64, max_time: i64) -> Self {
        BlockMeta {
            ulid: ulid.to_string(),
            min_time,
            max_time,
            stats: BlockStats::default(),
            compaction: Compaction {
                level: 1,
                sources: vec![ulid.to_string()],
                ..Default::default()
            },
            version: 1,
            thanos: None,
            extra: Map::new(),
        }
    }

    /// Parses and validates a meta.json document; `what` names it in errors.
    pub fn parse(bytes: &[u8], what: &str) -> Result<Self> {
        let meta: BlockMeta = serde_json::from_slice(bytes).map_err(|source| Error::Json {
            what: what.to_string(),
            source,
        })?;
        meta.validate(what)?;
        Ok(meta)
    }

    fn validate(&self, what: &str) -> Result<()> {
        let bad = |msg: String| Err(Error::corrupted(what, 0, msg));
        if self.version != 1 {
            return bad(format!("unexpected meta.json version {}", self.version));
        }
        if self.ulid.parse::<ulid::Ulid>().is_err() {
            return bad(format!("invalid ULID {:?}", self.ulid));
        }
        if let Some(t) = &self.thanos {
            if t.version > 1 {
                return bad(format!("unexpected thanos meta version {}", t.version));
            }
        }
        Ok(())
    }

    pub fn read_from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join(META_FILENAME);
        let bytes = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
        Self::parse(&bytes, &path.display().to_string())
    }

    /// The document as Go's `json.MarshalIndent(meta, "", "\t")` writes it.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        // Serializing plain data to a Vec cannot fail.
        self.serialize(&mut ser).expect("meta.json serializes");
        out
    }

    /// Writes `meta.json` atomically: a temp file, fsync, rename.
    pub fn write_to_dir(&self, dir: &Path) -> Result<()> {
        let tmp = dir.join("meta.json.tmp");
        let path = dir.join(META_FILENAME);
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        f.write_all(&self.to_json())
            .map_err(|e| Error::io("write", &tmp, e))?;
        f.sync_all().map_err(|e| Error::io("sync", &tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &tmp, e))?;
        Ok(())
    }

    pub fn thanos_mut(&mut self) -> &mut ThanosMeta {
        self.thanos.get_or_insert_with(|| ThanosMeta {
            version: 1,
            ..Default::default()
        })
    }

    pub fn resolution(&self) -> i64 {
        self.thanos.as_ref().map_or(0, |t| t.downsample.resolution)
    }

    pub fn external_labels(&self) -> BTreeMap<String, String> {
        self.thanos
            .as_ref()
            .map(|t| t.labels.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROM_META: &str = r#"{
	"ulid": "01GRJ5R2A3Z0B0ZKX8Y4QK6WZM",
	"minTime": 1675000000000,
	"maxTime": 1675007200000,
	"stats": {
		"numSamples": 480,
		"numSeries": 1,
		"numChunks": 4
	},
	"compaction": {
		"level": 1,
		"sources": [
			"01GRJ5R2A3Z0B0ZKX8Y4QK6WZM"
		]
	},
	"version": 1
}"#;

    #[test]
    fn round_trips_byte_for_byte() {
        let m = BlockMeta::parse(PROM_META.as_bytes(), "meta").unwrap();
        assert_eq!(String::from_utf8(m.to_json()).unwrap(), PROM_META);
    }

    #[test]
    fn keeps_unknown_fields_and_adds_thanos() {
        let doc = PROM_META.replace(
            "\"version\": 1",
            "\"version\": 1,\n\t\"future\": {\"x\": 1}",
        );
        let mut m = BlockMeta::parse(doc.as_bytes(), "meta").unwrap();
        m.thanos_mut().labels.insert("replica".into(), "a".into());
        m.thanos_mut().source = "sidecar".into();
        let out = String::from_utf8(m.to_json()).unwrap();
        assert!(out.contains("\"future\""));
        let again = BlockMeta::parse(out.as_bytes(), "meta").unwrap();
        assert_eq!(again, m);
        assert!(out.contains("\"downsample\": {\n\t\t\t\"resolution\": 0\n\t\t}"));
    }

    #[test]
    fn rejects_bad_versions() {
        let doc = PROM_META.replace("\"version\": 1", "\"version\": 2");
        let err = BlockMeta::parse(doc.as_bytes(), "b/meta.json").unwrap_err();
        assert!(err.to_string().contains("b/meta.json"), "{err}");
        assert!(BlockMeta::parse(b"{", "m").is_err());
    }
}
