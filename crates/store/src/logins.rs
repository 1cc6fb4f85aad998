//! Login sessions: a random cookie (only its hash is stored), its CSRF token and expiry.

use crate::{Result, Store, User, now_ms};

/// A live login session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// Who.
    pub user: User,
    /// The CSRF token its changes must carry.
    pub csrf: String,
    /// When it expires.
    pub expires_at: i64,
}

impl Store {
    /// Record a login session under `token_hash`.
    pub async fn create_login(&self, token_hash: &str, user: i64, csrf: &str, expires_at: i64) -> Result<()> {
        sqlx::query("INSERT INTO login_sessions (token_hash, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(token_hash)
            .bind(user)
            .bind(csrf)
            .bind(now_ms())
            .bind(expires_at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The live session under `token_hash`, if any (expired ones are none).
    pub async fn login(&self, token_hash: &str) -> Result<Option<Login>> {
        let row: Option<(i64, String, i64)> = sqlx::query_as(
            "SELECT user_id, csrf, expires_at FROM login_sessions WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now_ms())
        .fetch_optional(self.pool())
        .await?;
        let Some((user, csrf, expires_at)) = row else { return Ok(None) };
        let user = self.user(user).await?;
        if user.disabled {
            return Ok(None);
        }
        Ok(Some(Login { user, csrf, expires_at }))
    }

    /// End a login session (logout).
    pub async fn delete_login(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM login_sessions WHERE token_hash = $1").bind(token_hash).execute(self.pool()).await?;
        Ok(())
    }

    /// End every session of a user (password reset).
    pub async fn delete_logins_of(&self, user: i64) -> Result<()> {
        sqlx::query("DELETE FROM login_sessions WHERE user_id = $1").bind(user).execute(self.pool()).await?;
        Ok(())
    }

    /// Forget expired sessions; returns how many.
    pub async fn prune_logins(&self) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM login_sessions WHERE expires_at <= $1")
            .bind(now_ms())
            .execute(self.pool())
            .await?
            .rows_affected())
    }
}
