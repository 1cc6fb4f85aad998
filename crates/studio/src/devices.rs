//! Capture devices: listing (`ardoise studio --list-devices`) and checking configured ones.

use crate::SourceSpec;
use anyhow::{Result, bail};
use gstreamer as gst;
use gstreamer::prelude::*;

/// A device GStreamer found.
#[derive(Debug, Clone)]
pub struct Device {
    /// `Video/Source` or `Audio/Source`.
    pub class: String,
    /// Human name.
    pub name: String,
    /// Device path (V4L2) or id, when known.
    pub path: Option<String>,
}

/// Cameras and microphones present (GStreamer `DeviceMonitor`).
pub fn list() -> Result<Vec<Device>> {
    gst::init()?;
    let monitor = gst::DeviceMonitor::new();
    monitor.add_filter(Some("Video/Source"), None);
    monitor.add_filter(Some("Audio/Source"), None);
    if monitor.start().is_err() {
        return Ok(Vec::new());
    }
    let devices = monitor
        .devices()
        .into_iter()
        .map(|d| {
            let props = d.properties();
            let path = props.as_ref().and_then(|p| {
                p.get::<String>("api.v4l2.path")
                    .or_else(|_| p.get::<String>("device.path"))
                    .or_else(|_| p.get::<String>("node.name"))
                    .ok()
            });
            Device { class: d.device_class().to_string(), name: d.display_name().to_string(), path }
        })
        .collect();
    monitor.stop();
    Ok(devices)
}

/// A clear error when a configured camera is missing, naming the cameras found.
pub fn check_video(role: &str, spec: &SourceSpec) -> Result<()> {
    let SourceSpec::V4l2(dev) = spec else { return Ok(()) };
    if std::path::Path::new(dev).exists() {
        return Ok(());
    }
    let found: Vec<String> = list()
        .unwrap_or_default()
        .into_iter()
        .filter(|d| d.class.starts_with("Video/Source"))
        .map(|d| match d.path {
            Some(p) => format!("{} ({p})", d.name),
            None => d.name,
        })
        .collect();
    let found = if found.is_empty() { "none".to_owned() } else { found.join(", ") };
    bail!("studio: {role} device '{dev}' not found; cameras found: {found}")
}
