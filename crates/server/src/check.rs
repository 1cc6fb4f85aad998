//! The pre-class check (`/check`): a parent or a pupil tests a loaned tablet the evening
//! before, with no login, through the same pipeline as a real class.
//!
//! Rules:
//! - the test programme is a class of its own, [`PROGRAMME`], published by the server itself
//!   (a [`TestProgramme`]: the studio's GStreamer test pattern in three simulcast layers and a
//!   tone, over WHIP to this SFU); it runs while someone checks and stops when nobody has
//!   for `check.idle_secs`;
//! - `POST /api/check` hands out a short-lived pupil token for that class only (per address
//!   rate limit of class look-ups); a join link given with it is looked up and said valid or
//!   not, and the test runs either way;
//! - the page reads the server's side of its session (`GET /api/check/session/{id}`: the
//!   layer the allocator chose, its bandwidth estimate, RTT, loss, transport) and sends its
//!   verdict once (`POST /api/check/verdict`): the class of the join link counts it,
//!   anonymously; its teacher and the admins read the counts;
//! - the echo (`POST /api/check/echo`) opens a class of its own for this one check
//!   ([`ECHO_PREFIX`] and a random name, gone after [`ECHO_SECS`]) whose only pupil holds the
//!   floor: the page publishes its microphone (and camera) over WHIP and plays it back over
//!   WHEP `feed=floor`. Nobody else can join it, and a floor pupil's voice is never recorded;
//! - check classes are not classes of the school: no attendance, no recording, no database row.

use crate::auth::unix_now;
use crate::class_api::json_body;
use crate::limits::ClientAddr;
use crate::problem::Problem;
use crate::state::SharedState;
use ardoise_proto::api::{CheckCounts, CheckVerdict as Verdict};
use ardoise_proto::{ClassId, ClassInfo, ClassState, JoinCode, Role};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tracing::{debug, info};

/// The test programme's class.
pub const PROGRAMME: &str = "check.programme";
/// The echo classes' ids start with this.
pub const ECHO_PREFIX: &str = "check.echo-";
/// How long an echo class lives: the page's 5-second echo and its connection.
pub const ECHO_SECS: u64 = 30;

/// Whether `class` is a check class (the programme or an echo), not a class of the school.
pub fn is_check_class(class: &ClassId) -> bool {
    class.0 == PROGRAMME || class.0.starts_with(ECHO_PREFIX)
}

/// The test programme's class, as declared at start: joinable by no code (the check's
/// token is the only way in).
pub fn programme_class() -> ClassInfo {
    ClassInfo {
        id: ClassId(PROGRAMME.into()),
        code: hidden_code(),
        title: "Test".into(),
        state: ClassState::Open,
        code_expires_at: None,
    }
}

/// A join code nobody is told (check classes are entered by token only).
fn hidden_code() -> JoinCode {
    JoinCode(format!("check-{:032x}", rand::random::<u128>()))
}

/// What publishes the test programme: the binary starts a studio on test sources.
pub trait TestProgramme: Send + Sync {
    /// Someone begins a check: publish the programme if it is not published (without
    /// blocking), and keep it for `check.idle_secs` more.
    fn wanted(&self);
}

/// The check's state on the server: the programme's publisher, the counts per class, the
/// tokens that have reported, the open echo classes.
#[derive(Default)]
pub struct CheckDesk {
    programme: OnceLock<Arc<dyn TestProgramme>>,
    counts: Mutex<HashMap<ClassId, CheckCounts>>,
    /// Token subjects that reported a verdict, with their token's expiry (one report each).
    reported: Mutex<HashMap<String, u64>>,
    /// Echo classes, with when they close.
    echoes: Mutex<HashMap<ClassId, Instant>>,
}

impl CheckDesk {
    /// Who publishes the test programme (set once, by the binary).
    pub fn set_programme(&self, p: Arc<dyn TestProgramme>) {
        let _ = self.programme.set(p);
    }

    /// Whether a test programme is published on demand.
    pub fn has_programme(&self) -> bool {
        self.programme.get().is_some()
    }

    /// The counts for `class`.
    pub fn counts(&self, class: &ClassId) -> CheckCounts {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).get(class).cloned().unwrap_or_default()
    }

    /// Count a verdict for `class` from the token `sub` (expiring at `exp`); false if that
    /// token reported already.
    pub fn report(&self, sub: &str, exp: u64, class: Option<&ClassId>, verdict: Verdict, now: u64) -> bool {
        {
            let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
            reported.retain(|_, e| *e > now);
            if reported.insert(sub.to_owned(), exp).is_some() {
                return false;
            }
        }
        if let Some(class) = class {
            self.counts.lock().unwrap_or_else(|e| e.into_inner()).entry(class.clone()).or_default().count(verdict);
        }
        true
    }

    /// Echo classes whose time is up (removed from the desk).
    fn expired_echoes(&self, now: Instant) -> Vec<ClassId> {
        let mut echoes = self.echoes.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<ClassId> = echoes.iter().filter(|(_, until)| **until <= now).map(|(c, _)| c.clone()).collect();
        for c in &gone {
            echoes.remove(c);
        }
        gone
    }

    fn open_echoes(&self) -> usize {
        self.echoes.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// At most this many echo classes at once (each holds a WHIP and a WHEP session).
const MAX_ECHOES: usize = 50;

/// Body of `POST /api/check`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// The join code of the pupil's class, when the check comes from a join link.
    #[serde(default)]
    pub code: Option<String>,
}

