//! The admin's side of accounts: schools, teachers (created with a first password, reset by
//! an admin: there is no mail server), the audit log, and one pupil's pseudonymous data
//! (export, erasure). Every route needs an admin's login; changes need its CSRF token.
//!
//! Scope: an admin of every département sees everything; an admin of a département its
//! schools; an admin of a school that school. Out of scope is 403 and changes nothing.

use crate::Problem;
use crate::state::SharedState;
use crate::store_problem;
use ardoise_store::{NewUser, School, User, UserRole};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

/// Whether `admin` may manage `school`.
pub fn in_scope(admin: &User, school: &School) -> bool {
    match (admin.school, admin.departement) {
        (Some(s), _) => s == school.id,
        (None, Some(d)) => d == school.departement,
        (None, None) => true,
    }
}

async fn scoped_school(s: &SharedState, admin: &User, id: i64) -> Result<School, Problem> {
    let school = s.store.school(id).await.map_err(store_problem)?;
    if !in_scope(admin, &school) {
        return Err(Problem::forbidden("this school is outside your scope"));
    }
    Ok(school)
}

fn actor(u: &User) -> String {
    format!("{} (admin, user {})", u.email, u.id)
}

/// A valid email: 3 to 254 printable characters with one `@` inside.
pub fn valid_email(e: &str) -> bool {
    let e = e.trim();
    (3..=254).contains(&e.len())
        && e.chars().all(|c| !c.is_whitespace() && !c.is_control())
        && e.split('@').count() == 2
        && !e.starts_with('@')
        && !e.ends_with('@')
}

fn text(v: &str, what: &str, max: usize) -> Result<String, Problem> {
    let v = v.trim();
    if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(Problem::bad_request(format!("{what} must be 1 to {max} printable characters")));
    }
    Ok(v.to_owned())
}

/// The schools an admin sees, with their départements.
#[derive(Debug, Serialize)]
pub struct Schools {
    /// Départements.
    pub departements: Vec<ardoise_store::Departement>,
    /// Schools in scope.
    pub schools: Vec<School>,
}

/// `GET /api/admin/schools`
pub async fn schools(State(s): State<SharedState>, headers: HeaderMap) -> Result<Json<Schools>, Problem> {
    let admin = s.admin_user(&headers, false).await?;
    let all = s.store.schools(admin.departement).await.map_err(store_problem)?;
    let schools = all.into_iter().filter(|sc| in_scope(&admin, sc)).collect();
    let departements = s.store.departements().await.map_err(store_problem)?;
    Ok(Json(Schools { departements, schools }))
}

/// `POST /api/admin/schools` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSchool {
    /// The département's code ("02"); made when unknown (admins of every département only).
    pub departement: String,
    /// The département's name, when it is made.
    #[serde(default)]
    pub departement_name: Option<String>,
    /// The school's name.
    pub name: String,
}

/// `POST /api/admin/schools`: 201 with the new school.
pub async fn create_school(
    State(s): State<SharedState>,
    headers: HeaderMap,
    body: Result<Json<NewSchool>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<School>), Problem> {
    let admin = s.admin_user(&headers, true).await?;
    let req = crate::class_api::json_body(body)?;
    if admin.school.is_some() {
        return Err(Problem::forbidden("an admin of one school cannot add schools"));
    }
    let code = text(&req.departement, "the département's code", 8)?;
    let name = text(&req.name, "the school's name", 120)?;
    let deps = s.store.departements().await.map_err(store_problem)?;
    let dep = match deps.iter().find(|d| d.code == code) {
        Some(d) => d.id,
        None if admin.departement.is_none() => {
            let dname = text(req.departement_name.as_deref().unwrap_or(&code), "the département's name", 120)?;
            s.store.create_departement(&code, &dname).await.map_err(store_problem)?
        }
        None => return Err(Problem::not_found("no such département")),
    };
    if admin.departement.is_some_and(|d| d != dep) {
        return Err(Problem::forbidden("this département is outside your scope"));
    }
    let id = s.store.create_school(dep, &name).await.map_err(store_problem)?;
    s.recorder.audit(actor(&admin), "school.create", format!("school:{id}"), name.clone());
    Ok((StatusCode::CREATED, Json(School { id, departement: dep, name })))
}

