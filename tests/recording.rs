//! Recording (issue 14, first part): the studio on test sources publishes the demo class, the
//! teacher records 20 s, and every layer's file is checked with GStreamer: a video and an
//! audio stream, 20 ± 1 s, the first frame a keyframe. Then the files are served with Range
//! (206, 416) to the class's pupils only, and nothing outside the recording's directory.

mod common;

use ardoise_studio::{Studio, StudioConfig};
use common::{TestServer, send};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What a WebM file holds: (video buffers, audio buffers, first video buffer is a keyframe,
/// last video timestamp − first, seconds).
fn inspect(path: &std::path::Path) -> (usize, usize, bool, f64) {
    gst::init().unwrap();
    let p = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! matroskademux name=d \
         d.video_0 ! queue ! appsink name=v sync=false \
         d.audio_0 ! queue ! appsink name=a sync=false",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let v = p.by_name("v").unwrap().downcast::<gst_app::AppSink>().unwrap();
    let a = p.by_name("a").unwrap().downcast::<gst_app::AppSink>().unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let audio = std::thread::spawn(move || {
        let mut n = 0;
        while a.pull_sample().is_ok() {
            n += 1;
        }
        n
    });
    let (mut frames, mut first_key, mut first, mut last) = (0, false, None, None);
    while let Ok(s) = v.pull_sample() {
        let b = s.buffer().unwrap();
        if frames == 0 {
            first_key = !b.flags().contains(gst::BufferFlags::DELTA_UNIT);
        }
        let pts = b.pts().map(|t| t.nseconds() as f64 / 1e9);
        first = first.or(pts);
        last = pts.or(last);
        frames += 1;
    }
    let audio = audio.join().unwrap();
    p.set_state(gst::State::Null).unwrap();
    (frames, audio, first_key, last.unwrap_or(0.0) - first.unwrap_or(0.0))
}

#[test]
fn twenty_seconds_of_the_studio_recorded_on_every_layer() {
    let server = TestServer::start(&[]);
    let teacher = server.token("teacher", Some("demo"));
    let mut config = StudioConfig::test_sources(&server.base, "demo", &teacher);
    config.follow_class = false;
    let studio = Studio::start(config).expect("studio starts on test sources");
    common::eventually(Duration::from_secs(15), || {
        if studio.stats.connected.load(Ordering::Relaxed) { Ok(()) } else { Err("the studio publishes".into()) }
    });
    let url = |p: &str| format!("{}/api/classes/demo{p}", server.base);
    let pupil = server.join("demo", "Revoit");

    // A page in the class hears the recording start and stop.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (mut page, welcome) = rt.block_on(common::ws::hello(&server, "demo", &pupil));
    assert_eq!(welcome["recording"], false);
    let public = |server: &TestServer| -> Value {
        serde_json::from_str(&send("GET", &format!("{}/api/classes/demo", server.base), None, None, "").body).unwrap()
    };
    assert_eq!(public(&server)["recording"], false, "nothing recorded yet");
    let r = send("POST", &url("/recording/start"), Some(&pupil), None, "");
    assert_eq!(r.status, 403, "a pupil cannot start a recording: {}", r.body);
    let r = send("POST", &url("/recording/start"), Some(&teacher), None, "");
    assert_eq!(r.status, 201, "{}", r.body);
    let again = send("POST", &url("/recording/start"), Some(&teacher), None, "");
    assert_eq!(again.status, 409, "one recording at a time: {}", again.body);
    let listed: Value = serde_json::from_str(&send("GET", &url("/recordings"), Some(&pupil), None, "").body).unwrap();
    assert_eq!(listed[0]["state"], "recording", "{listed}");
    assert_eq!(rt.block_on(common::ws::wait_for(&mut page, "recording"))["on"], true, "the page is told");
    assert_eq!(public(&server)["recording"], true, "a pupil is told before joining");

    std::thread::sleep(Duration::from_secs(20)); // the recording's length, not a synchronisation
    let r = send("POST", &url("/recording/stop"), Some(&teacher), None, "");
    assert_eq!(r.status, 200, "{}", r.body);
    let info: Value = serde_json::from_str(&r.body).unwrap();
    drop(studio);
    assert_eq!(rt.block_on(common::ws::wait_for(&mut page, "recording"))["on"], false, "the page is told it stopped");
    println!("recording: {info}");
    assert_eq!(info["state"], "ready");
    let layers = info["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "every simulcast layer: {info}");
    let dir = server.data_dir.join("recordings/demo").join(info["id"].as_str().unwrap());
    for layer in layers {
        let files = layer["files"].as_array().unwrap();
        assert_eq!(files.len(), 1, "20 s fit in one 60 s segment: {layer}");
        let path = dir.join(files[0]["name"].as_str().unwrap());
        assert!(files[0]["size"].as_u64().unwrap() > 1000, "layer {} wrote its file: {layer}", layer["rank"]);
        let (video, audio, key, span) = inspect(&path);
        println!("layer {}: {video} video frames, {audio} audio buffers, {span:.2} s", layer["rank"]);
        assert!(key, "layer {} starts on a keyframe", layer["rank"]);
        assert!(audio > 500, "layer {} has the audio ({audio} buffers)", layer["rank"]);
        assert!((span - 20.0).abs() <= 1.0, "layer {} lasts {span:.2} s, not 20 ± 1", layer["rank"]);
        assert!(video as f64 >= 14.0 * span, "layer {}: {video} frames in {span:.1} s", layer["rank"]);
    }

    // Served with Range, to the class's pupils.
    let file = layers[0]["files"][0]["url"].as_str().unwrap().to_owned();
    let size = layers[0]["files"][0]["size"].as_u64().unwrap();
    // (status, body length, Content-Range)
    let get = |token: &str, range: Option<&str>| -> (u16, usize, Option<String>) {
        let mut req = ardoise_client::trust::agent()
            .get(&format!("{}{file}", server.base))
            .set("Authorization", &format!("Bearer {token}"));
        if let Some(r) = range {
            req = req.set("Range", r);
        }
        let r = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("GET {file}: {e}"),
        };
        let (status, content_range) = (r.status(), r.header("Content-Range").map(String::from));
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut r.into_reader(), &mut body).unwrap();
        (status, body.len(), content_range)
    };
    let (status, len, content_range) = get(&pupil, Some("bytes=0-99"));
    assert_eq!((status, len), (206, 100), "a range of the file");
    assert_eq!(content_range.as_deref(), Some(format!("bytes 0-99/{size}").as_str()));
    assert_eq!(get(&pupil, Some(&format!("bytes={}-", size + 10))).0, 416, "a range beyond the end");
    let (status, len, _) = get(&pupil, None);
    assert_eq!((status, len as u64), (200, size), "the whole file");
    let other = server.token("pupil", Some("autre-classe"));
    assert_eq!(get(&other, None).0, 403, "a pupil of another class");
    let traversal =
        format!("{}/api/classes/demo/recordings/{}/..%2Frecording.json", server.base, info["id"].as_str().unwrap());
    assert_eq!(send("GET", &traversal, Some(&pupil), None, "").status, 404, "a path outside the segments");
}
