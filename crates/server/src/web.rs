//! Web pages and their assets, embedded in the binary; the class's QR code.
//!
//! Pages make no third-party request: everything they load comes from here.

use crate::Problem;
use crate::auth::unix_now;
use crate::limits::ClientAddr;
use crate::state::SharedState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// Minimal WHEP player (`/watch?class=ID`), for standard-player checks.
pub const WATCH_HTML: &str = include_str!("../../../web/watch.html");
/// Pupil page (`/` and `/c/{code}`).
pub const PUPIL_HTML: &str = include_str!("../../../web/pupil.html");
/// The class's recordings and their player (`/replay`, with the pupil's session or `#token=`).
pub const REPLAY_HTML: &str = include_str!("../../../web/replay.html");
/// The pre-class check (`/check`, `/check?code=…`): a tablet tested the evening before.
pub const CHECK_HTML: &str = include_str!("../../../web/check.html");
/// Teacher console (`/teacher#token=…`).
pub const TEACHER_HTML: &str = include_str!("../../../web/teacher.html");
/// Admin dashboard (`/admin#token=…`).
pub const ADMIN_HTML: &str = include_str!("../../../web/admin.html");

/// Login of teachers and admins (`/login`).
pub const LOGIN_HTML: &str = include_str!("../../../web/login.html");
/// A teacher's classes (`/my`): create, schedule, start from this PC, attendance.
pub const MY_CLASSES_HTML: &str = include_str!("../../../web/my-classes.html");
/// An admin's schools, teachers, classes and audit log (`/admin/schools`).
pub const SCHOOLS_HTML: &str = include_str!("../../../web/schools.html");

/// Shared assets: (name, content type, body).
const ASSETS: &[(&str, &str, &str)] = &[
    ("ardoise.js", JS, include_str!("../../../web/assets/ardoise.js")),
    ("ardoise.css", CSS, include_str!("../../../web/assets/ardoise.css")),
    ("watch.css", CSS, include_str!("../../../web/assets/watch.css")),
    ("pupil.js", JS, include_str!("../../../web/assets/pupil.js")),
    ("replay.js", JS, include_str!("../../../web/assets/replay.js")),
    ("check.js", JS, include_str!("../../../web/assets/check.js")),
    ("teacher.js", JS, include_str!("../../../web/assets/teacher.js")),
    ("admin.js", JS, include_str!("../../../web/assets/admin.js")),
    ("login.js", JS, include_str!("../../../web/assets/login.js")),
    ("my-classes.js", JS, include_str!("../../../web/assets/my-classes.js")),
    ("schools.js", JS, include_str!("../../../web/assets/schools.js")),
    ("watch.js", JS, include_str!("../../../web/assets/watch.js")),
];
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Headers of every page: no caching of stale pages, no third-party anything, no inline
/// script or style (every script and style is a file under `/assets/`), no referrer, the
/// camera and microphone for this origin only. The class-events socket is allowed by its
/// explicit `ws:`/`wss:` origin too (older Safari does not count it as `'self'`).
fn page(body: &'static str, headers: &HeaderMap) -> Response {
    page_reaching(body, headers, &[])
}

/// [`page`], which may also fetch from `origins` (the other nodes of its cluster: the pupil
/// page asks them whether they answer when its own server dies).
fn page_reaching(body: &'static str, headers: &HeaderMap, origins: &[String]) -> Response {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).filter(|h| sane_host(h));
    let mut sockets = host.map(|h| format!(" ws://{h} wss://{h}")).unwrap_or_default();
    for o in origins.iter().filter(|o| o.starts_with("http") && !o.contains([' ', ';', '\'', '"'])) {
        sockets.push(' ');
        sockets.push_str(o);
    }
    let csp = format!(
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; \
         script-src 'self'; connect-src 'self'{sockets}; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    );
    let mut r = Html(body).into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(
        header::HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static(
            "camera=(self), microphone=(self), display-capture=(self), fullscreen=(self), autoplay=(self), \
             geolocation=(), payment=(), usb=()",
        ),
    );
    r
}

/// `GET /watch`
pub async fn watch(headers: HeaderMap) -> Response {
    page(WATCH_HTML, &headers)
}

/// `GET /` and `GET /c/{code}`: the pupil page (the script reads the code from the path).
pub async fn pupil(State(s): State<SharedState>, headers: HeaderMap) -> Response {
    page_reaching(PUPIL_HTML, &headers, &cluster_origins(&s))
}

/// The origins of the cluster's nodes (none on a single server).
fn cluster_origins(s: &SharedState) -> Vec<String> {
    s.cluster.as_ref().map(|c| c.view().nodes.iter().map(|n| n.url.clone()).collect()).unwrap_or_default()
}

/// `GET /replay`: the class's recordings, played by the link's measure.
pub async fn replay(headers: HeaderMap) -> Response {
    page(REPLAY_HTML, &headers)
}

