//! Class sessions (a class from its start to its end) and the attendance of pupils in them:
//! one row per pupil and session, merged across reconnections (first join, last leave), with
//! the transport and quality it had. Pupils are a class-scoped pseudonym (their token
//! subject) and the first name they typed.

use crate::{Result, Store, now_ms};
use serde::Serialize;

/// A class session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ClassSession {
    /// Row id.
    pub id: i64,
    /// Class id.
    pub class: String,
    /// Start (ms).
    pub started_at: i64,
    /// End (ms), once ended.
    pub ended_at: Option<i64>,
}

/// A pupil's attendance in a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AttendanceRow {
    /// The session.
    pub session: i64,
    /// The pupil's pseudonym (token subject).
    pub pupil: String,
    /// The first name it gave.
    pub name: String,
    /// First join (ms).
    pub joined_at: i64,
    /// Last leave (ms), `None` while present.
    pub left_at: Option<i64>,
    /// How its media travelled (udp, tcp, relay).
    pub transport: Option<String>,
    /// Its connection quality as last reported (good, weak, offline).
    pub quality: Option<String>,
}

impl Store {
    /// Open a session of `class` at `at` (or return the one still open).
    pub async fn start_session(&self, class: &str, at: i64) -> Result<i64> {
        if let Some(s) = self.open_session(class).await? {
            return Ok(s.id);
        }
        let (id,): (i64,) =
            sqlx::query_as("INSERT INTO class_sessions (class, started_at) VALUES ($1, $2) RETURNING id")
                .bind(class)
                .bind(at)
                .fetch_one(self.pool())
                .await?;
        Ok(id)
    }

    /// The session of `class` still open, if any.
    pub async fn open_session(&self, class: &str) -> Result<Option<ClassSession>> {
        Ok(sqlx::query_as(
            "SELECT id, class, started_at, ended_at FROM class_sessions WHERE class = $1 AND ended_at IS NULL \
             ORDER BY started_at DESC LIMIT 1",
        )
        .bind(class)
        .fetch_optional(self.pool())
        .await?)
    }

    /// End session `id` at `at`; pupils still present leave then.
    pub async fn end_session(&self, id: i64, at: i64) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("UPDATE class_sessions SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL")
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE attendance SET left_at = $1 WHERE session = $2 AND left_at IS NULL")
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The sessions of a class, the most recent first.
    pub async fn sessions_of_class(&self, class: &str, limit: i64) -> Result<Vec<ClassSession>> {
        Ok(sqlx::query_as(
            "SELECT id, class, started_at, ended_at FROM class_sessions WHERE class = $1 ORDER BY started_at DESC LIMIT $2",
        )
        .bind(class)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// A pupil arrived (or came back) in session `session`: its first join is kept.
    pub async fn attendance_join(&self, session: i64, pupil: &str, name: &str, at: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO attendance (session, pupil, name, joined_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (session, pupil) DO UPDATE SET left_at = NULL",
        )
        .bind(session)
        .bind(pupil)
        .bind(name)
        .bind(at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A pupil left session `session` at `at` (the last leave is kept).
    pub async fn attendance_leave(&self, session: i64, pupil: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE attendance SET left_at = $1 WHERE session = $2 AND pupil = $3")
            .bind(at)
            .bind(session)
            .bind(pupil)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// What a pupil's link was like: its transport and/or quality.
    pub async fn attendance_link(
        &self,
        session: i64,
        pupil: &str,
        transport: Option<&str>,
        quality: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE attendance SET transport = COALESCE($1, transport), quality = COALESCE($2, quality) \
             WHERE session = $3 AND pupil = $4",
        )
        .bind(transport)
        .bind(quality)
        .bind(session)
        .bind(pupil)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The attendance of a class (every session), the most recent first (at most `limit`).
    pub async fn attendance_of_class(&self, class: &str, limit: i64) -> Result<Vec<AttendanceRow>> {
        Ok(sqlx::query_as(
            "SELECT a.session, a.pupil, a.name, a.joined_at, a.left_at, a.transport, a.quality \
             FROM attendance a JOIN class_sessions s ON s.id = a.session \
             WHERE s.class = $1 ORDER BY a.joined_at DESC, a.pupil LIMIT $2",
        )
        .bind(class)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Everything stored about one pupil pseudonym (its export).
    pub async fn attendance_of_pupil(&self, pupil: &str) -> Result<Vec<AttendanceRow>> {
        Ok(sqlx::query_as(
            "SELECT session, pupil, name, joined_at, left_at, transport, quality FROM attendance \
             WHERE pupil = $1 ORDER BY joined_at",
        )
        .bind(pupil)
        .fetch_all(self.pool())
        .await?)
    }

    /// Erase one pupil pseudonym's data; returns the rows erased.
    pub async fn erase_pupil(&self, pupil: &str) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM attendance WHERE pupil = $1")
            .bind(pupil)
            .execute(self.pool())
            .await?
            .rows_affected())
    }

    /// Forget attendance older than `before` (ms), and the ended sessions left empty.
    pub async fn sweep_attendance(&self, before: i64) -> Result<u64> {
        let n = sqlx::query("DELETE FROM attendance WHERE joined_at < $1")
            .bind(before)
            .execute(self.pool())
            .await?
            .rows_affected();
        sqlx::query(
            "DELETE FROM class_sessions WHERE ended_at IS NOT NULL AND ended_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM attendance a WHERE a.session = class_sessions.id)",
        )
        .bind(before)
        .execute(self.pool())
        .await?;
        Ok(n)
    }

    /// At start, after a crash: every pupil still marked present left now (those who come
    /// back clear it again); open sessions stay open, the class goes on.
    pub async fn mark_everyone_left(&self) -> Result<u64> {
        self.mark_left(None).await
    }

    /// [`Store::mark_everyone_left`] in `classes` only (a node of a cluster, after a crash:
    /// the classes it owned).
    pub async fn mark_left_in(&self, classes: &[String]) -> Result<u64> {
        self.mark_left(Some(classes)).await
    }

    async fn mark_left(&self, classes: Option<&[String]>) -> Result<u64> {
        let at = now_ms();
        let open: Vec<(i64, String)> = sqlx::query_as("SELECT id, class FROM class_sessions WHERE ended_at IS NULL")
            .fetch_all(self.pool())
            .await?;
        let mut n = 0;
        for (id, class) in open {
            if classes.is_some_and(|list| !list.contains(&class)) {
                continue;
            }
            let r = sqlx::query("UPDATE attendance SET left_at = $1 WHERE session = $2 AND left_at IS NULL")
                .bind(at)
                .bind(id)
                .execute(self.pool())
                .await?;
            n += r.rows_affected();
        }
        Ok(n)
    }
}
