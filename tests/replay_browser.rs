//! A pupil replays a recorded class in Debian's Chromium (`tests/browser/replay.mjs`), inside
//! a loopback-only network namespace: the studio on test sources is recorded for 30 s; the
//! replay page starts on the layer a first measurement of the open link carries (720p),
//! seeks to the middle and plays on; then what the server sends is capped at 500 kbit/s
//! (`tc` on `lo`, the server's HTTP port) and the player steps down to 180p and plays on;
//! the pupil jumps to the chapter where the teacher showed the document camera. And a class
//! the studio published in H.264, recorded in MP4, plays across its segments
//! (`tests/browser/replay_h264.mjs`). And a pupil who picks another quality in the menu
//! plays on across the hole the switch leaves at a segment boundary
//! (`tests/browser/replay_switch.mjs`): each layer closes its segments at its own keyframes,
//! so the new layer's segment starts a few frames after the old one's ends (17 to 58 ms
//! seen). Past two audio frames (40 ms), Chromium took that for a discontinuity and dropped
//! the new layer's video up to its next keyframe, and the playhead stalled at the hole: the
//! cause of this file's first test failing one run in three. The test switches across the
//! largest hole of the recording's boundary near 20 s.

mod common;

use common::{TestServer, send};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const NAME: &str = "a_pupil_replays_a_class_seeks_and_steps_down_on_a_capped_link";

fn prerequisites() -> Result<(), String> {
    common::browser_prerequisites()?;
    common::tc_present()
}

#[test]
fn a_pupil_replays_a_class_seeks_and_steps_down_on_a_capped_link() {
    if common::in_private_network(NAME, prerequisites) {
        inner();
    }
}

fn inner() {
    // A home link's MTU: on loopback's 64 KiB one, a single TCP segment would not fit the
    // capped link's queue.
    let mtu = Command::new("ip").args(["link", "set", "lo", "mtu", "1500"]).status().expect("ip");
    assert!(mtu.success(), "ip link set lo mtu 1500");
    // Segments close at the studio's keyframes (every 10 s): about three per layer.
    let server = TestServer::start(&[("ARDOISE__RECORDING__SEGMENT_SECS", "5")]);
    let teacher = server.token("teacher", Some("demo"));
    let studio = common::publishing_studio(&server, "demo", &teacher, |_| {});
    let url = |p: &str| format!("{}/api/classes/demo{p}", server.base);
    let r = send("POST", &url("/recording/start"), Some(&teacher), None, "");
    assert_eq!(r.status, 201, "{}", r.body);
    // The teacher shows the document camera from 12 s on: a chapter the pupil jumps to.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (mut console, _) = rt.block_on(common::ws::hello(&server, "demo", &teacher));
    std::thread::sleep(Duration::from_secs(12)); // the recording's parts, not a synchronisation
    rt.block_on(common::ws::send(&mut console, serde_json::json!({"type": "set_layout", "layout": "document"})));
    assert_eq!(rt.block_on(common::ws::wait_for(&mut console, "layout"))["layout"], "document");
    std::thread::sleep(Duration::from_secs(18));
    let r = send("POST", &url("/recording/stop"), Some(&teacher), None, "");
    assert_eq!(r.status, 200, "{}", r.body);
    drop(studio);
    let info: Value = serde_json::from_str(&r.body).unwrap();
    for layer in info["layers"].as_array().unwrap() {
        let times: Vec<String> = layer["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let (start, end) = (f["start_s"].as_f64().unwrap_or(-1.0), f["end_s"].as_f64().unwrap_or(-1.0));
                format!("{start:.2}-{end:.2} ({} kB)", f["size"].as_u64().unwrap_or(0) / 1000)
            })
            .collect();
        println!("layer {} segments: {}", layer["rank"], times.join(" "));
        segments_a_browser_takes(&server, &info, layer);
        let files = layer["files"].as_array().unwrap();
        assert!(files.len() >= 2, "segments of layer {}: {layer}", layer["rank"]);
        for f in files {
            let (start, end) = (f["start_s"].as_f64(), f["end_s"].as_f64());
            assert!(start.zip(end).is_some_and(|(a, b)| b > a), "every closed segment has its times: {f}");
        }
    }

    let port = server.base.rsplit(':').next().unwrap().to_owned();
    // (replay.mjs caps the link with `tc`; the namespace is this test's own, so a failure
    // leaves nothing behind.)
    let v = replay_in_chromium(&server, "replay.mjs", &[port, "500".into()]);
    let _ = Command::new("tc").args(["qdisc", "del", "dev", "lo", "root"]).status();
    assert_eq!(v["started"]["layer"], 2, "an open link starts on 720p: {v}");
    assert!(v["seek"]["at"].as_f64() > v["seek"]["to"].as_f64(), "it plays on after the seek: {v}");
    let after = v["capped"]["afterMs"].as_u64().unwrap();
    println!(
        "replay: 180p {after} ms after the cap; layers {}; segments refused (a new Media Source took over): {}",
        v["layers"], v["last"]["mediaErrors"]
    );
    assert!(after <= 20_000, "180p {after} ms after the cap");
    let chapter = &v["chapter"];
    assert!((chapter["at"].as_f64().unwrap() - 12.0).abs() < 1.5, "the document chapter starts at 12 s: {v}");
    assert!(chapter["playing"].as_f64() > chapter["at"].as_f64(), "the chapter plays from its start: {v}");
}

