//! WHIP (RFC 9725) and WHEP endpoints: POST an offer, PATCH for trickle ICE / ICE restart, DELETE.
//!
//! An offer is admitted before any work reaches a media worker: rate-limited per client
//! address, then counted against the caps of [`AppState::reserve_session`]
//! (crate::state::AppState::reserve_session). Refusals are logged at debug level only, so
//! that a flood of bad offers cannot fill the logs.

use crate::Problem;
use crate::limits::ClientAddr;
use crate::state::{Endpoint, Resource, SharedState};
use ardoise_proto::{Claims, ClassId, ParticipantId, Role};
use ardoise_sfu::{Feed, PublisherRole, PupilCap, VideoChoice};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use str0m::Candidate;
use tracing::{Instrument, debug, info, info_span};

fn content_type_is(headers: &HeaderMap, want: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case(want))
        .unwrap_or(false)
}

fn body_text(body: Result<Bytes, BytesRejection>) -> Result<String, Problem> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "the request body is larger than allowed")
        } else {
            debug!("cannot read a request body: {r}");
            Problem::bad_request("the request body could not be read")
        }
    })?;
    String::from_utf8(body.to_vec()).map_err(|_| Problem::bad_request("the SDP must be UTF-8 text"))
}

/// What a publisher may send: the teacher publishes the class; a pupil only its voice (and
/// its camera if granted) while it holds the floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Grant {
    role: PublisherRole,
    camera: bool,
}

/// Who may publish what. The camera grant is checked here on the offer and enforced again
/// by the SFU on the negotiated session (an offer can hide a video m-line, e.g. port 0 with
/// `a=bundle-only`).
fn authorize(
    s: &SharedState,
    endpoint: Endpoint,
    claims: &Claims,
    class: &ClassId,
    offer: &str,
) -> Result<Grant, Problem> {
    if !claims.covers(class) {
        return Err(Problem::forbidden("this token is not valid for this class"));
    }
    match endpoint {
        Endpoint::Whip if claims.role == Role::Pupil => {
            let floor = s.hub.floor(class).filter(|f| f.pupil == claims.sub);
            let Some(floor) = floor else {
                return Err(Problem::forbidden("a pupil may publish only when the teacher gives the floor"));
            };
            if !floor.camera && sends_video(offer) {
                return Err(Problem::forbidden("the teacher gave the floor without the camera: offer audio only"));
            }
            Ok(Grant { role: PublisherRole::Floor, camera: floor.camera })
        }
        Endpoint::Whip if !claims.role.may_publish() => {
            Err(Problem::forbidden(format!("a {} may not publish the class", claims.role)))
        }
        _ => Ok(Grant { role: PublisherRole::Class, camera: true }),
    }
}

/// Whether an SDP offer has a video m-line that may send: any video m-line not marked
/// recvonly or inactive, whatever its port (a bundled m-line may have port 0).
pub fn sends_video(offer: &str) -> bool {
    let mut video = false;
    let mut sending = true;
    let mut any = false;
    for line in offer.lines().map(str::trim_end).chain(std::iter::once("m=end")) {
        if let Some(m) = line.strip_prefix("m=") {
            any |= video && sending;
            video = m.starts_with("video");
            sending = true;
        } else if matches!(line, "a=recvonly" | "a=inactive") {
            sending = false;
        }
    }
    any
}

fn path_prefix(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Whip => "whip",
        Endpoint::Whep(_) => "whep",
    }
}

/// `POST /whip/{class}`
pub async fn whip_post(
    State(s): State<SharedState>,
    ClientAddr(ip): ClientAddr,
    Path(class): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    post(s, ip, Endpoint::Whip, Feed::Class, class, headers, body, Sent::Asked(String::new())).await
}

