//! A synthetic pupil: WHEP play, recording every RTP packet received.

use crate::packetizer::is_keyframe_start;
use crate::publisher::{Signalling, payload_hash};
use anyhow::{Result, bail};
use ardoise_client::Peer;
use ardoise_client::http;
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use str0m::media::Mid;
use str0m::net::{Protocol, Receive};
use str0m::{Event, Input, Output};

/// One received video packet.
#[derive(Debug, Clone)]
pub struct ReceivedPacket {
    /// Arrival time.
    pub at: Instant,
    /// Extended sequence number.
    pub seq: u64,
    /// RTP timestamp.
    pub ts: u32,
    /// SSRC.
    pub ssrc: u32,
    /// Hash of the payload.
    pub hash: u64,
    /// Starts a keyframe.
    pub keyframe_start: bool,
    /// Payload length.
    pub len: u32,
}

/// Everything a pupil saw.
#[derive(Debug, Clone, Default)]
pub struct SubscriberReport {
    /// Local UDP address (to find the pupil's datagrams in a capture).
    pub local: Option<std::net::SocketAddr>,
    /// When the WHEP POST was sent (pupils that negotiated by HTTP).
    pub posted_at: Option<Instant>,
    /// When the WHEP POST was answered.
    pub negotiated_at: Option<Instant>,
    /// ICE + DTLS up.
    pub connected_at: Option<Instant>,
    /// Video packets in arrival order.
    pub video: Vec<ReceivedPacket>,
    /// Audio packets (sequence number, payload) in arrival order.
    pub audio: Vec<(u64, Vec<u8>)>,
    /// Hashes of the audio payloads.
    pub audio_hashes: Vec<u64>,
    /// Sequence numbers of the audio packets.
    pub audio_seqs: Vec<u64>,
    /// Arrival time and RTP timestamp of each audio packet, in the order of `audio_seqs`
    /// (a voice's queueing delay is what it adds to the first packet's).
    pub audio_at: Vec<(Instant, u32)>,
    /// Video payloads (sequence number, marker bit, payload), when kept.
    pub video_payloads: Vec<(u64, bool, std::sync::Arc<[u8]>)>,
    /// RTP packets dropped because they were numbered before the start of their stream (see
    /// [`Subscriber::drop_stale`]).
    pub stale_dropped: u64,
    /// End-to-end delay of each video frame, ms: its capture time (abs-capture-time, stamped
    /// by the teacher, carried by the server) to its first packet's arrival here.
    pub frame_delays_ms: Vec<f32>,
}

impl SubscriberReport {
    /// Sorted distinct video sequence numbers.
    pub fn video_seqs(&self) -> Vec<u64> {
        let mut s: Vec<u64> = self.video.iter().map(|p| p.seq).collect();
        s.sort_unstable();
        s.dedup();
        s
    }

    /// Audio payloads in sequence order (duplicates removed).
    pub fn audio_in_order(&self) -> Vec<Vec<u8>> {
        let mut a = self.audio.clone();
        a.sort_by_key(|(s, _)| *s);
        a.dedup_by_key(|(s, _)| *s);
        a.into_iter().map(|(_, p)| p).collect()
    }

    /// Time from connection to the first video packet.
    pub fn time_to_first_video(&self) -> Option<Duration> {
        Some(self.video.first()?.at.saturating_duration_since(self.connected_at?))
    }

    /// Time from the WHEP POST to the first video packet (the server forwards from a
    /// keyframe's first packet on: the start of the first picture).
    pub fn first_picture(&self) -> Option<Duration> {
        Some(self.video.first()?.at.saturating_duration_since(self.posted_at?))
    }
}

/// A connected pupil.
pub struct Subscriber {
    peer: Peer,
    signalling: Signalling,
    video_mid: Mid,
    /// What was received so far.
    pub report: SubscriberReport,
    /// Keep audio payloads (for decoding); off for large load runs.
    pub keep_audio: bool,
    /// Keep video payloads (for decoding in tests).
    pub keep_video: bool,
    /// Counts every RTP packet (audio and video) received, when set: shared by the pupils of a
    /// load run, read while it runs to count packets over a measurement window.
    pub rtp_counter: Option<Arc<AtomicU64>>,
    stale: Option<StaleFilter>,
    /// Subtracted from str0m's extended sequence numbers per SSRC (see `StaleFilter`).
    seq_offset: HashMap<u32, u64>,
    /// A REMB-sending pupil: the bit/s it reports, and when it next does.
    remb: Option<(u64, Instant)>,
}

