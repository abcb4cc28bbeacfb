//! XOR chunk encode and decode throughput, in samples per second on one core.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use tsdb::chunkenc::{XorAppender, XorIterator};

/// `n` chunks of 120 samples: regular 15s counters, regular gauges, irregular gauges.
fn chunks(kind: &str, n: usize) -> Vec<Vec<u8>> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|c| {
            let mut app = XorAppender::new();
            let mut t = 1_700_000_000_000 + c as i64 * 1_800_000;
            let mut v = 1000.0;
            for _ in 0..120 {
                match kind {
                    "counter" => {
                        v += (rnd() % 100) as f64;
                        t += 15_000;
                    }
                    "gauge" => {
                        v = (rnd() % 1_000_000) as f64 / 100.0;
                        t += 15_000;
                    }
                    _ => {
                        v = f64::from_bits(rnd() >> 2);
                        t += 14_000 + (rnd() % 2000) as i64;
                    }
                }
                app.append(t, v);
            }
            app.into_bytes()
        })
        .collect()
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("xor_decode");
    for kind in ["counter", "gauge", "irregular"] {
        let cs = chunks(kind, 1000);
        g.throughput(Throughput::Elements(120 * cs.len() as u64));
        g.bench_function(kind, |b| {
            let mut it = XorIterator::new(&cs[0]);
            b.iter(|| {
                let mut sum = 0.0;
                let mut ts = 0i64;
                for ch in &cs {
                    it.reset(ch);
                    while it.next() {
                        let (t, v) = it.at();
                        ts ^= t;
                        sum += v;
                    }
                }
                black_box((sum, ts))
            })
        });
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("xor_encode");
    for kind in ["counter", "gauge"] {
        let cs = chunks(kind, 200);
        let samples: Vec<Vec<(i64, f64)>> = cs
            .iter()
            .map(|ch| {
                let mut it = XorIterator::new(ch);
                let mut v = Vec::new();
                while it.next() {
                    v.push(it.at());
                }
                v
            })
            .collect();
        g.throughput(Throughput::Elements(120 * samples.len() as u64));
        g.bench_function(kind, |b| {
            let mut app = XorAppender::new();
            b.iter(|| {
                let mut bytes = 0;
                for s in &samples {
                    app.reset();
                    for &(t, v) in s {
                        app.append(t, v);
                    }
                    bytes += app.bytes().len();
                }
                black_box(bytes)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