/// Query of `POST /whep/{class}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlayQuery {
    /// `high`, `medium` or `low`: always this layer (no adaptation).
    pub layer: Option<String>,
    /// `auto` (default), `saver` or `audio`: the pupil's own cap on the adaptive choice.
    pub quality: Option<String>,
    /// `class` (default) or `floor` (only the pupil holding the floor: the studio's speaker).
    pub feed: Option<String>,
    /// Adaptive only: what the pupil's link carried at its pre-class check, kbit/s (the
    /// estimator and the first layer start from it, within 100..=3000).
    pub start_kbps: Option<u64>,
    /// A pupil sent here by the class's owner, which checked the class's rules: the edge's
    /// proof of that ([`crate::cluster::Cluster::edge_pass`]), in place of the token.
    pub pass: Option<String>,
}

/// `POST /whep/{class}[?quality=auto|saver|audio[&start_kbps=N] | ?layer=high|medium|low][&feed=class|floor]`
pub async fn whep_post(
    State(s): State<SharedState>,
    ClientAddr(ip): ClientAddr,
    Path(class): Path<String>,
    query: Result<axum::extract::Query<PlayQuery>, axum::extract::rejection::QueryRejection>,
    raw: axum::extract::RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let query = query.map_err(|e| {
        debug!("refused WHEP query: {}", e.body_text());
        Problem::bad_request("unknown query parameter or value (layer, quality, feed, start_kbps)")
    })?;
    let start_bps = query.start_kbps.map(|k| k.saturating_mul(1000));
    let choice = match (query.layer.as_deref(), query.quality.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(Problem::bad_request("give either layer (fixed) or quality (adaptive), not both"));
        }
        (Some(_), None) if start_bps.is_some() => {
            return Err(Problem::bad_request("start_kbps is for an adaptive player: give quality, not layer"));
        }
        (Some(l), None) => Some(VideoChoice::Fixed(l.parse().map_err(|e: String| Problem::bad_request(e))?)),
        (None, Some(q)) => Some(VideoChoice::Adaptive {
            cap: match q {
                "auto" => PupilCap::Auto,
                "saver" => PupilCap::DataSaver,
                "audio" => PupilCap::AudioOnly,
                other => return Err(Problem::bad_request(format!("unknown quality '{other}' (auto, saver, audio)"))),
            },
            start_bps,
        }),
        (None, None) if start_bps.is_some() => Some(VideoChoice::Adaptive { cap: PupilCap::Auto, start_bps }),
        (None, None) => None,
    };
    let feed = match query.feed.as_deref() {
        None => Feed::Class,
        Some(f) => f.parse().map_err(|e: String| Problem::bad_request(e))?,
    };
    let sent = match query.0.pass {
        Some(pass) => Sent::Here(pass),
        None => Sent::Asked(raw.0.unwrap_or_default()),
    };
    post(s, ip, Endpoint::Whep(choice), feed, class, headers, body, sent).await
}

/// How a WHEP offer came.
enum Sent {
    /// From the pupil: its query, for an edge to get the same.
    Asked(String),
    /// From the class's owner, with this pass.
    Here(String),
}

