//! Revoked tokens, kept in `<data dir>/revocations.json` until the tokens expire, so that a
//! removed pupil stays out after a restart.
//!
//! Two kinds of revocation:
//! - by subject: every token of that holder (a removed pupil, a lost studio token);
//! - by role key version: bumping a role's version refuses every token of that role issued
//!   before (`ardoise revoke --role teacher` after a leak).
//!
//! The file is changed by read-modify-write under an advisory lock (`flock`), so the server
//! and the `ardoise revoke` command can both write it; the server re-reads it when it changes.

use ardoise_proto::{Claims, Role};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

/// The persisted list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationList {
    /// Revoked subjects, each until the time its tokens expire (seconds since the Unix epoch).
    #[serde(default)]
    pub subjects: BTreeMap<String, u64>,
    /// Current key version of each role; tokens with an older `kv` are refused.
    #[serde(default)]
    pub versions: BTreeMap<Role, u32>,
}

impl RevocationList {
    /// Whether `claims` are refused by this list at `now`.
    pub fn refuses(&self, claims: &Claims, now: u64) -> bool {
        self.subjects.get(&claims.sub).is_some_and(|&until| until >= now) || claims.kv < self.version(claims.role)
    }

    /// A role's current key version.
    pub fn version(&self, role: Role) -> u32 {
        self.versions.get(&role).copied().unwrap_or(0)
    }

    fn prune(&mut self, now: u64) {
        self.subjects.retain(|_, until| *until >= now);
    }
}

/// The revocation list of a server (or of `ardoise token`/`ardoise revoke`), in memory and
/// on disk.
pub struct Revocations {
    path: Option<PathBuf>,
    state: RwLock<(RevocationList, Option<Stamp>)>,
}

impl Revocations {
    /// A list kept in memory only (tests).
    pub fn in_memory() -> Self {
        Revocations { path: None, state: RwLock::new((RevocationList::default(), None)) }
    }

    /// The list of data directory `dir` (empty when the file does not exist yet).
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join("revocations.json");
        let (list, mtime) = read(&path)?;
        Ok(Revocations { path: Some(path), state: RwLock::new((list, mtime)) })
    }

    /// A copy of the current list.
    pub fn list(&self) -> RevocationList {
        self.state.read().unwrap_or_else(|e| e.into_inner()).0.clone()
    }

    /// Whether `claims` were revoked.
    pub fn refuses(&self, claims: &Claims, now: u64) -> bool {
        self.state.read().unwrap_or_else(|e| e.into_inner()).0.refuses(claims, now)
    }

    /// A role's current key version (new tokens carry it).
    pub fn version(&self, role: Role) -> u32 {
        self.state.read().unwrap_or_else(|e| e.into_inner()).0.version(role)
    }

    /// Refuse every token of `subject` until `until` (its tokens' expiry).
    pub fn revoke_subject(&self, subject: &str, until: u64, now: u64) -> std::io::Result<()> {
        self.change(now, |l| {
            let e = l.subjects.entry(subject.to_owned()).or_insert(until);
            *e = (*e).max(until);
        })
        .map(|_| ())
    }

    /// Refuse every token of `role` issued so far; returns the new version.
    pub fn bump_role(&self, role: Role, now: u64) -> std::io::Result<u32> {
        self.change(now, |l| {
            *l.versions.entry(role).or_insert(0) += 1;
        })
        .map(|l| l.version(role))
    }

    /// Re-read the file if it changed since it was last read; returns the new list then.
    pub fn reload_if_changed(&self) -> std::io::Result<Option<RevocationList>> {
        let Some(path) = &self.path else { return Ok(None) };
        let mtime = stamp(path);
        if mtime == self.state.read().unwrap_or_else(|e| e.into_inner()).1 {
            return Ok(None);
        }
        let (list, mtime) = read(path)?;
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = (list.clone(), mtime);
        Ok(Some(list))
    }

    fn change(&self, now: u64, f: impl FnOnce(&mut RevocationList)) -> std::io::Result<RevocationList> {
        let Some(path) = &self.path else {
            let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
            f(&mut st.0);
            st.0.prune(now);
            return Ok(st.0.clone());
        };
        let _lock = FileLock::take(&path.with_extension("lock"))?;
        let (mut list, _) = read(path)?;
        f(&mut list);
        list.prune(now);
        let tmp = path.with_extension("json.tmp");
        {
            let mut file = private_file(&tmp, true)?;
            file.write_all(serde_json::to_string_pretty(&list).map_err(std::io::Error::other)?.as_bytes())?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        let mtime = stamp(path);
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = (list.clone(), mtime);
        Ok(list)
    }
}

/// What tells one version of the file from another: every write replaces the file (a new
/// inode), and a hand edit changes its time or size.
type Stamp = (SystemTime, u64, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some((m.modified().ok()?, ino, m.len()))
}

fn read(path: &Path) -> std::io::Result<(RevocationList, Option<Stamp>)> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let list = serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))
            })?;
            Ok((list, stamp(path)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((RevocationList::default(), None)),
        Err(e) => Err(e),
    }
}

/// A file readable by its owner only, emptied when `truncate`.
fn private_file(path: &Path, truncate: bool) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(truncate);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// An exclusive advisory lock on a file, released on drop.
struct FileLock(std::fs::File);

impl FileLock {
    fn take(path: &Path) -> std::io::Result<FileLock> {
        let file = private_file(path, false)?;
        file.lock()?;
        Ok(FileLock(file))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, role: Role, kv: u32) -> Claims {
        Claims { sub: sub.into(), role, class: Some("c".into()), name: None, exp: 100, iat: 0, kv }
    }

    #[test]
    fn subjects_and_role_versions_persist_and_expire() {
        let dir = std::env::temp_dir().join(format!("ardoise-rev-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let a = Revocations::open(&dir).unwrap();
        a.revoke_subject("pupil-1", 200, 50).unwrap();
        assert!(a.refuses(&claims("pupil-1", Role::Pupil, 0), 100));
        assert!(!a.refuses(&claims("pupil-2", Role::Pupil, 0), 100));
        // Another process (the CLI) bumps the teacher version: the first one sees it on reload.
        let b = Revocations::open(&dir).unwrap();
        assert!(b.refuses(&claims("pupil-1", Role::Pupil, 0), 100), "persisted");
        assert_eq!(b.bump_role(Role::Teacher, 60).unwrap(), 1);
        assert!(a.reload_if_changed().unwrap().is_some());
        assert!(a.reload_if_changed().unwrap().is_none(), "read once");
        assert_eq!(a.version(Role::Teacher), 1);
        assert!(a.refuses(&claims("t", Role::Teacher, 0), 100));
        assert!(!a.refuses(&claims("t", Role::Teacher, 1), 100));
        // Expired revocations are pruned at the next change.
        a.revoke_subject("pupil-3", 1000, 300).unwrap();
        assert!(!a.list().subjects.contains_key("pupil-1"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("revocations.json")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.join("revocations.json"), "not json").unwrap();
        assert!(Revocations::open(&dir).is_err(), "a corrupt list is an error, never an empty list");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
