//! The studio on test sources against the real server: three decoded simulcast layers, a
//! live layout switch, a keyframe on request, and republishing after a server restart.

mod common;

use ardoise_loadgen::Subscriber;
use ardoise_studio::{Layout, SourceSpec, Studio, StudioConfig};
use common::{TestServer, free_port, lo};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const SECRET: &str = "studio-test-secret-0123456789abcdef";

/// Reassemble VP8 frames (RFC 7741) from RTP payloads; returns (frame, arrival of its last packet).
fn depacketize(r: &ardoise_loadgen::SubscriberReport) -> Vec<(Vec<u8>, Instant)> {
    let arrival: HashMap<u64, Instant> = r.video.iter().map(|p| (p.seq, p.at)).collect();
    let mut pkts: Vec<_> = r.video_payloads.clone();
    pkts.sort_by_key(|(s, _, _)| *s);
    pkts.dedup_by_key(|(s, _, _)| *s);
    let mut frames = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut expect: Option<u64> = None;
    for (seq, marker, p) in pkts {
        if expect.is_some_and(|e| e != seq) {
            cur.clear(); // a gap: drop the partial frame
        }
        expect = Some(seq + 1);
        let Some(i) = ardoise_sfu::keyframe::vp8_descriptor_len(&p) else { continue };
        if p[0] & 0x10 != 0 {
            cur.clear(); // start of a new frame
        }
        cur.extend_from_slice(&p[i..]);
        if marker {
            frames.push((std::mem::take(&mut cur), arrival[&seq]));
        }
    }
    frames
}

/// One decoded frame: (input index, width, height, centre RGB, RGB low in the picture — below
/// any slate text).
type DecodedFrame = (usize, u32, u32, [u8; 3], [u8; 3]);

