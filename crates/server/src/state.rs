//! Shared state of the HTTP side.

use crate::Problem;
use crate::auth::TokenSigner;
use crate::class_hub::ClassHub;
use crate::classes::ClassRegistry;
use ardoise_net::{MediaEvent, MediaServer};
use ardoise_proto::{Claims, ClassId, ClassInfo, ClassState, ParticipantId, Role};
use axum::http::{HeaderMap, header};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{debug, info};

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
}

/// Everything the handlers need.
pub struct AppState {
    /// Token signer/verifier.
    pub tokens: TokenSigner,
    /// Classes.
    pub classes: ClassRegistry,
    /// Media workers.
    pub media: MediaServer,
    /// Live WHIP/WHEP resources by participant id.
    pub resources: Mutex<HashMap<ParticipantId, Resource>>,
    /// Revoked token subjects (removed pupils).
    pub revoked: Mutex<std::collections::HashSet<String>>,
    /// Hands, chat, floor, lock, layout of every class, and its participants' sockets.
    pub hub: ClassHub,
    /// When the server started (admin view).
    pub started: std::time::Instant,
    /// Largest request body.
    pub max_body: usize,
    next_participant: AtomicU64,
}

/// The state as handlers receive it.
pub type SharedState = Arc<AppState>;

impl AppState {
    /// Assemble the state.
    pub fn new(tokens: TokenSigner, classes: ClassRegistry, media: MediaServer, max_body: usize) -> Self {
        AppState {
            tokens,
            classes,
            media,
            resources: Mutex::new(HashMap::new()),
            revoked: Mutex::new(Default::default()),
            hub: ClassHub::default(),
            started: std::time::Instant::now(),
            max_body,
            next_participant: AtomicU64::new(1),
        }
    }

    /// A fresh participant id.
    pub fn next_participant(&self) -> ParticipantId {
        ParticipantId(self.next_participant.fetch_add(1, Ordering::Relaxed))
    }

    /// The verified claims of the request's bearer token (401 otherwise).
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Claims, Problem> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| Problem::unauthorized("an Authorization: Bearer token is required"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or_else(|| Problem::unauthorized("the Authorization header must be 'Bearer <token>'"))?;
        self.verify_token(token.trim())
    }

    /// The verified claims of a raw token (401 when bad, expired or revoked).
    pub fn verify_token(&self, token: &str) -> Result<Claims, Problem> {
        let claims = self.tokens.verify(token).map_err(|e| Problem::unauthorized(e.to_string()))?;
        if self.revoked.lock().unwrap_or_else(|e| e.into_inner()).contains(&claims.sub) {
            return Err(Problem::unauthorized("this token was revoked"));
        }
        Ok(claims)
    }

    /// Refuse the tokens of subject `sub` from now on (a removed pupil).
    pub fn revoke(&self, sub: &str) {
        self.revoked.lock().unwrap_or_else(|e| e.into_inner()).insert(sub.to_owned());
    }

    /// The WHIP (and, unless `whip_only`, WHEP) sessions `owner` holds in `class`.
    pub fn sessions_of(&self, class: &ClassId, owner: &str, whip_only: bool) -> Vec<ParticipantId> {
        let map = self.resources.lock().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .filter(|(_, r)| r.class == *class && r.owner == owner && (!whip_only || r.endpoint == Endpoint::Whip))
            .map(|(pid, _)| *pid)
            .collect()
    }

    /// Close the sessions of `owner` in `class` (floor revoked: WHIP only; removed: all).
    pub async fn close_sessions(&self, class: &ClassId, owner: &str, whip_only: bool) {
        for pid in self.sessions_of(class, owner, whip_only) {
            self.resources.lock().unwrap_or_else(|e| e.into_inner()).remove(&pid);
            if let Err(e) = self.media.leave(class, pid).await {
                debug!(class = %class, participant = %pid, "close session: {e}");
            }
        }
    }

    /// End a class: refuse joins, disconnect its media, tell and close its sockets.
    pub fn end_class(&self, class: &ClassId, by: Role) {
        self.classes.set_state(class, ClassState::Ended);
        self.media.end_class(class);
        self.hub.end(class);
        self.resources.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, r| r.class != *class);
        info!(class = %class, by = %by, "class ended");
    }

    /// The class `id`, which must exist and not be ended (404 / 410).
    pub fn open_class(&self, id: &str) -> Result<ClassInfo, Problem> {
        let info = self
            .classes
            .get(&ClassId(id.to_owned()))
            .ok_or_else(|| Problem::not_found(format!("no class '{id}'")))?;
        if info.state == ClassState::Ended {
            return Err(Problem::new(axum::http::StatusCode::GONE, format!("class '{id}' has ended")));
        }
        Ok(info)
    }

    /// Apply what the media workers report.
    pub async fn follow_media_events(self: Arc<Self>, mut events: UnboundedReceiver<MediaEvent>) {
        while let Some(ev) = events.recv().await {
            debug!(?ev, "media event");
            match ev {
                MediaEvent::Live(class, live) => {
                    if self.classes.get(&class).is_some_and(|c| c.state != ClassState::Ended) {
                        self.classes.set_state(&class, if live { ClassState::Live } else { ClassState::Open });
                        self.hub.set_live(&class, live);
                    }
                }
                MediaEvent::Left(_, pid) => {
                    self.resources.lock().unwrap_or_else(|e| e.into_inner()).remove(&pid);
                }
                MediaEvent::Connected(..) => {}
                MediaEvent::AudioOnly(class, pid, audio_only) => {
                    let owner = self.resources.lock().unwrap_or_else(|e| e.into_inner()).get(&pid).map(|r| r.owner.clone());
                    if let Some(owner) = owner {
                        self.hub.tell(&class, &owner, &ardoise_proto::ServerEvent::Video { audio_only, reason: audio_only.then(|| "weak_connection".into()) });
                    }
                }
            }
        }
    }
}
