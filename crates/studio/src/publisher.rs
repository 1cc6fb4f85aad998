//! The studio's WHIP publisher: str0m in frame mode (it packetizes VP8/H.264/Opus), simulcast
//! by rid, keyframes on request, encoder bitrates from the bandwidth estimate, and
//! reconnection with backoff while capture keeps running.

use crate::config::EncodedLayer;
use crate::{Pipeline, PipelineCommand, StudioConfig, VideoCodec};
use anyhow::{Context, Result, bail};
use ardoise_client::{Peer, Session, Transports, http, whip};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};
use str0m::bwe::{Bitrate, BweKind};
use str0m::format::Codec;
use str0m::media::{MediaTime, Mid, Pt};
use str0m::{Event, IceConnectionState, Rtc};
use tracing::{info, warn};

/// The server is considered gone after this long without a datagram from it.
const SILENCE: Duration = Duration::from_millis(2000);

/// Counters shared with the studio's owner.
#[derive(Debug, Default)]
pub struct PublisherStats {
    /// Successful WHIP sessions (1 + reconnections).
    pub sessions: AtomicU64,
    /// ICE + DTLS currently up.
    pub connected: AtomicBool,
    /// Video frames written, all layers.
    pub video_frames: AtomicU64,
    /// Audio frames written.
    pub audio_frames: AtomicU64,
    /// Keyframe requests received from the server.
    pub keyframe_requests: AtomicU64,
    /// The same per layer, in the order of `StudioConfig::layers` (the top first).
    pub keyframe_requests_by_layer: [AtomicU64; 3],
    /// Latest bandwidth estimate, bit/s.
    pub estimate_bps: AtomicU64,
    /// Capture → handed to str0m for sending, top layer, microseconds (recent samples).
    pub latency_us: Mutex<Vec<u64>>,
}

struct Connection {
    peer: Peer,
    session: Session,
    audio_mid: Mid,
    video_mid: Mid,
    video_pt: Pt,
    audio_pt: Pt,
    rids: Vec<str0m::media::Rid>,
    connected: bool,
    last_bitrates: Vec<u32>,
}

fn connect(config: &StudioConfig) -> Result<Connection> {
    let mut rtc_config = Rtc::builder().clear_codecs().enable_opus(true, false).enable_bwe(Some(Bitrate::kbps(2500)));
    rtc_config = match config.codec {
        VideoCodec::Vp8 => rtc_config.enable_vp8(true),
        VideoCodec::H264 => rtc_config.enable_h264(true),
    };
    // UDP when it works, ICE-TCP when the school's network drops UDP: the studio falls back
    // by itself (ICE ranks the UDP candidates first).
    let mut peer = Peer::with_transports(config.bind, rtc_config, Transports::BOTH)?;
    let rid_names: Vec<&str> = config.layers.iter().map(|l| l.rid.as_str()).collect();
    let rids: Vec<str0m::media::Rid> = rid_names.iter().map(|r| (*r).into()).collect();
    let server = config.class_server()?;
    let published = whip::publish(&mut peer, &server, &config.class, &config.token, &rid_names)?;
    let (session, audio_mid, video_mid) = (published.session, published.audio_mid, published.video_mid);
    let codec = match config.codec {
        VideoCodec::Vp8 => Codec::Vp8,
        VideoCodec::H264 => Codec::H264,
    };
    let video_pt = peer.rtc.codec_config().find(|p| p.spec().codec == codec).context("video codec refused")?.pt();
    let audio_pt = peer.rtc.codec_config().find(|p| p.spec().codec == Codec::Opus).context("Opus refused")?.pt();
    let last_bitrates = config.layers.iter().map(|l| l.kbps * 1000).collect();
    Ok(Connection { peer, session, audio_mid, video_mid, video_pt, audio_pt, rids, connected: false, last_bitrates })
}

/// Split a bandwidth estimate over the layers: lowest first at their target, the top ones
/// get what remains (at least 30% of their target while the estimate allows it).
pub fn allocate(estimate_bps: u64, audio_bps: u64, targets_bps: &[u32]) -> Vec<u32> {
    let mut left = (estimate_bps as f64 * 0.9) as i64 - audio_bps as i64;
    let mut out = vec![0u32; targets_bps.len()];
    for i in (0..targets_bps.len()).rev() {
        let t = targets_bps[i] as i64;
        let give = left.clamp(t * 3 / 10, t);
        out[i] = give as u32;
        left -= give;
    }
    out
}

