//! Arbitrary bytes as an HTTP request's query string and form body: parsed as Go's net/http
//! does, then every parameter read as Prometheus's API reads times, durations, booleans,
//! label names and series selectors.
#![no_main]

use libfuzzer_sys::fuzz_target;
use query::params::{self, Form};

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (url, body) = data.split_at(split);
    let url = String::from_utf8_lossy(url);
    let content_type = if body.first() == Some(&1) {
        None
    } else {
        Some("application/x-www-form-urlencoded")
    };
    let form = Form::parse("POST", &url, content_type, body);
    for (_, v) in &form.values {
        if let Ok(t) = params::parse_time(v) {
            let _ = (t.engine_ms(), t.from_time_ms(), t.sub_ns(&params::MIN_TIME));
        }
        let _ = params::parse_duration(v);
        let _ = params::parse_bool(v);
        let _ = params::is_label_name(v);
        if v.len() < 2048 {
            let _ = params::parse_matchers_param(&[v.as_slice()]);
        }
    }
});
