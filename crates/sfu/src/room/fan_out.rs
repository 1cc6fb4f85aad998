//! One class over more than one worker: a home room hands what it routes to fan-out rooms,
//! which mirror its publications and forward to their own pupils (rules in [`crate::fed`]).

use super::routing::Incoming;
use super::*;
use crate::FedLayer;
use crate::FedPublication;

impl Room {
    /// A fan-out room of class `id`: no publisher of its own, fed by the class's home room
    /// ([`Room::feed`]).
    pub fn fed(id: ClassId, config: SfuConfig) -> Self {
        Room { fed: true, ..Room::new(id, config) }
    }

    /// Hand what this room routes to `sink` (`None`: stop), as it routes it, each packet
    /// before this room's own pupils get it; the current shape of its publications first.
    pub fn set_fan_out(&mut self, sink: Option<FanOutSink>) {
        self.fan_out = sink;
        self.shape_changed();
    }

    /// The publications changed: a home room with fan-out rooms hands over their new shape.
    pub(super) fn shape_changed(&mut self) {
        if self.fan_out.is_some() {
            let shape = self.shape();
            if let Some(sink) = self.fan_out.as_mut() {
                sink(Fed::Shape(shape));
            }
        }
    }

    /// This room's publications, as a fan-out room mirrors them.
    pub fn shape(&self) -> FedShape {
        FedShape {
            main: self.main_publisher,
            publications: self
                .publications
                .iter()
                .map(|x| FedPublication {
                    publisher: x.publisher,
                    role: x.role,
                    mid: x.mid,
                    kind: x.kind,
                    rids: x.rids.clone(),
                    layers: x.layers.iter().map(|l| FedLayer { rid: l.rid, ssrc: l.ssrc, active: l.active }).collect(),
                })
                .collect(),
        }
    }

    /// A fan-out room takes what its home room handed over; returns how many packets it
    /// routed (the driver times their copies from [`FedPacket::received`]). Inside a batch
    /// ([`Room::begin_batch`]), the pupils are drained at its end, once for all the packets
    /// fed meanwhile; otherwise at once.
    pub fn feed(&mut self, now: Instant, items: Vec<Fed>) -> usize {
        if !self.fed {
            return 0;
        }
        let batching = self.batching;
        self.batching = true;
        let mut routed = 0;
        for item in items {
            match item {
                Fed::Shape(shape) => self.mirror(shape),
                Fed::Packet(p) => {
                    let found = self.publications.iter().enumerate().find_map(|(pi, x)| {
                        (x.publisher == p.publisher).then(|| x.layer_by_ssrc(p.ssrc).map(|li| (pi, li))).flatten()
                    });
                    let Some((pi, li)) = found else { continue }; // its shape has not come yet
                    let role = self.publications[pi].role;
                    routed += 1; // (not `rtp_in`: the home counted it)
                    let incoming = Incoming {
                        publisher: p.publisher,
                        role,
                        muted: false, // the home hands over no muted voice
                        seq: p.seq,
                        ts: p.ts,
                        marker: p.marker,
                        ext: p.ext,
                        sender: None,
                        payload: p.payload,
                        received: p.received,
                    };
                    self.route(now, pi, li, p.codec, incoming);
                }
            }
        }
        if !batching {
            self.end_batch(now);
        }
        routed
    }

    /// Take the home's publications as they are now: each layer keeps its state (keyframe
    /// cache, meter, throttle) while its stream is the same.
    fn mirror(&mut self, shape: FedShape) {
        let interval = self.config.keyframe_interval;
        self.publications.retain(|x| shape.publications.iter().any(|s| s.publisher == x.publisher && s.mid == x.mid));
        for s in shape.publications {
            let pi = match self.publications.iter().position(|x| x.publisher == s.publisher && x.mid == s.mid) {
                Some(pi) => pi,
                None => {
                    self.publications.push(Publication::new(s.publisher, s.role, s.mid, s.kind, s.rids.clone()));
                    self.publications.len() - 1
                }
            };
            let publication = &mut self.publications[pi];
            publication.rids = s.rids;
            publication.layers.retain(|l| s.layers.iter().any(|x| x.rid == l.rid));
            for l in &s.layers {
                if !publication.layers.iter().any(|x| x.rid == l.rid && x.ssrc == l.ssrc) {
                    publication.add_layer(l.rid, l.ssrc, interval);
                }
                publication.set_active(l.ssrc, l.active);
            }
        }
        if self.main_publisher != shape.main {
            self.main_publisher = shape.main;
            // Pupils move to the new publisher at its first keyframe.
            for (_, s) in self.participants.iter_mut() {
                if let ParticipantKind::Subscriber { audio, video, .. } = &mut s.kind {
                    audio.iter_mut().chain(video.iter_mut()).for_each(|x| x.forwarder.release());
                }
            }
        }
        self.video_changed = true;
    }

