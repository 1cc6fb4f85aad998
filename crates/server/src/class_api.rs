//! Class API: create, look up, join (pupil token), rotate the join code, end.
//!
//! A pupil finds a class by its join code only; the public look-up shows its title and
//! state, never the code or the id. Look-ups and joins are rate-limited per client address
//! and joins per class, so codes cannot be guessed and one script cannot fill a class.

use crate::Problem;
use crate::auth::unix_now;
use crate::classes::{CreateError, Owner};
use crate::limits::ClientAddr;
use crate::state::SharedState;
use crate::store_problem;
use ardoise_proto::{
    Claims, ClassId, ClassInfo, ClassState, CreateClass, IceServers, JoinRequest, JoinResponse, PublicClass, Role,
    RotatedCode, ServerEvent,
};
use ardoise_store::UserRole;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::{debug, info};

/// A JSON body, or a problem+json 400/413/415 that names no library message.
pub fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, Problem> {
    body.map(|Json(v)| v).map_err(|e| {
        debug!("refused JSON body: {}", e.body_text());
        match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "the request body is larger than allowed")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send application/json")
            }
            _ => Problem::bad_request("the JSON body is malformed or has missing or unknown fields"),
        }
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

/// When a code made now expires.
pub fn code_expiry(s: &SharedState) -> Option<u64> {
    let h = s.limits.config.join_code_hours;
    (h > 0).then(|| unix_now() + h * 3600)
}

/// `POST /api/classes`: a teacher or admin token, or a logged-in teacher's cookie (with its
/// CSRF token; the class then belongs to the teacher and one of its schools, with policies
/// and a timetable). At most `limits.classes_per_token_per_hour` per creator. The class is
/// written to the database before the answer: a restart keeps it.
pub async fn create(
    State(s): State<SharedState>,
    headers: HeaderMap,
    body: Result<Json<CreateClass>, JsonRejection>,
) -> Result<(StatusCode, Json<Created>), Problem> {
    let (creator, actor, owner, name) = if s.bearer_present(&headers) {
        let claims = s.authenticate(&headers)?;
        if !matches!(claims.role, Role::Teacher | Role::Admin) {
            return Err(Problem::forbidden("only a teacher or an admin may create a class"));
        }
        (claims.sub.clone(), format!("{} token {}", claims.role, claims.sub), Owner::default(), None)
    } else {
        let login = s.logged_in(&headers, true).await?;
        let u = login.user;
        if u.role != UserRole::Teacher {
            return Err(Problem::forbidden("a teacher's login creates classes"));
        }
        (
            format!("user:{}", u.id),
            format!("{} (teacher, user {})", u.email, u.id),
            Owner { teacher: Some(u.id), school: None },
            Some(u.email),
        )
    };
    let req = json_body(body)?;
    if req.title.as_ref().is_some_and(|t| t.chars().count() > 120 || t.chars().any(char::is_control)) {
        return Err(Problem::bad_request("the title must be at most 120 printable characters"));
    }
    let slots = req.slots.unwrap_or_default();
    if slots.len() > 40 || slots.iter().any(|sl| !sl.is_valid()) {
        return Err(Problem::bad_request("at most 40 slots: weekday 1-7, start_min 0-1439, minutes 1-600"));
    }
    let mut owner = owner;
    if let Some(teacher) = owner.teacher {
        let mine = s.store.teacher_schools(teacher).await.map_err(store_problem)?;
        owner.school = match req.school {
            Some(sc) if mine.contains(&sc) => Some(sc),
            Some(sc) => {
                s.store.school(sc).await.map_err(store_problem)?; // 404 when there is no such school
                return Err(Problem::forbidden("you do not teach in this school"));
            }
            None => mine.first().copied(),
        };
    } else if req.school.is_some() {
        return Err(Problem::bad_request("a school is chosen by a teacher's login, not with a token"));
    }
    s.limits.creations.check(&creator)?;
    let policies = req.policies.unwrap_or_default();
    // A teacher's class lasts from week to week: its code lasts until the teacher rotates it.
    let expiry = if owner.teacher.is_some() { None } else { code_expiry(&s) };
    let class = s.classes.create_owned(req.id, req.title, &creator, expiry, owner, policies).map_err(|e| match e {
        CreateError::Exists => Problem::new(StatusCode::CONFLICT, "a class with this id exists"),
        CreateError::InvalidId => Problem::bad_request("class id must be 1-64 of a-z, 0-9, '-', '_'"),
        CreateError::Full => Problem::unavailable("this server keeps as many classes as it may", 60),
    })?;
    let stored = match s.classes.row(&class.id) {
        Some(row) => match s.store.insert_class(&row).await {
            Ok(()) => s.store.set_slots(&class.id.0, &slots).await,
            Err(e) => Err(e),
        },
        None => Ok(()),
    };
    if let Err(e) = stored {
        s.classes.remove(&class.id);
        return Err(store_problem(e));
    }
    s.recorder.audit(actor, "class.create", format!("class:{}", class.id), class.title.clone());
    info!(class = %class.id, creator = %creator, "class created");
    let teacher_token = s.tokens.issue(Role::Teacher, Some(class.id.clone()), name, None);
    Ok((StatusCode::CREATED, Json(Created { class, teacher_token })))
}

