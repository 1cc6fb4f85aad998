//! The GStreamer pipeline: inputs (each a bin of its own, with a slate beneath it) →
//! `compositor` ([`Mixer`]: layout, input health) → `tee` → one encoder per simulcast layer →
//! `appsink`; microphone → Opus → `appsink`.

use crate::config::{EncodedLayer, LayerSpec};
use crate::mixer::{Mixer, SLATE_TEXT};
use crate::{Layout, StudioConfig, VideoCodec};
use anyhow::{Context, Result, anyhow};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracing::{debug, info, warn};

/// Something the publisher asks of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineCommand {
    /// Make the encoder of this layer (all layers when `None`) emit a keyframe now.
    ForceKeyframe(Option<usize>),
    /// Change a layer's target bitrate, bit/s.
    SetBitrate(usize, u32),
}

/// The running pipeline.
pub struct Pipeline {
    pipeline: gst::Pipeline,
    mixer: Arc<Mixer>,
    video_sinks: Vec<gst_app::AppSink>,
    encoders: Vec<gst::Element>,
    /// The capsfilter before each encoder (size and rate change with the layout).
    layer_caps: Vec<gst::Element>,
    /// Layers for the camera layout, and for document/screen layouts.
    layer_sets: (Vec<LayerSpec>, Vec<LayerSpec>),
    codec: VideoCodec,
    bus_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
}

fn encoder(codec: VideoCodec, kbps: u32, fps: u32) -> String {
    match codec {
        VideoCodec::Vp8 => format!(
            "vp8enc name=enc{{i}} deadline=1 cpu-used=16 threads=1 end-usage=cbr target-bitrate={} \
             keyframe-max-dist={} lag-in-frames=0 error-resilient=default buffer-initial-size=300 \
             buffer-optimal-size=400 buffer-size=600 max-intra-bitrate=300 undershoot=95",
            kbps * 1000,
            fps * 10
        ),
        VideoCodec::H264 => format!(
            "x264enc name=enc{{i}} tune=zerolatency speed-preset=ultrafast threads=1 bitrate={kbps} \
             key-int-max={} ! video/x-h264,profile=constrained-baseline,stream-format=byte-stream,alignment=au",
            fps * 10
        ),
    }
}

/// Raw caps feeding the encoder of layer `l`.
fn layer_caps(l: &LayerSpec) -> String {
    format!("video/x-raw,width={},height={},framerate={}/1", l.width, l.height, l.fps)
}