/// Follows a libsrtp sender through packets from before the start of their stream.
///
/// Janus VideoRoom, under load, sometimes steps a new subscriber's stream back past its start
/// when it switches its simulcast layer (or forwards a late keyframe) in its first second: e.g.
/// sequence numbers 65446…65489 with timestamps just below 2^32 right after 1…80 and 0…41426.
/// Its libsrtp, still in the first roll-over cycle, takes 65446 for a jump forward (it never
/// guesses a roll-over counter of −1), so from the next packet on (81) it encrypts with
/// roll-over counter 1. A browser's libsrtp guesses the same and stays in step (its jitter
/// buffer then drops the stale frames as too old). str0m 0.25 guesses −1 instead, fails to
/// decrypt, keeps counter 0 and never decrypts that SSRC again: the video stops for good while
/// the audio flows. So: drop such packets (and those whose timestamp unwraps below zero) before
/// str0m sees them, and at the first one in the first cycle tell str0m the counter is now 1.
#[derive(Debug)]
struct StaleFilter {
    /// Per SSRC: highest unwrapped (sequence number, timestamp), and whether the roll-over
    /// counter was moved to 1.
    max: HashMap<u32, (i64, i64, bool)>,
    buf: Vec<u8>,
}

/// What to do with a datagram.
#[derive(Debug, PartialEq)]
enum Stale {
    Pass,
    Drop,
    /// Drop, and from now on decrypt this SSRC with roll-over counter 1.
    DropAndBumpRoc(u32),
}

/// Unwrap `v` (the low `bits` of a counter) to the value nearest `max`; may be negative.
fn unwrap_near(max: i64, v: i64, bits: u32) -> i64 {
    let (range, half) = (1i64 << bits, 1i64 << (bits - 1));
    let mut u = (max & !(range - 1)) | v;
    if u - max > half {
        u -= range;
    } else if max - u > half {
        u += range;
    }
    u
}

impl StaleFilter {
    /// What to do with datagram `d`, given the highest sequence numbers and timestamps so far.
    fn check(max: &mut HashMap<u32, (i64, i64, bool)>, d: &[u8]) -> Stale {
        // RTP only: version 2 and not an RTCP packet type (RFC 5761).
        if d.len() < 12 || d[0] >> 6 != 2 || (192..=223).contains(&d[1]) {
            return Stale::Pass;
        }
        let seq = u16::from_be_bytes([d[2], d[3]]) as i64;
        let ts = u32::from_be_bytes([d[4], d[5], d[6], d[7]]) as i64;
        let ssrc = u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
        let Some((max_seq, max_ts, bumped)) = max.get_mut(&ssrc) else {
            max.insert(ssrc, (seq, ts, false));
            return Stale::Pass;
        };
        let (seq, ts) = (unwrap_near(*max_seq, seq, 16), unwrap_near(*max_ts, ts, 32));
        if seq < 0 && !*bumped && *max_seq < 32768 {
            *bumped = true;
            return Stale::DropAndBumpRoc(ssrc);
        }
        if seq < 0 || ts < 0 {
            return Stale::Drop;
        }
        *max_seq = (*max_seq).max(seq);
        *max_ts = (*max_ts).max(ts);
        Stale::Pass
    }
}

/// The congestion feedback a pupil gives the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feedback {
    /// Transport-wide congestion control feedback (every 50 ms, as str0m and browsers send
    /// it), with receiver reports and NACKs: the server estimates the link itself.
    Twcc,
    /// No transport-cc in the offer: receiver reports and NACKs only, as many non-browser
    /// players.
    Reports,
    /// No transport-cc, and a REMB of this many bit/s every second (a player with a
    /// receive-side estimator; the load generator has none, so the value is given).
    Remb(u64),
}

impl std::str::FromStr for Feedback {
    type Err = String;
    /// `twcc`, `reports`, or `remb:KBPS`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "twcc" => Ok(Feedback::Twcc),
            "reports" => Ok(Feedback::Reports),
            _ => s
                .strip_prefix("remb:")
                .and_then(|k| k.parse::<u64>().ok())
                .filter(|k| *k > 0)
                .map(|k| Feedback::Remb(k * 1000))
                .ok_or_else(|| format!("feedback must be twcc, reports or remb:KBPS (got '{s}')")),
        }
    }
}

/// The offer without transport-wide sequence numbers and `transport-cc` feedback.
fn without_transport_cc(offer: &str) -> String {
    let lines: Vec<&str> =
        offer.split("\r\n").filter(|l| !l.contains("transport-wide-cc") && !l.ends_with(" transport-cc")).collect();
    lines.join("\r\n")
}

