//! The streamed remote read response: frames of `uvarint(len) | CRC32C(msg) <4b BE> | msg`,
//! each msg a `ChunkedReadResponse`. Parsed incrementally as bytes arrive.

use bytes::{Buf, BytesMut};
use prost::Message;

use crate::prompb::ChunkedReadResponse;

/// Frames larger than this are refused (Prometheus packs frames up to 1 MiB by default).
pub const MAX_FRAME: usize = 64 << 20;

/// Takes the next complete frame off `buf`, if one is there. Errors name the problem.
pub fn next_frame(buf: &mut BytesMut) -> Result<Option<ChunkedReadResponse>, String> {
    let mut len: u64 = 0;
    let mut shift = 0;
    let mut header = 0;
    loop {
        let Some(&b) = buf.get(header) else {
            return Ok(None);
        };
        header += 1;
        len |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return Err("remote read frame length overflows".into());
        }
    }
    let len = usize::try_from(len).map_err(|_| "remote read frame too large".to_string())?;
    if len > MAX_FRAME {
        return Err(format!(
            "remote read frame of {len} bytes exceeds the {MAX_FRAME}-byte limit"
        ));
    }
    if buf.len() < header + 4 + len {
        return Ok(None);
    }
    buf.advance(header);
    let crc = buf.get_u32();
    let msg = buf.split_to(len);
    let actual = tsdb::encoding::crc32(&msg);
    if actual != crc {
        return Err(format!(
            "remote read frame checksum mismatch: stored {crc:#010x}, computed {actual:#010x}"
        ));
    }
    ChunkedReadResponse::decode(msg.freeze())
        .map(Some)
        .map_err(|e| format!("decode remote read frame: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompb::{ChunkedSeries, Label};

    fn frame(msg: &ChunkedReadResponse) -> Vec<u8> {
        let body = msg.encode_to_vec();
        let mut out = Vec::new();
        tsdb::encoding::put_uvarint(&mut out, body.len() as u64);
        out.extend_from_slice(&tsdb::encoding::crc32(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn parses_frames_split_anywhere() {
        let m = ChunkedReadResponse {
            chunked_series: vec![ChunkedSeries {
                labels: vec![Label {
                    name: "a".into(),
                    value: "b".into(),
                }],
                chunks: vec![],
            }],
            query_index: 0,
        };
        let bytes: Vec<u8> = [frame(&m), frame(&m)].concat();
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            let mut n = 0;
            while let Some(x) = next_frame(&mut buf).unwrap() {
                assert_eq!(x, m);
                n += 1;
            }
            buf.extend_from_slice(&bytes[cut..]);
            while let Some(_x) = next_frame(&mut buf).unwrap() {
                n += 1;
            }
            assert_eq!(n, 2, "cut {cut}");
        }
        let mut bad = frame(&m);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(next_frame(&mut BytesMut::from(&bad[..]))
            .unwrap_err()
            .contains("checksum"));
    }
}
