//! Shared state of the HTTP side: the media sessions (WHIP/WHEP resources) and the rules
//! that admit them, the classes, the class events, the limits and the token signer.
//!
//! Admission rules for a media session (checked and reserved under one lock, before any
//! work reaches a media worker):
//! - the server holds at most `limits.sessions`, a client address `limits.sessions_per_ip`;
//! - a token subject holds at most `limits.sessions_per_token` in a class: a new one closes
//!   its oldest, so a reconnecting tablet is never refused;
//! - a class holds at most `media.max_peers_per_class` connected sessions and
//!   `limits.pending_per_class` connecting ones; the class's publisher (the teacher's WHIP)
//!   is never counted and never refused for these;
//! - a node's relay of a class (`crate::cascade`) counts only against `limits.sessions`;
//! - a refusal is a 429 or 503 with `Retry-After` and changes nothing.

use crate::Problem;
use crate::auth::{TokenSigner, unix_now};
use crate::class_hub::{ClassHub, TokenFacts, member};
use crate::classes::ClassRegistry;
use crate::limits::Limits;
use crate::revocations::RevocationList;
use ardoise_net::{MediaEvent, MediaServer, WorkerSnapshot};
use ardoise_proto::{Claims, ClassId, ClassInfo, ClassState, ClientKind, ParticipantId, Role};
use axum::http::{HeaderMap, StatusCode, header};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{debug, info, warn};

/// Whether a media resource was made by WHIP or WHEP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Publishing.
    Whip,
    /// Playing, with the pupil's choice if any (adaptive with a cap, or a fixed layer).
    Whep(Option<ardoise_sfu::VideoChoice>),
}

/// A WHIP or WHEP session resource.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Its class.
    pub class: ClassId,
    /// Which endpoint made it.
    pub endpoint: Endpoint,
    /// Bumped at each ICE restart (the ETag).
    pub generation: u32,
    /// Token subject of its creator: only they (or the class's teacher, or an admin) may change it.
    pub owner: String,
    /// Its creator's role.
    pub role: Role,
    /// Its creator's token key version and expiry.
    pub token: TokenFacts,
    /// The client address that made it.
    pub ip: IpAddr,
    /// ICE + DTLS established.
    pub connected: bool,
    /// The class's publisher (teacher WHIP): it has a reserved place.
    pub class_publisher: bool,
    /// When it was made (the oldest of a token's sessions is replaced first).
    pub opened: Instant,
    /// Announced to the class (the negotiation succeeded).
    pub announced: bool,
    /// How its media travels, once known.
    pub transport: Option<ardoise_proto::Transport>,
}

/// A session admitted and reserved, before its negotiation.
#[derive(Debug)]
pub struct Reservation {
    /// Its participant id.
    pub pid: ParticipantId,
    /// Older sessions of the same token to close once this one is negotiated.
    pub replaces: Vec<ParticipantId>,
}

/// The last workers' snapshot, shared by `/metrics` and the admin API: a flood of requests
/// asks the media threads at most once per [`SNAPSHOT_MAX_AGE`].
#[derive(Default)]
pub struct SnapshotCache {
    last: tokio::sync::Mutex<Option<(Instant, Arc<Vec<WorkerSnapshot>>)>>,
}

/// Age after which the workers are asked again.
pub const SNAPSHOT_MAX_AGE: Duration = Duration::from_millis(500);
/// How often the signing keys are re-read from the database (another process rotated them).
pub const KEYS_RELOAD_EVERY: Duration = Duration::from_secs(5);
/// How often the retention limits are enforced (and once at start).
pub const RETENTION_SWEEP_EVERY: Duration = Duration::from_secs(3600);

impl SnapshotCache {
    /// The workers' counters, at most [`SNAPSHOT_MAX_AGE`] old.
    pub async fn get(&self, media: &MediaServer) -> Arc<Vec<WorkerSnapshot>> {
        let mut last = self.last.lock().await;
        if let Some((at, snap)) = last.as_ref()
            && at.elapsed() < SNAPSHOT_MAX_AGE
        {
            return snap.clone();
        }
        let snap = Arc::new(media.snapshot().await);
        *last = Some((Instant::now(), snap.clone()));
        snap
    }
}

