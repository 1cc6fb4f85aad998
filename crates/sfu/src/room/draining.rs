//! Driving the participants' str0m peers: drain each to its timeout after every change,
//! act on its events (media added, packets, estimates, keyframe requests), reap the dead.

use super::*;

impl Room {
    pub(super) fn fault(&mut self, idx: usize, during: &str) {
        let p = &mut self.participants[idx];
        warn!(class = %self.id, participant = %p.id, during, "peer panicked inside str0m; removing it");
        p.dead = true;
        self.stats.peer_panics += 1;
    }

    pub(super) fn recompute_timeout(&mut self) {
        let connect_timeout = self.config.connect_timeout;
        let mut t = self
            .participants
            .iter()
            .map(|(_, p)| p)
            .filter(|p| !p.dead)
            .map(|p| {
                let t = if p.connected { p.timeout } else { p.timeout.min(p.created + connect_timeout) };
                p.allocator.as_ref().and_then(|a| a.next_timeout()).map_or(t, |a| a.min(t))
            })
            .min();
        for publication in &self.publications {
            for layer in &publication.layers {
                if let Some(d) = layer.throttle.deadline() {
                    t = Some(t.map_or(d, |t| t.min(d)));
                }
            }
        }
        self.next_timeout = t;
    }

    /// Drain dirty participants, process their events, repeat until quiet; then reap the dead.
    pub(super) fn run(&mut self, now: Instant) {
        loop {
            if std::mem::take(&mut self.video_changed) {
                self.reallocate(now);
            }
            while let Some((pid, ssrc)) = self.plis.pop() {
                if self.fed && self.index(pid).is_none() {
                    // The home room's publisher: the request goes there.
                    let request = FedKeyframeRequest { publisher: pid, ssrc };
                    if !self.fed_keyframes.contains(&request) {
                        self.fed_keyframes.push(request);
                    }
                    continue;
                }
                if let Some(idx) = self.index(pid) {
                    let p = &mut self.participants[idx];
                    if let Some(rx) = p.rtc.direct_api().stream_rx(&ssrc) {
                        rx.request_keyframe(KeyframeRequestKind::Pli);
                        self.stats.plis_sent += 1;
                        Self::mark(&mut self.dirty, p, idx);
                    }
                }
            }
            if self.dirty.is_empty() && self.pending.is_empty() {
                break;
            }
            while let Some(idx) = self.dirty.pop() {
                self.participants[idx].queued = false;
                self.drain(idx, now);
            }
            self.undrained = 0;
            let mut pending = std::mem::take(&mut self.pending);
            for (idx, event) in pending.drain(..) {
                self.on_event(now, idx, event);
            }
            if self.pending.is_empty() {
                self.pending = pending; // keep the allocation
            }
        }
        if self.participants.iter().any(|(_, p)| p.dead || !p.rtc.is_alive()) {
            self.reap(now);
            if self.video_changed {
                self.run(now); // a publisher left: the pupils' allocations follow now
            }
        }
    }

    pub(super) fn drain(&mut self, idx: usize, now: Instant) {
        let p = &mut self.participants[idx];
        // str0m asks for an immediate timeout after new media is written (its pacer releases
        // packets on timeouts): serve those due by the batch's `now` here, so that the first
        // packet leaves now (the pacer's next step, 1 µs on, is the worker's `serve_due`).
        // Bounded, in case a timeout keeps being due with nothing to do.
        let mut due_rounds = 0;
        loop {
            match catch_unwind(AssertUnwindSafe(|| p.rtc.poll_output())) {
                Ok(Ok(Output::Timeout(t))) => {
                    if t <= now && due_rounds < 4 && !p.dead {
                        due_rounds += 1;
                        match catch_unwind(AssertUnwindSafe(|| p.rtc.handle_input(Input::Timeout(now)))) {
                            Ok(_) => continue,
                            Err(_) => {
                                warn!(class = %self.id, participant = %p.id, "peer panicked on timeout; removing");
                                p.dead = true;
                                self.stats.peer_panics += 1;
                            }
                        }
                    }
                    p.timeout = t;
                    let mut wake = if p.connected { t } else { t.min(p.created + self.config.connect_timeout) };
                    if let Some(a) = p.allocator.as_ref().and_then(|a| a.next_timeout()) {
                        wake = wake.min(a);
                    }
                    self.next_timeout = Some(self.next_timeout.map_or(wake, |n| n.min(wake)));
                    break;
                }
                Ok(Ok(Output::Transmit(t))) => {
                    due_rounds = 0;
                    p.stats.bytes_out += t.contents.len() as u64;
                    self.transmits.push(t);
                }
                Ok(Ok(Output::Event(e))) => self.pending.push((idx, e)),
                Ok(Err(e)) => {
                    debug!(class = %self.id, participant = %p.id, "poll_output error: {e}; removing");
                    p.dead = true;
                    break;
                }
                Err(_) => {
                    warn!(class = %self.id, participant = %p.id, "peer panicked in poll_output; removing");
                    p.dead = true;
                    self.stats.peer_panics += 1;
                    break;
                }
            }
        }
    }

