//! The class recorder: writes the programme the SFU copies for it (every simulcast layer and
//! the Opus audio, see `ardoise_sfu::programme_tap`) to disk, without transcoding.
//!
//! One [`Writer`] per recording, on its own thread. Each video layer gets its own GStreamer
//! pipeline, made when that layer's first packet arrives:
//!
//! ```text
//! appsrc (RTP VP8 or H.264) → rtpvp8depay | rtph264depay (waits for a keyframe) ─┐
//! appsrc (RTP Opus) → rtpopusdepay → capssetter (rate) ─────────────────────────┴→ splitmuxsink
//!     webmmux: layer<rank>-<n>.webm (VP8)  |  mp4mux, fragmented: layer<rank>-<n>.mp4 (H.264)
//! ```
//!
//! Rules:
//! - segments are closed every segment length (at a keyframe), so a crash loses at most the
//!   segment being written;
//! - each segment gets a line in its layer's index, `layer<rank>.index`, when the next one
//!   opens (or the recording ends): `<file> <start ns> <end ns>` on the recording's timeline
//!   (the files keep those timestamps), which is what a player seeks and switches layers with;
//! - a stream's timestamps are its RTP timestamps, anchored where the publisher's RTCP sender
//!   reports place its first packet ([`Timeline`]: the voice and every layer in sync as
//!   captured, on one timeline from the start of the recording), or at its arrival before a
//!   report came; a stream that comes back with another SSRC (the teacher reconnected, a new
//!   RTP timeline) is anchored afresh the same way: the recording goes on, on one timeline,
//!   with the time the teacher was away as a gap;
//! - a layer's audio reaches the muxer before its video: the muxer writes its headers at its
//!   first data, and refuses a track whose format comes after them (the layer would write
//!   nothing at all). A new layer's video waits, held in memory, until its first audio
//!   buffer has passed the audio queue ([`AUDIO_WAIT`] at most, for a programme without
//!   audio);
//! - each stream's timestamps only go forward into the muxer: a packet whose timestamp goes
//!   back (sequence order and timestamp order disagree) is dropped and logged, since the
//!   muxer would write it out of order and a browser refuses the whole segment ("a block
//!   with a timecode before the previous block"); a stream that comes back with a new SSRC
//!   is placed after what was written of the one before, so its first keyframe is kept;
//! - nothing waits on the media path: the SFU hands batches over a bounded queue and drops a
//!   batch when it is full; the writer never blocks the worker;
//! - the files keep the programme's codec ([`Format`]): VP8 in WebM, H.264 in MP4 (what iPad
//!   Safari plays; each closed MP4 segment's Opus header is put right, see [`opus_in_mp4`]);
//!   another codec is refused at its first packet (logged).

use anyhow::{Context, Result, anyhow};
use ardoise_sfu::{TapStream, TappedPacket};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};
use tracing::{info, warn};

pub mod opus_in_mp4;
mod reorder;
mod timeline;
pub use reorder::{REORDER_WINDOW, Reorder};
pub use timeline::{MAX_SKEW, Place, Timeline};

/// How long a new layer's video waits for its audio to reach the muxer (see the module's
/// rules) before it is written without.
pub const AUDIO_WAIT: Duration = Duration::from_secs(2);

/// How a layer is written, by the programme's codec (no transcoding either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// VP8 and Opus in WebM (`.webm`).
    WebmVp8,
    /// H.264 and Opus in fragmented MP4 (`.mp4`): what iPad Safari plays.
    Mp4H264,
}

impl Format {
    /// The format for a programme in `codec`.
    pub fn of(codec: str0m::format::Codec) -> Result<Format> {
        match codec {
            str0m::format::Codec::Vp8 => Ok(Format::WebmVp8),
            str0m::format::Codec::H264 => Ok(Format::Mp4H264),
            other => Err(anyhow!("a {other:?} programme is not recorded (VP8 or H.264)")),
        }
    }

    /// The files' extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::WebmVp8 => "webm",
            Format::Mp4H264 => "mp4",
        }
    }
}

