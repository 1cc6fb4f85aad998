//! The class registry: ids, join codes (with their expiry), titles, states, and who created
//! each class, with the pruning of ended and unused classes.
//!
//! Rules:
//! - a class is found for a pupil by its join code only, never by its id;
//! - a code works until it expires or is rotated, then it finds nothing;
//! - generated codes are 8 characters of a 31-letter alphabet (~40 bits), which the
//!   per-address rate limits make impossible to guess;
//! - ended classes are listed for a while, then pruned; created classes that nobody used
//!   are pruned after a while too; classes declared in the configuration stay.

use ardoise_proto::{ClassId, ClassInfo, ClassState, JoinCode};
use ardoise_store::{ClassPolicies, ClassRow};
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// Length of generated join codes.
pub const CODE_LEN: usize = 8;

struct Entry {
    info: ClassInfo,
    /// Declared in the configuration: never pruned, its code never expires.
    declared: bool,
    /// Who created it: a token subject, or `user:ID` for a teacher logged in.
    creator: Option<String>,
    /// Its teacher and school (user and school ids), when a logged-in teacher made it.
    owner: Owner,
    /// Its policies.
    policies: ClassPolicies,
    last_active: Instant,
    ended_at: Option<Instant>,
}

/// The teacher and school a class belongs to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owner {
    /// The teacher's user id.
    pub teacher: Option<i64>,
    /// The school's id.
    pub school: Option<i64>,
}

/// Every known class. Not on the media path: a lock is fine here.
#[derive(Default)]
pub struct ClassRegistry {
    classes: RwLock<HashMap<ClassId, Entry>>,
    /// Most classes kept (0: no limit).
    capacity: usize,
}

/// Why a class could not be created.
#[derive(Debug, PartialEq, Eq)]
pub enum CreateError {
    /// The id is taken.
    Exists,
    /// The id is not valid.
    InvalidId,
    /// The server keeps as many classes as it may.
    Full,
}

impl ClassRegistry {
    /// A registry keeping at most `capacity` classes.
    pub fn with_capacity(capacity: usize) -> Self {
        ClassRegistry { classes: RwLock::default(), capacity }
    }

    /// Register a class declared in the configuration.
    pub fn declare(&self, info: ClassInfo) {
        let now = Instant::now();
        self.classes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(info.id.clone(), Entry::new(info, true, None, Owner::default(), ClassPolicies::default(), now));
    }

    /// Register a class kept in the database (at start): its code, owner and policies.
    pub fn restore(&self, row: &ClassRow) {
        let info = ClassInfo {
            id: ClassId(row.id.clone()),
            code: JoinCode(row.code.clone()),
            title: row.title.clone(),
            state: if row.ended_at.is_some() { ClassState::Ended } else { ClassState::Open },
            code_expires_at: row.code_expires_at.map(|ms| (ms / 1000) as u64),
        };
        let creator = row.teacher.map(|t| format!("user:{t}"));
        let owner = Owner { teacher: row.teacher, school: row.school };
        let mut map = self.classes.write().unwrap_or_else(|e| e.into_inner());
        let declared = map.get(&info.id).is_some_and(|e| e.declared);
        let mut e = Entry::new(info, declared, creator, owner, row.policies, Instant::now());
        if declared && let Some(old) = map.get(&e.info.id) {
            e.info.code = old.info.code.clone(); // the configuration decides a declared class's code
            e.info.code_expires_at = None;
        }
        map.insert(e.info.id.clone(), e);
    }

    /// The row to store for class `id`.
    pub fn row(&self, id: &ClassId) -> Option<ClassRow> {
        let map = self.classes.read().unwrap_or_else(|e| e.into_inner());
        let e = map.get(id)?;
        Some(ClassRow {
            id: e.info.id.0.clone(),
            school: e.owner.school,
            teacher: e.owner.teacher,
            title: e.info.title.clone(),
            code: e.info.code.0.clone(),
            code_expires_at: e.info.code_expires_at.map(|s| s as i64 * 1000),
            policies: e.policies,
            created_at: ardoise_store::now_ms(),
            ended_at: None,
        })
    }

    /// The teacher and school of class `id`.
    pub fn owner(&self, id: &ClassId) -> Option<Owner> {
        self.classes.read().unwrap_or_else(|e| e.into_inner()).get(id).map(|e| e.owner)
    }

    /// The policies of class `id`.
    pub fn policies(&self, id: &ClassId) -> ClassPolicies {
        self.classes.read().unwrap_or_else(|e| e.into_inner()).get(id).map(|e| e.policies).unwrap_or_default()
    }

    /// New title and policies for class `id`.
    pub fn set_settings(&self, id: &ClassId, title: &str, policies: ClassPolicies) {
        if let Some(e) = self.classes.write().unwrap_or_else(|e| e.into_inner()).get_mut(id) {
            e.info.title = title.to_owned();
            e.policies = policies;
        }
    }

