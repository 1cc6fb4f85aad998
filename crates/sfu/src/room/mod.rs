//! Room: the participants of one class and the routing of publications to subscriptions.
//!
//! Sans-IO: the driver feeds datagrams and timeouts with `now`, then drains the outbox
//! ([`Room::take_transmits`]) and the events ([`Room::poll_event`]). After every change to
//! an `Rtc` the room drains that `Rtc` to its `Timeout`, as str0m requires.
//!
//! This module holds the room, its participants' lifecycle (join, leave, ICE patches) and
//! its entry points; its parts are in:
//! - `draining`: driving the str0m peers, their events, reaping the dead;
//! - `routing`: a publisher's packet to the subscriptions (each decides,
//!   [`crate::Subscription::forward`]), keyframes asked for or replayed;
//! - `adaptation`: the video on offer and each adaptive pupil's allocator;
//! - `fan_out`: one class over more than one worker, a home room feeding fan-out rooms
//!   ([`crate::fed`]).

use crate::keyframe::{VideoCodec, is_keyframe_start};
use crate::report_estimator::{self, ReportEstimator};
use crate::sdp_checks::{answer_receives_video, check_offer, offers_transport_cc, relay_candidates};
use crate::{
    AvailableVideo, BandwidthAllocator, CachedPacket, Changes, Decision, Fed, FedKeyframeRequest, FedPacket, FedShape,
    Feed, Forward, Forwarder, LayerChoice, LayerSelector, PacketIn, Participant, ParticipantKind, Publication,
    PublisherRole, PupilCap, RoutedPacket, SfuConfig, SfuError, SourceKey, Subscription, VideoChoice, layer_for_rank,
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

mod adaptation;
use adaptation::layer_name;
mod draining;
mod fan_out;
mod routing;

/// Where a home room hands what it routes, as it routes it (the driver's: a queue toward the
/// fan-out rooms' workers).
pub type FanOutSink = Box<dyn FnMut(Fed) + Send>;

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
    /// Home room with fan-out rooms: where what it routes is also handed, at once.
    fan_out: Option<FanOutSink>,
    /// A fan-out room: its publications and packets come from the home room, and its
    /// pupils' keyframe requests go back there (`fed_keyframes`).
    fed: bool,
    fed_keyframes: Vec<FedKeyframeRequest>,
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
            fan_out: None,
            fed: false,
            fed_keyframes: Vec::new(),
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

    /// Whether a publisher is sending in this room (a fan-out room never is: its home is).
    pub fn is_live(&self) -> bool {
        !self.fed && self.main_publisher.is_some()
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
