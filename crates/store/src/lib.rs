//! Ardoise's durable state: départements and schools, users and their login sessions,
//! classes with their timetables and policies, class sessions and attendance, the audit log,
//! token revocations and signing keys, recordings, and the cluster's nodes and placements.
//!
//! One code path for SQLite (the embedded default, WAL) and PostgreSQL (a département), through
//! sqlx's `Any` driver; migrations are embedded (`migrations/sqlite`, `migrations/postgres`, the
//! same tables) and applied at start. Queries use `$1, $2, …` placeholders in ascending order,
//! which both engines take; times are milliseconds since the Unix epoch and flags 0/1 integers.
//!
//! The store is never on the media path: the server reads and writes it from its HTTP tasks
//! and a background writer, and hands the media workers only what they need.

pub mod attendance;
pub mod audit;
pub mod classes;
pub mod logins;
pub mod nodes;
pub mod orgs;
pub mod recordings;
pub mod revocations;
pub mod test_cluster;
pub mod users;

pub use attendance::{AttendanceRow, ClassSession};
pub use audit::AuditEntry;
pub use classes::{ClassPolicies, ClassRow, Slot};
pub use logins::Login;
pub use nodes::{NodeRow, Placement};
pub use orgs::{Departement, School};
pub use recordings::RecordingRow;
pub use revocations::SigningKey;
pub use users::{NewUser, User, UserRole};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};
use std::path::Path;
use std::time::Duration;
use thiserror::Error;

/// Why the store refused or failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A unique value exists already (an email, a class id, a code).
    #[error("{0} exists already")]
    Duplicate(&'static str),
    /// A row referred to does not exist.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The database cannot be used (missing, corrupt, unreachable, or newer than this binary).
    #[error("database: {0}")]
    Unusable(String),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
}

impl StoreError {
    /// Whether the same write may pass later (the database was unreachable, read-only, full
    /// or busy), as opposed to a row the write itself conflicts with.
    pub fn may_pass_later(&self) -> bool {
        match self {
            StoreError::Query(sqlx::Error::Database(d)) => {
                !(d.is_unique_violation() || d.is_foreign_key_violation() || d.is_check_violation())
            }
            StoreError::Query(_) => true,
            StoreError::Unusable(_) | StoreError::Duplicate(_) | StoreError::NotFound(_) => false,
        }
    }
}

/// Result of the store.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Which engine the store speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, one file in the data directory.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");

