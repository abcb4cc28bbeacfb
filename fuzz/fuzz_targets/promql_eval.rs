//! Arbitrary bytes as a PromQL query: parse it as the API does, then evaluate it as an instant
//! and a range query over a little in-memory data, within a time and sample budget. Any
//! outcome is fine but a crash, a hang past the budget or a stack overflow.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use promql::{CancelToken, Engine, EngineOptions, MemStorage};
use tsdb::Labels;

fn storage() -> &'static MemStorage {
    static S: OnceLock<MemStorage> = OnceLock::new();
    S.get_or_init(|| {
        let mut s = MemStorage::new();
        for (name, job) in [("x", "a"), ("x", "b"), ("y", "a"), ("z_bucket", "a")] {
            for le in ["0.1", "1", "+Inf"] {
                let l = Labels::from_pairs([("__name__", name), ("job", job), ("le", le)]);
                for t in 0..40 {
                    let v = if t == 20 { f64::NAN } else { (t * 3 % 17) as f64 };
                    s.append(&l, t * 15_000, v);
                }
            }
        }
        s.finish();
        s
    })
}

fuzz_target!(|data: &[u8]| {
    let engine = Engine::new(EngineOptions {
        max_samples: 200_000,
        timeout: Duration::from_millis(200),
        ..Default::default()
    });
    let check = promql::pre_lex(data);
    let text = String::from_utf8_lossy(data);
    if check.is_err() || text.len() > 4096 {
        return;
    }
    let token = CancelToken::with_deadline(Instant::now() + Duration::from_millis(200));
    let _ = engine.instant_query_with(storage(), &text, 300_000, &token);
    let token = CancelToken::with_deadline(Instant::now() + Duration::from_millis(200));
    let _ = engine.range_query_with(storage(), &text, 0, 600_000, 30_000, &token);
});
