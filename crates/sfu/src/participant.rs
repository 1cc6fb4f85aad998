//! Participant: one WebRTC peer connection in a room, publisher or subscriber.

use crate::Subscription;
use ardoise_proto::{ParticipantId, ParticipantStats};
use std::net::SocketAddr;
use std::time::Instant;
use str0m::Rtc;

/// What a participant does in the room.
#[derive(Debug)]
pub enum ParticipantKind {
    /// Sends media in (WHIP).
    Publisher,
    /// Receives the class's media (WHEP).
    Subscriber {
        /// Outgoing audio.
        audio: Option<Subscription>,
        /// Outgoing video.
        video: Option<Subscription>,
        /// The simulcast layer this subscriber asked for.
        layer: crate::LayerChoice,
    },
}

/// One peer connection and its bookkeeping.
pub struct Participant {
    /// Id, unique within the worker.
    pub id: ParticipantId,
    /// Publisher or subscriber.
    pub kind: ParticipantKind,
    /// The str0m connection.
    pub rtc: Rtc,
    /// When str0m next wants a timeout.
    pub timeout: Instant,
    /// ICE + DTLS established.
    pub connected: bool,
    /// Counters for the admin view.
    pub stats: ParticipantStats,
    /// The peer's address, once known.
    pub remote: Option<SocketAddr>,
    /// When it was negotiated (it must connect within the connect timeout).
    pub created: Instant,
    /// Scheduled for removal (disconnected, deleted or panicked).
    pub dead: bool,
    /// Waiting in the room's drain list.
    pub(crate) queued: bool,
}

impl Participant {
    /// Wrap a freshly negotiated `Rtc`.
    pub fn new(id: ParticipantId, kind: ParticipantKind, rtc: Rtc, now: Instant) -> Self {
        let is_pub = matches!(kind, ParticipantKind::Publisher);
        Participant {
            id,
            kind,
            rtc,
            timeout: now,
            connected: false,
            stats: ParticipantStats {
                id: id.0,
                kind: if is_pub { "publisher" } else { "subscriber" }.into(),
                ..Default::default()
            },
            remote: None,
            created: now,
            dead: false,
            queued: false,
        }
    }

    /// Whether this participant publishes.
    pub fn is_publisher(&self) -> bool {
        matches!(self.kind, ParticipantKind::Publisher)
    }
}
