//! API and signalling types shared by the Ardoise server, studio, load generator and tests.
//!
//! Everything here is plain data with `serde` derives: ids as newtypes, roles, token claims
//! and the JSON bodies of the HTTP API; and the one wire format server and clients share,
//! RFC 4571 framing for ICE-TCP ([`rfc4571`]).

pub mod api;
pub mod claims;
pub mod events;
pub mod ids;
pub mod rfc4571;
pub mod role;

pub use api::*;
pub use claims::Claims;
pub use events::{ChatLine, ClientEvent, ClientKind, ErrorCode, Floor, Member, Quality, ServerEvent};
pub use ids::{ClassId, JoinCode, ParticipantId};
pub use role::Role;
