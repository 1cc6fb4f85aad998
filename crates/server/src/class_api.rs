//! Class API: create, look up, join (pupil token), end.

use crate::Problem;
use crate::classes::CreateError;
use crate::state::SharedState;
use ardoise_proto::{ClassId, ClassInfo, ClassState, CreateClass, JoinRequest, JoinResponse, Role};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use tracing::info;

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, Problem> {
    body.map(|Json(v)| v).map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "the request body is larger than allowed"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send application/json"),
        _ => Problem::bad_request(e.body_text()),
    })
}

/// A created class with a teacher token for it.
#[derive(Serialize)]
pub struct Created {
    /// The class.
    #[serde(flatten)]
    pub class: ClassInfo,
    /// Teacher token for it.
    pub teacher_token: String,
}

/// `POST /api/classes` (teacher or admin token).
pub async fn create(
    State(s): State<SharedState>,
    headers: HeaderMap,
    body: Result<Json<CreateClass>, JsonRejection>,
) -> Result<(StatusCode, Json<Created>), Problem> {
    let claims = s.authenticate(&headers)?;
    if !matches!(claims.role, Role::Teacher | Role::Admin) {
        return Err(Problem::forbidden("only a teacher or an admin may create a class"));
    }
    let req = json_body(body)?;
    if req.title.as_ref().is_some_and(|t| t.chars().count() > 120) {
        return Err(Problem::bad_request("title is longer than 120 characters"));
    }
    let class = s.classes.create(req.id, req.title).map_err(|e| match e {
        CreateError::Exists => Problem::new(StatusCode::CONFLICT, "a class with this id exists"),
        CreateError::InvalidId => Problem::bad_request("class id must be 1-64 of a-z, 0-9, '-', '_'"),
    })?;
    info!(class = %class.id, by = %claims.role, "class created");
    let teacher_token = s.tokens.issue(Role::Teacher, Some(class.id.clone()), None, None);
    Ok((StatusCode::CREATED, Json(Created { class, teacher_token })))
}

/// `GET /api/classes/{code}`: public facts a pupil page needs (no participant data).
pub async fn get(State(s): State<SharedState>, Path(code): Path<String>) -> Result<Json<ClassInfo>, Problem> {
    s.classes.by_code(&code).map(Json).ok_or_else(|| Problem::not_found(format!("no class with code '{code}'")))
}

/// `POST /api/classes/{code}/join` with a first name: a pupil token.
pub async fn join(
    State(s): State<SharedState>,
    Path(code): Path<String>,
    body: Result<Json<JoinRequest>, JsonRejection>,
) -> Result<Json<JoinResponse>, Problem> {
    let class = s.classes.by_code(&code).ok_or_else(|| Problem::not_found(format!("no class with code '{code}'")))?;
    if class.state == ClassState::Ended {
        return Err(Problem::new(StatusCode::GONE, "this class has ended"));
    }
    if s.hub.is_locked(&class.id) {
        return Err(Problem::new(StatusCode::LOCKED, "the teacher has locked this class"));
    }
    let req = json_body(body)?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 32 || name.chars().any(char::is_control) {
        return Err(Problem::bad_request("the first name must be 1 to 32 printable characters"));
    }
    let token = s.tokens.issue(Role::Pupil, Some(class.id.clone()), Some(name.to_owned()), None);
    Ok(Json(JoinResponse { token, class: class.id, role: Role::Pupil }))
}

/// `DELETE /api/classes/{id}`: end the class (its teacher or an admin).
pub async fn end(State(s): State<SharedState>, Path(id): Path<String>, headers: HeaderMap) -> Result<StatusCode, Problem> {
    let claims = s.authenticate(&headers)?;
    let id = ClassId(id);
    if s.classes.get(&id).is_none() {
        return Err(Problem::not_found(format!("no class '{id}'")));
    }
    if !(claims.role == Role::Admin || (claims.role == Role::Teacher && claims.covers(&id))) {
        return Err(Problem::forbidden("only the class's teacher or an admin may end it"));
    }
    s.end_class(&id, claims.role);
    Ok(StatusCode::NO_CONTENT)
}