/// Decode VP8 frames with GStreamer; returns what each decoded frame shows.
fn decode(frames: &[(Vec<u8>, Instant)]) -> Vec<DecodedFrame> {
    gst::init().unwrap();
    let p = gst::parse::launch(
        "appsrc name=src format=time caps=video/x-vp8 ! vp8dec ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink sync=false",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = p.by_name("src").unwrap().downcast::<gst_app::AppSrc>().unwrap();
    let sink = p.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
    p.set_state(gst::State::Playing).unwrap();
    // Start at the first keyframe.
    let first_key = frames.iter().position(|(f, _)| f.first().is_some_and(|b| b & 1 == 0)).unwrap_or(0);
    for (i, (f, _)) in frames.iter().enumerate().skip(first_key) {
        let mut b = gst::Buffer::from_slice(f.clone());
        b.get_mut().unwrap().set_pts(gst::ClockTime::from_useconds(i as u64 * 1000));
        src.push_buffer(b).unwrap();
    }
    src.end_of_stream().unwrap();
    let mut out = Vec::new();
    while let Ok(s) = sink.pull_sample() {
        let caps = s.caps().unwrap().structure(0).unwrap().to_owned();
        let (w, h) = (caps.get::<i32>("width").unwrap() as u32, caps.get::<i32>("height").unwrap() as u32);
        let buf = s.buffer().unwrap().map_readable().unwrap();
        let stride = (w as usize * 3).div_ceil(4) * 4;
        let o = (h as usize / 2) * stride + (w as usize / 2) * 3;
        let l = (h as usize * 7 / 8) * stride + (w as usize / 2) * 3;
        let idx = (s.buffer().unwrap().pts().unwrap().useconds() / 1000) as usize;
        out.push((idx, w, h, [buf[o], buf[o + 1], buf[o + 2]], [buf[l], buf[l + 1], buf[l + 2]]));
    }
    p.set_state(gst::State::Null).unwrap();
    out
}

fn is_blue(c: [u8; 3]) -> bool {
    c[2] > 150 && c[0] < 80 && c[1] < 80
}
fn is_red(c: [u8; 3]) -> bool {
    c[0] > 150 && c[1] < 80 && c[2] < 80
}
/// The slate's dark blue-grey (0x1f2a44).
fn is_slate(c: [u8; 3]) -> bool {
    c[0] < 70 && c[1] < 80 && (40..=110).contains(&c[2]) && c[2] > c[0] + 15
}

/// Each studio encodes three layers in real time and is timed: one at a time on 2 cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn studio_publishes_switches_layouts_and_survives_a_server_restart() {
    let _alone = alone();
    let http = format!("127.0.0.1:{}", free_port());
    let env = [("ARDOISE__AUTH__SECRET", SECRET)];
    let server = TestServer::start_on(&http, &env);
    let teacher = server.token("teacher", Some("demo"));
    let mut config = StudioConfig::test_sources(&server.base, "demo", &teacher);
    config.camera = SourceSpec::TestColor(0xff0000);
    config.document = SourceSpec::TestColor(0x0000ff);
    config.screen = SourceSpec::TestColor(0x00ff00);
    config.layout = Layout::Camera;
    let mut studio = Studio::start(config).expect("studio starts on test sources");

    // Three pupils, one per layer.
    let base = server.base.clone();
    let mut pupils: Vec<Subscriber> = ["high", "medium", "low"]
        .iter()
        .map(|l| {
            let token = server.join("demo", &format!("P{l}"));
            let mut s = Subscriber::connect_with_layer(&base, "demo", &token, lo(), Some(l)).expect("WHEP");
            s.keep_video = true;
            s
        })
        .collect();
    let [high, others @ ..] = pupils.as_mut_slice() else { unreachable!() };
    let run_all = |high: &mut Subscriber, others: &mut [Subscriber], d: Duration| {
        std::thread::scope(|sc| {
            for o in others.iter_mut() {
                sc.spawn(move || o.run_for(d).unwrap());
            }
            high.run_for(d).unwrap();
        });
    };
    run_all(high, others, Duration::from_secs(4));

    // Layout switch: the centre goes from the camera (red) to the document (blue).
    let switch_at = Instant::now();
    studio.pipeline().set_layout(Layout::Document);
    run_all(high, others, Duration::from_millis(1500));

    // A keyframe request from a pupil yields a keyframe quickly.
    high.request_keyframe();
    let asked = Instant::now();
    run_all(high, others, Duration::from_millis(800));
    let key_after = high.report.video.iter().find(|p| p.at > asked && p.keyframe_start).map(|p| p.at - asked);

    // The document camera dies mid-class: its slate shows, the class goes on; it comes back.
    let unplugged_at = Instant::now();
    studio.pipeline().mixer().unplug(ardoise_studio::layout::DOCUMENT);
    assert_eq!(studio.pipeline().mixer().health(), [true, false, true]);
    run_all(high, others, Duration::from_millis(4500));
    assert_eq!(studio.pipeline().mixer().health(), [true, true, true], "the document camera is used again");

    // Decode every layer.
    let expected = [(1280, 720, 30.0), (640, 360, 30.0), (320, 180, 15.0)];
    for (i, pupil) in pupils.iter().enumerate() {
        let frames = depacketize(&pupil.report);
        let decoded = decode(&frames);
        let (w, h, fps) = expected[i];
        assert!(!decoded.is_empty(), "layer {i} decodes");
        // A pupil may start on another layer for a moment (the first layer to send a keyframe);
        // from the switch on, every frame is at the wanted size.
        let from = decoded
            .iter()
            .position(|d| (d.1, d.2) == (w, h))
            .unwrap_or_else(|| panic!("layer {i}: no {w}x{h} frame: {:?}", decoded.first()));
        let steady = &decoded[from..];
        let frames_at: Vec<Instant> = frames.iter().map(|f| f.1).collect();
        let start = frames_at[steady[0].0];
        let span = frames.last().unwrap().1 - start;
        let want = if i == 1 {
            // The middle layer favours resolution once the layout shows the document:
            // 640x360@30 before the switch, 960x540@15 after it.
            let settled = switch_at + Duration::from_millis(300);
            assert!(
                steady.iter().filter(|d| frames_at[d.0] < switch_at).all(|d| (d.1, d.2) == (w, h)),
                "360p before the switch"
            );
            let after: Vec<_> = steady.iter().filter(|d| frames_at[d.0] > settled).collect();
            assert!(
                !after.is_empty() && after.iter().all(|d| (d.1, d.2) == (960, 540)),
                "the middle layer is 960x540 for the document"
            );
            (switch_at - start).as_secs_f64() * fps + (frames.last().unwrap().1 - switch_at).as_secs_f64() * 15.0
        } else {
            assert!(steady.iter().all(|d| (d.1, d.2) == (w, h)), "layer {i} stays {w}x{h}");
            span.as_secs_f64() * fps
        };
        println!(
            "layer {i}: {w}x{h}, {} frames decoded over {span:?} ({want:.0} expected), first {from} frames from another layer",
            steady.len()
        );
        assert!(steady.len() as f64 >= 0.9 * want, "layer {i}: {} frames decoded of {want:.0} expected", steady.len());
        assert!(span > Duration::from_secs(4), "layer {i} played long enough");
        if i == 0 {
            assert!(
                decoded.iter().any(|d| frames_at[d.0] < switch_at && is_red(d.3)),
                "camera (red) before the switch"
            );
            let first_blue = decoded
                .iter()
                .find(|d| frames_at[d.0] > switch_at && is_blue(d.3))
                .expect("document (blue) after the switch");
            let delay = frames_at[first_blue.0] - switch_at;
            println!("layout switch visible after {delay:?}");
            assert!(delay <= Duration::from_millis(300), "layout switch took {delay:?}");
            let slate = decoded
                .iter()
                .find(|d| frames_at[d.0] > unplugged_at && is_slate(d.4))
                .expect("the slate shows when the document camera dies");
            let slate_after = frames_at[slate.0] - unplugged_at;
            let back = decoded
                .iter()
                .find(|d| frames_at[d.0] > frames_at[slate.0] && is_blue(d.4))
                .expect("the document camera is shown again");
            let back_after = frames_at[back.0] - unplugged_at;
            println!("slate {slate_after:?} after the failure, document back after {back_after:?}");
            assert!(slate_after <= Duration::from_millis(500), "the slate took {slate_after:?}");
            assert!(back_after <= Duration::from_millis(4000), "the input came back after {back_after:?}");
        }
    }
    let key_after = key_after.expect("a keyframe after the request");
    println!("keyframe {key_after:?} after the PLI");
    assert!(key_after <= Duration::from_millis(200), "keyframe took {key_after:?}");
    assert!(studio.stats.keyframe_requests.load(Ordering::Relaxed) > 0);

    // Server restart: the studio republishes within 3 s, capture never stopped.
    assert_eq!(studio.stats.sessions.load(Ordering::Relaxed), 1);
    drop(pupils);
    drop(server);
    // The server stays down half a second (the outage itself, not a synchronisation).
    std::thread::sleep(Duration::from_millis(500));
    let frames_before = studio.stats.video_frames.load(Ordering::Relaxed);
    let server = TestServer::start_on(&http, &env);
    let restarted = Instant::now();
    common::eventually(Duration::from_secs(3), || {
        let sessions = studio.stats.sessions.load(Ordering::Relaxed);
        if sessions >= 2 && studio.stats.connected.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err(format!("studio not republished within 3 s of the restart ({sessions} sessions so far)"))
        }
    });
    println!("republished {:?} after the restart", restarted.elapsed());
    common::eventually(Duration::from_secs(2), || {
        let frames = studio.stats.video_frames.load(Ordering::Relaxed);
        if frames > frames_before { Ok(()) } else { Err(format!("no frame since the restart ({frames})")) }
    });
    let token = server.join("demo", "Back");
    let mut back = Subscriber::connect_with_layer(&server.base, "demo", &token, lo(), Some("high")).unwrap();
    back.run_for(Duration::from_millis(1500)).unwrap();
    assert!(back.report.video.len() > 30, "a pupil receives the studio again");
    studio.stop();
}

