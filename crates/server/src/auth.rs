//! Signed tokens (HS256 JWT) carrying role, class and expiry.

use ardoise_proto::{Claims, ClassId, Role};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// Why a token was refused or could not be made.
#[derive(Debug, Error)]
pub enum AuthError {
    /// Bad signature, malformed, or expired.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The secret file could not be read or created.
    #[error("token secret {path}: {source}")]
    Secret {
        /// File.
        path: String,
        /// OS error.
        source: std::io::Error,
    },
}

/// Issues and verifies tokens with one secret.
#[derive(Clone)]
pub struct TokenSigner {
    enc: EncodingKey,
    dec: DecodingKey,
    ttl_secs: u64,
}

impl TokenSigner {
    /// A signer with this secret and default lifetime.
    pub fn new(secret: &[u8], ttl_secs: u64) -> Result<Self, AuthError> {
        let bad = |e: jsonwebtoken::errors::Error| AuthError::Invalid(format!("unusable secret: {e}"));
        Ok(TokenSigner {
            enc: EncodingKey::from_secret(secret).map_err(bad)?,
            dec: DecodingKey::from_secret(secret).map_err(bad)?,
            ttl_secs,
        })
    }

    /// The configured secret, or the one in `dir/jwt-secret` (created with mode 0600 if missing).
    pub fn secret_from(configured: &str, dir: &Path) -> Result<Vec<u8>, AuthError> {
        if !configured.is_empty() {
            return Ok(configured.as_bytes().to_vec());
        }
        let path = dir.join("jwt-secret");
        let err = |source| AuthError::Secret { path: path.display().to_string(), source };
        match std::fs::read(&path) {
            Ok(s) if s.len() >= 32 => return Ok(s),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        std::fs::create_dir_all(dir).map_err(err)?;
        let secret: String = (0..48).map(|_| char::from(b'a' + rand::random_range(0..26u8))).collect();
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        match opts.open(&path) {
            Ok(mut f) => {
                f.write_all(secret.as_bytes()).map_err(err)?;
                Ok(secret.into_bytes())
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read(&path).map_err(err),
            Err(e) => Err(err(e)),
        }
    }

    /// Default lifetime, seconds.
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// Issue a token.
    pub fn issue(&self, role: Role, class: Option<ClassId>, name: Option<String>, ttl_secs: Option<u64>) -> String {
        let now = unix_now();
        let claims = Claims {
            sub: format!("{:016x}", rand::random::<u64>()),
            role,
            class,
            name,
            iat: now,
            exp: now + ttl_secs.unwrap_or(self.ttl_secs),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.enc).expect("HS256 signing cannot fail")
    }

    /// Verify a token and return its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 5;
        v.required_spec_claims = ["exp"].into_iter().map(String::from).collect();
        let data = jsonwebtoken::decode::<Claims>(token, &self.dec, &v).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let c = data.claims;
        if c.role.is_class_bound() && c.class.is_none() {
            return Err(AuthError::Invalid("token has no class".into()));
        }
        Ok(c)
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Parse a lifetime such as `90s`, `15m`, `2h`, `1d` or plain seconds.
pub fn parse_ttl(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('s') => (&s[..s.len() - 1], 1),
        Some('m') => (&s[..s.len() - 1], 60),
        Some('h') => (&s[..s.len() - 1], 3600),
        Some('d') => (&s[..s.len() - 1], 86400),
        _ => (s, 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("invalid duration '{s}' (e.g. 90s, 15m, 2h)"))?;
    if n == 0 {
        return Err("duration must be positive".into());
    }
    Ok(n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_verify_and_reject() {
        let s = TokenSigner::new(b"0123456789abcdef0123456789abcdef", 60).unwrap();
        let t = s.issue(Role::Teacher, Some("demo".into()), None, None);
        let c = s.verify(&t).unwrap();
        assert_eq!(c.role, Role::Teacher);
        assert!(c.covers(&"demo".into()));
        assert!(!c.covers(&"other".into()));
        let other = TokenSigner::new(b"another secret, also long enough", 60).unwrap();
        assert!(other.verify(&t).is_err(), "wrong secret");
        let expired = s.issue(Role::Pupil, Some("demo".into()), Some("Léa".into()), Some(1));
        let mut claims = s.verify(&expired).unwrap();
        claims.exp = unix_now() - 100;
        let forged = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef").unwrap()).unwrap();
        assert!(s.verify(&forged).is_err(), "expired");
        assert!(s.verify("garbage").is_err());
    }

    #[test]
    fn secret_file_is_created_once_with_0600() {
        let dir = std::env::temp_dir().join(format!("ardoise-secret-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = TokenSigner::secret_from("", &dir).unwrap();
        let b = TokenSigner::secret_from("", &dir).unwrap();
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("jwt-secret")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn ttl_parsing() {
        assert_eq!(parse_ttl("2h"), Ok(7200));
        assert_eq!(parse_ttl("90s"), Ok(90));
        assert_eq!(parse_ttl("15m"), Ok(900));
        assert_eq!(parse_ttl("120"), Ok(120));
        assert!(parse_ttl("soon").is_err());
        assert!(parse_ttl("0h").is_err());
    }
}
