//! The compactor's metrics, under Thanos's names (`thanos_compact_*`), so Thanos's
//! dashboards and alerts work unchanged.

use telemetry::{counter, gauge, histogram, Counter, Gauge};

/// Counters and gauges of one compactor process.
pub struct Metrics {
    pub halted: Gauge,
    pub iterations: Counter,
    pub retries: Counter,
    pub gc_runs: Counter,
    pub gc_failures: Counter,
    pub garbage_collected: Counter,
    pub blocks_cleaned: Counter,
    pub cleanup_failures: Counter,
    pub cleanup_loops: Counter,
    pub partial_deletion_attempts: Counter,
    pub marked_for_deletion: Counter,
    pub marked_no_compact_out_of_order: Counter,
    pub marked_no_compact_index_size: Counter,
    pub marked_no_compact_downsample_vertical: Counter,
    pub todo_compactions: Gauge,
    pub todo_compaction_blocks: Gauge,
    pub todo_downsample_blocks: Gauge,
    pub todo_deletion_blocks: Gauge,
    pub delete_delay_seconds: Gauge,
    pub consistency_delay_seconds: Gauge,
}

impl Metrics {
    pub fn register() -> Metrics {
        let marked = |marker: &str, reason: &str| {
            counter(
                "thanos_compact_blocks_marked_total",
                "Total number of blocks marked in compactor.",
                &[("marker", marker), ("reason", reason)],
            )
        };
        Metrics {
            halted: gauge(
                "thanos_compact_halted",
                "Set to 1 if the compactor halted due to an unexpected error.",
                &[],
            ),
            iterations: counter(
                "thanos_compact_iterations_total",
                "Total number of iterations that were executed successfully.",
                &[],
            ),
            retries: counter(
                "thanos_compact_retries_total",
                "Total number of retries after retriable compactor error.",
                &[],
            ),
            gc_runs: counter(
                "thanos_compact_garbage_collection_total",
                "Total number of garbage collection operations.",
                &[],
            ),
            gc_failures: counter(
                "thanos_compact_garbage_collection_failures_total",
                "Total number of failed garbage collection operations.",
                &[],
            ),
            garbage_collected: counter(
                "thanos_compact_garbage_collected_blocks_total",
                "Total number of blocks marked for deletion by compactor.",
                &[],
            ),
            blocks_cleaned: counter(
                "thanos_compact_blocks_cleaned_total",
                "Total number of blocks deleted in compactor.",
                &[],
            ),
            cleanup_failures: counter(
                "thanos_compact_block_cleanup_failures_total",
                "Failures encountered while deleting blocks in compactor.",
                &[],
            ),
            cleanup_loops: counter(
                "thanos_compact_block_cleanup_loops_total",
                "Total number of concurrent cleanup loops of partially uploaded blocks and marked blocks that were executed successfully.",
                &[],
            ),
            partial_deletion_attempts: counter(
                "thanos_compact_aborted_partial_uploads_deletion_attempts_total",
                "Total number of started deletions of blocks that are assumed aborted and only partially uploaded.",
                &[],
            ),
            marked_for_deletion: marked("deletion-mark.json", ""),
            marked_no_compact_out_of_order: marked(
                "no-compact-mark.json",
                bucket::markers::NO_COMPACT_REASON_OUT_OF_ORDER_CHUNKS,
            ),
            marked_no_compact_index_size: marked(
                "no-compact-mark.json",
                bucket::markers::NO_COMPACT_REASON_INDEX_SIZE,
            ),
            marked_no_compact_downsample_vertical: marked(
                "no-compact-mark.json",
                bucket::markers::NO_COMPACT_REASON_DOWNSAMPLE_VERTICAL,
            ),
            todo_compactions: gauge(
                "thanos_compact_todo_compactions",
                "number of compactions to be done",
                &[],
            ),
            todo_compaction_blocks: gauge(
                "thanos_compact_todo_compaction_blocks",
                "number of blocks planned to be compacted",
                &[],
            ),
            todo_downsample_blocks: gauge(
                "thanos_compact_todo_downsample_blocks",
                "number of blocks to be downsampled",
                &[],
            ),
            todo_deletion_blocks: gauge(
                "thanos_compact_todo_deletion_blocks",
                "number of blocks that have crossed their retention period",
                &[],
            ),
            delete_delay_seconds: gauge(
                "thanos_delete_delay_seconds",
                "Configured delete delay in seconds.",
                &[],
            ),
            consistency_delay_seconds: gauge(
                "thanos_consistency_delay_seconds",
                "Configured consistency delay in seconds.",
                &[],
            ),
        }
    }

    /// Per-resolution group counters.
    pub fn group(&self, name: &str, help: &str, resolution: i64) -> Counter {
        counter(name, help, &[("resolution", &resolution.to_string())])
    }

    /// How long downsampling one block took, per source resolution.
    pub fn downsample_duration(&self, resolution: i64) -> telemetry::Histogram {
        histogram(
            "thanos_compact_downsample_duration_seconds",
            "Duration of downsample runs",
            &[("resolution", &resolution.to_string())],
            &[60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0],
        )
    }
}
