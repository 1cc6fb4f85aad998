//! What a class's home room hands to its fan-out rooms: one large class served by more than
//! one media worker (one core each).
//!
//! The home room holds the class's publishers (the teacher, a pupil holding the floor) and
//! some of its pupils; a fan-out room of the same class on another worker holds more pupils
//! and no publisher. Rules:
//! - the home hands over each packet as it routes it ([`FedPacket`]): after its own checks
//!   (the class's current publisher only, a muted floor voice never), so a fan-out room's
//!   pupils get exactly what the home's get;
//! - it hands over the shape of its publications ([`FedShape`]) whenever it changes (a
//!   publication or layer appears, pauses or goes), before any packet of a new layer;
//! - a fan-out room keeps its own pupils' state (forwarders, allocators, keyframe cache,
//!   keyframe throttle); a keyframe its pupils need goes back to the home
//!   ([`FedKeyframeRequest`]), which asks its publisher under its own throttle;
//! - a fan-out room never says the class is live or not: the home does.

use crate::PublisherRole;
use ardoise_proto::ParticipantId;
use std::time::Instant;
use str0m::format::Codec;
use str0m::media::{MediaKind, Mid, Rid};
use str0m::rtp::{ExtensionValues, Ssrc};

/// One item from the home room, in order.
// Nearly every item is a packet: boxing it would cost an allocation per packet to save
// space only on the rare shapes.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Fed {
    /// The home's publications as they are now.
    Shape(FedShape),
    /// A packet the home routed.
    Packet(FedPacket),
}

/// The home room's publications.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FedShape {
    /// The class's current publisher.
    pub main: Option<ParticipantId>,
    /// Every publication, with its layers.
    pub publications: Vec<FedPublication>,
}

/// One publication of the home room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FedPublication {
    /// Its publisher (a participant of the home room).
    pub publisher: ParticipantId,
    /// The class's media, or a pupil holding the floor.
    pub role: PublisherRole,
    /// Its m-line on the publisher's connection.
    pub mid: Mid,
    /// Audio or video.
    pub kind: MediaKind,
    /// The rids its SDP announced, in order.
    pub rids: Vec<Rid>,
    /// The streams seen.
    pub layers: Vec<FedLayer>,
}

/// One stream of a publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FedLayer {
    /// Its rid (simulcast).
    pub rid: Option<Rid>,
    /// Its SSRC.
    pub ssrc: Ssrc,
    /// Whether it flows.
    pub active: bool,
}

/// A packet the home room routed.
#[derive(Debug, Clone)]
pub struct FedPacket {
    /// Its publisher.
    pub publisher: ParticipantId,
    /// Its stream.
    pub ssrc: Ssrc,
    /// Its codec.
    pub codec: Codec,
    /// Extended sequence number.
    pub seq: u64,
    /// RTP timestamp.
    pub ts: u32,
    /// Marker bit.
    pub marker: bool,
    /// The RTP payload (shared, not copied).
    pub payload: std::sync::Arc<[u8]>,
    /// The header extensions carried on to pupils.
    pub ext: ExtensionValues,
    /// When the home received it (the fan-out's delay is timed from there).
    pub received: Instant,
}

/// A fan-out room's pupils need a keyframe of this stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FedKeyframeRequest {
    /// The home room's publisher.
    pub publisher: ParticipantId,
    /// Its stream.
    pub ssrc: Ssrc,
}
