//! The studio's control API on 127.0.0.1: read the state, switch the layout.

use crate::class_link::ClassLinkStats;
use crate::layout::{CAMERA, DOCUMENT, SCREEN};
use crate::publisher::PublisherStats;
use crate::return_audio::ReturnAudioStats;
use crate::{Layout, Pipeline};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// State shared by the handlers.
#[derive(Clone)]
pub struct Control {
    /// The pipeline.
    pub pipeline: Arc<Pipeline>,
    /// Publisher counters.
    pub stats: Arc<PublisherStats>,
    /// Return-audio counters.
    pub return_audio: Arc<ReturnAudioStats>,
    /// Class-link counters.
    pub class_link: Arc<ClassLinkStats>,
}

impl Control {
    /// The control state of a running studio.
    pub fn of(studio: &crate::Studio) -> Control {
        Control {
            pipeline: studio.pipeline().clone(),
            stats: studio.stats.clone(),
            return_audio: studio.return_audio.clone(),
            class_link: studio.class_link.clone(),
        }
    }
}

/// `GET /state`
#[derive(Debug, Serialize, Deserialize)]
pub struct StudioState {
    /// Current layout.
    pub layout: Layout,
    /// Publishing now.
    pub connected: bool,
    /// WHIP sessions so far.
    pub sessions: u64,
    /// Video frames sent.
    pub video_frames: u64,
    /// Latest bandwidth estimate, bit/s.
    pub estimate_bps: u64,
    /// Capture → wire latency of the top layer over the recent frames, microseconds: p50, p95.
    pub latency_us: Option<(u64, u64)>,
    /// Pupil-voice (floor) packets received for the classroom speaker.
    pub return_audio_packets: u64,
    /// Connected to the class events (remote layout switching).
    pub class_link: bool,
    /// Whether each input delivers: camera, document camera, screen (false: its slate shows).
    pub inputs: [bool; 3],
    /// Lead-input frames that came after their mix slot had gone out (repeated frames).
    #[serde(default)]
    pub late_lead_frames: u64,
}

/// `POST /layout` body.
#[derive(Debug, Serialize, Deserialize)]
pub struct SetLayout {
    /// The new layout.
    pub layout: String,
}

async fn state(State(c): State<Control>) -> Json<StudioState> {
    Json(StudioState {
        layout: c.pipeline.layout(),
        connected: c.stats.connected.load(Ordering::Relaxed),
        sessions: c.stats.sessions.load(Ordering::Relaxed),
        video_frames: c.stats.video_frames.load(Ordering::Relaxed),
        estimate_bps: c.stats.estimate_bps.load(Ordering::Relaxed),
        latency_us: {
            let mut v = c.stats.latency_us.lock().unwrap_or_else(|e| e.into_inner()).clone();
            v.sort_unstable();
            (!v.is_empty()).then(|| (v[v.len() / 2], v[(v.len() * 95 / 100).min(v.len() - 1)]))
        },
        return_audio_packets: c.return_audio.packets.load(Ordering::Relaxed),
        class_link: c.class_link.connected.load(Ordering::Relaxed),
        inputs: c.pipeline.mixer().health(),
        late_lead_frames: c.pipeline.mixer().late_lead_frames(),
    })
}

async fn layout(
    State(c): State<Control>,
    Json(body): Json<SetLayout>,
) -> Result<Json<StudioState>, (StatusCode, String)> {
    let l: Layout = body.layout.parse().map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    c.pipeline.set_layout(l);
    Ok(state(State(c)).await)
}

/// `POST /inputs/{camera|document|screen}/unplug`: stop an input as if its device had been
/// unplugged (rehearsals, tests); its slate shows and it is reopened every 2 s.
async fn unplug(State(c): State<Control>, Path(name): Path<String>) -> Result<Json<StudioState>, (StatusCode, String)> {
    let i = match name.as_str() {
        "camera" => CAMERA,
        "document" => DOCUMENT,
        "screen" => SCREEN,
        _ => return Err((StatusCode::NOT_FOUND, format!("no input '{name}' (camera, document, screen)"))),
    };
    c.pipeline.mixer().unplug(i);
    Ok(state(State(c)).await)
}

/// The control router.
pub fn router(control: Control) -> Router {
    Router::new()
        .route("/state", get(state))
        .route("/layout", post(layout))
        .route("/inputs/{name}/unplug", post(unplug))
        .with_state(control)
}