#[allow(clippy::too_many_arguments)]
async fn post(
    s: SharedState,
    ip: std::net::IpAddr,
    endpoint: Endpoint,
    feed: Feed,
    class: String,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    sent: Sent,
) -> Result<Response, Problem> {
    let claims = match &sent {
        Sent::Here(pass) => {
            let cluster = s.cluster.as_ref().ok_or_else(|| Problem::bad_request("this server is not in a cluster"))?;
            let claims = cluster
                .read_edge_pass(pass, &class)
                .filter(|c| !s.tokens.revocations().refuses(c, crate::auth::unix_now()));
            // Not final for the player: it asks the class's server again, which gives it a
            // fresh pass (or its answer).
            claims.ok_or_else(|| {
                debug!(%ip, "offer refused: bad or expired pass");
                Problem::unavailable("this pass is not valid here, or has expired: ask the class's server again", 1)
            })?
        }
        Sent::Asked(_) => s.authenticate(&headers)?,
    };
    let relay = crate::cascade::is_relay(&claims.sub);
    if !relay {
        s.limits.offers_per_token.check(&claims.sub).inspect_err(|_| debug!(%ip, "offer refused: token rate limit"))?;
    }
    let info = s.open_class(&class)?;
    if !content_type_is(&headers, "application/sdp") {
        return Err(Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "the offer must be sent as application/sdp"));
    }
    let offer = body_text(body)?;
    let grant = match &sent {
        // The owner checked the class's rules before it gave the pass.
        Sent::Here(_) => {
            // A pupil sent to this edge (not a relay pulling from its class's owner).
            if !s.cluster.as_ref().is_some_and(|c| c.owns(&info.id.0)) {
                s.cascade.serve(&s, &info.id);
            }
            Grant { role: PublisherRole::Class, camera: true }
        }
        Sent::Asked(query) => {
            if s.hub.is_expelled(&info.id, &claims.sub) {
                return Err(Problem::unauthorized("this token was revoked"));
            }
            let grant = authorize(&s, endpoint, &claims, &info.id, &offer)?;
            if claims.role == Role::Pupil && s.hub.is_locked(&info.id) && !s.hub.is_present(&info.id, &claims.sub) {
                return Err(Problem::new(StatusCode::LOCKED, "the teacher has locked this class"));
            }
            if claims.role == Role::Pupil
                && s.classes.policies(&info.id).waiting_room
                && !s.hub.is_admitted(&info.id, &claims.sub)
            {
                return Err(Problem::forbidden("wait in the waiting room until the teacher lets you in"));
            }
            if matches!(endpoint, Endpoint::Whep(_))
                && claims.role == Role::Pupil
                && feed == Feed::Class
                && let Some(to) = s.cascade.edge_for(&s, &info.id, &claims.sub)
            {
                return Ok(to_edge(&s, &to, &info.id, query, &claims));
            }
            grant
        }
    };
    let class_publisher = endpoint == Endpoint::Whip && grant.role == PublisherRole::Class;
    // The class's publisher is never refused for its neighbours' offers (a pupil behind the
    // school's address): its own token's limit applies to it, the address's to everyone else.
    if !class_publisher && !relay {
        s.limits.offers.check(&ip).inspect_err(|_| debug!(%ip, "offer refused: address rate limit"))?;
    }
    let (pid, answer) = open_session(&s, &claims, &info.id, endpoint, feed, grant, offer, ip).await?;
    // A session on an edge is named by its absolute URL: the pupil's page came from the
    // class's owner.
    let origin = match (&sent, &s.cluster) {
        (Sent::Here(_), Some(c)) => c.public_url().trim_end_matches('/').to_owned(),
        _ => String::new(),
    };
    let location = format!("{origin}/{}/{}/{}", path_prefix(endpoint), info.id, pid.0);
    let mut r = (StatusCode::CREATED, answer).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/sdp"));
    h.insert(header::LOCATION, HeaderValue::from_str(&location).map_err(|_| Problem::bad_request("bad location"))?);
    h.insert(header::ETAG, HeaderValue::from_str(&format!("\"{}-0\"", pid.0)).expect("ascii"));
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("Location, ETag, Link"));
    if let Some(turn) = &s.turn {
        for link in turn.link_headers(&claims.sub) {
            if let Ok(v) = HeaderValue::from_str(&link) {
                h.append(header::LINK, v);
            }
        }
    }
    Ok(r)
}

