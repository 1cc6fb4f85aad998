//! Errors of the forwarding core.

use thiserror::Error;

/// Why a room refused an operation.
#[derive(Debug, Error)]
pub enum SfuError {
    /// The SDP offer could not be parsed.
    #[error("malformed SDP offer: {0}")]
    BadSdp(String),
    /// The SDP offer parsed but has nothing usable.
    #[error("unusable SDP offer: {0}")]
    UnusableOffer(String),
    /// The offer asks for media its publisher was not granted (a floor camera without the
    /// teacher's grant). The message is ours and safe to show.
    #[error("{0}")]
    NotGranted(String),
    /// The room is full.
    #[error("class is full ({0} participants)")]
    Full(usize),
    /// No such participant.
    #[error("no such participant")]
    UnknownParticipant,
    /// str0m refused the operation.
    #[error("webrtc: {0}")]
    Rtc(#[from] str0m::RtcError),
}