/// `GET /check`: the pre-class check (no login).
pub async fn check(headers: HeaderMap) -> Response {
    page(CHECK_HTML, &headers)
}

/// `GET /teacher`
pub async fn teacher(State(s): State<SharedState>, headers: HeaderMap) -> Response {
    page_reaching(TEACHER_HTML, &headers, &cluster_origins(&s))
}

/// `GET /admin`
pub async fn admin(headers: HeaderMap) -> Response {
    page(ADMIN_HTML, &headers)
}

/// `GET /login`
pub async fn login(headers: HeaderMap) -> Response {
    page(LOGIN_HTML, &headers)
}

/// `GET /my`
pub async fn my_classes(headers: HeaderMap) -> Response {
    page(MY_CLASSES_HTML, &headers)
}

/// `GET /admin/schools`
pub async fn schools(headers: HeaderMap) -> Response {
    page(SCHOOLS_HTML, &headers)
}

/// `GET /favicon.ico`: none (browsers ask; answer without an error).
pub async fn favicon() -> StatusCode {
    StatusCode::NO_CONTENT
}

fn sane_host(host: &str) -> bool {
    !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
}

/// `GET /assets/{name}`
pub async fn asset(Path(name): Path<String>) -> Result<Response, Problem> {
    let (_, ctype, body) =
        ASSETS.iter().find(|(n, _, _)| *n == name).ok_or_else(|| Problem::not_found("no such asset"))?;
    Ok((
        [
            (header::CONTENT_TYPE, *ctype),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        *body,
    )
        .into_response())
}

/// The origin pupils use to reach this server, from the request (`Host`, and
/// `X-Forwarded-Proto` behind a TLS proxy).
fn origin(headers: &HeaderMap, tls: bool) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    if !sane_host(host) {
        return None;
    }
    let proto = match headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()) {
        _ if tls => "https",
        Some("https") => "https",
        _ => "http",
    };
    Some(format!("{proto}://{host}"))
}

/// The host name of a `Host` header, without its port (`[::1]:8443` → `[::1]`).
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The plain-HTTP listener of an HTTPS server: every request is sent to the same path on
/// https (308), at `origin` when the server has a public name, else at the request's host on
/// `https_port`.
pub fn redirect_app(origin: Option<String>, https_port: u16) -> axum::Router {
    axum::Router::new().fallback(move |headers: HeaderMap, uri: axum::http::Uri| {
        let origin = origin.clone();
        async move {
            let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let base = origin.or_else(|| {
                let host = headers.get(header::HOST)?.to_str().ok().filter(|h| sane_host(h))?;
                let name = host_name(host);
                Some(if https_port == 443 { format!("https://{name}") } else { format!("https://{name}:{https_port}") })
            });
            match base {
                Some(b) => (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, format!("{b}{path}"))]).into_response(),
                None => Problem::bad_request("a valid Host header is required").into_response(),
            }
        }
    })
}

/// `GET /api/classes/{code}/qr.svg`: the pupil link as a QR code, drawn here (no third party).
/// Counted as a class look-up (it tells whether a code exists).
pub async fn qr(
    State(s): State<SharedState>,
    ClientAddr(ip): ClientAddr,
    Path(code): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    s.limits.lookups.check(&ip)?;
    let class = s.classes.by_code(&code, unix_now()).ok_or_else(|| Problem::not_found("no class has this code"))?;
    let origin = match &s.public_origin {
        Some(o) => o.clone(),
        None => origin(&headers, s.tls).ok_or_else(|| Problem::bad_request("a valid Host header is required"))?,
    };
    let link = format!("{origin}/c/{}", class.code.0);
    let svg = qr_svg(&link).map_err(|e| {
        tracing::warn!("QR code: {e}");
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "the QR code could not be drawn")
    })?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "no-cache")], svg).into_response())
}

/// An SVG QR code of `text`.
pub fn qr_svg(text: &str) -> Result<String, String> {
    let code = qrcode::QrCode::new(text.as_bytes()).map_err(|e| format!("cannot encode the link as a QR code: {e}"))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(220, 220)
        .dark_color(qrcode::render::svg::Color("#000000"))
        .light_color(qrcode::render::svg::Color("#ffffff"))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_codes_are_svg() {
        let svg = qr_svg("http://127.0.0.1:8080/c/demo").unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"), "{}", &svg[..60]);
    }

    #[test]
    fn origin_comes_from_a_sane_host() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert_eq!(origin(&h, false).as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(origin(&h, true).as_deref(), Some("https://127.0.0.1:8080"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert_eq!(origin(&h, false).as_deref(), Some("https://127.0.0.1:8080"));
        h.insert(header::HOST, HeaderValue::from_static("evil/\"><script>"));
        assert_eq!(origin(&h, false), None);
        assert_eq!(host_name("[::1]:8443"), "[::1]");
        assert_eq!(host_name("ardoise.example:8443"), "ardoise.example");
        assert_eq!(host_name("ardoise.example"), "ardoise.example");
    }
}
