//! A bucket that counts and times its operations under Thanos's objstore metric names, so
//! the dashboards and alerts written for Thanos read ours:
//! `thanos_objstore_bucket_operations_total`, `…_operation_failures_total` and
//! `…_operation_duration_seconds` (labels `bucket` and `operation`: get, get_range,
//! attributes, upload, delete, iter, copy, rename), and
//! `thanos_objstore_bucket_last_successful_upload_time`.

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::time::Instant;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

use crate::Bucket;

/// Thanos's buckets for object storage operations (seconds).
const BUCKETS: &[f64] = &[
    0.01, 0.1, 0.3, 0.6, 1.0, 3.0, 6.0, 9.0, 20.0, 30.0, 60.0, 90.0, 120.0,
];

/// `inner` with metrics labelled `bucket=name`.
pub fn instrument(inner: Bucket, name: &str) -> Bucket {
    // Registered up front so that dashboards see zeros before the first operation.
    for op in ["get", "get_range", "attributes", "upload", "delete", "iter"] {
        let labels = [("bucket", name), ("operation", op)];
        telemetry::counter(OPS, OPS_HELP, &labels);
        telemetry::counter(FAILURES, FAILURES_HELP, &labels);
    }
    telemetry::gauge(
        "thanos_objstore_bucket_last_successful_upload_time",
        "Second timestamp of the last successful upload to the bucket.",
        &[("bucket", name)],
    );
    std::sync::Arc::new(Instrumented {
        inner,
        name: name.to_string(),
    })
}

const OPS: &str = "thanos_objstore_bucket_operations_total";
const OPS_HELP: &str = "Total number of all attempted operations against a bucket.";
const FAILURES: &str = "thanos_objstore_bucket_operation_failures_total";
const FAILURES_HELP: &str =
    "Total number of operations against a bucket that failed, but were not expected to fail in certain way from caller perspective. Those errors have to be investigated.";

#[derive(Debug)]
struct Instrumented {
    inner: Bucket,
    name: String,
}

impl fmt::Display for Instrumented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl Instrumented {
    fn count(&self, op: &str, ok: bool, started: Option<Instant>) {
        let labels = [("bucket", self.name.as_str()), ("operation", op)];
        telemetry::counter(OPS, OPS_HELP, &labels).inc();
        if !ok {
            telemetry::counter(FAILURES, FAILURES_HELP, &labels).inc();
        }
        if let Some(t) = started {
            telemetry::histogram(
                "thanos_objstore_bucket_operation_duration_seconds",
                "Duration of successful operations against the remote bucket",
                &labels,
                BUCKETS,
            )
            .observe(t.elapsed().as_secs_f64());
        }
    }

    async fn track<T>(&self, op: &str, f: impl Future<Output = Result<T>>) -> Result<T> {
        let started = Instant::now();
        let r = f.await;
        // A missing object is an answer, not a failure of the bucket.
        let ok = matches!(&r, Ok(_) | Err(object_store::Error::NotFound { .. }));
        self.count(op, ok, r.is_ok().then_some(started));
        r
    }
}

#[async_trait::async_trait]
impl ObjectStore for Instrumented {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let r = self
            .track("upload", self.inner.put_opts(location, payload, opts))
            .await;
        if r.is_ok() {
            telemetry::gauge(
                "thanos_objstore_bucket_last_successful_upload_time",
                "Second timestamp of the last successful upload to the bucket.",
                &[("bucket", self.name.as_str())],
            )
            .set(tsdb::time::now_ms() as f64 / 1000.0);
        }
        r
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.track("upload", self.inner.put_multipart_opts(location, opts))
            .await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let op = if options.head {
            "attributes"
        } else if options.range.is_some() {
            "get_range"
        } else {
            "get"
        };
        self.track(op, self.inner.get_opts(location, options)).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.track("get_range", self.inner.get_ranges(location, ranges))
            .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let name = self.name.clone();
        self.inner
            .delete_stream(locations)
            .inspect(move |r| {
                let labels = [("bucket", name.as_str()), ("operation", "delete")];
                telemetry::counter(OPS, OPS_HELP, &labels).inc();
                if matches!(r, Err(e) if !matches!(e, object_store::Error::NotFound { .. })) {
                    telemetry::counter(FAILURES, FAILURES_HELP, &labels).inc();
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.count("iter", true, None);
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.count("iter", true, None);
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.track("iter", self.inner.list_with_delimiter(prefix))
            .await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.track("copy", self.inner.copy_opts(from, to, options))
            .await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.track("rename", self.inner.rename_opts(from, to, options))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    #[tokio::test]
    async fn operations_are_counted_by_kind() {
        let b = instrument(
            std::sync::Arc::new(object_store::memory::InMemory::new()),
            "metrics-test",
        );
        let p = Path::from("a/b");
        b.put(&p, Bytes::from_static(b"hello").into())
            .await
            .unwrap();
        b.get_range(&p, 1..3).await.unwrap();
        b.get(&p).await.unwrap().bytes().await.unwrap();
        assert!(b.get(&Path::from("missing")).await.is_err());
        let text = telemetry::render();
        for (op, n) in [("upload", 1), ("get_range", 1), ("get", 2)] {
            let want = format!(
                "thanos_objstore_bucket_operations_total{{bucket=\"metrics-test\",operation=\"{op}\"}} {n}\n"
            );
            assert!(text.contains(&want), "{want} not in\n{text}");
        }
        assert!(text.contains(
            "thanos_objstore_bucket_operation_failures_total{bucket=\"metrics-test\",operation=\"get\"} 0\n"
        ));
    }
}
