//! `gauntlet tools bucket ls|inspect|verify|upload-blocks`, with Thanos's flags and output
//! (`mark`, `cleanup`, `retention` and `downsample` are in [`super::bucket_admin`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use tsdb::meta::BlockMeta;

use super::table;
use crate::flags::{parse_duration_flag, parse_flag_labels, parse_time_flag, ObjstoreFlags};

#[derive(Args)]
pub struct BucketArgs {
    #[command(flatten)]
    objstore: ObjstoreFlags,
    #[command(subcommand)]
    command: BucketCommand,
}

#[derive(Subcommand)]
enum BucketCommand {
    /// List all blocks in the bucket.
    Ls(LsArgs),
    /// Inspect all blocks in the bucket in a detailed, table-like way.
    Inspect(InspectArgs),
    /// Verify all blocks in the bucket against the given issues.
    Verify(VerifyArgs),
    /// Upload blocks from a local directory (Prometheus TSDB) to the bucket.
    UploadBlocks(UploadArgs),
    /// Mark block for deletion or no-compact in a safe way.
    Mark(super::bucket_admin::MarkArgs),
    /// Cleans up all blocks marked for deletion (and old partial uploads).
    Cleanup(super::bucket_admin::CleanupArgs),
    /// Applies retention policies on the given bucket (no compactor may run on it).
    Retention(super::bucket_admin::RetentionArgs),
    /// Continuously downsamples blocks in an object store bucket.
    Downsample(super::bucket_admin::DownsampleArgs),
    /// Web interface for the remote storage bucket (the block viewer).
    Web(Box<super::bucket_web::WebArgs>),
}