/// Everything the handlers need.
pub struct AppState {
    /// Token signer/verifier (with the revocation list).
    pub tokens: TokenSigner,
    /// Classes.
    pub classes: ClassRegistry,
    /// Media workers.
    pub media: MediaServer,
    /// Live WHIP/WHEP resources by participant id.
    pub resources: Mutex<HashMap<ParticipantId, Resource>>,
    /// Hands, chat, floor, lock, layout of every class, and its participants' sockets.
    pub hub: ClassHub,
    /// Limits on every door.
    pub limits: Limits,
    /// Connected sessions per class (the class's publisher apart).
    pub max_peers_per_class: usize,
    /// Networks that read `/metrics` without a token.
    pub metrics_allow: Vec<ipnet::IpNet>,
    /// Secret salt of the opaque class labels in `/metrics`.
    pub metrics_salt: u64,
    /// The workers' last counters.
    pub snapshots: SnapshotCache,
    /// The listener speaks HTTPS (pages get HSTS, links use https).
    pub tls: bool,
    /// The origin of printed links and QR codes (`http.public_names`), if set.
    pub public_origin: Option<String>,
    /// TURN, when configured (its coturn child stops with the state).
    pub turn: Option<crate::turn::Turn>,
    /// The database (never on the media path).
    pub store: ardoise_store::Store,
    /// The queue of attendance and audit records.
    pub recorder: crate::records::Recorder,
    /// Logins: hours, limits.
    pub accounts: crate::config::AccountsConfig,
    /// Retention of records.
    pub retention: crate::config::RetentionConfig,
    /// When the server started (admin view).
    pub started: std::time::Instant,
    /// Largest request body.
    pub max_body: usize,
    /// `media.fault_injection`: `POST /api/admin/faults` answers (tests only).
    pub fault_injection: bool,
    /// Recordings of classes (`<data.dir>/recordings`).
    pub recordings: crate::recordings::Recordings,
    /// The pre-class check: its test programme, verdict counts, echo classes.
    pub check: crate::check::CheckDesk,
    /// `[check]` settings.
    pub check_config: crate::config::CheckConfig,
    /// This node's cluster, when it is one of several (`[cluster]`).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Classes larger than a node: their edges (this node their owner), the classes this
    /// node relays (an edge).
    pub cascade: crate::cascade::Cascade,
    /// The next session's id. Each start of the server begins at a random point of a space
    /// of 2^48 (and ids stay below 2^53, exact in JavaScript): a client that holds an id from
    /// before a restart, or from another node (the studio's DELETE of its old session, a
    /// page's close on reconnect), never names a new session with it.
    next_participant: AtomicU64,
}

/// The state as handlers receive it.
pub type SharedState = Arc<AppState>;

impl AppState {
    /// Assemble the state.
    pub fn new(
        tokens: TokenSigner,
        classes: ClassRegistry,
        media: MediaServer,
        max_body: usize,
        limits: Limits,
        store: ardoise_store::Store,
        config: &crate::Config,
    ) -> Self {
        if config.media.fault_injection {
            warn!(
                "media.fault_injection is ON: admins can make media workers panic (tests only, never with real classes)"
            );
        }
        let recorder = crate::records::Recorder::start(store.clone());
        let hub = ClassHub::default();
        hub.set_recorder(recorder.clone());
        let link_signer = tokens.clone();
        AppState {
            store,
            recorder,
            accounts: config.accounts,
            retention: config.retention,
            tokens,
            classes,
            media,
            resources: Mutex::new(HashMap::new()),
            hub,
            max_peers_per_class: 500,
            metrics_allow: Vec::new(),
            metrics_salt: rand::random(),
            snapshots: SnapshotCache::default(),
            tls: false,
            public_origin: None,
            turn: None,
            started: std::time::Instant::now(),
            max_body,
            fault_injection: config.media.fault_injection,
            recordings: crate::recordings::Recordings::new(
                match config.recording.dir.as_str() {
                    "" => config.data.dir.join("recordings"),
                    dir => std::path::PathBuf::from(dir),
                },
                config.recording.clone(),
                link_signer,
            ),
            check: crate::check::CheckDesk::default(),
            check_config: config.check,
            cluster: None,
            cascade: Default::default(),
            limits,
            next_participant: AtomicU64::new(rand::random_range(1 << 32..1 << 48)),
        }
    }