    /// Create a class with `id` (or a generated one) and a fresh join code valid until
    /// `code_expires_at`, on behalf of token subject `creator`.
    pub fn create(
        &self,
        id: Option<ClassId>,
        title: Option<String>,
        creator: &str,
        code_expires_at: Option<u64>,
    ) -> Result<ClassInfo, CreateError> {
        self.create_owned(id, title, creator, code_expires_at, Owner::default(), ClassPolicies::default())
    }

    /// The same, for a teacher's school and with policies.
    pub fn create_owned(
        &self,
        id: Option<ClassId>,
        title: Option<String>,
        creator: &str,
        code_expires_at: Option<u64>,
        owner: Owner,
        policies: ClassPolicies,
    ) -> Result<ClassInfo, CreateError> {
        let mut map = self.classes.write().unwrap_or_else(|e| e.into_inner());
        // The cap bounds what tokens can create; teachers' classes are bounded by accounts.
        if self.capacity > 0
            && owner.teacher.is_none()
            && map.values().filter(|e| e.owner.teacher.is_none()).count() >= self.capacity
        {
            return Err(CreateError::Full);
        }
        let id = match id {
            Some(id) if !ClassId::is_valid(&id.0) => return Err(CreateError::InvalidId),
            Some(id) if map.contains_key(&id) => return Err(CreateError::Exists),
            Some(id) => id,
            None => loop {
                let id = ClassId(format!("classe-{}", random_code(6)));
                if !map.contains_key(&id) {
                    break id;
                }
            },
        };
        let info = ClassInfo {
            title: title.filter(|t| !t.trim().is_empty()).unwrap_or_else(|| id.0.clone()),
            id: id.clone(),
            code: fresh_code(&map),
            state: ClassState::Open,
            code_expires_at,
        };
        let now = Instant::now();
        map.insert(id, Entry::new(info.clone(), false, Some(creator.to_owned()), owner, policies, now));
        Ok(info)
    }

