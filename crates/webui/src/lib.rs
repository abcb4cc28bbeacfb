//! The web UI the binary serves: the querier's pages (graph, stores, rules, alerts, flags,
//! status) and the block viewer of `compact`, `store` and `tools bucket web`, with the
//! `/api/v1/blocks` API it reads. Plain HTML, CSS and JavaScript embedded at build time: the
//! pages need no network access and the build no extra step.

mod assets;
pub mod blocks;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub use blocks::BlocksApi;

/// Thanos's `--web.route-prefix`, `--web.external-prefix` and `--web.prefix-header`.
#[derive(Clone, Debug, Default)]
pub struct Prefixes {
    /// Where the routes are served; defaults to the external prefix.
    route: String,
    /// What links and redirects start with (a proxy in front may strip it).
    external: String,
    /// A request header giving the link prefix when no external prefix is set.
    header: String,
}

/// `/a/b` for `a/b/`, `/a/b` or `/a/b/`; empty for `` and `/`.
fn normalize(prefix: &str) -> String {
    let p = prefix.trim().trim_matches('/');
    if p.is_empty() {
        String::new()
    } else {
        format!("/{p}")
    }
}

impl Prefixes {
    pub fn new(route: &str, external: &str, header: &str) -> Prefixes {
        let external = normalize(external);
        let route = if route.is_empty() {
            external.clone()
        } else {
            normalize(route)
        };
        if route != external && !external.is_empty() {
            tracing::warn!(
                route_prefix = %route,
                external_prefix = %external,
                "different values for --web.route-prefix and --web.external-prefix; the UI needs a path-rewriting proxy"
            );
        }
        Prefixes {
            route,
            external,
            header: header.trim().to_string(),
        }
    }

    /// The route prefix (`/thanos`), or empty.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// The prefix of links in pages answering a request with `headers`.
    fn links(&self, headers: &HeaderMap) -> String {
        if !self.external.is_empty() {
            return self.external.clone();
        }
        if !self.header.is_empty() {
            if let Some(v) = headers.get(&self.header).and_then(|v| v.to_str().ok()) {
                return normalize(v);
            }
        }
        self.route.clone()
    }

    /// `routes` under the route prefix.
    pub fn mount(&self, routes: Router) -> Router {
        if self.route.is_empty() {
            routes
        } else {
            Router::new().nest(&self.route, routes)
        }
    }
}

/// Which single-page app a page starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum App {
    Query,
    Bucket,
    Store,
}

impl App {
    fn name(self) -> &'static str {
        match self {
            App::Query => "query",
            App::Bucket => "bucket",
            App::Store => "store",
        }
    }
}

struct Site {
    prefixes: Prefixes,
    app: App,
    blocks: Option<Arc<BlocksApi>>,
}

/// The querier's pages under the route prefix, `/` redirecting to `/graph`.
pub fn query_routes(prefixes: Prefixes) -> Router {
    site_routes(
        Site {
            prefixes,
            app: App::Query,
            blocks: None,
        },
        "/graph",
        &[
            "/graph", "/stores", "/rules", "/alerts", "/flags", "/status",
        ],
    )
}

/// The block viewer over the bucket (`/blocks`) and its API, for the compactor and
/// `tools bucket web`.
pub fn bucket_routes(prefixes: Prefixes, blocks: Arc<BlocksApi>) -> Router {
    site_routes(
        Site {
            prefixes,
            app: App::Bucket,
            blocks: Some(blocks),
        },
        "/blocks",
        &["/blocks"],
    )
}

/// The store gateway's block viewer: the bucket (`/blocks`) and the blocks it has loaded
/// (`/loaded`).
pub fn store_routes(prefixes: Prefixes, blocks: Arc<BlocksApi>) -> Router {
    site_routes(
        Site {
            prefixes,
            app: App::Store,
            blocks: Some(blocks),
        },
        "/loaded",
        &["/blocks", "/loaded"],
    )
}

