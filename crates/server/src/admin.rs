//! Admin API: every class with its participants, and every media worker.

use crate::Problem;
use crate::state::SharedState;
use ardoise_proto::{AdminClass, AdminOverview, Role};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;

/// `GET /api/admin/classes` (admin token).
pub async fn classes(State(s): State<SharedState>, headers: HeaderMap) -> Result<Json<AdminOverview>, Problem> {
    let claims = s.authenticate(&headers)?;
    if claims.role != Role::Admin {
        return Err(Problem::forbidden("admin token required"));
    }
    Ok(Json(overview(&s).await))
}

/// Classes and workers as the admin sees them.
pub async fn overview(s: &SharedState) -> AdminOverview {
    let snaps = s.media.snapshot().await;
    let classes = s
        .classes
        .list()
        .into_iter()
        .map(|info| {
            let mut worker = None;
            let mut participants = Vec::new();
            for (w, snap) in snaps.iter().enumerate() {
                if let Some((_, _, ps)) = snap.rooms.iter().find(|(id, _, _)| *id == info.id) {
                    worker = Some(w);
                    participants = ps.clone();
                }
            }
            AdminClass { info, worker, participants }
        })
        .collect();
    AdminOverview { classes, workers: snaps.into_iter().map(|s| s.worker).collect() }
}
