//! Room: the participants of one class and the routing of publications to subscriptions.
//!
//! Sans-IO: the driver feeds datagrams and timeouts with `now`, then drains the outbox
//! ([`Room::take_transmits`]) and the events ([`Room::poll_event`]). After every change to
//! an `Rtc` the room drains that `Rtc` to its `Timeout`, as str0m requires.

use crate::keyframe::{VideoCodec, is_keyframe_start};
use crate::report_estimator::{self, ReportEstimator};
use crate::sdp_checks::{answer_receives_video, check_offer, offers_transport_cc, relay_candidates};
use crate::{
    AvailableVideo, BandwidthAllocator, CachedPacket, Changes, Decision, Feed, Forward, Forwarder, LayerChoice,
    LayerSelector, PacketIn, Participant, ParticipantKind, Publication, PublisherRole, PupilCap, RoutedPacket,
    SfuConfig, SfuError, SourceKey, Subscription, VideoChoice, layer_for_rank,
};
use ardoise_proto::{ClassId, ParticipantId, ParticipantStats};
use slab::Slab;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};
use str0m::bwe::{Bitrate, BweKind};
use str0m::change::SdpOffer;
use str0m::config::DtlsCert;
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::rtp::{Extension, ExtensionMap, ExtensionValues, RtpPacket, RtpWrite, Ssrc};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tracing::{debug, info, warn};

/// Something the driver should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    /// ICE + DTLS established with this participant.
    Connected(ParticipantId),
    /// This participant is gone (left, timed out, or removed after a fault).
    Left(ParticipantId),
    /// Whether someone publishes in this room.
    Live(bool),
    /// An adaptive pupil's video stopped for lack of bandwidth (`true`) or came back (`false`).
    AudioOnly(ParticipantId, bool),
    /// How a participant's media travels: known at its first datagram, or changed (an ICE
    /// restart that moved it from UDP to TCP).
    Transport(ParticipantId, ardoise_proto::Transport),
}

/// What one datagram carried, as its room says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    /// Publishers' RTP packets (media to forward).
    pub media: u64,
}

/// Counters of one room (monotonic).
#[derive(Debug, Clone, Default)]
pub struct RoomStats {
    /// RTP packets received from publishers.
    pub rtp_in: u64,
    /// RTP packets written to subscribers.
    pub forwarded: u64,
    /// Payload bytes written to subscribers.
    pub forwarded_bytes: u64,
    /// Keyframe requests received from subscribers.
    pub keyframe_requests_in: u64,
    /// PLIs sent to publishers (after throttling).
    pub plis_sent: u64,
    /// Peers removed after a panic inside str0m.
    pub peer_panics: u64,
    /// Pupils who connected and were sent the frames since a recent keyframe (no keyframe
    /// asked for).
    pub keyframe_replays: u64,
}

/// The participants of one class.
pub struct Room {
    id: ClassId,
    config: SfuConfig,
    /// By stable key: a participant keeps its key until it is removed (the side queues
    /// below hold keys).
    participants: Slab<Participant>,
    /// Each participant's key.
    keys: HashMap<ParticipantId, usize>,
    /// Scratch list of keys (reused).
    scratch: Vec<usize>,
    publications: Vec<Publication>,
    main_publisher: Option<ParticipantId>,
    transmits: Vec<Transmit>,
    events: VecDeque<RoomEvent>,
    stats: RoomStats,
    pending: Vec<(usize, Event)>,
    /// Participants to drain (each at most once: `Participant::queued`).
    dirty: Vec<usize>,
    /// Inside `begin_batch`/`end_batch`: subscribers are drained once at the end.
    batching: bool,
    /// Packets written to subscribers since they were last drained.
    undrained: usize,
    /// The last video packet forwarded did not end its frame (no marker bit).
    frame_open: bool,
    /// A layer appeared, paused or went away: every pupil's allocator chooses again.
    video_changed: bool,
    plis: Vec<(ParticipantId, Ssrc)>,
    next_timeout: Option<Instant>,
    first_seq_rng: u32,
    /// A recording is on: the class publisher's packets are copied into `tapped`.
    recording: bool,
    tapped: Vec<crate::TappedPacket>,
}

impl Room {
    /// An empty room.
    pub fn new(id: ClassId, config: SfuConfig) -> Self {
        let seed = id.0.bytes().fold(0x9e37_79b9u32, |h, b| h.rotate_left(5) ^ b as u32);
        Room {
            id,
            config,
            participants: Slab::new(),
            keys: HashMap::new(),
            scratch: Vec::new(),
            publications: Vec::new(),
            main_publisher: None,
            transmits: Vec::new(),
            events: VecDeque::new(),
            stats: RoomStats::default(),
            pending: Vec::new(),
            dirty: Vec::new(),
            batching: false,
            undrained: 0,
            frame_open: false,
            video_changed: false,
            plis: Vec::new(),
            next_timeout: None,
            recording: false,
            tapped: Vec::new(),
            first_seq_rng: seed,
        }
    }

