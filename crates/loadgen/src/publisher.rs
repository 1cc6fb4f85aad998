//! A synthetic teacher: WHIP publish of VP8 simulcast (embedded clips) and an Opus tone.

use crate::packetizer::Vp8Packetizer;
use crate::{ToneEncoder, VideoClip};
use anyhow::{Context, Result, bail};
use ardoise_client::Peer;
use ardoise_client::http::{self, Session};
use ardoise_client::whip;
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;
use std::time::{Duration, Instant};
use str0m::Event;
use str0m::format::Codec;
use str0m::media::{Mid, Pt, Rid};
use str0m::rtp::{AbsCaptureTime, ExtensionValues, RtpWrite};

/// What to publish and where.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// Server base URL, e.g. `http://127.0.0.1:8080`.
    pub server: String,
    /// Class id.
    pub class: String,
    /// Teacher token.
    pub token: String,
    /// Local IP to bind (loopback).
    pub bind: IpAddr,
    /// Send the three simulcast layers (else only the top one).
    pub simulcast: bool,
    /// Remember a hash of every payload sent (for end-to-end identity checks).
    pub record_payloads: bool,
}

/// Counters shared with the caller.
#[derive(Debug, Default)]
pub struct PublisherStats {
    /// RTP video packets sent.
    pub video_packets: AtomicU64,
    /// RTP audio packets sent.
    pub audio_packets: AtomicU64,
    /// RTP packets sent on the highest layer.
    pub top_layer_packets: AtomicU64,
    /// Keyframe requests received.
    pub keyframe_requests: AtomicU64,
    /// Hashes of payloads sent, if recorded.
    pub payloads: Mutex<HashSet<u64>>,
}

struct Layer {
    rid: Option<Rid>,
    clip: VideoClip,
    frame: usize,
    next_at: Instant,
    packetizer: Vp8Packetizer,
    seq: u64,
    /// Paced packets not sent yet, each with its time.
    paced: std::collections::VecDeque<PacedPacket>,
}

/// One video packet a paced publisher sends later.
struct PacedPacket {
    at: Instant,
    seq: u64,
    ts: u32,
    marker: bool,
    ext: ExtensionValues,
    payload: Vec<u8>,
}

/// The share of a frame's interval over which a paced publisher spreads the frame's packets
/// (as an encoder's pacer does: the frame is out well before the next one).
pub const PACING_SHARE: f64 = 0.8;

/// How a peer was negotiated, and so how it leaves.
pub enum Signalling {
    /// WHIP or WHEP: leaving DELETEs the session resource with the token.
    Http {
        /// The session (resource URL, answer).
        session: Session,
        /// Bearer token.
        token: String,
    },
    /// Negotiated by other means (e.g. [`crate::janus`]): leaving calls this, which returns an
    /// HTTP-like status.
    Custom(Box<dyn FnOnce() -> Result<u16> + Send>),
}

impl Signalling {
    /// The WHIP/WHEP session resource URL, if negotiated that way.
    pub fn resource(&self) -> Option<&str> {
        match self {
            Signalling::Http { session, .. } => Some(&session.resource),
            Signalling::Custom(_) => None,
        }
    }

    /// Leave: WHIP/WHEP DELETE, or the custom leave.
    pub fn leave(self) -> Result<u16> {
        match self {
            Signalling::Http { session, token } => http::delete(&session.resource, &token),
            Signalling::Custom(leave) => leave(),
        }
    }
}

/// A connected teacher.
pub struct Publisher {
    peer: Peer,
    signalling: Signalling,
    layers: Vec<Layer>,
    video_mid: Mid,
    audio_mid: Mid,
    vp8: Pt,
    opus: Pt,
    tone: ToneEncoder,
    audio_seq: u64,
    next_audio: Instant,
    start: Instant,
    connected: bool,
    record: bool,
    /// Spread each frame's packets over [`PACING_SHARE`] of its interval (else: a burst).
    pace: bool,
    /// Counters.
    pub stats: std::sync::Arc<PublisherStats>,
}

/// FNV-1a hash of a payload (cheap identity check).
pub fn payload_hash(p: &[u8]) -> u64 {
    p.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x100_0000_01b3))
}

