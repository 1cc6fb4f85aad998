//! `GET /ws/{class}`: the class-events WebSocket of one participant.
//!
//! The first message must be `hello` with the token (never in the URL), within 5 s. Then
//! every message is size- and rate-limited and applied through the [`ClassHub`]; an invalid
//! one gets an `error` reply and changes nothing else.
//!
//! Rules that bound what one client can cost:
//! - a client address holds at most `limits.websockets_per_ip` sockets, and a teacher's or
//!   admin's pages at most `limits.websockets_per_token` in one class (checked at `hello`:
//!   the token never rides in the URL; the studio's link is never refused); a pupil holds
//!   one per kind of client, a newer one replacing the older;
//! - every frame counts against the rate limit, WebSocket pings included; a client that
//!   keeps flooding is disconnected;
//! - what the server sends waits in a bounded queue
//!   ([`QUEUE_PER_CONNECTION`](crate::class_hub::QUEUE_PER_CONNECTION) messages) and
//!   a bounded write buffer; a client that does not read, or a write that takes longer than
//!   [`WRITE_TIMEOUT`], closes the connection;
//! - only application messages keep a connection alive (`limits.websocket_idle_secs`), not
//!   WebSocket pings;
//! - the socket closes when its token expires or is revoked.

use crate::class_hub::{ConnLink, Effect, Outgoing, TokenFacts, member};
use crate::limits::ClientAddr;
use crate::state::{AppState, SharedState};
use ardoise_proto::events::MAX_EVENT_BYTES;
use ardoise_proto::{ClassId, ClientEvent, ClientKind, ErrorCode, Role, ServerEvent};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// Time allowed for the `hello` message.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a single write to the client may take.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes buffered toward one client at most (the largest welcome fits).
const MAX_WRITE_BUFFER: usize = 512 * 1024;
/// Messages allowed in a burst, and refilled per second.
const BURST: f64 = 20.0;
const REFILL_PER_SEC: f64 = 2.0;
/// Refused messages after which a flooding client is disconnected.
const MAX_STRIKES: u32 = 50;

/// Token bucket: [`BURST`] messages, refilled at [`REFILL_PER_SEC`].
struct RateLimit {
    tokens: f64,
    at: Instant,
    strikes: u32,
}

impl RateLimit {
    fn new(now: Instant) -> Self {
        RateLimit { tokens: BURST, at: now, strikes: 0 }
    }

    fn allow(&mut self, now: Instant) -> bool {
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * REFILL_PER_SEC).min(BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.strikes += 1;
            false
        }
    }
}

/// `GET /ws/{class}`
pub async fn upgrade(
    State(s): State<SharedState>,
    ClientAddr(ip): ClientAddr,
    Path(class): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    // A check's classes have no class events: no chat, no members between strangers.
    if crate::check::is_check_class(&ClassId(class.clone())) {
        return crate::Problem::not_found("a check has no class events").into_response();
    }
    let Some(slot) = s.limits.websockets.try_open(ip, s.limits.config.websockets_per_ip) else {
        debug!(%ip, "class events: too many sockets from this address");
        return crate::limits::too_many("too many class-event connections from this address", Duration::from_secs(10))
            .into_response();
    };
    ws.max_message_size(MAX_EVENT_BYTES)
        .max_frame_size(MAX_EVENT_BYTES)
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            session(s, ClassId(class), socket).await;
            drop(slot);
        })
}

fn text(ev: &ServerEvent) -> Message {
    Message::Text(serde_json::to_string(ev).expect("serialize").into())
}

fn refusal(code: ErrorCode, message: impl Into<String>) -> Message {
    text(&ServerEvent::Error { code, message: message.into() })
}

async fn refuse(mut socket: WebSocket, code: ErrorCode, message: impl Into<String>) {
    let _ = tokio::time::timeout(WRITE_TIMEOUT, socket.send(refusal(code, message))).await;
}

