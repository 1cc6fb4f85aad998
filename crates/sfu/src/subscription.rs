//! Subscription: media going out to a subscriber (one m-line), fed by the class's publication.

use crate::forwarder::{Decision, DropReason, PacketIn};
use crate::{Forwarder, LayerSelector};
use str0m::format::Codec;
use str0m::media::{MediaKind, Mid, Pt};
use str0m::rtp::Ssrc;

/// Which media a subscriber's m-lines carry (WHEP `?feed=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Feed {
    /// Pupils: 1st audio/video = the class; 2nd audio/video = the pupil holding the floor.
    #[default]
    Class,
    /// The studio's return audio: 1st audio/video = the pupil holding the floor.
    Floor,
}

impl std::str::FromStr for Feed {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "class" => Ok(Feed::Class),
            "floor" => Ok(Feed::Floor),
            _ => Err(format!("unknown feed '{s}' (class, floor)")),
        }
    }
}

/// How a subscriber's class video layer is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoChoice {
    /// The best layer the pupil's link carries, within the pupil's own cap.
    Adaptive {
        /// The pupil's own cap (data saver, audio only).
        cap: crate::PupilCap,
        /// What the link carried when last measured (the pre-class check's server
        /// estimate, bit/s): the estimator starts from it, and so the first layer does.
        /// None: the estimator's default start, and the lowest layer.
        start_bps: Option<u64>,
    },
    /// Always this layer (an explicit request, a tool, a test).
    Fixed(crate::LayerChoice),
}

/// One outgoing m-line of a subscriber, with its forwarder and layer choice.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// The m-line on the subscriber's connection.
    pub mid: Mid,
    /// Audio or video.
    pub kind: MediaKind,
    /// Outgoing SSRC (declared by str0m for this m-line).
    pub ssrc: Ssrc,
    /// Payload types the subscriber accepts, by codec.
    pub pts: Vec<(Codec, Pt)>,
    /// The RED payload type wrapping Opus, when the subscriber negotiated RFC 2198 redundancy.
    pub red: Option<Pt>,
    /// Sequence number / timestamp rewriting.
    pub forwarder: Forwarder,
    /// Which simulcast layer this subscriber wants.
    pub selector: LayerSelector,
    /// It had its first picture, or was offered the frames since a recent keyframe for it:
    /// the keyframe cache serves a subscription's first picture only.
    pub replay_tried: bool,
}

/// One packet of a publication, as each of its subscriptions sees it (the room works it
/// out once per packet).
#[derive(Debug, Clone, Copy)]
pub struct RoutedPacket {
    /// Its source, numbers and arrival.
    pub input: PacketIn,
    /// Audio or video.
    pub kind: MediaKind,
    /// Its codec.
    pub codec: Codec,
    /// The index of its layer in the publication.
    pub layer: usize,
    /// Its layer's rank (0 = the lowest).
    pub rank: usize,
    /// The layer each choice (low, medium, high) is served from now, and that layer's rank.
    pub targets: [Option<(usize, usize)>; 3],
    /// A subscription with no picture yet may be sent the frames since a recent keyframe.
    pub replay: bool,
}

/// What a subscription does with one packet: the room acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// Send it, renumbered, with this payload type; `red_of`: wrapped in RFC 2198
    /// redundancy around this (the Opus payload type).
    Send {
        /// Outgoing sequence number.
        seq: u64,
        /// Outgoing timestamp.
        ts: u32,
        /// Outgoing payload type.
        pt: Pt,
        /// The inner payload type, when wrapped in RED.
        red_of: Option<Pt>,
    },
    /// Dropped: it has no picture and needs a keyframe now.
    NeedKeyframe,
    /// Dropped: a keyframe would let it move to its target layer (it keeps its picture
    /// meanwhile).
    WouldLikeKeyframe,
    /// Dropped: send it the frames since a recent keyframe, once (its first picture).
    Replay,
    /// Dropped.
    Drop,
}

impl Subscription {
    /// The subscriber's payload type for `codec`, if it accepts it.
    pub fn pt_for(&self, codec: Codec) -> Option<Pt> {
        self.pts.iter().find(|(c, _)| *c == codec).map(|(_, pt)| *pt)
    }