    /// Forget class `id` (its creation could not be stored).
    pub fn remove(&self, id: &ClassId) {
        self.classes.write().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    /// A class by id.
    pub fn get(&self, id: &ClassId) -> Option<ClassInfo> {
        self.classes.read().unwrap_or_else(|e| e.into_inner()).get(id).map(|e| e.info.clone())
    }

    /// The class whose join code is `code` (case-insensitive) and has not expired at `now`
    /// (seconds since the Unix epoch). Never by id.
    pub fn by_code(&self, code: &str, now: u64) -> Option<ClassInfo> {
        if code.is_empty() {
            return None;
        }
        let map = self.classes.read().unwrap_or_else(|e| e.into_inner());
        map.values()
            .map(|e| &e.info)
            .find(|i| i.code.0.eq_ignore_ascii_case(code) && i.code_expires_at.is_none_or(|t| t > now))
            .cloned()
    }

    /// Give class `id` a new join code valid until `code_expires_at`; the old one stops
    /// working at once. A declared class's new code never expires.
    pub fn rotate_code(&self, id: &ClassId, code_expires_at: Option<u64>) -> Option<ClassInfo> {
        let mut map = self.classes.write().unwrap_or_else(|e| e.into_inner());
        let code = fresh_code(&map);
        let e = map.get_mut(id)?;
        e.info.code = code;
        e.info.code_expires_at = if e.declared { None } else { code_expires_at };
        Some(e.info.clone())
    }

    /// Something happened in class `id` (a join, a session): it is in use.
    pub fn touch(&self, id: &ClassId) {
        if let Some(e) = self.classes.write().unwrap_or_else(|e| e.into_inner()).get_mut(id) {
            e.last_active = Instant::now();
        }
    }

    /// Classes created by token subject `creator` that have not ended.
    pub fn open_by(&self, creator: &str) -> usize {
        let map = self.classes.read().unwrap_or_else(|e| e.into_inner());
        map.values().filter(|e| e.creator.as_deref() == Some(creator) && e.info.state != ClassState::Ended).count()
    }

    /// Change a class's state. An ended class stays ended.
    pub fn set_state(&self, id: &ClassId, state: ClassState) {
        if let Some(e) = self.classes.write().unwrap_or_else(|e| e.into_inner()).get_mut(id)
            && e.info.state != ClassState::Ended
        {
            e.info.state = state;
            e.last_active = Instant::now();
            if state == ClassState::Ended {
                e.ended_at = Some(Instant::now());
            }
        }
    }

    /// Remove ended classes older than `retention` and created classes unused for `idle`
    /// (unless `in_use` says someone is in them); returns the idle ones removed, which the
    /// caller ends.
    pub fn prune(
        &self,
        now: Instant,
        retention: Duration,
        idle: Duration,
        in_use: impl Fn(&ClassId) -> bool,
    ) -> Vec<ClassId> {
        let mut map = self.classes.write().unwrap_or_else(|e| e.into_inner());
        let mut idle_ids = Vec::new();
        map.retain(|id, e| {
            if let Some(t) = e.ended_at {
                return now.saturating_duration_since(t) < retention;
            }
            if e.declared || e.owner.teacher.is_some() || e.info.state == ClassState::Live || in_use(id) {
                return true;
            }
            if now.saturating_duration_since(e.last_active) >= idle {
                idle_ids.push(id.clone());
                return false;
            }
            true
        });
        idle_ids
    }

    /// Number of classes kept.
    pub fn len(&self) -> usize {
        self.classes.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no class is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every class of the school, sorted by id (the pre-class check's classes apart: their
    /// load shows in the media workers').
    pub fn list(&self) -> Vec<ClassInfo> {
        let mut v: Vec<ClassInfo> = self
            .classes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|e| !crate::check::is_check_class(&e.info.id))
            .map(|e| e.info.clone())
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }
}

impl Entry {
    fn new(
        info: ClassInfo,
        declared: bool,
        creator: Option<String>,
        owner: Owner,
        policies: ClassPolicies,
        now: Instant,
    ) -> Self {
        Entry { info, declared, creator, owner, policies, last_active: now, ended_at: None }
    }
}

fn fresh_code(map: &HashMap<ClassId, Entry>) -> JoinCode {
    loop {
        let c = JoinCode(random_code(CODE_LEN));
        if !map.values().any(|e| e.info.code.0.eq_ignore_ascii_case(&c.0)) {
            return c;
        }
    }
}

/// A code without look-alike characters (no 0/o, 1/l/i), from the OS's random generator.
fn random_code(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    (0..n).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_lookup_by_code_only_and_end() {
        let r = ClassRegistry::default();
        let a = r.create(Some("cm2".into()), Some("CM2 B".into()), "t1", None).unwrap();
        assert_eq!(a.code.0.len(), CODE_LEN);
        assert!(matches!(r.create(Some("cm2".into()), None, "t1", None), Err(CreateError::Exists)));
        assert!(matches!(r.create(Some("Bad Id".into()), None, "t1", None), Err(CreateError::InvalidId)));
        assert_eq!(r.by_code(&a.code.0.to_uppercase(), 0).unwrap().id, a.id);
        assert!(r.by_code("cm2", 0).is_none(), "the class id is not a join code");
        assert!(r.by_code("", 0).is_none());
        r.set_state(&a.id, ClassState::Ended);
        r.set_state(&a.id, ClassState::Live);
        assert_eq!(r.get(&a.id).unwrap().state, ClassState::Ended);
        let b = r.create(None, None, "t1", None).unwrap();
        assert!(b.id.0.starts_with("classe-"));
        assert_ne!(a.code, b.code);
        assert_eq!(r.open_by("t1"), 1, "ended classes do not count");
    }

    #[test]
    fn codes_expire_and_rotate() {
        let r = ClassRegistry::default();
        let a = r.create(Some("a".into()), None, "t", Some(1000)).unwrap();
        assert!(r.by_code(&a.code.0, 999).is_some());
        assert!(r.by_code(&a.code.0, 1000).is_none(), "expired");
        let b = r.rotate_code(&a.id, Some(5000)).unwrap();
        assert_ne!(a.code, b.code);
        assert!(r.by_code(&a.code.0, 0).is_none(), "the old code stops at once");
        assert_eq!(r.by_code(&b.code.0, 4000).unwrap().id, a.id);
    }

    #[test]
    fn capacity_and_pruning() {
        let r = ClassRegistry::with_capacity(2);
        r.declare(ClassInfo {
            id: "d".into(),
            code: JoinCode("dddd".into()),
            title: "D".into(),
            state: ClassState::Open,
            code_expires_at: None,
        });
        let a = r.create(Some("a".into()), None, "t", None).unwrap();
        assert_eq!(r.create(None, None, "t", None), Err(CreateError::Full));
        r.set_state(&a.id, ClassState::Ended);
        let later = Instant::now() + Duration::from_secs(3600);
        assert!(r.prune(Instant::now(), Duration::from_secs(600), Duration::from_secs(60), |_| false).is_empty());
        assert!(r.get(&a.id).is_some(), "an ended class is listed for a while");
        r.prune(later, Duration::from_secs(600), Duration::from_secs(60), |_| false);
        assert!(r.get(&a.id).is_none(), "then pruned");
        let b = r.create(Some("b".into()), None, "t", None).unwrap();
        let used = |id: &ClassId| id.0 == "b";
        assert!(r.prune(later, Duration::from_secs(600), Duration::from_secs(60), used).is_empty(), "in use");
        assert_eq!(r.prune(later, Duration::from_secs(600), Duration::from_secs(60), |_| false), vec![b.id]);
        assert!(r.get(&"d".into()).is_some(), "declared classes stay");
    }
}
