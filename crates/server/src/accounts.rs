//! Logins of teachers and admins: `POST /api/login` (email and password), the session cookie,
//! CSRF, `GET /api/me`, `POST /api/logout`.
//!
//! Rules:
//! - the cookie `ardoise_session` holds 32 random bytes; the database keeps only their
//!   SHA-256; it is `HttpOnly`, `SameSite=Strict`, `Path=/`, and `Secure` over HTTPS;
//! - a change made with the cookie carries the login's CSRF token in `X-CSRF-Token`;
//! - attempts are limited per client address and per email (429 with `Retry-After`); a wrong
//!   password and an unknown email get the same answer after the same work (argon2id).

use crate::Problem;
use crate::limits::ClientAddr;
use crate::state::SharedState;
use ardoise_store::{Login, User, UserRole, now_ms};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::{Deserialize, Serialize};
use tracing::info;

/// The session cookie's name.
pub const COOKIE: &str = "ardoise_session";
/// The CSRF header's name.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// `POST /api/login` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
}

/// A user as the pages see it.
#[derive(Debug, Serialize)]
pub struct Me {
    /// User id.
    pub id: i64,
    /// Email.
    pub email: String,
    /// admin or teacher.
    pub role: UserRole,
    /// An admin's département scope.
    pub departement: Option<i64>,
    /// An admin's school scope.
    pub school: Option<i64>,
    /// A teacher's schools (an admin of one school: that one).
    pub schools: Vec<ardoise_store::School>,
    /// The token to put in `X-CSRF-Token`.
    pub csrf: String,
}

fn random_token(bytes: usize) -> String {
    let b: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// SHA-256 of a cookie value, hex (what the database keeps).
pub fn token_hash(token: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The session cookie's value in `headers`, if any.
pub fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

fn set_cookie(value: &str, max_age: u64, tls: bool) -> HeaderValue {
    let secure = if tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"))
        .expect("cookie is ASCII")
}

async fn me_of(s: &SharedState, login: &Login) -> Result<Me, Problem> {
    let ids = match login.user.role {
        UserRole::Teacher => s.store.teacher_schools(login.user.id).await.map_err(crate::store_problem)?,
        UserRole::Admin => login.user.school.into_iter().collect(),
    };
    let mut schools = Vec::with_capacity(ids.len());
    for id in ids {
        schools.push(s.store.school(id).await.map_err(crate::store_problem)?);
    }
    let u = &login.user;
    Ok(Me {
        id: u.id,
        email: u.email.clone(),
        role: u.role,
        departement: u.departement,
        school: u.school,
        schools,
        csrf: login.csrf.clone(),
    })
}

/// `POST /api/login`: sets the session cookie and answers the user with its CSRF token.
pub async fn login(
    State(s): State<SharedState>,
    ClientAddr(ip): ClientAddr,
    body: Result<Json<LoginRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Problem> {
    s.limits.logins_ip.check(&ip)?;
    let Json(req) = body.map_err(|_| Problem::bad_request("send {\"email\": …, \"password\": …}"))?;
    let email = req.email.trim().to_lowercase();
    if email.is_empty() || email.len() > 254 || req.password.is_empty() || req.password.len() > 1024 {
        return Err(Problem::bad_request("an email and a password are required"));
    }
    s.limits.logins_account.check(&email)?;
    let user = s.store.user_by_email(&email).await.map_err(crate::store_problem)?;
    let hash = user.as_ref().filter(|u| !u.disabled).map(|u| u.password_hash.clone());
    let ok = crate::passwords::verify(req.password, hash).await?;
    let (true, Some(user)) = (ok, user) else {
        info!(%ip, "login refused");
        return Err(Problem::unauthorized("wrong email or password"));
    };
    let token = random_token(32);
    let csrf = random_token(24);
    let hours = s.accounts.session_hours;
    s.store
        .create_login(&token_hash(&token), user.id, &csrf, now_ms() + hours as i64 * 3_600_000)
        .await
        .map_err(crate::store_problem)?;
    info!(user = user.id, "login");
    let login = Login { user, csrf, expires_at: 0 };
    let me = me_of(&s, &login).await?;
    let mut r = Json(me).into_response();
    r.headers_mut().insert(header::SET_COOKIE, set_cookie(&token, hours * 3600, s.tls));
    Ok(r)
}

/// `POST /api/logout` (cookie and CSRF): ends the session.
pub async fn logout(State(s): State<SharedState>, headers: HeaderMap) -> Result<Response, Problem> {
    let login = s.logged_in(&headers, true).await?;
    if let Some(v) = cookie_value(&headers) {
        s.store.delete_login(&token_hash(&v)).await.map_err(crate::store_problem)?;
    }
    info!(user = login.user.id, "logout");
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(header::SET_COOKIE, set_cookie("", 0, s.tls));
    Ok(r)
}

/// `GET /api/me` (cookie): who is logged in, with the CSRF token (pages reloading need it).
pub async fn me(State(s): State<SharedState>, headers: HeaderMap) -> Result<Json<Me>, Problem> {
    let login = s.logged_in(&headers, false).await?;
    Ok(Json(me_of(&s, &login).await?))
}

impl crate::state::AppState {
    /// The login of the request's session cookie (401 without one); with `change`, its
    /// `X-CSRF-Token` must match (403 otherwise).
    pub async fn logged_in(&self, headers: &HeaderMap, change: bool) -> Result<Login, Problem> {
        let token = cookie_value(headers).ok_or_else(|| Problem::unauthorized("log in first"))?;
        let login = self
            .store
            .login(&token_hash(&token))
            .await
            .map_err(crate::store_problem)?
            .ok_or_else(|| Problem::unauthorized("the login has expired: log in again"))?;
        if change {
            let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
            if !constant_time_eq(sent.as_bytes(), login.csrf.as_bytes()) {
                return Err(Problem::forbidden("missing or wrong X-CSRF-Token"));
            }
        }
        Ok(login)
    }

    /// The logged-in admin (401/403 otherwise).
    pub async fn admin_user(&self, headers: &HeaderMap, change: bool) -> Result<User, Problem> {
        let login = self.logged_in(headers, change).await?;
        if login.user.role != UserRole::Admin {
            return Err(Problem::forbidden("an admin's login is required"));
        }
        Ok(login.user)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_and_written_strictly() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; ardoise_session=tok; b=2"));
        assert_eq!(cookie_value(&h).as_deref(), Some("tok"));
        let c = set_cookie("v", 60, true).to_str().unwrap().to_owned();
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"), "{c}");
        assert!(!set_cookie("v", 60, false).to_str().unwrap().contains("Secure"));
        assert_eq!(token_hash("x").len(), 64);
        assert!(
            constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"ab", b"abc")
        );
    }
}
