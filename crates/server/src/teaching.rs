//! A teacher's classes as they last: "my classes", settings (title, policies, weekly
//! timetable), the tokens that start the class from a PC (the console, the studio), and
//! attendance (JSON and CSV).
//!
//! Who may: the class's teacher logged in, an admin whose scope holds the class's school, or
//! (attendance only) the class's teacher token. Anyone else gets 403 and nothing changes.

use crate::Problem;
use crate::state::SharedState;
use crate::store_problem;
use ardoise_proto::{ClassId, ClassPolicies, Role, Slot};
use ardoise_store::{AttendanceRow, User, UserRole};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// Who acts on a class, for the audit log.
pub struct Manager {
    /// Its description in the audit log.
    pub actor: String,
    /// The user, when logged in (not with a token).
    pub user: Option<User>,
    /// Its role.
    pub role: Role,
}

/// The logged-in teacher of `class` or an admin in scope (with `change`, CSRF checked); with
/// `token_ok`, the class's teacher token or an admin token too (404 for an unknown class, 403
/// for anyone else).
pub async fn manager(
    s: &SharedState,
    headers: &HeaderMap,
    class: &ClassId,
    change: bool,
    token_ok: bool,
) -> Result<Manager, Problem> {
    if token_ok && s.bearer_present(headers) {
        let claims = s.authenticate(headers)?;
        s.classes.get(class).ok_or_else(|| Problem::not_found("no such class"))?;
        if claims.role == Role::Admin || (claims.role == Role::Teacher && claims.covers(class)) {
            return Ok(Manager {
                actor: format!("{} ({}, {})", claims.name.unwrap_or_default(), claims.role, claims.sub),
                user: None,
                role: claims.role,
            });
        }
        return Err(Problem::forbidden("this token does not manage this class"));
    }
    let login = s.logged_in(headers, change).await?;
    let owner = s.classes.owner(class).ok_or_else(|| Problem::not_found("no such class"))?;
    let u = login.user;
    let allowed = match u.role {
        UserRole::Teacher => owner.teacher == Some(u.id),
        UserRole::Admin => match owner.school {
            Some(sc) => crate::staff::in_scope(&u, &s.store.school(sc).await.map_err(store_problem)?),
            None => u.departement.is_none() && u.school.is_none(),
        },
    };
    if !allowed {
        return Err(Problem::forbidden("this class belongs to another teacher"));
    }
    let role = if u.role == UserRole::Admin { Role::Admin } else { Role::Teacher };
    Ok(Manager { actor: format!("{} ({}, user {})", u.email, u.role.as_str(), u.id), user: Some(u), role })
}

/// A class in "my classes".
#[derive(Debug, Serialize)]
pub struct MyClass {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Join code.
    pub code: String,
    /// Its expiry (s), if any.
    pub code_expires_at: Option<u64>,
    /// open, live or ended.
    pub state: ardoise_proto::ClassState,
    /// School.
    pub school: Option<i64>,
    /// Policies.
    pub policies: ClassPolicies,
    /// Weekly timetable.
    pub slots: Vec<Slot>,
}

/// Most classes listed in "my classes".
pub const MY_CLASSES_MAX: i64 = 1000;

/// `GET /api/my/classes`: the logged-in teacher's classes, newest first (at most
/// [`MY_CLASSES_MAX`]).
pub async fn my_classes(State(s): State<SharedState>, headers: HeaderMap) -> Result<Json<Vec<MyClass>>, Problem> {
    let login = s.logged_in(&headers, false).await?;
    let rows = s.store.classes_of_teacher(login.user.id, MY_CLASSES_MAX).await.map_err(store_problem)?;
    let mut slots_of = s.store.slots_of_teacher(login.user.id).await.map_err(store_problem)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id = ClassId(r.id.clone());
        let live = s.classes.get(&id);
        let slots = slots_of.remove(&r.id).unwrap_or_default();
        out.push(MyClass {
            state: live.as_ref().map(|i| i.state).unwrap_or(ardoise_proto::ClassState::Ended),
            code: live.as_ref().map(|i| i.code.0.clone()).unwrap_or(r.code),
            code_expires_at: live.as_ref().and_then(|i| i.code_expires_at),
            id: r.id,
            title: r.title,
            school: r.school,
            policies: r.policies,
            slots,
        });
    }
    Ok(Json(out))
}

/// `PUT /api/classes/{id}/settings` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Title.
    pub title: String,
    /// Policies.
    pub policies: ClassPolicies,
    /// Weekly timetable (at most 40 slots).
    pub slots: Vec<Slot>,
}

/// Check a title and a timetable.
pub fn check_settings(title: &str, slots: &[Slot]) -> Result<(), Problem> {
    let n = title.trim().chars().count();
    if n == 0 || n > 120 || title.chars().any(char::is_control) {
        return Err(Problem::bad_request("the title must be 1 to 120 printable characters"));
    }
    if slots.len() > 40 || slots.iter().any(|sl| !sl.is_valid()) {
        return Err(Problem::bad_request("at most 40 slots: weekday 1-7, start_min 0-1439, minutes 1-600"));
    }
    Ok(())
}

