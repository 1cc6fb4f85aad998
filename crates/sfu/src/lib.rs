//! Sans-IO selective forwarding unit.
//!
//! This crate does no I/O and reads no clock: every entry point takes `now`. A [`Room`]
//! owns the str0m [`Rtc`](str0m::Rtc) of each participant of one class, routes the RTP of
//! publications in to subscriptions out, and leaves datagrams to send in an outbox that
//! the driver (`ardoise-net`) drains.
//!
//! Media path: publisher `Rtc` → [`Publication`] (layers by rid/SSRC) → [`LayerSelector`]
//! → [`Forwarder`] (drop/send, rewritten sequence number and timestamp) → subscriber `Rtc`.

pub mod audio_redundancy;
pub mod bandwidth_allocator;
pub mod bitrate_meter;
pub mod config;
pub mod error;
pub mod fed;
pub mod forwarder;
pub mod keyframe;
pub mod keyframe_cache;
pub mod keyframe_throttle;
pub mod layer;
pub mod participant;
pub mod programme_tap;
pub mod publication;
pub mod report_estimator;
pub mod room;
pub mod sdp_checks;
#[cfg(feature = "sim")]
pub mod sim;
pub mod subscription;

pub use audio_redundancy::AudioRedundancy;
pub use bandwidth_allocator::{
    Allocation, AllocatorConfig, AllocatorStats, AudioOnlyReason, AvailableVideo, BandwidthAllocator, Changes,
    PupilCap, layer_for_rank,
};
pub use bitrate_meter::BitrateMeter;
pub use config::{LayerChoice, SfuConfig};
pub use error::SfuError;
pub use fed::{Fed, FedKeyframeRequest, FedLayer, FedPacket, FedPublication, FedShape};
pub use forwarder::{Decision, DropReason, Forwarder, PacketIn, SourceKey};
pub use keyframe_cache::{CachedPacket, KeyframeCache};
pub use keyframe_throttle::KeyframeThrottle;
pub use layer::LayerSelector;
pub use participant::{Participant, ParticipantKind, PublisherRole};
pub use programme_tap::{SenderClock, TapStream, TappedPacket};
pub use publication::Publication;
pub use report_estimator::ReportEstimator;
pub use room::{FanOutSink, Received, Room, RoomEvent, RoomStats};
pub use subscription::{Feed, Forward, RoutedPacket, Subscription, VideoChoice};
