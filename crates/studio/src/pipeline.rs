//! The GStreamer pipeline: inputs → `compositor` (layout) → `tee` → one encoder per
//! simulcast layer → `appsink`; microphone → Opus → `appsink`.

use crate::config::EncodedLayer;
use crate::layout::{CAMERA, DOCUMENT, SCREEN};
use crate::{Layout, StudioConfig, VideoCodec};
use anyhow::{Context, Result, anyhow};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracing::{info, warn};

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
    mix_pads: [gst::Pad; 3],
    video_sinks: Vec<gst_app::AppSink>,
    encoders: Vec<gst::Element>,
    codec: VideoCodec,
    size: (i32, i32),
    layout: Mutex<Layout>,
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

/// The whole `gst-launch` description of the studio pipeline.
pub fn describe(config: &StudioConfig, echo_cancel_available: bool) -> Result<String> {
    let top = &config.layers[0];
    let (w, h) = (top.width, top.height);
    let mut d = format!(
        "compositor name=mix background=black ! video/x-raw,format=I420,width={w},height={h},framerate=30/1 ! tee name=t "
    );
    let inputs = [(&config.camera, "ball"), (&config.document, "smpte"), (&config.screen, "pinwheel")];
    for (i, (spec, pattern)) in inputs.iter().enumerate() {
        let src = spec.video_launch(pattern).map_err(|e| anyhow!("studio: {e}"))?;
        // Every input at the output rate: a slower input made the VP8 path wait (measured:
        // 15 fps document → 123 ms capture-to-wire instead of 42 ms).
        let fps = 30;
        d += &format!(
            "{src} name=src{i} ! videoconvert ! videoscale ! videorate ! \
             video/x-raw,width={w},height={h},framerate={fps}/1,pixel-aspect-ratio=1/1 ! \
             queue leaky=downstream max-size-buffers=2 max-size-time=0 max-size-bytes=0 ! mix.sink_{i} "
        );
    }
    for (i, l) in config.layers.iter().enumerate() {
        let enc = encoder(config.codec, l.kbps, l.fps).replace("{i}", &i.to_string());
        d += &format!(
            "t. ! queue leaky=downstream max-size-buffers=2 max-size-time=0 max-size-bytes=0 ! videoscale ! \
             videorate drop-only=true ! video/x-raw,width={},height={},framerate={}/1 ! {enc} ! \
             appsink name=video{i} sync=false max-buffers=8 drop=true ",
            l.width, l.height, l.fps
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

fn on_sample(sink: &gst_app::AppSink, layer: Option<usize>, frames: &SyncSender<EncodedLayer>) -> Result<gst::FlowSuccess, gst::FlowError> {
    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
    let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
    let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
    let pts = buffer.pts().map(|t| t.useconds()).unwrap_or(0);
    let latency_us = sink.current_running_time().map(|now| now.useconds().saturating_sub(pts));
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

impl Pipeline {
    /// Build the pipeline, connect the appsinks to `frames`, and set it `Playing`.
    pub fn start(config: &StudioConfig, frames: SyncSender<EncodedLayer>) -> Result<Pipeline> {
        let dsp = gst::ElementFactory::find("webrtcdsp").is_some();
        if config.echo_cancel && !dsp {
            info!("webrtcdsp not installed: no echo cancellation / noise suppression");
        }
        let description = describe(config, dsp)?;
        let pipeline = gst::parse::launch(&description)
            .context("studio: cannot build the GStreamer pipeline")?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow!("studio: not a pipeline"))?;
        let mix = pipeline.by_name("mix").context("compositor")?;
        let pad = |i: usize| mix.static_pad(&format!("sink_{i}")).with_context(|| format!("compositor pad {i}"));
        let mix_pads = [pad(0)?, pad(1)?, pad(2)?];
        let mut video_sinks = Vec::new();
        let mut encoders = Vec::new();
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
        }
        let audio = pipeline
            .by_name("audio")
            .context("audio appsink")?
            .downcast::<gst_app::AppSink>()
            .map_err(|_| anyhow!("appsink"))?;
        let tx = frames.clone();
        audio.set_callbacks(gst_app::AppSinkCallbacks::builder().new_sample(move |s| on_sample(s, None, &tx)).build());

        let top = &config.layers[0];
        let p = Pipeline {
            pipeline,
            mix_pads,
            video_sinks,
            encoders,
            codec: config.codec,
            size: (top.width as i32, top.height as i32),
            layout: Mutex::new(config.layout),
            bus_thread: Mutex::new(None),
            stopping: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        };
        p.apply_layout(config.layout);
        p.pipeline.set_state(gst::State::Playing).context("studio: the pipeline refused to start")?;
        // Errors surface on the bus: wait for the start to succeed or fail.
        let bus = p.pipeline.bus().context("bus")?;
        let (res, _, _) = p.pipeline.state(gst::ClockTime::from_seconds(5));
        if res.is_err() {
            if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
                if let gst::MessageView::Error(e) = msg.view() {
                    return Err(anyhow!("studio: {} ({})", e.error(), msg.src().map(|s| s.name().to_string()).unwrap_or_default()));
                }
            }
            return Err(anyhow!("studio: the pipeline did not start"));
        }
        let weak = p.pipeline.downgrade();
        let stopping = p.stopping.clone();
        let handle = std::thread::Builder::new().name("studio-bus".into()).spawn(move || {
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                let Some(pipeline) = weak.upgrade() else { return };
                let Some(bus) = pipeline.bus() else { return };
                drop(pipeline);
                let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(200)) else { continue };
                match msg.view() {
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

    fn apply_layout(&self, layout: Layout) {
        let rects = layout.rects(self.size.0, self.size.1);
        for i in [CAMERA, DOCUMENT, SCREEN] {
            let pad = &self.mix_pads[i];
            match rects[i] {
                Some(r) => {
                    pad.set_property("xpos", r.x);
                    pad.set_property("ypos", r.y);
                    pad.set_property("width", r.w);
                    pad.set_property("height", r.h);
                    pad.set_property("zorder", r.z);
                    pad.set_property("alpha", 1.0f64);
                }
                None => pad.set_property("alpha", 0.0f64),
            }
        }
    }

    /// Switch layout live, with a keyframe on every layer so pupils see the change at once.
    pub fn set_layout(&self, layout: Layout) {
        *self.layout.lock().unwrap_or_else(|e| e.into_inner()) = layout;
        self.apply_layout(layout);
        self.command(PipelineCommand::ForceKeyframe(None));
        info!(%layout, "layout switched");
    }

    /// The current layout.
    pub fn layout(&self) -> Layout {
        *self.layout.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of video layers.
    pub fn layers(&self) -> usize {
        self.video_sinks.len()
    }

    /// Keyframes and bitrates.
    pub fn command(&self, cmd: PipelineCommand) {
        match cmd {
            PipelineCommand::ForceKeyframe(layer) => {
                for (i, sink) in self.video_sinks.iter().enumerate() {
                    if layer.is_none_or(|l| l == i) {
                        let ev = gst_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build();
                        sink.send_event(ev);
                    }
                }
            }
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
