//! Arbitrary bytes as a chunk segment file: scan every record and read chunks by offset.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsdb::chunks::{scan_segment, ChunkReader, ChunkRef, FileBytes};

fuzz_target!(|data: &[u8]| {
    let _ = scan_segment(data, "fuzz/000001", |_, _, _| {});
    if let Ok(r) = ChunkReader::from_segments(vec![("fuzz/000001".into(), FileBytes::from_vec(data.to_vec()))]) {
        for off in [0u32, 8, 9, 16, data.len() as u32 / 2, data.len() as u32] {
            let _ = r.chunk_checked(ChunkRef::new(0, off));
        }
    }
});
