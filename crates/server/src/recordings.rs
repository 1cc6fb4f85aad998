//! Recordings of classes (issue 14, first part): the teacher starts and stops a recording;
//! the SFU copies the programme (every layer and the audio, never a pupil's voice or camera)
//! to an `ardoise_recorder::Writer` thread, which writes segmented WebM under
//! `<data.dir>/recordings/<class>/<recording>/`, next to a `recording.json` that describes it.
//!
//! Rules:
//! - only a class with media can be recorded (409 otherwise); one recording per class;
//! - the list and the files are for the class's teacher, an admin, and the class's pupils;
//! - a recording id and a file name are checked against their patterns before any path is
//!   made (404 otherwise: no traversal).

use crate::Problem;
use crate::state::SharedState;
use ardoise_proto::{ClassId, Role};
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use tower::ServiceExt;
use tracing::{info, warn};

/// One file of a recording.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordedFile {
    /// File name.
    pub name: String,
    /// Size, bytes.
    pub size: u64,
    /// Where to fetch it (HTTP Range supported).
    pub url: String,
}

/// One video layer of a recording, with the audio in each file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordedLayer {
    /// Quality rank, 0 = lowest.
    pub rank: usize,
    /// Its segments, in order.
    pub files: Vec<RecordedFile>,
}

/// What `GET /api/classes/{id}/recordings` lists.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordingInfo {
    /// Recording id.
    pub id: String,
    /// Class id.
    pub class: String,
    /// Title (the class's title when it started).
    pub title: String,
    /// Start, ms since the Unix epoch.
    pub started_ms: i64,
    /// Length, seconds (0 while recording).
    pub duration_s: f64,
    /// `recording`, `ready` or `failed`.
    pub state: String,
    /// Its layers.
    pub layers: Vec<RecordedLayer>,
}

struct Active {
    info: RecordingInfo,
    writer: std::thread::JoinHandle<anyhow::Result<ardoise_recorder::Written>>,
}

/// The recordings of a server.
pub struct Recordings {
    root: PathBuf,
    active: Mutex<HashMap<ClassId, Active>>,
}

impl Recordings {
    /// Recordings kept under `root` (`<data.dir>/recordings`).
    pub fn new(root: PathBuf) -> Recordings {
        Recordings { root, active: Mutex::new(HashMap::new()) }
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<ClassId, Active>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dir(&self, class: &ClassId, id: &str) -> PathBuf {
        self.root.join(&class.0).join(id)
    }

    fn save(&self, info: &RecordingInfo) {
        let path = self.dir(&ClassId(info.class.clone()), &info.id).join("recording.json");
        let text = serde_json::to_string_pretty(info).unwrap_or_default();
        if let Err(e) = std::fs::write(&path, text) {
            warn!(path = %path.display(), "recording: cannot write its description: {e}");
        }
    }

    /// Whether `class` is being recorded now.
    pub fn is_recording(&self, class: &ClassId) -> bool {
        self.active().contains_key(class)
    }

    /// The class's recordings, newest first.
    pub fn list(&self, class: &ClassId) -> Vec<RecordingInfo> {
        let mut out: Vec<RecordingInfo> = std::fs::read_dir(self.root.join(&class.0))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("recording.json")).ok())
            .filter_map(|t| serde_json::from_str(&t).ok())
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.started_ms));
        out
    }
}

/// Whether `s` is a recording id (digits) or a segment file name (`layerN-NNNNN.webm`).
fn safe_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

fn safe_file(s: &str) -> bool {
    s.strip_prefix("layer").and_then(|r| r.strip_suffix(".webm")).is_some_and(|r| {
        let (rank, n) = r.split_once('-').unwrap_or(("", ""));
        rank.len() == 1
            && rank.bytes().all(|b| b.is_ascii_digit())
            && n.len() == 5
            && n.bytes().all(|b| b.is_ascii_digit())
    })
}

/// `POST /api/classes/{id}/recording/start` (the class's teacher or an admin).
pub async fn start(
    State(s): State<SharedState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<RecordingInfo>), Problem> {
    let class = ClassId(id);
    let m = crate::teaching::manager(&s, &headers, &class, true, true).await?;
    let title = s.classes.get(&class).map(|c| c.title.clone()).unwrap_or_default();
    if s.recordings.active().contains_key(&class) {
        return Err(Problem::new(StatusCode::CONFLICT, "this class is being recorded already"));
    }
    let started_ms = ardoise_store::now_ms();
    let rec = started_ms.to_string();
    let dir = s.recordings.dir(&class, &rec);
    let writer = ardoise_recorder::Writer::new(&dir, std::time::Instant::now()).map_err(|e| {
        warn!("recording: {e:#}");
        Problem::unavailable("the recorder cannot start (see the server's log)", 30)
    })?;
    let (tx, rx) = std::sync::mpsc::sync_channel(256);
    if s.media.record(&class, Some(tx)).await.is_err() {
        let _ = std::fs::remove_dir(&dir);
        return Err(Problem::new(StatusCode::CONFLICT, "the class has no media yet: start the studio first"));
    }
    let writer = std::thread::Builder::new()
        .name("recorder".into())
        .spawn(move || writer.run(rx))
        .map_err(|_| Problem::unavailable("the recorder cannot start", 30))?;
    let info = RecordingInfo {
        id: rec,
        class: class.0.clone(),
        title,
        started_ms,
        duration_s: 0.0,
        state: "recording".into(),
        layers: Vec::new(),
    };
    s.recordings.save(&info);
    s.recorder.audit(m.actor, "recording.start", format!("class:{class}"), info.id.clone());
    info!(%class, recording = %info.id, "recording started");
    s.hub.set_recording(&class, true);
    s.recordings.active().insert(class, Active { info: info.clone(), writer });
    Ok((StatusCode::CREATED, Json(info)))
}

