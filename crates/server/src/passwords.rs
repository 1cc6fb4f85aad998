//! Passwords: argon2id (the `argon2` crate's defaults: 19 MiB, 2 passes), hashed and checked
//! on the blocking pool so that a burst of logins never stalls the HTTP tasks.
//!
//! Rules:
//! - a password is 12 to 128 characters;
//! - an unknown email is checked against a fixed dummy hash, so a wrong password and an
//!   unknown email take the same time.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use std::sync::OnceLock;

/// Shortest password accepted.
pub const MIN_LEN: usize = 12;
/// Longest password accepted (argon2 takes any length; a bound keeps requests small).
pub const MAX_LEN: usize = 128;

/// Why a password is refused.
pub fn check_strength(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if !(MIN_LEN..=MAX_LEN).contains(&n) {
        return Err(format!("a password has {MIN_LEN} to {MAX_LEN} characters"));
    }
    Ok(())
}

/// The argon2id PHC string of `password` (blocking: call on the blocking pool).
pub fn hash_blocking(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).expect("argon2id with default parameters").to_string()
}

/// Whether `password` matches `hash` (blocking). `None` checks against a dummy hash and is
/// always false: the same work as a real check.
pub fn verify_blocking(password: &str, hash: Option<&str>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_blocking("not a password anyone has"));
    let real = hash.is_some();
    let parsed = match PasswordHash::new(hash.unwrap_or(dummy)) {
        Ok(p) => p,
        Err(_) => PasswordHash::new(dummy).expect("the dummy hash parses"),
    };
    let ok = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
    ok && real
}

/// [`hash_blocking`] on the blocking pool.
pub async fn hash(password: String) -> String {
    tokio::task::spawn_blocking(move || hash_blocking(&password)).await.expect("hashing does not panic")
}

/// [`verify_blocking`] on the blocking pool.
pub async fn verify(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || verify_blocking(&password, hash.as_deref())).await.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_unknown_users_cost_the_same() {
        let h = hash_blocking("correct horse battery");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_blocking("correct horse battery", Some(&h)));
        assert!(!verify_blocking("wrong horse battery", Some(&h)));
        assert!(!verify_blocking("correct horse battery", None), "an unknown user never matches");
        assert!(!verify_blocking("x", Some("not a phc string")));
        // Same work either way (within a generous factor on a shared box).
        let t = std::time::Instant::now();
        verify_blocking("guess", Some(&h));
        let known = t.elapsed();
        let t = std::time::Instant::now();
        verify_blocking("guess", None);
        let unknown = t.elapsed();
        assert!(unknown.as_secs_f64() > known.as_secs_f64() / 3.0 && unknown.as_secs_f64() < known.as_secs_f64() * 3.0);
        assert!(check_strength("short").is_err());
        assert!(check_strength("a long enough password").is_ok());
    }
}