/// What a finished recording wrote.
#[derive(Debug, Clone, Default)]
pub struct Written {
    /// Video layers written (their segments are listed by the layers' indexes).
    pub layers: usize,
    /// From the first packet to the last, seconds.
    pub duration_s: f64,
    /// Packets written.
    pub packets: u64,
    /// Why the writer stopped by itself, if it did (a file could not be written: the disk is
    /// full, say). What was written before stays.
    pub stopped: Option<Stopped>,
}

/// Why a writer stopped by itself.
#[derive(Debug, Clone)]
pub struct Stopped {
    /// The recordings' disk is full. A full disk fails whichever file operation comes first
    /// (a write, the flush of a closing segment, a muxer's seek back to its header), so this
    /// is decided by GStreamer's "no space" error or by the disk's free space, never by the
    /// kind of operation that failed.
    pub disk_full: bool,
    /// GStreamer's error.
    pub why: String,
}

/// Below this many free bytes, a disk whose write failed counts as full.
const FULL_BELOW: u64 = 1 << 20;

/// Bytes that an unprivileged writer may still write on the file system of `dir`.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

/// One stream's RTP timestamps unwrapped and anchored to the recording's start.
#[derive(Debug, Clone, Copy)]
struct Clock {
    rate: u64,
    first_ts: u64,
    last_ts: u32,
    cycles: u64,
    offset: Duration,
}

impl Clock {
    fn new(rate: u64, ts: u32, offset: Duration) -> Clock {
        Clock { rate, first_ts: u64::from(ts), last_ts: ts, cycles: 0, offset }
    }

    /// The presentation time of a packet with RTP timestamp `ts` (never before the start).
    fn pts(&mut self, ts: u32) -> gst::ClockTime {
        // A jump of more than half the range backwards is a wrap forwards.
        if ts < self.last_ts && self.last_ts - ts > u32::MAX / 2 {
            self.cycles += 1;
        } else if ts > self.last_ts && ts - self.last_ts > u32::MAX / 2 && self.cycles > 0 {
            // A late packet from before a wrap.
            return self.at(self.cycles - 1, ts);
        }
        self.last_ts = ts;
        self.at(self.cycles, ts)
    }

    fn at(&self, cycles: u64, ts: u32) -> gst::ClockTime {
        let ext = (cycles << 32) + u64::from(ts);
        let ticks = ext.saturating_sub(self.first_ts);
        let ns = self.offset.as_nanos() as u64 + ticks * 1_000_000_000 / self.rate;
        gst::ClockTime::from_nseconds(ns)
    }
}

/// One video layer's pipeline.
struct LayerPipeline {
    rank: usize,
    pipeline: gst::Pipeline,
    /// The segment being written: its file name and start (running time, ns).
    open: Option<(String, u64)>,
    video: gst_app::AppSrc,
    audio: gst_app::AppSrc,
    video_clock: Clock,
    /// The SSRC the layer's video comes from now.
    video_ssrc: u32,
    /// The latest video timestamp written (ns): where the last segment ends.
    last_pts: u64,
    /// Its pipeline reported an error (it is stopped without waiting for its end).
    failed: bool,
    /// The last audio and video timestamps handed to the pipeline: each stream's timestamps
    /// only go forward (a packet that goes back is dropped: the muxer would write it out of
    /// order, and a browser refuses the whole segment).
    audio_written: Option<gst::ClockTime>,
    video_written: Option<gst::ClockTime>,
    audio_clock: Option<Clock>,
    /// Set when the first audio buffer has passed the audio queue, towards the muxer.
    audio_through: Arc<AtomicBool>,
    /// Video held until then (or until [`AUDIO_WAIT`] after `made`).
    held: Vec<gst::Buffer>,
    /// The video in sequence order.
    reorder: Reorder<gst::Buffer>,
    made: Instant,
}

