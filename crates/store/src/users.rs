//! Users: admins (of every département, one département, or one school) and teachers (of one
//! or more schools). Passwords are stored as argon2id hashes made by the server.

use crate::{Result, Store, StoreError, now_ms, unique};
use serde::Serialize;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UserRole {
    /// Manages schools, teachers and classes of its scope.
    Admin,
    /// Teaches classes in its schools.
    Teacher,
}

impl UserRole {
    /// Its name in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::Admin => "admin",
            UserRole::Teacher => "teacher",
        }
    }

    fn parse(s: &str) -> UserRole {
        if s == "admin" { UserRole::Admin } else { UserRole::Teacher }
    }
}

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Row id.
    pub id: i64,
    /// Login email (lowercase).
    pub email: String,
    /// argon2id PHC string.
    #[serde(skip)]
    pub password_hash: String,
    /// Role.
    pub role: UserRole,
    /// An admin's département, if scoped to one.
    pub departement: Option<i64>,
    /// An admin's school, if scoped to one.
    pub school: Option<i64>,
    /// When it was made.
    pub created_at: i64,
    /// Disabled: may not log in.
    pub disabled: bool,
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    /// Login email.
    pub email: &'a str,
    /// argon2id PHC string.
    pub password_hash: &'a str,
    /// Role.
    pub role: UserRole,
    /// An admin's département scope.
    pub departement: Option<i64>,
    /// An admin's school scope, or the teacher's first school.
    pub school: Option<i64>,
}

type UserTuple = (i64, String, String, String, Option<i64>, Option<i64>, i64, i64);

fn user((id, email, password_hash, role, departement, school, created_at, disabled): UserTuple) -> User {
    User {
        id,
        email,
        password_hash,
        role: UserRole::parse(&role),
        departement,
        school,
        created_at,
        disabled: disabled != 0,
    }
}

const COLUMNS: &str = "id, email, password_hash, role, departement, school, created_at, disabled";

impl Store {
    /// Create a user; a teacher with a school belongs to it.
    pub async fn create_user(&self, new: &NewUser<'_>) -> Result<i64> {
        let email = new.email.trim().to_lowercase();
        let school = if new.role == UserRole::Admin { new.school } else { None };
        if let Some(s) = new.school {
            self.school(s).await?;
        }
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO users (email, password_hash, role, departement, school, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(&email)
        .bind(new.password_hash)
        .bind(new.role.as_str())
        .bind(new.departement)
        .bind(school)
        .bind(now_ms())
        .fetch_one(self.pool())
        .await
        .map_err(|e| unique(e, "email"))?;
        if let (UserRole::Teacher, Some(s)) = (new.role, new.school) {
            self.add_teacher_school(id, s).await?;
        }
        Ok(id)
    }

    /// A user by email (case-insensitive).
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let row: Option<UserTuple> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE email = $1"))
            .bind(email.trim().to_lowercase())
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(user))
    }

    /// A user by id.
    pub async fn user(&self, id: i64) -> Result<User> {
        let row: Option<UserTuple> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.map(user).ok_or(StoreError::NotFound("user"))
    }

    /// Replace a user's password hash (an admin's reset).
    pub async fn set_password(&self, id: i64, password_hash: &str) -> Result<()> {
        let r = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(id)
            .execute(self.pool())
            .await?;
        if r.rows_affected() == 0 { Err(StoreError::NotFound("user")) } else { Ok(()) }
    }

    /// Teacher `teacher` also teaches at `school`.
    pub async fn add_teacher_school(&self, teacher: i64, school: i64) -> Result<()> {
        self.school(school).await?;
        sqlx::query("INSERT INTO teacher_schools (teacher, school) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(teacher)
            .bind(school)
            .execute(self.pool())
            .await
            .map_err(|e| unique(e, "membership"))?;
        Ok(())
    }

    /// The schools of a teacher.
    pub async fn teacher_schools(&self, teacher: i64) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = sqlx::query_as("SELECT school FROM teacher_schools WHERE teacher = $1 ORDER BY school")
            .bind(teacher)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// The teachers of `school` (every teacher when `None`), by email.
    pub async fn teachers(&self, school: Option<i64>) -> Result<Vec<User>> {
        let rows: Vec<UserTuple> = match school {
            Some(s) => {
                sqlx::query_as(&format!(
                    "SELECT {} FROM users u JOIN teacher_schools t ON t.teacher = u.id \
                     WHERE t.school = $1 AND u.role = 'teacher' ORDER BY u.email",
                    COLUMNS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ")
                ))
                .bind(s)
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE role = 'teacher' ORDER BY email"))
                    .fetch_all(self.pool())
                    .await?
            }
        };
        Ok(rows.into_iter().map(user).collect())
    }

    /// How many users there are (bootstrap: the first admin).
    pub async fn user_count(&self) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users").fetch_one(self.pool()).await?;
        Ok(n)
    }
}
