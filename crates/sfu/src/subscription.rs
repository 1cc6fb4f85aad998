//! Subscription: media going out to a subscriber (one m-line), fed by the class's publication.

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

impl Subscription {
    /// The subscriber's payload type for `codec`, if it accepts it.
    pub fn pt_for(&self, codec: Codec) -> Option<Pt> {
        self.pts.iter().find(|(c, _)| *c == codec).map(|(_, pt)| *pt)
    }
}
