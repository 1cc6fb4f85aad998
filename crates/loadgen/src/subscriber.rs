//! A synthetic pupil: WHEP play, recording every RTP packet received.

use ardoise_client::http::{self, Session};
use crate::packetizer::is_keyframe_start;
use ardoise_client::Peer;
use crate::publisher::payload_hash;
use anyhow::{Context, Result, bail};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use str0m::Event;
use str0m::media::{Direction, MediaKind, Mid};

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
    /// Video payloads (sequence number, marker bit, payload), when kept.
    pub video_payloads: Vec<(u64, bool, std::sync::Arc<[u8]>)>,
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
}

/// A connected pupil.
pub struct Subscriber {
    peer: Peer,
    session: Session,
    token: String,
    video_mid: Mid,
    /// What was received so far.
    pub report: SubscriberReport,
    /// Keep audio payloads (for decoding); off for large load runs.
    pub keep_audio: bool,
    /// Keep video payloads (for decoding in tests).
    pub keep_video: bool,
}

impl Subscriber {
    /// Negotiate with the server (WHEP POST).
    pub fn connect(server: &str, class: &str, token: &str, bind: IpAddr) -> Result<Subscriber> {
        Self::connect_with_layer(server, class, token, bind, None)
    }

    /// Negotiate asking for a simulcast layer (`high`, `medium`, `low`).
    pub fn connect_with_layer(server: &str, class: &str, token: &str, bind: IpAddr, layer: Option<&str>) -> Result<Subscriber> {
        let mut peer = Peer::new(bind)?;
        let mut api = peer.rtc.sdp_api();
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let video_mid = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().context("no offer")?;
        let path = match layer {
            Some(l) => format!("/whep/{class}?layer={l}"),
            None => format!("/whep/{class}"),
        };
        let session = http::post_offer(server, &path, token, &offer.to_sdp_string())?;
        let answer = str0m::change::SdpAnswer::from_sdp_string(&session.answer).context("parse answer")?;
        peer.rtc.sdp_api().accept_answer(pending, answer)?;
        let report = SubscriberReport { negotiated_at: Some(Instant::now()), ..Default::default() };
        Ok(Subscriber { peer, session, token: token.to_owned(), video_mid, report, keep_audio: true, keep_video: false })
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
        self.session.resource.rsplit('/').next().and_then(|id| id.parse().ok())
    }

    /// The peer (socket and timeout), for readiness loops.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    fn handle_events(&mut self, events: &mut Vec<Event>) {
        for e in events.drain(..) {
            match e {
                Event::Connected => self.report.connected_at = Some(Instant::now()),
                Event::RtpPacket(p) => {
                    let Some(mid) = self.peer.rtc.direct_api().stream_rx(&p.header.ssrc).map(|s| s.mid()) else {
                        continue;
                    };
                    if mid == self.video_mid {
                        self.report.video.push(ReceivedPacket {
                            at: Instant::now(),
                            seq: *p.seq_no,
                            ts: p.header.timestamp,
                            ssrc: *p.header.ssrc,
                            hash: payload_hash(&p.payload),
                            keyframe_start: is_keyframe_start(&p.payload),
                            len: p.payload.len() as u32,
                        });
                        if self.keep_video {
                            self.report.video_payloads.push((*p.seq_no, p.header.marker, p.payload.clone()));
                        }
                    } else {
                        self.report.audio_hashes.push(payload_hash(&p.payload));
                        self.report.audio_seqs.push(*p.seq_no);
                        if self.keep_audio {
                            self.report.audio.push((*p.seq_no, p.payload.to_vec()));
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Leave (WHEP DELETE). Returns the HTTP status and the report.
    pub fn close(self) -> (Result<u16>, SubscriberReport) {
        (http::delete(&self.session.resource, &self.token), self.report)
    }
}
