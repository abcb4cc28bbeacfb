//! Prometheus's write-ahead log (the head's `wal/` directory), read and written byte for
//! byte as Prometheus 2.x does.
//!
//! Layout:
//! - `wal/00000000`, `wal/00000001`, ...: segment files named by their index in eight
//!   decimal digits, at most 128 MiB each, made of 32 KiB pages.
//! - A record (one batch of series or samples, see [`record`]) may first be compressed whole
//!   with snappy (block format). It is then cut into fragments, each inside one page:
//!   `type <1 byte> | data length <u16 BE> | CRC32C of data <u32 BE> | data`. The low three
//!   bits of the type say where the fragment sits in its record (1 the whole record, 2 first,
//!   3 middle, 4 last); 0x08 marks snappy, 0x10 zstd (newer Prometheus; not supported here).
//!   A type byte of 0 starts zero padding up to the page end; a page with fewer than 7 bytes
//!   left is always padded. A record never spans two segments, and a closed segment's last
//!   page is padded to its full size; the segment being written ends where the log ends.
//! - `wal/checkpoint.N/` holds segments in the same format with the records still needed
//!   from segments `..=N`. Replay reads the newest checkpoint, then the segments after `N`.
//!
//! [`Writer`] appends, [`replay`] reads back, [`repair`] cuts off a damaged tail and
//! [`checkpoint`] compacts old segments.

mod checkpoint;
mod dir;
mod reader;
pub mod record;
mod repair;
mod writer;

#[cfg(test)]
mod interop_tests;
#[cfg(test)]
mod tests;

pub use checkpoint::checkpoint;
pub use dir::{segment_name, segment_path, segment_range};
pub use reader::{replay, Replay};
pub use record::{decode, encode_samples, encode_series, Record, RefSample, RefSeries};
pub use repair::repair;
pub use writer::Writer;

/// Default maximum size of a segment file.
pub const SEGMENT_SIZE: usize = 128 << 20;
/// Size of a page: no fragment crosses a page boundary.
pub const PAGE_SIZE: usize = 32 << 10;

/// Size of a fragment header: type, length, checksum.
const HEADER_SIZE: usize = 7;

/// Fragment type values (the low three bits of the type byte).
const PADDING: u8 = 0;
const FULL: u8 = 1;
const FIRST: u8 = 2;
const MIDDLE: u8 = 3;
const LAST: u8 = 4;
const TYPE_MASK: u8 = 0x07;
/// Type byte flag: the record is snappy-compressed.
const SNAPPY: u8 = 0x08;
/// Type byte flag: the record is zstd-compressed.
const ZSTD: u8 = 0x10;