async fn session(s: SharedState, class: ClassId, mut socket: WebSocket) {
    // 1. hello
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, socket.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str::<ClientEvent>(&t).ok(),
        _ => None,
    };
    let Some(ClientEvent::Hello { token, client }) = hello else {
        return refuse(socket, ErrorCode::Unauthorized, "the first message must be {\"type\":\"hello\",\"token\":…}")
            .await;
    };
    let claims = match s.verify_token(&token) {
        Ok(c) => c,
        Err(p) => return refuse(socket, ErrorCode::Unauthorized, p.detail).await,
    };
    if !claims.covers(&class) {
        return refuse(socket, ErrorCode::Forbidden, "this token is not valid for this class").await;
    }
    if s.hub.is_expelled(&class, &claims.sub) {
        return refuse(socket, ErrorCode::Unauthorized, "this token was revoked").await;
    }
    if client == ClientKind::Studio && claims.role != Role::Teacher {
        return refuse(socket, ErrorCode::Forbidden, "only a teacher token may connect as the studio").await;
    }
    if client == ClientKind::Player {
        return refuse(socket, ErrorCode::Invalid, "a page or the studio connects here, not a player").await;
    }
    let info = match s.open_class(&class.0) {
        Ok(i) => i,
        Err(p) => return refuse(socket, ErrorCode::NotFound, p.detail).await,
    };
    if claims.role == Role::Pupil && s.hub.is_locked(&class) && !s.hub.is_present(&class, &claims.sub) {
        return refuse(socket, ErrorCode::Forbidden, "the teacher has locked this class").await;
    }
    let me = member(&claims.sub, claims.role, claims.name.as_deref(), client);
    // (The studio's own link is never refused: it carries the layout and the keyframes.)
    if claims.role != Role::Pupil
        && client != ClientKind::Studio
        && s.hub.connections_of(&class, &me.id) >= s.limits.config.websockets_per_token
    {
        debug!(class = %class, role = %claims.role, "class events: too many sockets with this token");
        return refuse(
            socket,
            ErrorCode::RateLimited,
            "too many connections to this class with this account: close another tab or screen",
        )
        .await;
    }
    s.classes.touch(&class);

    // 2. registered: a writer task owns the sink; this task reads.
    let (link, mut rx) = ConnLink::new();
    let kill = link.kill.clone();
    s.hub.set_policies(&class, s.classes.policies(&class));
    let conn = s.hub.connect(&info, me, link.clone(), TokenFacts { kv: claims.kv, exp: claims.exp });
    info!(class = %class, role = %claims.role, ?client, conn, "class events connected");
    let (mut sink, mut stream) = socket.split();
    let writer_kill = kill.clone();
    let writer = tokio::spawn(async move {
        loop {
            let out = tokio::select! {
                m = rx.recv() => m,
                _ = writer_kill.cancelled() => None,
            };
            let Some(out) = out else { break };
            let (msg, last) = match out {
                Outgoing::Event(t) => (Message::Text(t.as_ref().into()), false),
                Outgoing::Close => (Message::Close(Some(CloseFrame { code: 1000, reason: "bye".into() })), true),
            };
            match tokio::time::timeout(WRITE_TIMEOUT, sink.send(msg)).await {
                Ok(Ok(())) if !last => {}
                Ok(Ok(())) => break,
                Ok(Err(_)) => break,
                Err(_) => {
                    debug!("class events: a write took longer than {WRITE_TIMEOUT:?}; closing");
                    break;
                }
            }
        }
        writer_kill.cancel();
    });
    let send = |m: Message| {
        if let Message::Text(t) = m {
            link.deliver(Outgoing::Event(t.as_str().into()));
        }
    };
    let expires = tokio::time::Instant::now() + Duration::from_secs(claims.exp.saturating_sub(crate::auth::unix_now()));
    let idle = Duration::from_secs(s.limits.config.websocket_idle_secs);
    let mut idle_deadline = tokio::time::Instant::now() + idle;
    let mut limit = RateLimit::new(Instant::now());
    loop {
        let msg = tokio::select! {
            m = stream.next() => m,
            _ = tokio::time::sleep_until(idle_deadline) => {
                debug!(class = %class, conn, "idle; closing");
                break;
            }
            _ = tokio::time::sleep_until(expires) => {
                send(refusal(ErrorCode::Unauthorized, "the token has expired"));
                link.deliver(Outgoing::Close);
                break;
            }
            _ = kill.cancelled() => break,
        };
        let msg = match msg {
            None | Some(Err(_)) => break,
            Some(Ok(m)) => m,
        };
        if !limit.allow(Instant::now()) {
            if limit.strikes > MAX_STRIKES {
                warn!(class = %class, conn, "class events: flooding client disconnected");
                break;
            }
            if matches!(msg, Message::Text(_) | Message::Binary(_)) {
                send(refusal(ErrorCode::RateLimited, "too many messages; slow down"));
            }
            continue;
        }
        let body = match msg {
            Message::Text(t) => t,
            Message::Close(_) => break,
            // Counted above; they never keep a connection alive.
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Binary(_) => {
                send(refusal(ErrorCode::Invalid, "class events are JSON text"));
                continue;
            }
        };
        idle_deadline = tokio::time::Instant::now() + idle;
        let event = match serde_json::from_str::<ClientEvent>(&body) {
            Ok(e) => e,
            Err(e) => {
                debug!(class = %class, conn, "invalid class event: {e}");
                send(refusal(ErrorCode::Invalid, "invalid message (see docs/CLASS_EVENTS.md)"));
                continue;
            }
        };
        // A removal is written to disk before anyone hears of it: a crash right after cannot
        // bring the pupil back.
        if let ClientEvent::Remove { pupil } = &event
            && matches!(claims.role, Role::Teacher | Role::Admin)
            && let Some(t) = s.hub.pupil_token(&class, pupil)
        {
            s.revoke(pupil, t.exp);
        }
        let effects = s.hub.handle(&class, conn, event);
        for effect in effects {
            apply(&s, &class, effect).await;
        }
    }
    // The writer sends what is still queued (a last error, the close), then stops when the
    // last sender is gone; a writer stuck on a client that does not read is cut after 2 s.
    s.hub.disconnect(&class, conn);
    drop(link);
    if tokio::time::timeout(Duration::from_secs(2), writer).await.is_err() {
        kill.cancel();
    }
    debug!(class = %class, conn, "class events closed");
}

