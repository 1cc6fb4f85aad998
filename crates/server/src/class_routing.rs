//! Requests for a class go to the node that owns it (a cluster; see [`crate::cluster`]).
//!
//! Rules:
//! - the class-scoped doors are routed: WHIP and WHEP (`/whip/{class}…`, `/whep/{class}…`),
//!   class events (`/ws/{class}`), the class API (`/api/classes/{id or code}…`) and the pupil
//!   page of a join link (`/c/{code}`); everything else is answered by any node;
//! - a class another node owns answers **307** to the same path on that node (the WHIP and
//!   WHEP drafts require clients to follow it; the method and body are kept);
//! - each redirect adds this node to the request's `via` query parameter; a node that finds
//!   itself in `via` and would redirect again answers 508 instead, so a redirect loop ends
//!   at its first turn (nodes read the owner from the database, so they agree unless a
//!   placement moved between two hops);
//! - no room anywhere: 503 with `Retry-After`; the database unreachable: 503 too, except
//!   for the classes this node owns, which keep flowing (a join-link page is served anyway:
//!   its script retries);
//! - the check's classes are every node's own, and never routed; so are a session this node
//!   holds (an edge's pupils: see [`crate::cascade`]) and a WHEP offer with an edge pass;
//! - a class this node does not know is looked up in the database, which counts against the
//!   address's class look-ups (`limits.joins_per_ip_per_minute`): spraying codes costs the
//!   sprayer its limit, not the database a query each.

use crate::cluster::Route;
use crate::limits::ClientAddr;
use crate::problem::Problem;
use crate::state::SharedState;
use ardoise_proto::ClassId;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::{debug, warn};

/// The query parameter that lists the nodes a request was redirected by.
pub const VIA: &str = "via";

/// What a path names: a class id, or a join code.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Names {
    Class(String),
    IdOrCode(String),
    Code(String),
}

fn names(path: &str) -> Option<Names> {
    let mut parts = path.split('/').skip(1);
    let first = parts.next()?;
    let second = parts.next().filter(|s| !s.is_empty());
    match first {
        "whip" | "whep" | "ws" => second.map(|c| Names::Class(c.to_owned())),
        "c" => second.map(|c| Names::Code(c.to_owned())),
        "api" if second == Some("classes") => {
            parts.next().filter(|s| !s.is_empty()).map(|x| Names::IdOrCode(x.to_owned()))
        }
        _ => None,
    }
}

/// Why a class could not be looked up.
enum Unresolved {
    /// The database failed.
    Store(ardoise_store::StoreError),
    /// The address looked up too many classes this node did not know.
    Limited(Problem),
}

/// The class `names` refers to, if it exists: known here, or in the database (a class made
/// on another node), which this node then learns. A look-up in the database counts against
/// `ip`'s class look-ups.
async fn resolve(s: &SharedState, names: Names, ip: std::net::IpAddr) -> Result<Option<ClassId>, Unresolved> {
    let now = crate::auth::unix_now();
    let (id, code) = match names {
        Names::Class(id) => (Some(id), None),
        Names::IdOrCode(x) => (Some(x.clone()), Some(x)),
        Names::Code(code) => (None, Some(code)),
    };
    if let Some(id) = &id {
        let class = ClassId(id.clone());
        if s.classes.get(&class).is_some() {
            return Ok(Some(class));
        }
    }
    if let Some(code) = &code
        && let Some(info) = s.classes.by_code(code, now)
    {
        return Ok(Some(info.id));
    }
    s.limits.lookups.check(&ip).map_err(Unresolved::Limited)?;
    if let Some(id) = &id {
        let class = ClassId(id.clone());
        match s.store.class(id).await.map_err(Unresolved::Store) {
            Ok(row) => {
                s.classes.restore(&row);
                return Ok(Some(class));
            }
            Err(Unresolved::Store(ardoise_store::StoreError::NotFound(_))) => {}
            Err(e) => return Err(e),
        }
    }
    if let Some(code) = &code
        && let Some(row) = s.store.class_by_code(code).await.map_err(Unresolved::Store)?
    {
        s.classes.restore(&row);
        return Ok(Some(ClassId(row.id)));
    }
    Ok(None)
}

/// The middleware: serve here, or send the client to the class's owner.
pub async fn route(State(s): State<SharedState>, req: Request, next: Next) -> Response {
    let Some(cluster) = s.cluster.clone() else { return next.run(req).await };
    let Some(names) = names(req.uri().path()) else { return next.run(req).await };
    let (mut parts, body) = req.into_parts();
    let Ok(ClientAddr(ip)) = ClientAddr::from_request_parts(&mut parts, &s).await;
    let req = Request::from_parts(parts, body);
    let class = match resolve(&s, names, ip).await {
        Ok(Some(class)) => class,
        // No such class: the handler says so.
        Ok(None) => return next.run(req).await,
        Err(Unresolved::Limited(p)) => return p.into_response(),
        Err(Unresolved::Store(e)) => {
            warn!("cluster: class lookup failed: {e}");
            return Problem::unavailable("the database is unreachable: try again in a moment", 2).into_response();
        }
    };
    if crate::check::is_check_class(&class) {
        return next.run(req).await;
    }
    if held_here(&s, &req, &class) {
        return next.run(without_via(req)).await;
    }
    let page = req.uri().path().starts_with("/c/");
    // A page on another node reads `/node` across origins, through this answer too.
    let any_origin = req.uri().path().ends_with("/node");
    let mut r = routed(&s, &cluster, &class, page, req, next).await;
    if any_origin {
        r.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    }
    r
}

