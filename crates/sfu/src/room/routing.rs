//! Routing a publisher's packet to the subscriptions: the room loops, each subscription
//! decides ([`crate::Subscription::forward`]), the room acts on the decision; keyframes
//! asked for, or replayed from the keyframe cache to a pupil with no picture yet.

use super::*;

impl Room {
    pub(super) fn next_seq_seed(&mut self) -> u16 {
        // xorshift: a different first sequence number per subscription (RFC 3550 wants random).
        let mut x = self.first_seq_rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.first_seq_rng = x;
        (x % 30_000) as u16 + 1
    }

    /// Ask the floor publisher for a keyframe (a subscriber lost its camera picture; throttled).
    pub(super) fn request_floor_keyframe(&mut self, now: Instant) {
        let floor = self.floor_publishers();
        for publication in
            self.publications.iter_mut().filter(|x| floor.contains(&x.publisher) && x.kind == MediaKind::Video)
        {
            if let Some(layer) = publication.layers.last_mut()
                && layer.throttle.request(now)
            {
                self.plis.push((publication.publisher, layer.ssrc));
            }
        }
    }

    /// Send subscriber `idx`, which has no picture yet, the frames of layer `li` of
    /// publication `pi` (the one it wants) since that layer's keyframe, if the keyframe is
    /// recent ([`SfuConfig::keyframe_replay`]); true if it got any.
    pub(super) fn replay_keyframe(&mut self, now: Instant, idx: usize, pi: usize, li: usize) -> bool {
        let Some(main) = self.main_publisher else { return false };
        let p = &mut self.participants[idx];
        let ParticipantKind::Subscriber { video: Some(sub), .. } = &mut p.kind else { return false };
        let layer = &self.publications[pi].layers[li];
        let (Some(group), Some(codec)) = (layer.cache.group(now, self.config.keyframe_replay), layer.codec) else {
            return false;
        };
        let Some(pt) = sub.pt_for(codec) else { return false };
        let source = SourceKey { publisher: main.0, ssrc: *layer.ssrc };
        let mut api = p.rtc.direct_api();
        let mut sent = 0;
        for c in group {
            let input = PacketIn { source, seq: c.seq, ts: c.ts, keyframe_start: c.keyframe_start, now };
            if let Decision::Send { seq, ts, .. } = sub.forwarder.decide(&input, true) {
                let Some(tx) = api.stream_tx(&sub.ssrc) else { break };
                tx.write_rtp(
                    RtpWrite::new(pt, seq.into(), ts, now, c.payload.clone())
                        .marker(c.marker)
                        .ext_vals(c.ext.clone())
                        .nackable(true),
                );
                sent += 1;
            }
        }
        p.stats.packets_out += sent;
        self.undrained += sent as usize;
        self.stats.forwarded += sent;
        self.stats.keyframe_replays += u64::from(sent > 0);
        Self::mark(&mut self.dirty, p, idx);
        sent > 0
    }

    /// Whether subscriber `idx`, with no picture yet, would be served its first picture from
    /// the keyframe cache of the layer it wants.
    pub(super) fn cache_serves(&self, now: Instant, idx: usize) -> bool {
        let Some(main) = self.main_publisher else { return false };
        let ParticipantKind::Subscriber { video: Some(sub), .. } = &self.participants[idx].kind else {
            return false;
        };
        if self.config.keyframe_replay.is_zero() || sub.replay_tried || sub.forwarder.source().is_some() {
            return false;
        }
        self.publications.iter().filter(|x| x.publisher == main && x.kind == MediaKind::Video).any(|publication| {
            publication
                .target(sub.selector.choice())
                .is_some_and(|l| publication.layers[l].cache.group(now, self.config.keyframe_replay).is_some())
        })
    }

    /// Ask the main publisher for a keyframe on the layer subscriber `idx` wants (throttled).
    pub(super) fn request_keyframe_for(&mut self, now: Instant, idx: usize) {
        let Some(main) = self.main_publisher else { return };
        let ParticipantKind::Subscriber { video: Some(sub), .. } = &self.participants[idx].kind else {
            return;
        };
        let wanted = sub.selector.clone();
        let current = sub.forwarder.source();
        for publication in self.publications.iter_mut().filter(|x| x.publisher == main && x.kind == MediaKind::Video) {
            let layer = current
                .and_then(|s| publication.layer_by_ssrc(s.ssrc.into()))
                .or_else(|| publication.target(wanted.choice()));
            if let Some(l) = layer {
                let layer = &mut publication.layers[l];
                if layer.throttle.request(now) {
                    self.plis.push((main, layer.ssrc));
                }
            }
        }
    }