/// 307 to an edge of the class, with a pass for it and the pupil's query.
fn to_edge(
    s: &SharedState,
    to: &crate::cascade::EdgeChoice,
    class: &ClassId,
    query: &str,
    claims: &Claims,
) -> Response {
    let pass = s.cluster.as_ref().map(|c| c.edge_pass(&to.node, &class.0, claims)).unwrap_or_default();
    let mut pairs: Vec<&str> =
        query.split('&').filter(|p| !p.is_empty() && !p.starts_with("via=") && !p.starts_with("pass=")).collect();
    let pass = format!("pass={pass}");
    pairs.push(&pass);
    let location = format!("{}/whep/{class}?{}", to.url.trim_end_matches('/'), pairs.join("&"));
    debug!(class = %class, edge = %to.node, "cascade: a pupil sent to an edge");
    let mut r = StatusCode::TEMPORARY_REDIRECT.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Open an admitted session: reserve its place, negotiate it with the class's media worker,
/// show it to the class. Returns its id and the SDP answer.
#[allow(clippy::too_many_arguments)]
async fn open_session(
    s: &SharedState,
    claims: &Claims,
    class: &ClassId,
    endpoint: Endpoint,
    feed: Feed,
    grant: Grant,
    offer: String,
    ip: std::net::IpAddr,
) -> Result<(ParticipantId, String), Problem> {
    let class_publisher = endpoint == Endpoint::Whip && grant.role == PublisherRole::Class;
    let reserved = s.reserve_session(claims, class, endpoint, ip, class_publisher)?;
    let pid = reserved.pid;
    let span = info_span!("session", class = %class, participant = %pid, endpoint = path_prefix(endpoint));
    let joined = async {
        let r = match endpoint {
            Endpoint::Whip => s.media.publish_granted(class, pid, offer, grant.role, grant.camera).await,
            Endpoint::Whep(choice) => s.media.play_feed(class, pid, offer, choice, feed).await,
        };
        match &r {
            Ok(_) => info!(role = %claims.role, "session created"),
            Err(e) => debug!(role = %claims.role, "offer refused: {e}"),
        }
        r
    }
    .instrument(span)
    .await;
    let joined = match joined {
        Ok(j) => j,
        Err(e) => {
            s.forget_session(pid);
            return Err(e.into());
        }
    };
    s.session_opened(pid, claims);
    s.close_pids(reserved.replaces).await;
    if grant.role == PublisherRole::Floor && s.hub.floor(class).is_some_and(|f| f.muted) {
        let _ = s.media.mute(class, pid, true).await;
    }
    Ok((pid, joined.answer))
}

/// Publish `offer` on this node as the class's publication, or the floor's (`role`), without
/// HTTP: an edge's relay of a class another node owns ([`crate::edge_relay`]). Returns its id
/// and the answer.
pub async fn publish_here(
    s: &SharedState,
    claims: &Claims,
    class: &ClassId,
    offer: String,
    role: PublisherRole,
) -> Result<(ParticipantId, String), Problem> {
    let grant = Grant { role, camera: true };
    let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    open_session(s, claims, class, Endpoint::Whip, Feed::Class, grant, offer, ip).await
}

/// A session may be changed by its creator, the class's teacher, or an admin.
fn may_change(claims: &Claims, res: &Resource) -> Result<(), Problem> {
    let owner = claims.sub == res.owner;
    let manager = matches!(claims.role, Role::Teacher | Role::Admin) && claims.covers(&res.class);
    if owner || manager { Ok(()) } else { Err(Problem::forbidden("this session belongs to someone else")) }
}

fn resource(s: &SharedState, endpoint: Endpoint, class: &str, id: &str) -> Result<(ParticipantId, Resource), Problem> {
    let pid = id.parse::<u64>().map(ParticipantId).map_err(|_| Problem::not_found("no such session"))?;
    let map = s.resources.lock().unwrap_or_else(|e| e.into_inner());
    match map.get(&pid) {
        Some(r) if path_prefix(r.endpoint) == path_prefix(endpoint) && r.class.0 == class => Ok((pid, r.clone())),
        _ => Err(Problem::not_found("no such session")),
    }
}

/// `DELETE /whip/{class}/{id}`
pub async fn whip_delete(
    State(s): State<SharedState>,
    Path((class, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, Problem> {
    delete(s, Endpoint::Whip, class, id, headers).await
}

/// `DELETE /whep/{class}/{id}`
pub async fn whep_delete(
    State(s): State<SharedState>,
    Path((class, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, Problem> {
    delete(s, Endpoint::Whep(None), class, id, headers).await
}

async fn delete(
    s: SharedState,
    endpoint: Endpoint,
    class: String,
    id: String,
    headers: HeaderMap,
) -> Result<StatusCode, Problem> {
    let claims = s.authenticate(&headers)?;
    let (pid, res) = resource(&s, endpoint, &class, &id)?;
    if !claims.covers(&res.class) {
        return Err(Problem::forbidden("this token is not valid for this class"));
    }
    may_change(&claims, &res)?;
    s.forget_session(pid);
    match s.media.leave(&res.class, pid).await {
        Ok(()) | Err(ardoise_net::NetError::UnknownClass) | Err(ardoise_net::NetError::Sfu(_)) => {}
        Err(e) => return Err(e.into()),
    }
    info!(class = %res.class, participant = %pid, "session deleted");
    Ok(StatusCode::OK)
}

/// `PATCH /whip/{class}/{id}`
pub async fn whip_patch(
    State(s): State<SharedState>,
    Path((class, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    patch(s, Endpoint::Whip, class, id, headers, body).await
}

/// `PATCH /whep/{class}/{id}`
pub async fn whep_patch(
    State(s): State<SharedState>,
    Path((class, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    patch(s, Endpoint::Whep(None), class, id, headers, body).await
}

async fn patch(
    s: SharedState,
    endpoint: Endpoint,
    class: String,
    id: String,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let claims = s.authenticate(&headers)?;
    let (pid, res) = resource(&s, endpoint, &class, &id)?;
    if !claims.covers(&res.class) {
        return Err(Problem::forbidden("this token is not valid for this class"));
    }
    may_change(&claims, &res)?;
    if !content_type_is(&headers, "application/trickle-ice-sdpfrag") {
        return Err(Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "PATCH takes application/trickle-ice-sdpfrag"));
    }
    let etag = format!("\"{}-{}\"", pid.0, res.generation);
    if let Some(m) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok())
        && m != "*"
        && m != etag
    {
        return Err(Problem::new(StatusCode::PRECONDITION_FAILED, "the session changed (ETag mismatch)"));
    }
    let frag = body_text(body)?;
    let (creds, candidates) = parse_sdpfrag(&frag)?;
    let restarted = s.media.patch(&res.class, pid, creds, candidates).await?;
    match restarted {
        None => Ok(StatusCode::NO_CONTENT.into_response()),
        Some((ufrag, pwd)) => {
            let generation = {
                let mut map = s.resources.lock().unwrap_or_else(|e| e.into_inner());
                let r = map.get_mut(&pid).ok_or_else(|| Problem::not_found("no such session"))?;
                r.generation += 1;
                r.generation
            };
            // The worker serving this session (a pupil in a fan-out room is not at the home).
            let w = s.media.worker_of(&res.class, pid).unwrap_or_else(|| s.media.worker_for(&res.class));
            let addr = s.media.addresses()[w];
            let mut body = format!(
                "a=ice-lite\r\na=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\na=candidate:1 1 udp 2130706431 {} {} typ host\r\n",
                addr.ip(),
                addr.port()
            );
            if let Some(tcp) = s.media.tcp_address() {
                body.push_str(&format!(
                    "a=candidate:2 1 tcp 1518280447 {} {} typ host tcptype passive\r\n",
                    tcp.ip(),
                    tcp.port()
                ));
            }
            body.push_str("a=end-of-candidates\r\n");
            let mut r = (StatusCode::OK, body).into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/trickle-ice-sdpfrag"));
            h.insert(header::ETAG, HeaderValue::from_str(&format!("\"{}-{generation}\"", pid.0)).expect("ascii"));
            Ok(r)
        }
    }
}

type IceCreds = Option<(String, String)>;

/// Candidates accepted in one trickle PATCH.
pub const MAX_TRICKLED_CANDIDATES: usize = 32;

/// Whether `s` is `min` to 256 ice-chars (RFC 8839: ALPHA / DIGIT / "+" / "/").
fn ice_chars(s: &str, min: usize) -> bool {
    (min..=256).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// Parse a trickle-ice-sdpfrag: ICE credentials (an ICE restart when they change) and candidates.
pub fn parse_sdpfrag(frag: &str) -> Result<(IceCreds, Vec<Candidate>), Problem> {
    let (mut ufrag, mut pwd, mut cands) = (None, None, Vec::new());
    for line in frag.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("a=ice-ufrag:") {
            ufrag = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("a=ice-pwd:") {
            pwd = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("a=candidate:") {
            let c = Candidate::from_sdp_string(&format!("candidate:{v}")).map_err(|e| {
                debug!("refused candidate line: {e}");
                Problem::bad_request("bad candidate line")
            })?;
            if cands.len() >= MAX_TRICKLED_CANDIDATES {
                return Err(Problem::bad_request(format!("at most {MAX_TRICKLED_CANDIDATES} candidates per PATCH")));
            }
            cands.push(c);
        }
    }
    let creds = match (ufrag, pwd) {
        (Some(u), Some(p)) => {
            // RFC 8839 §5.4: ice-ufrag is 4 to 256 ice-chars, ice-pwd 22 to 256.
            if !ice_chars(&u, 4) || !ice_chars(&p, 22) {
                return Err(Problem::bad_request(
                    "ICE credentials must be ice-chars (letters, digits, '+', '/'): ufrag 4 to 256, pwd 22 to 256",
                ));
            }
            Some((u, p))
        }
        (None, None) => None,
        _ => return Err(Problem::bad_request("an ICE restart needs both a=ice-ufrag and a=ice-pwd")),
    };
    Ok((creds, cands))
}

#[cfg(test)]
mod tests {
    use super::{parse_sdpfrag, sends_video};

    #[test]
    fn ice_restart_credentials_follow_rfc_8839() {
        let frag = |u: &str, p: &str| format!("a=ice-ufrag:{u}\r\na=ice-pwd:{p}\r\n");
        let pwd = "a".repeat(22);
        assert!(parse_sdpfrag(&frag("abcd", &pwd)).is_ok());
        assert!(parse_sdpfrag(&frag("abc", &pwd)).is_err(), "ufrag under 4");
        assert!(parse_sdpfrag(&frag("abcd", &"a".repeat(21))).is_err(), "pwd under 22");
        assert!(parse_sdpfrag(&frag(&"a".repeat(257), &pwd)).is_err(), "ufrag over 256");
        assert!(parse_sdpfrag(&frag("ab:d", &pwd)).is_err(), "not an ice-char");
        assert!(parse_sdpfrag("a=ice-ufrag:abcd\r\n").is_err(), "half a restart");
        let many: String =
            (0..40).map(|i| format!("a=candidate:{i} 1 udp 2130706431 127.0.0.1 {} typ host\r\n", 5000 + i)).collect();
        assert!(parse_sdpfrag(&many).is_err(), "too many candidates");
    }

    #[test]
    fn finds_sending_video_m_lines() {
        let audio = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendonly\r\n";
        assert!(!sends_video(audio));
        assert!(sends_video(&format!("{audio}m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\n")));
        assert!(sends_video(&format!("{audio}m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendrecv\r\n")));
        assert!(!sends_video(&format!("{audio}m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\n")));
        assert!(
            sends_video(&format!("{audio}m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=bundle-only\r\na=sendonly\r\n")),
            "port 0 with bundle-only still sends"
        );
        assert!(!sends_video(&format!("{audio}m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=inactive\r\n")));
    }
}
