//! The three roles of Ardoise and what each may do.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Who a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs a class: publishes, manages pupils.
    Teacher,
    /// Joins a class with a first name; receives, and speaks only when granted the floor.
    Pupil,
    /// Sees every class and the relay load.
    Admin,
}

impl Role {
    /// Whether this role may publish the class's main stream (WHIP).
    pub fn may_publish(self) -> bool {
        matches!(self, Role::Teacher)
    }

    /// Whether this role may play a class (WHEP).
    pub fn may_play(self) -> bool {
        true
    }

    /// Whether a token of this role is bound to one class (admins are not).
    pub fn is_class_bound(self) -> bool {
        !matches!(self, Role::Admin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Teacher => "teacher",
            Role::Pupil => "pupil",
            Role::Admin => "admin",
        })
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "teacher" => Ok(Role::Teacher),
            "pupil" => Ok(Role::Pupil),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role '{other}' (expected teacher, pupil or admin)")),
        }
    }
}