    /// The class this room serves.
    pub fn id(&self) -> &ClassId {
        &self.id
    }

    /// Counters.
    pub fn stats(&self) -> &RoomStats {
        &self.stats
    }

    /// Number of participants.
    pub fn len(&self) -> usize {
        self.participants.len()
    }

    /// Whether the room has no participant.
    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    /// Whether a publisher is sending.
    pub fn is_live(&self) -> bool {
        self.main_publisher.is_some()
    }

    /// Per-participant counters.
    pub fn participant_stats(&self) -> Vec<ParticipantStats> {
        self.participants.iter().map(|(_, p)| ParticipantStats { connected: p.connected, ..p.stats.clone() }).collect()
    }

    /// Whether the participant exists.
    pub fn contains(&self, pid: ParticipantId) -> bool {
        self.index(pid).is_some()
    }

    fn mark(dirty: &mut Vec<usize>, p: &mut Participant, idx: usize) {
        if !p.queued {
            p.queued = true;
            dirty.push(idx);
        }
    }

    fn mark_idx(&mut self, idx: usize) {
        Self::mark(&mut self.dirty, &mut self.participants[idx], idx);
    }

    /// Start a batch of datagrams (one wake-up of the driver): packets forwarded to a
    /// subscriber accumulate, and each subscriber is drained once in [`Room::end_batch`],
    /// so that its packets of a frame leave together (one GSO message).
    pub fn begin_batch(&mut self) {
        self.batching = true;
    }

    /// End the batch: drain everyone touched.
    pub fn end_batch(&mut self, now: Instant) {
        self.batching = false;
        self.frame_open = false;
        self.run(now);
    }

    /// Packets written to subscribers in this batch and not yet turned into datagrams: the
    /// driver may end a batch early (drain and send a slice) when it grows large — a keyframe
    /// to many pupils — so that the first packets do not wait for the whole fan-out.
    pub fn undrained(&self) -> usize {
        self.undrained
    }

    /// Drain everyone touched so far and go on batching (the current frame stays open).
    pub fn slice_batch(&mut self, now: Instant) {
        self.run(now);
    }

    /// Whether a video frame is partly forwarded in the current batch: the driver may hold
    /// the batch (briefly) until the frame's last packet, so each subscriber gets the whole
    /// frame in one send. A decoder needs the whole frame anyway.
    pub fn frame_open(&self) -> bool {
        self.batching && self.frame_open
    }

    fn index(&self, pid: ParticipantId) -> Option<usize> {
        self.keys.get(&pid).copied()
    }

    /// A peer for a publisher, an adaptive subscriber (`bwe_start`: its estimator's first
    /// value, bit/s) or a fixed one. All share
    /// one DTLS certificate (generating a key per peer costs CPU at every join). A fixed
    /// subscriber's session has no transport-wide sequence numbers: nothing reads its TWCC
    /// feedback, and str0m's TWCC send log costs ~88 KiB per peer.
    fn new_rtc(&self, now: Instant, publisher: bool, bwe_start: Option<u64>) -> Result<Rtc, SfuError> {
        let mut builder = Rtc::builder();
        if let Some(cert) = shared_dtls_cert() {
            builder = builder.set_dtls_cert(cert.clone());
        }
        if !publisher && bwe_start.is_none() {
            let mut exts = ExtensionMap::empty();
            for (id, ext) in ExtensionMap::standard().iter() {
                if !matches!(ext, Extension::TransportSequenceNumber) {
                    exts.set(id, ext.clone());
                }
            }
            builder = builder.set_extension_map(exts);
        }
        // The frame's capture wall-clock time, carried from teacher to pupils when both sides
        // offer it (browsers do; the load generator measures end-to-end delay with it).
        builder = builder.set_extension(ABS_CAPTURE_TIME_EXT_ID, Extension::AbsoluteCaptureTime);
        let mut builder = builder
            .set_rtp_mode(true)
            .set_ice_lite(true)
            .clear_codecs()
            // RED for Opus toward pupils whose browser offers it; publishers send plain Opus.
            .enable_opus(true, !publisher)
            .enable_vp8(true)
            .enable_h264(true)
            .set_send_buffer_video(self.config.video_history)
            .set_stats_interval(Some(Duration::from_secs(1)));
        if let Some(start) = bwe_start {
            // Send-side estimation from the pupil's TWCC feedback (paced sending, probes);
            // the raw estimate comes with the peer stats, every 500 ms.
            builder =
                builder.enable_bwe(Some(Bitrate::bps(start))).set_stats_interval(Some(Duration::from_millis(500)));
        }
        let mut rtc = builder.build(now);
        for addr in &self.config.candidates {
            let c = Candidate::host(*addr, "udp").map_err(|e| {
                warn!("cannot make a host candidate for {addr}: {e}");
                SfuError::UnusableOffer("the server has no usable media address".into())
            })?;
            rtc.add_local_candidate(c);
        }
        for addr in &self.config.tcp_candidates {
            let c =
                Candidate::builder().tcp().host(*addr).tcptype(str0m::net::TcpType::Passive).build().map_err(|e| {
                    warn!("cannot make a TCP candidate for {addr}: {e}");
                    SfuError::UnusableOffer("the server has no usable media address".into())
                })?;
            rtc.add_local_candidate(c);
        }
        Ok(rtc)
    }

