//! The class's programme copied for the recorder: every packet the teacher's studio publishes
//! (each simulcast layer and the audio), as it arrives, before any pupil's rewriting.
//!
//! Rules: only the class's publisher is tapped, never a pupil holding the floor (pupils'
//! voices and cameras are not recorded); the room copies nothing unless a recording is on;
//! the driver takes the packets after each wake-up and hands them on without waiting.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// What the publisher's latest RTCP sender report says of its stream's clock: the RTP
/// timestamp `rtp` was sampled at `ntp` on the publisher's wall clock. Streams captured
/// together (the voice, every layer) say so through their reports, whatever their arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderClock {
    /// The publisher's wall clock (the report's NTP time).
    pub ntp: SystemTime,
    /// The RTP timestamp sampled at that instant.
    pub rtp: u32,
}

/// Which stream of the programme a packet belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TapStream {
    /// The audio (Opus).
    Audio,
    /// A video layer, by quality rank (0 = lowest) among `layers` layers published.
    Video {
        /// Quality rank.
        rank: usize,
        /// Layers the teacher publishes now.
        layers: usize,
    },
}

/// One packet of the programme.
#[derive(Debug, Clone)]
pub struct TappedPacket {
    /// Its stream.
    pub stream: TapStream,
    /// Its codec.
    pub codec: str0m::format::Codec,
    /// The SSRC of the stream it came in on: a new one (the teacher reconnected) starts a new
    /// RTP timeline, which the recorder anchors afresh.
    pub ssrc: u32,
    /// Extended (rollover-free) sequence number.
    pub seq: u64,
    /// RTP timestamp.
    pub ts: u32,
    /// RTP marker bit (last packet of a video frame).
    pub marker: bool,
    /// The RTP payload (shared with the forwarding path, not copied).
    pub payload: Arc<[u8]>,
    /// Arrival at the server.
    pub at: Instant,
    /// The stream's latest sender report, once one came.
    pub sender: Option<SenderClock>,
}