/// `POST /api/classes/{id}/recording/stop` (the class's teacher or an admin): closes the
/// files and answers the recording's description.
pub async fn stop(
    State(s): State<SharedState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<RecordingInfo>, Problem> {
    let class = ClassId(id);
    let m = crate::teaching::manager(&s, &headers, &class, true, true).await?;
    let Some(active) = s.recordings.active().remove(&class) else {
        return Err(Problem::new(StatusCode::CONFLICT, "this class is not being recorded"));
    };
    // The worker drops its sink (if the room is gone, it already did): the writer ends.
    let _ = s.media.record(&class, None).await;
    s.hub.set_recording(&class, false);
    let written = tokio::task::spawn_blocking(move || active.writer.join()).await;
    let mut info = active.info;
    match written {
        Ok(Ok(Ok(w))) => {
            info.state = "ready".into();
            info.duration_s = (w.duration_s * 10.0).round() / 10.0;
            info.layers = w
                .layers
                .into_iter()
                .map(|(rank, files)| RecordedLayer {
                    rank,
                    files: files
                        .iter()
                        .filter_map(|f| {
                            let name = f.file_name()?.to_str()?.to_owned();
                            let size = std::fs::metadata(f).ok()?.len();
                            let url = format!("/api/classes/{}/recordings/{}/{name}", class.0, info.id);
                            Some(RecordedFile { name, size, url })
                        })
                        .collect(),
                })
                .collect();
        }
        other => {
            warn!(%class, "recording failed: {other:?}");
            info.state = "failed".into();
        }
    }
    s.recordings.save(&info);
    s.recorder.audit(m.actor, "recording.stop", format!("class:{class}"), info.id.clone());
    info!(%class, recording = %info.id, duration_s = info.duration_s, "recording stopped");
    Ok(Json(info))
}

/// Whether the request may see `class`'s recordings: its teacher or an admin (token or
/// login), or one of its pupils (a pupil token of the class).
async fn may_view(s: &SharedState, headers: &HeaderMap, class: &ClassId) -> Result<(), Problem> {
    if s.bearer_present(headers) {
        let claims = s.authenticate(headers)?;
        if claims.role == Role::Pupil {
            return if claims.covers(class) { Ok(()) } else { Err(Problem::forbidden("not a pupil of this class")) };
        }
    }
    crate::teaching::manager(s, headers, class, false, true).await.map(|_| ())
}

/// `GET /api/classes/{id}/recordings`.
pub async fn list(
    State(s): State<SharedState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Vec<RecordingInfo>>, Problem> {
    let class = ClassId(id);
    may_view(&s, &headers, &class).await?;
    Ok(Json(s.recordings.list(&class)))
}

/// `GET /api/classes/{id}/recordings/{rec}/{file}`: one segment, streamed from disk, with
/// HTTP Range (206, 416).
pub async fn file(
    State(s): State<SharedState>,
    Path((id, rec, name)): Path<(String, String, String)>,
    req: Request,
) -> Result<Response, Problem> {
    let class = ClassId(id);
    may_view(&s, req.headers(), &class).await?;
    if !safe_id(&rec) || !safe_file(&name) {
        return Err(Problem::not_found("no such recording file"));
    }
    let path = s.recordings.dir(&class, &rec).join(&name);
    if !path.is_file() {
        return Err(Problem::not_found("no such recording file"));
    }
    let served = tower_http::services::ServeFile::new_with_mime(&path, &"video/webm".parse().expect("a mime type"))
        .oneshot(req)
        .await
        .map_err(|_| Problem::not_found("no such recording file"))?;
    Ok(served.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ids_and_segment_names_make_paths() {
        assert!(safe_id("1733300000000"));
        assert!(!safe_id("../etc") && !safe_id("") && !safe_id("12a"));
        assert!(safe_file("layer2-00000.webm"));
        for bad in ["../x.webm", "layer2-00000.webm/..", "layer22-00000.webm", "layer2-0000.webm", "recording.json"] {
            assert!(!safe_file(bad), "{bad}");
        }
    }
}
