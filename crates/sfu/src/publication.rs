//! Publication: media coming in from a publisher (one m-line), with its simulcast layers.

use crate::KeyframeThrottle;
use crate::PublisherRole;
use crate::layer::LayerSelector;
use ardoise_proto::ParticipantId;
use std::time::Duration;
use str0m::media::{MediaKind, Mid, Pt, Rid};
use str0m::rtp::Ssrc;

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
    /// Its frames since its latest keyframe (a joining pupil's first picture).
    pub cache: crate::KeyframeCache,
    /// The codec of its latest routed packet (what its keyframe cache holds; a fan-out room,
    /// fed by the home room, knows it only from there).
    pub codec: Option<str0m::format::Codec>,
    /// The publisher's payload type `codec` was looked up for (none in a fan-out room), to
    /// avoid a codec lookup per packet.
    pub codec_pt: Option<Pt>,
    /// What this layer costs on the wire (for the pupils' allocators).
    pub meter: crate::BitrateMeter,
    /// RED payloads for the pupils that negotiated it (audio only).
    pub red: crate::AudioRedundancy,
}

/// Media published by one participant on one m-line.
#[derive(Debug, Clone)]
pub struct Publication {
    /// The publishing participant.
    pub publisher: ParticipantId,
    /// The class's media, or a pupil holding the floor.
    pub role: PublisherRole,
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
    pub fn new(publisher: ParticipantId, role: PublisherRole, mid: Mid, kind: MediaKind, rids: Vec<Rid>) -> Self {
        Publication { publisher, role, mid, kind, rids, layers: Vec::new() }
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
            self.layers[i].codec = None;
            self.layers[i].codec_pt = None;
            self.layers[i].cache.clear();
            self.layers[i].active = true;
            return i;
        }
        self.layers.push(PublishedLayer {
            rid,
            ssrc,
            rank: 0,
            active: true,
            throttle: KeyframeThrottle::new(keyframe_interval),
            cache: crate::KeyframeCache::default(),
            codec: None,
            codec_pt: None,
            meter: crate::BitrateMeter::default(),
            red: crate::AudioRedundancy::default(),
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

    /// The layer a subscriber with `choice` should receive: the wanted rank among every
    /// announced layer (stable, so that a layer appearing late does not move subscribers
    /// around); if that layer is not flowing, the best active layer below it, else the
    /// lowest active one above.
    pub fn target(&self, choice: crate::LayerChoice) -> Option<usize> {
        let n = self.rids.len().max(self.layers.len());
        let want = LayerSelector::new(choice).select_rank(n);
        let active = || self.layers.iter().enumerate().filter(|(_, l)| l.active);
        active()
            .filter(|(_, l)| l.rank <= want)
            .max_by_key(|(_, l)| l.rank)
            .or_else(|| active().min_by_key(|(_, l)| l.rank))
            .map(|(i, _)| i)
    }

    /// Targets for the three choices (low, medium, high), computed once per packet.
    pub fn targets(&self) -> [Option<usize>; 3] {
        use crate::LayerChoice::*;
        [self.target(Low), self.target(Medium), self.target(High)]
    }

    fn rerank(&mut self) {
        // Rank among every announced rid (SDP order breaks ties for unknown names), plus any
        // rid seen but not announced.
        let mut all: Vec<&str> = self.rids.iter().map(|r| &**r).collect();
        for l in &self.layers {
            let r = l.rid.as_deref().unwrap_or("");
            if !all.contains(&r) {
                all.push(r);
            }
        }
        let ranks: Vec<usize> =
            self.layers.iter().map(|l| LayerSelector::rank(l.rid.as_deref().unwrap_or(""), &all)).collect();
        for (l, r) in self.layers.iter_mut().zip(ranks) {
            l.rank = r;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_stable_and_fall_back_when_a_layer_is_missing() {
        use crate::LayerChoice::*;
        let mut p = Publication::new(
            ParticipantId(1),
            PublisherRole::Class,
            "1".into(),
            MediaKind::Video,
            vec!["h".into(), "m".into(), "l".into()],
        );
        let iv = Duration::from_millis(300);
        // Only the top layer flows yet: everyone gets it for now.
        let h = p.add_layer(Some("h".into()), 30.into(), iv);
        assert_eq!(p.targets(), [Some(h), Some(h), Some(h)]);
        let m = p.add_layer(Some("m".into()), 20.into(), iv);
        // Medium is announced as rank 1 of 3: medium subscribers move to it, never via another layer.
        assert_eq!(p.target(Medium), Some(m));
        assert_eq!(p.target(Low), Some(m), "best below is none: lowest above");
        let l = p.add_layer(Some("l".into()), 10.into(), iv);
        assert_eq!(p.targets(), [Some(l), Some(m), Some(h)]);
        // The top layer pauses (teacher's uplink is weak): high subscribers fall back to medium.
        p.set_active(30.into(), false);
        assert_eq!(p.target(High), Some(m));
        assert_eq!(p.active_layers(), 2);
        // Same rid, new SSRC (the encoder restarted).
        let again = p.add_layer(Some("h".into()), 31.into(), iv);
        assert_eq!(again, h);
        assert_eq!(p.layers[h].ssrc, 31.into());
        assert_eq!(p.target(High), Some(h));
    }
}
