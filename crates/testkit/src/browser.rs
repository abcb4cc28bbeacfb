//! A real headless Chromium for UI tests, driven through chromedriver's WebDriver HTTP API
//! (both from Debian's `chromium` and `chromium-driver` packages): open a page, find, type,
//! click, run a script, save a screenshot. Chromium starts with a fresh profile and without
//! background networking, so it makes no connection beyond the pages the test opens.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::{find_binary, free_port, http_request, Process};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One browser session; the session and chromedriver end on drop.
pub struct Browser {
    _driver: Process,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a `width`×`height` window.
    pub fn start(width: u32, height: u32) -> Result<Browser> {
        let hint = "apt-get install chromium chromium-driver";
        let driver_bin = find_binary("chromedriver", hint)?;
        let chromium = find_binary("chromium", hint)?;
        let port = free_port();
        let driver = Process::spawn(
            "chromedriver",
            std::process::Command::new(driver_bin)
                .arg(format!("--port={port}"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null()),
        )?;
        crate::wait_until("chromedriver", Duration::from_secs(20), || {
            matches!(request(port, "GET", "/status", ""), Ok((200, _)))
        })?;
        let profile = tempfile::tempdir()?;
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-extensions".into(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let mut b = Browser {
            _driver: driver,
            port,
            session: String::new(),
            _profile: profile,
        };
        let v = b.call("POST", "/session", Some(caps))?;
        b.session = v["sessionId"]
            .as_str()
            .context("chromedriver gave no session id")?
            .to_string();
        Ok(b)
    }

    /// One WebDriver command; the answer's `value`, or its error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let (status, answer) = request(self.port, method, path, &body)
            .with_context(|| format!("WebDriver {method} {path}"))?;
        let v: Value = serde_json::from_slice(&answer).with_context(|| {
            format!(
                "WebDriver {method} {path}: {}",
                String::from_utf8_lossy(&answer)
            )
        })?;
        let value = v.get("value").cloned().unwrap_or(Value::Null);
        if status != 200 {
            bail!(
                "WebDriver {method} {path}: {} {}",
                value["error"].as_str().unwrap_or("error"),
                value["message"].as_str().unwrap_or("")
            );
        }
        Ok(value)
    }

    fn session_call(&self, method: &str, rest: &str, body: Option<Value>) -> Result<Value> {
        self.call(method, &format!("/session/{}{rest}", self.session), body)
    }

    pub fn goto(&self, url: &str) -> Result<()> {
        self.session_call("POST", "/url", Some(json!({ "url": url })))?;
        Ok(())
    }

    /// The first element matching the CSS selector.
    pub fn find(&self, css: &str) -> Result<String> {
        let v = self.session_call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        v[ELEMENT]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("no element {css}"))
    }

    pub fn click(&self, css: &str) -> Result<()> {
        let id = self.find(css)?;
        self.session_call("POST", &format!("/element/{id}/click"), Some(json!({})))?;
        Ok(())
    }

    /// Types `text` into the element as key presses (`\u{E007}` is Enter).
    pub fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let id = self.find(css)?;
        self.session_call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )?;
        Ok(())
    }

    pub fn clear(&self, css: &str) -> Result<()> {
        let id = self.find(css)?;
        self.session_call("POST", &format!("/element/{id}/clear"), Some(json!({})))?;
        Ok(())
    }

    /// Runs `script` (a function body; `return` gives the result) in the page.
    pub fn eval(&self, script: &str) -> Result<Value> {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Polls `script` until it returns something other than null, false, 0 or "".
    pub fn wait_for(&self, what: &str, script: &str, timeout: Duration) -> Result<Value> {
        let start = Instant::now();
        loop {
            let v = self.eval(script)?;
            let done = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if done {
                return Ok(v);
            }
            if start.elapsed() > timeout {
                bail!("timed out after {timeout:?} waiting for {what} (last: {v})");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Saves a PNG of the window.
    pub fn screenshot(&self, path: &Path) -> Result<()> {
        use base64::Engine;
        let v = self.session_call("GET", "/screenshot", None)?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().context("screenshot is not a string")?)
            .context("screenshot is not base64")?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png).with_context(|| format!("write {}", path.display()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = request(
                self.port,
                "DELETE",
                &format!("/session/{}", self.session),
                "",
            );
        }
    }
}

/// One WebDriver exchange: the status and body.
fn request(port: u16, method: &str, path: &str, body: &str) -> Result<(u16, Vec<u8>)> {
    let headers: &[(&str, &str)] = if method == "POST" {
        &[("Content-Type", "application/json")]
    } else {
        &[]
    };
    let a = http_request(port, method, path.as_bytes(), headers, body.as_bytes())?;
    Ok((a.status, a.body))
}
