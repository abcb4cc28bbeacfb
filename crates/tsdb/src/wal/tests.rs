//! Writer, reader, repair and checkpoint tests on the bytes themselves.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::reader::read_segment;
use super::*;
use crate::error::Error;

use testkit::Rng;

/// Incompressible bytes, none of them zero (so a zeroed byte is always a change).
fn record(rng: &mut Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| (rng.next() >> 24) as u8 | 1).collect()
}

/// Every record of a replay, and the replay summary. Empty records are refused as a
/// decoder would refuse them.
fn replay_all(dir: &Path) -> (Vec<Vec<u8>>, Replay) {
    let mut got = Vec::new();
    let r = replay(dir, |rec| {
        if rec.is_empty() {
            return Err(Error::corrupted("test record", 0, "empty"));
        }
        got.push(rec.to_vec());
        Ok(())
    })
    .unwrap();
    (got, r)
}

/// End offsets of the records of one intact segment.
fn record_ends(path: &Path) -> Vec<u64> {
    let mut ends = Vec::new();
    let c = read_segment(path, &mut |_, end| {
        ends.push(end);
        Ok(())
    })
    .unwrap();
    assert!(c.is_none(), "{c:?}");
    ends
}

fn uncompressed(dir: &Path, pages: usize) -> Writer {
    let mut w = Writer::with_segment_size(dir, pages * PAGE_SIZE).unwrap();
    w.set_compress(false);
    w
}