#[derive(Args)]
struct LsArgs {
    /// Output format: empty (ULIDs), 'wide' or 'json'.
    #[arg(short = 'o', long = "output", default_value = "")]
    output: String,
    /// Exclude blocks marked for deletion.
    #[arg(long = "exclude-delete")]
    exclude_delete: bool,
    /// Only blocks with data after this time (RFC 3339 or relative duration such as -1d).
    #[arg(long = "min-time", default_value = "0000-01-01T00:00:00Z")]
    min_time: String,
    /// Only blocks with data before this time.
    #[arg(long = "max-time", default_value = "9999-12-31T23:59:59Z")]
    max_time: String,
    /// Timeout to download metadata from remote storage.
    #[arg(long = "timeout", default_value = "5m", value_parser = parse_duration_flag)]
    timeout: Duration,
    /// Path to a YAML file with relabeling configuration selecting the blocks to list, by
    /// their external labels and `__block_id`.
    #[arg(long = "selector.relabel-config-file")]
    relabel_config_file: Option<std::path::PathBuf>,
    /// Alternative to selector.relabel-config-file: the relabeling configuration in YAML.
    #[arg(long = "selector.relabel-config")]
    relabel_config: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum TableFormat {
    Table,
    Csv,
    Tsv,
}

#[derive(Args)]
struct InspectArgs {
    /// Selects blocks by external label, e.g. -l key1="value1" -l key2="value2"; all must match.
    #[arg(short = 'l', long = "selector")]
    selector: Vec<String>,
    /// Sort by columns, e.g. --sort-by FROM --sort-by UNTIL.
    #[arg(long = "sort-by", default_values = ["FROM", "UNTIL"])]
    sort_by: Vec<String>,
    /// Output format for the result.
    #[arg(long = "output", value_enum, default_value = "table")]
    output: TableFormat,
    /// Timeout to download metadata from remote storage.
    #[arg(long = "timeout", default_value = "5m", value_parser = parse_duration_flag)]
    timeout: Duration,
}

#[derive(Args)]
struct VerifyArgs {
    /// Attempt to repair blocks for which issues were detected (not supported yet).
    #[arg(short = 'r', long = "repair")]
    repair: bool,
    /// Issues to verify: index_known_issues, overlapped_blocks.
    #[arg(short = 'i', long = "issues", default_values = ["index_known_issues", "overlapped_blocks"])]
    issues: Vec<String>,
    /// Block IDs to verify only; all blocks when none is given.
    #[arg(long = "id")]
    ids: Vec<String>,
    /// Directory for downloaded blocks (removed afterwards).
    #[arg(long = "data-dir")]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
struct UploadArgs {
    /// Path to the directory containing blocks to upload.
    #[arg(long = "path", default_value = "./data")]
    path: PathBuf,
    /// External labels to add to the uploaded blocks (repeated), e.g. --label replica="a".
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Also upload compacted blocks (compaction level > 1).
    #[arg(long = "shipper.upload-compacted")]
    upload_compacted: bool,
    /// Number of blocks uploaded at once.
    #[arg(long = "shipper.upload-concurrency", default_value_t = 5)]
    upload_concurrency: usize,
}

pub fn run(args: BucketArgs) -> Result<()> {
    let yaml = args.objstore.yaml()?;
    // Only an upload may create a filesystem bucket's directory; readers report it missing.
    let store = match args.command {
        BucketCommand::Ls(_)
        | BucketCommand::Inspect(_)
        | BucketCommand::Verify(_)
        | BucketCommand::Web(_) => bucket::config::existing_bucket_from_yaml(&yaml)?,
        _ => bucket::config::bucket_from_yaml(&yaml)?,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start async runtime")?;
    rt.block_on(async move {
        match args.command {
            BucketCommand::Ls(a) => ls(&store, a).await,
            BucketCommand::Inspect(a) => inspect(&store, a).await,
            BucketCommand::Verify(a) => verify(&store, a).await,
            BucketCommand::UploadBlocks(a) => upload_blocks(&store, a).await,
            BucketCommand::Mark(a) => super::bucket_admin::mark(&store, a).await,
            BucketCommand::Cleanup(a) => super::bucket_admin::cleanup(&store, a).await,
            BucketCommand::Retention(a) => super::bucket_admin::retention(&store, a).await,
            BucketCommand::Downsample(a) => super::bucket_admin::downsample(&store, a).await,
            BucketCommand::Web(a) => super::bucket_web::web(&store, *a).await,
        }
    })
}

async fn fetch_metas(store: &bucket::Bucket, timeout: Duration) -> Result<Vec<BlockMeta>> {
    let sync = tokio::time::timeout(timeout, bucket::block::fetch_metas(store.as_ref(), 32))
        .await
        .with_context(|| format!("fetching block metadata took longer than {timeout:?}"))??;
    for id in &sync.partial {
        tracing::info!(block = %id, "skipping block without meta.json (partial upload)");
    }
    for (id, err) in &sync.corrupted {
        tracing::warn!(block = %id, err = %err, "skipping block with unreadable meta.json");
    }
    Ok(sync.metas)
}

async fn ls(store: &bucket::Bucket, a: LsArgs) -> Result<()> {
    let (min_t, max_t) = (
        parse_time_flag("min-time", &a.min_time)?,
        parse_time_flag("max-time", &a.max_time)?,
    );
    let relabel = crate::compact_cmd::relabel_from(&a.relabel_config_file, &a.relabel_config)?;
    let mut out = String::new();
    let mut count = 0;
    for m in fetch_metas(store, a.timeout).await? {
        if m.max_time < min_t || m.min_time > max_t {
            continue;
        }
        if !relabel.is_empty() {
            let mut labels = m.external_labels();
            labels.insert("__block_id".into(), m.ulid.clone());
            if !relabel.keeps(&labels) {
                continue;
            }
        }
        if a.exclude_delete {
            let id = m
                .ulid
                .parse()
                .with_context(|| format!("block ULID {}", m.ulid))?;
            if bucket::markers::deletion_mark(store.as_ref(), id)
                .await?
                .is_some()
            {
                continue;
            }
        }
        count += 1;
        match a.output.as_str() {
            "" => out.push_str(&format!("{}\n", m.ulid)),
            "wide" => out.push_str(&format!(
                "{} -- {} - {} Diff: {}, Compaction: {}, Downsample: {}, Source: {}\n",
                m.ulid,
                tsdb::time::format_rfc3339(m.min_time),
                tsdb::time::format_rfc3339(m.max_time),
                tsdb::time::go_duration_string(m.max_time / 1000 * 1000 - m.min_time / 1000 * 1000),
                m.compaction.level,
                m.resolution(),
                m.thanos.as_ref().map_or("", |t| t.source.as_str()),
            )),
            "json" => {
                out.push_str(&String::from_utf8_lossy(&m.to_json()));
                out.push('\n');
            }
            other => bail!("unsupported --output {other:?}: want '', 'wide' or 'json'"),
        }
    }
    print!("{out}");
    tracing::info!(objects = count, "ls done");
    Ok(())
}

async fn inspect(store: &bucket::Bucket, a: InspectArgs) -> Result<()> {
    let selector = parse_flag_labels(&a.selector).context("invalid --selector")?;
    let metas: Vec<BlockMeta> = fetch_metas(store, a.timeout)
        .await?
        .into_iter()
        .filter(|m| {
            let ext = m.external_labels();
            selector.iter().all(|l| ext.get(&l.name) == Some(&l.value))
        })
        .collect();
    let mut rows = table::rows(&metas);
    table::sort_rows(&mut rows, &a.sort_by)?;
    let text = match a.output {
        TableFormat::Table => table::render_table(&rows),
        TableFormat::Csv => table::render_separated(&rows, ','),
        TableFormat::Tsv => table::render_separated(&rows, '\t'),
    };
    print!("{text}");
    Ok(())
}

/// Blocks of one stream (same resolution and external labels) whose time ranges overlap.
fn overlapping_blocks(metas: &[BlockMeta]) -> Vec<String> {
    let mut groups: BTreeMap<(i64, BTreeMap<String, String>), Vec<&BlockMeta>> = BTreeMap::new();
    for m in metas {
        groups
            .entry((m.resolution(), m.external_labels()))
            .or_default()
            .push(m);
    }
    let mut out = Vec::new();
    for ((res, labels), mut blocks) in groups {
        blocks.sort_by_key(|m| (m.min_time, m.max_time));
        let mut reach: Option<&BlockMeta> = None;
        for m in blocks {
            if let Some(prev) = reach {
                if m.min_time < prev.max_time {
                    out.push(format!(
                        "group {res}@{labels:?}: block {} [{}, {}) overlaps block {} [{}, {})",
                        m.ulid, m.min_time, m.max_time, prev.ulid, prev.min_time, prev.max_time
                    ));
                }
            }
            if reach.is_none_or(|p| m.max_time > p.max_time) {
                reach = Some(m);
            }
        }
    }
    out
}

async fn verify(store: &bucket::Bucket, a: VerifyArgs) -> Result<()> {
    if a.repair {
        bail!("--repair is not supported: verify reports issues only");
    }
    for i in &a.issues {
        if i != "index_known_issues" && i != "overlapped_blocks" {
            bail!("unknown issue {i:?}: supported are index_known_issues, overlapped_blocks");
        }
    }
    let sync = bucket::block::fetch_metas(store.as_ref(), 32).await?;
    let mut problems: Vec<String> = Vec::new();
    for (id, err) in &sync.corrupted {
        if a.ids.is_empty() || a.ids.contains(&id.to_string()) {
            problems.push(format!("block {id}: unreadable meta.json: {err}"));
        }
    }
    for id in &a.ids {
        let known = sync.metas.iter().any(|m| &m.ulid == id)
            || sync.corrupted.iter().any(|(c, _)| &c.to_string() == id);
        if !known {
            let why = if sync.partial.iter().any(|p| &p.to_string() == id) {
                "has no meta.json (a partial upload)"
            } else {
                "is not in the bucket"
            };
            problems.push(format!("block {id} {why}"));
        }
    }
    // Blocks marked for deletion are on their way out (e.g. the sources of a compacted
    // block): Thanos's verify skips them, and so does this one.
    let mut metas = Vec::with_capacity(sync.metas.len());
    let mut marked = 0;
    for m in sync.metas {
        let id: ulid::Ulid = m
            .ulid
            .parse()
            .with_context(|| format!("block ULID {}", m.ulid))?;
        if bucket::markers::deletion_mark(store.as_ref(), id)
            .await?
            .is_some()
        {
            marked += 1;
            continue;
        }
        metas.push(m);
    }
    if marked > 0 {
        tracing::info!(blocks = marked, "skipping blocks marked for deletion");
    }
    if a.issues.iter().any(|i| i == "overlapped_blocks") {
        problems.extend(overlapping_blocks(&metas));
    }
    if a.issues.iter().any(|i| i == "index_known_issues") {
        let tmp = match &a.data_dir {
            Some(d) => tempfile::tempdir_in(d),
            None => tempfile::tempdir(),
        }
        .context("create a directory for downloaded blocks")?;
        let selected: Vec<&BlockMeta> = metas
            .iter()
            .filter(|m| a.ids.is_empty() || a.ids.contains(&m.ulid))
            .collect();
        // Every block is checked and every problem reported, whatever happened before.
        for (n, m) in selected.iter().enumerate() {
            let progress = format!("{}/{}", n + 1, selected.len());
            let issues = verify_one(store, m, tmp.path()).await;
            tracing::info!(block = %m.ulid, issues = issues.len(), progress = %progress, "verified block");
            problems.extend(issues);
        }
    }
    for p in &problems {
        println!("{p}");
    }
    if !problems.is_empty() {
        bail!("{} issue(s) found", problems.len());
    }
    tracing::info!(blocks = metas.len(), "verify done: no issues");
    Ok(())
}

/// Downloads one block and checks it; every problem found, as text naming the block.
async fn verify_one(store: &bucket::Bucket, m: &BlockMeta, tmp: &Path) -> Vec<String> {
    let id: ulid::Ulid = match m.ulid.parse() {
        Ok(id) => id,
        Err(e) => return vec![format!("block {}: invalid ULID: {e}", m.ulid)],
    };
    let mut problems = Vec::new();
    if let Some(files) = m.thanos.as_ref().map(|t| t.files.clone()) {
        for f in files.iter().filter(|f| f.rel_path != "meta.json") {
            let path = bucket::block::object_path(&m.ulid, &f.rel_path);
            match bucket::ObjectStoreExt::head(store.as_ref(), &path).await {
                Ok(obj) => {
                    if f.size_bytes > 0 && obj.size != f.size_bytes as u64 {
                        problems.push(format!(
                            "block {}: {} has {} bytes, meta.json says {}",
                            m.ulid, f.rel_path, obj.size, f.size_bytes
                        ));
                    }
                }
                Err(e) => problems.push(format!("block {}: {}: {e}", m.ulid, f.rel_path)),
            }
        }
    }
    let dir = match bucket::block::download_block(store.as_ref(), id, tmp).await {
        Ok(d) => d,
        Err(e) => {
            problems.push(format!("block {}: download failed: {e}", m.ulid));
            return problems;
        }
    };
    let checked = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || tsdb::verify::verify_block(&dir)
    })
    .await;
    match checked {
        Ok(issues) => problems.extend(issues.iter().map(|i| i.to_string())),
        Err(e) => problems.push(format!("block {}: verification failed: {e}", m.ulid)),
    }
    remove_dir(&dir);
    problems
}

fn remove_dir(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        tracing::warn!(dir = %dir.display(), err = %e, "removing a downloaded block");
    }
}

