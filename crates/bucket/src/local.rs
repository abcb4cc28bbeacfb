//! The filesystem bucket: object_store's local store, with range reads of our own that take
//! no thread hop when small (a point lookup reads a few kilobytes; handing that to the
//! blocking pool and back costs more than the read).

use std::fmt;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;

use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// Range reads of at most this many bytes in all run on the calling thread.
const INLINE_BYTES: u64 = 256 * 1024;

/// Contiguous ranges are read with one system call up to this many bytes: a larger
/// buffer is mapped fresh and faults its pages in, which costs more than a few more calls
/// (7-day range query: 45 -> 41 ms). Spans stay below glibc's mmap threshold.
const MAX_SPAN: u64 = 128 * 1024;

#[derive(Debug)]
pub struct LocalBucket {
    inner: LocalFileSystem,
}

impl LocalBucket {
    pub fn new(inner: LocalFileSystem) -> LocalBucket {
        LocalBucket { inner }
    }
}

impl fmt::Display for LocalBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

fn io_error(path: &std::path::Path, e: std::io::Error) -> object_store::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        object_store::Error::NotFound {
            path: path.display().to_string(),
            source: Box::new(e),
        }
    } else {
        object_store::Error::Generic {
            store: "LocalFileSystem",
            source: format!("reading {}: {e}", path.display()).into(),
        }
    }
}

/// Reads `ranges` of the file at `path`, contiguous or overlapping ranges as one span.
fn read_ranges(path: &std::path::Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let size = file.metadata().map_err(|e| io_error(path, e))?.len();
    // As a ranged GET answers: a range running past the end is cut there; one starting at
    // or past the end is an error.
    if let Some(bad) = ranges
        .iter()
        .find(|r| r.start > r.end || (r.start >= size && r.end > r.start))
    {
        return Err(object_store::Error::Generic {
            store: "LocalFileSystem",
            source: format!(
                "range {}..{} of {} starts past the object's {size} bytes",
                bad.start,
                bad.end,
                path.display()
            )
            .into(),
        });
    }
    let ranges: Vec<Range<u64>> = ranges
        .iter()
        .map(|r| r.start.min(size)..r.end.min(size))
        .collect();
    let mut out = vec![Bytes::new(); ranges.len()];
    for (span, members) in crate::ranges::partition_within(&ranges, 0, MAX_SPAN) {
        let data = read_span(&file, path, span.clone())?;
        for i in members {
            let r = &ranges[i];
            out[i] = data.slice((r.start - span.start) as usize..(r.end - span.start) as usize);
        }
    }
    Ok(out)
}

fn read_span(file: &File, path: &std::path::Path, span: Range<u64>) -> Result<Bytes> {
    // Zeroed by calloc, which skips the zeroing for fresh pages of a large buffer.
    let mut buf = vec![0u8; (span.end - span.start) as usize];
    file.read_exact_at(&mut buf, span.start)
        .map_err(|e| io_error(path, e))?;
    Ok(Bytes::from(buf))
}

#[async_trait::async_trait]
impl ObjectStore for LocalBucket {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let path = self.inner.path_to_filesystem(location)?;
        let total: u64 = ranges.iter().map(|r| r.end.saturating_sub(r.start)).sum();
        if total <= INLINE_BYTES {
            return read_ranges(&path, ranges);
        }
        let ranges = ranges.to_vec();
        tokio::task::spawn_blocking(move || read_ranges(&path, &ranges))
            .await
            .map_err(|e| object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(e),
            })?
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    fn bucket(dir: &std::path::Path) -> LocalBucket {
        LocalBucket::new(LocalFileSystem::new_with_prefix(dir).unwrap())
    }

    #[tokio::test]
    async fn ranges_read_as_written() {
        let d = tempfile::tempdir().unwrap();
        let b = bucket(d.path());
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let p = Path::from("blk/chunks/000001");
        b.put(&p, data.clone().into()).await.unwrap();
        let ranges = [
            900_000..1_000_000,
            0..10,
            5..20, // overlaps the one before
            100..100,
            300_000..600_000, // past the inline size: the blocking pool reads them all
        ];
        let got = b.get_ranges(&p, &ranges).await.unwrap();
        for (r, g) in ranges.iter().zip(&got) {
            assert_eq!(&g[..], &data[r.start as usize..r.end as usize], "{r:?}");
        }
        // Small reads answer on this thread.
        let got = b.get_ranges(&p, &[10..20]).await.unwrap();
        assert_eq!(&got[0][..], &data[10..20]);
    }

    #[tokio::test]
    async fn ranges_past_the_end_are_cut_and_missing_objects_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let b = bucket(d.path());
        let p = Path::from("blk/index");
        b.put(&p, vec![1u8; 100].into()).await.unwrap();
        let got = b.get_ranges(&p, &[50..150, 0..10]).await.unwrap();
        assert_eq!((got[0].len(), got[1].len()), (50, 10), "cut at the end");
        let err = b.get_ranges(&p, &[100..150]).await.unwrap_err();
        assert!(
            err.to_string().contains("past the object's 100 bytes"),
            "{err}"
        );
        let err = b
            .get_ranges(&Path::from("blk/missing"), &[0..1])
            .await
            .unwrap_err();
        assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
    }
}