/// Whether `claims` manage `class`: its teacher, or an admin.
fn manages(claims: &Claims, class: &ClassId) -> bool {
    claims.role == Role::Admin || (claims.role == Role::Teacher && claims.covers(class))
}

/// `GET /api/classes/{code}`: with a join code, the public facts a pupil page needs (title,
/// state). With the bearer token of the class's teacher or an admin, `{code}` may be the
/// class id and the answer is the whole class, join code included.
pub async fn get(
    State(s): State<SharedState>,
    ClientAddr(ip): ClientAddr,
    Path(code): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    if headers.contains_key(axum::http::header::AUTHORIZATION) {
        let claims = s.authenticate(&headers)?;
        let id = ClassId(code);
        let info = s.classes.get(&id).ok_or_else(|| Problem::not_found("no such class"))?;
        if !manages(&claims, &id) {
            return Err(Problem::forbidden("only the class's teacher or an admin sees its details"));
        }
        return Ok(Json(info).into_response());
    }
    s.limits.lookups.check(&ip)?;
    let info = s.classes.by_code(&code, unix_now()).ok_or_else(|| Problem::not_found("no class has this code"))?;
    let recording = s.recordings.is_recording(&info.id);
    Ok(Json(PublicClass { title: info.title, state: info.state, recording }).into_response())
}

/// `POST /api/classes/{code}/join` with a first name: a pupil token.
pub async fn join(
    State(s): State<SharedState>,
    ClientAddr(ip): ClientAddr,
    Path(code): Path<String>,
    body: Result<Json<JoinRequest>, JsonRejection>,
) -> Result<Json<JoinResponse>, Problem> {
    s.limits.lookups.check(&ip)?;
    let class = s.classes.by_code(&code, unix_now()).ok_or_else(|| Problem::not_found("no class has this code"))?;
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
    s.limits.joins_per_class.check(&class.id)?;
    s.classes.touch(&class.id);
    let (token, claims) = s.tokens.issue_claims(Role::Pupil, Some(class.id.clone()), Some(name.to_owned()), None);
    let ice_servers = s.turn.as_ref().map(|t| t.ice_servers(&claims.sub)).unwrap_or_default();
    let waiting_room = s.classes.policies(&class.id).waiting_room;
    let nodes = s.cluster.as_ref().map(|c| c.view().live_urls());
    Ok(Json(JoinResponse {
        token,
        class: class.id,
        role: Role::Pupil,
        ice_servers,
        waiting_room,
        nodes: nodes.unwrap_or_default(),
    }))
}

