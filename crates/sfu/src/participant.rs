//! Participant: one WebRTC peer connection in a room, publisher or subscriber.

use crate::{Feed, Subscription};
use ardoise_proto::{ParticipantId, ParticipantStats};
use std::net::SocketAddr;
use std::time::Instant;
use str0m::Rtc;

/// What a participant does in the room.
// Participants live unboxed in the room's vector: boxing the larger variant would add an
// indirection to every forwarded packet for a few hundred bytes per peer.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ParticipantKind {
    /// Sends media in (WHIP).
    Publisher {
        /// The class's picture and sound, or a pupil holding the floor.
        role: PublisherRole,
        /// The teacher muted it: its audio is not relayed.
        muted: bool,
        /// Its video may be relayed (the class's publisher; a floor pupil granted the camera).
        camera: bool,
    },
    /// Receives the class's media (WHEP).
    Subscriber {
        /// Outgoing class audio.
        audio: Option<Subscription>,
        /// Outgoing class video.
        video: Option<Subscription>,
        /// Outgoing voice of the pupil holding the floor.
        floor_audio: Option<Subscription>,
        /// Outgoing camera of the pupil holding the floor.
        floor_video: Option<Subscription>,
        /// The simulcast layer this subscriber asked for.
        layer: crate::LayerChoice,
        /// Which media its m-lines carry.
        feed: Feed,
    },
}

/// What a publisher's media is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublisherRole {
    /// The class (teacher, studio): forwarded on subscribers' first audio/video m-lines.
    Class,
    /// A pupil given the floor: forwarded on the floor m-lines, never becomes the class.
    Floor,
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
    /// Adaptive subscribers: chooses the layer from the bandwidth estimate.
    pub allocator: Option<Box<crate::BandwidthAllocator>>,
    /// Adaptive subscribers that negotiated no transport-cc feedback: the estimate from their
    /// receiver reports (None once they send REMB, which is used instead).
    pub report_estimator: Option<crate::ReportEstimator>,
    /// An adaptive subscriber without transport-cc that sends REMB: its REMB is its estimate.
    pub sends_remb: bool,
    /// The class video is forwarded (false: audio only).
    pub class_video_on: bool,
    /// The floor pupil's camera is forwarded.
    pub floor_video_on: bool,
    /// How its media travels (from its latest datagram), once it sent one.
    pub transport: Option<ardoise_proto::Transport>,
    /// Addresses of the relay candidates it announced (TURN): its media from one of these
    /// travels through a relay.
    pub relay_addrs: Vec<SocketAddr>,
}

impl Participant {
    /// Wrap a freshly negotiated `Rtc`.
    pub fn new(id: ParticipantId, kind: ParticipantKind, rtc: Rtc, now: Instant) -> Self {
        let label = match kind {
            ParticipantKind::Publisher { role: PublisherRole::Class, .. } => "publisher",
            ParticipantKind::Publisher { role: PublisherRole::Floor, .. } => "floor",
            ParticipantKind::Subscriber { .. } => "subscriber",
        };
        Participant {
            id,
            kind,
            rtc,
            timeout: now,
            connected: false,
            stats: ParticipantStats { id: id.0, kind: label.into(), ..Default::default() },
            remote: None,
            created: now,
            dead: false,
            queued: false,
            allocator: None,
            report_estimator: None,
            sends_remb: false,
            class_video_on: true,
            floor_video_on: true,
            transport: None,
            relay_addrs: Vec::new(),
        }
    }

    /// Whether this participant publishes.
    pub fn is_publisher(&self) -> bool {
        matches!(self.kind, ParticipantKind::Publisher { .. })
    }

    /// The publisher's role, if it publishes.
    pub fn publisher_role(&self) -> Option<PublisherRole> {
        match self.kind {
            ParticipantKind::Publisher { role, .. } => Some(role),
            ParticipantKind::Subscriber { .. } => None,
        }
    }
}
