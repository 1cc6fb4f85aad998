//! One large class over both media workers: past `media.fan_out_peers` on its home worker,
//! a class's next pupils go to a fan-out room on the other worker, which its home room feeds
//! in-process (`ardoise_sfu::fed`).

mod common;

use ardoise_client::Peer;
use ardoise_loadgen::Subscriber;
use common::publishing::Publishing;
use common::{TestServer, lo, placed, send, wait_until};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use str0m::Event;
use str0m::media::{Direction, MediaKind};

/// One media worker in the admin overview: participants, fan-out items out, in, pupils
/// served from a keyframe cache.
type WorkerCounts = (u64, u64, u64, u64);

/// The media workers of the admin overview.
fn workers(server: &TestServer, admin: &str) -> Vec<WorkerCounts> {
    let r = send("GET", &format!("{}/api/admin/classes", server.base), Some(admin), None, "");
    assert_eq!(r.status, 200, "{}", r.body);
    let overview: Value = serde_json::from_str(&r.body).unwrap();
    overview["workers"]
        .as_array()
        .map(|ws| {
            ws.iter()
                .map(|w| {
                    let n = |k: &str| w[k].as_u64().unwrap_or(0);
                    (n("participants"), n("fed_out"), n("fed_in"), n("keyframe_replays"))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_large_class_spreads_its_pupils_over_both_workers_and_every_pupil_gets_the_class() {
    // Past 4 peers on the class's worker, its next pupils go to the other worker while that
    // one serves fewer (by 10): 20 pupils split about 10 and 10.
    let server = TestServer::start(&[("ARDOISE__MEDIA__WORKERS", "2"), ("ARDOISE__MEDIA__FAN_OUT_PEERS", "4")]);
    let admin = server.token("admin", None);
    let teacher = server.token("teacher", Some("demo"));
    let json = server.data_dir.join("fan_out.json");
    let run = std::process::Command::new(common::bin())
        .args(["loadgen", "--server", &server.base, "--class", "demo", "--pupils", "20"])
        .args(["--ramp", "20", "--duration", "6", "--token", &teacher, "--json"])
        .arg(&json)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run loadgen");
    // While it runs: pupils on both workers, and the home room feeds the other one.
    let split = wait_until(Duration::from_secs(20), "the class's pupils on both workers, fed", || {
        let ws = workers(&server, &admin);
        (ws.len() == 2
            && ws.iter().map(|w| w.0).sum::<u64>() == 21
            && ws.iter().all(|w| w.0 >= 5)
            && ws.iter().any(|w| w.1 > 0 && w.2 == 0)
            && ws.iter().any(|w| w.2 > 0 && w.1 == 0))
        .then_some(ws)
    });
    println!("FAN-OUT (participants, items out, items in) per worker: {split:?}");
    let (_, a_peers) = placed(&server, &admin, "demo").expect("the class in the overview");
    assert_eq!(a_peers, 21, "the overview counts the class's participants on both workers");
    let out = run.wait_with_output().expect("loadgen ends");
    assert!(out.status.success(), "loadgen failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["pupils_ok"], 20, "{v}");
    for p in v["per_pupil"].as_array().unwrap() {
        // Every pupil, on either worker, hears the teacher, sees the class from a keyframe
        // (asked of the teacher through the home room, or from the fan-out room's cache),
        // and loses nothing.
        assert!(p["audio_packets"].as_u64().unwrap() > 100, "{p}");
        assert!(p["video_packets"].as_u64().unwrap() > 100, "{p}");
        assert!(p["time_to_first_frame_ms"].as_f64().unwrap() < 2000.0, "{p}");
        assert!(p["video_loss"].as_f64().unwrap() < 0.01, "{p}");
        assert!(!p["video_stopped"].as_bool().unwrap(), "{p}");
    }
    println!("FAN-OUT mean video {} kbit/s, e2e p95 {} ms", v["mean_video_kbps"], v["e2e_delay_p95_ms"]);
}

/// A class of 15 adaptive pupils over both workers (the load generator's, 9 at home and 6
/// in the fan-out room), every pupil on the high layer; then a late pupil on the low layer,
/// in the fan-out room. Returns its first picture's time, and the workers before and after.
fn a_late_pupil_in_the_fan_out_room(
    settings: &[(&str, &str)],
) -> (Option<Duration>, Vec<WorkerCounts>, Vec<WorkerCounts>) {
    let mut all = vec![("ARDOISE__MEDIA__WORKERS", "2"), ("ARDOISE__MEDIA__FAN_OUT_PEERS", "4")];
    all.extend_from_slice(settings);
    let server = TestServer::start(&all);
    let admin = server.token("admin", None);
    let teacher = server.token("teacher", Some("demo"));
    let mut run = std::process::Command::new(common::bin())
        .args(["loadgen", "--server", &server.base, "--class", "demo", "--pupils", "15"])
        // Longer than the test can take (its waits add up to 28 s): killed at its end.
        .args(["--ramp", "20", "--duration", "60", "--token", &teacher])
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run loadgen");
    // Every adaptive pupil on the high layer: nobody asks for the low layer's keyframe now.
    let before = wait_until(Duration::from_secs(20), "16 peers over both workers, every pupil on high", || {
        let ws = workers(&server, &admin);
        let r = send("GET", &format!("{}/api/admin/classes", server.base), Some(&admin), None, "");
        let overview: Value = serde_json::from_str(&r.body).ok()?;
        let class = overview["classes"].as_array()?.iter().find(|c| c["id"] == "demo")?.clone();
        let pupils: Vec<&Value> =
            class["participants"].as_array()?.iter().filter(|p| p["kind"] == "subscriber").collect();
        (ws.iter().map(|w| w.0).sum::<u64>() == 16
            && pupils.len() == 15
            && pupils.iter().all(|p| p["layer"] == "high")
            && ws.iter().all(|w| w.0 >= 5))
        .then_some(ws)
    });
    let token = server.join("demo", "Tard");
    let mut late = Subscriber::connect_with_layer(&server.base, "demo", &token, lo(), Some("low")).expect("WHEP");
    let fan_out = before.iter().position(|w| w.2 > 0).expect("a fed worker");
    wait_until(Duration::from_secs(5), "the late pupil in the fan-out room", || {
        let after = workers(&server, &admin);
        (after[fan_out].0 == before[fan_out].0 + 1 && after.iter().map(|w| w.0).sum::<u64>() == 17).then_some(())
    });
    late.run_for(Duration::from_secs(3)).expect("the late pupil connects");
    let first = late.report().first_picture();
    // The overview's counters are at most 500 ms old: read them once they show the pupil's
    // picture's time has passed.
    std::thread::sleep(Duration::from_millis(600));
    let after = workers(&server, &admin);
    println!("FAN-OUT late pupil's first picture after {first:?}; workers before {before:?}, after {after:?}");
    let _ = run.kill();
    let _ = run.wait();
    (first, before, after)
}

#[test]
fn a_pupil_joining_a_fan_out_room_late_gets_a_keyframe_asked_of_the_teacher_through_the_home_room() {
    // No keyframe cache: a picture for a late pupil can only come from a keyframe asked of
    // the teacher (the load generator's teacher sends one on request, otherwise every 10 s).
    let (first, _, _) = a_late_pupil_in_the_fan_out_room(&[("ARDOISE__MEDIA__KEYFRAME_REPLAY_MS", "0")]);
    assert!(first.is_some_and(|t| t < Duration::from_secs(2)), "first picture: {first:?}");
}

#[test]
fn a_pupil_joining_a_fan_out_room_late_is_served_from_its_keyframe_cache() {
    // A cache that keeps the low layer's last keyframe (the pupils joined at the start, the
    // teacher's clip loops every 10 s): the late pupil's picture comes from the fan-out
    // room's cache, as it would at home, with no keyframe asked of the teacher.
    let (first, before, after) = a_late_pupil_in_the_fan_out_room(&[
        ("ARDOISE__MEDIA__KEYFRAME_REPLAY_MS", "15000"),
        ("ARDOISE__MEDIA__KEYFRAME_REPLAY_KIB", "2048"),
    ]);
    assert!(first.is_some_and(|t| t < Duration::from_secs(2)), "first picture: {first:?}");
    let fan_out = before.iter().position(|w| w.2 > 0).expect("a fed worker");
    assert_eq!(after[fan_out].3, before[fan_out].3 + 1, "the fan-out room served the late pupil from its cache");
}

/// A pupil as a page plays the class: the class's audio and video, then the floor's voice on
/// a second audio m-line. Counts the packets of each of its m-lines.
struct PagePupil {
    peer: Peer,
    /// Its WHEP session.
    resource: String,
    mids: Vec<str0m::media::Mid>,
    packets: Vec<u64>,
}

impl PagePupil {
    fn join(server: &TestServer, token: &str) -> PagePupil {
        let mut peer = Peer::new(lo()).expect("a peer");
        let mut api = peer.rtc.sdp_api();
        let mids = vec![
            api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None),
            api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None),
            api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None),
        ];
        let (offer, pending) = api.apply().expect("an offer");
        let url = format!("{}/whep/demo", server.base);
        let session = ardoise_client::http::offer_to(&url, Some(token), &offer.to_sdp_string()).expect("WHEP");
        peer.accept_answer(pending, &session.answer).expect("the answer");
        PagePupil { peer, resource: session.resource, packets: vec![0; mids.len()], mids }
    }

    /// Receive for `d`.
    fn run_for(&mut self, d: Duration) {
        let end = Instant::now() + d;
        let mut events = Vec::new();
        while Instant::now() < end {
            self.peer.drive(Instant::now() + Duration::from_millis(50), &mut events).expect("the pupil's session");
            for e in events.drain(..) {
                if let Event::RtpPacket(p) = e {
                    let mid = self.peer.rtc.direct_api().stream_rx(&p.header.ssrc).map(|rx| rx.mid());
                    if let Some(i) = self.mids.iter().position(|m| Some(*m) == mid) {
                        self.packets[i] += 1;
                    }
                }
            }
        }
    }

    /// The floor's voice packets so far.
    fn floor_voice(&self) -> u64 {
        self.packets[2]
    }
}

/// Wait until the home hands nothing over any more (its count stays the same over two
/// readings) and `empty` says the fan-out room is gone; the workers then.
fn home_stops_feeding(server: &TestServer, admin: &str, empty: impl Fn(&[WorkerCounts]) -> bool) -> Vec<WorkerCounts> {
    let fed_out = |ws: &[WorkerCounts]| ws.iter().map(|w| w.1).sum::<u64>();
    wait_until(Duration::from_secs(10), "the home no longer feeding", || {
        let before = workers(server, admin);
        // Two readings further apart than the overview's cache (500 ms): a running feed adds
        // tens of packets meanwhile.
        std::thread::sleep(Duration::from_millis(1200));
        let after = workers(server, admin);
        (empty(&after) && fed_out(&after) == fed_out(&before)).then_some(after)
    })
}

/// `n` undriven pupils (on the low layer), until the home serves 10 peers: the next pupil
/// is fanned out.
fn fill_home(server: &TestServer, admin: &str, n: usize) -> Vec<Subscriber> {
    let pupils = (0..n)
        .map(|i| {
            let token = server.join("demo", &format!("Élève {i}"));
            Subscriber::connect_with_layer(&server.base, "demo", &token, lo(), Some("low")).expect("WHEP")
        })
        .collect();
    wait_until(Duration::from_secs(10), "10 peers at home", || {
        (workers(server, admin).iter().map(|w| w.0).max() == Some(10)).then_some(())
    });
    pupils
}

#[test]
fn a_pupil_in_a_fan_out_room_hears_the_floor_and_stops_hearing_it_when_the_teacher_mutes_it() {
    // Undriven pupils fill the home worker: they must outlive a slow run.
    let server = TestServer::start(&[
        ("ARDOISE__MEDIA__WORKERS", "2"),
        ("ARDOISE__MEDIA__FAN_OUT_PEERS", "4"),
        ("ARDOISE__MEDIA__CONNECT_TIMEOUT_SECS", "300"),
    ]);
    let admin = server.token("admin", None);
    let teacher = server.token("teacher", Some("demo"));
    let _class = Publishing::class(&server.base, "demo", teacher.clone());
    // Léa gets the floor (with her camera) and speaks, from the home worker.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let lea = server.join("demo", "Léa");
    let (mut teacher_ws, _) = rt.block_on(common::ws::hello(&server, "demo", &teacher));
    let (mut lea_ws, welcome) = rt.block_on(common::ws::hello(&server, "demo", &lea));
    let lea_id = welcome["you"]["id"].as_str().expect("her id").to_owned();
    rt.block_on(common::ws::send(&mut teacher_ws, json!({"type": "grant_floor", "pupil": lea_id, "camera": true})));
    rt.block_on(common::ws::wait_for(&mut lea_ws, "floor"));
    let _floor = Publishing::floor(&server.base, "demo", lea);
    // Eight pupils: the home worker serves 10 peers.
    let _home = fill_home(&server, &admin, 8);
    // Hugo, next, is in the fan-out room.
    let hugo = server.join("demo", "Hugo");
    let mut page = PagePupil::join(&server, &hugo);
    let ws = wait_until(Duration::from_secs(10), "Hugo in the fan-out room", || {
        let ws = workers(&server, &admin);
        ws.iter().any(|w| w.0 == 1 && w.2 > 0).then_some(ws)
    });
    println!("FAN-OUT workers (participants, out, in): {ws:?}");
    let started = Instant::now();
    // Until the floor's voice and the class's audio and video have each come 50 times (the
    // video starts at its first keyframe, a little after the voices).
    while page.packets.iter().any(|&n| n < 50) && started.elapsed() < Duration::from_secs(15) {
        page.run_for(Duration::from_millis(200));
    }
    println!("FAN-OUT Hugo's packets per m-line (class audio, class video, floor voice): {:?}", page.packets);
    assert!(page.floor_voice() >= 50, "the floor's voice reaches the fan-out room: {:?}", page.packets);
    assert!(page.packets[0] >= 50 && page.packets[1] >= 50, "and the class: {:?}", page.packets);
    // The teacher mutes Léa: her voice stops in the fan-out room too (after what was in flight).
    rt.block_on(common::ws::send(&mut teacher_ws, json!({"type": "mute", "pupil": lea_id, "muted": true})));
    page.run_for(Duration::from_secs(1));
    let (voice, class) = (page.floor_voice(), page.packets[0]);
    page.run_for(Duration::from_secs(2));
    println!(
        "FAN-OUT after the mute, 2 s: floor voice +{}, class audio +{}",
        page.floor_voice() - voice,
        page.packets[0] - class
    );
    assert_eq!(page.floor_voice(), voice, "no floor voice while muted");
    assert!(page.packets[0] > class + 50, "the class goes on: {:?}", page.packets);
    // Hugo leaves: his room closes, and the home stops feeding it.
    assert_eq!(ardoise_client::http::delete(&page.resource, &hugo).expect("DELETE"), 200);
    drop(page);
    let stopped = home_stops_feeding(&server, &admin, |ws| ws.iter().any(|w| w.2 > 0 && w.0 == 0));
    println!("FAN-OUT after Hugo left: {stopped:?}");
    assert_eq!(stopped.iter().map(|w| w.0).sum::<u64>(), 10, "the home's peers stay: {stopped:?}");
}

#[test]
fn when_the_fan_out_worker_panics_only_its_pupils_reconnect_and_the_home_stops_feeding_it() {
    let server = TestServer::start(&[
        ("ARDOISE__MEDIA__WORKERS", "2"),
        ("ARDOISE__MEDIA__FAN_OUT_PEERS", "4"),
        ("ARDOISE__MEDIA__CONNECT_TIMEOUT_SECS", "300"),
        ("ARDOISE__MEDIA__FAULT_INJECTION", "true"),
        ("RUST_BACKTRACE", "0"),
    ]);
    let admin = server.token("admin", None);
    let teacher = server.token("teacher", Some("demo"));
    let _class = Publishing::class(&server.base, "demo", teacher.clone());
    // Nine undriven pupils: the home serves 10 peers; the next pupil is fanned out.
    let _home = fill_home(&server, &admin, 9);
    let hugo = server.join("demo", "Hugo");
    let mut page = PagePupil::join(&server, &hugo);
    // Hugo's page and the teacher's console listen to the class events.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mut hugo_ws, _) = rt.block_on(common::ws::hello(&server, "demo", &hugo));
    let (mut teacher_ws, _) = rt.block_on(common::ws::hello(&server, "demo", &teacher));
    let fan_out = wait_until(Duration::from_secs(10), "Hugo in the fan-out room, fed", || {
        workers(&server, &admin).iter().position(|w| w.0 == 1 && w.2 > 0)
    });
    page.run_for(Duration::from_secs(1));
    assert!(page.packets[0] > 20, "Hugo hears the class: {:?}", page.packets);
    // The fan-out worker panics: Hugo's session is gone; the fresh worker has no room, and
    // the home stops feeding it.
    let body = json!({"fault": "worker_panic", "worker": fan_out}).to_string();
    let r = send("POST", &format!("{}/api/admin/faults", server.base), Some(&admin), Some("application/json"), &body);
    assert_eq!(r.status, 204, "{}", r.body);
    drop(page);
    // Hugo's page is told to reconnect; the teacher's console is not (its class goes on).
    rt.block_on(common::ws::wait_for(&mut hugo_ws, "reconnect"));
    let teacher_heard = rt.block_on(kinds_for(&mut teacher_ws, Duration::from_secs(2)));
    assert!(!teacher_heard.iter().any(|k| k == "reconnect"), "the teacher was told to reconnect: {teacher_heard:?}");
    let stopped = home_stops_feeding(&server, &admin, |ws| ws[fan_out].0 == 0);
    println!("FAN-OUT after the fan-out worker's panic: {stopped:?}");
    // Hugo comes back (his page reconnects): in a fan-out room on the fresh worker, fed again.
    let mut again = PagePupil::join(&server, &hugo);
    wait_until(Duration::from_secs(10), "Hugo back in the fan-out room", || {
        (workers(&server, &admin)[fan_out].0 == 1).then_some(())
    });
    again.run_for(Duration::from_secs(2));
    println!("FAN-OUT Hugo back: {:?}", again.packets);
    assert!(again.packets[0] > 20 && again.packets[1] > 20, "Hugo gets the class again: {:?}", again.packets);
}

/// The kinds of the class events `ws` receives for `d`.
async fn kinds_for(ws: &mut common::ws::Ws, d: Duration) -> Vec<String> {
    use futures_util::StreamExt;
    let end = tokio::time::Instant::now() + d;
    let mut kinds = Vec::new();
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(end, ws.next()).await {
        if let Ok(text) = m.to_text()
            && let Ok(v) = serde_json::from_str::<Value>(text)
        {
            kinds.push(v["type"].as_str().unwrap_or_default().to_owned());
        }
    }
    kinds
}