/// What the join link given to the check names.
#[derive(Debug, Serialize)]
pub struct LinkFacts {
    /// The link names a class that is open.
    pub valid: bool,
    /// The class's title, when valid.
    pub title: Option<String>,
}

/// Answer of `POST /api/check`.
#[derive(Debug, Serialize)]
pub struct CheckStart {
    /// A pupil token for the test programme only.
    pub token: String,
    /// The test programme's class (`/whep/{class}`).
    pub class: ClassId,
    /// Seconds the token lasts.
    pub ttl_secs: u64,
    /// The join link's class, if one was given.
    pub link: Option<LinkFacts>,
    /// The programme is published on demand (false: this server has none, the check can
    /// only test the browser and the sound).
    pub programme: bool,
}

/// `POST /api/check` (no login): a token for the test programme; the programme starts.
pub async fn start(
    State(s): State<SharedState>,
    ClientAddr(ip): ClientAddr,
    body: Result<Json<CheckRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<CheckStart>), Problem> {
    s.limits.lookups.check(&ip)?;
    let req = json_body(body)?;
    let link = req.code.as_deref().map(|code| match s.classes.by_code(code.trim(), unix_now()) {
        Some(c) if c.state != ClassState::Ended => LinkFacts { valid: true, title: Some(c.title) },
        _ => LinkFacts { valid: false, title: None },
    });
    let class = ClassId(PROGRAMME.into());
    let ttl = s.check_config.session_secs;
    let (token, _) = s.tokens.issue_claims(Role::Pupil, Some(class.clone()), Some("check".into()), Some(ttl));
    let programme = match s.check.programme.get() {
        Some(p) => {
            p.wanted();
            true
        }
        None => false,
    };
    debug!(%ip, link = ?link.as_ref().map(|l| l.valid), "check started");
    Ok((StatusCode::CREATED, Json(CheckStart { token, class, ttl_secs: ttl, link, programme })))
}

/// The server's side of a check's session.
#[derive(Debug, Serialize)]
pub struct SessionView {
    /// ICE and DTLS are up.
    pub connected: bool,
    /// `udp`, `tcp` or `relay`, once known.
    pub transport: Option<ardoise_proto::Transport>,
    /// The layer the allocator forwards (`low`, `medium`, `high`, `audio`), once chosen.
    pub layer: Option<String>,
    /// The server's bandwidth estimate toward the page, bit/s.
    pub estimate_bps: Option<u64>,
    /// Round-trip time, ms.
    pub rtt_ms: Option<f32>,
    /// Loss the page reports, 0..1.
    pub loss: Option<f32>,
}

/// `GET /api/check/session/{id}` with the check's token: its session as the server sees it.
pub async fn session(
    State(s): State<SharedState>,
    Path(id): Path<u64>,
    headers: HeaderMap,
) -> Result<Json<SessionView>, Problem> {
    let claims = s.authenticate(&headers)?;
    let pid = ardoise_proto::ParticipantId(id);
    let (class, connected, transport) = s
        .session_of(pid)
        .filter(|r| r.owner == claims.sub && is_check_class(&r.class))
        .map(|r| (r.class, r.connected, r.transport))
        .ok_or_else(|| Problem::not_found("no such check session"))?;
    let snaps = s.snapshots.get(&s.media).await;
    let stats = snaps
        .iter()
        .flat_map(|snap| snap.rooms.iter())
        .filter(|(c, _, _)| *c == class)
        .flat_map(|(_, _, ps)| ps.iter())
        .find(|p| p.id == id);
    Ok(Json(SessionView {
        connected,
        transport,
        layer: stats.and_then(|p| p.layer.clone()),
        estimate_bps: stats.and_then(|p| p.estimate_bps),
        rtt_ms: stats.and_then(|p| p.rtt_ms),
        loss: stats.and_then(|p| p.loss),
    }))
}

/// Body of `POST /api/check/verdict`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictReport {
    /// What the page concluded.
    pub verdict: Verdict,
    /// The join code the check came with, if any: that class counts it.
    #[serde(default)]
    pub code: Option<String>,
}