    pub(super) fn on_rtp(&mut self, now: Instant, idx: usize, pkt: RtpPacket) {
        let publisher = &mut self.participants[idx];
        let (role, muted) = match publisher.kind {
            ParticipantKind::Publisher { role, muted, .. } => (role, muted),
            ParticipantKind::Subscriber { .. } => return, // Subscribers do not send media.
        };
        let pid = publisher.id;
        publisher.stats.packets_in += 1;
        publisher.stats.bytes_in += pkt.payload.len() as u64;
        self.stats.rtp_in += 1;
        let ssrc = pkt.header.ssrc;

        // Find the publication and layer of this stream.
        let mut found = None;
        for (pi, publication) in self.publications.iter().enumerate() {
            if publication.publisher == pid
                && let Some(li) = publication.layer_by_ssrc(ssrc)
            {
                found = Some((pi, li));
                break;
            }
        }
        let (pi, li) = match found {
            Some(x) => x,
            None => {
                let mut api = publisher.rtc.direct_api();
                let Some((mid, rid)) = api.stream_rx(&ssrc).map(|rx| (rx.mid(), rx.rid())) else { return };
                let Some(pi) = self.publications.iter().position(|x| x.publisher == pid && x.mid == mid) else {
                    return;
                };
                let li = self.publications[pi].add_layer(rid, ssrc, self.config.keyframe_interval);
                debug!(class = %self.id, participant = %pid, %mid, ?rid, %ssrc, "new layer");
                self.video_changed = true;
                self.shape_changed(); // the fan-out rooms learn the layer before its packets
                (pi, li)
            }
        };

        let layer = &mut self.publications[pi].layers[li];
        let codec = match (layer.codec_pt, layer.codec) {
            (Some(pt), Some(c)) if pt == pkt.header.payload_type => c,
            _ => {
                let Some(params) =
                    self.participants[idx].rtc.codec_config().find(|p| p.pt() == pkt.header.payload_type)
                else {
                    return;
                };
                let c = params.spec().codec;
                layer.codec_pt = Some(pkt.header.payload_type);
                c
            }
        };
        let incoming = Incoming {
            publisher: pid,
            role,
            muted,
            seq: *pkt.seq_no,
            ts: pkt.header.timestamp,
            marker: pkt.header.marker,
            ext: cached_ext(&pkt.header.ext_vals),
            sender: pkt
                .last_sender_info
                .map(|i| crate::SenderClock { ntp: i.ntp_time, rtp: i.rtp_time.numer() as u32 }),
            payload: pkt.payload,
            received: now,
        };
        self.route(now, pi, li, codec, incoming);
    }