fn seg(dir: &Path, i: u32) -> PathBuf {
    segment_path(dir, i)
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

fn corruption_at(c: &Error) -> (String, u64) {
    match c {
        Error::Corrupted { what, offset, .. } => (what.clone(), *offset),
        other => panic!("not a corruption: {other}"),
    }
}

#[test]
fn fragments_follow_the_page_layout() {
    let d = tempfile::tempdir().unwrap();
    let mut w = uncompressed(d.path(), 4);
    assert_eq!(w.current_segment(), 0);
    let s0 = seg(d.path(), 0);
    let mut rng = Rng(7);
    let mut logged = Vec::new();
    let mut log = |w: &mut Writer, r: Vec<u8>| {
        let path = w.dir().join(segment_name(w.current_segment()));
        let before = std::fs::read(&path).unwrap();
        w.log(&[&r]).unwrap();
        // Written bytes are never rewritten.
        let after = std::fs::read(&path).unwrap();
        assert_eq!(&after[..before.len()], &before[..]);
        logged.push(r);
    };

    let a = record(&mut rng, 100);
    log(&mut w, a.clone());
    let b = std::fs::read(&s0).unwrap();
    assert_eq!(b.len(), 107, "the partial page is written at once");
    assert_eq!(b[0], FULL);
    assert_eq!(&b[1..3], &100u16.to_be_bytes());
    assert_eq!(&b[3..7], &crate::encoding::crc32(&a).to_be_bytes());
    assert_eq!(&b[7..], &a[..]);

    // Leave exactly one header's worth of room in the page.
    log(&mut w, record(&mut rng, PAGE_SIZE - 107 - 2 * HEADER_SIZE));
    assert_eq!(file_len(&s0), (PAGE_SIZE - HEADER_SIZE) as u64);
    // The next record starts with an empty first fragment there.
    log(&mut w, record(&mut rng, 50));
    let b = std::fs::read(&s0).unwrap();
    assert_eq!(b.len(), PAGE_SIZE + HEADER_SIZE + 50);
    assert_eq!(&b[PAGE_SIZE - 7..PAGE_SIZE], &[FIRST, 0, 0, 0, 0, 0, 0]);
    assert_eq!(b[PAGE_SIZE], LAST);
    assert_eq!(&b[PAGE_SIZE + 1..PAGE_SIZE + 3], &50u16.to_be_bytes());

    // Leave three bytes: too few for a header, so the page is padded.
    log(&mut w, record(&mut rng, PAGE_SIZE - 57 - HEADER_SIZE - 3));
    let b = std::fs::read(&s0).unwrap();
    assert_eq!(b.len(), 2 * PAGE_SIZE);
    assert_eq!(&b[2 * PAGE_SIZE - 3..], &[0, 0, 0]);

    // 2.5 pages do not fit in the two pages left: a new segment, first/middle/last.
    let big = record(&mut rng, 5 * PAGE_SIZE / 2);
    log(&mut w, big.clone());
    assert_eq!(w.current_segment(), 1);
    assert_eq!(file_len(&s0), 2 * PAGE_SIZE as u64);
    let b = std::fs::read(seg(d.path(), 1)).unwrap();
    let body = PAGE_SIZE - HEADER_SIZE;
    assert_eq!(b.len(), 2 * PAGE_SIZE + HEADER_SIZE + big.len() - 2 * body);
    assert_eq!(b[0], FIRST);
    assert_eq!(b[PAGE_SIZE], MIDDLE);
    assert_eq!(b[2 * PAGE_SIZE], LAST);
    assert_eq!(&b[1..3], &(body as u16).to_be_bytes());

    // A batch is written by one call; an empty batch writes nothing.
    w.log(&[]).unwrap();
    let (x, y) = (record(&mut rng, 10), record(&mut rng, 20));
    w.log(&[&x, &y]).unwrap();
    logged.push(x);
    logged.push(y);
    w.sync().unwrap();

    let (got, r) = replay_all(d.path());
    assert!(r.corruption.is_none(), "{:?}", r.corruption);
    assert_eq!(got, logged);
    assert_eq!((r.records, r.segments_read), (logged.len() as u64, 2));

    // Cutting a segment pads the last page and opens the next one.
    assert_eq!(w.next_segment().unwrap(), 2);
    assert_eq!(file_len(&seg(d.path(), 1)) % PAGE_SIZE as u64, 0);
    assert_eq!(file_len(&seg(d.path(), 2)), 0);
    assert_eq!(replay_all(d.path()).0, logged);
}

#[test]
fn many_records_cross_pages_and_segments() {
    for compress in [false, true] {
        let d = tempfile::tempdir().unwrap();
        let pages = 4;
        let mut w = Writer::with_segment_size(d.path(), pages * PAGE_SIZE).unwrap();
        w.set_compress(compress);
        let mut rng = Rng(42);
        let mut logged: Vec<Vec<u8>> = Vec::new();
        let mut unpadded = None;
        for round in 0..300 {
            let n = 1 + rng.below(4);
            let batch: Vec<Vec<u8>> = (0..n)
                .map(|_| {
                    let len = match rng.below(10) {
                        0 => 1 + rng.below(3 * PAGE_SIZE),
                        1..=3 => 1 + rng.below(PAGE_SIZE),
                        _ => 1 + rng.below(400),
                    };
                    if compress && rng.below(2) == 0 {
                        // Compressible: text-like repetition.
                        b"series{job=\"x\"} "
                            .iter()
                            .cycle()
                            .take(len)
                            .copied()
                            .collect()
                    } else {
                        record(&mut rng, len)
                    }
                })
                .collect();
            let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            w.log(&refs).unwrap();
            logged.extend(batch);
            if round == 150 {
                // Reopening starts a fresh segment after the last.
                let last = w.current_segment();
                // Dropped without `close`: that segment's last page stays unpadded.
                unpadded = Some(last);
                drop(w);
                w = Writer::with_segment_size(d.path(), pages * PAGE_SIZE).unwrap();
                w.set_compress(compress);
                assert_eq!(w.current_segment(), last + 1);
            }
            if round % 97 == 0 {
                w.next_segment().unwrap();
            }
        }
        // A record larger than a segment goes alone into a fresh one.
        let huge = record(&mut rng, 5 * PAGE_SIZE);
        w.log(&[&huge]).unwrap();
        let huge_seg = w.current_segment();
        logged.push(huge);
        let tail = record(&mut rng, 10);
        w.log(&[&tail]).unwrap();
        logged.push(tail);
        assert_eq!(w.current_segment(), huge_seg + 1);

        let (got, r) = replay_all(d.path());
        assert!(r.corruption.is_none(), "{:?}", r.corruption);
        assert_eq!(got.len(), logged.len());
        assert!(got == logged, "replay differs (compress={compress})");
        let (first, last) = segment_range(d.path()).unwrap().unwrap();
        assert_eq!(first, 0);
        assert!(last > 5, "only {last} segments");
        assert_eq!(r.segments_read, last + 1);
        for i in first..last {
            let len = file_len(&seg(d.path(), i)) as usize;
            if unpadded != Some(i) {
                assert_eq!(len % PAGE_SIZE, 0, "closed segment {i} is page aligned");
            }
            assert!(
                i == huge_seg || len <= pages * PAGE_SIZE,
                "segment {i}: {len}"
            );
        }
    }
}

#[test]
fn compressed_records_are_flagged_and_restored() {
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path()).unwrap();
    let text: Vec<u8> = b"up{job=\"prometheus\"} ".repeat(3000);
    let noise = record(&mut Rng(3), 500);
    w.log(&[&text, &noise]).unwrap();
    let b = std::fs::read(seg(d.path(), 0)).unwrap();
    assert_eq!(b[0], FULL | SNAPPY);
    assert!(record_ends(&seg(d.path(), 0))[0] < 4000, "compressed");
    let mut got = Vec::new();
    let r = replay(d.path(), |rec| {
        got.push(rec.to_vec());
        Ok(())
    })
    .unwrap();
    assert!(r.corruption.is_none());
    assert_eq!(got, vec![text, noise]);
    // The incompressible record is stored as is.
    let ends = record_ends(&seg(d.path(), 0));
    assert_eq!(b[ends[0] as usize], FULL);
}

