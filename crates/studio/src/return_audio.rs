//! Return audio: the voice of the pupil holding the floor, played on the classroom speaker.
//!
//! A WHEP subscription with `feed=floor` (one audio m-line) receives the floor pupil's Opus
//! packets; they go through `appsrc ! opusdec ! audioconvert ! audioresample` to the speaker
//! sink. The subscription reconnects with backoff when the server goes away.

use crate::StudioConfig;
use crate::config::Speaker;
use anyhow::{Context, Result};
use ardoise_client::{Peer, Transports, http};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use str0m::media::{Direction, MediaKind};
use str0m::{Event, Rtc};
use tracing::{debug, info, warn};

/// The server is considered gone after this long without a datagram (ICE checks come every few seconds).
const SILENCE: Duration = Duration::from_secs(8);

/// Counters of the return audio.
#[derive(Debug, Default)]
pub struct ReturnAudioStats {
    /// Opus packets received from the floor pupil (all sessions).
    pub packets: AtomicU64,
    /// The WHEP subscription is connected.
    pub connected: AtomicBool,
}

/// The playback pipeline: appsrc (Opus) → decoder → speaker.
struct Playback {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    started: Instant,
}

impl Playback {
    fn new(speaker: Speaker) -> Result<Playback> {
        let sink = match speaker {
            Speaker::Auto => "autoaudiosink sync=false",
            Speaker::None => "fakesink sync=false",
        };
        let desc = format!(
            "appsrc name=src is-live=true format=time do-timestamp=true \
             caps=audio/x-opus,channel-mapping-family=(int)0,rate=(int)48000,channels=(int)2 \
             ! opusdec plc=true ! audioconvert ! audioresample ! queue max-size-time=100000000 leaky=downstream ! {sink}"
        );
        let pipeline =
            gst::parse::launch(&desc)?.downcast::<gst::Pipeline>().map_err(|_| anyhow::anyhow!("not a pipeline"))?;
        let src = pipeline
            .by_name("src")
            .context("appsrc")?
            .downcast::<gst_app::AppSrc>()
            .map_err(|_| anyhow::anyhow!("src is not an appsrc"))?;
        pipeline.set_state(gst::State::Playing).context("the speaker pipeline does not start")?;
        Ok(Playback { pipeline, src, started: Instant::now() })
    }

    /// The speaker, or a silent sink when it cannot play (no sound card: the class goes on).
    fn open(speaker: Speaker) -> Result<Playback> {
        match Playback::new(speaker) {
            Ok(p) => Ok(p),
            Err(e) if speaker == Speaker::Auto => {
                warn!("classroom speaker unavailable ({e:#}); pupils' voices will not be played here");
                Playback::new(Speaker::None)
            }
            Err(e) => Err(e),
        }
    }

    fn push(&self, opus: &[u8]) {
        let mut buf = gst::Buffer::from_slice(opus.to_vec());
        if let Some(b) = buf.get_mut() {
            b.set_duration(gst::ClockTime::from_mseconds(20));
        }
        let _ = self.src.push_buffer(buf);
    }
}

impl Drop for Playback {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
        debug!(after = ?self.started.elapsed(), "speaker pipeline stopped");
    }
}

/// One WHEP `feed=floor` session until it fails or `stop`.
fn session(config: &StudioConfig, playback: &Playback, stop: &AtomicBool, stats: &ReturnAudioStats) -> Result<()> {
    // UDP when it works, ICE-TCP when the school's network drops UDP.
    let rtc = Rtc::builder().set_rtp_mode(true).clear_codecs().enable_opus(true, false);
    let mut peer = Peer::with_transports(config.bind, rtc, Transports::BOTH)?;
    let mut api = peer.rtc.sdp_api();
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().context("no offer")?;
    let session = http::post_offer(
        &config.class_server()?,
        &format!("/whep/{}?feed=floor", config.class),
        &config.token,
        &offer.to_sdp_string(),
    )?;
    peer.accept_answer(pending, &session.answer)?;
    let mut events = Vec::new();
    let r = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        if let Err(e) = peer.drive(Instant::now() + Duration::from_millis(100), &mut events) {
            break Err(e);
        }
        for e in events.drain(..) {
            match e {
                Event::Connected => {
                    info!("return audio connected (classroom speaker)");
                    stats.connected.store(true, Ordering::Relaxed);
                }
                Event::RtpPacket(p) => {
                    stats.packets.fetch_add(1, Ordering::Relaxed);
                    playback.push(&p.payload);
                }
                _ => {}
            }
        }
        if peer.last_input().elapsed() > SILENCE {
            break Err(anyhow::anyhow!("no word from the server for {SILENCE:?}"));
        }
    };
    stats.connected.store(false, Ordering::Relaxed);
    let _ = http::delete(&session.resource, &config.token);
    r
}

/// Play the floor pupil's voice until `stop`, reconnecting with backoff (250 ms → 4 s).
pub fn run(config: &StudioConfig, stop: &AtomicBool, stats: &ReturnAudioStats) {
    let playback = match Playback::open(config.speaker) {
        Ok(p) => p,
        Err(e) => {
            warn!("return audio disabled: {e:#}");
            return;
        }
    };
    let mut backoff = Duration::from_millis(250);
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        match session(config, &playback, stop, stats) {
            Ok(()) => return,
            Err(e) => debug!("return audio interrupted: {e:#}; retrying in {backoff:?}"),
        }
        if started.elapsed() > Duration::from_secs(10) {
            backoff = Duration::from_millis(250);
        }
        let until = Instant::now() + backoff;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
        backoff = (backoff * 2).min(Duration::from_secs(4));
    }
}
