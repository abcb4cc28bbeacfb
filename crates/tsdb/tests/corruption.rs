//! Corrupt blocks (truncated files, flipped bytes, wrong magic, bad checksums, references out
//! of range) give errors naming the file and offset, never a panic.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use tsdb::block::{Block, BlockWriter};
use tsdb::Labels;

/// One way of damaging a file's bytes.
type Mutation = Box<dyn Fn(&mut Vec<u8>)>;

fn good_block(dir: &Path) -> PathBuf {
    let mut w = BlockWriter::new(dir, 0, 7_200_000).unwrap();
    let mut series: Vec<(Labels, i64)> = (0..40)
        .map(|i| {
            (
                Labels::from_pairs([
                    ("__name__", format!("m{}", i % 3)),
                    ("i", format!("{i:02}")),
                    ("job", "x".into()),
                ]),
                i,
            )
        })
        .collect();
    series.sort();
    for (l, i) in series {
        w.add_series(&l, (0..200).map(|t| (t * 30_000 + i, (t * i) as f64 / 7.0)))
            .unwrap();
    }
    let meta = w.finish().unwrap();
    dir.join(meta.ulid)
}

/// Opens the block and reads every series and sample; returns the first error.
fn read_everything(dir: &Path) -> Result<usize, String> {
    let block = Block::open(dir).map_err(|e| e.to_string())?;
    let mut n = 0;
    for name in block.index().label_names() {
        for v in block
            .index()
            .label_values(name)
            .map_err(|e| e.to_string())?
        {
            block.index().postings(name, v).map_err(|e| e.to_string())?;
        }
    }
    let mut set = block.all_series().map_err(|e| e.to_string())?;
    while let Some(s) = set.next().map_err(|e| e.to_string())? {
        n += set
            .samples(&s)
            .collect_all()
            .map_err(|e| e.to_string())?
            .len();
    }
    let _ = tsdb::verify::verify_block(dir);
    Ok(n)
}

/// Applies `mutate` to a fresh copy of `file` for each case and checks nothing panics.
fn fuzz_file(rel: &str, cases: impl Iterator<Item = Mutation>) -> (usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let block = good_block(dir.path());
    let path = block.join(rel);
    let original = std::fs::read(&path).unwrap();
    let (mut errors, mut total) = (0, 0);
    for mutate in cases {
        let mut b = original.clone();
        mutate(&mut b);
        std::fs::write(&path, &b).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| read_everything(&block)));
        match r {
            Ok(Err(_)) => errors += 1,
            Ok(Ok(_)) => {}
            Err(_) => panic!("reading a corrupted {rel} panicked"),
        }
        total += 1;
    }
    std::fs::write(&path, &original).unwrap();
    (errors, total)
}

fn truncations(len: usize) -> impl Iterator<Item = Mutation> {
    let step = (len / 150).max(1);
    (0..len)
        .step_by(step)
        .map(|cut| Box::new(move |b: &mut Vec<u8>| b.truncate(cut)) as Mutation)
}

fn flips(len: usize, seed: u64) -> impl Iterator<Item = Mutation> {
    let mut x = seed;
    (0..300).map(move |_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let pos = (x as usize) % len;
        let mask = ((x >> 32) as u8) | 1;
        Box::new(move |b: &mut Vec<u8>| b[pos] ^= mask) as Mutation
    })
}

#[test]
fn damaged_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let block = good_block(dir.path());
    for rel in ["index", "chunks/000001", "tombstones", "meta.json"] {
        let len = std::fs::metadata(block.join(rel)).unwrap().len() as usize;
        let (e1, t1) = fuzz_file(rel, truncations(len));
        let (e2, t2) = fuzz_file(rel, flips(len, 0x1234_5678 + len as u64));
        assert!(
            e1 > 0 && e2 > 0,
            "{rel}: {e1}/{t1} truncations and {e2}/{t2} flips detected"
        );
    }
}

fn damage(rel: &str, f: impl Fn(&mut Vec<u8>)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let block = good_block(dir.path());
    let path = block.join(rel);
    let mut b = std::fs::read(&path).unwrap();
    f(&mut b);
    std::fs::write(&path, &b).unwrap();
    read_everything(&block).expect_err("damage must be detected")
}

#[test]
fn errors_name_file_and_offset() {
    let e = damage("index", |b| b[0] = 0);
    assert!(
        e.contains("/index") && e.contains("magic") && e.contains("offset 0"),
        "{e}"
    );
    let e = damage("index", |b| b.truncate(b.len() - 10));
    assert!(e.contains("/index") && e.contains("offset"), "{e}");
    // A byte inside the symbol table: its checksum fails.
    let e = damage("index", |b| b[12] ^= 0x20);
    assert!(e.contains("/index") && e.contains("checksum"), "{e}");
    let e = damage("chunks/000001", |b| b[1] ^= 0xff);
    assert!(e.contains("000001") && e.contains("magic"), "{e}");
    let e = damage("chunks/000001", |b| b.truncate(100));
    assert!(e.contains("000001") && e.contains("offset"), "{e}");
    let e = damage("tombstones", |b| b[0] = 9);
    assert!(e.contains("tombstones") && e.contains("magic"), "{e}");
    let e = damage("meta.json", |b| b.truncate(20));
    assert!(e.contains("meta.json"), "{e}");
}

#[test]
fn chunk_reference_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let block = good_block(dir.path());
    std::fs::rename(block.join("chunks/000001"), dir.path().join("moved")).unwrap();
    let empty = tsdb::chunks::ChunkWriter::new(&block.join("chunks")).unwrap();
    empty.close().unwrap();
    let e = read_everything(&block).expect_err("missing segment");
    assert!(e.contains("segment index 0 out of range"), "{e}");
}