/// A connection pool to the database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Store {
    /// The default URL for data directory `dir`: `sqlite://<dir>/ardoise.db`.
    pub fn default_url(dir: &Path) -> String {
        format!("sqlite://{}", dir.join("ardoise.db").display())
    }

    /// Open the database at `url` (`sqlite://FILE` or `postgres://…`) without migrating.
    ///
    /// A SQLite file is created on first use; if it was created before (its marker
    /// `FILE.created` exists) and is gone now, this is an error, never a silent reset.
    pub async fn open(url: &str) -> Result<Store> {
        install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::Unusable(format!(
                "unsupported database URL '{}' (sqlite:// or postgres://)",
                redact(url)
            )));
        };
        let mut url = url.to_owned();
        if backend == Backend::Sqlite {
            let file = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:")
                .split('?')
                .next()
                .unwrap_or("")
                .to_owned();
            if file.is_empty() || file == ":memory:" {
                return Err(StoreError::Unusable("an in-memory SQLite database keeps nothing: give a file".into()));
            }
            let path = Path::new(&file);
            let marker = marker_of(path);
            if !path.exists() {
                if marker.exists() {
                    return Err(StoreError::Unusable(format!(
                        "{} is missing but was created before ({} exists): restore it from a backup, or delete the marker to start empty",
                        path.display(),
                        marker.display()
                    )));
                }
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| StoreError::Unusable(format!("{}: {e}", dir.display())))?;
                }
            }
            // A file that is not SQLite fails every connection (after_connect): say so at once
            // instead of waiting for the pool to time out.
            if let Ok(mut f) = std::fs::File::open(path) {
                use std::io::Read;
                let mut header = [0u8; 16];
                let n = f.read(&mut header).unwrap_or(0);
                if n > 0 && (n < 16 || &header != b"SQLite format 3\0") {
                    return Err(StoreError::Unusable(format!(
                        "{} is not a usable SQLite database (no SQLite header): restore it from a backup",
                        path.display()
                    )));
                }
            }
            if !url.contains('?') {
                url.push_str("?mode=rwc");
            }
        }
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            // A PostgreSQL server that is away is said within seconds (a cluster's nodes answer
            // 503 for what needs it); SQLite waits longer for its single writer.
            .acquire_timeout(Duration::from_secs(if backend == Backend::Sqlite { 10 } else { 3 }))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        // SQLite opens a file it cannot write read-only, silently, and such a
                        // connection would stay read-only in the pool once the disk is
                        // writable again: refuse it instead (writing user_version back
                        // unchanged is a write that changes nothing).
                        let version: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(&mut *conn).await?;
                        conn.execute(format!("PRAGMA user_version = {version}").as_str()).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| StoreError::Unusable(format!("cannot open {}: {e}", redact(&url))))?;
        if backend == Backend::Sqlite {
            // A corrupt file is found now, not at the first query of a class.
            let check: (String,) = sqlx::query_as("PRAGMA quick_check")
                .fetch_one(&pool)
                .await
                .map_err(|e| StoreError::Unusable(format!("{} is not a usable SQLite database: {e}", redact(&url))))?;
            if check.0 != "ok" {
                return Err(StoreError::Unusable(format!("{} is corrupt: {}", redact(&url), check.0)));
            }
            let file = url.trim_start_matches("sqlite://").split('?').next().unwrap_or("").to_owned();
            let marker = marker_of(Path::new(&file));
            if !marker.exists() {
                let _ = std::fs::write(&marker, format!("created at {} ms since the epoch\n", now_ms()));
            }
        }
        Ok(Store { pool, backend })
    }

    /// Open the database at `url` and apply the migrations it lacks.
    pub async fn connect(url: &str) -> Result<Store> {
        let store = Self::open(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    fn migrator(&self) -> &'static Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE,
            Backend::Postgres => &POSTGRES,
        }
    }

    /// Apply the migrations the database lacks (idempotent).
    pub async fn migrate(&self) -> Result<()> {
        self.migrator().run(&self.pool).await.map_err(|e| StoreError::Unusable(format!("migrations: {e}")))
    }

    /// Whether the database is at this binary's schema: the applied migrations and the
    /// embedded ones, by version; `Err` says what differs.
    pub async fn check(&self) -> Result<usize> {
        let embedded: Vec<i64> = self.migrator().iter().map(|m| m.version).collect();
        let applied: Vec<(i64, i64)> =
            sqlx::query_as("SELECT version, CAST(CASE WHEN success THEN 1 ELSE 0 END AS BIGINT) FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&self.pool)
                .await
                .map_err(|_| StoreError::Unusable("no migrations applied (run `ardoise db migrate`)".into()))?;
        if let Some((v, _)) = applied.iter().find(|(_, ok)| *ok == 0) {
            return Err(StoreError::Unusable(format!("migration {v} failed half-way")));
        }
        let applied: Vec<i64> = applied.into_iter().map(|(v, _)| v).collect();
        if let Some(v) = applied.iter().find(|v| !embedded.contains(v)) {
            return Err(StoreError::Unusable(format!(
                "the database has migration {v}, which this binary does not know (newer?)"
            )));
        }
        let missing: Vec<&i64> = embedded.iter().filter(|v| !applied.contains(v)).collect();
        if !missing.is_empty() {
            return Err(StoreError::Unusable(format!("migrations {missing:?} not applied (run `ardoise db migrate`)")));
        }
        Ok(applied.len())
    }

    /// The engine.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool (for the store's modules).
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Close the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn marker_of(path: &Path) -> std::path::PathBuf {
    let mut m = path.as_os_str().to_owned();
    m.push(".created");
    m.into()
}

/// A URL without its password.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// A unique-key violation becomes [`StoreError::Duplicate`] of `what`.
pub(crate) fn unique(e: sqlx::Error, what: &'static str) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Duplicate(what),
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::NotFound("referenced row"),
        _ => StoreError::Query(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact("postgres://ardoise:secret@db:5432/a"), "postgres://ardoise:***@db:5432/a");
        assert_eq!(redact("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
    }
}