    /// A fresh participant id.
    pub fn next_participant(&self) -> ParticipantId {
        ParticipantId(self.next_participant.fetch_add(1, Ordering::Relaxed))
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<ParticipantId, Resource>> {
        self.resources.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bearer token of the request, if any (not verified).
    pub fn bearer(headers: &HeaderMap) -> Option<&str> {
        headers
            .get(header::AUTHORIZATION)?
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
    }

    /// Whether the request carries credentials in `Authorization` (then they decide, not a
    /// session cookie).
    pub fn bearer_present(&self, headers: &HeaderMap) -> bool {
        headers.contains_key(header::AUTHORIZATION)
    }

    /// The verified claims of the request's bearer token (401 otherwise).
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Claims, Problem> {
        if headers.get(header::AUTHORIZATION).is_none() {
            return Err(Problem::unauthorized("an Authorization: Bearer token is required"));
        }
        let token = Self::bearer(headers)
            .ok_or_else(|| Problem::unauthorized("the Authorization header must be 'Bearer <token>'"))?;
        self.verify_token(token)
    }

    /// The verified claims of a raw token (401 when bad, expired or revoked).
    pub fn verify_token(&self, token: &str) -> Result<Claims, Problem> {
        self.tokens.verify(token).map_err(|e| Problem::unauthorized(e.to_string()))
    }

    /// Refuse the tokens of subject `sub` until `until` (a removed pupil), on disk too.
    pub fn revoke(&self, sub: &str, until: u64) {
        let until = if until == 0 { unix_now() + self.tokens.ttl_secs() } else { until };
        if let Err(e) = self.tokens.revocations().revoke_subject(sub, until, unix_now()) {
            warn!("cannot write the revocation list: {e} (the revocation holds until restart)");
        }
    }

    /// Admit a media session of `claims` in `class` from `ip`, and reserve its place.
    pub fn reserve_session(
        &self,
        claims: &Claims,
        class: &ClassId,
        endpoint: Endpoint,
        ip: IpAddr,
        class_publisher: bool,
    ) -> Result<Reservation, Problem> {
        let l = &self.limits.config;
        let mut map = self.sessions();
        // A node's relay of a class (see `cascade`): the server's own cap only; its
        // sessions are not a pupil's, and are never replaced by each other.
        let relay = crate::cascade::is_relay(&claims.sub);
        let mut own: Vec<(Instant, ParticipantId)> = map
            .iter()
            .filter(|(_, r)| r.class == *class && r.owner == claims.sub)
            .map(|(pid, r)| (r.opened, *pid))
            .collect();
        own.sort();
        if relay {
            own.clear();
        }
        let replaces: Vec<ParticipantId> =
            own.iter().take((own.len() + 1).saturating_sub(l.sessions_per_token)).map(|(_, p)| *p).collect();
        let staying = |pid: &ParticipantId| !replaces.contains(pid);
        if map.keys().filter(|p| staying(p)).count() >= l.sessions {
            return Err(Problem::unavailable("the server holds as many sessions as it may; try again soon", 10));
        }
        // The class's publisher (the studio in a classroom behind the school's address) is
        // neither counted nor refused by its address's limit: its token's limit applies.
        if !relay
            && !class_publisher
            && map.iter().filter(|(p, r)| r.ip == ip && !r.class_publisher && staying(p)).count() >= l.sessions_per_ip
        {
            return Err(crate::limits::too_many("too many sessions from this address", Duration::from_secs(10)));
        }
        if !class_publisher && !relay {
            let in_class = || map.values().filter(|r| r.class == *class && !r.class_publisher);
            if own.is_empty() && in_class().filter(|r| r.connected).count() >= self.max_peers_per_class {
                return Err(Problem::unavailable(
                    format!("this class is full ({} connections)", self.max_peers_per_class),
                    30,
                ));
            }
            if in_class().filter(|r| !r.connected).count() >= l.pending_per_class {
                return Err(Problem::unavailable("too many sessions of this class are connecting; try again", 2));
            }
        }
        let pid = self.next_participant();
        map.insert(
            pid,
            Resource {
                class: class.clone(),
                endpoint,
                generation: 0,
                owner: claims.sub.clone(),
                role: claims.role,
                token: TokenFacts { kv: claims.kv, exp: claims.exp },
                ip,
                connected: false,
                class_publisher,
                opened: Instant::now(),
                announced: false,
                transport: None,
            },
        );
        Ok(Reservation { pid, replaces })
    }

    /// The negotiation of a reserved session succeeded: show it to the class.
    pub fn session_opened(&self, pid: ParticipantId, claims: &Claims) {
        let class = {
            let mut map = self.sessions();
            let Some(r) = map.get_mut(&pid) else { return };
            r.announced = true;
            r.class.clone()
        };
        self.classes.touch(&class);
        if crate::cascade::is_relay(&claims.sub) {
            // A node's relay: nobody in the class sees it.
            return;
        }
        let m = member(&claims.sub, claims.role, claims.name.as_deref(), ClientKind::Player);
        self.hub.media_opened(&class, m, TokenFacts { kv: claims.kv, exp: claims.exp });
    }

    /// A copy of session `pid`'s record.
    pub fn session_of(&self, pid: ParticipantId) -> Option<Resource> {
        self.sessions().get(&pid).cloned()
    }

    /// Every session in `class`.
    pub fn sessions_in(&self, class: &ClassId) -> Vec<ParticipantId> {
        self.sessions().iter().filter(|(_, r)| r.class == *class).map(|(pid, _)| *pid).collect()
    }

    /// Pupils' sessions on this node, in every class.
    pub fn pupils_here(&self) -> usize {
        self.sessions().values().filter(|r| r.role == Role::Pupil).count()
    }

    /// Pupils' sessions of `class` on this node.
    pub fn pupils_in(&self, class: &ClassId) -> usize {
        self.sessions().values().filter(|r| r.class == *class && r.role == Role::Pupil).count()
    }

    /// Forget a session (left, deleted, replaced, refused); idempotent.
    pub fn forget_session(&self, pid: ParticipantId) -> Option<Resource> {
        let r = self.sessions().remove(&pid)?;
        if r.announced {
            self.hub.media_closed(&r.class, &r.owner);
        }
        Some(r)
    }

    /// The WHIP (and, unless `whip_only`, WHEP) sessions `owner` holds in `class`.
    pub fn sessions_of(&self, class: &ClassId, owner: &str, whip_only: bool) -> Vec<ParticipantId> {
        self.sessions()
            .iter()
            .filter(|(_, r)| r.class == *class && r.owner == owner && (!whip_only || r.endpoint == Endpoint::Whip))
            .map(|(pid, _)| *pid)
            .collect()
    }

    /// Close these sessions: forget them and disconnect their peers.
    pub async fn close_pids(&self, pids: impl IntoIterator<Item = ParticipantId>) {
        for pid in pids {
            if let Some(r) = self.forget_session(pid)
                && let Err(e) = self.media.leave(&r.class, pid).await
            {
                debug!(class = %r.class, participant = %pid, "close session: {e}");
            }
        }
    }

    /// Close the sessions of `owner` in `class` (floor revoked: WHIP only; removed: all).
    pub async fn close_sessions(&self, class: &ClassId, owner: &str, whip_only: bool) {
        self.close_pids(self.sessions_of(class, owner, whip_only)).await;
    }

    /// Close every session and class-events connection whose token `list` refuses.
    pub async fn apply_revocations(&self, list: &RevocationList) {
        let now = unix_now();
        let refused = |sub: &str, role: Role, t: TokenFacts| {
            list.refuses(
                &Claims { sub: sub.to_owned(), role, class: None, name: None, exp: t.exp, iat: 0, kv: t.kv },
                now,
            )
        };
        let closed = self.hub.close_refused(refused);
        let pids: Vec<ParticipantId> =
            self.sessions().iter().filter(|(_, r)| refused(&r.owner, r.role, r.token)).map(|(p, _)| *p).collect();
        if !closed.is_empty() || !pids.is_empty() {
            info!(connections = closed.len(), sessions = pids.len(), "revoked tokens disconnected");
        }
        self.close_pids(pids).await;
    }

    /// End a class: disconnect its media, tell and close its sockets. A class a logged-in
    /// teacher owns lasts: only its session ends, and it opens again for the next one. Any
    /// other class ends for good and refuses joins.
    pub fn end_class(&self, class: &ClassId, by: Role) {
        let lasts = self.classes.owner(class).is_some_and(|o| o.teacher.is_some());
        if lasts {
            self.classes.set_state(class, ClassState::Open);
            self.recorder.send(crate::records::Record::SessionEnded(class.clone()));
        } else {
            self.classes.set_state(class, ClassState::Ended);
            self.recorder.send(crate::records::Record::ClassEnded(class.clone()));
        }
        self.media.end_class(class);
        self.hub.end(class);
        self.sessions().retain(|_, r| r.class != *class);
        info!(class = %class, by = %by, session_only = lasts, "class ended");
    }

    /// Another node owns `class` now: its media and sessions here stop, its pages are told
    /// `moved` (they load again, through the owner).
    pub fn hand_over(&self, class: &ClassId) {
        self.media.end_class(class);
        self.hub.moved(class);
        self.sessions().retain(|_, r| r.class != *class);
    }

    /// The class `id`, which must exist and not be ended (404 / 410).
    pub fn open_class(&self, id: &str) -> Result<ClassInfo, Problem> {
        let info = self.classes.get(&ClassId(id.to_owned())).ok_or_else(|| Problem::not_found("no such class"))?;
        if info.state == ClassState::Ended {
            return Err(Problem::new(StatusCode::GONE, "this class has ended"));
        }
        Ok(info)
    }

    /// An opaque, stable label for `class` in `/metrics` (class ids are not published).
    pub fn metrics_label(&self, class: &ClassId) -> String {
        use std::hash::{BuildHasher, Hasher};
        let mut h =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().build_hasher();
        h.write_u64(self.metrics_salt);
        h.write(class.0.as_bytes());
        format!("c{:08x}", h.finish() as u32)
    }

    /// Apply what the media workers report.
    pub async fn follow_media_events(self: Arc<Self>, mut events: UnboundedReceiver<MediaEvent>) {
        while let Some(ev) = events.recv().await {
            debug!(?ev, "media event");
            match ev {
                MediaEvent::Live(class, live) => {
                    // (A check class is no class of the school: no session row, no recording.)
                    let school = !crate::check::is_check_class(&class);
                    if live && school {
                        self.recorder.send(crate::records::Record::ClassLive(class.clone()));
                    }
                    if self.classes.get(&class).is_some_and(|c| c.state != ClassState::Ended) {
                        self.classes.set_state(&class, if live { ClassState::Live } else { ClassState::Open });
                        self.hub.set_live(&class, live);
                    }
                    // The class's policy records it from the moment it is live.
                    if live
                        && school
                        && self.classes.policies(&class).recording
                        && !self.recordings.is_recording(&class)
                    {
                        tokio::spawn(crate::recordings::record_by_policy(self.clone(), class.clone()));
                    }
                }
                MediaEvent::Left(class, pid) => {
                    self.media.participant_left(&class, pid);
                    self.forget_session(pid);
                }
                MediaEvent::Connected(_, pid) => {
                    if let Some(r) = self.sessions().get_mut(&pid) {
                        r.connected = true;
                    }
                }
                MediaEvent::Transport(class, pid, transport) => {
                    let owner = self.sessions().get_mut(&pid).map(|r| {
                        r.transport = Some(transport);
                        r.owner.clone()
                    });
                    if let Some(owner) = owner {
                        self.hub.media_transport(&class, &owner, transport);
                    }
                }
                MediaEvent::FanOutLost(class, pids) => {
                    // Only these pupils reconnect (their pages), not the class.
                    let owners: std::collections::HashSet<String> = {
                        let sessions = self.sessions();
                        pids.iter().filter_map(|p| sessions.get(p).map(|r| r.owner.clone())).collect()
                    };
                    warn!(class = %class, pupils = owners.len(), "a class's fan-out worker was replaced; its pupils there reconnect");
                    self.hub.media_lost_for(&class, &owners);
                }
                MediaEvent::WorkerRestarted { worker, classes } => {
                    warn!(worker, classes = classes.len(), "a media worker was replaced; its classes reconnect");
                    self.media.worker_restarted(worker);
                    for class in &classes {
                        self.hub.media_lost(class);
                    }
                }
                MediaEvent::AudioOnly(class, pid, audio_only) => {
                    let owner = self.sessions().get(&pid).map(|r| r.owner.clone());
                    if let Some(owner) = owner {
                        self.hub.tell(
                            &class,
                            &owner,
                            &ardoise_proto::ServerEvent::Video {
                                audio_only,
                                reason: audio_only.then(|| "weak_connection".into()),
                            },
                        );
                    }
                }
            }
        }
    }

    /// Enforce the retention of `[retention]`: attendance, audit entries, expired logins and
    /// revocations older than their limit are deleted, and recordings past their deletion
    /// date (`[recording]`). Returns the rows deleted.
    pub async fn sweep_retention(&self) -> u64 {
        let now = ardoise_store::now_ms();
        let day = 86_400_000i64;
        let r = self.retention;
        let results = [
            ("attendance", self.store.sweep_attendance(now - r.attendance_days as i64 * day).await),
            ("audit", self.store.sweep_audit(now - r.audit_days as i64 * day).await),
            ("logins", self.store.prune_logins().await),
            ("revocations", self.store.sweep_revocations(now).await),
        ];
        let mut total = self.recordings.sweep(&self.store, now).await;
        for (what, res) in results {
            match res {
                Ok(n) => {
                    total += n;
                    if n > 0 {
                        info!(rows = n, "retention: {what} swept");
                    }
                }
                Err(e) => warn!("retention sweep of {what}: {e}"),
            }
        }
        total
    }

    /// Housekeeping every few seconds: re-read the revocation list when another process
    /// changed it, forget idle rate-limit buckets, prune ended and unused classes.
    pub async fn housekeeping(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_prune = Instant::now();
        let mut last_sweep: Option<Instant> = None;
        let mut last_keys = Instant::now();
        loop {
            tick.tick().await;
            if last_keys.elapsed() >= KEYS_RELOAD_EVERY {
                last_keys = Instant::now();
                match self.tokens.reload_keys(&self.store).await {
                    Ok(true) => info!(kid = %self.tokens.current_kid(), "signing keys rotated"),
                    Ok(false) => {}
                    Err(e) => warn!("signing keys: {e}"),
                }
            }
            match self.tokens.revocations().reload_if_changed() {
                Ok(Some(list)) => self.apply_revocations(&list).await,
                Ok(None) => {}
                Err(e) => warn!("cannot read the revocation list: {e}"),
            }
            if last_sweep.is_none_or(|t| t.elapsed() >= RETENTION_SWEEP_EVERY) {
                last_sweep = Some(Instant::now());
                let this = self.clone();
                tokio::spawn(async move { this.sweep_retention().await });
            }
            if last_prune.elapsed() >= Duration::from_secs(60) {
                last_prune = Instant::now();
                self.limits.forget_idle();
                let l = self.limits.config;
                let idle = self.classes.prune(
                    Instant::now(),
                    Duration::from_secs(l.ended_class_retention_mins * 60),
                    Duration::from_secs(l.idle_class_hours * 3600),
                    |c| self.hub.has_anyone(c) || self.sessions().values().any(|r| r.class == *c),
                );
                for c in idle {
                    self.recorder.send(crate::records::Record::ClassEnded(c.clone()));
                    self.media.end_class(&c);
                    self.hub.end(&c);
                    debug!(class = %c, "unused class pruned");
                }
            }
        }
    }
}
