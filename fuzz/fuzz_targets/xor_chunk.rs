//! Arbitrary bytes as an XOR chunk: decode every sample, and seek.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsdb::chunkenc::XorIterator;

fuzz_target!(|data: &[u8]| {
    let mut it = XorIterator::new(data);
    while it.next() {
        let _ = it.at();
    }
    let _ = it.err();
    let mut it = XorIterator::new(data);
    let _ = it.seek(i64::MAX / 2);
});