    /// Decide what to do with `p`. Rules:
    /// - it switches to a layer only at that layer's keyframe, and only to its target;
    /// - stepping down (its target ranks below the layer it receives), it gets no more of
    ///   the higher layer: its link no longer carries it, and every frame more would queue
    ///   in front of its voice; it waits for the lower layer's keyframe;
    /// - once it has had a picture, or been offered a replay, a lost picture asks for a
    ///   keyframe, never a replay of a second of frames into a congested link.
    pub fn forward(&mut self, p: &RoutedPacket) -> Forward {
        let choice = match self.selector.choice() {
            crate::LayerChoice::Low => 0,
            crate::LayerChoice::Medium => 1,
            crate::LayerChoice::High => 2,
        };
        let target = p.targets[choice];
        let switch_allowed = p.kind == MediaKind::Audio || target.map(|(i, _)| i) == Some(p.layer);
        if p.kind == MediaKind::Video
            && self.forwarder.source() == Some(p.input.source)
            && target.is_some_and(|(_, rank)| rank < p.rank)
        {
            self.forwarder.release();
        }
        match self.forwarder.decide(&p.input, switch_allowed) {
            Decision::Send { seq, ts, .. } => {
                self.replay_tried = true;
                let Some(pt) = self.pt_for(p.codec) else { return Forward::Drop };
                match self.red {
                    Some(red_pt) if p.kind == MediaKind::Audio => {
                        Forward::Send { seq, ts, pt: red_pt, red_of: Some(pt) }
                    }
                    _ => Forward::Send { seq, ts, pt, red_of: None },
                }
            }
            Decision::Drop(DropReason::WaitingForKeyframe) if switch_allowed => {
                if self.forwarder.source().is_some() {
                    Forward::WouldLikeKeyframe
                } else if p.replay && !self.replay_tried {
                    self.replay_tried = true;
                    Forward::Replay
                } else {
                    Forward::NeedKeyframe
                }
            }
            Decision::Drop(_) => Forward::Drop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forwarder::SourceKey;
    use crate::{LayerChoice, LayerSelector};
    use std::time::Instant;

    fn video(choice: LayerChoice) -> Subscription {
        Subscription {
            mid: Mid::from("1"),
            kind: MediaKind::Video,
            ssrc: 7.into(),
            pts: vec![(Codec::Vp8, 96.into())],
            red: None,
            forwarder: Forwarder::new(90_000, true, 100),
            selector: LayerSelector::new(choice),
            replay_tried: false,
        }
    }

    /// A packet of layer `layer` (its rank is its index), with every choice served from
    /// `target`.
    fn packet(layer: usize, target: usize, seq: u64, keyframe_start: bool, replay: bool) -> RoutedPacket {
        RoutedPacket {
            input: PacketIn {
                source: SourceKey { publisher: 1, ssrc: 10 + layer as u32 },
                seq,
                ts: seq as u32 * 3000,
                keyframe_start,
                now: Instant::now(),
            },
            kind: MediaKind::Video,
            codec: Codec::Vp8,
            layer,
            rank: layer,
            targets: [Some((target, target)); 3],
            replay,
        }
    }

    #[test]
    fn a_subscription_decides_sends_keyframes_and_replays_as_values() {
        let mut sub = video(LayerChoice::High);
        // No picture yet: a replay once, then keyframes asked for.
        assert_eq!(sub.forward(&packet(2, 2, 1, false, true)), Forward::Replay);
        assert_eq!(sub.forward(&packet(2, 2, 2, false, true)), Forward::NeedKeyframe);
        // Its target's keyframe: sent, renumbered from its own sequence.
        let Forward::Send { seq, pt, red_of, .. } = sub.forward(&packet(2, 2, 3, true, true)) else {
            panic!("a keyframe of its target is sent")
        };
        assert_eq!((seq, pt, red_of), (100, 96.into(), None));
        // Another layer's packets are not its own.
        assert_eq!(sub.forward(&packet(1, 2, 50, false, true)), Forward::Drop);
        // Its target drops to layer 1: no more of layer 2 (stepping down), and it would
        // like layer 1's keyframe while it keeps its picture.
        assert_eq!(sub.forward(&packet(2, 1, 4, false, true)), Forward::Drop);
        assert_eq!(sub.forward(&packet(1, 1, 51, false, true)), Forward::NeedKeyframe);
        assert!(matches!(sub.forward(&packet(1, 1, 52, true, true)), Forward::Send { seq: 101, .. }));
    }

    #[test]
    fn a_codec_the_pupil_did_not_accept_is_never_sent() {
        let mut sub = video(LayerChoice::High);
        let mut p = packet(2, 2, 1, true, false);
        p.codec = Codec::H264;
        assert_eq!(sub.forward(&p), Forward::Drop);
    }
}
