//! Arbitrary bytes as an index file: open it and read everything it claims to hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsdb::chunks::FileBytes;
use tsdb::index::{IndexReader, SeriesEntry};

fuzz_target!(|data: &[u8]| {
    let Ok(ix) = IndexReader::new(FileBytes::from_vec(data.to_vec()), "fuzz/index") else {
        return;
    };
    for i in 0..ix.num_symbols().min(10_000) {
        let _ = ix.symbol(i as u32);
    }
    let mut entry = SeriesEntry::default();
    for name in ix.label_names() {
        if let Ok(values) = ix.label_values(name) {
            for v in values.into_iter().take(1000) {
                if let Ok(refs) = ix.postings(name, v) {
                    for r in refs.into_iter().take(1000) {
                        if ix.series(r, &mut entry).is_ok() {
                            let _ = ix.labels_of(&entry.label_refs);
                        }
                    }
                }
            }
        }
    }
    let _ = ix.all_postings();
});