/// Writes one recording into a directory.
pub struct Writer {
    dir: PathBuf,
    started: Instant,
    segment: Duration,
    layers: HashMap<usize, LayerPipeline>,
    /// The audio's SSRC, first RTP timestamp and its place on the timeline.
    audio_first: Option<(u32, u32, Duration)>,
    /// The audio in sequence order.
    audio_reorder: Reorder<TappedPacket>,
    /// Where each stream starts (sender reports).
    timeline: Timeline,
    first: Option<Instant>,
    last: Option<Instant>,
    packets: u64,
}

impl Writer {
    /// A writer into `dir` (created), the recording having started at `started`, closing a
    /// segment file every `segment`.
    pub fn new(dir: &Path, started: Instant, segment: Duration) -> Result<Writer> {
        gst::init().context("GStreamer")?;
        std::fs::create_dir_all(dir).with_context(|| format!("recording directory {}", dir.display()))?;
        Ok(Writer {
            dir: dir.to_owned(),
            started,
            segment,
            layers: HashMap::new(),
            audio_first: None,
            audio_reorder: Reorder::default(),
            timeline: Timeline::default(),
            first: None,
            last: None,
            packets: 0,
        })
    }

    /// Write the batches of `rx` until its sender is dropped, or until a file cannot be
    /// written (the disk is full: [`Written::stopped`]), then close every file.
    pub fn run(mut self, rx: Receiver<Vec<TappedPacket>>) -> Result<Written> {
        let mut stopped = None;
        'batches: for batch in rx {
            for p in batch {
                if let Err(e) = self.push(&p) {
                    warn!(dir = %self.dir.display(), "recording: {e:#}");
                }
            }
            for layer in self.layers.values_mut() {
                let bus = layer.pipeline.bus().ok_or_else(|| anyhow!("no bus"))?;
                while let Some(m) = bus.pop_filtered(&[gst::MessageType::Element, gst::MessageType::Error]) {
                    if let gst::MessageView::Error(e) = m.view() {
                        let no_space = e.error().matches(gst::ResourceError::NoSpaceLeft)
                            || free_bytes(&self.dir).is_some_and(|free| free < FULL_BELOW);
                        warn!(dir = %self.dir.display(), rank = layer.rank, disk_full = no_space,
                            "recording stopped: {} ({:?})", e.error(), e.debug());
                        layer.failed = true;
                        stopped = Some(Stopped { disk_full: no_space, why: e.error().to_string() });
                        break 'batches;
                    }
                    layer.on_message(&self.dir, &m);
                }
            }
        }
        let mut written = self.finish()?;
        written.stopped = stopped;
        Ok(written)
    }

    fn push(&mut self, p: &TappedPacket) -> Result<()> {
        let offset = p.at.saturating_duration_since(self.started);
        self.first.get_or_insert(p.at);
        self.last = Some(p.at);
        match p.stream {
            TapStream::Audio => {
                let mut ready = Vec::new();
                if self.audio_first.is_some_and(|(ssrc, ..)| ssrc != p.ssrc) {
                    // The audio came back on a new stream: what waits of the old one goes
                    // first, then every layer's audio is anchored afresh.
                    self.audio_reorder.flush(&mut ready);
                    for a in ready.drain(..) {
                        self.push_audio(&a)?;
                    }
                    self.audio_first = None;
                    for layer in self.layers.values_mut() {
                        layer.audio_clock = None;
                    }
                }
                if self.audio_first.is_none() {
                    // A stream that comes back goes on after what was written (its placement
                    // may fall up to a second before: the timestamp guards would drop it).
                    let written = self.layers.values().filter_map(|l| l.audio_written).max();
                    let after = written.map_or(Duration::ZERO, |w| Duration::from_nanos(w.nseconds()) + AUDIO_FRAME);
                    let at = self.place("audio", p, 48_000, offset).max(after);
                    self.audio_first = Some((p.ssrc, p.ts, at));
                }
                self.audio_reorder.push(p.seq, p.at, p.clone(), &mut ready);
                for a in ready {
                    self.push_audio(&a)?;
                }
            }
            TapStream::Video { rank, .. } => {
                if !self.layers.contains_key(&rank) {
                    let format = Format::of(p.codec)?;
                    let at = self.place("video", p, 90_000, offset);
                    let layer = self.layer(rank, format, p.ssrc, p.ts, at)?;
                    self.layers.insert(rank, layer);
                }
                if self.layers[&rank].video_ssrc != p.ssrc {
                    let written = self.layers[&rank].video_written;
                    let after = written.map_or(Duration::ZERO, |w| Duration::from_nanos(w.nseconds()) + VIDEO_FRAME);
                    let at = self.place("video", p, 90_000, offset).max(after);
                    let layer = self.layers.get_mut(&rank).expect("made above");
                    // What waits of the old stream goes first.
                    let mut ready = Vec::new();
                    layer.reorder.flush(&mut ready);
                    for b in ready {
                        layer.push_video(b, p.at)?;
                    }
                    layer.video_ssrc = p.ssrc;
                    layer.video_clock = Clock::new(90_000, p.ts, at);
                }
                let layer = self.layers.get_mut(&rank).expect("made above");
                let pts = layer.video_clock.pts(p.ts);
                layer.last_pts = layer.last_pts.max(pts.nseconds());
                let mut ready = Vec::new();
                layer.reorder.push(p.seq, p.at, rtp_buffer(96, p, pts), &mut ready);
                for b in ready {
                    layer.push_video(b, p.at)?;
                }
            }
        }
        self.packets += 1;
        Ok(())
    }

    /// Where a new stream starts (its first packet `p`, arrived `arrival` in), logged.
    fn place(&mut self, kind: &str, p: &TappedPacket, rate: u32, arrival: Duration) -> Duration {
        let place = self.timeline.place(p.ts, rate, p.sender, arrival);
        info!(
            dir = %self.dir.display(),
            ssrc = p.ssrc,
            at_ms = place.at.as_millis() as u64,
            arrival_ms = arrival.as_millis() as u64,
            "recording: {kind} stream placed {}",
            if place.by_report { "by its sender report" } else { "at its arrival (no sender report yet)" }
        );
        place.at
    }

    /// One audio packet, in order, to every layer.
    fn push_audio(&mut self, p: &TappedPacket) -> Result<()> {
        let Some((_, first_ts, first_offset)) = self.audio_first else { return Ok(()) };
        for layer in self.layers.values_mut() {
            let clock = layer.audio_clock.get_or_insert_with(|| Clock::new(48_000, first_ts, first_offset));
            let pts = clock.pts(p.ts);
            if layer.audio_written.is_some_and(|last| pts <= last) {
                warn!(rank = layer.rank, seq = p.seq, ts = p.ts, pts = ?pts, last = ?layer.audio_written,
                    "recording: an audio packet goes back in time; dropped (the muxer would write it out of order)");
                continue;
            }
            layer.audio_written = Some(pts);
            layer.audio.push_buffer(rtp_buffer(111, p, pts)).map_err(|e| anyhow!("push: {e:?}"))?;
        }
        Ok(())
    }

    fn layer(&self, rank: usize, format: Format, ssrc: u32, ts: u32, offset: Duration) -> Result<LayerPipeline> {
        let pattern = self.dir.join(format!("layer{rank}-%05d.{}", format.extension()));
        // (encoding name, depayloader, muxer); h264parse gives the picture size, which the MP4
        // muxer needs in its caps.
        let (encoding, depay, muxer) = match format {
            Format::WebmVp8 => ("VP8", "rtpvp8depay wait-for-keyframe=true request-keyframe=false", "webmmux"),
            Format::Mp4H264 => {
                ("H264", "rtph264depay wait-for-keyframe=true request-keyframe=false ! h264parse", "mp4mux")
            }
        };
        let description = format!(
            "appsrc name=video format=time is-live=true do-timestamp=false \
               caps=application/x-rtp,media=video,encoding-name={encoding},clock-rate=90000,payload=96 \
             ! {depay} ! queue ! mux.video \
             appsrc name=audio format=time is-live=true do-timestamp=false \
               caps=application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,payload=111 \
             ! rtpopusdepay ! capssetter caps=audio/x-opus,rate=48000 ! queue name=audio_queue ! mux.audio_0 \
             splitmuxsink name=mux muxer={muxer} max-size-time={} location=\"{}\"",
            self.segment.as_nanos(),
            pattern.display()
        );
        let pipeline = gst::parse::launch(&description)
            .context("recording pipeline")?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow!("not a pipeline"))?;
        if format == Format::Mp4H264 {
            // Fragmented (a fragment a second): a Media Source plays it, and a crash loses
            // only the fragment being written.
            let split = pipeline.by_name("mux").ok_or_else(|| anyhow!("no splitmuxsink"))?;
            split.property::<gst::Element>("muxer").set_property("fragment-duration", 1000u32);
        }
        let src = |name: &str| -> Result<gst_app::AppSrc> {
            pipeline
                .by_name(name)
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
                .ok_or_else(|| anyhow!("no {name} source"))
        };
        let (video, audio) = (src("video")?, src("audio")?);
        let audio_through = Arc::new(AtomicBool::new(false));
        let flag = audio_through.clone();
        pipeline
            .by_name("audio_queue")
            .and_then(|q| q.static_pad("src"))
            .ok_or_else(|| anyhow!("no audio queue"))?
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                flag.store(true, Ordering::Release);
                gst::PadProbeReturn::Remove
            });
        pipeline.set_state(gst::State::Playing).context("start the recording pipeline")?;
        info!(dir = %self.dir.display(), rank, "recording a layer");
        Ok(LayerPipeline {
            rank,
            pipeline,
            open: None,
            video,
            audio,
            video_clock: Clock::new(90_000, ts, offset),
            video_ssrc: ssrc,
            last_pts: 0,
            failed: false,
            audio_written: None,
            video_written: None,
            audio_clock: None,
            audio_through,
            held: Vec::new(),
            reorder: Reorder::default(),
            made: Instant::now(),
        })
    }

    fn finish(mut self) -> Result<Written> {
        // What waits for a missing packet is written as it is.
        let mut audio = Vec::new();
        self.audio_reorder.flush(&mut audio);
        for a in audio {
            self.push_audio(&a)?;
        }
        let end = self.last.unwrap_or(self.started);
        for layer in self.layers.values_mut() {
            let mut video = Vec::new();
            layer.reorder.flush(&mut video);
            for b in video {
                layer.push_video(b, end)?;
            }
        }
        let layers = self.layers.len();
        for (rank, layer) in self.layers {
            let _ = layer.video.end_of_stream();
            let _ = layer.audio.end_of_stream();
            let bus = layer.pipeline.bus().ok_or_else(|| anyhow!("no bus"))?;
            let mut layer = layer;
            // The last segments' messages come before the end of stream (none comes from a
            // pipeline that failed).
            let wait = if layer.failed { 0 } else { 10 };
            while let Some(m) = bus.timed_pop_filtered(
                gst::ClockTime::from_seconds(wait),
                &[gst::MessageType::Eos, gst::MessageType::Error, gst::MessageType::Element],
            ) {
                match m.view() {
                    gst::MessageView::Element(_) => layer.on_message(&self.dir, &m),
                    gst::MessageView::Error(e) => {
                        warn!(rank, "recording: {}", e.error());
                        break;
                    }
                    _ => break,
                }
            }
            let _ = layer.pipeline.set_state(gst::State::Null);
            layer.close_index(&self.dir);
        }
        let duration_s = match (self.first, self.last) {
            (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64(),
            _ => 0.0,
        };
        Ok(Written { layers, duration_s, packets: self.packets, stopped: None })
    }
}

