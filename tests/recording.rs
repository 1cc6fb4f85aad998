//! Recording (issue 14): the studio on test sources publishes the demo class, the teacher
//! records 20 s, and every layer's file is checked with GStreamer: a video and an audio
//! stream, 20 ± 1 s, the first frame a keyframe. Then the files are served with Range (206,
//! 416) to the class's pupils only, and nothing outside the recording's directory; the
//! teacher renames, unpublishes (the pupils no longer see it), republishes and deletes it.
//! A class whose policy records it is recorded once live, with no one pressing Record; a
//! server killed (`kill -9`) mid-recording keeps the closed segments, listed and playable
//! after its restart.

mod common;

use common::{TestServer, send};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What a WebM or MP4 file holds: (video buffers, audio buffers, first video buffer is a
/// keyframe, last video timestamp − first, seconds).
fn inspect(path: &std::path::Path) -> (usize, usize, bool, f64) {
    gst::init().unwrap();
    if path.extension().is_some_and(|e| e == "webm") {
        // What a browser checks and the demuxer does not.
        let blocks = common::webm::blocks_in_order(&std::fs::read(path).unwrap());
        assert!(blocks.is_ok(), "{}: {}", path.display(), blocks.unwrap_err());
    }
    let demux = if path.extension().is_some_and(|e| e == "mp4") { "qtdemux" } else { "matroskademux" };
    let p = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! {demux} name=d \
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

/// The recording `rec` (its API URL) downloaded for offline viewing by `token`'s holder, as
/// a pupil's tablet would: the link, the file's Content-Disposition, and what the file holds
/// ([`inspect`], of a copy `offline-copy.EXT` in the server's data directory).
fn offline_copy(
    server: &TestServer,
    rec: &str,
    token: &str,
    ext: &str,
) -> (String, Option<String>, (usize, usize, bool, f64)) {
    let r = send("POST", &format!("{rec}/download"), Some(token), None, "");
    assert_eq!(r.status, 200, "{}", r.body);
    let link = format!("{}{}", server.base, serde_json::from_str::<Value>(&r.body).unwrap()["url"].as_str().unwrap());
    let (status, body, _, disposition) = download(&link);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let offline = server.data_dir.join(format!("offline-copy.{ext}"));
    std::fs::write(&offline, &body).unwrap();
    let held = inspect(&offline);
    let (video, audio, _, span) = held;
    println!("offline {ext} file: {} bytes, {video} video frames, {audio} audio buffers, {span:.2} s", body.len());
    (link, disposition, held)
}

/// GET a download link as a client keeping to the contract: a 503 (the offline file is
/// being joined, or its join was given up) is retried after its Retry-After, for a minute.
fn download(link: &str) -> (u16, Vec<u8>, Option<String>, Option<String>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let got = fetch(link, None, None);
        if got.0 != 503 || std::time::Instant::now() > deadline {
            return got;
        }
        println!("download: 503, retried");
        std::thread::sleep(Duration::from_secs(5)); // the server's Retry-After
    }
}

/// GET `url`, with a bearer `token` and a `Range` if given: (status, body, Content-Range,
/// Content-Disposition), whatever the status.
fn fetch(url: &str, token: Option<&str>, range: Option<&str>) -> (u16, Vec<u8>, Option<String>, Option<String>) {
    let mut req = ardoise_client::trust::agent().get(url);
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    if let Some(r) = range {
        req = req.set("Range", r);
    }
    let r = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = r.status();
    let (content_range, disposition) =
        (r.header("Content-Range").map(String::from), r.header("Content-Disposition").map(String::from));
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut r.into_reader(), &mut body).unwrap();
    (status, body, content_range, disposition)
}

