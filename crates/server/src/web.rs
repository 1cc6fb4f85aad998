//! Web pages, embedded in the binary.

use axum::http::header;
use axum::response::{Html, IntoResponse};

/// Minimal WHEP player (`/watch?class=ID`).
pub const WATCH_HTML: &str = include_str!("../../../web/watch.html");

/// `GET /watch`
pub async fn watch() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-cache")], Html(WATCH_HTML))
}

/// `GET /`: links to the class pages.
pub async fn index() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html><html lang=\"fr\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<title>Ardoise</title></head><body style=\"font-family:sans-serif;max-width:40em;margin:2em auto\">",
        "<h1>Ardoise</h1><p>Relais de classe hybride.</p>",
        "<p><a href=\"/watch?class=demo\">Regarder la classe de démonstration</a></p>",
        "</body></html>"
    ))
}
