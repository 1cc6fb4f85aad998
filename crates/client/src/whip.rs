//! A WHIP publication offer: one audio and one video m-line (simulcast by rid when several
//! rids are given), posted to `/whip/{class}`, answer applied.

use crate::Peer;
use crate::http::{self, Session};
use anyhow::{Context, Result};
use str0m::media::{Direction, MediaKind, Mid, Simulcast, SimulcastLayer};

/// The negotiated m-lines of a publication.
#[derive(Debug, Clone)]
pub struct Published {
    /// The WHIP session.
    pub session: Session,
    /// Audio m-line.
    pub audio_mid: Mid,
    /// Video m-line.
    pub video_mid: Mid,
}

/// Offer audio + video (simulcast over `rids` when there are two or more) to the server's
/// WHIP endpoint for `class`, and apply the answer to `peer`.
pub fn publish(peer: &mut Peer, server: &str, class: &str, token: &str, rids: &[&str]) -> Result<Published> {
    let offer = PublicationOffer::new(peer, rids)?;
    let session = http::post_offer(server, &format!("/whip/{class}"), token, &offer.sdp)?;
    peer.accept_answer(offer.pending, &session.answer)?;
    Ok(Published { session, audio_mid: offer.audio_mid, video_mid: offer.video_mid })
}

/// A publication's offer before it is sent: for a server that answers it by other means than
/// HTTP (a node republishing a class into its own media workers).
pub struct PublicationOffer {
    /// The offer, as SDP text.
    pub sdp: String,
    /// What applies the answer ([`Peer::accept_answer`]).
    pub pending: str0m::change::SdpPendingOffer,
    /// Audio m-line.
    pub audio_mid: Mid,
    /// Video m-line.
    pub video_mid: Mid,
}

impl PublicationOffer {
    /// Offer audio + video from `peer` (simulcast over `rids` when there are two or more).
    pub fn new(peer: &mut Peer, rids: &[&str]) -> Result<PublicationOffer> {
        let mut api = peer.rtc.sdp_api();
        let audio_mid = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let simulcast = (rids.len() > 1)
            .then(|| Simulcast { send: rids.iter().map(|r| SimulcastLayer::new(r)).collect(), recv: vec![] });
        let video_mid = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, simulcast);
        let (offer, pending) = api.apply().context("no offer")?;
        Ok(PublicationOffer { sdp: offer.to_sdp_string(), pending, audio_mid, video_mid })
    }
}
