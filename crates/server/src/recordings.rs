//! Recordings of classes (issue 14): the teacher starts and stops a recording; the SFU
//! copies the programme (every layer and the audio, never a pupil's voice or camera) to an
//! `ardoise_recorder::Writer` thread, which writes segmented WebM under
//! `<[recording] dir>/<class>/<recording>/` (default `<data.dir>/recordings`). The database
//! describes each recording (`ardoise_store::RecordingRow`): title, state, length,
//! publication, retention.
//!
//! Rules:
//! - only a class with media can be recorded (409 otherwise); one recording per class;
//! - a class whose policy says so (`ClassPolicies::recording`) is recorded from the moment
//!   it goes live, as if its teacher had pressed Record;
//! - the class's teacher and its admins see every recording; the class's pupils see the
//!   published ones that are playable (`ready`, `interrupted`), and nothing else;
//! - a recording id and a file name are checked against their patterns before any path is
//!   made (404 otherwise: no traversal);
//! - a recording left `recording` by a server that stopped becomes `interrupted` at start-up:
//!   its closed segments stay listed and playable; on a cluster, whose nodes share the
//!   directory ([`crate::recordings_share`]), a recording names the node that writes it
//!   (`writer.node`), and a node leaves a live node's alone;
//! - retention: each recording has its deletion date from the start (`[recording]`: the end
//!   of its school term); the sweep deletes its files and its row, audited;
//! - chapters: the studio's layout when the recording starts (if the console set one), and
//!   each switch the teacher makes while it runs (camera, document camera, screen…), are
//!   appended to the recording's `chapters.index` (`<ms on its timeline> <layout>`), beside
//!   its files and deleted with them: the player lists them, so that a pupil finds "the
//!   exercise on the board".

use crate::Problem;
use crate::config::RecordingConfig;
use crate::problem::store_problem;
use crate::state::SharedState;
use ardoise_proto::{ClassId, Role};
use ardoise_store::{RecordingRow, Store};
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
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
    /// Where it starts on the recording's timeline, seconds (its timestamps say the same);
    /// `None` for a segment not closed (being written, or cut by a stop of the server).
    pub start_s: Option<f64>,
    /// Where it ends, seconds.
    pub end_s: Option<f64>,
}

/// One video layer of a recording, with the audio in each file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordedLayer {
    /// Quality rank, 0 = lowest.
    pub rank: usize,
    /// Its files' media type, with their codecs: WebM (VP8) or MP4 (H.264), as the
    /// programme was published.
    pub mime: String,
    /// Its segments, in order.
    pub files: Vec<RecordedFile>,
}

/// A chapter of a recording: from `at_s` on, the studio showed `layout`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Chapter {
    /// Where it starts on the recording's timeline, seconds.
    pub at_s: f64,
    /// One of `ardoise_proto::events::LAYOUTS`.
    pub layout: String,
}

/// What `GET /api/classes/{id}/recordings` lists.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordingInfo {
    /// Recording id.
    pub id: String,
    /// Class id.
    pub class: String,
    /// Title (the class's title when it started, until the teacher renames it).
    pub title: String,
    /// Start, ms since the Unix epoch.
    pub started_ms: i64,
    /// Length, seconds (0 while recording).
    pub duration_s: f64,
    /// `recording`, `ready`, `interrupted` (the server stopped meanwhile) or `failed`.
    pub state: String,
    /// Shown to the class's pupils.
    pub published: bool,
    /// The class's pupils may download its smallest layer.
    pub downloadable: bool,
    /// When retention deletes it, ms since the Unix epoch.
    pub expires_ms: i64,
    /// Its layers.
    pub layers: Vec<RecordedLayer>,
    /// Its chapters, in order: where the teacher switched the layout.
    pub chapters: Vec<Chapter>,
}

/// A download link (`POST …/recordings/{rec}/download`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DownloadLink {
    /// The smallest layer as one WebM file; needs no token, until it expires.
    pub url: String,
    /// When it expires, seconds since the Unix epoch.
    pub expires_at: u64,
}

/// The stem of the file a download link serves, in the recording's directory
/// (`offline.webm` or `offline.mp4`, as the recording's segments).
const OFFLINE: &str = "offline";

/// The media type of a recording's file, by its extension: WebM (VP8, Opus) or MP4 (H.264,
/// Opus), with the codecs a Media Source is asked about.
fn media_type(name: &str) -> &'static str {
    if name.ends_with(".mp4") { "video/mp4; codecs=\"avc1.42e01f, opus\"" } else { "video/webm; codecs=\"vp8, opus\"" }
}

/// A recording's file streamed from disk (HTTP Range) with its container's type.
async fn serve(path: &std::path::Path, req: Request) -> Result<Response, Problem> {
    let container = if path.extension().is_some_and(|e| e == "mp4") { "video/mp4" } else { "video/webm" };
    let served = tower_http::services::ServeFile::new_with_mime(path, &container.parse().expect("a mime type"))
        .oneshot(req)
        .await
        .map_err(|_| Problem::not_found("no such recording file"))?;
    Ok(served.into_response())
}