/// Block directories under `path` (those holding a meta.json), oldest first.
fn local_blocks(path: &Path) -> Result<Vec<(PathBuf, BlockMeta)>> {
    let rd = std::fs::read_dir(path)
        .with_context(|| format!("unable to access path '{}'", path.display()))?;
    let mut out = Vec::new();
    for entry in rd {
        let dir = entry
            .with_context(|| format!("list {}", path.display()))?
            .path();
        if !dir.join(tsdb::meta::META_FILENAME).is_file() {
            continue;
        }
        let meta = BlockMeta::read_from_dir(&dir)?;
        out.push((dir, meta));
    }
    out.sort_by(|a, b| {
        a.1.min_time
            .cmp(&b.1.min_time)
            .then_with(|| a.1.ulid.cmp(&b.1.ulid))
    });
    Ok(out)
}

async fn upload_blocks(store: &bucket::Bucket, a: UploadArgs) -> Result<()> {
    if a.labels.is_empty() {
        bail!(
            "no external labels configured, uniquely identifying external labels must be configured (--label name=\"value\")"
        );
    }
    let labels = parse_flag_labels(&a.labels).context("unable to parse external labels")?;
    let blocks = local_blocks(&a.path)?;
    let mut todo = Vec::new();
    for (dir, mut meta) in blocks {
        if meta.stats.num_samples == 0 {
            tracing::info!(block = %meta.ulid, "ignoring empty block");
            continue;
        }
        if meta.compaction.level > 1 && !a.upload_compacted {
            tracing::info!(block = %meta.ulid, level = meta.compaction.level, "skipping compacted block (see --shipper.upload-compacted)");
            continue;
        }
        let id = meta
            .ulid
            .parse()
            .with_context(|| format!("block ULID {}", meta.ulid))?;
        if bucket::block::fetch_meta(store.as_ref(), id)
            .await?
            .is_some()
        {
            tracing::info!(block = %meta.ulid, "already in the bucket");
            continue;
        }
        let t = meta.thanos_mut();
        t.labels = labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        t.source = "bucket.upload".into();
        todo.push((dir, meta));
    }
    let total = todo.len();
    let results: Vec<Result<String>> = futures::StreamExt::collect(futures::StreamExt::buffer_unordered(
        futures::stream::iter(todo.into_iter().map(|(dir, meta)| {
            let store = store.clone();
            async move {
                let started = std::time::Instant::now();
                bucket::block::upload_block(store.as_ref(), &dir, &meta)
                    .await
                    .with_context(|| format!("upload {}", dir.display()))?;
                tracing::info!(block = %meta.ulid, duration = ?started.elapsed(), "uploaded block");
                Ok(meta.ulid)
            }
        })),
        a.upload_concurrency.max(1),
    ))
    .await;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| format!("{e:#}")))
        .collect();
    tracing::info!(uploaded = total - failed.len(), "synced blocks");
    if !failed.is_empty() {
        bail!(
            "{} block(s) failed to upload:\n{}",
            failed.len(),
            failed.join("\n")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(min: i64, max: i64, replica: &str) -> BlockMeta {
        let mut m = BlockMeta::new(ulid::Ulid::new(), min, max);
        m.thanos_mut()
            .labels
            .insert("replica".into(), replica.into());
        m
    }

    #[test]
    fn finds_overlaps_within_a_group_only() {
        let metas = vec![
            meta(0, 10, "a"),
            meta(10, 20, "a"),
            meta(5, 15, "b"),
            meta(15, 25, "a"),
        ];
        let o = overlapping_blocks(&metas);
        assert_eq!(o.len(), 1, "{o:?}");
        assert!(o[0].contains(&metas[3].ulid));
    }
}