/// How often a REMB-sending pupil repeats it.
const REMB_EVERY: Duration = Duration::from_secs(1);

impl Subscriber {
    /// Negotiate with the server (WHEP POST).
    pub fn connect(server: &str, class: &str, token: &str, bind: IpAddr) -> Result<Subscriber> {
        Self::connect_with_layer(server, class, token, bind, None)
    }

    /// Negotiate from the UDP address `local` (a port a vanished pupil used before).
    pub fn connect_from(server: &str, class: &str, token: &str, local: std::net::SocketAddr) -> Result<Subscriber> {
        let peer = Peer::bound(local, str0m::Rtc::builder().set_rtp_mode(true), ardoise_client::Transports::UDP)?;
        Self::connect_peer(peer, server, class, token, None, Feedback::Twcc)
    }

    /// Negotiate asking for a simulcast layer (`high`, `medium`, `low`).
    pub fn connect_with_layer(
        server: &str,
        class: &str,
        token: &str,
        bind: IpAddr,
        layer: Option<&str>,
    ) -> Result<Subscriber> {
        Self::connect_peer(Peer::new(bind)?, server, class, token, layer, Feedback::Twcc)
    }

    /// Negotiate offering RFC 2198 redundancy for Opus (`red/48000/2`), as browsers do: the
    /// audio payloads recorded are then RED payloads (see `str0m::rtp::RedDecoder`).
    pub fn connect_offering_red(server: &str, class: &str, token: &str, bind: IpAddr) -> Result<Subscriber> {
        let config = str0m::Rtc::builder().set_rtp_mode(true).enable_opus(true, true);
        Self::connect_peer(Peer::with_config(bind, config)?, server, class, token, None, Feedback::Twcc)
    }

    /// A pupil offering `transports` (TCP only: a network that drops UDP), on `layer` if given.
    pub fn connect_over(
        server: &str,
        class: &str,
        token: &str,
        bind: IpAddr,
        layer: Option<&str>,
        transports: ardoise_client::Transports,
    ) -> Result<Subscriber> {
        Self::connect_with_feedback(server, class, token, bind, layer, transports, Feedback::Twcc)
    }

    /// The same, giving the server `feedback`.
    pub fn connect_with_feedback(
        server: &str,
        class: &str,
        token: &str,
        bind: IpAddr,
        layer: Option<&str>,
        transports: ardoise_client::Transports,
        feedback: Feedback,
    ) -> Result<Subscriber> {
        let peer = Peer::with_transports(bind, str0m::Rtc::builder().set_rtp_mode(true), transports)?;
        let mut s = Self::connect_peer(peer, server, class, token, layer, feedback)?;
        if let Feedback::Remb(bps) = feedback {
            s.remb = Some((bps, Instant::now()));
        }
        Ok(s)
    }

    fn connect_peer(
        mut peer: Peer,
        server: &str,
        class: &str,
        token: &str,
        layer: Option<&str>,
        feedback: Feedback,
    ) -> Result<Subscriber> {
        let ardoise_client::whep::PlayOffer { sdp: offer, pending, video_mid, .. } =
            ardoise_client::whep::PlayOffer::new(&mut peer)?;
        let path = match layer {
            Some(l) => format!("/whep/{class}?layer={l}"),
            None => format!("/whep/{class}"),
        };
        let offer = match feedback {
            Feedback::Twcc => offer,
            Feedback::Reports | Feedback::Remb(_) => without_transport_cc(&offer),
        };
        let posted = Instant::now();
        let session = http::post_offer(server, &path, token, &offer)?;
        peer.accept_answer(pending, &session.answer)?;
        let mut s = Self::negotiated(peer, video_mid, Signalling::Http { session, token: token.to_owned() });
        s.report.posted_at = Some(posted);
        Ok(s)
    }

    /// A pupil on a `peer` negotiated by other means (e.g. it answered a Janus offer, see
    /// [`crate::janus`]); `video_mid` is its video m-line, `signalling` says how it leaves.
    pub fn negotiated(peer: Peer, video_mid: Mid, signalling: Signalling) -> Subscriber {
        let report =
            SubscriberReport { local: Some(peer.local()), negotiated_at: Some(Instant::now()), ..Default::default() };
        Subscriber {
            peer,
            signalling,
            video_mid,
            report,
            keep_audio: true,
            keep_video: false,
            rtp_counter: None,
            stale: None,
            seq_offset: HashMap::new(),
            remb: None,
        }
    }