/// The name of a recording's chapter list, in its directory.
const CHAPTERS: &str = "chapters.index";
/// The file, in a recording's directory, naming the node of a cluster that writes it.
const WRITER: &str = "writer.node";

/// What the teacher may change of a recording (`PATCH`); absent fields stay.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingChange {
    /// A new title (1 to 120 characters).
    pub title: Option<String>,
    /// Show it to the class's pupils, or not.
    pub published: Option<bool>,
    /// Let the class's pupils download its smallest layer, or not.
    pub downloadable: Option<bool>,
}

struct Active {
    id: String,
    /// The start of the recording's timeline.
    started: std::time::Instant,
    writer: std::thread::JoinHandle<anyhow::Result<ardoise_recorder::Written>>,
    /// The layout its last chapter names.
    layout: Option<String>,
}

/// The recordings of a server: the directory of their files, the retention rules, and the
/// recordings being written.
pub struct Recordings {
    root: PathBuf,
    config: RecordingConfig,
    active: Mutex<HashMap<ClassId, Active>>,
    links: crate::download_links::DownloadLinks,
    /// Held while a layer's segments are joined for a download (one at a time).
    joining: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Whether the other nodes of a cluster write to the same directory.
    pub share: crate::recordings_share::RecordingsShare,
}

impl Recordings {
    /// Recordings kept under `root` (`[recording] dir`), by the rules of `config`, their
    /// download links signed with the keys of `signer`.
    pub fn new(root: PathBuf, config: RecordingConfig, signer: crate::auth::TokenSigner) -> Recordings {
        Recordings {
            share: crate::recordings_share::RecordingsShare::new(&root),
            root,
            config,
            active: Mutex::new(HashMap::new()),
            links: crate::download_links::DownloadLinks::new(signer),
            joining: std::sync::Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<ClassId, Active>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dir(&self, class: &str, id: &str) -> PathBuf {
        self.root.join(class).join(id)
    }

    /// Whether `class` is being recorded now.
    pub fn is_recording(&self, class: &ClassId) -> bool {
        self.active().contains_key(class)
    }

    /// The segment files of a recording on disk, by layer (lowest first), each in order, with
    /// the times of the indexed ones (one pass over the directory).
    fn layers(&self, class: &str, id: &str) -> Vec<RecordedLayer> {
        let mut times: HashMap<String, (f64, f64)> = HashMap::new();
        let mut by_rank: std::collections::BTreeMap<usize, Vec<RecordedFile>> = Default::default();
        for entry in std::fs::read_dir(self.dir(class, id)).into_iter().flatten().flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            if name.starts_with("layer") && name.ends_with(".index") {
                for line in std::fs::read_to_string(entry.path()).unwrap_or_default().lines() {
                    let mut parts = line.split(' ');
                    if let (Some(file), Some(Ok(start)), Some(Ok(end))) =
                        (parts.next(), parts.next().map(str::parse::<u64>), parts.next().map(str::parse::<u64>))
                    {
                        times.insert(file.to_owned(), (start as f64 / 1e9, end as f64 / 1e9));
                    }
                }
                continue;
            }
            if !safe_file(&name) {
                continue;
            }
            let rank = usize::from(name.as_bytes()[5] - b'0');
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            if size == 0 {
                continue; // opened but nothing written (a server stopped at a segment's start)
            }
            let url = format!("/api/classes/{class}/recordings/{id}/{name}");
            by_rank.entry(rank).or_default().push(RecordedFile { name, size, url, start_s: None, end_s: None });
        }
        by_rank
            .into_iter()
            .map(|(rank, mut files)| {
                files.sort_by(|a, b| a.name.cmp(&b.name));
                for f in &mut files {
                    (f.start_s, f.end_s) = times.get(&f.name).map_or((None, None), |&(a, b)| (Some(a), Some(b)));
                }
                let mime = media_type(files.first().map_or("", |f| f.name.as_str())).to_owned();
                RecordedLayer { rank, mime, files }
            })
            .collect()
    }

    /// The teacher switched `class`'s layout: if it is being recorded, a chapter starts now,
    /// unless its last chapter names that layout already (the switch raced the recording's
    /// start, which read the new layout). Under the lock of the active recordings, which the
    /// start holds from reading the layout to its first chapter: no switch falls between.
    pub fn chapter(&self, class: &ClassId, layout: &str) {
        let mut active = self.active();
        let Some(a) = active.get_mut(class) else { return };
        if a.layout.as_deref() == Some(layout) {
            return;
        }
        a.layout = Some(layout.to_owned());
        let (id, at) = (a.id.clone(), a.started.elapsed());
        self.append_chapter(class, &id, at, layout);
    }

    fn append_chapter(&self, class: &ClassId, id: &str, at: Duration, layout: &str) {
        let path = self.dir(&class.0, id).join(CHAPTERS);
        let line = format!("{} {layout}\n", at.as_millis());
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
        if let Err(e) = written {
            warn!(%class, recording = %id, "recording: cannot note a chapter: {e}");
        }
    }

    /// A recording's chapters, in order (none if it has no chapter file).
    fn chapters(&self, class: &str, id: &str) -> Vec<Chapter> {
        let text = std::fs::read_to_string(self.dir(class, id).join(CHAPTERS)).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let (ms, layout) = l.split_once(' ')?;
                Some(Chapter { at_s: ms.parse::<u64>().ok()? as f64 / 1000.0, layout: layout.to_owned() })
            })
            .collect()
    }

    fn info(&self, r: RecordingRow) -> RecordingInfo {
        let layers = self.layers(&r.class, &r.id);
        let chapters = self.chapters(&r.class, &r.id);
        RecordingInfo {
            duration_s: (r.duration_ms as f64 / 100.0).round() / 10.0,
            published: r.published != 0,
            downloadable: r.downloadable != 0,
            expires_ms: r.expires_at,
            layers,
            chapters,
            id: r.id,
            class: r.class,
            title: r.title,
            started_ms: r.started_at,
            state: r.state,
        }
    }

    /// Close as `interrupted` the recordings left `recording` by a server that stopped, with
    /// the length their files reach (their closed segments stay playable):
    /// - at start-up (`after_death` false), a single server's all, and a cluster node's own
    ///   and those of nodes its first view of the cluster shows dead;
    /// - on a cluster, later (`after_death`), the ones whose writer (`writer.node`) is a
    ///   node of the view that is no longer alive: what a dead node recorded replays at
    ///   once through any node.
    ///
    /// A node never closes a recording with no files here (another node's disk), one a live
    /// node writes, one whose writer it cannot tell (`writer.node` unreadable), or, after
    /// start-up, its own.
    pub async fn recover(&self, store: &Store, cluster: Option<&crate::cluster::Cluster>, after_death: bool) {
        let rows = match store.unfinished_recordings().await {
            Ok(rows) => rows,
            Err(e) => return warn!("recordings: cannot look for interrupted ones: {e}"),
        };
        let view = cluster.map(|c| (c.node_id(), c.view()));
        for r in rows {
            if !ClassId::is_valid(&r.class) || !safe_id(&r.id) {
                continue;
            }
            let dir = self.dir(&r.class, &r.id);
            if let Some((node, view)) = &view
                && !closed_by(node, view, &r, &dir, after_death)
            {
                continue;
            }
            let newest = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.metadata().ok()?.modified().ok())
                .max();
            let end_ms = newest
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(r.started_at, |d| d.as_millis() as i64);
            let duration = (end_ms - r.started_at).max(0);
            match store.finish_recording(&r.class, &r.id, "interrupted", duration).await {
                Ok(()) => {
                    warn!(class = %r.class, recording = %r.id, duration_ms = duration, after_death, "recording interrupted by a stop of its server: its closed segments are kept")
                }
                Err(e) => warn!(class = %r.class, recording = %r.id, "recordings: {e}"),
            }
        }
    }

    /// Retention: delete the recordings whose deletion date is before `now` (ms), files and
    /// row, each audited; a recording being written (here, or by another node in a shared
    /// directory: still `recording`) waits for its end. Returns how many.
    pub async fn sweep(&self, store: &Store, now: i64) -> u64 {
        let expired = match store.expired_recordings(now).await {
            Ok(rows) => rows,
            Err(e) => {
                warn!("retention sweep of recordings: {e}");
                return 0;
            }
        };
        let mut deleted = 0;
        for r in expired {
            if r.state == "recording" || self.active().get(&ClassId(r.class.clone())).is_some_and(|a| a.id == r.id) {
                continue;
            }
            if !ClassId::is_valid(&r.class) || !safe_id(&r.id) {
                warn!(class = %r.class, recording = %r.id, "retention: a recording's ids cannot name its files: row left");
                continue;
            }
            if let Err(e) = self.delete_files(&r.class, &r.id) {
                warn!(class = %r.class, recording = %r.id, "retention: cannot delete the files: {e}");
                continue;
            }
            if let Err(e) = store.delete_recording(&r.class, &r.id).await {
                warn!(class = %r.class, recording = %r.id, "retention: {e}");
                continue;
            }
            let detail = format!("{} ({}), kept until {}", r.id, r.title, r.expires_at);
            if let Err(e) = store.audit("retention", "recording.expire", &format!("class:{}", r.class), &detail).await {
                warn!("retention: cannot audit: {e}");
            }
            info!(class = %r.class, recording = %r.id, "retention: recording deleted");
            deleted += 1;
        }
        deleted
    }

    fn delete_files(&self, class: &str, id: &str) -> std::io::Result<()> {
        match std::fs::remove_dir_all(self.dir(class, id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Whether `node` of a cluster whose view is `view` closes the unfinished recording `r`, whose
/// files are in `dir` ([`Recordings::recover`]): never with no files here (another node's
/// disk), nor when its writer cannot be told; after another node's death, a recording a
/// node of the view no longer alive was writing; at start-up, also its own.
fn closed_by(
    node: &str,
    view: &crate::cluster_view::ClusterView,
    r: &RecordingRow,
    dir: &std::path::Path,
    after_death: bool,
) -> bool {
    if !dir.exists() {
        return false;
    }
    let writer = match std::fs::read_to_string(dir.join(WRITER)) {
        Ok(w) => Some(w),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None, // made before writers were named
        Err(e) => {
            warn!(class = %r.class, recording = %r.id, "recordings: whose recording it is cannot be read: {e}");
            return false;
        }
    };
    let mine = writer.as_deref().is_none_or(|w| w == node);
    let dead_writer = writer.as_deref().is_some_and(|w| view.nodes.iter().any(|n| n.id == w && !n.alive));
    if after_death { !mine && dead_writer } else { mine || dead_writer }
}

/// Whether `s` is a recording id (digits) or a segment file name (`layerN-NNNNN.webm`).
fn safe_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

fn safe_file(s: &str) -> bool {
    let stem = s.strip_suffix(".webm").or_else(|| s.strip_suffix(".mp4"));
    stem.and_then(|r| r.strip_prefix("layer")).is_some_and(|r| {
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
    let info = begin(&s, &class, title).await?;
    s.recorder.audit(m.actor, "recording.start", format!("class:{class}"), info.id.clone());
    Ok((StatusCode::CREATED, Json(info)))
}

/// The class went live and its policy records it: start, as its teacher would (audited as
/// the policy's doing).
pub async fn record_by_policy(s: SharedState, class: ClassId) {
    let title = s.classes.get(&class).map(|c| c.title.clone()).unwrap_or_default();
    match begin(&s, &class, title).await {
        Ok(info) => s.recorder.audit("policy", "recording.start", format!("class:{class}"), info.id),
        Err(p) if p.status == StatusCode::CONFLICT => {} // started meanwhile, or the media left
        Err(p) => warn!(%class, "the class's policy records it, but: {}", p.detail),
    }
}

/// Start recording `class`: the writer thread, the SFU's copy of the programme, the row.
/// A recording directory just made, removed when the recording cannot start: this node's
/// `writer.node`, then the directory if nothing else is in it.
fn discard(dir: &std::path::Path) {
    let _ = std::fs::remove_file(dir.join(WRITER));
    let _ = std::fs::remove_dir(dir);
}

async fn begin(s: &SharedState, class: &ClassId, title: String) -> Result<RecordingInfo, Problem> {
    let r = &s.recordings;
    if r.active().contains_key(class) {
        return Err(Problem::new(StatusCode::CONFLICT, "this class is being recorded already"));
    }
    let _ = std::fs::create_dir_all(&r.root);
    if let Some(free) = ardoise_recorder::free_bytes(&r.root)
        && free < r.config.min_free_mb << 20
    {
        warn!(%class, free_mb = free >> 20, "recording refused: the recordings' disk is full");
        return Err(Problem::unavailable("the recordings' disk is full: ask the school's IT admin", 300));
    }
    let started_ms = ardoise_store::now_ms();
    let id = started_ms.to_string();
    let dir = r.dir(&class.0, &id);
    let segment = Duration::from_secs(r.config.segment_secs);
    let started = std::time::Instant::now();
    let writer = ardoise_recorder::Writer::new(&dir, started, segment).map_err(|e| {
        warn!("recording: {e:#}");
        Problem::unavailable("the recorder cannot start (see the server's log)", 30)
    })?;
    // In a cluster's shared directory, the other nodes must know this node writes it.
    if let Some(cluster) = &s.cluster
        && let Err(e) = std::fs::write(dir.join(WRITER), cluster.node_id())
    {
        warn!(%class, "recording: cannot say which node writes it: {e}");
        discard(&dir);
        return Err(Problem::unavailable("the recorder cannot start (see the server's log)", 30));
    }
    let row = RecordingRow {
        class: class.0.clone(),
        id: id.clone(),
        title,
        started_at: started_ms,
        duration_ms: 0,
        state: "recording".into(),
        published: i64::from(r.config.publish),
        downloadable: 0,
        expires_at: r.config.expiry_ms(started_ms),
    };
    if let Err(e) = s.store.insert_recording(&row).await {
        discard(&dir);
        return Err(store_problem(e));
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(256);
    if s.media.record(class, Some(tx)).await.is_err() {
        discard(&dir);
        let _ = s.store.delete_recording(&class.0, &id).await;
        return Err(Problem::new(StatusCode::CONFLICT, "the class has no media yet: start the studio first"));
    }
    // The writer may end by itself (a full disk, the class's media gone): then the recording
    // is closed here, as if stopped.
    let (ended, on_end) = tokio::sync::oneshot::channel::<()>();
    let writer = std::thread::Builder::new()
        .name("recorder".into())
        .spawn(move || {
            let written = writer.run(rx);
            let _ = ended.send(());
            written
        })
        .map_err(|_| Problem::unavailable("the recorder cannot start", 30))?;
    info!(%class, recording = %id, "recording started");
    s.hub.set_recording(class, true);
    {
        // The layout read and the first chapter written under the lock `chapter` takes: a
        // switch is then either before (read here) or after (a chapter of its own).
        let mut active = r.active();
        let layout = s.hub.layout(class);
        if let Some(l) = &layout {
            r.append_chapter(class, &id, Duration::ZERO, l);
        }
        active.insert(class.clone(), Active { id: id.clone(), started, writer, layout });
    }
    let (s2, class2) = (s.clone(), class.clone());
    tokio::spawn(async move {
        if on_end.await.is_ok() {
            ended_by_itself(&s2, &class2, &id).await;
        }
    });
    Ok(r.info(row))
}

/// The writer of `class`'s recording `id` ended: if no one stopped it, close the recording
/// as a stop would, `interrupted` when it stopped by itself (what it wrote stays), and tell
/// the class (the teacher's console says why).
async fn ended_by_itself(s: &SharedState, class: &ClassId, id: &str) {
    let active = {
        let mut active = s.recordings.active();
        if active.get(class).is_none_or(|a| a.id != id) {
            return; // stopped by the teacher: the stop closes it
        }
        active.remove(class).expect("checked above")
    };
    let _ = s.media.record(class, None).await;
    let written = tokio::task::spawn_blocking(move || active.writer.join()).await;
    let (state, duration_ms, reason) = match written {
        Ok(Ok(Ok(w))) => {
            let reason = w.stopped.map(|s| {
                warn!(%class, recording = %id, disk_full = s.disk_full, "recording stopped by itself: {}", s.why);
                if s.disk_full { "disk_full".to_owned() } else { "write_error".to_owned() }
            });
            (if reason.is_some() { "interrupted" } else { "ready" }, (w.duration_s * 1000.0) as i64, reason)
        }
        other => {
            warn!(%class, "recording failed: {other:?}");
            ("failed", 0, Some("write_error".to_owned()))
        }
    };
    if let Err(e) = s.store.finish_recording(&class.0, id, state, duration_ms).await {
        warn!(%class, recording = %id, "recording: cannot note its end: {e}");
    }
    let detail = format!("{id}: {}", reason.as_deref().unwrap_or("the class's media ended"));
    s.recorder.audit("recorder", "recording.stop", format!("class:{class}"), detail);
    s.hub.recording_stopped(class, reason);
    prepare_offline(s, class, id);
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
    let id = active.id;
    let written = tokio::task::spawn_blocking(move || active.writer.join()).await;
    let (state, duration_ms) = match written {
        Ok(Ok(Ok(w))) => ("ready", (w.duration_s * 1000.0) as i64),
        other => {
            warn!(%class, "recording failed: {other:?}");
            ("failed", 0)
        }
    };
    // The row is retried by the next start-up's recovery if the database is away now.
    if let Err(e) = s.store.finish_recording(&class.0, &id, state, duration_ms).await {
        warn!(%class, recording = %id, "recording: cannot note its end: {e}");
    }
    // The pages hear of the end once the recording is closed and listed as such.
    s.hub.set_recording(&class, false);
    s.recorder.audit(m.actor, "recording.stop", format!("class:{class}"), id.clone());
    info!(%class, recording = %id, duration_ms, state, "recording stopped");
    prepare_offline(&s, &class, &id);
    let row = s.store.recording(&class.0, &id).await.map_err(store_problem)?;
    Ok(Json(s.recordings.info(row)))
}

/// Who is looking at a class's recordings.
enum Viewer {
    /// Its teacher or an admin: everything.
    Staff,
    /// One of its pupils: the published, playable recordings.
    Pupil,
}

/// Whether the request may see `class`'s recordings: its teacher or an admin (token or
/// login), or one of its pupils (a pupil token of the class).
async fn viewer(s: &SharedState, headers: &HeaderMap, class: &ClassId) -> Result<Viewer, Problem> {
    if s.bearer_present(headers) {
        let claims = s.authenticate(headers)?;
        if claims.role == Role::Pupil {
            return if claims.covers(class) {
                Ok(Viewer::Pupil)
            } else {
                Err(Problem::forbidden("not a pupil of this class"))
            };
        }
    }
    crate::teaching::manager(s, headers, class, false, true).await.map(|_| Viewer::Staff)
}

/// What a pupil may see: published, and playable.
fn for_pupils(r: &RecordingRow) -> bool {
    r.published != 0 && (r.state == "ready" || r.state == "interrupted")
}

/// `GET /api/classes/{id}/recordings`.
pub async fn list(
    State(s): State<SharedState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Vec<RecordingInfo>>, Problem> {
    let class = ClassId(id);
    let viewer = viewer(&s, &headers, &class).await?;
    let rows = s.store.recordings_of_class(&class.0).await.map_err(store_problem)?;
    let shown = rows.into_iter().filter(|r| matches!(viewer, Viewer::Staff) || for_pupils(r));
    Ok(Json(shown.map(|r| s.recordings.info(r)).collect()))
}

/// The recording `rec` of `class` (404 for a malformed id, or one a pupil may not see).
async fn row_for(s: &SharedState, viewer: &Viewer, class: &ClassId, rec: &str) -> Result<RecordingRow, Problem> {
    if !safe_id(rec) {
        return Err(Problem::not_found("no such recording"));
    }
    let row = s.store.recording(&class.0, rec).await.map_err(store_problem)?;
    if matches!(viewer, Viewer::Pupil) && !for_pupils(&row) {
        return Err(Problem::not_found("no such recording"));
    }
    Ok(row)
}

/// `PATCH /api/classes/{id}/recordings/{rec}` (the class's teacher or an admin): rename,
/// publish or unpublish, allow or forbid the download.
pub async fn update(
    State(s): State<SharedState>,
    Path((id, rec)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Json<RecordingChange>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<RecordingInfo>, Problem> {
    let class = ClassId(id);
    let m = crate::teaching::manager(&s, &headers, &class, true, true).await?;
    let change = crate::class_api::json_body(body)?;
    let row = row_for(&s, &Viewer::Staff, &class, &rec).await?;
    let title = change.title.map(|t| t.trim().to_owned()).unwrap_or(row.title);
    if title.is_empty() || title.chars().count() > 120 || title.chars().any(char::is_control) {
        return Err(Problem::bad_request("a title is 1 to 120 characters, on one line"));
    }
    let published = change.published.unwrap_or(row.published != 0);
    let downloadable = change.downloadable.unwrap_or(row.downloadable != 0);
    s.store.set_recording(&class.0, &rec, &title, published, downloadable).await.map_err(store_problem)?;
    let detail = format!("{rec}: title \"{title}\", published {published}, downloadable {downloadable}");
    s.recorder.audit(m.actor, "recording.update", format!("class:{class}"), detail);
    let row = s.store.recording(&class.0, &rec).await.map_err(store_problem)?;
    Ok(Json(s.recordings.info(row)))
}

/// `DELETE /api/classes/{id}/recordings/{rec}` (the class's teacher or an admin): its files
/// and its row (409 while it is being recorded).
pub async fn delete(
    State(s): State<SharedState>,
    Path((id, rec)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, Problem> {
    let class = ClassId(id);
    let m = crate::teaching::manager(&s, &headers, &class, true, true).await?;
    let row = row_for(&s, &Viewer::Staff, &class, &rec).await?;
    if s.recordings.active().get(&class).is_some_and(|a| a.id == rec) {
        return Err(Problem::new(StatusCode::CONFLICT, "this recording is running: stop it first"));
    }
    s.recordings.delete_files(&class.0, &rec).map_err(|e| {
        warn!(%class, recording = %rec, "cannot delete a recording's files: {e}");
        Problem::unavailable("the recording's files cannot be deleted now", 30)
    })?;
    s.store.delete_recording(&class.0, &rec).await.map_err(store_problem)?;
    s.recorder.audit(m.actor, "recording.delete", format!("class:{class}"), format!("{rec} ({})", row.title));
    info!(%class, recording = %rec, "recording deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/classes/{id}/recordings/{rec}/{file}`: one segment, streamed from disk, with
/// HTTP Range (206, 416).
pub async fn file(
    State(s): State<SharedState>,
    Path((id, rec, name)): Path<(String, String, String)>,
    req: Request,
) -> Result<Response, Problem> {
    let class = ClassId(id);
    if let Some(ext @ ("webm" | "mp4")) = name.strip_prefix(OFFLINE).and_then(|n| n.strip_prefix('.')) {
        return offline(&s, &class, &rec, ext, req).await;
    }
    let viewer = viewer(&s, req.headers(), &class).await?;
    if !safe_file(&name) {
        return Err(Problem::not_found("no such recording file"));
    }
    row_for(&s, &viewer, &class, &rec).await?;
    let path = s.recordings.dir(&class.0, &rec).join(&name);
    if !path.is_file() {
        return Err(Problem::not_found("no such recording file"));
    }
    serve(&path, req).await
}

/// `POST /api/classes/{id}/recordings/{rec}/download`: a link to the recording's smallest
/// layer as one file, for offline viewing (pupils: when the teacher allowed it). The link
/// needs no token and expires (`[recording] download_link_secs`).
pub async fn download(
    State(s): State<SharedState>,
    Path((id, rec)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<DownloadLink>, Problem> {
    use crate::download_links::LinkFor;
    let class = ClassId(id);
    let viewer = viewer(&s, &headers, &class).await?;
    let row = row_for(&s, &viewer, &class, &rec).await?;
    let who = match viewer {
        Viewer::Staff => LinkFor::Staff,
        Viewer::Pupil => LinkFor::Pupil,
    };
    if who == LinkFor::Pupil && row.downloadable == 0 {
        return Err(Problem::forbidden("the teacher has not allowed downloading this recording"));
    }
    if row.state != "ready" && row.state != "interrupted" {
        return Err(Problem::new(StatusCode::CONFLICT, "this recording cannot be downloaded yet"));
    }
    let expires_at = crate::auth::unix_now() + s.recordings.config.download_link_secs;
    let query = s.recordings.links.query(&class.0, &rec, expires_at, who);
    let layers = s.recordings.layers(&class.0, &rec);
    let ext = offline_ext(&layers);
    Ok(Json(DownloadLink {
        url: format!("/api/classes/{}/recordings/{rec}/{OFFLINE}.{ext}?{query}", class.0),
        expires_at,
    }))
}

/// The recording's offline file (its smallest layer joined into one `ext` file, kept beside
/// the segments), joined now unless it is there: one join at a time on the server.
async fn ensure_offline(s: &SharedState, class: &ClassId, rec: &str, ext: &str) -> Result<PathBuf, Problem> {
    let dir = s.recordings.dir(&class.0, rec);
    let out = dir.join(format!("{OFFLINE}.{ext}"));
    if !out.is_file() {
        // The join runs in a task of its own, holding the lock: a request that goes away (its
        // client closed) leaves it to finish, and the next one waits for it rather than
        // starting a second join over the same file.
        let lowest = s.recordings.layers(&class.0, rec).first().map(|l| l.rank).unwrap_or(0);
        let (lock, d, o) = (s.recordings.joining.clone(), dir.clone(), out.clone());
        let join = tokio::spawn(async move {
            let _one = lock.lock_owned().await;
            if o.is_file() {
                return Ok(());
            }
            tokio::task::spawn_blocking(move || ardoise_recorder::join_layer(&d, lowest, &o))
                .await
                .map_err(anyhow::Error::from)
                .and_then(|r| r)
        });
        if let Err(e) = join.await.map_err(anyhow::Error::from).and_then(|r| r) {
            warn!(%class, recording = %rec, "cannot join a recording for its download: {e:#}");
            return Err(Problem::unavailable("the download is not ready; try again soon", 5));
        }
    }
    Ok(out)
}

/// The offline file's extension: the programme's container (every layer alike).
fn offline_ext(layers: &[RecordedLayer]) -> &'static str {
    if layers.first().is_some_and(|l| l.mime.starts_with("video/mp4")) { "mp4" } else { "webm" }
}

/// A recording just ended: its offline file is joined in the background, so that a download
/// starts at once (a remux of the smallest layer, about a twentieth of the recording).
fn prepare_offline(s: &SharedState, class: &ClassId, rec: &str) {
    let layers = s.recordings.layers(&class.0, rec);
    if layers.is_empty() {
        return;
    }
    let ext = offline_ext(&layers);
    let (s, class, rec) = (s.clone(), class.clone(), rec.to_owned());
    tokio::spawn(async move {
        let _ = ensure_offline(&s, &class, &rec, ext).await;
    });
}

/// A download link's file: checked, then the smallest layer joined into one file (once, kept
/// beside the segments), served as an attachment with Range (a download resumes).
async fn offline(s: &SharedState, class: &ClassId, rec: &str, ext: &str, req: Request) -> Result<Response, Problem> {
    use crate::download_links::{LinkFor, LinkRefusal};
    if !safe_id(rec) {
        return Err(Problem::not_found("no such recording"));
    }
    let query = req.uri().query().unwrap_or("");
    let who = s.recordings.links.check(&class.0, rec, query, crate::auth::unix_now()).map_err(|r| match r {
        LinkRefusal::Expired => Problem::new(StatusCode::GONE, "this download link has expired: ask for a new one"),
        LinkRefusal::Invalid => Problem::forbidden("this download link is not valid: ask for a new one"),
    })?;
    let viewer = if who == LinkFor::Pupil { Viewer::Pupil } else { Viewer::Staff };
    let row = row_for(s, &viewer, class, rec).await?;
    if who == LinkFor::Pupil && row.downloadable == 0 {
        return Err(Problem::forbidden("the teacher no longer allows downloading this recording"));
    }
    let out = ensure_offline(s, class, rec, ext).await?;
    let mut served = serve(&out, req).await?;
    let name = format!("attachment; filename=\"ardoise-{}-{rec}.{ext}\"", class.0);
    if let Ok(v) = axum::http::HeaderValue::from_str(&name) {
        served.headers_mut().insert(axum::http::header::CONTENT_DISPOSITION, v);
    }
    Ok(served)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RecordingConfig {
        RecordingConfig {
            dir: String::new(),
            segment_secs: 60,
            publish: true,
            download_link_secs: 3600,
            min_free_mb: 100,
            term_ends: vec!["2026-12-19".into(), "2027-04-03".into()],
            days_without_term: 120,
        }
    }

    /// Milliseconds of midnight UTC starting `date` (YYYY-MM-DD).
    fn day(date: &str) -> i64 {
        let d = time::Date::parse(date, time::macros::format_description!("[year]-[month]-[day]")).unwrap();
        (d.midnight().assume_utc().unix_timestamp_nanos() / 1_000_000) as i64
    }

    #[test]
    fn a_recording_is_kept_until_the_end_of_its_term() {
        let c = config();
        assert_eq!(c.expiry_ms(day("2026-12-03")), day("2026-12-19"), "made in the first term");
        assert_eq!(c.expiry_ms(day("2027-01-05")), day("2027-04-03"), "made after the Christmas holidays");
        let late = day("2027-05-10");
        assert_eq!(c.expiry_ms(late), late + 120 * 86_400_000, "no term end configured after it");
    }

    /// The retention sweep, on a real SQLite database and real files, with the clock given.
    #[tokio::test]
    async fn the_sweep_deletes_what_its_term_no_longer_covers_and_audits_it() {
        let tmp = std::env::temp_dir().join(format!("ardoise-sweep-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let store = Store::open(&Store::default_url(&tmp)).await.unwrap();
        store.migrate().await.unwrap();
        let signer = crate::auth::TokenSigner::new(&[1; 32], 3600).unwrap();
        let recordings = Recordings::new(tmp.join("recordings"), config(), signer);
        let c = config();
        // "3": another node of a cluster writes it in the shared directory.
        for (id, started, state) in [
            ("1", day("2026-12-01"), "ready"),
            ("2", day("2027-01-10"), "ready"),
            ("3", day("2026-12-02"), "recording"),
        ] {
            let row = RecordingRow {
                class: "cm1".into(),
                id: id.into(),
                title: format!("Cours {id}"),
                started_at: started,
                duration_ms: 60_000,
                state: state.into(),
                published: 1,
                downloadable: 0,
                expires_at: c.expiry_ms(started),
            };
            store.insert_recording(&row).await.unwrap();
            let dir = recordings.dir("cm1", id);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("layer0-00000.webm"), b"webm").unwrap();
        }
        // The day before the end of the first term: nothing goes.
        assert_eq!(recordings.sweep(&store, day("2026-12-18")).await, 0);
        assert_eq!(recordings.layers("cm1", "1").len(), 1);
        // The first term is over: its recording goes, files and row, audited; the next stays.
        assert_eq!(recordings.sweep(&store, day("2026-12-20")).await, 1);
        assert!(!recordings.dir("cm1", "1").exists(), "its files are deleted");
        assert!(store.recording("cm1", "1").await.is_err(), "its row is deleted");
        assert!(recordings.dir("cm1", "2").exists() && store.recording("cm1", "2").await.is_ok());
        assert!(recordings.dir("cm1", "3").exists(), "another node's recording being written: kept");
        store.finish_recording("cm1", "3", "interrupted", 60_000).await.unwrap();
        assert_eq!(recordings.sweep(&store, day("2026-12-20")).await, 1, "then swept once it ended");
        assert!(!recordings.dir("cm1", "3").exists());
        let audit = store.audit_log(None, 10).await.unwrap();
        assert!(
            audit
                .iter()
                .any(|e| e.action == "recording.expire" && e.actor == "retention" && e.detail.starts_with("1 ")),
            "{audit:?}"
        );
        // A recording being written is never swept under the writer.
        let (_tx, rx) = std::sync::mpsc::sync_channel::<Vec<ardoise_sfu::TappedPacket>>(1);
        let writer = std::thread::spawn(move || {
            for _ in rx {}
            Ok(ardoise_recorder::Written::default())
        });
        recordings.active().insert(
            ClassId("cm1".into()),
            Active { id: "2".into(), started: std::time::Instant::now(), writer, layout: None },
        );
        assert_eq!(recordings.sweep(&store, day("2027-04-04")).await, 0, "recording: kept");
        recordings.active().clear();
        assert_eq!(recordings.sweep(&store, day("2027-04-04")).await, 1);
        store.close().await;
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn a_layout_switch_is_one_chapter_even_when_it_races_the_start() {
        let tmp = std::env::temp_dir().join(format!("ardoise-chapters-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let signer = crate::auth::TokenSigner::new(&[1; 32], 3600).unwrap();
        let recordings = Recordings::new(tmp.clone(), config(), signer);
        let class = ClassId("demo".into());
        recordings.chapter(&class, "camera"); // not recorded: nothing written
        std::fs::create_dir_all(recordings.dir("demo", "1")).unwrap();
        // The start read the layout the switch had just set ("document"), and wrote it at 0.
        recordings.append_chapter(&class, "1", Duration::ZERO, "document");
        let writer = std::thread::spawn(|| Err(anyhow::anyhow!("no writer in this test")));
        let started = std::time::Instant::now();
        let layout = Some("document".to_owned());
        recordings.active().insert(class.clone(), Active { id: "1".into(), started, writer, layout });
        recordings.chapter(&class, "document"); // the switch's own effect, arriving after
        recordings.chapter(&class, "camera");
        recordings.chapter(&class, "camera");
        let layouts: Vec<String> = recordings.chapters("demo", "1").into_iter().map(|c| c.layout).collect();
        assert_eq!(layouts, ["document", "camera"]);
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn only_ids_and_segment_names_make_paths() {
        assert!(safe_id("1733300000000"));
        assert!(!safe_id("../etc") && !safe_id("") && !safe_id("12a"));
        assert!(safe_file("layer2-00000.webm"));
        assert!(safe_file("layer0-00003.mp4"));
        for bad in ["../x.webm", "layer2-00000.webm/..", "layer22-00000.webm", "layer2-0000.webm", "recording.json"] {
            assert!(!safe_file(bad), "{bad}");
        }
    }
}