/// The whole `gst-launch` description of the studio pipeline.
pub fn describe(config: &StudioConfig, echo_cancel_available: bool) -> Result<String> {
    let top = &config.layers[0];
    let (w, h) = (top.width, top.height);
    let mut d = format!(
        "compositor name=mix background=black start-time-selection=zero latency={slot} ! \
         video/x-raw,format=I420,width={w},height={h},framerate={MIX_FPS}/1 ! tee name=t ",
        // Until the lead's phase is known, wait for a late input one slot beyond the inputs'
        // latency; then the bus thread sets it just after the lead's frame ([`tune_timeout`]).
        slot = 1_000_000_000 / u64::from(MIX_FPS),
    );
    let inputs = [(&config.camera, "ball"), (&config.document, "smpte"), (&config.screen, "pinwheel")];
    for (i, (spec, pattern)) in inputs.iter().enumerate() {
        let src = spec.video_launch(pattern).map_err(|e| anyhow!("studio: {e}"))?;
        // Test sources produce the mix's rate themselves. A device runs at its own rate:
        // `videorate drop-only` brings a faster one down to the mix's rate without holding
        // any frame (a duplicating `videorate` holds each frame until the next one comes:
        // 55 ms capture-to-wire p50 instead of 12, measured with a device-like 30 fps test
        // source); a slower one stays slower, and the genlock fills its missing slots.
        let (rate, fps) = if spec.follows_requested_rate() {
            (String::new(), format!(",framerate={MIX_FPS}/1"))
        } else {
            (format!("videorate drop-only=true max-rate={MIX_FPS} ! "), String::new())
        };
        // Each input in a bin of its own, so that it can fail and be restarted alone.
        d += &format!(
            "( name=input{i} {src} ! videoconvert ! videoscale ! {rate}\
             video/x-raw,format=I420,width={w},height={h}{fps},pixel-aspect-ratio=1/1 ! \
             queue name=inq{i} leaky=downstream max-size-buffers=2 max-size-time=0 max-size-bytes=0 ) ! mix.sink_{i} ",
        );
    }
    // The slates, beneath the inputs (shown only when an input fails): a live test source on
    // the same clock grid as the inputs. (A frozen picture — imagefreeze — ran on its own
    // phase, and the mix waited for it: ~12 ms more capture-to-wire latency, measured.)
    for (i, text) in SLATE_TEXT.iter().enumerate() {
        d += &format!(
            "videotestsrc is-live=true pattern=solid-color foreground-color=0xff1f2a44 ! \
             video/x-raw,format=I420,width=320,height=180,framerate=30/1 ! \
             textoverlay text=\"{text}\" font-desc=\"Sans 12\" valignment=center halignment=center ! \
             queue leaky=downstream max-size-buffers=2 max-size-time=0 max-size-bytes=0 ! mix.sink_{} ",
            i + 3
        );
    }
    for (i, l) in config.layers_for(config.layout).iter().enumerate() {
        let enc = encoder(config.codec, l.kbps, l.fps).replace("{i}", &i.to_string());
        d += &format!(
            "t. ! queue leaky=downstream max-size-buffers=2 max-size-time=0 max-size-bytes=0 ! videoscale ! \
             videorate drop-only=true ! capsfilter name=lcaps{i} caps={} ! {enc} ! \
             appsink name=video{i} sync=false max-buffers=8 drop=true ",
            layer_caps(l)
        );
    }
    let mic = config.microphone.audio_launch().map_err(|e| anyhow!("studio: {e}"))?;
    let dsp = if config.echo_cancel && echo_cancel_available { "webrtcdsp ! " } else { "" };
    d += &format!(
        "{mic} name=mic ! audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=1 ! {dsp}audioconvert ! \
         opusenc bitrate={} inband-fec=true packet-loss-percentage=10 frame-size=20 audio-type=voice ! \
         appsink name=audio sync=false max-buffers=16 drop=true",
        config.audio_kbps * 1000
    );
    Ok(d)
}

/// The mix's output frame rate.
const MIX_FPS: u32 = 30;

/// How long after its lead frame is due a slot waits for a late input (the lead's own jitter
/// must fit in it: a later lead frame misses its slot, counted as late).
const TIMEOUT_MARGIN: gst::ClockTime = gst::ClockTime::from_mseconds(6);

/// Set the compositor's timeout to follow the lead's phase ([`Mixer::timeout_for`]): a slot
/// missing a slower input's frame goes out [`TIMEOUT_MARGIN`] after its lead frame.
fn tune_timeout(mix: &gst::Element, mixer: &Mixer) {
    let own = mix.property::<u64>("latency");
    let mut q = gst::query::Latency::new();
    let Some(src) = mix.static_pad("src") else { return };
    if !src.query(&mut q) {
        return;
    }
    let (live, min, _) = q.result();
    if !live {
        return;
    }
    let upstream = min.nseconds().saturating_sub(own);
    if let Some(want) = mixer.timeout_for(upstream, TIMEOUT_MARGIN.nseconds())
        && want.abs_diff(own) > 1_000_000
    {
        debug!(upstream_ms = upstream / 1_000_000, timeout_ms = want / 1_000_000, "mix timeout follows the lead");
        mix.set_property("latency", want);
    }
}

/// Write the wall-clock time of `captured` (running time) into the mixed I420 frame `b`
/// (`crate::timecode`): now, minus how long ago in running time the capture was.
fn burn_capture_time(mix: &gst::Element, b: &mut gst::BufferRef, captured: gst::ClockTime, w: usize, h: usize) {
    let (Some(clock), Some(base)) = (mix.clock(), mix.base_time()) else { return };
    let ago = clock.time().checked_sub(base).and_then(|now| now.checked_sub(captured)).unwrap_or(gst::ClockTime::ZERO);
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(std::time::Duration::from_nanos(ago.nseconds()));
    if let Ok(mut map) = b.map_writable() {
        // I420: the luma plane first, rows of the width rounded up to 4 bytes.
        let stride = (w + 3) & !3;
        crate::timecode::burn(map.as_mut_slice(), w, h, stride, wall.as_millis() as u32);
    }
}

