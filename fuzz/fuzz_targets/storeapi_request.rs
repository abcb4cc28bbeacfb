//! Arbitrary bytes as StoreAPI requests (Series, LabelNames, LabelValues) as a store decodes
//! them: protobuf decoding, matcher conversion (regex compilation included) and matching.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use storeapi::pb;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = pb::SeriesRequest::decode(data) {
        let _ = req.aggregates().count();
        if let Ok(ms) = storeapi::convert::matchers_from_pb(&req.matchers) {
            for m in &ms {
                let _ = (m.matches(""), m.matches("foo"), m.matches("host-1"));
            }
        }
        let _ = req.encode_to_vec();
    }
    if let Ok(req) = pb::LabelNamesRequest::decode(data) {
        let _ = storeapi::convert::matchers_from_pb(&req.matchers);
    }
    if let Ok(req) = pb::LabelValuesRequest::decode(data) {
        let _ = storeapi::convert::matchers_from_pb(&req.matchers);
    }
    let _ = pb::info::InfoResponse::decode(data);
    let _ = pb::SeriesResponse::decode(data);
});