impl Publisher {
    /// Negotiate with the server (WHIP POST), over UDP.
    pub fn connect(config: &PublisherConfig) -> Result<Publisher> {
        Self::connect_over(config, ardoise_client::Transports::UDP)
    }

    /// Negotiate with the server, offering `transports` (TCP only: a network that drops UDP).
    pub fn connect_over(config: &PublisherConfig, transports: ardoise_client::Transports) -> Result<Publisher> {
        let mut peer = Peer::with_transports(config.bind, str0m::Rtc::builder().set_rtp_mode(true), transports)?;
        let rids = Self::rids(config.simulcast);
        let published = whip::publish(&mut peer, &config.server, &config.class, &config.token, &rids)?;
        let signalling = Signalling::Http { session: published.session, token: config.token.clone() };
        Self::negotiated(
            peer,
            published.audio_mid,
            published.video_mid,
            config.simulcast,
            config.record_payloads,
            signalling,
        )
    }

    /// The rids to offer: `l`, `m`, `h` (lowest first) with simulcast, none without.
    pub fn rids(simulcast: bool) -> Vec<&'static str> {
        if simulcast { VideoClip::simulcast().into_iter().map(|(r, _)| r).collect() } else { vec![] }
    }

    /// A teacher on a `peer` whose offer (audio + video with [`Publisher::rids`]) was already
    /// answered by other means (e.g. Janus, see [`crate::janus`]); `signalling` says how it leaves.
    pub fn negotiated(
        peer: Peer,
        audio_mid: Mid,
        video_mid: Mid,
        simulcast: bool,
        record_payloads: bool,
        signalling: Signalling,
    ) -> Result<Publisher> {
        let clips = VideoClip::simulcast();
        let clips: Vec<(&str, VideoClip)> =
            if simulcast { clips } else { clips.into_iter().filter(|(r, _)| *r == "h").collect() };
        let vp8 = peer.rtc.codec_config().find(|p| p.spec().codec == Codec::Vp8).context("VP8 not negotiated")?.pt();
        let opus = peer.rtc.codec_config().find(|p| p.spec().codec == Codec::Opus).context("Opus not negotiated")?.pt();
        let now = Instant::now();
        let layers = clips
            .into_iter()
            .enumerate()
            .map(|(i, (rid, clip))| Layer {
                rid: simulcast.then(|| rid.into()),
                clip,
                frame: 0,
                next_at: now,
                packetizer: Vp8Packetizer::default(),
                seq: 1000 + 7000 * i as u64,
                paced: Default::default(),
            })
            .collect();
        Ok(Publisher {
            peer,
            signalling,
            layers,
            video_mid,
            audio_mid,
            vp8,
            opus,
            tone: ToneEncoder::new(440.0).context("opus encoder")?,
            audio_seq: 500,
            next_audio: now,
            start: now,
            connected: false,
            record: record_payloads,
            pace: false,
            stats: Default::default(),
        })
    }

    /// The WHIP session resource URL ("" when not negotiated over WHIP).
    pub fn resource(&self) -> &str {
        self.signalling.resource().unwrap_or("")
    }

    /// Whether ICE/DTLS is up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Pace the video like a real encoder: each frame's packets spread over
    /// [`PACING_SHARE`] of the frame interval, instead of one burst per frame.
    pub fn set_paced(&mut self, pace: bool) {
        self.pace = pace;
    }

    /// Publish for `d` (waiting first for the connection, at most 5 s).
    pub fn run_for(&mut self, d: Duration) -> Result<()> {
        let end = Instant::now() + d;
        self.run_until(|| Instant::now() >= end)
    }

    /// Publish until `stop()` returns true.
    pub fn run_until(&mut self, mut stop: impl FnMut() -> bool) -> Result<()> {
        let connect_deadline = Instant::now() + Duration::from_secs(5);
        let mut events = Vec::new();
        while !stop() {
            let now = Instant::now();
            if !self.connected && now > connect_deadline {
                bail!("publisher did not connect within 5 s");
            }
            if self.connected {
                self.send_due(now);
            }
            let next = self
                .layers
                .iter()
                .flat_map(|l| [Some(l.next_at), l.paced.front().map(|p| p.at)])
                .flatten()
                .min()
                .unwrap_or(now)
                .min(self.next_audio);
            let until = if self.connected { next } else { now + Duration::from_millis(20) };
            self.peer.drive(until.min(now + Duration::from_millis(50)), &mut events)?;
            for e in events.drain(..) {
                match e {
                    Event::Connected => {
                        self.connected = true;
                        let now = Instant::now();
                        for l in &mut self.layers {
                            l.next_at = now;
                        }
                        self.next_audio = now;
                    }
                    Event::KeyframeRequest(r) => {
                        self.stats.keyframe_requests.fetch_add(1, Ordering::Relaxed);
                        for l in self.layers.iter_mut().filter(|l| l.rid == r.rid || r.rid.is_none()) {
                            // Restart the clip: its frame 0 is a keyframe.
                            l.frame = 0;
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn send_due(&mut self, now: Instant) {
        let ts_video = ((now - self.start).as_micros() as u64 * 90 / 1000) as u32;
        let top = self.layers.len() - 1;
        let (vp8, pace, record) = (self.vp8, self.pace, self.record);
        for (li, l) in self.layers.iter_mut().enumerate() {
            if now >= l.next_at {
                let frame = &l.clip.frames[l.frame];
                let payloads = l.packetizer.packetize(&frame.data);
                let n = payloads.len();
                // The frame's capture time (wall clock), for the pupils' end-to-end delay.
                let ext = ExtensionValues {
                    abs_capture_time: Some(AbsCaptureTime { capture_time: SystemTime::now(), clock_offset: None }),
                    ..Default::default()
                };
                let interval = Duration::from_micros(1_000_000 / l.clip.fps as u64);
                let step = if pace { interval.mul_f64(PACING_SHARE) / n.max(1) as u32 } else { Duration::ZERO };
                for (i, payload) in payloads.into_iter().enumerate() {
                    let at = now + step * i as u32;
                    l.paced.push_back(PacedPacket {
                        at,
                        seq: l.seq,
                        ts: ts_video,
                        marker: i + 1 == n,
                        ext: ext.clone(),
                        payload,
                    });
                    l.seq += 1;
                }
                l.frame = (l.frame + 1) % l.clip.frames.len();
                l.next_at += interval;
                if l.next_at + Duration::from_millis(200) < now {
                    l.next_at = now; // fell behind (machine busy): do not burst
                }
            }
            let mut api = self.peer.rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(self.video_mid, l.rid) else {
                l.paced.clear();
                continue;
            };
            while l.paced.front().is_some_and(|p| p.at <= now) {
                let Some(p) = l.paced.pop_front() else { break };
                if record {
                    self.stats.payloads.lock().unwrap().insert(payload_hash(&p.payload));
                }
                tx.write_rtp(
                    RtpWrite::new(vp8, p.seq.into(), p.ts, now, p.payload)
                        .marker(p.marker)
                        .nackable(true)
                        .ext_vals(p.ext),
                );
                self.stats.video_packets.fetch_add(1, Ordering::Relaxed);
                if li == top {
                    self.stats.top_layer_packets.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if now >= self.next_audio {
            let p = self.tone.next_packet();
            if self.record {
                self.stats.payloads.lock().unwrap().insert(payload_hash(&p));
            }
            let ts = (self.audio_seq * 960) as u32;
            let mut api = self.peer.rtc.direct_api();
            if let Some(tx) = api.stream_tx_by_mid(self.audio_mid, None) {
                tx.write_rtp(RtpWrite::new(self.opus, self.audio_seq.into(), ts, now, p));
                self.audio_seq += 1;
                self.stats.audio_packets.fetch_add(1, Ordering::Relaxed);
            }
            self.next_audio += Duration::from_millis(20);
            if self.next_audio + Duration::from_millis(200) < now {
                self.next_audio = now;
            }
        }
    }

    /// End the publication (WHIP DELETE, or the custom leave). Returns the HTTP status.
    pub fn close(self) -> Result<u16> {
        self.signalling.leave()
    }
}
