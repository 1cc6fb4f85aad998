//! Client plumbing shared by the studio and the load generator.
//!
//! - [`http`]: WHIP/WHEP offer POST and session DELETE;
//! - [`Peer`]: a str0m `Rtc` on its own UDP socket, driven by a blocking loop or by a
//!   readiness loop shared by many peers;
//! - [`whip::publish`]: the WHIP offer/answer of an audio + (simulcast) video publication;
//! - [`whep::PlayOffer`]: the offer of a receive-only audio + video session;
//! - [`trust`]: whom HTTPS trusts (system authorities, extra CAs, pinned fingerprints).

pub mod http;
pub mod peer;
pub mod tcp_link;
pub mod trust;
pub mod whep;
pub mod whip;

pub use http::Session;
pub use peer::{Peer, Transports};
