//! Token revocations (by subject, until its tokens expire; by role key version) and the
//! token signing keys (`kid`): the newest signs, older ones verify until retired.

use crate::{Result, Store, now_ms};

/// A token signing key.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SigningKey {
    /// Key id (the JWT header's `kid`).
    pub kid: String,
    /// The HS256 secret.
    pub secret: String,
    /// When made (ms).
    pub created_at: i64,
    /// When retired (ms): it no longer verifies.
    pub retired_at: Option<i64>,
}

impl Store {
    /// Refuse `subject`'s tokens until `until` (seconds since the epoch).
    pub async fn revoke_subject(&self, subject: &str, until: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO revoked_subjects (subject, until) VALUES ($1, $2) \
             ON CONFLICT (subject) DO UPDATE SET until = CASE WHEN excluded.until > revoked_subjects.until \
             THEN excluded.until ELSE revoked_subjects.until END",
        )
        .bind(subject)
        .bind(until)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Revoked subjects still in force at `now` (seconds).
    pub async fn revoked_subjects(&self, now: i64) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as("SELECT subject, until FROM revoked_subjects WHERE until >= $1")
            .bind(now)
            .fetch_all(self.pool())
            .await?)
    }

    /// Forget revocations of tokens that have expired anyway.
    pub async fn sweep_revocations(&self, now: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM revoked_subjects WHERE until < $1")
            .bind(now)
            .execute(self.pool())
            .await?
            .rows_affected())
    }

    /// Bump a role's key version (every older token of it is refused); returns the new one.
    pub async fn bump_role_version(&self, role: &str) -> Result<i64> {
        let (v,): (i64,) = sqlx::query_as(
            "INSERT INTO role_versions (role, version) VALUES ($1, 1) \
             ON CONFLICT (role) DO UPDATE SET version = role_versions.version + 1 RETURNING version",
        )
        .bind(role)
        .fetch_one(self.pool())
        .await?;
        Ok(v)
    }

    /// Every role's key version.
    pub async fn role_versions(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as("SELECT role, version FROM role_versions ORDER BY role").fetch_all(self.pool()).await?)
    }

    /// Add a signing key; it signs from now on.
    pub async fn add_signing_key(&self, kid: &str, secret: &str) -> Result<()> {
        sqlx::query("INSERT INTO signing_keys (kid, secret, created_at) VALUES ($1, $2, $3)")
            .bind(kid)
            .bind(secret)
            .bind(now_ms())
            .execute(self.pool())
            .await
            .map_err(|e| crate::unique(e, "key id"))?;
        Ok(())
    }

    /// The signing keys not retired, newest first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKey>> {
        Ok(sqlx::query_as(
            "SELECT kid, secret, created_at, retired_at FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC, kid",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Retire every signing key but the newest `keep`.
    pub async fn retire_signing_keys(&self, keep: usize) -> Result<u64> {
        let keys = self.signing_keys().await?;
        let mut n = 0;
        for k in keys.iter().skip(keep) {
            n += sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE kid = $2")
                .bind(now_ms())
                .bind(&k.kid)
                .execute(self.pool())
                .await?
                .rows_affected();
        }
        Ok(n)
    }
}
