//! Admin API: every class with its participants, every media worker, and the cluster's
//! nodes.

use crate::Problem;
use crate::state::SharedState;
use ardoise_proto::{AdminClass, AdminOverview, ProcessStats, Role};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;

/// An admin token, or an admin's login (`change`: a request that changes something, which
/// a login must prove with its CSRF token). Returns who, for the audit log.
async fn admin(s: &SharedState, headers: &HeaderMap, change: bool) -> Result<String, Problem> {
    if s.bearer_present(headers) {
        let claims = s.authenticate(headers)?;
        if claims.role != Role::Admin {
            return Err(Problem::forbidden("admin token required"));
        }
        Ok(format!("token:{}", claims.sub))
    } else {
        Ok(format!("user:{}", s.admin_user(headers, change).await?.id))
    }
}

/// `GET /api/admin/classes` (an admin token, or an admin's login).
pub async fn classes(State(s): State<SharedState>, headers: HeaderMap) -> Result<Json<AdminOverview>, Problem> {
    admin(&s, &headers, false).await?;
    Ok(Json(overview(&s).await))
}

/// The cluster as the admin sees it.
#[derive(Debug, serde::Serialize)]
pub struct NodesOverview {
    /// The node that answered; none on a single node.
    pub this_node: Option<String>,
    /// Every node that verifies (alive or not), with its load and classes.
    pub nodes: Vec<crate::cluster_view::NodeView>,
    /// The live nodes whose recordings the node that answered cannot see (`[recording] dir`
    /// is not shared with theirs): their classes' recordings do not replay through it.
    pub recordings_unseen: Vec<String>,
}

/// `GET /api/admin/nodes` (admin): the cluster's nodes (none on a single node).
pub async fn nodes(State(s): State<SharedState>, headers: HeaderMap) -> Result<Json<NodesOverview>, Problem> {
    admin(&s, &headers, false).await?;
    Ok(Json(match &s.cluster {
        Some(c) => NodesOverview {
            this_node: Some(c.node_id().to_owned()),
            nodes: c.view().nodes.clone(),
            recordings_unseen: s.recordings.share.unseen(),
        },
        None => NodesOverview { this_node: None, nodes: Vec::new(), recordings_unseen: Vec::new() },
    }))
}

/// The body of `POST /api/admin/nodes/{id}/drain`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainRequest {
    /// Stop (true) or allow again (false) new classes on the node.
    pub draining: bool,
}

/// `POST /api/admin/nodes/{id}/drain` (admin): no new classes on the node (its classes go
/// on until they end), or again; audited. 404 on a single node or for an unknown node.
pub async fn drain(
    State(s): State<SharedState>,
    axum::extract::Path(node): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Result<Json<DrainRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<axum::http::StatusCode, Problem> {
    let actor = admin(&s, &headers, true).await?;
    let Json(req) = body.map_err(|e| Problem::bad_request(e.body_text()))?;
    if s.cluster.is_none() {
        return Err(Problem::not_found("this server is not one of a cluster"));
    }
    s.store.set_draining(&node, req.draining).await.map_err(crate::problem::store_problem)?;
    let action = if req.draining { "node.drain" } else { "node.undrain" };
    s.recorder.audit(actor, action, format!("node:{node}"), String::new());
    tracing::info!(node, draining = req.draining, "node drain set by an admin");
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// A fault to inject (`POST /api/admin/faults`).
#[derive(Debug, serde::Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultRequest {
    /// The media worker's loop panics: the worker is replaced, its classes reconnect.
    WorkerPanic {
        /// Which worker.
        worker: usize,
    },
    /// A str0m call for one peer panics: that peer is removed.
    Str0mPanic {
        /// Class.
        class: String,
        /// The peer (its WHIP/WHEP resource id).
        participant: u64,
    },
}

/// `POST /api/admin/faults` (an admin token; 404 unless `media.fault_injection`): inject a
/// fault into the media path, for the robustness tests.
pub async fn inject_fault(
    State(s): State<SharedState>,
    headers: HeaderMap,
    body: Result<Json<FaultRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<axum::http::StatusCode, Problem> {
    if !s.fault_injection {
        return Err(Problem::not_found("no such resource"));
    }
    let claims = s.authenticate(&headers)?;
    if claims.role != Role::Admin {
        return Err(Problem::forbidden("admin token required"));
    }
    let (worker, fault) = match crate::class_api::json_body(body)? {
        FaultRequest::WorkerPanic { worker } if worker >= s.media.addresses().len() => {
            return Err(Problem::bad_request(format!("no worker {worker}")));
        }
        FaultRequest::WorkerPanic { worker } => (worker, ardoise_net::Fault::WorkerPanic),
        FaultRequest::Str0mPanic { class, participant } => (
            0,
            ardoise_net::Fault::Str0mPanic {
                class: ardoise_proto::ClassId(class),
                participant: ardoise_proto::ParticipantId(participant),
            },
        ),
    };
    tracing::warn!(?fault, "fault injected by an admin");
    s.media.inject_fault(worker, fault).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Classes and workers as the admin sees them.
pub async fn overview(s: &SharedState) -> AdminOverview {
    let snaps = s.snapshots.get(&s.media).await;
    let classes = s
        .classes
        .list()
        .into_iter()
        .map(|info| {
            // A large class may have fan-out rooms on other workers: its worker is its home's
            // (the one live), its participants are every room's.
            let mut worker = None;
            let mut participants = Vec::new();
            for (w, snap) in snaps.iter().enumerate() {
                if let Some((_, live, ps)) = snap.rooms.iter().find(|(id, _, _)| *id == info.id) {
                    if worker.is_none() || *live {
                        worker = Some(w);
                    }
                    participants.extend(ps.iter().cloned());
                }
            }
            let members = s.hub.members(&info.id);
            let locked = s.hub.is_locked(&info.id);
            let metrics_label = s.metrics_label(&info.id);
            let checks = s.check.counts(&info.id);
            AdminClass { info, worker, locked, members, participants, metrics_label, checks }
        })
        .collect();
    let process = ProcessStats { uptime_ms: s.started.elapsed().as_millis() as u64, ..process_stats() };
    AdminOverview { classes, workers: snaps.iter().map(|s| s.worker.clone()).collect(), process }
}

/// What glibc's allocator has handed out (every arena, and mmapped blocks), bytes.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn heap_in_use() -> Option<u64> {
    // SAFETY: mallinfo2 only reads the allocator's counters (it takes each arena's lock).
    let m = unsafe { libc::mallinfo2() };
    Some((m.uordblks + m.hblkhd) as u64)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn heap_in_use() -> Option<u64> {
    None
}

/// Resident memory and CPU time of this process, from `/proc/self`.
pub fn process_stats() -> ProcessStats {
    // SAFETY: sysconf has no memory-safety preconditions.
    let (page, ticks) = unsafe { (libc::sysconf(libc::_SC_PAGESIZE), libc::sysconf(libc::_SC_CLK_TCK)) };
    let rss_pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .unwrap_or(0);
    // Fields after the command name: utime is the 14th field overall, stime the 15th.
    let cpu_ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_owned();
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    ProcessStats {
        rss_bytes: rss_pages * page.max(1) as u64,
        heap_in_use_bytes: heap_in_use(),
        cpu_us: cpu_ticks * 1_000_000 / ticks.max(1) as u64,
        uptime_ms: 0,
    }
}
