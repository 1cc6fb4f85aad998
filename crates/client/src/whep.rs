//! A WHEP play offer: one audio and one video m-line, both receive-only.

use crate::Peer;
use anyhow::{Context, Result};
use str0m::media::{Direction, MediaKind, Mid};

/// A play offer before it is sent (the caller may change the SDP, then POSTs it).
pub struct PlayOffer {
    /// The offer, as SDP text.
    pub sdp: String,
    /// What applies the answer ([`Peer::accept_answer`]).
    pub pending: str0m::change::SdpPendingOffer,
    /// Audio m-line.
    pub audio_mid: Mid,
    /// Video m-line.
    pub video_mid: Mid,
}

impl PlayOffer {
    /// Offer to receive audio + video on `peer`.
    pub fn new(peer: &mut Peer) -> Result<PlayOffer> {
        let mut api = peer.rtc.sdp_api();
        let audio_mid = api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let video_mid = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().context("no offer")?;
        Ok(PlayOffer { sdp: offer.to_sdp_string(), pending, audio_mid, video_mid })
    }
}