/// Writes raw fragment bytes as segment 0 of `dir`.
fn raw_segment(dir: &Path, frags: &[(u8, &[u8])]) -> PathBuf {
    let mut b = Vec::new();
    for (t, data) in frags {
        b.push(*t);
        b.extend_from_slice(&(data.len() as u16).to_be_bytes());
        b.extend_from_slice(&crate::encoding::crc32(data).to_be_bytes());
        b.extend_from_slice(data);
    }
    let p = seg(dir, 0);
    std::fs::write(&p, b).unwrap();
    p
}

#[test]
fn zstd_is_rejected_with_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    raw_segment(d.path(), &[(FULL, b"ok"), (FULL | ZSTD, b"zstd bytes")]);
    let e = replay(d.path(), |_| Ok(())).unwrap_err().to_string();
    assert!(
        e.contains("zstd") && e.contains("00000000") && e.contains("offset 9"),
        "{e}"
    );
    // Snappy and zstd together is garbage, not zstd.
    raw_segment(d.path(), &[(FULL, b"ok"), (FULL | ZSTD | SNAPPY, b"x")]);
    let r = replay(d.path(), |_| Ok(())).unwrap();
    assert_eq!(r.records, 1);
    assert!(r.corruption.is_some());
}

#[test]
fn bad_snappy_and_misplaced_fragments_are_corruption() {
    let d = tempfile::tempdir().unwrap();
    let cases: Vec<Vec<(u8, &[u8])>> = vec![
        vec![(FULL | SNAPPY, b"\xff\xff\xff\xff\x0fjunk")],
        vec![(FULL | SNAPPY, b"\x05\x00")],
        vec![(MIDDLE, b"x")],
        vec![(LAST, b"x")],
        vec![(FIRST, b"x")],
        vec![(5, b"x")],
        vec![(0x21, b"x")],
    ];
    for frags in cases {
        let mut all: Vec<(u8, &[u8])> = vec![(FULL, b"good")];
        all.extend(frags.iter().copied());
        let p = raw_segment(d.path(), &all);
        let (got, r) = replay_all(d.path());
        assert_eq!(got, vec![b"good".to_vec()], "{frags:?}");
        let (what, off) = corruption_at(r.corruption.as_ref().unwrap());
        assert_eq!((what, off), (p.display().to_string(), 11), "{frags:?}");
    }
}

/// Logs into segment 0 (closed) and a partly written segment 1 whose last page is partly
/// filled and which has a record crossing into that page. Returns the records per segment.
fn two_segments(dir: &Path, seed: u64) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut rng = Rng(seed);
    let mut w = uncompressed(dir, 4);
    let mut s0 = Vec::new();
    let mut s1 = Vec::new();
    for _ in 0..40 {
        let len = 1 + rng.below(2000);
        let r = record(&mut rng, len);
        w.log(&[&r]).unwrap();
        s0.push(r);
    }
    w.next_segment().unwrap();
    while file_len(&seg(dir, 1)) < (PAGE_SIZE + PAGE_SIZE / 3) as u64 {
        let len = if rng.below(8) == 0 {
            6000
        } else {
            1 + rng.below(700)
        };
        let r = record(&mut rng, len);
        w.log(&[&r]).unwrap();
        s1.push(r);
    }
    (s0, s1)
}

