//! Publication: media coming in from a publisher (one m-line), with its simulcast layers.

use crate::KeyframeThrottle;
use crate::keyframe::VideoCodec;
use crate::layer::LayerSelector;
use ardoise_proto::ParticipantId;
use str0m::media::{MediaKind, Mid, Pt, Rid};
use str0m::rtp::Ssrc;
use std::time::Duration;

/// One incoming RTP stream of a publication: a simulcast layer (or the only stream).
#[derive(Debug, Clone)]
pub struct PublishedLayer {
    /// Restriction id, for simulcast.
    pub rid: Option<Rid>,
    /// SSRC seen for it.
    pub ssrc: Ssrc,
    /// Quality rank among the publication's layers (0 = lowest).
    pub rank: usize,
    /// Whether packets flow (str0m reports pauses).
    pub active: bool,
    /// Keyframe requests toward this layer.
    pub throttle: KeyframeThrottle,
    /// Last payload type seen and its codec, to avoid a codec lookup per packet.
    pub codec_cache: Option<(Pt, VideoCodec, str0m::format::Codec)>,
}

/// Media published by one participant on one m-line.
#[derive(Debug, Clone)]
pub struct Publication {
    /// The publishing participant.
    pub publisher: ParticipantId,
    /// The m-line on the publisher's connection.
    pub mid: Mid,
    /// Audio or video.
    pub kind: MediaKind,
    /// Rids announced in the SDP (`a=simulcast:send`), in SDP order.
    pub rids: Vec<Rid>,
    /// Streams seen so far.
    pub layers: Vec<PublishedLayer>,
}

impl Publication {
    /// A publication announced by SDP.
    pub fn new(publisher: ParticipantId, mid: Mid, kind: MediaKind, rids: Vec<Rid>) -> Self {
        Publication { publisher, mid, kind, rids, layers: Vec::new() }
    }

    /// Index of the layer with this SSRC.
    pub fn layer_by_ssrc(&self, ssrc: Ssrc) -> Option<usize> {
        self.layers.iter().position(|l| l.ssrc == ssrc)
    }

    /// Record a newly seen stream, and re-rank the layers.
    pub fn add_layer(&mut self, rid: Option<Rid>, ssrc: Ssrc, keyframe_interval: Duration) -> usize {
        // A stream for a rid already known replaces it (the publisher changed SSRC).
        if let Some(i) = self.layers.iter().position(|l| l.rid == rid) {
            self.layers[i].ssrc = ssrc;
            self.layers[i].codec_cache = None;
            self.layers[i].active = true;
            return i;
        }
        self.layers.push(PublishedLayer {
            rid,
            ssrc,
            rank: 0,
            active: true,
            throttle: KeyframeThrottle::new(keyframe_interval),
            codec_cache: None,
        });
        self.rerank();
        self.layers.len() - 1
    }

    /// Mark a layer active or paused, and re-rank.
    pub fn set_active(&mut self, ssrc: Ssrc, active: bool) {
        if let Some(i) = self.layer_by_ssrc(ssrc) {
            self.layers[i].active = active;
            self.rerank();
        }
    }

    /// Number of active layers.
    pub fn active_layers(&self) -> usize {
        self.layers.iter().filter(|l| l.active).count()
    }

    /// Index of the active layer whose rank is `rank`.
    pub fn layer_with_rank(&self, rank: usize) -> Option<usize> {
        self.layers.iter().position(|l| l.active && l.rank == rank)
    }

    fn rerank(&mut self) {
        let rids: Vec<&str> =
            self.layers.iter().filter(|l| l.active).map(|l| l.rid.as_ref().map(|r| &**r).unwrap_or("")).collect();
        // SDP order breaks ties for unknown names: sort the active layers by their SDP position first.
        let sdp_pos = |r: &str| self.rids.iter().position(|x| &**x == r).unwrap_or(usize::MAX);
        let mut ordered = rids.clone();
        ordered.sort_by_key(|r| sdp_pos(r));
        let ranks: Vec<usize> = self
            .layers
            .iter()
            .map(|l| if l.active { LayerSelector::rank(l.rid.as_ref().map(|r| &**r).unwrap_or(""), &ordered) } else { 0 })
            .collect();
        for (l, r) in self.layers.iter_mut().zip(ranks) {
            l.rank = r;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_ranked_and_paused_layers_leave_the_ranking() {
        let mut p = Publication::new(ParticipantId(1), "1".into(), MediaKind::Video, vec!["l".into(), "m".into(), "h".into()]);
        let iv = Duration::from_millis(300);
        p.add_layer(Some("h".into()), 30.into(), iv);
        p.add_layer(Some("l".into()), 10.into(), iv);
        p.add_layer(Some("m".into()), 20.into(), iv);
        assert_eq!(p.layer_with_rank(2).map(|i| p.layers[i].ssrc), Some(30.into()));
        assert_eq!(p.layer_with_rank(0).map(|i| p.layers[i].ssrc), Some(10.into()));
        p.set_active(30.into(), false);
        assert_eq!(p.active_layers(), 2);
        assert_eq!(p.layer_with_rank(1).map(|i| p.layers[i].ssrc), Some(20.into()));
        // Same rid, new SSRC (publisher restarted its encoder).
        let i = p.add_layer(Some("h".into()), 31.into(), iv);
        assert_eq!(p.layers[i].ssrc, 31.into());
        assert_eq!(p.layers.len(), 3);
    }
}
