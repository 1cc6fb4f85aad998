//! Identifiers as newtypes, so a class id is never mistaken for a join code.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A class (room) identifier, URL-safe: `[a-z0-9-]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClassId(pub String);

/// The short code a pupil types to join a class.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JoinCode(pub String);

/// A participant (one WebRTC peer connection) inside a media worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ParticipantId(pub u64);

impl ClassId {
    /// Whether `s` is a valid class id: 1 to 64 characters of `a-z`, `0-9`, `-` or `_`.
    pub fn is_valid(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    }
}

impl fmt::Display for ClassId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for JoinCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

impl From<&str> for ClassId {
    fn from(s: &str) -> Self {
        ClassId(s.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_id_validation() {
        assert!(ClassId::is_valid("demo"));
        assert!(ClassId::is_valid("cm2-b_2026"));
        assert!(!ClassId::is_valid(""));
        assert!(!ClassId::is_valid("Demo"));
        assert!(!ClassId::is_valid("../etc"));
        assert!(!ClassId::is_valid(&"a".repeat(65)));
    }
}