    pub(super) fn on_event(&mut self, now: Instant, idx: usize, event: Event) {
        match event {
            Event::RtpPacket(pkt) => self.on_rtp(now, idx, pkt),
            Event::Connected => {
                let p = &mut self.participants[idx];
                p.connected = true;
                info!(class = %self.id, participant = %p.id, "connected");
                self.events.push_back(RoomEvent::Connected(p.id));
                if !p.is_publisher() {
                    // A new pupil wants a picture now, unless the keyframe cache holds a
                    // recent one for its layer: its first packet waiting for a keyframe is then
                    // served from the cache (and asks, if the group aged meanwhile).
                    if !self.cache_serves(now, idx) {
                        self.request_keyframe_for(now, idx);
                    }
                    self.request_floor_keyframe(now);
                }
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                let p = &mut self.participants[idx];
                info!(class = %self.id, participant = %p.id, "ICE disconnected");
                p.dead = true;
            }
            Event::MediaAdded(m) => self.on_media_added(idx, m.mid, m.kind, m.direction, m.simulcast),
            Event::KeyframeRequest(req) => {
                self.stats.keyframe_requests_in += 1;
                let p = &mut self.participants[idx];
                p.stats.keyframe_requests_in += 1;
                let floor_mid = match &p.kind {
                    ParticipantKind::Subscriber { floor_video: Some(f), .. } => Some(f.mid),
                    _ => None,
                };
                if floor_mid == Some(req.mid) {
                    self.request_floor_keyframe(now);
                } else {
                    self.request_keyframe_for(now, idx);
                }
            }
            Event::StreamPaused(sp) => {
                let pid = self.participants[idx].id;
                if let Some(publication) = self.publications.iter_mut().find(|x| x.publisher == pid && x.mid == sp.mid)
                {
                    publication.set_active(sp.ssrc, !sp.paused);
                    self.video_changed = true;
                }
                self.shape_changed();
            }
            Event::MediaEgressStats(s) => {
                let p = &mut self.participants[idx];
                p.stats.nacks_in = p.stats.nacks_in.max(s.nacks);
                if let Some(rtt) = s.rtt {
                    p.stats.rtt_ms = Some(rtt.as_secs_f32() * 1000.0);
                }
                if let Some(loss) = s.loss {
                    p.stats.loss = Some(loss);
                }
                // A pupil without transport-cc: each receiver report of its class video moves
                // the estimate (of its audio while it gets no video: it must be able to come
                // back).
                let reported_mid = match &p.kind {
                    ParticipantKind::Subscriber { video: Some(v), .. } if p.class_video_on => Some(v.mid),
                    ParticipantKind::Subscriber { audio: Some(a), .. } => Some(a.mid),
                    _ => None,
                };
                let ceiling = p.allocator.as_ref().map_or(u64::MAX, |a| a.enough_bps());
                if let (Some(loss), Some(est)) = (s.loss, p.report_estimator.as_mut())
                    && reported_mid == Some(s.mid)
                {
                    let e = est.on_report(now, loss, s.rtt, ceiling);
                    self.on_estimate(now, idx, e);
                }
            }
            Event::EgressBitrateEstimate(BweKind::Remb { estimate, mid }) => {
                // A pupil without transport-cc that sends REMB: its own estimate is better
                // than one made from its reports.
                let p = &mut self.participants[idx];
                let video_mid = match &p.kind {
                    ParticipantKind::Subscriber { video: Some(v), .. } => Some(v.mid),
                    _ => None,
                };
                if (p.report_estimator.is_some() || p.sends_remb) && video_mid == Some(mid) {
                    p.report_estimator = None;
                    p.sends_remb = true;
                    self.on_estimate(now, idx, estimate.as_u64());
                }
            }
            Event::PeerStats(s) => {
                // Only a pupil that receives video has anything to adapt (an audio-only offer
                // has a tiny estimate that must not read as "connection too weak").
                let has_video =
                    matches!(self.participants[idx].kind, ParticipantKind::Subscriber { video: Some(_), .. });
                if let Some(b) = s.bwe_tx.filter(|_| has_video) {
                    if let (Some(a), Some(loss)) = (self.participants[idx].allocator.as_mut(), s.egress_loss_fraction) {
                        a.on_loss(now, loss);
                    }
                    self.on_estimate(now, idx, b.as_u64());
                }
            }
            Event::MediaIngressStats(s) => {
                let p = &mut self.participants[idx];
                if let Some(rtt) = s.rtt {
                    p.stats.rtt_ms = Some(rtt.as_secs_f32() * 1000.0);
                }
                if let Some(loss) = s.loss {
                    p.stats.loss = Some(loss);
                }
            }
            _ => {}
        }
    }

