//! The compactor (`gauntlet compact`), as Thanos's: blocks of a bucket grouped by resolution
//! and external labels, merged level by level (2h → 8h → 2d → 14d), overlapping blocks merged
//! vertically (1:1 or with the penalty deduplication of HA replicas), raw blocks downsampled
//! to 5m and 5m blocks to 1h, retention per resolution, and garbage collection of what was
//! compacted away.

pub mod compactor;
pub mod downsample;
pub mod downsampler;
pub mod error;
pub mod group;
mod job;
pub mod merge;
pub mod metrics;
pub mod planner;

pub use compactor::{Compactor, Config, Progress};
pub use error::CompactError;
pub use merge::VerticalMerge;
