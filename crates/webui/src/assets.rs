//! The embedded files and the one HTML shell every page shares.

const FILES: &[(&str, &str, &str)] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../assets/style.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js"),
    ),
    (
        "chart.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/chart.js"),
    ),
    (
        "graph.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/graph.js"),
    ),
    (
        "pages.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/pages.js"),
    ),
    (
        "blocks.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/blocks.js"),
    ),
];

/// The MIME type and body of an embedded file.
pub fn file(name: &str) -> Option<(&'static str, &'static str)> {
    FILES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, mime, body)| (*mime, *body))
}

/// Text safe inside a double-quoted HTML attribute.
fn attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A JavaScript string literal safe inside a `<script>` element.
fn js_string(s: &str) -> String {
    serde_json::Value::from(s)
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
}

/// The page shell: `app` picks the single-page app, `prefix` starts every link.
pub fn page(app: &str, prefix: &str) -> String {
    let p = attr(prefix);
    let mut scripts = String::new();
    let names: &[&str] = if app == "query" {
        &["app.js", "chart.js", "graph.js", "pages.js"]
    } else {
        &["app.js", "blocks.js"]
    };
    for name in names {
        scripts.push_str(&format!("<script src=\"{p}/static/{name}\"></script>\n"));
    }
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Gauntlet</title>
<link rel="stylesheet" href="{p}/static/style.css">
<script>window.PATH_PREFIX = {prefix_js}; window.APP = {app_js};</script>
</head>
<body>
<nav id="nav"></nav>
<main id="main"></main>
{scripts}<script>App.start();</script>
</body>
</html>
"#,
        prefix_js = js_string(prefix),
        app_js = js_string(app),
    )
}
