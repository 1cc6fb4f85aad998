//! Adaptation glue: what video the class offers now, and each adaptive pupil's allocator
//! choosing its layer from it (its estimate, its cap).

use super::*;

impl Room {
    /// A pupil changed its own choice (automatic, data saver, audio only).
    pub fn set_cap(&mut self, now: Instant, pid: ParticipantId, cap: PupilCap) -> Result<(), SfuError> {
        let idx = self.index(pid).ok_or(SfuError::UnknownParticipant)?;
        let video = self.available_video(now);
        let Some(a) = self.participants[idx].allocator.as_mut() else { return Err(SfuError::UnknownParticipant) };
        let changes = a.set_cap(now, cap, &video);
        self.apply_allocation(idx, changes);
        self.run(now);
        Ok(())
    }

    /// Pupils publishing because they hold the floor (in this room, or in the home room a
    /// fan-out room mirrors).
    pub(super) fn floor_publishers(&self) -> Vec<ParticipantId> {
        let mut floor: Vec<ParticipantId> =
            self.publications.iter().filter(|x| x.role == PublisherRole::Floor).map(|x| x.publisher).collect();
        floor.dedup();
        floor
    }

    /// The class video (and floor camera) a pupil could receive now, with their measured cost.
    pub(super) fn available_video(&self, now: Instant) -> AvailableVideo {
        let mut v = AvailableVideo::NONE;
        let floor = self.floor_publishers();
        for publication in self.publications.iter().filter(|x| x.kind == MediaKind::Video) {
            let mut active: Vec<_> = publication.layers.iter().filter(|l| l.active).collect();
            if active.is_empty() {
                continue;
            }
            active.sort_by_key(|l| l.rank);
            if Some(publication.publisher) == self.main_publisher {
                let n = active.len();
                for (rank, l) in active.iter().enumerate() {
                    let slot = match layer_for_rank(rank, n) {
                        LayerChoice::Low => 0,
                        LayerChoice::Medium => 1,
                        LayerChoice::High => 2,
                    };
                    v.class[slot] = Some(l.meter.measured(now).unwrap_or(0));
                }
            } else if floor.contains(&publication.publisher) {
                let top = active.last().expect("not empty");
                v.floor = Some(top.meter.measured(now).unwrap_or(0));
            }
        }
        v
    }

    /// Carry out what a pupil's allocator decided.
    pub(super) fn apply_allocation(&mut self, idx: usize, changes: Changes) {
        let p = &mut self.participants[idx];
        let Some(a) = p.allocator.as_ref() else { return };
        let alloc = a.allocation();
        let stats = a.stats();
        let desired = a.desired_bps();
        p.stats.estimate_bps = stats.estimate_bps;
        p.stats.switches = stats.switches;
        p.stats.layer = Some(layer_name(alloc.class_video).into());
        if changes.video {
            let was_on = p.class_video_on;
            p.class_video_on = alloc.class_video.is_some();
            p.floor_video_on = alloc.floor_video;
            if let ParticipantKind::Subscriber { video, floor_video, layer, .. } = &mut p.kind {
                if let Some(l) = alloc.class_video {
                    *layer = l;
                    if let Some(v) = video.as_mut() {
                        v.selector.set_choice(l);
                        if !was_on {
                            v.forwarder.release(); // resume on a keyframe
                            // (asked for: a weak link that recovers gets no second of old
                            // frames from the keyframe cache)
                            v.replay_tried = true;
                        }
                    }
                }
                if !p.floor_video_on
                    && let Some(f) = floor_video.as_mut()
                {
                    f.forwarder.release();
                }
            }
            // No keyframe is asked for here: the forwarding path asks for the one the switch
            // needs, eagerly for a pupil left without a picture (video resuming, a step down)
            // and lazily for one moving up (it keeps watching its current layer meanwhile).
            // (Asking here asked for the current layer's keyframe, which no switch needs: with
            // a class of adaptive pupils climbing, one request per second per layer.)
            debug!(class = %self.id, participant = %p.id, ?alloc, "allocation");
        }
        let p = &mut self.participants[idx];
        if changes.audio_only {
            self.events.push_back(RoomEvent::AudioOnly(p.id, alloc.class_video.is_none()));
        }
        if let Some(from) = changes.reset_estimate {
            // A fresh estimator probes at once (its start-up probes); desired is kept.
            debug!(class = %self.id, participant = %p.id, from, "bandwidth estimator stuck on a clean link: restarted");
            p.rtc.bwe().reset(Bitrate::bps(from));
        }
        if changes.bwe {
            p.rtc.bwe().set_bitrate(Bitrate::ZERO, Bitrate::bps(desired));
        }
        Self::mark(&mut self.dirty, p, idx);
    }

    /// A new estimate of the link toward subscriber `idx` (its send-side estimator's, its
    /// REMB, or its receiver reports'): the allocator decides.
    pub(super) fn on_estimate(&mut self, now: Instant, idx: usize, bps: u64) {
        let video = self.available_video(now);
        if let Some(a) = self.participants[idx].allocator.as_mut() {
            let changes = a.on_estimate(now, bps, &video);
            self.apply_allocation(idx, changes);
        }
    }

    /// The video on offer changed: let every pupil's allocator choose again now, rather than
    /// at its next estimate (a pupil who joined before the teacher's layers arrived waited
    /// 0.6–1.6 s in audio only).
    pub(super) fn reallocate(&mut self, now: Instant) {
        let video = self.available_video(now);
        let mut keys = std::mem::take(&mut self.scratch);
        keys.clear();
        keys.extend(self.participants.iter().map(|(k, _)| k));
        for &idx in &keys {
            let Some(p) = self.participants.get_mut(idx) else { continue };
            if p.dead {
                continue;
            }
            if let Some(a) = p.allocator.as_mut() {
                let changes = a.poll(now, &video);
                self.apply_allocation(idx, changes);
            }
        }
        self.scratch = keys;
    }
}

/// How a layer choice is shown (admin API, metrics).
pub(super) fn layer_name(choice: Option<LayerChoice>) -> &'static str {
    match choice {
        Some(LayerChoice::High) => "high",
        Some(LayerChoice::Medium) => "medium",
        Some(LayerChoice::Low) => "low",
        None => "audio",
    }
}