    pub(super) fn on_media_added(
        &mut self,
        idx: usize,
        mid: Mid,
        kind: MediaKind,
        direction: Direction,
        simulcast: Option<str0m::media::Simulcast>,
    ) {
        let seed = self.next_seq_seed();
        let p = &mut self.participants[idx];
        match &mut p.kind {
            ParticipantKind::Publisher { role, camera, .. } => {
                if !direction.is_receiving() || (kind == MediaKind::Video && !*camera) {
                    return; // nothing to relay (video without the camera grant never is)
                }
                let rids = simulcast.map(|s| s.recv.iter().map(|l| l.rid).collect()).unwrap_or_default();
                debug!(class = %self.id, participant = %p.id, %mid, ?kind, ?role, "publication");
                self.publications.push(Publication::new(p.id, *role, mid, kind, rids));
                if *role == PublisherRole::Class && self.main_publisher != Some(p.id) {
                    self.main_publisher = Some(p.id);
                    // Subscribers move to the new publisher at its first keyframe.
                    for (_, s) in self.participants.iter_mut() {
                        if let ParticipantKind::Subscriber { audio, video, .. } = &mut s.kind {
                            audio.iter_mut().chain(video.iter_mut()).for_each(|x| x.forwarder.release());
                        }
                    }
                    self.events.push_back(RoomEvent::Live(true));
                }
                self.shape_changed();
            }
            ParticipantKind::Subscriber { audio, video, floor_audio, floor_video, layer, feed } => {
                let layer = *layer;
                if !direction.is_sending() {
                    return;
                }
                // m-lines are served in order of kind: class then floor (feed=class), or floor only.
                let candidates = match (kind, *feed) {
                    (MediaKind::Audio, Feed::Class) => [Some(audio), Some(floor_audio)],
                    (MediaKind::Video, Feed::Class) => [Some(video), Some(floor_video)],
                    (MediaKind::Audio, Feed::Floor) => [Some(floor_audio), None],
                    (MediaKind::Video, Feed::Floor) => [Some(floor_video), None],
                };
                let Some(slot) = candidates.into_iter().flatten().find(|s| s.is_none()) else {
                    return; // Extra m-lines stay silent.
                };
                let media = p.rtc.media(mid);
                let remote_pts: Vec<_> = media.map(|m| m.remote_pts().to_vec()).unwrap_or_default();
                let pts: Vec<(Codec, str0m::media::Pt)> = p
                    .rtc
                    .codec_config()
                    .iter()
                    .filter(|c| remote_pts.contains(&c.pt()))
                    .map(|c| (c.spec().codec, c.pt()))
                    .collect();
                // RFC 2198 redundancy for Opus, when the pupil's offer had it (browsers do):
                // str0m folds the RED payload type into Opus's parameters once negotiated.
                let red = p
                    .rtc
                    .codec_config()
                    .iter()
                    .find(|c| c.spec().codec == Codec::Opus && remote_pts.contains(&c.pt()))
                    .and_then(|c| c.red())
                    .filter(|_| kind == MediaKind::Audio);
                let mut api = p.rtc.direct_api();
                let Some(ssrc) = api.stream_tx_by_mid(mid, None).map(|tx| tx.ssrc()) else {
                    warn!(class = %self.id, participant = %p.id, %mid, "no send stream for m-line");
                    return;
                };
                let (clock, needs_key) = match kind {
                    MediaKind::Audio => (48_000, false),
                    MediaKind::Video => (90_000, true),
                };
                *slot = Some(Subscription {
                    mid,
                    kind,
                    ssrc,
                    pts,
                    red,
                    forwarder: Forwarder::new(clock, needs_key, seed),
                    selector: LayerSelector::new(layer),
                    replay_tried: false,
                });
            }
        }
    }

    pub(super) fn reap(&mut self, _now: Instant) {
        let mut dead = std::mem::take(&mut self.scratch);
        dead.clear();
        dead.extend(self.participants.iter().filter(|(_, p)| p.dead || !p.rtc.is_alive()).map(|(k, _)| k));
        for &key in &dead {
            let p = self.participants.remove(key);
            self.keys.remove(&p.id);
            info!(class = %self.id, participant = %p.id, "participant removed");
            self.events.push_back(RoomEvent::Left(p.id));
            if p.is_publisher() {
                self.publications.retain(|x| x.publisher != p.id);
                self.video_changed = true;
                if self.main_publisher == Some(p.id) {
                    self.main_publisher = self.publications.last().map(|x| x.publisher);
                    for (_, s) in self.participants.iter_mut() {
                        if let ParticipantKind::Subscriber { audio, video, .. } = &mut s.kind {
                            audio.iter_mut().chain(video.iter_mut()).for_each(|x| x.forwarder.release());
                        }
                    }
                    if self.main_publisher.is_none() {
                        self.events.push_back(RoomEvent::Live(false));
                    }
                }
                self.shape_changed();
            }
        }
        // The others keep their keys: only the removed ones' work goes (a key is reused
        // only by a later insert).
        let participants = &self.participants;
        self.dirty.retain(|k| participants.contains(*k));
        self.pending.retain(|(k, _)| participants.contains(*k));
        self.scratch = dead;
        self.recompute_timeout();
    }
}
