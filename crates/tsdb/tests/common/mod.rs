//! Helpers shared by the tsdb integration tests.
#![allow(dead_code)]

use std::path::Path;

use tsdb::block::Block;
use tsdb::Labels;

/// Formats `v` as Go's `fmt.Sprintf("%g", v)` does.
pub fn go_g(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let sci = format!("{v:e}");
    let (mant, exp) = sci.split_once('e').expect("scientific notation");
    let exp: i32 = exp.parse().expect("exponent");
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if neg { "-" } else { "" };
    // Go's shortest %g switches to exponent form outside 1e-4 <= |v| < 1e6.
    if !(-4..6).contains(&exp) {
        return fmt_e(sign, &digits, exp);
    }
    let mut s = String::from(sign);
    if exp < 0 {
        s.push_str("0.");
        for _ in 0..(-exp - 1) {
            s.push('0');
        }
        s.push_str(&digits);
    } else {
        let int_len = (exp + 1) as usize;
        if digits.len() <= int_len {
            s.push_str(&digits);
            for _ in digits.len()..int_len {
                s.push('0');
            }
        } else {
            s.push_str(&digits[..int_len]);
            s.push('.');
            s.push_str(&digits[int_len..]);
        }
    }
    s
}

fn fmt_e(sign: &str, digits: &str, exp: i32) -> String {
    let mut s = String::from(sign);
    s.push_str(&digits[..1]);
    if digits.len() > 1 {
        s.push('.');
        s.push_str(&digits[1..]);
    }
    s.push('e');
    s.push(if exp < 0 { '-' } else { '+' });
    s.push_str(&format!("{:02}", exp.abs()));
    s
}

/// Runs promtool and returns stdout, failing the test with its stderr on error.
pub fn run_promtool(args: &[&str]) -> String {
    testkit::prometheus::promtool(args).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Every float sample of every block directory under `dir`, merged per series and printed
/// the way `promtool tsdb dump` prints them.
pub fn dump_with_our_reader(dir: &Path) -> String {
    let mut samples: Vec<(Labels, i64, f64)> = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if !p.join("meta.json").exists() {
            continue;
        }
        let b = Block::open(&p).unwrap();
        let mut set = b.all_series().unwrap();
        while let Some(s) = set.next().unwrap() {
            for (t, v) in set.samples(&s).collect_all().unwrap() {
                samples.push((s.labels.clone(), t, v));
            }
        }
    }
    samples.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut out = String::new();
    for (l, t, v) in samples {
        out.push_str(&format!("{l} {} {t}\n", go_g(v)));
    }
    out
}
