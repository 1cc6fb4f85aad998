//! The claims carried by an Ardoise JWT.

use crate::{ClassId, Role};
use serde::{Deserialize, Serialize};

/// JWT claims: role, class (absent for admins), first name for pupils, expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: a random id for this token's holder (never personal data).
    pub sub: String,
    /// The holder's role.
    pub role: Role,
    /// The class this token is valid for; `None` only for admins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<ClassId>,
    /// A pupil's first name, shown to the teacher.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Version of the role's key when issued: bumping a role's version revokes every older
    /// token of that role (`ardoise revoke --role`).
    #[serde(default)]
    pub kv: u32,
}

impl Claims {
    /// Whether these claims allow acting on `class` (admins act on every class).
    pub fn covers(&self, class: &ClassId) -> bool {
        match (&self.role, &self.class) {
            (Role::Admin, _) => true,
            (_, Some(c)) => c == class,
            (_, None) => false,
        }
    }
}
