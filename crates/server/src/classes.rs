//! The class registry: ids, join codes, titles and states.

use ardoise_proto::{ClassId, ClassInfo, ClassState, JoinCode};
use std::collections::HashMap;
use std::sync::RwLock;

/// Every known class. Not on the media path: a lock is fine here.
#[derive(Default)]
pub struct ClassRegistry {
    classes: RwLock<HashMap<ClassId, ClassInfo>>,
}

/// Why a class could not be created.
#[derive(Debug, PartialEq, Eq)]
pub enum CreateError {
    /// The id is taken.
    Exists,
    /// The id is not valid.
    InvalidId,
}

impl ClassRegistry {
    /// Register a class.
    pub fn insert(&self, info: ClassInfo) {
        self.classes.write().unwrap_or_else(|e| e.into_inner()).insert(info.id.clone(), info);
    }

    /// Create a class with `id` (or a generated one) and a fresh join code.
    pub fn create(&self, id: Option<ClassId>, title: Option<String>) -> Result<ClassInfo, CreateError> {
        let mut map = self.classes.write().unwrap_or_else(|e| e.into_inner());
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
        let code = loop {
            let c = JoinCode(random_code(6));
            if !map.values().any(|i| i.code == c) {
                break c;
            }
        };
        let info = ClassInfo {
            title: title.filter(|t| !t.trim().is_empty()).unwrap_or_else(|| id.0.clone()),
            id: id.clone(),
            code,
            state: ClassState::Open,
        };
        map.insert(id, info.clone());
        Ok(info)
    }

    /// A class by id.
    pub fn get(&self, id: &ClassId) -> Option<ClassInfo> {
        self.classes.read().unwrap_or_else(|e| e.into_inner()).get(id).cloned()
    }

    /// A class by join code (case-insensitive), or by id.
    pub fn by_code(&self, code: &str) -> Option<ClassInfo> {
        let map = self.classes.read().unwrap_or_else(|e| e.into_inner());
        map.values()
            .find(|i| i.code.0.eq_ignore_ascii_case(code))
            .or_else(|| map.get(&ClassId(code.to_owned())))
            .cloned()
    }

    /// Change a class's state. An ended class stays ended.
    pub fn set_state(&self, id: &ClassId, state: ClassState) {
        if let Some(i) = self.classes.write().unwrap_or_else(|e| e.into_inner()).get_mut(id)
            && i.state != ClassState::Ended
        {
            i.state = state;
        }
    }

    /// Every class, sorted by id.
    pub fn list(&self) -> Vec<ClassInfo> {
        let mut v: Vec<ClassInfo> = self.classes.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }
}

/// A short code without look-alike characters (no 0/o, 1/l/i).
fn random_code(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    (0..n).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_lookup_and_end() {
        let r = ClassRegistry::default();
        let a = r.create(Some("cm2".into()), Some("CM2 B".into())).unwrap();
        assert!(matches!(r.create(Some("cm2".into()), None), Err(CreateError::Exists)));
        assert!(matches!(r.create(Some("Bad Id".into()), None), Err(CreateError::InvalidId)));
        assert_eq!(r.by_code(&a.code.0.to_uppercase()).unwrap().id, a.id);
        assert_eq!(r.by_code("cm2").unwrap().id, a.id);
        r.set_state(&a.id, ClassState::Ended);
        r.set_state(&a.id, ClassState::Live);
        assert_eq!(r.get(&a.id).unwrap().state, ClassState::Ended);
        let b = r.create(None, None).unwrap();
        assert!(b.id.0.starts_with("classe-"));
        assert_ne!(a.code, b.code);
    }
}