/// A teacher as the admin sees it.
#[derive(Debug, Serialize)]
pub struct Teacher {
    /// User id.
    pub id: i64,
    /// Email.
    pub email: String,
    /// Schools.
    pub schools: Vec<i64>,
    /// Created (ms).
    pub created_at: i64,
}

/// `GET /api/admin/teachers`: the teachers of the schools in scope.
pub async fn teachers(State(s): State<SharedState>, headers: HeaderMap) -> Result<Json<Vec<Teacher>>, Problem> {
    let admin = s.admin_user(&headers, false).await?;
    let schools: Vec<School> = s
        .store
        .schools(admin.departement)
        .await
        .map_err(store_problem)?
        .into_iter()
        .filter(|sc| in_scope(&admin, sc))
        .collect();
    let mut out: Vec<Teacher> = Vec::new();
    for sc in &schools {
        for t in s.store.teachers(Some(sc.id)).await.map_err(store_problem)? {
            if out.iter().any(|x| x.id == t.id) {
                continue;
            }
            let schools = s.store.teacher_schools(t.id).await.map_err(store_problem)?;
            out.push(Teacher { id: t.id, email: t.email, schools, created_at: t.created_at });
        }
    }
    out.sort_by(|a, b| a.email.cmp(&b.email));
    Ok(Json(out))
}

/// `POST /api/admin/teachers` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTeacher {
    /// Login email.
    pub email: String,
    /// Its school.
    pub school: i64,
    /// Its first password (the admin gives it to the teacher).
    pub password: String,
}

/// `POST /api/admin/teachers`: 201 with the new teacher; 409 for a known email; 404 for an
/// unknown school.
pub async fn create_teacher(
    State(s): State<SharedState>,
    headers: HeaderMap,
    body: Result<Json<NewTeacher>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Teacher>), Problem> {
    let admin = s.admin_user(&headers, true).await?;
    let req = crate::class_api::json_body(body)?;
    if !valid_email(&req.email) {
        return Err(Problem::bad_request("not an email address"));
    }
    crate::passwords::check_strength(&req.password).map_err(Problem::bad_request)?;
    scoped_school(&s, &admin, req.school).await?;
    let hash = crate::passwords::hash(req.password).await?;
    let new = NewUser {
        email: &req.email,
        password_hash: &hash,
        role: UserRole::Teacher,
        departement: None,
        school: Some(req.school),
    };
    let id = s.store.create_user(&new).await.map_err(store_problem)?;
    let email = req.email.trim().to_lowercase();
    s.recorder.audit(
        actor(&admin),
        "user.create",
        format!("user:{id}"),
        format!("teacher {email}, school {}", req.school),
    );
    Ok((
        StatusCode::CREATED,
        Json(Teacher { id, email, schools: vec![req.school], created_at: ardoise_store::now_ms() }),
    ))
}

/// `POST /api/admin/users/{id}/password` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    /// The new password.
    pub password: String,
}

