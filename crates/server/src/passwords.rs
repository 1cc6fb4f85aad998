//! Passwords: argon2id (the `argon2` crate's defaults: 19 MiB, 2 passes), hashed and checked
//! on one thread of their own under `SCHED_IDLE`, so that a burst of logins never stalls the
//! HTTP tasks or takes CPU time the media workers want: on a busy machine a login waits, a
//! class never does.
//!
//! Rules:
//! - a password is 12 to 128 characters;
//! - an unknown email is checked against a fixed dummy hash, so a wrong password and an
//!   unknown email take the same time;
//! - at most [`QUEUE`] checks wait for the thread; beyond, the caller answers 503 with
//!   `Retry-After` (one check takes ~25 ms: the thread does ~40 a second).

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

/// Password work waiting at most for the thread.
pub const QUEUE: usize = 64;

type Job = Box<dyn FnOnce() + Send>;

/// The password thread is busy: [`QUEUE`] checks already wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// Run `f` on the password thread (started on first use).
async fn on_password_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Busy> {
    static THREAD: OnceLock<std::sync::mpsc::SyncSender<Job>> = OnceLock::new();
    let tx = THREAD.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(QUEUE);
        std::thread::Builder::new()
            .name("ardoise-passwords".into())
            .spawn(move || {
                // SCHED_IDLE: this thread runs only on CPU time nothing else wants (the media
                // workers and the HTTP tasks first). SAFETY: no memory-safety preconditions.
                unsafe {
                    let param = libc::sched_param { sched_priority: 0 };
                    libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
                }
                while let Ok(job) = rx.recv() {
                    job();
                }
            })
            .expect("start the password thread");
        tx
    });
    let (done, result) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = done.send(f());
    });
    tx.try_send(job).map_err(|_| Busy)?;
    result.await.map_err(|_| Busy)
}

/// [`hash_blocking`] on the password thread.
pub async fn hash(password: String) -> Result<String, Busy> {
    on_password_thread(move || hash_blocking(&password)).await
}

/// [`verify_blocking`] on the password thread.
pub async fn verify(password: String, hash: Option<String>) -> Result<bool, Busy> {
    on_password_thread(move || verify_blocking(&password, hash.as_deref())).await
}

impl From<Busy> for crate::Problem {
    fn from(_: Busy) -> Self {
        crate::Problem::unavailable("too many logins at once; try again in a second", 1)
    }
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