/// The records a damaged segment 1 must still yield when bytes from `at` on are bad, and
/// where its good part ends.
fn expect(ends: &[u64], at: u64) -> (usize, u64) {
    let n = ends.iter().take_while(|&&e| e <= at).count();
    (n, if n == 0 { 0 } else { ends[n - 1] })
}

#[test]
fn torn_tail_keeps_every_record_before_it() {
    let d = tempfile::tempdir().unwrap();
    let (s0, s1) = two_segments(d.path(), 11);
    let p1 = seg(d.path(), 1);
    let orig = std::fs::read(&p1).unwrap();
    let ends = record_ends(&p1);
    assert_eq!(ends.len(), s1.len());
    let len = orig.len();
    let last_page = len / PAGE_SIZE * PAGE_SIZE;
    assert!(len - last_page > 1000);
    let mut cuts: Vec<usize> = (0..last_page).step_by(37).collect();
    cuts.extend(last_page..=len);
    cuts.sort_unstable();
    cuts.dedup();

    let scratch = tempfile::tempdir().unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&p1).unwrap();
    for (k, &cut) in cuts.iter().enumerate().rev() {
        f.set_len(cut as u64).unwrap();
        let (got, r) = replay_all(d.path());
        let (n, good_end) = expect(&ends, cut as u64);
        assert_eq!(got.len(), s0.len() + n, "cut at {cut}");
        assert!(
            got[..s0.len()] == s0[..] && got[s0.len()..] == s1[..n],
            "cut at {cut}"
        );
        let clean = orig[good_end as usize..cut].iter().all(|&b| b == 0);
        match &r.corruption {
            None => assert!(clean, "cut at {cut}: torn record not reported"),
            Some(c) => {
                assert!(!clean, "cut at {cut}: clean end reported as {c}");
                assert_eq!(corruption_at(c), (p1.display().to_string(), good_end));
            }
        }
        if k % 500 == 0 || cut == len - 1 {
            check_repair(d.path(), scratch.path(), &got, r.corruption.as_ref());
        }
    }
}

/// Copies the WAL, repairs the copy, and checks that it replays `before` cleanly and then
/// takes new records.
fn check_repair(wal: &Path, scratch: &Path, before: &[Vec<u8>], corruption: Option<&Error>) {
    let dir = scratch.join("wal");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for i in super::dir::list_segments(wal).unwrap() {
        std::fs::copy(seg(wal, i), seg(&dir, i)).unwrap();
    }
    if let Some(c) = corruption {
        // The error names the original directory: point it at the copy.
        let (what, offset) = corruption_at(c);
        let name = Path::new(&what).file_name().unwrap();
        let c = Error::corrupted(dir.join(name).display().to_string(), offset, "copy");
        let msg = repair(&dir, &c).unwrap();
        assert!(msg.contains("truncated"), "{msg}");
        let (_, last) = segment_range(&dir).unwrap().unwrap();
        let last_len = file_len(&seg(&dir, last));
        assert_eq!(last_len % PAGE_SIZE as u64, 0);
        assert_eq!(
            last_len,
            offset.div_ceil(PAGE_SIZE as u64) * PAGE_SIZE as u64
        );
    }
    let (got, r) = replay_all(&dir);
    assert!(r.corruption.is_none(), "{:?}", r.corruption);
    assert!(got == before);
    let mut w = Writer::open(&dir).unwrap();
    let new = [b"new one".to_vec(), record(&mut Rng(5), 40_000)];
    w.log(&[&new[0], &new[1]]).unwrap();
    let (got, r) = replay_all(&dir);
    assert!(r.corruption.is_none(), "{:?}", r.corruption);
    assert_eq!(got.len(), before.len() + 2);
    assert!(got[..before.len()] == *before && got[before.len()..] == new);
}