/// Whether this node serves `req` whoever owns `class`: a pupil's WHEP offer that its owner
/// sent here with an edge pass (the handler checks the pass), or a session this node holds.
fn held_here(s: &SharedState, req: &Request, class: &ClassId) -> bool {
    let mut parts = req.uri().path().split('/').skip(1);
    let (door, _, id) = (parts.next(), parts.next(), parts.next());
    if !matches!(door, Some("whip" | "whep")) {
        return false;
    }
    match id.filter(|i| !i.is_empty()) {
        Some(id) => id
            .parse::<u64>()
            .ok()
            .and_then(|pid| s.session_of(ardoise_proto::ParticipantId(pid)))
            .is_some_and(|r| r.class == *class),
        None => door == Some("whep") && req.uri().query().is_some_and(|q| q.split('&').any(|p| p.starts_with("pass="))),
    }
}

/// The answer for `class`'s request: served here, or sent to its owner.
async fn routed(
    s: &SharedState,
    cluster: &std::sync::Arc<crate::cluster::Cluster>,
    class: &ClassId,
    page: bool,
    req: Request,
    next: Next,
) -> Response {
    match cluster.route(&class.0).await {
        // A page is served even so: its script retries the class's doors, and loads again
        // once the class has its node.
        Route::Full | Route::Unavailable if page => next.run(req).await,
        Route::Here => next.run(without_via(req)).await,
        Route::Taken => {
            take_up_live_state(s, class).await;
            cluster.claimed(&class.0);
            next.run(without_via(req)).await
        }
        Route::Elsewhere { node, url } => {
            let query = req.uri().query().unwrap_or("");
            let mut via: Vec<&str> = Vec::new();
            let mut rest: Vec<&str> = Vec::new();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                match pair.strip_prefix("via=") {
                    Some(v) => via.extend(v.split(',').filter(|n| !n.is_empty())),
                    None => rest.push(pair),
                }
            }
            if via.contains(&cluster.node_id()) {
                warn!(class = %class, owner = %node, ?via, "cluster: a redirect came back here: loop stopped");
                return Problem::new(
                    StatusCode::LOOP_DETECTED,
                    "this request went round the cluster's nodes: try again in a moment",
                )
                .into_response();
            }
            via.push(cluster.node_id());
            let via = format!("{VIA}={}", via.join(","));
            rest.push(&via);
            let location = format!("{url}{}?{}", req.uri().path(), rest.join("&"));
            debug!(class = %class, owner = %node, %location, "cluster: sent to the owner");
            let mut r = StatusCode::TEMPORARY_REDIRECT.into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Route::Full => {
            Problem::unavailable("every node of the service is full: try again in a minute", 30).into_response()
        }
        Route::Unavailable => {
            Problem::unavailable("this class is moving to another server: try again in a moment", 2).into_response()
        }
    }
}

/// The class's live state its previous node kept (at most [`LIVE_STATE_FRESH`] old: an
/// older one is a past session's), unless someone follows the class's events here already
/// (media sessions alone, an edge's pupils, hold no state).
async fn take_up_live_state(s: &SharedState, class: &ClassId) {
    if s.hub.has_class_events(class) {
        return;
    }
    let since = ardoise_store::now_ms() - LIVE_STATE_FRESH.as_millis() as i64;
    match s.store.live_state(&class.0, since).await {
        Ok(Some(json)) => match serde_json::from_str(&json) {
            Ok(live) => {
                if s.hub.restore(class, live) {
                    tracing::info!(class = %class, "cluster: the class's live state taken up");
                }
            }
            Err(e) => warn!(class = %class, "cluster: the class's live state does not parse: {e}"),
        },
        Ok(None) => {}
        Err(e) => warn!(class = %class, "cluster: the class's live state unreadable: {e}"),
    }
}

/// How old a class's kept live state may be for the node taking the class over to take it
/// up: a class whose node died mid-lesson comes back within minutes.
pub const LIVE_STATE_FRESH: std::time::Duration = std::time::Duration::from_secs(600);

/// The request without its `via` parameter: the handlers check their query strictly.
fn without_via(mut req: Request) -> Request {
    let Some(query) = req.uri().query() else { return req };
    if !query.split('&').any(|p| p.starts_with("via=")) {
        return req;
    }
    let kept: Vec<&str> = query.split('&').filter(|p| !p.starts_with("via=") && !p.is_empty()).collect();
    let path = req.uri().path();
    let path_and_query = if kept.is_empty() { path.to_owned() } else { format!("{path}?{}", kept.join("&")) };
    let mut parts = req.uri().clone().into_parts();
    match path_and_query.parse() {
        Ok(pq) => parts.path_and_query = Some(pq),
        Err(_) => return req,
    }
    if let Ok(uri) = axum::http::Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_class_doors_are_routed_and_nothing_else() {
        assert_eq!(names("/whip/cm1"), Some(Names::Class("cm1".into())));
        assert_eq!(names("/whep/cm1/42"), Some(Names::Class("cm1".into())));
        assert_eq!(names("/ws/cm1"), Some(Names::Class("cm1".into())));
        assert_eq!(names("/c/abcd2345"), Some(Names::Code("abcd2345".into())));
        assert_eq!(names("/api/classes/cm1/recordings"), Some(Names::IdOrCode("cm1".into())));
        assert_eq!(names("/api/classes/abcd2345/join"), Some(Names::IdOrCode("abcd2345".into())));
        for other in ["/api/classes", "/api/classes/", "/whip", "/whip/", "/", "/teacher", "/api/admin/classes", "/c/"]
        {
            assert_eq!(names(other), None, "{other}");
        }
    }
}