/// Re-time a buffer arriving on compositor input `i` to the output slot the [`Mixer`] places
/// it in (its original PTS, as running time, is its capture time).
fn place_in_slot(mixer: &Mixer, i: usize, pad: &gst::Pad, mix: &gst::Element, info: &mut gst::PadProbeInfo) {
    let Some(now) = mix.current_running_time() else { return };
    let Some(segment) = pad.sticky_event::<gst::event::Segment>(0) else { return };
    let Some(segment) = segment.segment().downcast_ref::<gst::ClockTime>().cloned() else { return };
    let Some(buffer) = info.buffer_mut() else { return };
    let Some(captured) = buffer.pts().and_then(|pts| segment.to_running_time(pts)) else { return };
    let (start, duration) = mixer.place(i, now.nseconds(), captured.nseconds());
    let Some(pts) = segment.position_from_running_time(gst::ClockTime::from_nseconds(start)) else { return };
    let b = buffer.make_mut();
    b.set_pts(pts);
    b.set_duration(gst::ClockTime::from_nseconds(duration));
}

/// Caps naming the reference timestamp that carries a mixed frame's PTS through the encoders
/// (x264enc rewrites PTS: +1000 h on its own frame grid).
fn capture_caps() -> gst::Caps {
    gst::Caps::new_empty_simple("timestamp/x-ardoise-capture")
}

fn on_sample(
    sink: &gst_app::AppSink,
    layer: Option<usize>,
    frames: &SyncSender<EncodedLayer>,
) -> Result<gst::FlowSuccess, gst::FlowError> {
    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
    let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
    let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
    let pts = buffer.pts().map(|t| t.useconds()).unwrap_or(0);
    let captured = buffer
        .iter_meta::<gst::ReferenceTimestampMeta>()
        .filter(|m| m.reference().structure(0).is_some_and(|s| s.name() == "timestamp/x-ardoise-capture"))
        .map(|m| m.timestamp().useconds())
        .max() // an encoder that skipped a frame may carry its stamp along with the next one
        .unwrap_or(pts);
    let latency_us = sink.current_running_time().map(|now| now.useconds().saturating_sub(captured));
    let frame = EncodedLayer {
        layer,
        pts_us: pts,
        key: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
        at: Instant::now(),
        latency_us,
        data: Arc::from(map.as_slice()),
    };
    // Never block a streaming thread: when the publisher is behind or offline, drop.
    let _ = frames.try_send(frame);
    Ok(gst::FlowSuccess::Ok)
}

/// Ask the encoders of `layer` (all when `None`) for a keyframe, from their appsinks upstream.
fn force_keyframes(sinks: &[gst_app::AppSink], layer: Option<usize>) {
    for (i, sink) in sinks.iter().enumerate() {
        if layer.is_none_or(|l| l == i) {
            let ev = gst_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build();
            sink.send_event(ev);
        }
    }
}