/// `GET /api/ice-servers` (any valid token): the TURN servers, with a credential valid
/// `turn.credential_ttl_secs` for this token's holder (empty without TURN).
pub async fn ice_servers(State(s): State<SharedState>, headers: HeaderMap) -> Result<Json<IceServers>, Problem> {
    let claims = s.authenticate(&headers)?;
    Ok(Json(IceServers { ice_servers: s.turn.as_ref().map(|t| t.ice_servers(&claims.sub)).unwrap_or_default() }))
}

/// `POST /api/classes/{id}/code`: a new join code (its teacher, an admin; a token or a
/// login); the old one stops working at once. Teachers' consoles hear `code`.
pub async fn rotate_code(
    State(s): State<SharedState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<RotatedCode>, Problem> {
    let id = ClassId(id);
    let m = crate::teaching::manager(&s, &headers, &id, true, true).await?;
    s.recorder.audit(m.actor, "class.code", format!("class:{id}"), String::new());
    rotate(&s, &id).map(Json).ok_or_else(|| Problem::not_found("no such class"))
}

/// Give `class` a new code (kept in the database) and tell its teachers.
pub fn rotate(s: &SharedState, class: &ClassId) -> Option<RotatedCode> {
    let owned = s.classes.owner(class).is_some_and(|o| o.teacher.is_some());
    let info = s.classes.rotate_code(class, if owned { None } else { code_expiry(s) })?;
    info!(class = %class, "join code rotated");
    s.recorder.send(crate::records::Record::Code {
        class: class.clone(),
        code: info.code.0.clone(),
        expires_at: info.code_expires_at.map(|t| t as i64 * 1000),
    });
    s.hub.tell_teachers(class, &ServerEvent::Code { code: info.code.clone(), expires_at: info.code_expires_at });
    Some(RotatedCode { code: info.code, code_expires_at: info.code_expires_at })
}

/// `DELETE /api/classes/{id}`: end the class (its teacher or an admin; a token or a login).
/// A teacher's class ends its session only and opens again for the next one.
pub async fn end(
    State(s): State<SharedState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, Problem> {
    let id = ClassId(id);
    let m = crate::teaching::manager(&s, &headers, &id, true, true).await?;
    s.recorder.audit(m.actor, "class.end", format!("class:{id}"), String::new());
    s.end_class(&id, m.role);
    Ok(StatusCode::NO_CONTENT)
}

/// Where a class lives, for pages (`GET /api/classes/{id or code}/node`).
#[derive(Debug, serde::Serialize)]
pub struct ClassNode {
    /// The origin of the node that owns the class (none on a single server).
    pub origin: Option<String>,
    /// The origins of the cluster's live nodes (none on a single server).
    pub nodes: Vec<String>,
}

/// `GET /api/classes/{id or code}/node` (no token): the node that owns the class. A node
/// that does not own it sends the request there (307) before this runs, so the answer
/// always comes from the owner; it allows any origin (it says nothing secret), so a page
/// on another node reads it after that redirect and moves to the owner.
///
/// Not counted against the class look-ups of an address: a pupil page asks it before each
/// join (a class of 30 tablets behind one school address would otherwise reach that limit),
/// and it says nothing of the class itself.
pub async fn node(State(s): State<SharedState>, Path(what): Path<String>) -> Result<Response, Problem> {
    let known = s.classes.get(&ClassId(what.clone())).is_some() || s.classes.by_code(&what, unix_now()).is_some();
    if !known {
        return Err(Problem::not_found("no such class"));
    }
    let answer = match &s.cluster {
        Some(c) => ClassNode { origin: Some(c.public_url().to_owned()), nodes: c.view().live_urls() },
        None => ClassNode { origin: None, nodes: Vec::new() },
    };
    let mut r = Json(answer).into_response();
    r.headers_mut().insert(axum::http::header::ACCESS_CONTROL_ALLOW_ORIGIN, axum::http::HeaderValue::from_static("*"));
    Ok(r)
}
