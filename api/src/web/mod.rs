//! The pages for people, served by the api itself (issue #15): the playground at `/` (a prompt
//! streamed from `/chat`) and the subnet's status at `/status` (counts, charts, one table row
//! per serving miner, from [`status`]'s `GET /api/status`); the playground links each answer
//! to its fan-out in the audit log ([`request`]'s `GET /api/requests/{id}`).
//!
//! The HTML, CSS and JavaScript live in `web/assets/` and are compiled into the binary
//! (`include_str!`): no CDN, no external request, no build step, so the pages work offline. They
//! are public; the API key is typed by the user and kept in the browser (`localStorage`), never
//! embedded. Every page answer carries a Content-Security-Policy that allows only this origin's
//! scripts, styles and fetches.

pub mod request;
pub mod status;

use crate::AppState;
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

/// Only this origin's assets and fetches; no inline script or style, no frames, no plugins.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; \
    base-uri 'none'; frame-ancestors 'none'";

/// One embedded file: its URL name, content type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

const PLAYGROUND: Asset = Asset {
    name: "index.html",
    content_type: HTML,
    body: include_str!("assets/index.html"),
};

const STATUS_PAGE: Asset = Asset {
    name: "status.html",
    content_type: HTML,
    body: include_str!("assets/status.html"),
};

/// What `/assets/{name}` serves.
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: CSS,
        body: include_str!("assets/app.css"),
    },
    Asset {
        name: "playground.js",
        content_type: JS,
        body: include_str!("assets/playground.js"),
    },
    Asset {
        name: "status.js",
        content_type: JS,
        body: include_str!("assets/status.js"),
    },
    Asset {
        name: "charts.js",
        content_type: JS,
        body: include_str!("assets/charts.js"),
    },
];

/// The pages' routes and their JSON (`GET /api/status`, `GET /api/requests/{id}`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { serve(&PLAYGROUND) }))
        .route("/status", get(|| async { serve(&STATUS_PAGE) }))
        .route("/assets/{name}", get(asset))
        .route("/api/requests/{id}", get(request::request))
        .route(
            "/api/status",
            get(status::status).layer(axum::Extension(Arc::new(status::StatusCache::default()))),
        )
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(asset) => serve(asset),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

fn serve(asset: &Asset) -> Response {
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        ),
        // The binary is the version: revalidate rather than keep an old page's script.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        ),
    ];
    (headers, asset.body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_load_nothing_from_elsewhere() {
        for asset in ASSETS.iter().chain([&PLAYGROUND, &STATUS_PAGE]) {
            for needle in [
                "http://", "https://", "//cdn", "<style", "style=\"", "onclick",
            ] {
                // SVG's namespace URI is an identifier, not a request.
                let body = asset.body.replace("http://www.w3.org/2000/svg", "");
                assert!(!body.contains(needle), "{} contains {needle:?}", asset.name);
            }
        }
        assert!(PLAYGROUND.body.contains("<textarea") && PLAYGROUND.body.contains("id=\"answer\""));
        assert!(STATUS_PAGE.body.contains("<tbody"));
    }
}