#[test]
fn garbage_and_zeroed_tails_keep_every_record_before_them() {
    let d = tempfile::tempdir().unwrap();
    let (s0, s1) = two_segments(d.path(), 12);
    let p1 = seg(d.path(), 1);
    let orig = std::fs::read(&p1).unwrap();
    let ends = record_ends(&p1);
    let len = orig.len();
    let f = std::fs::OpenOptions::new().write(true).open(&p1).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let mut rng = Rng(99);
    let check = |at: usize, zeroed_tail: bool| {
        let (got, r) = replay_all(d.path());
        let (n, good_end) = expect(&ends, at as u64);
        assert_eq!(got.len(), s0.len() + n, "damage at {at}");
        assert!(
            got[..s0.len()] == s0[..] && got[s0.len()..] == s1[..n],
            "at {at}"
        );
        let clean = zeroed_tail && orig[good_end as usize..at].iter().all(|&b| b == 0);
        match &r.corruption {
            None => assert!(clean, "damage at {at} not reported"),
            Some(c) => {
                assert!(!clean, "damage at {at}: clean end reported as {c}");
                assert_eq!(corruption_at(c), (p1.display().to_string(), good_end));
            }
        }
        (got, r)
    };
    for (k, at) in (0..len).step_by(13).enumerate() {
        // Garbage: every damaged byte differs, and a type byte gets an unknown high bit.
        let k_len = (1 + rng.below(16)).min(len - at);
        let bad: Vec<u8> = orig[at..at + k_len]
            .iter()
            .map(|&b| b ^ (0x80 | rng.next() as u8))
            .collect();
        f.write_all_at(&bad, at as u64).unwrap();
        let (got, r) = check(at, false);
        if k % 400 == 0 {
            check_repair(d.path(), scratch.path(), &got, r.corruption.as_ref());
        }
        f.write_all_at(&orig[at..at + k_len], at as u64).unwrap();
    }
    for at in (0..len).step_by(11) {
        // A zeroed tail, as a file extended without its data reaching the disk.
        if orig[at..].iter().all(|&b| b == 0) {
            continue;
        }
        f.write_all_at(&vec![0u8; len - at], at as u64).unwrap();
        check(at, true);
        f.write_all_at(&orig[at..], at as u64).unwrap();
    }
}

#[test]
fn damage_in_an_earlier_segment_drops_the_later_ones() {
    let d = tempfile::tempdir().unwrap();
    let (s0, _) = two_segments(d.path(), 13);
    let mut w = uncompressed(d.path(), 4);
    w.log(&[b"in segment 2"]).unwrap();
    let p0 = seg(d.path(), 0);
    let ends = record_ends(&p0);
    let at = ends[20] as usize + HEADER_SIZE;
    let f = std::fs::OpenOptions::new().write(true).open(&p0).unwrap();
    f.write_all_at(&[0xee], at as u64).unwrap();
    let (got, r) = replay_all(d.path());
    assert_eq!(got, s0[..21].to_vec());
    let c = r.corruption.unwrap();
    assert_eq!(corruption_at(&c), (p0.display().to_string(), ends[20]));
    assert_eq!(r.segments_read, 1);
    let msg = c.to_string();
    assert!(msg.contains(&format!("offset {}", ends[20])), "{msg}");

    let done = repair(d.path(), &c).unwrap();
    assert!(done.contains("deleted 2 later segments"), "{done}");
    assert_eq!(segment_range(d.path()).unwrap(), Some((0, 0)));
    let (got, r) = replay_all(d.path());
    assert!(r.corruption.is_none());
    assert_eq!(got, s0[..21].to_vec());
}

#[test]
fn undecodable_records_become_corruption() {
    let d = tempfile::tempdir().unwrap();
    let mut w = uncompressed(d.path(), 4);
    let mut good = Vec::new();
    encode_samples(
        &[RefSample {
            series_ref: 1,
            t: 2,
            v: 3.0,
        }],
        &mut good,
    );
    let bad = [record::SERIES, 0, 0, 1];
    w.log(&[&good, &good, &bad, &good]).unwrap();
    let mut n = 0;
    let r = replay(d.path(), |rec| {
        decode(rec)?;
        n += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!((n, r.records), (2, 2));
    let c = r.corruption.unwrap();
    let (_, off) = corruption_at(&c);
    assert_eq!(off, 2 * (HEADER_SIZE + good.len()) as u64);
    assert!(c.to_string().contains("WAL record"), "{c}");

    // Other callback errors end the replay as errors.
    let e = replay(d.path(), |_| Err(Error::InvalidInput("stop".into()))).unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)));
}

