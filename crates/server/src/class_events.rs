//! `GET /ws/{class}`: the class-events WebSocket of one participant.
//!
//! The first message must be `hello` with the token (never in the URL), within 5 s. Then
//! every message is size- and rate-limited and applied through the [`ClassHub`]; an invalid
//! one gets an `error` reply and changes nothing else.

use crate::class_hub::{Effect, Outgoing, member};
use crate::state::{AppState, SharedState};
use ardoise_proto::events::MAX_EVENT_BYTES;
use ardoise_proto::{ClassId, ClientEvent, ErrorCode, Role, ServerEvent};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::unbounded_channel;
use tracing::{debug, info, warn};

/// Time allowed for the `hello` message.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection silent this long is closed (pages ping every 20 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
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
pub async fn upgrade(State(s): State<SharedState>, Path(class): Path<String>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(MAX_EVENT_BYTES)
        .max_frame_size(MAX_EVENT_BYTES)
        .on_upgrade(move |socket| session(s, ClassId(class), socket))
}

fn text(ev: &ServerEvent) -> Message {
    Message::Text(serde_json::to_string(ev).expect("serialize").into())
}

fn refusal(code: ErrorCode, message: impl Into<String>) -> Message {
    text(&ServerEvent::Error { code, message: message.into() })
}

async fn session(s: SharedState, class: ClassId, mut socket: WebSocket) {
    // 1. hello
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, socket.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str::<ClientEvent>(&t).ok(),
        _ => None,
    };
    let Some(ClientEvent::Hello { token, client }) = hello else {
        let _ = socket.send(refusal(ErrorCode::Unauthorized, "the first message must be {\"type\":\"hello\",\"token\":…}")).await;
        return;
    };
    let claims = match s.verify_token(&token) {
        Ok(c) => c,
        Err(p) => {
            let _ = socket.send(refusal(ErrorCode::Unauthorized, p.detail)).await;
            return;
        }
    };
    if !claims.covers(&class) {
        let _ = socket.send(refusal(ErrorCode::Forbidden, format!("this token is not valid for class '{class}'"))).await;
        return;
    }
    let info = match s.open_class(&class.0) {
        Ok(i) => i,
        Err(p) => {
            let _ = socket.send(refusal(ErrorCode::NotFound, p.detail)).await;
            return;
        }
    };

    // 2. registered: a writer task owns the sink; this task reads.
    let (tx, mut rx) = unbounded_channel();
    let me = member(&claims.sub, claims.role, claims.name.as_deref(), client);
    let conn = s.hub.connect(&info, me, tx.clone());
    info!(class = %class, role = %claims.role, ?client, conn, "class events connected");
    let (mut sink, mut stream) = socket.split();
    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            match out {
                Outgoing::Event(t) => {
                    if sink.send(Message::Text(t.as_ref().into())).await.is_err() {
                        break;
                    }
                }
                Outgoing::Close => {
                    let _ = sink.send(Message::Close(Some(CloseFrame { code: 1000, reason: "bye".into() }))).await;
                    break;
                }
            }
        }
    });
    let send = |m: Message| {
        if let Message::Text(t) = m {
            let _ = tx.send(Outgoing::Event(t.as_str().into()));
        }
    };
    let mut limit = RateLimit::new(Instant::now());
    loop {
        let msg = tokio::select! {
            m = tokio::time::timeout(IDLE_TIMEOUT, stream.next()) => m,
            _ = tx.closed() => break,
        };
        let msg = match msg {
            Err(_) => {
                debug!(class = %class, conn, "idle; closing");
                break;
            }
            Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(m))) => m,
        };
        let body = match msg {
            Message::Text(t) => t,
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Binary(_) => {
                send(refusal(ErrorCode::Invalid, "class events are JSON text"));
                continue;
            }
        };
        if !limit.allow(Instant::now()) {
            if limit.strikes > MAX_STRIKES {
                warn!(class = %class, conn, "class events: flooding client disconnected");
                break;
            }
            send(refusal(ErrorCode::RateLimited, "too many messages; slow down"));
            continue;
        }
        let event = match serde_json::from_str::<ClientEvent>(&body) {
            Ok(e) => e,
            Err(e) => {
                debug!(class = %class, conn, "invalid class event: {e}");
                send(refusal(ErrorCode::Invalid, format!("invalid message: {e}")));
                continue;
            }
        };
        let effects = s.hub.handle(&class, conn, event);
        for effect in effects {
            apply(&s, &class, effect).await;
        }
    }
    s.hub.disconnect(&class, conn);
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    debug!(class = %class, conn, "class events closed");
}

/// Carry out a media effect of a class event.
pub async fn apply(s: &AppState, class: &ClassId, effect: Effect) {
    match effect {
        Effect::CloseFloorMedia(pupil) => s.close_sessions(class, &pupil, true).await,
        Effect::Expel(pupil) => {
            s.revoke(&pupil);
            s.close_sessions(class, &pupil, false).await;
            info!(class = %class, "pupil removed by the teacher");
        }
        Effect::Mute(pupil, muted) => {
            for pid in s.sessions_of(class, &pupil, true) {
                if let Err(e) = s.media.mute(class, pid, muted).await {
                    debug!(class = %class, participant = %pid, "mute: {e}");
                }
            }
        }
        Effect::EndClass => s.end_class(class, Role::Teacher),
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