/// One Opus frame, and one video frame at the fastest layer's rate: a stream that comes back
/// starts at least this long after what was written of the one before.
const AUDIO_FRAME: Duration = Duration::from_millis(20);
const VIDEO_FRAME: Duration = Duration::from_millis(33);

/// How long a join may go without progress before it is given up.
pub const JOIN_STALL: Duration = Duration::from_secs(10);

/// Join a layer's closed segments (those in its index, in order) into one file at `out`
/// (WebM, or MP4 when `out` ends in `.mp4`), without transcoding: the file a pupil
/// downloads for offline viewing. Written beside `out` first, then renamed: `out` is whole
/// or absent.
pub fn join_layer(dir: &Path, rank: usize, out: &Path) -> Result<()> {
    gst::init().context("GStreamer")?;
    let index = std::fs::read_to_string(dir.join(format!("layer{rank}.index")))
        .with_context(|| format!("layer {rank} has no closed segment"))?;
    let files: Vec<String> =
        index.lines().filter_map(|l| l.split(' ').next()).map(|name| dir.join(name).display().to_string()).collect();
    if files.is_empty() {
        return Err(anyhow!("layer {rank} has no closed segment"));
    }
    let part = out.with_extension("part");
    // MP4 with its index first, so that a player starts before the whole file is read.
    let muxer = if out.extension().is_some_and(|e| e == "mp4") { "mp4mux faststart=true" } else { "webmmux" };
    let pipeline = gst::parse::launch(&format!(
        "splitmuxsrc name=src src.video_0 ! queue ! mux.video_0 src.audio_0 ! queue ! mux.audio_0 \
         {muxer} name=mux ! filesink location=\"{}\"",
        part.display()
    ))
    .context("join pipeline")?
    .downcast::<gst::Pipeline>()
    .map_err(|_| anyhow!("not a pipeline"))?;
    let src = pipeline.by_name("src").ok_or_else(|| anyhow!("no splitmuxsrc"))?;
    let segments = files.len() as u32;
    src.connect("format-location", false, move |_| Some(files.to_value()));
    pipeline.set_state(gst::State::Playing).context("start joining")?;
    let bus = pipeline.bus().ok_or_else(|| anyhow!("no bus"))?;
    // A join that stops moving (its position and its output both still for JOIN_STALL) is
    // given up: the caller says "try again" rather than holding a download for minutes.
    // splitmuxsrc opens every segment before the first buffer flows (no position, nothing
    // written yet): that phase gets a second per segment more.
    let opening = JOIN_STALL + Duration::from_secs(1) * segments;
    let (mut seen, mut moved) = ((None, 0), Instant::now());
    let end = loop {
        let m = bus
            .timed_pop_filtered(gst::ClockTime::from_mseconds(500), &[gst::MessageType::Eos, gst::MessageType::Error]);
        if m.is_some() {
            break m;
        }
        let now = (pipeline.query_position::<gst::ClockTime>(), std::fs::metadata(&part).map_or(0, |m| m.len()));
        if now != seen {
            (seen, moved) = (now, Instant::now());
        } else if moved.elapsed() > if now.0.is_none() { opening } else { JOIN_STALL } {
            warn!(rank, position = ?now.0, bytes = now.1, "joining a layer: no progress for {JOIN_STALL:?}; given up");
            break None;
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    match end.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {
            if out.extension().is_some_and(|e| e == "mp4") {
                opus_in_mp4::fix_file(&part).context("fix the joined file's Opus header")?;
            }
            std::fs::rename(&part, out).context("rename the joined file")
        }
        Some(gst::MessageView::Error(e)) => {
            let _ = std::fs::remove_file(&part);
            Err(anyhow!("joining layer {rank}: {}", e.error()))
        }
        _ => {
            let _ = std::fs::remove_file(&part);
            Err(anyhow!("joining layer {rank} stopped moving"))
        }
    }
}

impl LayerPipeline {
    /// Push a video buffer, or hold it while the layer's audio has not reached the muxer.
    fn push_video(&mut self, buffer: gst::Buffer, now: Instant) -> Result<()> {
        let pts = buffer.pts();
        if pts.is_some_and(|pts| self.video_written.is_some_and(|last| pts < last)) {
            warn!(rank = self.rank, pts = ?pts, last = ?self.video_written,
                "recording: a video packet goes back in time; dropped (the muxer would write it out of order)");
            return Ok(());
        }
        self.video_written = pts.or(self.video_written);
        let through = self.audio_through.load(Ordering::Acquire);
        if !through && now.saturating_duration_since(self.made) < AUDIO_WAIT {
            self.held.push(buffer);
            return Ok(());
        }
        for b in self.held.drain(..).chain(std::iter::once(buffer)) {
            self.video.push_buffer(b).map_err(|e| anyhow!("push: {e:?}"))?;
        }
        Ok(())
    }

    /// A segment opened (splitmuxsink's element message, with its start): the one before it
    /// ends there, and gets its line in the layer's index. (The messages that say a segment
    /// was closed come late, with a later running time: they are not used.)
    fn on_message(&mut self, dir: &Path, m: &gst::Message) {
        let Some(st) = m.structure() else { return };
        if st.name().as_str() != "splitmuxsink-fragment-opened" {
            return;
        }
        let Some(name) = st
            .get::<String>("location")
            .ok()
            .and_then(|l| Path::new(&l).file_name().and_then(|n| n.to_str()).map(str::to_owned))
        else {
            return;
        };
        let at = st
            .get::<gst::ClockTime>("running-time")
            .map(|t| t.nseconds())
            .or_else(|_| st.get::<u64>("running-time"))
            .unwrap_or(0);
        if let Some((previous, start)) = self.open.replace((name, at)) {
            self.index(dir, &previous, start, at);
        }
    }

    /// The end of the recording: the last segment ends at the last frame written; one opened
    /// after it (a header, no frame) is deleted.
    fn close_index(&mut self, dir: &Path) {
        match self.open.take() {
            Some((name, start)) if start < self.last_pts => {
                let end = self.last_pts;
                self.index(dir, &name, start, end);
            }
            Some((name, _)) => {
                let _ = std::fs::remove_file(dir.join(name));
            }
            None => {}
        }
    }

    fn index(&self, dir: &Path, name: &str, start: u64, end: u64) {
        if name.ends_with(".mp4")
            && let Err(e) = opus_in_mp4::fix_file(&dir.join(name))
        {
            warn!(file = name, "recording: cannot fix the segment's Opus header: {e}");
        }
        let index = dir.join(format!("layer{}.index", self.rank));
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&index)
            .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{name} {start} {end}\n").as_bytes()));
        if let Err(e) = written {
            warn!(index = %index.display(), "recording: cannot index a segment: {e}");
        }
    }
}