#[test]
fn a_missing_camera_is_a_clear_error() {
    let out = Command::new(common::bin())
        .args(["studio", "--server", "http://127.0.0.1:9", "--token", "x"])
        .env("ARDOISE__STUDIO__CAMERA", "/dev/video-missing-7")
        .env("ARDOISE__STUDIO__CONTROL", "")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("camera device '/dev/video-missing-7' not found; cameras found:"), "{err}");
}

/// Bits of an H.264 NAL unit, emulation-prevention bytes removed.
struct Bits {
    data: Vec<u8>,
    pos: usize,
}

impl Bits {
    fn new(nal: &[u8]) -> Bits {
        let mut data = Vec::with_capacity(nal.len());
        let mut zeros = 0;
        for &b in nal {
            if zeros >= 2 && b == 3 {
                zeros = 0;
                continue;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            data.push(b);
        }
        Bits { data, pos: 0 }
    }
    fn bit(&mut self) -> u32 {
        let b = (self.data[self.pos / 8] >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        b as u32
    }
    fn bits(&mut self, n: u32) -> u32 {
        (0..n).fold(0, |v, _| (v << 1) | self.bit())
    }
    fn ue(&mut self) -> u32 {
        let mut zeros = 0;
        while self.bit() == 0 {
            zeros += 1;
        }
        (1 << zeros) - 1 + self.bits(zeros)
    }
}

/// Profile and picture size from an SPS (baseline profiles: no chroma/scaling fields).
fn sps_size(sps: &[u8]) -> (u32, u32, u32) {
    let mut b = Bits::new(&sps[1..]);
    let profile = b.bits(8);
    b.bits(16); // constraint flags, level
    b.ue(); // sps id
    b.ue(); // log2_max_frame_num - 4
    match b.ue() {
        0 => {
            b.ue();
        }
        1 => panic!("pic_order_cnt_type 1 not expected from x264 baseline"),
        _ => {}
    }
    b.ue(); // max_num_ref_frames
    b.bit(); // gaps_in_frame_num_allowed
    let w = (b.ue() + 1) * 16;
    let map_units = b.ue() + 1;
    let frame_mbs_only = b.bit();
    (profile, w, map_units * 16 * (2 - frame_mbs_only))
}

#[test]
fn studio_publishes_h264_constrained_baseline_for_older_ipads() {
    let _alone = alone();
    let server = TestServer::start(&[]);
    let teacher = server.token("teacher", Some("demo"));
    let mut config = StudioConfig::test_sources(&server.base, "demo", &teacher);
    config.codec = ardoise_studio::VideoCodec::H264;
    config.speaker = ardoise_studio::Speaker::None;
    config.follow_class = false;
    // Inputs on the device path, each at its own rate, as real cameras and screen grabs run:
    // the mix still goes out at 30 fps (the document camera's missing slots are filled).
    config.camera = "test:ball@30".parse().unwrap();
    config.document = "test:smpte@15".parse().unwrap();
    config.screen = "test:pinwheel@10".parse().unwrap();
    config.layout = Layout::DocumentCamera;
    let mut studio = Studio::start(config).expect("studio starts with x264");
    let token = server.join("demo", "Ipad");
    let mut pupil = Subscriber::connect_with_layer(&server.base, "demo", &token, lo(), Some("high")).unwrap();
    pupil.keep_video = true;
    pupil.run_for(Duration::from_secs(4)).unwrap();
    let late = studio.pipeline().mixer().late_lead_frames();
    studio.stop();

    // NAL units of every packet: single NAL, STAP-A (24) aggregates, FU-A (28) fragments.
    let mut sizes = Vec::new();
    let mut idr = 0;
    for (_, _, p) in &pupil.report.video_payloads {
        let nals: Vec<&[u8]> = match p[0] & 0x1f {
            24 => {
                let mut v = Vec::new();
                let mut i = 1;
                while i + 2 <= p.len() {
                    let n = u16::from_be_bytes([p[i], p[i + 1]]) as usize;
                    v.push(&p[i + 2..(i + 2 + n).min(p.len())]);
                    i += 2 + n;
                }
                v
            }
            28 if p[1] & 0x80 != 0 => vec![&p[1..]], // first fragment: its FU header carries the type
            28 => vec![],
            _ => vec![&p[..]],
        };
        for nal in nals {
            match nal[0] & 0x1f {
                7 => sizes.push(sps_size(nal)),
                5 => idr += 1,
                _ => {}
            }
        }
    }
    let frames: std::collections::HashSet<u32> = pupil.report.video.iter().map(|p| p.ts).collect();
    println!(
        "H.264: {} frames in 4 s, SPS {:?}, {idr} IDR slices, {late} late camera frames",
        frames.len(),
        sizes.first()
    );
    // Every layer is constrained baseline; the pupil that asked for the top layer ends on it
    // (until the top layer's first keyframe it may be shown the middle one: a picture sooner).
    assert!(sizes.iter().all(|s| s.0 == 66), "constrained baseline (66): {sizes:?}");
    assert_eq!(sizes.last(), Some(&(66, 1280, 720)), "the top layer, 1280x720: {sizes:?}");
    assert!(!sizes.is_empty() && idr > 0, "a keyframe with its SPS reaches the pupil");
    assert!(frames.len() >= 90, "≈ 30 fps of H.264 frames: {}", frames.len());
}