impl Connection {
    fn run(
        &mut self,
        config: &StudioConfig,
        frames: &Receiver<EncodedLayer>,
        pipeline: &Pipeline,
        stop: &AtomicBool,
        stats: &PublisherStats,
    ) -> Result<()> {
        let connect_deadline = Instant::now() + Duration::from_secs(5);
        let mut events = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if !self.connected && now > connect_deadline {
                bail!("ICE/DTLS did not connect within 5 s");
            }
            if self.connected && now.duration_since(self.peer.last_input()) > SILENCE {
                bail!("no word from the server for {SILENCE:?}");
            }
            self.peer.drive(now + Duration::from_millis(2), &mut events)?;
            for e in events.drain(..) {
                match e {
                    Event::Connected => {
                        self.connected = true;
                        stats.connected.store(true, Ordering::Relaxed);
                        pipeline.command(PipelineCommand::ForceKeyframe(None));
                        info!(resource = %self.session.resource, "publishing");
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => bail!("ICE disconnected"),
                    Event::KeyframeRequest(r) => {
                        stats.keyframe_requests.fetch_add(1, Ordering::Relaxed);
                        let layer = match r.rid {
                            Some(rid) => self.rids.iter().position(|x| *x == rid),
                            None => Some(0),
                        };
                        if let Some(n) = layer.and_then(|l| stats.keyframe_requests_by_layer.get(l)) {
                            n.fetch_add(1, Ordering::Relaxed);
                        }
                        pipeline.command(PipelineCommand::ForceKeyframe(layer));
                    }
                    Event::EgressBitrateEstimate(BweKind::Twcc { estimate: b, .. }) => {
                        let bps = b.as_u64();
                        stats.estimate_bps.store(bps, Ordering::Relaxed);
                        let targets: Vec<u32> = config.layers.iter().map(|l| l.kbps * 1000).collect();
                        let alloc = allocate(bps, config.audio_kbps as u64 * 1000, &targets);
                        for (i, (&new, old)) in alloc.iter().zip(self.last_bitrates.iter_mut()).enumerate() {
                            if (new as f64 - *old as f64).abs() > *old as f64 * 0.1 {
                                pipeline.command(PipelineCommand::SetBitrate(i, new));
                                *old = new;
                            }
                        }
                    }
                    _ => {}
                }
            }
            loop {
                let f = match frames.try_recv() {
                    Ok(f) => f,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => bail!("the pipeline stopped"),
                };
                if !self.connected {
                    continue;
                }
                self.write(f, stats)?;
            }
        }
        Ok(())
    }

    fn write(&mut self, f: EncodedLayer, stats: &PublisherStats) -> Result<()> {
        let wallclock = f.at - Duration::from_micros(f.latency_us.unwrap_or(0));
        let time = MediaTime::from_micros(f.pts_us);
        match f.layer {
            Some(i) => {
                let Some(w) = self.peer.rtc.writer(self.video_mid) else { return Ok(()) };
                let w = if self.rids.len() > 1 { w.rid(self.rids[i]) } else { w };
                w.write(self.video_pt, wallclock, time, f.data)?;
                stats.video_frames.fetch_add(1, Ordering::Relaxed);
                if i == 0
                    && let Some(l) = f.latency_us
                {
                    let total = l + f.at.elapsed().as_micros() as u64;
                    let mut v = stats.latency_us.lock().unwrap_or_else(|e| e.into_inner());
                    if v.len() >= 10_000 {
                        v.remove(0);
                    }
                    v.push(total);
                }
            }
            None => {
                let Some(w) = self.peer.rtc.writer(self.audio_mid) else { return Ok(()) };
                w.write(self.audio_pt, wallclock, time, f.data)?;
                stats.audio_frames.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

/// Publish until `stop`, reconnecting with backoff (250 ms doubling to 4 s) whenever the
/// server is unreachable or goes silent. Capture is never stopped meanwhile.
pub fn run(
    config: &StudioConfig,
    frames: Receiver<EncodedLayer>,
    pipeline: &Pipeline,
    stop: &AtomicBool,
    stats: &PublisherStats,
) {
    let mut backoff = Duration::from_millis(250);
    while !stop.load(Ordering::Relaxed) {
        match connect(config) {
            Ok(mut conn) => {
                stats.sessions.fetch_add(1, Ordering::Relaxed);
                let r = conn.run(config, &frames, pipeline, stop, stats);
                stats.connected.store(false, Ordering::Relaxed);
                let was_connected = conn.connected;
                let _ = http::delete(&conn.session.resource, &config.token);
                match r {
                    Ok(()) => return,
                    Err(e) => warn!("publication interrupted: {e:#}; reconnecting"),
                }
                if was_connected {
                    backoff = Duration::from_millis(250);
                }
            }
            Err(e) => {
                warn!("cannot publish to {} (class {}): {e:#}; retrying in {backoff:?}", config.server, config.class)
            }
        }
        // Wait, dropping frames (capture goes on).
        let until = Instant::now() + backoff;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
            while frames.try_recv().is_ok() {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(4));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_keeps_low_layers_first() {
        let t = [1_500_000, 500_000, 150_000];
        assert_eq!(allocate(5_000_000, 32_000, &t), vec![1_500_000, 500_000, 150_000]);
        let a = allocate(1_000_000, 32_000, &t);
        assert_eq!(a[2], 150_000);
        assert_eq!(a[1], 500_000);
        assert!(a[0] < 1_500_000 && a[0] >= 450_000, "{a:?}");
        let poor = allocate(300_000, 32_000, &t);
        assert_eq!(poor[2], 150_000);
        assert!(poor[1] >= 150_000);
    }
}
