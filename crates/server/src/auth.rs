//! Signed tokens (HS256 JWT) carrying role, class and expiry, signed by a ring of keys.
//!
//! Rules:
//! - the keys live in the database (`signing_keys`), so that `ardoise token`, the server and
//!   other nodes sign and verify with the same ones; the first key is the secret of
//!   `auth.secret` or `<data.dir>/jwt-secret`;
//! - the newest key signs, and its id is the token's `kid`; the newest [`KEYS_KEPT`] verify;
//! - `ardoise keys rotate` adds a key and retires the older ones: a token signed with a
//!   retired key is refused. Tokens live at most a day: rotate less often than that, or twice
//!   to cut every token at once after a leak;
//! - a token without `kid` (made before keys rotated) is checked against every kept key.

use crate::revocations::Revocations;
use ardoise_proto::{Claims, ClassId, Role};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use thiserror::Error;
use tracing::warn;

/// Shortest token secret accepted, bytes (HS256 wants at least its 256-bit output).
pub const MIN_SECRET_BYTES: usize = 32;

/// Why a token was refused or could not be made.
#[derive(Debug, Error)]
pub enum AuthError {
    /// Bad signature, malformed, or expired.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The secret is too short, empty, or readable by others and cannot be fixed.
    #[error("token secret {path}: {problem}")]
    WeakSecret {
        /// Where it came from.
        path: String,
        /// What is wrong and what to do.
        problem: String,
    },
    /// The secret file could not be read or created.
    #[error("token secret {path}: {source}")]
    Secret {
        /// File.
        path: String,
        /// OS error.
        source: std::io::Error,
    },
}

/// Signing keys that verify: the newest signs, this many verify.
pub const KEYS_KEPT: usize = 2;

/// An HMAC-SHA256 key for `purpose`, derived from `secret` (HMAC(secret, purpose)): a
/// secret signs tokens, and what it derives signs something else.
fn derived_key(secret: &[u8], purpose: &[u8]) -> aws_lc_rs::hmac::Key {
    use aws_lc_rs::hmac;
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), purpose);
    hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref())
}

/// One key of the ring.
struct SigningKey {
    /// Its id (`kid`); empty for a signer made from a bare secret (tests, tools).
    kid: String,
    enc: EncodingKey,
    dec: DecodingKey,
    /// The key of download links, derived from this key's secret (never the secret itself).
    link: aws_lc_rs::hmac::Key,
}

impl SigningKey {
    fn new(kid: &str, secret: &[u8]) -> Result<Self, AuthError> {
        let bad = |e: jsonwebtoken::errors::Error| AuthError::Invalid(format!("unusable secret: {e}"));
        Ok(SigningKey {
            kid: kid.to_owned(),
            enc: EncodingKey::from_secret(secret).map_err(bad)?,
            dec: DecodingKey::from_secret(secret).map_err(bad)?,
            link: derived_key(secret, b"ardoise download links"),
        })
    }
}

/// Issues and verifies tokens with a ring of keys (newest first).
#[derive(Clone)]
pub struct TokenSigner {
    keys: Arc<std::sync::RwLock<Vec<SigningKey>>>,
    ttl_secs: u64,
    revocations: Arc<Revocations>,
}

impl TokenSigner {
    /// A signer with this one secret (no `kid`) and default lifetime.
    pub fn new(secret: &[u8], ttl_secs: u64) -> Result<Self, AuthError> {
        Ok(TokenSigner {
            keys: Arc::new(std::sync::RwLock::new(vec![SigningKey::new("", secret)?])),
            ttl_secs,
            revocations: Arc::new(Revocations::in_memory()),
        })
    }