    /// The keyframes this fan-out room's pupils need of the home's publishers, since the
    /// last call (each stream once; the room's own throttle already applied).
    pub fn take_fed_keyframe_requests(&mut self) -> Vec<FedKeyframeRequest> {
        std::mem::take(&mut self.fed_keyframes)
    }

    /// A fan-out room's pupils need a keyframe of `ssrc` from `publisher`: ask it, under this
    /// room's throttle.
    pub fn request_keyframe_of(&mut self, now: Instant, publisher: ParticipantId, ssrc: Ssrc) {
        let layer = self
            .publications
            .iter_mut()
            .filter(|x| x.publisher == publisher && x.kind == MediaKind::Video)
            .find_map(|x| x.layers.iter_mut().find(|l| l.ssrc == ssrc));
        if let Some(layer) = layer
            && layer.throttle.request(now)
        {
            self.plis.push((publisher, ssrc));
            self.run(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(main: u64, high_ssrc: u32, high_active: bool, floor: bool) -> FedShape {
        let layer = |rid: &str, ssrc: u32, active: bool| FedLayer { rid: Some(rid.into()), ssrc: ssrc.into(), active };
        let mut publications = vec![
            FedPublication {
                publisher: ParticipantId(main),
                role: PublisherRole::Class,
                mid: "0".into(),
                kind: MediaKind::Audio,
                rids: vec![],
                layers: vec![FedLayer { rid: None, ssrc: 5.into(), active: true }],
            },
            FedPublication {
                publisher: ParticipantId(main),
                role: PublisherRole::Class,
                mid: "1".into(),
                kind: MediaKind::Video,
                rids: vec!["l".into(), "m".into(), "h".into()],
                layers: vec![layer("l", 10, true), layer("m", 20, true), layer("h", high_ssrc, high_active)],
            },
        ];
        if floor {
            publications.push(FedPublication {
                publisher: ParticipantId(9),
                role: PublisherRole::Floor,
                mid: "0".into(),
                kind: MediaKind::Audio,
                rids: vec![],
                layers: vec![FedLayer { rid: None, ssrc: 90.into(), active: true }],
            });
        }
        FedShape { main: Some(ParticipantId(main)), publications }
    }

    fn packet(publisher: u64, ssrc: u32, now: Instant) -> Fed {
        Fed::Packet(FedPacket {
            publisher: ParticipantId(publisher),
            ssrc: ssrc.into(),
            codec: Codec::Opus,
            seq: 1,
            ts: 960,
            marker: false,
            payload: std::sync::Arc::from(vec![1u8; 40]),
            ext: ExtensionValues::default(),
            received: now,
        })
    }

    #[test]
    fn a_fan_out_room_mirrors_its_homes_publications_as_they_change() {
        let now = Instant::now();
        let mut room = Room::fed(ClassId("c".into()), SfuConfig::default());
        // A packet before its shape is not routed.
        assert_eq!(room.feed(now, vec![packet(1, 5, now)]), 0);
        for s in [
            shape(1, 30, true, false),
            shape(1, 30, false, true), // the high layer pauses, a pupil takes the floor
            shape(1, 31, true, true),  // the encoder restarts the high layer with a new SSRC
            shape(2, 31, true, false), // another publisher, the floor is given back
        ] {
            room.feed(now, vec![Fed::Shape(s.clone())]);
            assert_eq!(room.shape(), s);
        }
        assert!(!room.is_live(), "the home says whether the class is live, not a fan-out room");
        // Packets of a known stream are routed; of a publisher gone, not.
        assert_eq!(room.feed(now, vec![packet(2, 5, now), packet(1, 5, now)]), 1);
    }

    #[test]
    fn a_home_room_hands_over_its_shape_when_the_fan_out_starts() {
        let mut room = Room::new(ClassId("c".into()), SfuConfig::default());
        let handed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let to = handed.clone();
        room.set_fan_out(Some(Box::new(move |item| to.lock().unwrap().push(item))));
        let items = handed.lock().unwrap().clone();
        assert!(matches!(items.as_slice(), [Fed::Shape(s)] if *s == FedShape::default()), "{items:?}");
        // A home room takes no fed packets.
        let now = Instant::now();
        room.feed(now, vec![Fed::Shape(shape(1, 30, true, false))]);
        assert_eq!(room.shape(), FedShape::default());
    }
}