    /// Add the class's publisher (teacher, studio) from a WHIP offer; returns the SDP answer.
    pub fn add_publisher(&mut self, now: Instant, pid: ParticipantId, offer: &str) -> Result<String, SfuError> {
        self.add_publisher_granted(now, pid, offer, PublisherRole::Class, true)
    }

    /// Add a publisher in `role`: the class's publisher sends video, a pupil given the floor
    /// ([`PublisherRole::Floor`]) only its voice (see [`Room::add_publisher_granted`]).
    pub fn add_publisher_as(
        &mut self,
        now: Instant,
        pid: ParticipantId,
        offer: &str,
        role: PublisherRole,
    ) -> Result<String, SfuError> {
        self.add_publisher_granted(now, pid, offer, role, role == PublisherRole::Class)
    }

    /// Add a publisher in `role` that may send video only if `camera`. An offer that would
    /// negotiate a receiving video m-line without the grant is refused
    /// ([`SfuError::NotGranted`]), whatever the offer's port and bundle attributes say; and
    /// the video of such a publisher is never relayed.
    pub fn add_publisher_granted(
        &mut self,
        now: Instant,
        pid: ParticipantId,
        offer: &str,
        role: PublisherRole,
        camera: bool,
    ) -> Result<String, SfuError> {
        self.add(now, pid, offer, ParticipantKind::Publisher { role, muted: false, camera }, None)
    }

    /// Add a subscriber from a WHEP offer, receiving the configured layer; returns the SDP answer.
    pub fn add_subscriber(&mut self, now: Instant, pid: ParticipantId, offer: &str) -> Result<String, SfuError> {
        self.add_subscriber_to(now, pid, offer, None, Feed::Class)
    }

    /// The video choice of a subscriber that asked for nothing in particular.
    fn default_choice(&self) -> VideoChoice {
        if self.config.adaptation {
            VideoChoice::Adaptive { cap: PupilCap::Auto, start_bps: None }
        } else {
            VideoChoice::Fixed(self.config.layer)
        }
    }

    /// Add a subscriber that wants `layer` (a pupil's own choice, or a test).
    pub fn add_subscriber_with_layer(
        &mut self,
        now: Instant,
        pid: ParticipantId,
        offer: &str,
        layer: crate::LayerChoice,
    ) -> Result<String, SfuError> {
        self.add_subscriber_to(now, pid, offer, Some(VideoChoice::Fixed(layer)), Feed::Class)
    }

    /// Add a subscriber of `feed` whose video is chosen by `choice` (default: adaptive when
    /// [`SfuConfig::adaptation`] is on, else the configured layer).
    pub fn add_subscriber_to(
        &mut self,
        now: Instant,
        pid: ParticipantId,
        offer: &str,
        choice: Option<VideoChoice>,
        feed: Feed,
    ) -> Result<String, SfuError> {
        let choice = match (choice, feed) {
            // The studio's return audio: nothing to adapt.
            (_, Feed::Floor) => VideoChoice::Fixed(LayerChoice::High),
            (Some(c), Feed::Class) => c,
            (None, Feed::Class) => self.default_choice(),
        };
        let (layer, allocator) = match choice {
            VideoChoice::Fixed(l) => (l, None),
            VideoChoice::Adaptive { cap, start_bps } => {
                let start_bps = start_bps.map(|b| b.clamp(MIN_START_BPS, MAX_START_BPS));
                let mut a = BandwidthAllocator::new(self.config.allocator.clone());
                // A player that sends no transport-cc feedback has no send-side estimate:
                // its receiver reports move one, from the middle layer.
                let reports = (!offers_transport_cc(offer))
                    .then(|| ReportEstimator::new(start_bps.unwrap_or(report_estimator::START_BPS)));
                if let Some(b) = reports.as_ref().map(ReportEstimator::estimate).or(start_bps) {
                    a.start_from(b);
                }
                let _ = a.set_cap(now, cap, &self.available_video(now));
                (a.allocation().class_video.unwrap_or(LayerChoice::Low), Some((Box::new(a), start_bps, reports)))
            }
        };
        let kind =
            ParticipantKind::Subscriber { audio: None, video: None, floor_audio: None, floor_video: None, layer, feed };
        let bwe_start = match &allocator {
            Some((_, start, None)) => Some(start.unwrap_or(DEFAULT_START_BPS)),
            _ => None,
        };
        let answer = self.add(now, pid, offer, kind, bwe_start)?;
        if let Some((a, _, reports)) = allocator {
            let idx = self.index(pid).ok_or(SfuError::UnknownParticipant)?;
            let p = &mut self.participants[idx];
            p.class_video_on = a.allocation().class_video.is_some();
            p.floor_video_on = a.allocation().floor_video;
            p.stats.layer = Some(layer_name(a.allocation().class_video).into());
            let desired = a.desired_bps();
            p.allocator = Some(a);
            if reports.is_some() {
                p.stats.estimate_bps = reports.as_ref().map(ReportEstimator::estimate);
                p.report_estimator = reports;
            } else {
                p.rtc.bwe().set_bitrate(Bitrate::ZERO, Bitrate::bps(desired));
            }
        }
        Ok(answer)
    }

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