    /// The signer of the keys in `store`: when it has none yet, `secret` becomes the first.
    pub async fn from_store(secret: &[u8], ttl_secs: u64, store: &ardoise_store::Store) -> Result<Self, AuthError> {
        let s = Self::new(secret, ttl_secs)?;
        let db = |e: ardoise_store::StoreError| AuthError::Invalid(format!("signing keys: {e}"));
        if store.signing_keys().await.map_err(db)?.is_empty() {
            // Named after the secret: servers configured with the same secret agree on it,
            // even on fresh databases (32 bits of a hash say nothing of a 256-bit secret).
            let mut tagged = b"ardoise signing key ".to_vec();
            tagged.extend_from_slice(secret);
            let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &tagged);
            let kid = format!("s{}", d.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect::<String>());
            match store.add_signing_key(&kid, &encode_secret(secret)).await {
                Ok(()) | Err(ardoise_store::StoreError::Duplicate(_)) => {}
                Err(e) => return Err(db(e)),
            }
        }
        s.reload_keys(store).await.map_err(db)?;
        Ok(s)
    }

    /// Take the keys of `store` (newest [`KEYS_KEPT`]) if they changed; returns whether
    /// they did. Another process's rotation reaches a running server this way.
    pub async fn reload_keys(&self, store: &ardoise_store::Store) -> Result<bool, ardoise_store::StoreError> {
        let rows = store.signing_keys().await?;
        let rows = &rows[..rows.len().min(KEYS_KEPT)];
        let same = {
            let ring = self.keys.read().unwrap_or_else(|e| e.into_inner());
            ring.iter().map(|k| &k.kid).eq(rows.iter().map(|k| &k.kid))
        };
        if rows.is_empty() || same {
            return Ok(false);
        }
        let mut ring = Vec::new();
        for k in rows {
            let secret = decode_secret(&k.secret)
                .ok_or_else(|| ardoise_store::StoreError::Unusable(format!("signing key {} is not base64", k.kid)))?;
            ring.push(
                SigningKey::new(&k.kid, &secret).map_err(|e| ardoise_store::StoreError::Unusable(e.to_string()))?,
            );
        }
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = ring;
        Ok(true)
    }

    /// The keys of download links, newest (the one that signs) first: one per kept signing
    /// key, so links outlive a restart, verify on every node sharing the database, and die
    /// with their signing key when keys rotate.
    pub fn link_keys(&self) -> Vec<aws_lc_rs::hmac::Key> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).iter().map(|k| k.link.clone()).collect()
    }

    /// The id of the key that signs now.
    pub fn current_kid(&self) -> String {
        self.keys.read().unwrap_or_else(|e| e.into_inner())[0].kid.clone()
    }

    /// Issue tokens with the role key versions of `revocations` (and share it).
    pub fn with_revocations(mut self, revocations: Arc<Revocations>) -> Self {
        self.revocations = revocations;
        self
    }

    /// The revocation list this signer issues against.
    pub fn revocations(&self) -> &Arc<Revocations> {
        &self.revocations
    }

    /// The configured secret, or the one in `dir/jwt-secret` (created with mode 0600 if
    /// missing). A secret shorter than [`MIN_SECRET_BYTES`] or an empty file is refused; a
    /// file others may read is made private (0600), or refused if that fails.
    pub fn secret_from(configured: &str, dir: &Path) -> Result<Vec<u8>, AuthError> {
        if !configured.is_empty() {
            if configured.len() < MIN_SECRET_BYTES {
                return Err(AuthError::WeakSecret {
                    path: "auth.secret".into(),
                    problem: format!("{} bytes; at least {MIN_SECRET_BYTES} are needed", configured.len()),
                });
            }
            return Ok(configured.as_bytes().to_vec());
        }
        let path = dir.join("jwt-secret");
        let shown = path.display().to_string();
        let err = |source| AuthError::Secret { path: shown.clone(), source };
        match std::fs::read(&path) {
            Ok(s) => return checked_secret_file(&path, s),
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
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                checked_secret_file(&path, std::fs::read(&path).map_err(err)?)
            }
            Err(e) => Err(err(e)),
        }
    }

    /// Default lifetime, seconds.
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// Issue a token for a new subject.
    pub fn issue(&self, role: Role, class: Option<ClassId>, name: Option<String>, ttl_secs: Option<u64>) -> String {
        self.issue_claims(role, class, name, ttl_secs).0
    }

    /// Issue a token for a new subject; also returns its claims.
    pub fn issue_claims(
        &self,
        role: Role,
        class: Option<ClassId>,
        name: Option<String>,
        ttl_secs: Option<u64>,
    ) -> (String, Claims) {
        let now = unix_now();
        let claims = Claims {
            sub: format!("{:016x}", rand::random::<u64>()),
            role,
            class,
            name,
            iat: now,
            exp: now + ttl_secs.unwrap_or(self.ttl_secs),
            kv: self.revocations.version(role),
        };
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let key = &keys[0];
        let mut header = Header::new(Algorithm::HS256);
        header.kid = (!key.kid.is_empty()).then(|| key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &key.enc).expect("HS256 signing cannot fail");
        (token, claims)
    }

    /// Verify a token and return its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 5;
        v.required_spec_claims = ["exp"].into_iter().map(String::from).collect();
        let invalid = |e: jsonwebtoken::errors::Error| {
            AuthError::Invalid(match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "the token has expired".into(),
                _ => "the token is not valid".into(),
            })
        };
        let kid = jsonwebtoken::decode_header(token).map_err(invalid)?.kid;
        let data = {
            let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
            // With a `kid`, only that key; without, each kept key in turn.
            let mut candidates = keys.iter().filter(|k| kid.as_ref().is_none_or(|id| *id == k.kid)).peekable();
            if kid.is_some() && candidates.peek().is_none() {
                return Err(AuthError::Invalid("the token's signing key was retired".into()));
            }
            let mut result = Err(AuthError::Invalid("the token is not valid".into()));
            for key in candidates {
                result = jsonwebtoken::decode::<Claims>(token, &key.dec, &v).map_err(invalid);
                if result.is_ok() {
                    break;
                }
            }
            result?
        };
        let c = data.claims;
        if c.role.is_class_bound() && c.class.is_none() {
            return Err(AuthError::Invalid("the token has no class".into()));
        }
        if self.revocations.refuses(&c, unix_now()) {
            return Err(AuthError::Invalid("this token was revoked".into()));
        }
        Ok(c)
    }
}