/// Run `tests/browser/SCRIPT` with a pupil's replay page URL then `args`: its result, once
/// it says it passed (what the script measured is printed).
fn replay_in_chromium(server: &TestServer, script: &str, args: &[String]) -> Value {
    let url = format!("{}/replay#token={}", server.base, server.join("demo", "Revoit"));
    let all: Vec<&str> = std::iter::once(url.as_str()).chain(args.iter().map(String::as_str)).collect();
    common::browser_script(script, &all)
}

/// Every segment of `layer` of the recording `info` passes what a browser's Media Source
/// checks (blocks in order within each cluster).
fn segments_a_browser_takes(server: &TestServer, info: &Value, layer: &Value) {
    let dir = server.data_dir.join("recordings/demo").join(info["id"].as_str().unwrap());
    for f in layer["files"].as_array().unwrap() {
        let path = dir.join(f["name"].as_str().unwrap());
        let order = common::webm::blocks_in_order(&std::fs::read(&path).unwrap());
        assert!(order.is_ok(), "{}: {}", path.display(), order.unwrap_err());
    }
}

#[test]
fn a_class_published_in_h264_replays_from_its_mp4_segments() {
    common::browser_prerequisites().expect("Chromium and node (make test installs them)");
    // Two segments: the studio's keyframes come every 10 s.
    let server = TestServer::start(&[("ARDOISE__RECORDING__SEGMENT_SECS", "5")]);
    let teacher = server.token("teacher", Some("demo"));
    let info = common::recorded_for(&server, &teacher, 16, |c| c.codec = ardoise_studio::VideoCodec::H264);
    let top = info["layers"].as_array().unwrap().last().unwrap().clone();
    assert!(top["files"].as_array().unwrap().len() >= 2, "two MP4 segments at least: {top}");
    let boundary = top["files"][1]["start_s"].as_f64().unwrap();
    let v = replay_in_chromium(&server, "replay_h264.mjs", &[format!("{:.2}", boundary + 1.5)]);
    let reached = &v["reached"];
    println!(
        "H.264 replay: at {} s (second segment from {boundary:.2} s), {} frames decoded",
        reached["t"], reached["decoded"]
    );
    assert!(reached["decoded"].as_u64().unwrap() > 30, "frames decoded: {v}");
}

#[test]
fn a_pupil_who_changes_the_quality_at_a_segment_boundary_plays_on() {
    common::browser_prerequisites().expect("Chromium and node (make test installs them)");
    // Segments close at the studio's keyframes, every 10 s: boundaries near 10 and 20 s.
    let server = TestServer::start(&[("ARDOISE__RECORDING__SEGMENT_SECS", "5")]);
    let teacher = server.token("teacher", Some("demo"));
    let info = common::recorded_for(&server, &teacher, 27, |_| {});
    // At the boundary near 20 s: FROM is the layer whose second segment ends first, TO the
    // one whose third starts last: the hole between them is what a switch must cross.
    let layers = info["layers"].as_array().unwrap();
    for layer in layers {
        segments_a_browser_takes(&server, &info, layer);
    }
    // (A layer may start with a segment of a frame or two: the boundary is the segment start
    // nearest 20 s, not the third.)
    let bound = |l: &Value| -> f64 {
        let starts = l["files"].as_array().unwrap().iter().filter_map(|f| f["start_s"].as_f64());
        starts.min_by(|a, b| (a - 20.0).abs().total_cmp(&(b - 20.0).abs())).expect("segments")
    };
    let from = layers.iter().min_by(|a, b| bound(a).total_cmp(&bound(b))).unwrap();
    let to = layers.iter().max_by(|a, b| bound(a).total_cmp(&bound(b))).unwrap();
    let hole_ms = (bound(to) - bound(from)) * 1000.0;
    println!(
        "switch from layer {} to layer {} at {:.3} s: a hole of {hole_ms:.0} ms",
        from["rank"],
        to["rank"],
        bound(from)
    );
    let args = [from["rank"].to_string(), to["rank"].to_string(), format!("{:.3}", bound(from))];
    replay_in_chromium(&server, "replay_switch.mjs", &args);
}
