//! Settings of the forwarding core.

use std::net::SocketAddr;
use std::time::Duration;

/// Which simulcast layer a subscriber receives until per-pupil adaptation exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerChoice {
    /// The highest layer the publisher sends.
    #[default]
    High,
    /// The middle layer (or the closest one below).
    Medium,
    /// The lowest layer.
    Low,
}

impl std::str::FromStr for LayerChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "high" => Ok(Self::High),
            "medium" => Ok(Self::Medium),
            "low" => Ok(Self::Low),
            other => Err(format!("unknown layer '{other}' (expected high, medium or low)")),
        }
    }
}

/// Settings of a [`Room`](crate::Room).
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// Addresses put in SDP answers as ICE-lite host candidates (the worker's advertised UDP address).
    pub candidates: Vec<SocketAddr>,
    /// Addresses put in SDP answers as passive ICE-TCP host candidates (RFC 6544): the
    /// server's TCP listener, for networks that drop UDP.
    pub tcp_candidates: Vec<SocketAddr>,
    /// Simulcast layer forwarded to subscribers.
    pub layer: LayerChoice,
    /// Minimum time between two keyframe requests toward one publisher layer.
    pub keyframe_interval: Duration,
    /// A pupil that connects within this long of a layer's keyframe is sent the frames since
    /// it at once ([`crate::KeyframeCache`]) instead of asking for a keyframe; zero: never.
    pub keyframe_replay: Duration,
    /// The most bytes of one layer's frames since its keyframe kept for that.
    pub keyframe_replay_bytes: usize,
    /// Most participants (publishers + subscribers) in one room.
    pub max_participants: usize,
    /// Packets kept per outgoing video stream to answer NACKs with RTX.
    pub video_history: usize,
    /// A participant that has not connected (ICE + DTLS) this long after its offer is removed.
    pub connect_timeout: Duration,
    /// Per-pupil adaptation: subscribers that did not ask for a fixed layer get the best
    /// layer their link carries (send-side bandwidth estimation, [`crate::BandwidthAllocator`]).
    pub adaptation: bool,
    /// Settings of each pupil's allocator.
    pub allocator: crate::AllocatorConfig,
}

impl Default for SfuConfig {
    fn default() -> Self {
        SfuConfig {
            candidates: vec![],
            tcp_candidates: vec![],
            layer: LayerChoice::High,
            keyframe_interval: Duration::from_millis(500),
            keyframe_replay: Duration::from_millis(1000),
            keyframe_replay_bytes: 128 * 1024,
            max_participants: 1000,
            video_history: 128,
            connect_timeout: Duration::from_secs(15),
            adaptation: true,
            // Pupils on a good link reach the top layer in about a second.
            // A capacity drop makes the estimate collapse for a moment: keep the lowest layer
            // a second before falling to audio only.
            allocator: crate::AllocatorConfig {
                startup_hold: Duration::from_millis(400),
                // A probe that measured the link at a higher rate (a recovered link) is
                // trusted sooner than a slow drift of the estimate.
                probed_hold: Duration::from_millis(500),
                audio_only_after: Duration::from_secs(1),
                lowest_layer_down_to_floor: true,
                // Probe every second (str0m caps a probe at twice the estimate, so coming back
                // from 180p to 720p takes a few probes).
                probe_interval: Duration::from_secs(1),
                probe_duration: Duration::from_millis(500),
                // After loss, str0m's loss-based controller can hold a recovered link's
                // estimate for ~6 s: restart the estimator when it is flat for 2 s on a
                // clean link below the top layer (at most every 4 s).
                stall_reset_after: Duration::from_secs(2),
                stall_reset_interval: Duration::from_secs(4),
                ..Default::default()
            },
        }
    }
}