impl Pipeline {
    /// Build the pipeline, connect the appsinks to `frames`, and set it `Playing`.
    pub fn start(config: &StudioConfig, frames: SyncSender<EncodedLayer>) -> Result<Pipeline> {
        // webrtcdsp cancels echo only against the far end, which a `webrtcechoprobe` on the
        // speaker's path must carry, registered before the microphone starts; the return
        // audio has no such probe yet, and webrtcdsp without it refuses to start (the whole
        // pipeline with it). Until the probe is wired, the microphone goes as captured.
        let dsp = false;
        if config.echo_cancel {
            info!("echo cancellation is not wired yet (webrtcdsp needs the speaker's echo probe)");
        }
        let description = describe(config, dsp)?;
        let pipeline = gst::parse::launch(&description)
            .context("studio: cannot build the GStreamer pipeline")?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow!("studio: not a pipeline"))?;
        let mix = pipeline.by_name("mix").context("compositor")?;
        let bin = |i: usize| pipeline.by_name(&format!("input{i}")).with_context(|| format!("input bin {i}"));
        let top = &config.layers[0];
        let mixer = Arc::new(
            Mixer::new(
                &mix,
                [bin(0)?, bin(1)?, bin(2)?],
                (top.width as i32, top.height as i32),
                MIX_FPS,
                config.layout,
            )
            .map_err(|e| anyhow!("studio: {e}"))?,
        );
        // Every frame reaching the compositor goes in the output slot its arrival calls for
        // (genlock: the lead input completes each slot; see `crate::genlock`).
        for i in 0..6 {
            let pad = mix.static_pad(&format!("sink_{i}")).with_context(|| format!("compositor pad sink_{i}"))?;
            let weak = Arc::downgrade(&mixer);
            pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
                if let (Some(mixer), Some(mix)) = (weak.upgrade(), pad.parent_element()) {
                    place_in_slot(&mixer, i, pad, &mix, info);
                }
                gst::PadProbeReturn::Ok
            });
        }
        // Stamp each mixed frame with the capture time of its lead frame (its own PTS when
        // there is none), so latency is measured from capture whatever the encoder does to
        // timestamps.
        let caps = capture_caps();
        let weak = Arc::downgrade(&mixer);
        // (Measurement only: the capture's wall-clock time burnt into the picture.)
        let timecode = config.timecode.then(|| (mix.downgrade(), top.width as usize, top.height as usize));
        mix.static_pad("src").context("compositor src")?.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let (Some(buffer), Some(mixer)) = (info.buffer_mut(), weak.upgrade()) {
                let b = buffer.make_mut();
                if let Some(pts) = b.pts() {
                    let captured = mixer.output(pts.nseconds()).map_or(pts, gst::ClockTime::from_nseconds);
                    let duration = b.duration();
                    gst::ReferenceTimestampMeta::add(b, &caps, captured, duration);
                    if let Some((mix, w, h)) = &timecode
                        && let Some(mix) = mix.upgrade()
                    {
                        burn_capture_time(&mix, b, captured, *w, *h);
                    }
                }
            }
            gst::PadProbeReturn::Ok
        });
        for i in 0..3 {
            let out = pipeline
                .by_name(&format!("inq{i}"))
                .and_then(|q| q.static_pad("src"))
                .with_context(|| format!("input queue {i}"))?;
            let weak = Arc::downgrade(&mixer);
            out.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
                match &info.data {
                    Some(gst::PadProbeData::Buffer(_)) => {
                        if let Some(m) = weak.upgrade() {
                            m.frame_from(i);
                        }
                        gst::PadProbeReturn::Ok
                    }
                    // A failed source ends its stream; the mix must not: keep EOS inside the bin.
                    Some(gst::PadProbeData::Event(e)) if e.type_() == gst::EventType::Eos => gst::PadProbeReturn::Drop,
                    _ => gst::PadProbeReturn::Ok,
                }
            });
        }
        let mut video_sinks = Vec::new();
        let mut encoders = Vec::new();
        let mut layer_caps = Vec::new();
        for i in 0..config.layers.len() {
            let sink = pipeline
                .by_name(&format!("video{i}"))
                .context("video appsink")?
                .downcast::<gst_app::AppSink>()
                .map_err(|_| anyhow!("appsink"))?;
            let tx = frames.clone();
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder().new_sample(move |s| on_sample(s, Some(i), &tx)).build(),
            );
            video_sinks.push(sink);
            encoders.push(pipeline.by_name(&format!("enc{i}")).context("encoder")?);
            layer_caps.push(pipeline.by_name(&format!("lcaps{i}")).context("layer capsfilter")?);
        }
        let audio = pipeline
            .by_name("audio")
            .context("audio appsink")?
            .downcast::<gst_app::AppSink>()
            .map_err(|_| anyhow!("appsink"))?;
        let tx = frames.clone();
        audio.set_callbacks(gst_app::AppSinkCallbacks::builder().new_sample(move |s| on_sample(s, None, &tx)).build());

        let p = Pipeline {
            pipeline,
            mixer,
            video_sinks,
            encoders,
            layer_caps,
            layer_sets: (config.layers.clone(), config.layers_for(Layout::Document).to_vec()),
            codec: config.codec,
            bus_thread: Mutex::new(None),
            stopping: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        };
        p.pipeline.set_state(gst::State::Playing).context("studio: the pipeline refused to start")?;
        // Errors surface on the bus: wait for the start to succeed or fail.
        let bus = p.pipeline.bus().context("bus")?;
        let (res, _, _) = p.pipeline.state(gst::ClockTime::from_seconds(5));
        if res.is_err() {
            if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error])
                && let gst::MessageView::Error(e) = msg.view()
            {
                return Err(anyhow!(
                    "studio: {} ({})",
                    e.error(),
                    msg.src().map(|s| s.name().to_string()).unwrap_or_default()
                ));
            }
            return Err(anyhow!("studio: the pipeline did not start"));
        }
        let weak = p.pipeline.downgrade();
        let mixer = Arc::downgrade(&p.mixer);
        let sinks = p.video_sinks.clone();
        let stopping = p.stopping.clone();
        let handle = std::thread::Builder::new().name("studio-bus".into()).spawn(move || {
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                let Some(pipeline) = weak.upgrade() else { return };
                let Some(bus) = pipeline.bus() else { return };
                drop(pipeline);
                let Some(mixer) = mixer.upgrade() else { return };
                mixer.retry_due(Instant::now());
                if let Some(mix) = weak.upgrade().and_then(|p| p.by_name("mix")) {
                    tune_timeout(&mix, &mixer);
                }
                if mixer.take_keyframe_wanted() {
                    force_keyframes(&sinks, None);
                }
                let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(200)) else { continue };
                match msg.view() {
                    gst::MessageView::Error(e) if msg.src().and_then(|s| mixer.input_of(s)).is_some() => {
                        let i = msg.src().and_then(|s| mixer.input_of(s)).unwrap_or(0);
                        mixer.input_failed(i, &e.error().to_string());
                    }
                    gst::MessageView::Error(e) => {
                        warn!(source = %msg.src().map(|s| s.path_string().to_string()).unwrap_or_default(), "GStreamer error: {} ({:?})", e.error(), e.debug());
                    }
                    gst::MessageView::Warning(w) => {
                        warn!(source = %msg.src().map(|s| s.path_string().to_string()).unwrap_or_default(), "GStreamer warning: {}", w.error());
                    }
                    gst::MessageView::Eos(_) => return,
                    _ => {}
                }
            }
        })?;
        *p.bus_thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        info!(layout = %config.layout, codec = ?config.codec, layers = config.layers.len(), "studio pipeline playing");
        Ok(p)
    }

    /// Switch layout live, with a keyframe on every layer so pupils see the change at once.
    pub fn set_layout(&self, layout: Layout) {
        let before = self.mixer.layout();
        self.mixer.set_layout(layout);
        if before.shows_content() != layout.shows_content() {
            // Document/screen: favour resolution over frame rate (the encoders restart on the
            // new caps with a keyframe).
            let set = if layout.shows_content() { &self.layer_sets.1 } else { &self.layer_sets.0 };
            for (filter, l) in self.layer_caps.iter().zip(set) {
                if let Ok(caps) = layer_caps(l).parse::<gst::Caps>() {
                    filter.set_property("caps", &caps);
                }
            }
        }
        self.command(PipelineCommand::ForceKeyframe(None));
        info!(%layout, "layout switched");
    }

    /// The current layout.
    pub fn layout(&self) -> Layout {
        self.mixer.layout()
    }

    /// The mixer (input health, simulated unplugging).
    pub fn mixer(&self) -> &Mixer {
        &self.mixer
    }

    /// Number of video layers.
    pub fn layers(&self) -> usize {
        self.video_sinks.len()
    }

    /// Keyframes and bitrates.
    pub fn command(&self, cmd: PipelineCommand) {
        match cmd {
            PipelineCommand::ForceKeyframe(layer) => force_keyframes(&self.video_sinks, layer),
            PipelineCommand::SetBitrate(layer, bps) => {
                if let Some(enc) = self.encoders.get(layer) {
                    match self.codec {
                        VideoCodec::Vp8 => enc.set_property("target-bitrate", bps as i32),
                        VideoCodec::H264 => enc.set_property("bitrate", (bps / 1000).max(1)),
                    }
                }
            }
        }
    }

    /// Stop: `Null` state, bus thread ends.
    pub fn shutdown(&self) {
        self.stopping.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.pipeline.set_state(gst::State::Null);
        if let Some(h) = self.bus_thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
    }
}
