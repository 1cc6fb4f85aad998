//! Shared state of the HTTP side.

use crate::Problem;
use crate::auth::TokenSigner;
use crate::classes::ClassRegistry;
use ardoise_net::{MediaEvent, MediaServer};
use ardoise_proto::{Claims, ClassId, ClassInfo, ClassState, ParticipantId};
use axum::http::{HeaderMap, header};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::debug;

/// Whether a media resource was made by WHIP or WHEP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Publishing.
    Whip,
    /// Playing, with the pupil's layer choice if any.
    Whep(Option<ardoise_sfu::LayerChoice>),
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
        let claims = self.tokens.verify(token.trim()).map_err(|e| Problem::unauthorized(e.to_string()))?;
        if self.revoked.lock().unwrap_or_else(|e| e.into_inner()).contains(&claims.sub) {
            return Err(Problem::unauthorized("this token was revoked"));
        }
        Ok(claims)
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
                    self.classes.set_state(&class, if live { ClassState::Live } else { ClassState::Open })
                }
                MediaEvent::Left(_, pid) => {
                    self.resources.lock().unwrap_or_else(|e| e.into_inner()).remove(&pid);
                }
                MediaEvent::Connected(..) => {}
            }
        }
    }
}