/// `PUT /api/classes/{id}/settings`: title, policies and timetable.
pub async fn settings(
    State(s): State<SharedState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<Settings>, axum::extract::rejection::JsonRejection>,
) -> Result<StatusCode, Problem> {
    let id = ClassId(id);
    let m = manager(&s, &headers, &id, true, false).await?;
    let req = crate::class_api::json_body(body)?;
    check_settings(&req.title, &req.slots)?;
    let title = req.title.trim().to_owned();
    s.store.set_class_settings(&id.0, &title, req.policies).await.map_err(store_problem)?;
    s.store.set_slots(&id.0, &req.slots).await.map_err(store_problem)?;
    s.classes.set_settings(&id, &title, req.policies);
    s.hub.set_policies(&id, req.policies);
    s.recorder.audit(
        m.actor,
        "class.settings",
        format!("class:{id}"),
        format!("{:?}, {} slots", req.policies, req.slots.len()),
    );
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/classes/{id}/tokens` body: for whom.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFor {
    /// `console` (this browser) or `studio` (the classroom PC's studio: a day).
    #[serde(rename = "for")]
    pub target: String,
}

/// A token minted from a login.
#[derive(Debug, Serialize)]
pub struct Minted {
    /// The teacher token of the class.
    pub token: String,
    /// The console link (token in the fragment), or the studio's command line.
    pub use_it: String,
}

/// `POST /api/classes/{id}/tokens`: a teacher token for the class, made from the login ("start
/// the class from this PC"), so that no token is typed on a command line.
pub async fn token(
    State(s): State<SharedState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<TokenFor>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Minted>, Problem> {
    let id = ClassId(id);
    let m = manager(&s, &headers, &id, true, false).await?;
    let req = crate::class_api::json_body(body)?;
    s.open_class(&id.0)?;
    let email = m.user.as_ref().map(|u| u.email.clone());
    let (ttl, studio) = match req.target.as_str() {
        "console" => (s.accounts.session_hours * 3600, false),
        "studio" => (86_400, true),
        _ => return Err(Problem::bad_request("for: console or studio")),
    };
    let token = s.tokens.issue(Role::Teacher, Some(id.clone()), email, Some(ttl));
    let origin = s.public_origin.clone().unwrap_or_default();
    let use_it = if studio {
        format!("ardoise studio --server {origin} --class {id} --token {token}")
    } else {
        format!("{origin}/teacher#token={token}")
    };
    if studio {
        s.recorder.audit(m.actor, "class.studio_token", format!("class:{id}"), String::new());
    }
    Ok(Json(Minted { token, use_it }))
}

/// `GET /api/classes/{id}/attendance`: every session's attendance, newest first.
pub async fn attendance(
    State(s): State<SharedState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Vec<AttendanceRow>>, Problem> {
    let id = ClassId(id);
    manager(&s, &headers, &id, false, true).await?;
    Ok(Json(s.store.attendance_of_class(&id.0, 10_000).await.map_err(store_problem)?))
}

/// `GET /api/classes/{id}/attendance.csv`: the same as CSV (UTC times), an audited export.
pub async fn attendance_csv(
    State(s): State<SharedState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = ClassId(id);
    let m = manager(&s, &headers, &id, false, true).await?;
    let rows = s.store.attendance_of_class(&id.0, 10_000).await.map_err(store_problem)?;
    s.recorder.audit(m.actor, "attendance.export", format!("class:{id}"), format!("{} rows", rows.len()));
    let mut r = csv(&rows).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"presences-{id}.csv\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

/// Attendance as CSV: one line per pupil and session.
pub fn csv(rows: &[AttendanceRow]) -> String {
    let mut out = String::from("session,pupil,name,joined_at,left_at,minutes,transport,quality\n");
    for r in rows {
        let minutes =
            r.left_at.map(|l| ((l - r.joined_at).max(0) + 30_000) / 60_000).map(|m| m.to_string()).unwrap_or_default();
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            r.session,
            field(&r.pupil),
            field(&r.name),
            iso(r.joined_at),
            r.left_at.map(iso).unwrap_or_default(),
            minutes,
            field(r.transport.as_deref().unwrap_or("")),
            field(r.quality.as_deref().unwrap_or("")),
        ));
    }
    out
}

/// One CSV field: quoted when needed; a leading `= + - @` is neutralised (no formula).
fn field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@']) { format!("'{v}") } else { v.to_owned() };
    if v.contains([',', '"', '\n', '\r']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v }
}

/// Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn iso(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times_and_csv_fields() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(1_796_342_400_000), "2026-12-04T00:00:00Z");
        assert_eq!(iso(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(field("Léa"), "Léa");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("=SUM(A1)"), "'=SUM(A1)");
        let rows = vec![AttendanceRow {
            session: 3,
            pupil: "p1".into(),
            name: "Noé, \"le grand\"".into(),
            joined_at: 1_796_342_400_000,
            left_at: Some(1_796_342_400_000 + 45 * 60_000),
            transport: Some("tcp".into()),
            quality: None,
        }];
        let c = csv(&rows);
        assert!(
            c.contains("3,p1,\"Noé, \"\"le grand\"\"\",2026-12-04T00:00:00Z,2026-12-04T00:45:00Z,45,tcp,\n"),
            "{c}"
        );
    }
}