#[test]
fn repair_refuses_what_it_cannot_place() {
    let d = tempfile::tempdir().unwrap();
    Writer::open(d.path()).unwrap();
    let other = tempfile::tempdir().unwrap();
    for e in [
        Error::InvalidInput("x".into()),
        Error::corrupted("somewhere", 0, "x"),
        Error::corrupted(other.path().join("00000000").display().to_string(), 0, "x"),
        Error::corrupted(
            d.path()
                .join("checkpoint.00000001/00000000")
                .display()
                .to_string(),
            0,
            "x",
        ),
        Error::corrupted(seg(d.path(), 5).display().to_string(), 0, "x"),
        Error::corrupted(seg(d.path(), 0).display().to_string(), 99, "x"),
    ] {
        assert!(repair(d.path(), &e).is_err(), "{e}");
    }
    assert_eq!(segment_range(d.path()).unwrap(), Some((0, 0)));
}

#[test]
fn checkpoint_then_newer_segments() {
    let d = tempfile::tempdir().unwrap();
    let mut w = uncompressed(d.path(), 2);
    let rec = |s: &str| s.as_bytes().to_vec();
    for i in 0..4 {
        w.log(&[&rec(&format!("seg{i} a")), &rec(&format!("seg{i} b"))])
            .unwrap();
        w.next_segment().unwrap();
    }
    w.log(&[b"seg4"]).unwrap();
    assert_eq!(w.current_segment(), 4);

    // An older checkpoint, then the one that replaces it.
    checkpoint(d.path(), 0, [b"old cp".as_slice()].into_iter()).unwrap();
    assert!(d.path().join("checkpoint.00000000").is_dir());
    assert_eq!(segment_range(d.path()).unwrap(), Some((1, 4)));
    std::fs::create_dir(d.path().join("checkpoint.00000001.tmp")).unwrap();
    let cp: Vec<Vec<u8>> = (0..3000)
        .map(|i| format!("cp {i:05}").into_bytes())
        .collect();
    checkpoint(d.path(), 2, cp.iter().map(Vec::as_slice)).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["00000003", "00000004", "checkpoint.00000002"]);

    let mut want = cp.clone();
    want.extend([rec("seg3 a"), rec("seg3 b"), rec("seg4")]);
    let (got, r) = replay_all(d.path());
    assert!(r.corruption.is_none());
    assert!(got == want);
    assert_eq!(r.segments_read, 3);

    // The writer keeps going; a reopened one starts after everything.
    w.log(&[b"more"]).unwrap();
    drop(w);
    let w = Writer::open(d.path()).unwrap();
    assert_eq!(w.current_segment(), 5);
    want.push(rec("more"));
    assert!(replay_all(d.path()).0 == want);

    // Segments at or below the checkpoint left by an interrupted cleanup are skipped.
    std::fs::write(seg(d.path(), 2), b"\x01\x00\x01junk").unwrap();
    assert!(replay_all(d.path()).0 == want);
}

#[test]
fn writer_never_reuses_indices_covered_by_a_checkpoint() {
    let d = tempfile::tempdir().unwrap();
    checkpoint(d.path(), 7, std::iter::empty()).unwrap();
    let mut w = Writer::open(d.path()).unwrap();
    assert_eq!(w.current_segment(), 8);
    w.log(&[b"x"]).unwrap();
    assert_eq!(replay_all(d.path()).0, vec![b"x".to_vec()]);
}

#[test]
fn gaps_and_checkpoint_damage_are_errors() {
    let d = tempfile::tempdir().unwrap();
    let mut w = uncompressed(d.path(), 1);
    for _ in 0..3 {
        w.log(&[b"r"]).unwrap();
        w.next_segment().unwrap();
    }
    std::fs::remove_file(seg(d.path(), 1)).unwrap();
    let e = replay(d.path(), |_| Ok(())).unwrap_err().to_string();
    assert!(e.contains("00000001 is missing"), "{e}");

    let d = tempfile::tempdir().unwrap();
    checkpoint(d.path(), 3, [b"cp".as_slice()].into_iter()).unwrap();
    std::fs::write(seg(d.path(), 5), b"").unwrap();
    let e = replay(d.path(), |_| Ok(())).unwrap_err().to_string();
    assert!(e.contains("00000004"), "{e}");
    std::fs::remove_file(seg(d.path(), 5)).unwrap();

    let cp0 = d.path().join("checkpoint.00000003").join("00000000");
    let f = std::fs::OpenOptions::new().write(true).open(&cp0).unwrap();
    f.write_all_at(b"X", 8).unwrap();
    let e = replay(d.path(), |_| Ok(())).unwrap_err();
    assert!(
        e.is_corrupted() && e.to_string().contains("checkpoint.00000003"),
        "{e}"
    );
}