/// `POST /api/admin/users/{id}/password`: an admin resets a teacher's password (its logins end).
pub async fn reset_password(
    State(s): State<SharedState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Result<Json<NewPassword>, axum::extract::rejection::JsonRejection>,
) -> Result<StatusCode, Problem> {
    let admin = s.admin_user(&headers, true).await?;
    let req = crate::class_api::json_body(body)?;
    crate::passwords::check_strength(&req.password).map_err(Problem::bad_request)?;
    let user = s.store.user(id).await.map_err(store_problem)?;
    if user.role == UserRole::Admin && user.id != admin.id && (admin.departement.is_some() || admin.school.is_some()) {
        return Err(Problem::forbidden("only an admin of every département resets another admin's password"));
    }
    if user.role == UserRole::Teacher {
        let schools = s.store.teacher_schools(id).await.map_err(store_problem)?;
        let mut ok = false;
        for sc in schools {
            ok |= in_scope(&admin, &s.store.school(sc).await.map_err(store_problem)?);
        }
        if !ok {
            return Err(Problem::forbidden("this teacher is outside your scope"));
        }
    }
    let hash = crate::passwords::hash(req.password).await?;
    s.store.set_password(id, &hash).await.map_err(store_problem)?;
    s.store.delete_logins_of(id).await.map_err(store_problem)?;
    s.recorder.audit(actor(&admin), "user.password.reset", format!("user:{id}"), user.email);
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/admin/schools/{id}/classes`: a school's classes, newest first (at most 1,000).
pub async fn school_classes(
    State(s): State<SharedState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<Vec<ardoise_store::ClassRow>>, Problem> {
    let admin = s.admin_user(&headers, false).await?;
    scoped_school(&s, &admin, id).await?;
    Ok(Json(s.store.classes_of_school(Some(id), 1000).await.map_err(store_problem)?))
}

/// `GET /api/admin/audit` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Entries before this id (paging).
    pub before: Option<i64>,
    /// How many (≤ 500; 100 by default).
    pub limit: Option<i64>,
}

/// `GET /api/admin/audit`: the newest entries first.
pub async fn audit(
    State(s): State<SharedState>,
    headers: HeaderMap,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<ardoise_store::AuditEntry>>, Problem> {
    s.admin_user(&headers, false).await?;
    let Query(q) = q.map_err(|_| Problem::bad_request("query: before, limit"))?;
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    Ok(Json(s.store.audit_log(q.before, limit).await.map_err(store_problem)?))
}

/// `GET /api/admin/pupils/{pseudonym}`: everything stored about one pupil (RGPD export).
pub async fn export_pupil(
    State(s): State<SharedState>,
    headers: HeaderMap,
    Path(pupil): Path<String>,
) -> Result<Json<Vec<ardoise_store::AttendanceRow>>, Problem> {
    let admin = s.admin_user(&headers, false).await?;
    let rows = s.store.attendance_of_pupil(&pupil).await.map_err(store_problem)?;
    s.recorder.audit(actor(&admin), "pupil.export", format!("pupil:{pupil}"), format!("{} rows", rows.len()));
    Ok(Json(rows))
}

/// `DELETE /api/admin/pupils/{pseudonym}`: erase one pupil's data (RGPD erasure).
pub async fn erase_pupil(
    State(s): State<SharedState>,
    headers: HeaderMap,
    Path(pupil): Path<String>,
) -> Result<StatusCode, Problem> {
    let admin = s.admin_user(&headers, true).await?;
    let n = s.store.erase_pupil(&pupil).await.map_err(store_problem)?;
    s.recorder.audit(actor(&admin), "pupil.erase", format!("pupil:{pupil}"), format!("{n} rows"));
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin(departement: Option<i64>, school: Option<i64>) -> User {
        User {
            id: 1,
            email: "a@b.fr".into(),
            password_hash: String::new(),
            role: UserRole::Admin,
            departement,
            school,
            created_at: 0,
            disabled: false,
        }
    }

    #[test]
    fn scopes_and_emails() {
        let sc = School { id: 7, departement: 2, name: "X".into() };
        assert!(in_scope(&admin(None, None), &sc));
        assert!(in_scope(&admin(Some(2), None), &sc));
        assert!(!in_scope(&admin(Some(3), None), &sc));
        assert!(in_scope(&admin(Some(2), Some(7)), &sc));
        assert!(!in_scope(&admin(Some(2), Some(8)), &sc));
        assert!(valid_email("prof@ecole.fr"));
        assert!(!valid_email("prof@"));
        assert!(!valid_email("a b@c.fr"));
        assert!(!valid_email("nobody"));
    }
}
