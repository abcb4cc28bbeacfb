//! Arbitrary bytes as integer and float histogram chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsdb::chunkenc::{histogram, Encoding};

fuzz_target!(|data: &[u8]| {
    let _ = histogram::decode_all(Encoding::HISTOGRAM, data);
    let _ = histogram::decode_all(Encoding::FLOAT_HISTOGRAM, data);
});
