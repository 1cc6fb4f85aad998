//! What happens in classes, written to the database by one background task: class sessions
//! (from the class going live to its end), pupils' attendance (merged across reconnections,
//! with their transport and quality), join codes, and the audit log of teachers' and admins'
//! actions.
//!
//! Rules:
//! - nothing on the class-events or media path waits for the database: records are queued
//!   (bounded; a full queue drops the record with a warning) and written in order;
//! - a write the database refuses is retried for [`RETRY_FOR`] (a disk made read-only or
//!   full for a while loses nothing), then dropped with a warning naming the record;
//! - a pupil is recorded by its class-scoped pseudonym (its token subject) and the first name
//!   it typed, nothing else.

use ardoise_proto::{ClassId, Quality, Transport};
use ardoise_store::{Store, now_ms};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Records queued at most before new ones are dropped.
pub const QUEUE: usize = 10_000;

/// One thing to write.
#[derive(Debug, Clone)]
pub enum Record {
    /// The class went live: open its session (if none is open).
    ClassLive(ClassId),
    /// The class ended for good: close its session and mark it ended.
    ClassEnded(ClassId),
    /// The class's session ended (the class lasts, for its next session).
    SessionEnded(ClassId),
    /// A pupil is in the class (first page or media session).
    PupilIn {
        /// Class.
        class: ClassId,
        /// Pseudonym (token subject).
        pupil: String,
        /// First name.
        name: String,
    },
    /// A pupil left the class (its last page and media session are gone).
    PupilOut {
        /// Class.
        class: ClassId,
        /// Pseudonym.
        pupil: String,
    },
    /// How a pupil's link is: transport and/or quality.
    PupilLink {
        /// Class.
        class: ClassId,
        /// Pseudonym.
        pupil: String,
        /// How its media travels.
        transport: Option<Transport>,
        /// Its reported quality.
        quality: Option<Quality>,
    },
    /// A new join code.
    Code {
        /// Class.
        class: ClassId,
        /// The code.
        code: String,
        /// Its expiry (ms).
        expires_at: Option<i64>,
    },
    /// An action for the audit log.
    Audit {
        /// Who.
        actor: String,
        /// What.
        action: &'static str,
        /// On what.
        target: String,
        /// More.
        detail: String,
    },
}

/// The queue toward the writer.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// Each record with the time it happened (ms since the epoch): a retried write keeps it.
    tx: mpsc::Sender<(Record, i64)>,
}

impl Recorder {
    /// Start the writer on `store`.
    pub fn start(store: Store) -> Recorder {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write(store, rx));
        Recorder { tx }
    }

    /// A recorder whose records go nowhere (tests of the HTTP side without a database).
    pub fn discard() -> Recorder {
        let (tx, mut rx) = mpsc::channel(QUEUE);
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        Recorder { tx }
    }

    /// Queue a record, never waiting.
    pub fn send(&self, r: Record) {
        if let Err(e) = self.tx.try_send((r, now_ms())) {
            warn!("records queue: {e}; a record is lost");
        }
    }

    /// Queue an audit entry.
    pub fn audit(
        &self,
        actor: impl Into<String>,
        action: &'static str,
        target: impl Into<String>,
        detail: impl Into<String>,
    ) {
        self.send(Record::Audit { actor: actor.into(), action, target: target.into(), detail: detail.into() });
    }

    /// Wait until everything queued so far is written (tests, shutdown).
    pub async fn flush(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.tx.capacity() < QUEUE && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// How long one record is retried while the database refuses writes (a read-only or full
/// disk, a PostgreSQL restart), the wait doubling from 250 ms; the queue holds what comes
/// meanwhile.
pub const RETRY_FOR: Duration = Duration::from_secs(30);

async fn write(store: Store, mut rx: mpsc::Receiver<(Record, i64)>) {
    let mut sessions: HashMap<ClassId, i64> = HashMap::new();
    while let Some((r, at)) = rx.recv().await {
        let started = Instant::now();
        let mut wait = Duration::from_millis(250);
        loop {
            match apply(&store, &mut sessions, r.clone(), at).await {
                Ok(()) => break,
                Err(e) if e.may_pass_later() && started.elapsed() < RETRY_FOR => {
                    let wait_now = wait.min(RETRY_FOR.saturating_sub(started.elapsed()));
                    warn!("records: {e}; retrying in {wait_now:?}");
                    tokio::time::sleep(wait_now).await;
                    wait *= 2;
                }
                Err(e) => {
                    warn!("records: {e}; the record is lost: {r:?}");
                    break;
                }
            }
        }
    }
}

async fn session_of(
    store: &Store,
    sessions: &mut HashMap<ClassId, i64>,
    class: &ClassId,
    at: i64,
) -> ardoise_store::Result<i64> {
    if let Some(&s) = sessions.get(class) {
        return Ok(s);
    }
    let s = store.start_session(&class.0, at).await?;
    sessions.insert(class.clone(), s);
    Ok(s)
}

/// Close the open session of `class`, if any.
async fn end_session(
    store: &Store,
    sessions: &mut HashMap<ClassId, i64>,
    class: &ClassId,
    at: i64,
) -> ardoise_store::Result<()> {
    let open = match sessions.remove(class) {
        Some(s) => Some(s),
        None => store.open_session(&class.0).await?.map(|s| s.id),
    };
    if let Some(s) = open {
        store.end_session(s, at).await?;
    }
    Ok(())
}

async fn apply(store: &Store, sessions: &mut HashMap<ClassId, i64>, r: Record, at: i64) -> ardoise_store::Result<()> {
    match r {
        Record::ClassLive(class) => {
            session_of(store, sessions, &class, at).await?;
        }
        Record::ClassEnded(class) => {
            end_session(store, sessions, &class, at).await?;
            store.end_class(&class.0, at).await?;
        }
        Record::SessionEnded(class) => end_session(store, sessions, &class, at).await?,
        Record::PupilIn { class, pupil, name } => {
            let s = session_of(store, sessions, &class, at).await?;
            store.attendance_join(s, &pupil, &name, at).await?;
        }
        Record::PupilOut { class, pupil } => {
            if let Some(&s) = sessions.get(&class) {
                store.attendance_leave(s, &pupil, at).await?;
            }
        }
        Record::PupilLink { class, pupil, transport, quality } => {
            if let Some(&s) = sessions.get(&class) {
                let t = transport.map(|t| t.to_string());
                let q = quality.map(|q| format!("{q:?}").to_lowercase());
                store.attendance_link(s, &pupil, t.as_deref(), q.as_deref()).await?;
            }
        }
        Record::Code { class, code, expires_at } => store.set_class_code(&class.0, &code, expires_at).await?,
        Record::Audit { actor, action, target, detail } => {
            debug!(%actor, action, %target, "audit");
            store.audit(&actor, action, &target, &detail).await?;
        }
    }
    Ok(())
}