    /// Pupils publishing because they hold the floor.
    fn floor_publishers(&self) -> Vec<ParticipantId> {
        self.participants
            .iter()
            .filter(|(_, p)| p.publisher_role() == Some(PublisherRole::Floor))
            .map(|(_, p)| p.id)
            .collect()
    }

    /// The class video (and floor camera) a pupil could receive now, with their measured cost.
    fn available_video(&self, now: Instant) -> AvailableVideo {
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
    fn apply_allocation(&mut self, idx: usize, changes: Changes) {
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
    fn on_estimate(&mut self, now: Instant, idx: usize, bps: u64) {
        let video = self.available_video(now);
        if let Some(a) = self.participants[idx].allocator.as_mut() {
            let changes = a.on_estimate(now, bps, &video);
            self.apply_allocation(idx, changes);
        }
    }

    /// The teacher mutes (or unmutes) a floor publisher: its audio is not relayed meanwhile.
    pub fn set_muted(&mut self, pid: ParticipantId, mute: bool) -> Result<(), SfuError> {
        let idx = self.index(pid).ok_or(SfuError::UnknownParticipant)?;
        match &mut self.participants[idx].kind {
            ParticipantKind::Publisher { muted, .. } => {
                *muted = mute;
                Ok(())
            }
            ParticipantKind::Subscriber { .. } => Err(SfuError::UnknownParticipant),
        }
    }

    fn add(
        &mut self,
        now: Instant,
        pid: ParticipantId,
        offer: &str,
        kind: ParticipantKind,
        bwe_start: Option<u64>,
    ) -> Result<String, SfuError> {
        let publisher = matches!(kind, ParticipantKind::Publisher { .. });
        let reserved = matches!(kind, ParticipantKind::Publisher { role: PublisherRole::Class, .. });
        // The class's publisher always has its place: the cap counts everyone else.
        let others = self.participants.iter().filter(|(_, p)| p.publisher_role() != Some(PublisherRole::Class)).count();
        if !reserved && others >= self.config.max_participants {
            return Err(SfuError::Full(self.config.max_participants));
        }
        check_offer(offer, publisher)?;
        let offer_text = offer;
        let offer = SdpOffer::from_sdp_string(offer).map_err(|e| SfuError::BadSdp(e.to_string()))?;
        let mut rtc = self.new_rtc(now, publisher, bwe_start)?;
        let answer = catch_unwind(AssertUnwindSafe(|| rtc.sdp_api().accept_offer(offer)))
            .map_err(|_| SfuError::BadSdp("offer could not be negotiated".into()))??;
        if let ParticipantKind::Publisher { camera: false, .. } = kind
            && answer_receives_video(&answer.to_sdp_string())
        {
            return Err(SfuError::NotGranted("the camera was not granted: offer audio only".into()));
        }
        info!(class = %self.id, participant = %pid, publisher, "participant added");
        let mut p = Participant::new(pid, kind, rtc, now);
        p.relay_addrs = relay_candidates(offer_text);
        let idx = self.participants.insert(p);
        self.keys.insert(pid, idx);
        self.mark_idx(idx);
        self.run(now);
        Ok(answer.to_sdp_string())
    }

    /// Remove a participant (WHIP/WHEP DELETE, or the driver's decision).
    pub fn remove(&mut self, now: Instant, pid: ParticipantId) -> Result<(), SfuError> {
        let idx = self.index(pid).ok_or(SfuError::UnknownParticipant)?;
        let p = &mut self.participants[idx];
        let _ = catch_unwind(AssertUnwindSafe(|| p.rtc.disconnect()));
        p.dead = true;
        self.mark_idx(idx);
        self.run(now);
        Ok(())
    }

    /// Remove everyone (class ended or server shutting down).
    pub fn close(&mut self, now: Instant) {
        for (i, p) in self.participants.iter_mut() {
            let _ = catch_unwind(AssertUnwindSafe(|| p.rtc.disconnect()));
            p.dead = true;
            Self::mark(&mut self.dirty, p, i);
        }
        self.run(now);
    }

    /// Trickle ICE and ICE restart (WHIP/WHEP PATCH). With new remote credentials, restarts
    /// ICE and returns the new local credentials `(ufrag, pwd)`.
    pub fn patch_ice(
        &mut self,
        now: Instant,
        pid: ParticipantId,
        remote_creds: Option<(String, String)>,
        candidates: Vec<Candidate>,
    ) -> Result<Option<(String, String)>, SfuError> {
        let idx = self.index(pid).ok_or(SfuError::UnknownParticipant)?;
        let p = &mut self.participants[idx];
        let mut restarted = None;
        if let Some((ufrag, pass)) = remote_creds {
            let mut api = p.rtc.direct_api();
            let local = str0m::IceCreds::new();
            api.set_remote_ice_credentials(str0m::IceCreds { ufrag, pass });
            api.set_local_ice_credentials(local.clone());
            restarted = Some((local.ufrag, local.pass));
        }
        for c in candidates {
            if c.kind() == str0m::CandidateKind::Relayed && !p.relay_addrs.contains(&c.addr()) {
                p.relay_addrs.push(c.addr());
            }
            p.rtc.add_remote_candidate(c);
        }
        self.mark_idx(idx);
        self.run(now);
        Ok(restarted)
    }

    /// The local ICE username fragment of participant `pid` (drivers route STUN by it).
    pub fn local_ufrag(&mut self, pid: ParticipantId) -> Option<String> {
        let idx = self.index(pid)?;
        Some(self.participants[idx].rtc.direct_api().local_ice_credentials().ufrag)
    }

    /// Whether participant `pid` accepts this datagram, received over `proto` (str0m's `accepts`).
    pub fn accepts(
        &self,
        now: Instant,
        pid: ParticipantId,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) -> bool {
        let Ok(r) = Receive::new(proto, source, destination, contents) else {
            return false;
        };
        self.index(pid)
            .is_some_and(|i| !self.participants[i].dead && self.participants[i].rtc.accepts(&Input::Receive(now, r)))
    }

    /// Which participant a datagram belongs to (str0m's `accepts`: ICE credentials, DTLS, SRTP).
    pub fn find(
        &self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) -> Option<ParticipantId> {
        let Ok(r) = Receive::new(str0m::net::Protocol::Udp, source, destination, contents) else {
            return None;
        };
        let input = Input::Receive(now, r);
        self.participants.iter().find(|(_, p)| !p.dead && p.rtc.accepts(&input)).map(|(_, p)| p.id)
    }

    /// Feed a UDP datagram to a participant.
    pub fn handle_receive(
        &mut self,
        now: Instant,
        pid: ParticipantId,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) -> Result<Received, SfuError> {
        self.handle_receive_over(now, pid, Protocol::Udp, source, destination, contents)
    }

    /// Feed a datagram received over `proto` (UDP, or a frame of an ICE-TCP connection);
    /// what it carried comes back (the worker times the publishers' media from it).
    pub fn handle_receive_over(
        &mut self,
        now: Instant,
        pid: ParticipantId,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) -> Result<Received, SfuError> {
        let idx = self.index(pid).ok_or(SfuError::UnknownParticipant)?;
        let Ok(r) = Receive::new(proto, source, destination, contents) else {
            return Ok(Received::default()); // Not STUN/DTLS/RTP: ignore.
        };
        let media_before = self.stats.rtp_in;
        let p = &mut self.participants[idx];
        p.remote = Some(source);
        let transport = match proto {
            Protocol::Udp if p.relay_addrs.contains(&source) => ardoise_proto::Transport::Relay,
            Protocol::Udp => ardoise_proto::Transport::Udp,
            _ => ardoise_proto::Transport::Tcp,
        };
        // The media path is where DTLS and SRTP travel: ICE checks (STUN, first byte 0..=3)
        // may still arrive on the pairs that were not chosen.
        let stun = contents.first().is_some_and(|b| *b < 4);
        if !stun && p.transport != Some(transport) {
            p.transport = Some(transport);
            p.stats.transport = Some(transport);
            self.events.push_back(RoomEvent::Transport(pid, transport));
        }
        match catch_unwind(AssertUnwindSafe(|| p.rtc.handle_input(Input::Receive(now, r)))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => debug!(class = %self.id, participant = %pid, "input refused: {e}"),
            Err(_) => self.fault(idx, "handle_input"),
        }
        if self.batching && !self.participants[idx].is_publisher() {
            // A pupil's RTCP (receiver reports, NACKs, TWCC feedback): its answers can wait for
            // the end of the batch, where this subscriber is drained once with its media.
            self.mark_idx(idx);
        } else if self.batching {
            // Drain the sender now (its events forward media); the rest waits for end_batch.
            self.drain(idx, now);
            let mut pending = std::mem::take(&mut self.pending);
            for (i, event) in pending.drain(..) {
                self.on_event(now, i, event);
            }
            if self.pending.is_empty() {
                self.pending = pending;
            }
        } else {
            self.mark_idx(idx);
            self.run(now);
        }
        Ok(Received { media: self.stats.rtp_in - media_before })
    }

    /// When the room next needs [`Room::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_timeout
    }

    /// Time passed: drive every participant whose timeout is due, and deferred keyframe requests.
    pub fn handle_timeout(&mut self, now: Instant) {
        let connect_timeout = self.config.connect_timeout;
        let mut keys = std::mem::take(&mut self.scratch);
        keys.clear();
        keys.extend(self.participants.iter().map(|(k, _)| k));
        for &idx in &keys {
            let Some(p) = self.participants.get_mut(idx) else { continue };
            if !p.connected && !p.dead && now >= p.created + connect_timeout {
                info!(class = %self.id, participant = %p.id, "never connected; removing");
                p.dead = true;
                self.mark_idx(idx);
                continue;
            }
            if p.allocator.as_ref().and_then(|a| a.next_timeout()).is_some_and(|t| t <= now) && !p.dead {
                let video = self.available_video(now);
                let p = &mut self.participants[idx];
                if let Some(a) = p.allocator.as_mut() {
                    let changes = a.poll(now, &video);
                    self.apply_allocation(idx, changes);
                }
            }
            let p = &mut self.participants[idx];
            if p.timeout <= now && !p.dead {
                match catch_unwind(AssertUnwindSafe(|| p.rtc.handle_input(Input::Timeout(now)))) {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => debug!(class = %self.id, participant = %p.id, "timeout refused: {e}"),
                    Err(_) => self.fault(idx, "timeout"),
                }
                self.mark_idx(idx);
            }
        }
        self.scratch = keys;
        for publication in &mut self.publications {
            for layer in &mut publication.layers {
                if layer.throttle.poll(now) {
                    self.plis.push((publication.publisher, layer.ssrc));
                }
            }
        }
        self.next_timeout = None;
        self.run(now);
        self.recompute_timeout();
    }

    /// Datagrams to send, in order. The driver empties the vector.
    pub fn transmits(&mut self) -> &mut Vec<Transmit> {
        &mut self.transmits
    }

    /// Take the datagrams to send.
    pub fn take_transmits(&mut self) -> Vec<Transmit> {
        std::mem::take(&mut self.transmits)
    }

    /// Next event for the driver.
    pub fn poll_event(&mut self) -> Option<RoomEvent> {
        self.events.pop_front()
    }

    /// Fault injection (`media.fault_injection`, tests only): a panic unwinds out of a str0m
    /// call for this peer, as a bug in str0m would, and the room handles it as any such
    /// panic: that peer is removed, the others go on.
    pub fn inject_str0m_panic(&mut self, now: Instant, pid: ParticipantId) -> Result<(), SfuError> {
        let idx = self.index(pid).ok_or(SfuError::UnknownParticipant)?;
        let p = &mut self.participants[idx];
        let r = catch_unwind(AssertUnwindSafe(|| {
            let _ = p.rtc.handle_input(Input::Timeout(now));
            panic!("fault injection: a panic inside a str0m call");
        }));
        if r.is_err() {
            self.fault(idx, "fault injection");
            self.mark_idx(idx);
            self.run(now);
        }
        Ok(())
    }

    /// Start or stop copying the class's programme for a recording. Starting asks the class
    /// publisher for a keyframe on every layer, so that each recorded layer starts on one.
    pub fn set_recording(&mut self, now: Instant, on: bool) {
        self.recording = on;
        if !on {
            self.tapped.clear();
            return;
        }
        for publication in &self.publications {
            if Some(publication.publisher) == self.main_publisher && publication.kind == MediaKind::Video {
                for layer in &publication.layers {
                    self.plis.push((publication.publisher, layer.ssrc));
                }
            }
        }
        self.run(now);
    }

    /// Whether a recording is on.
    pub fn is_recording(&self) -> bool {
        self.recording
    }

    /// Take the programme's packets copied since the last call (see [`Room::set_recording`]).
    pub fn take_tapped(&mut self) -> Vec<crate::TappedPacket> {
        std::mem::take(&mut self.tapped)
    }

    fn fault(&mut self, idx: usize, during: &str) {
        let p = &mut self.participants[idx];
        warn!(class = %self.id, participant = %p.id, during, "peer panicked inside str0m; removing it");
        p.dead = true;
        self.stats.peer_panics += 1;
    }

    fn recompute_timeout(&mut self) {
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
    fn run(&mut self, now: Instant) {
        loop {
            if std::mem::take(&mut self.video_changed) {
                self.reallocate(now);
            }
            while let Some((pid, ssrc)) = self.plis.pop() {
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

    /// The video on offer changed: let every pupil's allocator choose again now, rather than
    /// at its next estimate (a pupil who joined before the teacher's layers arrived waited
    /// 0.6–1.6 s in audio only).
    fn reallocate(&mut self, now: Instant) {
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

    fn drain(&mut self, idx: usize, now: Instant) {
        let p = &mut self.participants[idx];
        // str0m asks for an immediate timeout after new media is written (its pacer releases
        // packets on timeouts): serve those here, so that forwarding happens now, not on the
        // next wake-up. Bounded, in case a timeout keeps being due with nothing to do.
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

    fn on_event(&mut self, now: Instant, idx: usize, event: Event) {
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

    fn on_media_added(
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
                self.publications.push(Publication::new(p.id, mid, kind, rids));
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

    fn next_seq_seed(&mut self) -> u16 {
        // xorshift: a different first sequence number per subscription (RFC 3550 wants random).
        let mut x = self.first_seq_rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.first_seq_rng = x;
        (x % 30_000) as u16 + 1
    }

    /// Ask the floor publisher for a keyframe (a subscriber lost its camera picture; throttled).
    fn request_floor_keyframe(&mut self, now: Instant) {
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
    fn replay_keyframe(&mut self, now: Instant, idx: usize, pi: usize, li: usize) -> bool {
        let Some(main) = self.main_publisher else { return false };
        let p = &mut self.participants[idx];
        let ParticipantKind::Subscriber { video: Some(sub), .. } = &mut p.kind else { return false };
        let layer = &self.publications[pi].layers[li];
        let (Some(group), Some((_, _, codec))) =
            (layer.cache.group(now, self.config.keyframe_replay), layer.codec_cache)
        else {
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
    fn cache_serves(&self, now: Instant, idx: usize) -> bool {
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
    fn request_keyframe_for(&mut self, now: Instant, idx: usize) {
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

    fn on_rtp(&mut self, now: Instant, idx: usize, pkt: RtpPacket) {
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
                (pi, li)
            }
        };

        let publication = &mut self.publications[pi];
        let kind = publication.kind;
        let layer = &mut publication.layers[li];
        let (codec, video_codec) = match layer.codec_cache {
            Some((pt, vc, c)) if pt == pkt.header.payload_type => (c, vc),
            _ => {
                let Some(params) =
                    self.participants[idx].rtc.codec_config().find(|p| p.pt() == pkt.header.payload_type)
                else {
                    return;
                };
                let c = params.spec().codec;
                let vc = match c {
                    Codec::Vp8 => VideoCodec::Vp8,
                    Codec::H264 => VideoCodec::H264,
                    _ => VideoCodec::Other,
                };
                layer.codec_cache = Some((pkt.header.payload_type, vc, c));
                (c, vc)
            }
        };
        if kind == MediaKind::Video {
            // Payload + RTP/SRTP/UDP/IP headers: what the layer costs a pupil on the wire.
            layer.meter.record(now, pkt.payload.len() + 60);
        }
        let keyframe_start = kind == MediaKind::Audio || is_keyframe_start(video_codec, &pkt.payload);
        if kind == MediaKind::Video && keyframe_start {
            layer.throttle.keyframe_received(now);
        }
        if role == PublisherRole::Class && self.main_publisher != Some(pid) {
            return;
        }
        let ext = cached_ext(&pkt.header.ext_vals);
        if kind == MediaKind::Video && role == PublisherRole::Class && !self.config.keyframe_replay.is_zero() {
            let cached = CachedPacket {
                seq: *pkt.seq_no,
                ts: pkt.header.timestamp,
                marker: pkt.header.marker,
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
                ssrc: *ssrc,
                seq: *pkt.seq_no,
                ts: pkt.header.timestamp,
                marker: pkt.header.marker,
                payload: pkt.payload.clone(),
                at: now,
                sender: pkt
                    .last_sender_info
                    .map(|i| crate::SenderClock { ntp: i.ntp_time, rtp: i.rtp_time.numer() as u32 }),
            });
        }
        let red = &mut publication.layers[li].red;
        let routed = RoutedPacket {
            input: PacketIn {
                source: SourceKey { publisher: pid.0, ssrc: *ssrc },
                seq: *pkt.seq_no,
                ts: pkt.header.timestamp,
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
                        Some(inner) => red.payload(*pkt.seq_no, pkt.header.timestamp, *inner, &pkt.payload),
                        None => pkt.payload.clone(),
                    };
                    let ssrc_out = sub.ssrc;
                    let mut api = sub_p.rtc.direct_api();
                    let Some(tx) = api.stream_tx(&ssrc_out) else { continue };
                    tx.write_rtp(
                        RtpWrite::new(pt, seq.into(), ts, now, payload)
                            .marker(pkt.header.marker)
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
            red.advance(*pkt.seq_no, pkt.header.timestamp, pkt.payload.clone());
        }
        for si in to_replay {
            if self.replay_keyframe(now, si, pi, li) {
                forwarded_any = true; // the group ends with this packet
            } else {
                want_keyframe = true;
            }
        }
        if kind == MediaKind::Video && forwarded_any {
            self.frame_open = !pkt.header.marker;
        }
        if want_keyframe || would_like_keyframe {
            let layer = &mut self.publications[pi].layers[li];
            let send = if want_keyframe { layer.throttle.request(now) } else { layer.throttle.request_lazy(now) };
            if send {
                self.plis.push((pid, layer_ssrc));
            }
        }
    }

    fn reap(&mut self, _now: Instant) {
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

/// The header extensions a packet carries on to pupils.
fn cached_ext(e: &ExtensionValues) -> ExtensionValues {
    ExtensionValues {
        audio_level: e.audio_level,
        voice_activity: e.voice_activity,
        video_orientation: e.video_orientation,
        abs_capture_time: e.abs_capture_time,
        ..Default::default()
    }
}

/// How a layer choice is shown (admin API, metrics).
fn layer_name(choice: Option<LayerChoice>) -> &'static str {
    match choice {
        Some(LayerChoice::High) => "high",
        Some(LayerChoice::Medium) => "medium",
        Some(LayerChoice::Low) => "low",
        None => "audio",
    }
}

/// An adaptive pupil's estimator starts here when nothing was measured before (str0m then
/// probes at 3× and 6× by itself).
const DEFAULT_START_BPS: u64 = 500_000;
/// A start measured before (the pre-class check) is taken within these bounds: an old
/// measure of a fast link must not flood a tablet whose link changed; below the floor, the
/// estimator would need many seconds to find a link that recovered.
const MIN_START_BPS: u64 = 100_000;
const MAX_START_BPS: u64 = 3_000_000;

/// Our header extension id for abs-capture-time (an answer uses the offer's ids anyway).
const ABS_CAPTURE_TIME_EXT_ID: u8 = 7;

/// One self-signed DTLS certificate for every peer of the process (as other SFUs do); `None`
/// if the crypto provider cannot make one (then each peer makes its own).
fn shared_dtls_cert() -> Option<&'static DtlsCert> {
    static CERT: std::sync::OnceLock<Option<DtlsCert>> = std::sync::OnceLock::new();
    CERT.get_or_init(|| str0m::crypto::from_feature_flags().dtls_provider.generate_certificate()).as_ref()
}

#[cfg(test)]
mod lifecycle_tests {
    use super::*;

    #[test]
    fn a_peer_that_never_connects_is_removed_after_the_connect_timeout() {
        let t0 = Instant::now();
        let config = SfuConfig {
            candidates: vec!["127.0.0.1:5000".parse().unwrap()],
            connect_timeout: Duration::from_secs(15),
            ..Default::default()
        };
        let mut room = Room::new(ClassId("t".into()), config);
        let mut client = Rtc::new(t0);
        let mut api = client.sdp_api();
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, _) = api.apply().unwrap();
        room.add_subscriber(t0, ParticipantId(1), &offer.to_sdp_string()).unwrap();
        assert_eq!(room.len(), 1);
        let deadline = room.poll_timeout().unwrap();
        assert!(deadline <= t0 + Duration::from_secs(15));
        let mut now = t0;
        while now < t0 + Duration::from_secs(16) {
            now = room.poll_timeout().unwrap_or(now + Duration::from_secs(1)).max(now + Duration::from_millis(100));
            room.handle_timeout(now);
        }
        assert!(room.is_empty(), "the silent peer is gone");
        assert!(std::iter::from_fn(|| room.poll_event()).any(|e| e == RoomEvent::Left(ParticipantId(1))));
    }

    #[test]
    fn participants_keep_their_keys_when_another_leaves() {
        let t0 = Instant::now();
        let config = SfuConfig { candidates: vec!["127.0.0.1:5000".parse().unwrap()], ..Default::default() };
        let mut room = Room::new(ClassId("t".into()), config);
        let offer = || {
            let mut client = Rtc::new(t0);
            let mut api = client.sdp_api();
            api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
            api.apply().unwrap().0.to_sdp_string()
        };
        for id in 1..=3 {
            room.add_subscriber(t0, ParticipantId(id), &offer()).unwrap();
        }
        let before: Vec<usize> = (1..=3).map(|id| room.index(ParticipantId(id)).unwrap()).collect();
        room.remove(t0, ParticipantId(1)).unwrap();
        assert_eq!(room.index(ParticipantId(1)), None);
        assert_eq!(room.index(ParticipantId(2)), Some(before[1]), "no shifting");
        assert_eq!(room.index(ParticipantId(3)), Some(before[2]));
        for id in [2, 3] {
            assert_eq!(room.participants[room.index(ParticipantId(id)).unwrap()].id, ParticipantId(id));
        }
        // A newcomer takes a free key; the others are untouched.
        room.add_subscriber(t0, ParticipantId(4), &offer()).unwrap();
        assert_eq!(room.participants[room.index(ParticipantId(4)).unwrap()].id, ParticipantId(4));
        assert_eq!(room.index(ParticipantId(3)), Some(before[2]));
        assert_eq!(room.len(), 3);
    }
}