/// `POST /api/check/verdict` with the check's token: counted once per token, for the class
/// of the join code (anonymous: the class learns how many checked and how it went).
pub async fn verdict(
    State(s): State<SharedState>,
    headers: HeaderMap,
    body: Result<Json<VerdictReport>, JsonRejection>,
) -> Result<StatusCode, Problem> {
    let claims = s.authenticate(&headers)?;
    if claims.class.as_ref().is_none_or(|c| c.0 != PROGRAMME) {
        return Err(Problem::forbidden("only a check's token reports a check's verdict"));
    }
    let req = json_body(body)?;
    let class = req.code.as_deref().and_then(|c| s.classes.by_code(c.trim(), unix_now())).map(|c| c.id);
    if !s.check.report(&claims.sub, claims.exp, class.as_ref(), req.verdict, unix_now()) {
        return Err(Problem::new(StatusCode::CONFLICT, "this check's verdict was counted already"));
    }
    info!(verdict = ?req.verdict, class = ?class.as_ref().map(|c| s.metrics_label(c)), "check verdict");
    Ok(StatusCode::NO_CONTENT)
}

/// Answer of `POST /api/check/echo`.
#[derive(Debug, Serialize)]
pub struct EchoStart {
    /// A pupil token for the echo class, holding its floor.
    pub token: String,
    /// The echo class (`/whip/{class}`, then `/whep/{class}?feed=floor`).
    pub class: ClassId,
    /// Seconds the echo class lives.
    pub ttl_secs: u64,
}

/// `POST /api/check/echo` with the check's token: a private class for a 5-second echo of the
/// page's microphone (and camera) through the server. It closes after [`ECHO_SECS`].
pub async fn echo(
    State(s): State<SharedState>,
    ClientAddr(ip): ClientAddr,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<EchoStart>), Problem> {
    let claims = s.authenticate(&headers)?;
    if claims.class.as_ref().is_none_or(|c| c.0 != PROGRAMME) {
        return Err(Problem::forbidden("only a check's token opens an echo"));
    }
    // (Per token and per address: one address cannot take every echo.)
    s.limits.offers_per_token.check(&claims.sub)?;
    s.limits.lookups.check(&ip)?;
    close_expired_echoes(&s).await;
    if s.check.open_echoes() >= MAX_ECHOES {
        return Err(Problem::unavailable("too many echo tests at once; try again in a minute", 30));
    }
    let id = ClassId(format!("{ECHO_PREFIX}{:016x}", rand::random::<u64>()));
    s.classes.declare(ClassInfo {
        id: id.clone(),
        code: hidden_code(),
        title: "check".into(),
        state: ClassState::Open,
        code_expires_at: None,
    });
    let (token, echo_claims) =
        s.tokens.issue_claims(Role::Pupil, Some(id.clone()), Some("check".into()), Some(ECHO_SECS));
    s.hub.hold_floor_alone(&id, &echo_claims.sub);
    s.check
        .echoes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id.clone(), Instant::now() + Duration::from_secs(ECHO_SECS));
    let later = s.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(ECHO_SECS + 1)).await;
        close_expired_echoes(&later).await;
    });
    Ok((StatusCode::CREATED, Json(EchoStart { token, class: id, ttl_secs: ECHO_SECS })))
}

/// Close the echo classes whose time is up: their sessions, their room, their entry.
async fn close_expired_echoes(s: &SharedState) {
    for class in s.check.expired_echoes(Instant::now()) {
        let pids = s.sessions_in(&class);
        s.close_pids(pids).await;
        s.hub.end(&class);
        s.classes.remove(&class);
        debug!(%class, "echo closed");
    }
}

/// `GET /api/classes/{id}/checks`: the class's anonymous check counts (its teacher, an
/// admin).
pub async fn counts(
    State(s): State<SharedState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<CheckCounts>, Problem> {
    let id = ClassId(id);
    crate::teaching::manager(&s, &headers, &id, false, true).await?;
    Ok(Json(s.check.counts(&id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_reports_once_and_its_class_counts_it() {
        let desk = CheckDesk::default();
        let class = ClassId("cm2-a".into());
        assert!(desk.report("t1", 100, Some(&class), Verdict::Ready, 10));
        assert!(!desk.report("t1", 100, Some(&class), Verdict::Blocked, 11), "a second report of one token");
        assert!(desk.report("t2", 100, Some(&class), Verdict::Reduced, 12));
        assert!(desk.report("t3", 100, None, Verdict::Ready, 12), "a check without a link counts nowhere");
        let c = desk.counts(&class);
        assert_eq!((c.checked, c.ready, c.reduced, c.blocked), (2, 1, 1, 0));
        // Expired tokens are forgotten (their token cannot be used again anyway).
        assert!(desk.report("t4", 200, None, Verdict::Ready, 150));
        assert_eq!(desk.reported.lock().unwrap().len(), 1);
    }

    #[test]
    fn check_classes_are_told_apart() {
        assert!(is_check_class(&ClassId(PROGRAMME.into())));
        assert!(is_check_class(&ClassId(format!("{ECHO_PREFIX}00ff"))));
        assert!(!is_check_class(&ClassId("check".into())));
        assert!(!ClassId::is_valid(PROGRAMME), "no school class can take a check class's id");
    }
}
