//! Arbitrary bytes as a Prometheus remote-read stream: frames are cut off the buffer as the
//! sidecar cuts them (varint length, CRC, protobuf), and the chunks they carry are decoded.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sidecar::remote_read::next_frame;
use tsdb::chunkenc::XorIterator;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = next_frame(&mut buf) {
        for s in &frame.chunked_series {
            for c in &s.chunks {
                let mut it = XorIterator::new(&c.data);
                while it.next() {
                    let _ = it.at();
                }
            }
        }
    }
});