/// The site's routes under the route prefix; `/` (and the bare prefix, with or without a
/// slash) redirects to `home`.
fn site_routes(site: Site, home: &'static str, pages: &[&'static str]) -> Router {
    let has_blocks = site.blocks.is_some();
    let route = site.prefixes.route.clone();
    let site = Arc::new(site);
    let redirect = move |State(s): State<Arc<Site>>, h: HeaderMap| async move {
        let to = format!("{}{home}", s.prefixes.links(&h));
        (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
    };
    let mut r: Router<Arc<Site>> = Router::new()
        .route("/", get(redirect))
        .route("/static/{file}", get(asset));
    for p in pages {
        r = r.route(p, get(page));
    }
    if has_blocks {
        r = r
            .route("/api/v1/blocks", get(blocks_json))
            .route("/api/v1/blocks/mark", axum::routing::post(blocks_mark));
    }
    if route.is_empty() {
        return r.with_state(site);
    }
    Router::new()
        .nest(&route, r)
        .route(&format!("{route}/"), get(redirect))
        .with_state(site)
}

async fn page(State(s): State<Arc<Site>>, h: HeaderMap) -> Response {
    let html = assets::page(s.app.name(), &s.prefixes.links(&h));
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    match assets::file(&file) {
        Some((mime, body)) => (
            [
                (header::CONTENT_TYPE, mime),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "404 page not found\n").into_response(),
    }
}

#[derive(serde::Deserialize)]
struct BlocksParams {
    #[serde(default)]
    view: String,
}

async fn blocks_json(
    State(s): State<Arc<Site>>,
    axum::extract::Query(p): axum::extract::Query<BlocksParams>,
) -> Response {
    let Some(api) = &s.blocks else {
        return StatusCode::NOT_FOUND.into_response();
    };
    (
        [(header::CONTENT_TYPE, "application/json")],
        api.json(p.view == "loaded"),
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct MarkForm {
    #[serde(default)]
    id: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    detail: String,
}

/// Thanos's `POST /api/v1/blocks/mark` (form: id, action DELETION|NO_COMPACTION, detail).
async fn blocks_mark(State(s): State<Arc<Site>>, axum::Form(f): axum::Form<MarkForm>) -> Response {
    let Some(api) = &s.blocks else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let json = [(header::CONTENT_TYPE, "application/json")];
    match api.mark(&f.id, &f.action, &f.detail).await {
        Ok(()) => (json, r#"{"status":"success"}"#.to_string()).into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            json,
            serde_json::json!({"status": "error", "errorType": "bad_data", "error": e}).to_string(),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get_path(r: Router, uri: &str) -> (StatusCode, HeaderMap, String) {
        let resp = r
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&bytes).into(),
        )
    }

    #[test]
    fn prefixes_normalize_and_default_to_external() {
        let p = Prefixes::new("", "thanos/", "");
        assert_eq!((p.route(), p.external.as_str()), ("/thanos", "/thanos"));
        let p = Prefixes::new("/", "", "");
        assert_eq!(p.route(), "");
        let p = Prefixes::new("", "", "X-Forwarded-Prefix");
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-prefix", "/proxied/".parse().unwrap());
        assert_eq!(p.links(&h), "/proxied");
        assert_eq!(p.links(&HeaderMap::new()), "");
    }

    #[tokio::test]
    async fn root_redirects_to_graph_under_the_prefix() {
        let p = Prefixes::new("", "/ui", "");
        let r = query_routes(p.clone());
        for root in ["/ui", "/ui/"] {
            let (status, headers, _) = get_path(r.clone(), root).await;
            assert_eq!(status, StatusCode::FOUND, "{root}");
            assert_eq!(headers[header::LOCATION], "/ui/graph");
        }
        let (status, _, body) = get_path(r.clone(), "/ui/stores").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains(r#"window.PATH_PREFIX = "/ui""#), "{body}");
        assert!(body.contains(r#"src="/ui/static/app.js""#), "{body}");
        let (status, headers, _) = get_path(r.clone(), "/ui/static/app.js").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        let (status, _, _) = get_path(r, "/ui/static/missing.js").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn prefix_from_header_is_escaped() {
        let p = Prefixes::new("", "", "X-Prefix");
        let r = query_routes(p.clone());
        let resp = r
            .oneshot(
                Request::get("/graph")
                    .header("x-prefix", "/a\"</script>")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = String::from_utf8_lossy(&bytes);
        assert!(!body.contains("\"</script>"), "{body}");
    }
}