#[test]
fn twenty_seconds_of_the_studio_recorded_on_every_layer() {
    // One segment per layer: the file is checked whole. The recorder's log says how it
    // placed each stream.
    let log = std::env::temp_dir().join(format!("ardoise-recording-log-{}", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let server = TestServer::start(&[
        ("ARDOISE__RECORDING__SEGMENT_SECS", "60"),
        ("ARDOISE_TEST_LOG", log.to_str().unwrap()),
        ("ARDOISE_LOG", "warn,ardoise_recorder=info"),
    ]);
    let teacher = server.token("teacher", Some("demo"));
    let studio = common::publishing_studio(&server, "demo", &teacher, |_| {});
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
    // The teacher presses Record a while into the class: the studio has sent its sender
    // reports by then (str0m sends the voice's every 5 s, the video's every second).
    std::thread::sleep(Duration::from_secs(6)); // the class before the recording, not a synchronisation
    let r = send("POST", &url("/recording/start"), Some(&teacher), None, "");
    assert_eq!(r.status, 201, "{}", r.body);
    let started = std::time::Instant::now();
    let again = send("POST", &url("/recording/start"), Some(&teacher), None, "");
    assert_eq!(again.status, 409, "one recording at a time: {}", again.body);
    let listed: Value = serde_json::from_str(&send("GET", &url("/recordings"), Some(&teacher), None, "").body).unwrap();
    assert_eq!(listed[0]["state"], "recording", "{listed}");
    let listed: Value = serde_json::from_str(&send("GET", &url("/recordings"), Some(&pupil), None, "").body).unwrap();
    assert_eq!(listed, serde_json::json!([]), "pupils see a recording once it is playable");
    assert_eq!(rt.block_on(common::ws::wait_for(&mut page, "recording"))["on"], true, "the page is told");
    assert_eq!(public(&server)["recording"], true, "a pupil is told before joining");

    // The teacher switches the layout twice from the console: two chapters.
    let (mut console, _) = rt.block_on(common::ws::hello(&server, "demo", &teacher));
    let mut switched = Vec::new();
    for layout in ["document", "camera"] {
        std::thread::sleep(Duration::from_secs(6)); // the recording's parts, not a synchronisation
        rt.block_on(common::ws::send(&mut console, serde_json::json!({"type": "set_layout", "layout": layout})));
        assert_eq!(rt.block_on(common::ws::wait_for(&mut page, "layout"))["layout"], layout);
        switched.push(started.elapsed().as_secs_f64());
    }
    std::thread::sleep(Duration::from_secs(8)); // the recording's length, not a synchronisation
    let r = send("POST", &url("/recording/stop"), Some(&teacher), None, "");
    assert_eq!(r.status, 200, "{}", r.body);
    let info: Value = serde_json::from_str(&r.body).unwrap();
    drop(studio);
    // The voice and the three layers are placed on the timeline by the studio's RTCP sender
    // reports (it has been publishing for a while: every stream has had its report).
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let placed: Vec<&str> = logged.lines().filter(|l| l.contains("stream placed")).collect();
    for l in &placed {
        println!("{}", l.split("recording: ").nth(1).unwrap_or(l));
    }
    assert_eq!(placed.len(), 4, "the voice and three layers: {placed:#?}");
    assert!(placed.iter().all(|l| l.contains("by its sender report")), "{placed:#?}");
    let chapters = info["chapters"].as_array().unwrap();
    assert_eq!(chapters.len(), 2, "a chapter per switch: {info}");
    for ((c, layout), at) in chapters.iter().zip(["document", "camera"]).zip(&switched) {
        assert_eq!(c["layout"], layout, "{info}");
        let at_s = c["at_s"].as_f64().unwrap();
        assert!((at_s - at).abs() < 1.0, "the {layout} chapter at {at_s:.2} s, switched at {at:.2} s");
    }
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
    let file_url = format!("{}{file}", server.base);
    // (status, body length, Content-Range)
    let get = |token: &str, range: Option<&str>| {
        let (status, body, content_range, _) = fetch(&file_url, Some(token), range);
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
    assert_eq!(send("POST", &url("/recording/stop"), Some(&teacher), None, "").status, 409, "a stop without a start");

    // The teacher renames it and unpublishes it: the pupils no longer see it, nor its files.
    let rec = url(&format!("/recordings/{}", info["id"].as_str().unwrap()));
    let json = Some("application/json");
    let pupils_list =
        || -> Value { serde_json::from_str(&send("GET", &url("/recordings"), Some(&pupil), None, "").body).unwrap() };
    assert_eq!(pupils_list()[0]["id"], info["id"], "published by default");
    assert_eq!(send("PATCH", &rec, Some(&pupil), json, r#"{"published":false}"#).status, 403, "a pupil cannot");
    assert_eq!(send("PATCH", &rec, Some(&teacher), json, r#"{"title":" "}"#).status, 400, "an empty title");
    assert_eq!(send("PATCH", &rec, Some(&teacher), json, r#"{"colour":"red"}"#).status, 400, "an unknown field");
    let r = send("PATCH", &rec, Some(&teacher), json, r#"{"title":"Les fractions","published":false}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    let changed: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!((&changed["title"], &changed["published"]), (&"Les fractions".into(), &false.into()));
    assert_eq!(pupils_list(), serde_json::json!([]), "unpublished: the pupils do not see it");
    assert_eq!(get(&pupil, None).0, 404, "nor fetch its files");
    assert_eq!(get(&teacher, Some("bytes=0-9")).0, 206, "the teacher still does");
    assert_eq!(send("POST", &format!("{rec}/download"), Some(&pupil), None, "").status, 404, "unpublished");
    let r = send("PATCH", &rec, Some(&teacher), json, r#"{"published":true}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(pupils_list()[0]["title"], "Les fractions", "published again, renamed");
    let r = send("POST", &format!("{rec}/download"), Some(&pupil), None, "");
    assert_eq!(r.status, 403, "no download until the teacher allows it: {}", r.body);
    let r = send("PATCH", &rec, Some(&teacher), json, r#"{"downloadable":true}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(pupils_list()[0]["downloadable"], true);

    // Offline viewing: a link to the 180p layer as one file, which needs no token, resumes
    // (Range), and stops working when the teacher forbids the download again.
    let (link, disposition, (_, audio, key, span)) = offline_copy(&server, &rec, &pupil, "webm");
    assert!(disposition.is_some_and(|d| d.starts_with("attachment")), "a download, not a page");
    assert!(key && audio > 500 && (span - 20.0).abs() <= 1.0, "the whole class, 180p, with its voice");
    assert_eq!(fetch(&link, None, Some("bytes=100-199")).0, 206, "a download resumes");
    let forged = link.replace("for=p", "for=s");
    assert_eq!(fetch(&forged, None, None).0, 403, "a link made a teacher's");
    let other_class = link.replace("/classes/demo/", "/classes/autre/");
    assert_eq!(fetch(&other_class, None, None).0, 403, "a link of another class");
    let r = send("PATCH", &rec, Some(&teacher), json, r#"{"downloadable":false}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(fetch(&link, None, None).0, 403, "the teacher forbade the download again: the link stops");
    // Deleted: its files and its description.
    assert_eq!(send("DELETE", &rec, Some(&pupil), None, "").status, 403, "a pupil cannot delete it");
    assert_eq!(send("DELETE", &rec, Some(&teacher), None, "").status, 204);
    assert!(!dir.exists(), "its files are deleted");
    assert_eq!(send("GET", &url("/recordings"), Some(&teacher), None, "").body, "[]");
    assert_eq!(send("DELETE", &rec, Some(&teacher), None, "").status, 404, "deleted already");
}

#[test]
fn a_class_recorded_by_its_policy_survives_a_kill_9_of_the_server() {
    // Short segments: the studio's keyframes (every 10 s) close them.
    let mut server = TestServer::start(&[("ARDOISE__RECORDING__SEGMENT_SECS", "2")]);
    let teacher = server.token("teacher", Some("cm1-rec"));
    // A class whose policy records it: no one presses Record.
    let body = serde_json::json!({"id": "cm1-rec", "title": "CM1", "policies": {"recording": true}}).to_string();
    let r = send("POST", &format!("{}/api/classes", server.base), Some(&teacher), Some("application/json"), &body);
    assert_eq!(r.status, 201, "{}", r.body);
    let url = |server: &TestServer, p: &str| format!("{}/api/classes/cm1-rec{p}", server.base);
    let recordings = |server: &TestServer| -> Value {
        serde_json::from_str(&send("GET", &url(server, "/recordings"), Some(&teacher), None, "").body).unwrap()
    };
    assert_eq!(recordings(&server), serde_json::json!([]), "nothing before the class is live");
    let studio = common::start_studio(&server, "cm1-rec", &teacher, |_| {});
    let id = common::eventually(Duration::from_secs(20), || {
        let listed = recordings(&server);
        match listed[0]["state"].as_str() {
            Some("recording") => Ok(listed[0]["id"].as_str().unwrap().to_owned()),
            _ => Err(format!("the policy starts a recording when the class is live: {listed}")),
        }
    });
    let dir = server.data_dir.join("recordings/cm1-rec").join(&id);
    // Every layer has closed its first segment (a second one is open).
    let segments = |rank: usize| {
        std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten().filter(|e| e.file_name().to_string_lossy().starts_with(&format!("layer{rank}-"))).count()
            })
            .unwrap_or(0)
    };
    // ... and indexed it (its times written beside it: what the listing shows as closed).
    common::eventually(Duration::from_secs(40), || {
        let n: Vec<usize> = (0..3).map(segments).collect();
        let listed = recordings(&server);
        let indexed: Vec<usize> = (0..3)
            .map(|rank| {
                listed[0]["layers"].as_array().and_then(|ls| ls.iter().find(|l| l["rank"] == rank)).map_or(0, |l| {
                    l["files"]
                        .as_array()
                        .map_or(0, |fs| fs.iter().filter(|f| f["end_s"].as_f64().unwrap_or(0.0) >= 1.0).count())
                })
            })
            .collect();
        if n.iter().all(|&k| k >= 2) && indexed.iter().all(|&k| k >= 1) {
            Ok(())
        } else {
            Err(format!("segments per layer {n:?}, closed ones of a second or more {indexed:?}"))
        }
    });
    server.restart(); // kill -9 (SIGKILL), then a new server on the same data directory
    drop(studio);
    let listed: Value =
        serde_json::from_str(&send("GET", &url(&server, "/recordings"), Some(&teacher), None, "").body).unwrap();
    println!("after kill -9: {listed}");
    let rec = &listed[0];
    assert_eq!((rec["id"].as_str(), rec["state"].as_str()), (Some(id.as_str()), Some("interrupted")), "{listed}");
    assert!(rec["duration_s"].as_f64().unwrap() >= 2.0, "its length is what its files reach: {rec}");
    let layers = rec["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "{rec}");
    for layer in layers {
        // Every closed segment plays. (A layer's first segment is sometimes a few frames
        // long, two keyframes tens of ms apart at the start: it holds its keyframe, and may
        // end before the first voice packet; the next one holds the rest.)
        let closed: Vec<&Value> = layer["files"].as_array().unwrap().iter().filter(|f| !f["end_s"].is_null()).collect();
        let mut longest = 0.0f64;
        for file in closed {
            let (video, audio, key, span) = inspect(&dir.join(file["name"].as_str().unwrap()));
            println!(
                "layer {}, closed {}: {video} video frames, {audio} audio buffers, {span:.2} s",
                layer["rank"], file["name"]
            );
            assert!(key && video > 0, "layer {}: {} starts with a keyframe", layer["rank"], file["name"]);
            if span >= 1.0 {
                assert!(audio > 0, "layer {}: {} has the voice", layer["rank"], file["name"]);
            }
            longest = longest.max(span);
        }
        assert!(longest >= 1.0, "layer {}: a closed segment of a second or more plays", layer["rank"]);
    }
    // A download link made before a restart still works after it (a tablet resumes it).
    let made = send("POST", &url(&server, &format!("/recordings/{id}/download")), Some(&teacher), None, "");
    assert_eq!(made.status, 200, "{}", made.body);
    let link =
        format!("{}{}", server.base, serde_json::from_str::<Value>(&made.body).unwrap()["url"].as_str().unwrap());
    server.restart(); // on the same address
    let (status, body, _, _) = download(&link);
    assert_eq!(
        status,
        200,
        "a link made before the restart: {}",
        String::from_utf8_lossy(&body[..body.len().min(300)])
    );
    assert!(body.len() > 10_000, "the offline file: {} bytes", body.len());
    let code = serde_json::from_str::<Value>(&r.body).unwrap()["code"].as_str().unwrap().to_owned();
    let pupil = server.join(&code, "Absente");
    let seen: Value =
        serde_json::from_str(&send("GET", &url(&server, "/recordings"), Some(&pupil), None, "").body).unwrap();
    assert_eq!(seen[0]["id"], rec["id"], "the pupils see what was kept");
}

#[test]
fn a_teacher_who_reconnects_continues_the_same_recording() {
    // One segment per layer: the file is checked whole.
    let server = TestServer::start(&[("ARDOISE__RECORDING__SEGMENT_SECS", "60")]);
    let teacher = server.token("teacher", Some("demo"));
    let first = common::publishing_studio(&server, "demo", &teacher, |_| {});
    // A pupil keeps the class open while the teacher is away.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (base, token, stop) = (server.base.clone(), server.join("demo", "Reste"), stop.clone());
        std::thread::spawn(move || {
            let mut pupil = ardoise_loadgen::Subscriber::connect(&base, "demo", &token, common::lo()).expect("WHEP");
            while !stop.load(Ordering::Relaxed) {
                let _ = pupil.run_for(Duration::from_millis(200));
            }
        })
    };
    let url = |p: &str| format!("{}/api/classes/demo{p}", server.base);
    let r = send("POST", &url("/recording/start"), Some(&teacher), None, "");
    assert_eq!(r.status, 201, "{}", r.body);
    // The recording's parts and the teacher's absence, not synchronisations.
    std::thread::sleep(Duration::from_secs(8));
    drop(first); // the studio closes its session: a new one comes with new SSRCs and RTP clocks
    std::thread::sleep(Duration::from_secs(3));
    let second = common::publishing_studio(&server, "demo", &teacher, |_| {});
    std::thread::sleep(Duration::from_secs(8));
    let r = send("POST", &url("/recording/stop"), Some(&teacher), None, "");
    assert_eq!(r.status, 200, "{}", r.body);
    drop(second);
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    let info: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(info["state"], "ready", "{info}");
    let dir = server.data_dir.join("recordings/demo").join(info["id"].as_str().unwrap());
    let layers = info["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "{info}");
    for layer in layers {
        let (video, audio, key, span) = inspect(&dir.join(layer["files"][0]["name"].as_str().unwrap()));
        println!(
            "layer {} across the reconnection: {video} video frames, {audio} audio buffers, {span:.2} s",
            layer["rank"]
        );
        // 8 s, the teacher away (3 s and the new session's start), 8 s: one timeline.
        assert!(key && (17.0..=24.0).contains(&span), "layer {}: {span:.2} s on one timeline", layer["rank"]);
        assert!(video as f64 >= 14.0 * 15.0, "layer {}: both parts recorded ({video} frames)", layer["rank"]);
        assert!(audio > 700, "layer {}: the voice of both parts ({audio} buffers)", layer["rank"]);
    }
}

#[test]
fn an_h264_programme_is_recorded_in_mp4_without_transcoding() {
    // What iPad Safari plays: the studio publishes H.264, the recorder writes MP4.
    let server = TestServer::start(&[("ARDOISE__RECORDING__SEGMENT_SECS", "60")]);
    let teacher = server.token("teacher", Some("demo"));
    let url = |p: &str| format!("{}/api/classes/demo{p}", server.base);
    let info = common::recorded_for(&server, &teacher, 12, |c| c.codec = ardoise_studio::VideoCodec::H264);
    assert_eq!(info["state"], "ready", "{info}");
    let layers = info["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "every simulcast layer: {info}");
    let dir = server.data_dir.join("recordings/demo").join(info["id"].as_str().unwrap());
    for layer in layers {
        assert!(layer["mime"].as_str().unwrap().starts_with("video/mp4"), "{layer}");
        let name = layer["files"][0]["name"].as_str().unwrap();
        assert!(name.ends_with(".mp4"), "{layer}");
        let (video, audio, key, span) = inspect(&dir.join(name));
        println!("H.264 layer {}: {video} video frames, {audio} audio buffers, {span:.2} s", layer["rank"]);
        // Fragmented (a Media Source plays it), with a big-endian Opus header (browsers
        // refuse the little-endian one GStreamer 1.22 writes).
        let bytes = std::fs::read(dir.join(name)).unwrap();
        assert!(bytes.windows(4).any(|w| w == b"moof"), "layer {}: fragmented", layer["rank"]);
        let dops = bytes.windows(4).position(|w| w == b"dOps").expect("an Opus header");
        let rate = u32::from_be_bytes(bytes[dops + 8..dops + 12].try_into().unwrap());
        assert_eq!(rate, 48_000, "layer {}: the Opus header's rate, big-endian", layer["rank"]);
        assert!(key, "layer {} starts on a keyframe", layer["rank"]);
        assert!(audio > 250, "layer {} has the audio ({audio} buffers)", layer["rank"]);
        assert!((span - 12.0).abs() <= 1.0, "layer {} lasts {span:.2} s, not 12 ± 1", layer["rank"]);
        assert!(video as f64 >= 14.0 * span, "layer {}: {video} frames in {span:.1} s", layer["rank"]);
    }
    // Served as MP4; the offline file is one MP4 too.
    let file = format!("{}{}", server.base, layers[0]["files"][0]["url"].as_str().unwrap());
    let got = ardoise_client::trust::agent().get(&file).set("Authorization", &format!("Bearer {teacher}")).call();
    assert_eq!(got.map(|r| r.content_type().to_owned()).ok().as_deref(), Some("video/mp4"));
    let rec = url(&format!("/recordings/{}", info["id"].as_str().unwrap()));
    let (link, disposition, (_, audio, key, span)) = offline_copy(&server, &rec, &teacher, "mp4");
    assert!(link.contains("/offline.mp4?"), "{link}");
    assert!(disposition.is_some_and(|d| d.ends_with(".mp4\"")), "an MP4 file");
    assert!(key && audio > 250 && (span - 12.0).abs() <= 1.0, "the whole class, 180p, with its voice");
}

#[test]
fn a_layout_switch_continues_the_recording_on_one_timeline() {
    // The studio follows the console: the document layout changes the 360p layer's picture
    // size (640x360 → 960x540), and back.
    let server = TestServer::start(&[("ARDOISE__RECORDING__SEGMENT_SECS", "60")]);
    let teacher = server.token("teacher", Some("demo"));
    let studio = common::publishing_studio(&server, "demo", &teacher, |c| c.follow_class = true);
    let url = |p: &str| format!("{}/api/classes/demo{p}", server.base);
    let r = send("POST", &url("/recording/start"), Some(&teacher), None, "");
    assert_eq!(r.status, 201, "{}", r.body);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (mut console, _) = rt.block_on(common::ws::hello(&server, "demo", &teacher));
    for layout in ["document", "camera"] {
        std::thread::sleep(Duration::from_secs(7)); // the recording's parts, not a synchronisation
        rt.block_on(common::ws::send(&mut console, serde_json::json!({"type": "set_layout", "layout": layout})));
    }
    std::thread::sleep(Duration::from_secs(7));
    let r = send("POST", &url("/recording/stop"), Some(&teacher), None, "");
    assert_eq!(r.status, 200, "{}", r.body);
    drop(studio);
    let info: Value = serde_json::from_str(&r.body).unwrap();
    println!("recording across two layout switches: {info}");
    assert_eq!(info["state"], "ready", "{info}");
    // The studio's layout at the start (it tells the class when it connects), then the two switches.
    let layouts: Vec<&str> = info["chapters"].as_array().unwrap().iter().filter_map(|c| c["layout"].as_str()).collect();
    assert_eq!(layouts[1..], ["document", "camera"], "{info}");
    let dir = server.data_dir.join("recordings/demo").join(info["id"].as_str().unwrap());
    let layers = info["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "{info}");
    for layer in layers {
        let files = layer["files"].as_array().unwrap();
        let (mut covered, mut frames, mut previous_end) = (0.0, 0, None::<f64>);
        for f in files {
            let (start, end) = (f["start_s"].as_f64().unwrap(), f["end_s"].as_f64().unwrap());
            if let Some(p) = previous_end {
                assert!((start - p).abs() < 0.5, "layer {}: one timeline, no gap at {p:.2} s: {layer}", layer["rank"]);
            }
            previous_end = Some(end);
            covered += end - start;
            let (video, audio, key, _) = inspect(&dir.join(f["name"].as_str().unwrap()));
            assert!(key && video > 0 && audio > 0, "layer {}: {} plays", layer["rank"], f["name"]);
            frames += video;
        }
        println!("layer {}: {} files, {covered:.2} s, {frames} frames", layer["rank"], files.len());
        assert!(covered >= 19.0, "layer {}: the whole recording ({covered:.2} s): {layer}", layer["rank"]);
    }
}

#[test]
fn a_full_disk_stops_the_recording_and_keeps_what_was_written() {
    assert!(common::is_root(), "this test mounts a small disk: it runs as root (make test)");
    let server = TestServer::start(&[("ARDOISE_TEST_MOUNTNS", "1"), ("ARDOISE__RECORDING__SEGMENT_SECS", "2")]);
    // 6 MB for the recordings: the studio's three layers fill it in about 20 s.
    server.small_disk("recordings", "6m");
    let teacher = server.token("teacher", Some("demo"));
    let studio = common::publishing_studio(&server, "demo", &teacher, |_| {});
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (mut console, _) = rt.block_on(common::ws::hello(&server, "demo", &teacher));
    let url = |p: &str| format!("{}/api/classes/demo{p}", server.base);
    let r = send("POST", &url("/recording/start"), Some(&teacher), None, "");
    assert_eq!(r.status, 201, "{}", r.body);
    let started = std::time::Instant::now();
    assert_eq!(rt.block_on(common::ws::wait_for(&mut console, "recording"))["on"], true);
    // The disk fills: the recording stops by itself and the teacher's console is told why.
    let stopped = rt.block_on(async {
        use futures_util::StreamExt;
        // The time to fill the disk is its size over the programme's bitrate: about 30 s.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(150);
        loop {
            let m = tokio::time::timeout_at(deadline, console.next()).await;
            let Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) = m else {
                match m {
                    Ok(Some(Ok(_))) => continue,
                    other => panic!("the console heard no end of the recording in {:?}: {other:?}", started.elapsed()),
                }
            };
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "recording" {
                break v;
            }
        }
    });
    println!("full disk: the recording stopped {:?} after its start: {stopped}", started.elapsed());
    assert_eq!((stopped["on"].as_bool(), stopped["reason"].as_str()), (Some(false), Some("disk_full")), "{stopped}");
    let listed: Value = serde_json::from_str(&send("GET", &url("/recordings"), Some(&teacher), None, "").body).unwrap();
    let rec = &listed[0];
    assert_eq!(rec["state"], "interrupted", "what was written is kept: {listed}");
    let mut kept = 0;
    for layer in rec["layers"].as_array().unwrap() {
        let Some(closed) = layer["files"].as_array().unwrap().iter().find(|f| f["end_s"].is_number()) else {
            continue; // a layer that filled the disk before its first segment closed
        };
        // The small disk is the server's own (its mount namespace): fetched as a viewer would.
        let (status, body, ..) =
            fetch(&format!("{}{}", server.base, closed["url"].as_str().unwrap()), Some(&teacher), None);
        assert_eq!(status, 200, "a kept segment is served");
        let copy = server.data_dir.join(format!("kept-{}.webm", layer["rank"]));
        std::fs::write(&copy, &body).unwrap();
        kept += 1;
        let (video, audio, key, span) = inspect(&copy);
        println!("layer {}, kept: {video} video frames, {audio} audio buffers, {span:.2} s", layer["rank"]);
        assert!(key && video > 0 && audio > 0, "layer {}: what was written plays", layer["rank"]);
    }
    assert!(kept > 0, "segments closed before the disk was full are kept: {rec}");
    // The class goes on, and a new recording is refused cleanly while the disk is full.
    let again = send("POST", &url("/recording/start"), Some(&teacher), None, "");
    println!("a new recording on the full disk: {} {}", again.status, again.body);
    assert_eq!(again.status, 503, "{}", again.body);
    assert!(again.retry_after.is_some(), "503 with Retry-After");
    drop(studio);
}

/// The check `inspect` makes of every WebM segment (what Chromium's Media Source refuses)
/// finds a block out of order, on a hand-made cluster, and passes one in order.
#[test]
fn the_block_order_check_finds_what_a_browser_refuses() {
    // A segment of unknown size holding one cluster (timecode 100 ms) of two simple blocks.
    let cluster = |first: i16, second: i16| -> Vec<u8> {
        let block = |track: u8, rel: i16| {
            let r = rel.to_be_bytes();
            vec![0xA3, 0x84, 0x80 | track, r[0], r[1], 0x80]
        };
        let mut body = vec![0xE7, 0x81, 100];
        body.extend(block(1, first));
        body.extend(block(2, second));
        let mut c = vec![0x1F, 0x43, 0xB6, 0x75, 0x80 | body.len() as u8];
        c.extend(body);
        let mut seg = vec![0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        seg.extend(c);
        seg
    };
    assert_eq!(common::webm::blocks_in_order(&cluster(10, 10)), Ok(2));
    let refused = common::webm::blocks_in_order(&cluster(30, 10));
    assert_eq!(refused, Err("cluster at 100 ms: a block of track 2 at 110 ms after one at 130 ms".into()));
}
