//! The classroom studio: captures the camera, document camera, screen and microphone with
//! GStreamer, mixes them live in a `compositor` ([`Layout`]), encodes simulcast video and
//! Opus, and publishes over WHIP with str0m ([`publisher`]), reconnecting by itself.
//!
//! Threads: GStreamer's streaming threads hand encoded frames to the publisher thread over
//! a bounded channel (frames are dropped, never queued, when the network is gone); the
//! publisher sends keyframe requests and bitrate changes back as [`PipelineCommand`]s.

pub mod class_link;
pub mod config;
pub mod control;
pub mod devices;
pub mod genlock;
pub mod layout;
pub mod mixer;
pub mod pipeline;
pub mod publisher;
pub mod return_audio;
pub mod source;
pub mod timecode;

pub use config::{EncodedLayer, LayerSpec, Speaker, StudioConfig, VideoCodec};
pub use layout::Layout;
pub use pipeline::{Pipeline, PipelineCommand};
pub use source::SourceSpec;

use anyhow::Result;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A running studio: pipeline, publisher thread, return-audio thread, class-link thread.
pub struct Studio {
    pipeline: Arc<Pipeline>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Publisher counters.
    pub stats: Arc<publisher::PublisherStats>,
    /// Return-audio counters.
    pub return_audio: Arc<return_audio::ReturnAudioStats>,
    /// Class-link counters.
    pub class_link: Arc<class_link::ClassLinkStats>,
}

impl Studio {
    /// Check the sources, build and start the pipeline, start publishing.
    pub fn start(config: StudioConfig) -> Result<Studio> {
        gstreamer::init()?;
        config.validate()?;
        let (frames_tx, frames_rx) = std::sync::mpsc::sync_channel(64);
        let pipeline = Arc::new(Pipeline::start(&config, frames_tx)?);
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(publisher::PublisherStats::default());
        let return_stats = Arc::new(return_audio::ReturnAudioStats::default());
        let link_stats = Arc::new(class_link::ClassLinkStats::default());
        let mut threads = Vec::new();
        {
            let (config, stop, stats) = (config.clone(), stop.clone(), return_stats.clone());
            threads.push(std::thread::Builder::new().name("studio-return-audio".into()).spawn(move || {
                return_audio::run(&config, &stop, &stats);
            })?);
        }
        if config.follow_class {
            let (config, pipeline, stop, stats) = (config.clone(), pipeline.clone(), stop.clone(), link_stats.clone());
            threads.push(std::thread::Builder::new().name("studio-class-link".into()).spawn(move || {
                class_link::run(&config, &pipeline, &stop, &stats);
            })?);
        }
        {
            let (pipeline, stop, stats) = (pipeline.clone(), stop.clone(), stats.clone());
            threads.push(std::thread::Builder::new().name("studio-publisher".into()).spawn(move || {
                publisher::run(&config, frames_rx, &pipeline, &stop, &stats);
            })?);
        }
        Ok(Studio { pipeline, stop, threads, stats, return_audio: return_stats, class_link: link_stats })
    }

    /// The pipeline (layout, keyframes, bitrates).
    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }

    /// Stop publishing (WHIP DELETE) and set the pipeline to `Null`.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
        self.pipeline.shutdown();
    }
}

impl Drop for Studio {
    fn drop(&mut self) {
        self.stop();
    }
}
