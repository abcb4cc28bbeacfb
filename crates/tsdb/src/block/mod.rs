//! A block directory as a whole: open and query one, or write a new one.

mod reader;
mod writer;

pub use reader::{Block, BlockSeries, SampleIterator, SeriesSet};
pub use writer::{BlockWriter, ChunkCutter, DEFAULT_BLOCK_DURATION, SAMPLES_PER_CHUNK};

pub const INDEX_FILENAME: &str = "index";
pub const CHUNKS_DIRNAME: &str = "chunks";