/// A key's secret as the database keeps it (base64url).
pub fn encode_secret(secret: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
}

fn decode_secret(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok()
}

/// Add a new signing key to `store` (it signs from now on, on every server within seconds)
/// and retire all but the newest [`KEYS_KEPT`]; returns its id.
pub async fn rotate_keys(store: &ardoise_store::Store) -> Result<String, ardoise_store::StoreError> {
    let kid = format!("k{:08x}", rand::random::<u32>());
    let secret: Vec<u8> = (0..48).map(|_| rand::random::<u8>()).collect();
    store.add_signing_key(&kid, &encode_secret(&secret)).await?;
    store.retire_signing_keys(KEYS_KEPT).await?;
    Ok(kid)
}

/// Check the bytes of an existing secret file and its permissions.
fn checked_secret_file(path: &Path, mut secret: Vec<u8>) -> Result<Vec<u8>, AuthError> {
    let weak = |problem: String| AuthError::WeakSecret { path: path.display().to_string(), problem };
    while secret.last().is_some_and(|b| b.is_ascii_whitespace()) {
        secret.pop(); // `openssl rand -hex 32 > jwt-secret` ends with a newline
    }
    if secret.is_empty() {
        return Err(weak(
            "the file is empty: delete it (a new secret is made at start) or write at least 32 random bytes in it"
                .into(),
        ));
    }
    if secret.len() < MIN_SECRET_BYTES {
        return Err(weak(format!(
            "{} bytes; at least {MIN_SECRET_BYTES} are needed (delete the file to have one made)",
            secret.len()
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map(|m| m.permissions().mode()).unwrap_or(0o600);
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
                weak(format!("mode {:o} lets other users read it, and it cannot be changed to 600: {e}", mode & 0o777))
            })?;
            warn!(path = %path.display(), "the token secret was readable by other users (mode {:o}); changed to 600", mode & 0o777);
        }
    }
    Ok(secret)
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
        let (revoked, rc) = s.issue_claims(Role::Pupil, Some("demo".into()), Some("Noé".into()), None);
        s.revocations().revoke_subject(&rc.sub, rc.exp, unix_now()).unwrap();
        assert!(s.verify(&revoked).is_err(), "revoked subject");
        let teacher_before = s.issue(Role::Teacher, Some("demo".into()), None, None);
        s.revocations().bump_role(Role::Teacher, unix_now()).unwrap();
        assert!(s.verify(&teacher_before).is_err(), "older role key version");
        assert!(
            s.verify(&s.issue(Role::Teacher, Some("demo".into()), None, None)).is_ok(),
            "new tokens carry the new version"
        );
        let expired = s.issue(Role::Pupil, Some("demo".into()), Some("Léa".into()), Some(1));
        let mut claims = s.verify(&expired).unwrap();
        claims.exp = unix_now() - 100;
        let forged = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef").unwrap(),
        )
        .unwrap();
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
            let file = dir.join("jwt-secret");
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert_eq!(TokenSigner::secret_from("", &dir).unwrap(), a, "same secret after fixing the mode");
            assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600, "made private");
        }
        std::fs::write(dir.join("jwt-secret"), "x").unwrap();
        let e = TokenSigner::secret_from("", &dir).unwrap_err().to_string();
        assert!(e.contains("at least 32"), "{e}");
        std::fs::write(dir.join("jwt-secret"), "").unwrap();
        let e = TokenSigner::secret_from("", &dir).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        assert!(TokenSigner::secret_from("tooshort", &dir).is_err());
        let _ = std::fs::remove_dir_all(&dir);
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