    /// Drop RTP packets from before the start of their stream before str0m sees them and keep
    /// str0m's SRTP roll-over counter in step with a libsrtp sender, as a browser does (see
    /// `StaleFilter`); counted in [`SubscriberReport::stale_dropped`]. Only
    /// [`Subscriber::process`] (the readiness-loop path) filters.
    pub fn drop_stale(&mut self) {
        self.stale = Some(StaleFilter { max: HashMap::new(), buf: vec![0; 2048] });
    }

    /// Receive for `d`.
    pub fn run_for(&mut self, d: Duration) -> Result<()> {
        let end = Instant::now() + d;
        self.run_until(|| Instant::now() >= end)
    }

    /// Receive until `stop()` returns true (checked at least every 50 ms), on this thread.
    pub fn run_until(&mut self, mut stop: impl FnMut() -> bool) -> Result<()> {
        let mut events = Vec::new();
        let connect_deadline = Instant::now() + Duration::from_secs(5);
        while !stop() {
            let now = Instant::now();
            if self.report.connected_at.is_none() && now > connect_deadline {
                bail!("subscriber did not connect within 5 s");
            }
            self.peer.drive(now + Duration::from_millis(50), &mut events)?;
            self.handle_events(&mut events);
        }
        Ok(())
    }

    /// Non-blocking step, for a pool of pupils sharing a thread (socket must be non-blocking).
    pub fn process(&mut self, events: &mut Vec<Event>) -> Result<()> {
        if let Some(filter) = &mut self.stale {
            // Read the datagrams here to filter them, feeding str0m as `Peer::process` does
            // (one input, then drain its output); `Peer::process` then serves the timeout.
            loop {
                let (n, src) = match self.peer.socket().recv_from(&mut filter.buf) {
                    Ok(r) => r,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
                    Err(e) => return Err(e.into()),
                };
                match StaleFilter::check(&mut filter.max, &filter.buf[..n]) {
                    Stale::Pass => {}
                    Stale::Drop => {
                        self.report.stale_dropped += 1;
                        continue;
                    }
                    Stale::DropAndBumpRoc(ssrc) => {
                        self.report.stale_dropped += 1;
                        if let Some(rx) = self.peer.rtc.direct_api().stream_rx(&ssrc.into()) {
                            rx.reset_roc(1);
                            // str0m's sequence numbers now carry the counter: report them
                            // without it, so that loss still counts real gaps.
                            self.seq_offset.insert(ssrc, 1 << 16);
                        }
                        continue;
                    }
                }
                let local = self.peer.local();
                if let Ok(r) = Receive::new(Protocol::Udp, src, local, &filter.buf[..n]) {
                    self.peer.rtc.handle_input(Input::Receive(Instant::now(), r))?;
                }
                loop {
                    match self.peer.rtc.poll_output()? {
                        Output::Timeout(_) => break,
                        Output::Transmit(t) => {
                            let _ = self.peer.socket().send_to(&t.contents, t.destination);
                        }
                        Output::Event(e) => events.push(e),
                    }
                }
            }
        }
        self.peer.process(events)?;
        self.handle_events(events);
        Ok(())
    }

    /// Ask the server for a keyframe (PLI) on the video stream, as a decoder that lost one does.
    pub fn request_keyframe(&mut self) -> bool {
        let Some(ssrc) = self.report.video.last().map(|p| p.ssrc) else { return false };
        let mut api = self.peer.rtc.direct_api();
        match api.stream_rx(&ssrc.into()) {
            Some(rx) => {
                rx.request_keyframe(str0m::media::KeyframeRequestKind::Pli);
                true
            }
            None => false,
        }
    }

    /// Its local UDP address (to impair its link in tests).
    pub fn local(&self) -> std::net::SocketAddr {
        self.peer.local()
    }

    /// Its participant id on the server (the last segment of the WHEP resource).
    pub fn participant(&self) -> Option<u64> {
        self.signalling.resource()?.rsplit('/').next().and_then(|id| id.parse().ok())
    }

    /// The URL of its session resource (on the node that answered), when it has one.
    pub fn resource(&self) -> Option<&str> {
        self.signalling.resource()
    }

    /// What it has seen so far.
    pub fn report(&self) -> &SubscriberReport {
        &self.report
    }