#[test]
fn empty_and_missing_directories_replay_nothing() {
    let d = tempfile::tempdir().unwrap();
    let r = replay(&d.path().join("absent"), |_| Ok(())).unwrap();
    assert_eq!((r.records, r.segments_read), (0, 0));
    Writer::open(d.path()).unwrap();
    let r = replay(d.path(), |_| Ok(())).unwrap();
    assert_eq!((r.records, r.segments_read), (0, 1));
    assert!(r.corruption.is_none());
    for bad in [0, 1000, PAGE_SIZE + 1] {
        assert!(Writer::with_segment_size(d.path(), bad).is_err());
    }
}

#[test]
fn series_and_samples_survive_the_log() {
    use crate::labels::{Label, Labels};
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::with_segment_size(d.path(), 2 * PAGE_SIZE).unwrap();
    let series: Vec<RefSeries> = (0..500u64)
        .map(|i| RefSeries {
            series_ref: i + 1,
            labels: Labels::from_sorted(vec![
                Label::new("__name__", "http_requests_total"),
                Label::new("instance", format!("host-{i}:9100")),
                Label::new("job", "node"),
            ]),
        })
        .collect();
    let samples: Vec<RefSample> = (0..5000u64)
        .map(|i| RefSample {
            series_ref: i % 500 + 1,
            t: 1_700_000_000_000 + (i / 500) as i64 * 15_000,
            v: i as f64 * 0.5,
        })
        .collect();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    encode_series(&series, &mut a);
    encode_samples(&samples, &mut b);
    w.log(&[&a, &b]).unwrap();
    let mut got = Vec::new();
    let r = replay(d.path(), |rec| {
        got.push(decode(rec)?);
        Ok(())
    })
    .unwrap();
    assert!(r.corruption.is_none());
    assert_eq!(got, vec![Record::Series(series), Record::Samples(samples)]);
}

#[test]
fn arbitrary_segment_bytes_never_panic() {
    let d = tempfile::tempdir().unwrap();
    let mut rng = Rng(2024);
    for round in 0..400 {
        // Plausible fragments (valid checksums, random types, flags and lengths, snappy-ish
        // payloads) mixed with raw noise and zero runs.
        let mut b = Vec::new();
        while b.len() < 3 * PAGE_SIZE && rng.below(40) != 0 {
            match rng.below(6) {
                0 => {
                    let n = rng.below(100);
                    b.extend(record(&mut rng, n));
                }
                1 => b.extend(std::iter::repeat_n(0u8, rng.below(PAGE_SIZE))),
                _ => {
                    let len = match rng.below(3) {
                        0 => rng.below(PAGE_SIZE),
                        _ => rng.below(300),
                    };
                    let mut data = record(&mut rng, len);
                    if let Some(first) = data.first_mut() {
                        *first = rng.below(0x80) as u8;
                    }
                    let flag = match rng.below(12) {
                        0 => SNAPPY,
                        1 => ZSTD,
                        2 => 0x40,
                        _ => 0,
                    };
                    let t = [FULL, FIRST, MIDDLE, LAST, PADDING, 5][rng.below(6)] | flag;
                    b.push(t);
                    b.extend_from_slice(&(len as u16).to_be_bytes());
                    b.extend_from_slice(&crate::encoding::crc32(&data).to_be_bytes());
                    b.extend(data);
                }
            }
        }
        std::fs::write(seg(d.path(), 0), &b).unwrap();
        let r = replay(d.path(), |rec| decode(rec).map(|_| ()));
        if let Ok(r) = r {
            if round % 100 == 0 {
                if let Some(c) = &r.corruption {
                    assert!(c.to_string().contains("00000000"), "{c}");
                }
            }
        }
    }
}
