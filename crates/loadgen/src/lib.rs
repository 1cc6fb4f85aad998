//! Synthetic class participants, for end-to-end tests and load benchmarks.
//!
//! - [`Publisher`]: a teacher publishing over WHIP with str0m in RTP mode: real VP8 simulcast
//!   frames from embedded fixtures (three layers), packetized per RFC 7741, and a real Opus
//!   440 Hz tone. It answers keyframe requests by restarting the clip of that layer at its
//!   keyframe.
//! - [`Subscriber`]: a pupil playing over WHEP, answering with RTCP, NACK and TWCC like a
//!   browser, and recording what it receives in a [`SubscriberReport`].
//! - [`janus`]: the same two negotiated with Janus VideoRoom instead (`loadgen --janus`), for
//!   side-by-side benchmarks.

pub mod cli;
pub mod fixture;
pub mod janus;
pub mod packetizer;
pub mod pool;
pub mod publisher;
pub mod subscriber;
pub mod tone;

pub use fixture::VideoClip;
pub use publisher::{Publisher, PublisherConfig, PublisherStats, Signalling};
pub use subscriber::{Feedback, ReceivedPacket, Subscriber, SubscriberReport};
pub use tone::{ToneEncoder, dominant_frequency};