/// One RTP packet (header rebuilt around the payload), at `pts`.
fn rtp_buffer(pt: u8, p: &TappedPacket, pts: gst::ClockTime) -> gst::Buffer {
    let mut bytes = Vec::with_capacity(12 + p.payload.len());
    bytes.push(0x80);
    bytes.push((u8::from(p.marker) << 7) | pt);
    bytes.extend_from_slice(&(p.seq as u16).to_be_bytes());
    bytes.extend_from_slice(&p.ts.to_be_bytes());
    bytes.extend_from_slice(&0x4172_646fu32.to_be_bytes());
    bytes.extend_from_slice(&p.payload);
    let mut buffer = gst::Buffer::from_mut_slice(bytes);
    buffer.get_mut().expect("a new buffer").set_pts(pts);
    buffer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_timestamps_unwrap_and_anchor_at_the_first_packet() {
        let mut c = Clock::new(90_000, u32::MAX - 89_999, Duration::from_secs(2));
        assert_eq!(c.pts(u32::MAX - 89_999), gst::ClockTime::from_seconds(2));
        assert_eq!(c.pts(0), gst::ClockTime::from_nseconds(2_000_000_000 + 1_000_000_000 * 90_000 / 90_000));
        assert_eq!(c.pts(90_000), gst::ClockTime::from_seconds(4), "after the wrap");
        assert_eq!(
            c.pts(u32::MAX - 44_999),
            gst::ClockTime::from_nseconds(2_500_000_000),
            "a late packet from before it"
        );
    }
}
