//! The append-only audit log of admin and teacher actions.

use crate::{Result, Store, now_ms};
use serde::Serialize;

/// One action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    /// Row id (increasing).
    pub id: i64,
    /// When (ms).
    pub at: i64,
    /// Who: `user:ID <email>`, `token:SUBJECT (role)`, `cli`.
    pub actor: String,
    /// What: `class.create`, `floor.grant`, `pupil.remove`, `class.end`, `attendance.export`, …
    pub action: String,
    /// On what: `class:ID`, `user:ID`, `pupil:SUBJECT`.
    pub target: String,
    /// More, in words.
    pub detail: String,
}

impl Store {
    /// Append an entry.
    pub async fn audit(&self, actor: &str, action: &str, target: &str, detail: &str) -> Result<()> {
        sqlx::query("INSERT INTO audit (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)")
            .bind(now_ms())
            .bind(actor)
            .bind(action)
            .bind(target)
            .bind(detail)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The latest entries (before id `before` if given), newest first, at most `limit`.
    pub async fn audit_log(&self, before: Option<i64>, limit: i64) -> Result<Vec<AuditEntry>> {
        Ok(sqlx::query_as(
            "SELECT id, at, actor, action, target, detail FROM audit WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Forget entries older than `before` (ms): the retention limit.
    pub async fn sweep_audit(&self, before: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM audit WHERE at < $1").bind(before).execute(self.pool()).await?.rows_affected())
    }
}