/// Carry out a media effect of a class event.
pub async fn apply(s: &SharedState, class: &ClassId, effect: Effect) {
    match effect {
        Effect::CloseFloorMedia(pupil) => s.close_sessions(class, &pupil, true).await,
        Effect::CloseSessions(id) => {
            s.close_sessions(class, &id, false).await;
            info!(class = %class, "a player's sessions closed by the teacher");
        }
        Effect::Expel { id, until } => {
            s.revoke(&id, until);
            s.close_sessions(class, &id, false).await;
            info!(class = %class, "pupil removed by the teacher");
        }
        Effect::Mute(pupil, muted) => {
            for pid in s.sessions_of(class, &pupil, true) {
                if let Err(e) = s.media.mute(class, pid, muted).await {
                    debug!(class = %class, participant = %pid, "mute: {e}");
                }
            }
        }
        Effect::RotateCode => {
            crate::class_api::rotate(s, class);
        }
        Effect::EndClass => AppState::end_class(s, class, Role::Teacher),
        Effect::Layout(layout) => s.recordings.chapter(class, &layout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_allows_a_burst_then_refills() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(t0);
        assert_eq!((0..30).filter(|_| r.allow(t0)).count(), 20);
        assert_eq!(r.strikes, 10);
        assert!(r.allow(t0 + Duration::from_millis(600)), "one more after 0.5 s");
        assert!(!r.allow(t0 + Duration::from_millis(600)));
    }
}
