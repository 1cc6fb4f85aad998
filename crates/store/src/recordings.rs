//! What describes each recording of a class (its files stay in the data directory): title,
//! state, length, whether pupils see it and may download it, and when retention deletes it.

use crate::{Result, Store, StoreError};

/// One recording.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RecordingRow {
    /// Class id.
    pub class: String,
    /// Recording id (its start, ms, as digits): unique within the class.
    pub id: String,
    /// Title (the class's title when it started, until the teacher renames it).
    pub title: String,
    /// Start (ms).
    pub started_at: i64,
    /// Length (ms); 0 while recording.
    pub duration_ms: i64,
    /// `recording`, `ready`, `interrupted` (the server stopped meanwhile: what was closed
    /// stays) or `failed`.
    pub state: String,
    /// Pupils of the class see it (1) or not (0).
    pub published: i64,
    /// Pupils may download its smallest layer for offline viewing (1) or not (0).
    pub downloadable: i64,
    /// When retention deletes it (ms).
    pub expires_at: i64,
}

const COLUMNS: &str = "class, id, title, started_at, duration_ms, state, published, downloadable, expires_at";

impl Store {
    /// Describe a new recording.
    pub async fn insert_recording(&self, r: &RecordingRow) -> Result<()> {
        sqlx::query(&format!("INSERT INTO recordings ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"))
            .bind(&r.class)
            .bind(&r.id)
            .bind(&r.title)
            .bind(r.started_at)
            .bind(r.duration_ms)
            .bind(&r.state)
            .bind(r.published)
            .bind(r.downloadable)
            .bind(r.expires_at)
            .execute(self.pool())
            .await
            .map_err(|e| crate::unique(e, "recording"))?;
        Ok(())
    }

    /// A recording ended: its state and length.
    pub async fn finish_recording(&self, class: &str, id: &str, state: &str, duration_ms: i64) -> Result<()> {
        self.changed(
            sqlx::query("UPDATE recordings SET state = $1, duration_ms = $2 WHERE class = $3 AND id = $4")
                .bind(state)
                .bind(duration_ms)
                .bind(class)
                .bind(id)
                .execute(self.pool())
                .await?
                .rows_affected(),
        )
    }

    /// The teacher's settings of a recording: title, published, downloadable.
    pub async fn set_recording(
        &self,
        class: &str,
        id: &str,
        title: &str,
        published: bool,
        downloadable: bool,
    ) -> Result<()> {
        self.changed(
            sqlx::query(
                "UPDATE recordings SET title = $1, published = $2, downloadable = $3 WHERE class = $4 AND id = $5",
            )
            .bind(title)
            .bind(published as i64)
            .bind(downloadable as i64)
            .bind(class)
            .bind(id)
            .execute(self.pool())
            .await?
            .rows_affected(),
        )
    }

    fn changed(&self, rows: u64) -> Result<()> {
        if rows == 0 { Err(StoreError::NotFound("recording")) } else { Ok(()) }
    }

    /// One recording.
    pub async fn recording(&self, class: &str, id: &str) -> Result<RecordingRow> {
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM recordings WHERE class = $1 AND id = $2"))
            .bind(class)
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("recording"))
    }

    /// The class's recordings, newest first.
    pub async fn recordings_of_class(&self, class: &str) -> Result<Vec<RecordingRow>> {
        Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM recordings WHERE class = $1 ORDER BY started_at DESC"))
            .bind(class)
            .fetch_all(self.pool())
            .await?)
    }

    /// Forget a recording (its files are the caller's).
    pub async fn delete_recording(&self, class: &str, id: &str) -> Result<()> {
        self.changed(
            sqlx::query("DELETE FROM recordings WHERE class = $1 AND id = $2")
                .bind(class)
                .bind(id)
                .execute(self.pool())
                .await?
                .rows_affected(),
        )
    }

    /// Recordings whose retention ended before `now` (ms).
    pub async fn expired_recordings(&self, now: i64) -> Result<Vec<RecordingRow>> {
        Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM recordings WHERE expires_at < $1 ORDER BY expires_at"))
            .bind(now)
            .fetch_all(self.pool())
            .await?)
    }

    /// Recordings still `recording`: at start-up, those a stopped server left unfinished
    /// (the caller marks them `interrupted`: their closed files stay playable).
    pub async fn unfinished_recordings(&self) -> Result<Vec<RecordingRow>> {
        Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM recordings WHERE state = 'recording'"))
            .fetch_all(self.pool())
            .await?)
    }
}