    /// Route a packet of layer `li` of publication `pi` (from this room's publisher, or fed
    /// by the home room): the layer's meter, keyframe cache and throttle, the recording, the
    /// fan-out rooms, then each subscription decides.
    pub(super) fn route(&mut self, now: Instant, pi: usize, li: usize, codec: Codec, pkt: Incoming) {
        let Incoming { publisher: pid, role, muted, .. } = pkt;
        let publication = &mut self.publications[pi];
        let kind = publication.kind;
        let layer = &mut publication.layers[li];
        layer.codec = Some(codec);
        if kind == MediaKind::Video {
            // Payload + RTP/SRTP/UDP/IP headers: what the layer costs a pupil on the wire.
            layer.meter.record(now, pkt.payload.len() + 60);
        }
        let keyframe_start = kind == MediaKind::Audio || is_keyframe_start(video_codec(codec), &pkt.payload);
        if kind == MediaKind::Video && keyframe_start {
            layer.throttle.keyframe_received(now);
        }
        if role == PublisherRole::Class && self.main_publisher != Some(pid) {
            return;
        }
        let ext = &pkt.ext;
        if kind == MediaKind::Video && role == PublisherRole::Class && !self.config.keyframe_replay.is_zero() {
            let cached = CachedPacket {
                seq: pkt.seq,
                ts: pkt.ts,
                marker: pkt.marker,
                keyframe_start,
                ext: ext.clone(),
                payload: pkt.payload.clone(),
            };
            layer.cache.push(now, cached, self.config.keyframe_replay_bytes);
        }
        if muted && kind == MediaKind::Audio {
            return;
        }
        let layer_ssrc = layer.ssrc;
        let targets = publication.targets().map(|t| t.map(|i| (i, publication.layers[i].rank)));
        let rank = publication.layers[li].rank;
        if self.recording && role == PublisherRole::Class {
            let stream = match kind {
                MediaKind::Audio => crate::TapStream::Audio,
                MediaKind::Video => crate::TapStream::Video { rank, layers: publication.active_layers() },
            };
            self.tapped.push(crate::TappedPacket {
                stream,
                codec,
                ssrc: *layer_ssrc,
                seq: pkt.seq,
                ts: pkt.ts,
                marker: pkt.marker,
                payload: pkt.payload.clone(),
                at: now,
                sender: pkt.sender,
            });
        }
        if let Some(sink) = self.fan_out.as_mut() {
            // Before this room's own pupils: the fan-out rooms' workers start on it now.
            sink(Fed::Packet(FedPacket {
                publisher: pid,
                ssrc: layer_ssrc,
                codec,
                seq: pkt.seq,
                ts: pkt.ts,
                marker: pkt.marker,
                payload: pkt.payload.clone(),
                ext: ext.clone(),
                received: pkt.received,
            }));
        }
        let red = &mut publication.layers[li].red;
        let routed = RoutedPacket {
            input: PacketIn {
                source: SourceKey { publisher: pid.0, ssrc: *layer_ssrc },
                seq: pkt.seq,
                ts: pkt.ts,
                keyframe_start,
                now,
            },
            kind,
            codec,
            layer: li,
            rank,
            targets,
            replay: kind == MediaKind::Video && !self.config.keyframe_replay.is_zero() && role == PublisherRole::Class,
        };
        let nackable = kind == MediaKind::Video;
        let mut want_keyframe = false;
        let mut would_like_keyframe = false;
        let mut forwarded_any = false;
        let mut to_replay: Vec<usize> = Vec::new();

        // The room loops; each subscription decides (`Subscription::forward`).
        for (si, sub_p) in self.participants.iter_mut() {
            if !sub_p.connected || sub_p.dead {
                continue;
            }
            if kind == MediaKind::Video
                && !(if role == PublisherRole::Class { sub_p.class_video_on } else { sub_p.floor_video_on })
            {
                continue; // this pupil's link carries audio only (or not the floor camera) now
            }
            let ParticipantKind::Subscriber { audio, video, floor_audio, floor_video, .. } = &mut sub_p.kind else {
                continue;
            };
            let Some(sub) = (match (role, kind) {
                (PublisherRole::Class, MediaKind::Audio) => audio.as_mut(),
                (PublisherRole::Class, MediaKind::Video) => video.as_mut(),
                (PublisherRole::Floor, MediaKind::Audio) => floor_audio.as_mut(),
                (PublisherRole::Floor, MediaKind::Video) => floor_video.as_mut(),
            }) else {
                continue;
            };
            match sub.forward(&routed) {
                Forward::Send { seq, ts, pt, red_of } => {
                    let payload = match red_of {
                        Some(inner) => red.payload(pkt.seq, pkt.ts, *inner, &pkt.payload),
                        None => pkt.payload.clone(),
                    };
                    let ssrc_out = sub.ssrc;
                    let mut api = sub_p.rtc.direct_api();
                    let Some(tx) = api.stream_tx(&ssrc_out) else { continue };
                    tx.write_rtp(
                        RtpWrite::new(pt, seq.into(), ts, now, payload)
                            .marker(pkt.marker)
                            .ext_vals(ext.clone())
                            .nackable(nackable),
                    );
                    sub_p.stats.packets_out += 1;
                    self.undrained += 1;
                    forwarded_any = true;
                    self.stats.forwarded += 1;
                    self.stats.forwarded_bytes += pkt.payload.len() as u64;
                    Self::mark(&mut self.dirty, sub_p, si);
                }
                Forward::WouldLikeKeyframe => would_like_keyframe = true,
                Forward::Replay => to_replay.push(si),
                Forward::NeedKeyframe => want_keyframe = true,
                Forward::Drop => {}
            }
        }
        if kind == MediaKind::Audio {
            red.advance(pkt.seq, pkt.ts, pkt.payload);
        }
        for si in to_replay {
            if self.replay_keyframe(now, si, pi, li) {
                forwarded_any = true; // the group ends with this packet
            } else {
                want_keyframe = true;
            }
        }
        if kind == MediaKind::Video && forwarded_any {
            self.frame_open = !pkt.marker;
        }
        if want_keyframe || would_like_keyframe {
            let layer = &mut self.publications[pi].layers[li];
            let send = if want_keyframe { layer.throttle.request(now) } else { layer.throttle.request_lazy(now) };
            if send {
                self.plis.push((pid, layer_ssrc));
            }
        }
    }
}

/// A packet to route, whoever received it.
pub(super) struct Incoming {
    pub(super) publisher: ParticipantId,
    pub(super) role: PublisherRole,
    /// A muted floor voice is not relayed.
    pub(super) muted: bool,
    pub(super) seq: u64,
    pub(super) ts: u32,
    pub(super) marker: bool,
    /// The header extensions carried on to pupils.
    pub(super) ext: ExtensionValues,
    /// The stream's latest sender report (for a recording).
    pub(super) sender: Option<crate::SenderClock>,
    pub(super) payload: std::sync::Arc<[u8]>,
    /// When the home room received it.
    pub(super) received: Instant,
}

/// The codec as the keyframe detection knows it.
pub(super) fn video_codec(c: Codec) -> VideoCodec {
    match c {
        Codec::Vp8 => VideoCodec::Vp8,
        Codec::H264 => VideoCodec::H264,
        _ => VideoCodec::Other,
    }
}

/// The header extensions a packet carries on to pupils.
pub(super) fn cached_ext(e: &ExtensionValues) -> ExtensionValues {
    ExtensionValues {
        audio_level: e.audio_level,
        voice_activity: e.voice_activity,
        video_orientation: e.video_orientation,
        abs_capture_time: e.abs_capture_time,
        ..Default::default()
    }
}
