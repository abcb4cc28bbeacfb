//! Arbitrary bytes as a tombstones file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = tsdb::tombstones::Tombstones::decode(data, "fuzz/tombstones") {
        let _ = t.encode();
    }
});