    /// The peer (socket and timeout), for readiness loops.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    fn handle_events(&mut self, events: &mut Vec<Event>) {
        if let Some((bps, due)) = self.remb
            && self.report.connected_at.is_some()
            && Instant::now() >= due
            && let Some(rx) = self.peer.rtc.direct_api().stream_rx_by_mid(self.video_mid, None)
        {
            rx.request_remb(str0m::bwe::Bitrate::bps(bps));
            self.remb = Some((bps, due + REMB_EVERY));
        }
        for e in events.drain(..) {
            match e {
                Event::Connected => self.report.connected_at = Some(Instant::now()),
                Event::RtpPacket(p) => {
                    if let Some(c) = &self.rtp_counter {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                    let Some(mid) = self.peer.rtc.direct_api().stream_rx(&p.header.ssrc).map(|s| s.mid()) else {
                        continue;
                    };
                    let seq = self.seq_offset.get(&*p.header.ssrc).map_or(*p.seq_no, |o| p.seq_no.saturating_sub(*o));
                    if mid == self.video_mid {
                        let new_frame = self.report.video.last().is_none_or(|last| last.ts != p.header.timestamp);
                        if let Some(c) = p.header.ext_vals.abs_capture_time.filter(|_| new_frame) {
                            let delay = std::time::SystemTime::now().duration_since(c.capture_time).unwrap_or_default();
                            self.report.frame_delays_ms.push(delay.as_secs_f32() * 1000.0);
                        }
                        self.report.video.push(ReceivedPacket {
                            at: Instant::now(),
                            seq,
                            ts: p.header.timestamp,
                            ssrc: *p.header.ssrc,
                            hash: payload_hash(&p.payload),
                            keyframe_start: is_keyframe_start(&p.payload),
                            len: p.payload.len() as u32,
                        });
                        if self.keep_video {
                            self.report.video_payloads.push((seq, p.header.marker, p.payload.clone()));
                        }
                    } else {
                        self.report.audio_hashes.push(payload_hash(&p.payload));
                        self.report.audio_seqs.push(seq);
                        self.report.audio_at.push((Instant::now(), p.header.timestamp));
                        if self.keep_audio {
                            self.report.audio.push((seq, p.payload.to_vec()));
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Leave (WHEP DELETE, or the custom leave). Returns the HTTP status and the report.
    pub fn close(self) -> (Result<u16>, SubscriberReport) {
        (self.signalling.leave(), self.report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RTP header (no payload): version 2, VP8's dynamic payload type.
    fn rtp(seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
        let mut d = vec![0x80, 96];
        d.extend_from_slice(&seq.to_be_bytes());
        d.extend_from_slice(&ts.to_be_bytes());
        d.extend_from_slice(&ssrc.to_be_bytes());
        d
    }

    #[test]
    fn unwrap_near_picks_the_nearest_value() {
        assert_eq!(unwrap_near(10, 12, 16), 12);
        assert_eq!(unwrap_near(65530, 3, 16), 65539, "forward across the wrap");
        assert_eq!(unwrap_near(70000, 65535, 16), 65535, "just behind, in the previous cycle");
        assert_eq!(unwrap_near(5, 65500, 16), -36, "behind the start of the stream");
        assert_eq!(unwrap_near(100, u32::MAX as i64, 32), -1);
    }

    #[test]
    fn stale_packets_before_the_start_of_a_stream_are_dropped_once_with_a_roc_bump() {
        let mut max = HashMap::new();
        assert_eq!(StaleFilter::check(&mut max, &rtp(1, 1000, 7)), Stale::Pass);
        assert_eq!(StaleFilter::check(&mut max, &rtp(80, 4000, 7)), Stale::Pass);
        // Janus steps back past the start: the first such packet bumps the roll-over counter.
        assert_eq!(StaleFilter::check(&mut max, &rtp(65446, u32::MAX - 3000, 7)), Stale::DropAndBumpRoc(7));
        assert_eq!(StaleFilter::check(&mut max, &rtp(65447, u32::MAX - 3000, 7)), Stale::Drop);
        assert_eq!(StaleFilter::check(&mut max, &rtp(81, 4100, 7)), Stale::Pass);
        // Another stream is followed on its own; RTCP and short datagrams pass untouched.
        assert_eq!(StaleFilter::check(&mut max, &rtp(65000, 10, 9)), Stale::Pass);
        assert_eq!(StaleFilter::check(&mut max, &rtp(65010, 20, 9)), Stale::Pass);
        let mut rtcp = rtp(0, 0, 7);
        rtcp[1] = 200;
        assert_eq!(StaleFilter::check(&mut max, &rtcp), Stale::Pass);
        assert_eq!(StaleFilter::check(&mut max, &[0x80, 96, 0]), Stale::Pass);
        // A timestamp from before the start, with a sequence number that looks fine: dropped.
        assert_eq!(StaleFilter::check(&mut max, &rtp(82, u32::MAX - 10, 7)), Stale::Drop);
    }
}
