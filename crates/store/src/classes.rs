//! Classes as they last: owner, school, title, join code, policies, weekly timetable.

use crate::{Result, Store, StoreError, unique};
pub use ardoise_proto::{ClassPolicies, Slot};
use serde::Serialize;

/// A class as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClassRow {
    /// Class id (URL-safe).
    pub id: String,
    /// Its school.
    pub school: Option<i64>,
    /// Its teacher (user id); none for classes declared in the configuration.
    pub teacher: Option<i64>,
    /// Title.
    pub title: String,
    /// Join code.
    pub code: String,
    /// When the code expires (ms), if ever.
    pub code_expires_at: Option<i64>,
    /// Policies.
    pub policies: ClassPolicies,
    /// When it was made.
    pub created_at: i64,
    /// When it ended, if it did.
    pub ended_at: Option<i64>,
}

type ClassTuple = (String, Option<i64>, Option<i64>, String, String, Option<i64>, i64, i64, i64, i64, i64, Option<i64>);

const COLUMNS: &str = "id, school, teacher, title, code, code_expires_at, waiting_room, autolock, private_messages, \
                       recording, created_at, ended_at";

fn row(t: ClassTuple) -> ClassRow {
    let (id, school, teacher, title, code, code_expires_at, w, a, p, r, created_at, ended_at) = t;
    ClassRow {
        id,
        school,
        teacher,
        title,
        code,
        code_expires_at,
        policies: ClassPolicies { waiting_room: w != 0, autolock: a != 0, private_messages: p != 0, recording: r != 0 },
        created_at,
        ended_at,
    }
}

impl Store {
    /// Store a new class.
    pub async fn insert_class(&self, c: &ClassRow) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO classes ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(&c.id)
        .bind(c.school)
        .bind(c.teacher)
        .bind(&c.title)
        .bind(&c.code)
        .bind(c.code_expires_at)
        .bind(c.policies.waiting_room as i64)
        .bind(c.policies.autolock as i64)
        .bind(c.policies.private_messages as i64)
        .bind(c.policies.recording as i64)
        .bind(c.created_at)
        .bind(c.ended_at)
        .execute(self.pool())
        .await
        .map_err(|e| unique(e, "class id or code"))?;
        Ok(())
    }

    /// A class by id.
    pub async fn class(&self, id: &str) -> Result<ClassRow> {
        let t: Option<ClassTuple> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM classes WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        t.map(row).ok_or(StoreError::NotFound("class"))
    }

    /// The class whose join code is `code`, if any.
    pub async fn class_by_code(&self, code: &str) -> Result<Option<ClassRow>> {
        let t: Option<ClassTuple> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM classes WHERE code = $1"))
            .bind(code)
            .fetch_optional(self.pool())
            .await?;
        Ok(t.map(row))
    }

    /// Classes that have not ended (the server loads them at start).
    pub async fn open_classes(&self) -> Result<Vec<ClassRow>> {
        let t: Vec<ClassTuple> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM classes WHERE ended_at IS NULL ORDER BY id"))
                .fetch_all(self.pool())
                .await?;
        Ok(t.into_iter().map(row).collect())
    }

    /// A teacher's classes, the most recent first (at most `limit`).
    pub async fn classes_of_teacher(&self, teacher: i64, limit: i64) -> Result<Vec<ClassRow>> {
        let t: Vec<ClassTuple> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM classes WHERE teacher = $1 ORDER BY created_at DESC, id LIMIT $2"
        ))
        .bind(teacher)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(t.into_iter().map(row).collect())
    }

    /// Classes of `school` (every class when `None`), the most recent first (at most `limit`).
    pub async fn classes_of_school(&self, school: Option<i64>, limit: i64) -> Result<Vec<ClassRow>> {
        let t: Vec<ClassTuple> = match school {
            Some(s) => {
                sqlx::query_as(&format!(
                    "SELECT {COLUMNS} FROM classes WHERE school = $1 ORDER BY created_at DESC, id LIMIT $2"
                ))
                .bind(s)
                .bind(limit)
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query_as(&format!("SELECT {COLUMNS} FROM classes ORDER BY created_at DESC, id LIMIT $1"))
                    .bind(limit)
                    .fetch_all(self.pool())
                    .await?
            }
        };
        Ok(t.into_iter().map(row).collect())
    }

    /// A new join code for a class.
    pub async fn set_class_code(&self, id: &str, code: &str, expires_at: Option<i64>) -> Result<()> {
        let r = sqlx::query("UPDATE classes SET code = $1, code_expires_at = $2 WHERE id = $3")
            .bind(code)
            .bind(expires_at)
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(|e| unique(e, "code"))?;
        if r.rows_affected() == 0 { Err(StoreError::NotFound("class")) } else { Ok(()) }
    }

    /// New policies and title for a class.
    pub async fn set_class_settings(&self, id: &str, title: &str, p: ClassPolicies) -> Result<()> {
        let r = sqlx::query(
            "UPDATE classes SET title = $1, waiting_room = $2, autolock = $3, private_messages = $4, recording = $5 WHERE id = $6",
        )
        .bind(title)
        .bind(p.waiting_room as i64)
        .bind(p.autolock as i64)
        .bind(p.private_messages as i64)
        .bind(p.recording as i64)
        .bind(id)
        .execute(self.pool())
        .await?;
        if r.rows_affected() == 0 { Err(StoreError::NotFound("class")) } else { Ok(()) }
    }

    /// The class ended at `at`.
    pub async fn end_class(&self, id: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE classes SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL")
            .bind(at)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Replace a class's weekly timetable.
    pub async fn set_slots(&self, class: &str, slots: &[Slot]) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM class_slots WHERE class = $1").bind(class).execute(&mut *tx).await?;
        for s in slots {
            sqlx::query("INSERT INTO class_slots (class, weekday, start_min, minutes) VALUES ($1, $2, $3, $4)")
                .bind(class)
                .bind(s.weekday)
                .bind(s.start_min)
                .bind(s.minutes)
                .execute(&mut *tx)
                .await
                .map_err(|e| unique(e, "slot"))?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A class's weekly timetable, in order.
    pub async fn slots(&self, class: &str) -> Result<Vec<Slot>> {
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT weekday, start_min, minutes FROM class_slots WHERE class = $1 ORDER BY weekday, start_min",
        )
        .bind(class)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(weekday, start_min, minutes)| Slot { weekday, start_min, minutes }).collect())
    }

    /// The timetables of a teacher's classes, by class id (one query for "my classes").
    pub async fn slots_of_teacher(&self, teacher: i64) -> Result<std::collections::HashMap<String, Vec<Slot>>> {
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT s.class, s.weekday, s.start_min, s.minutes FROM class_slots s JOIN classes c ON c.id = s.class \
             WHERE c.teacher = $1 ORDER BY s.class, s.weekday, s.start_min",
        )
        .bind(teacher)
        .fetch_all(self.pool())
        .await?;
        let mut out: std::collections::HashMap<String, Vec<Slot>> = Default::default();
        for (class, weekday, start_min, minutes) in rows {
            out.entry(class).or_default().push(Slot { weekday, start_min, minutes });
        }
        Ok(out)
    }

    /// How many classes there are.
    pub async fn class_count(&self) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM classes").fetch_one(self.pool()).await?;
        Ok(n)
    }
}
