//! The web apps in a real headless Chromium (Debian's), inside a loopback-only network
//! namespace: the studio (test sources) teaches, three pupil pages play and interact, the
//! teacher console runs the class, the admin dashboard watches. `tests/browser/class.mjs`
//! drives the pages; this test starts the server and the studio and checks the verdict.
//!
//! 1. three pupils play video (≥ 20 fps) and audio;
//! 2. a raised hand reaches the teacher within 1 s; chat goes both ways;
//! 3. the floor: the other pupils and the studio receive the pupil's voice; revoke stops it;
//! 4. a removed pupil's page says so and its token is refused;
//! 5. the admin dashboard lists the class with its participants;
//! 6. screenshots of each page at 1024x768 and 768x1024 (target/artefacts);
//! 7. teaching from the browser alone: the console's camera (WHIP, simulcast) reaches a pupil,
//!    and the studio's picture comes back when it stops;
//! 8. a network drop (the server killed and restarted): a pupil page shows its status and
//!    plays again by itself.

mod common;

use common::{TestServer, bin, free_port};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const NAME: &str = "pupils_teacher_and_admin_pages_run_a_class_in_chromium";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn pupils_teacher_and_admin_pages_run_a_class_in_chromium() {
    if common::in_private_network(NAME, common::browser_prerequisites) {
        inner();
    }
}

/// `ardoise studio` on test sources, killed on drop.
struct StudioProcess(std::process::Child);

impl Drop for StudioProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The media worker hosting `class`, from the admin API.
fn worker_of(server: &TestServer, admin: &str, class: &str) -> u64 {
    let r = common::send("GET", &format!("{}/api/admin/classes", server.base), Some(admin), None, "");
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    v["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == class)
        .and_then(|c| c["worker"].as_u64())
        .expect("the class's worker")
}

fn inner() {
    let mut server = TestServer::start(&[("ARDOISE__MEDIA__FAULT_INJECTION", "true"), ("RUST_BACKTRACE", "0")]);
    let teacher = server.token("teacher", Some("demo"));
    let admin = server.token("admin", None);
    let control = format!("127.0.0.1:{}", free_port());
    let _studio = StudioProcess(
        Command::new(bin())
            .args(["studio", "--server", &server.base, "--class", "demo", "--token", &teacher])
            .env("ARDOISE__STUDIO__CONTROL", &control)
            .env("ARDOISE__STUDIO__SPEAKER", "none")
            // A top layer narrower than the browser camera's 1280 px tells the two sources apart.
            .env("ARDOISE__STUDIO__LAYERS", r#"["h:960x540@30:1200", "m:480x270@30:400", "l:320x180@15:150"]"#)
            .env("ARDOISE__STUDIO__CONTENT_LAYERS", r#"["h:960x540@30:1200", "m:480x270@30:400", "l:320x180@15:150"]"#)
            .env("ARDOISE_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start the studio"),
    );
    let state_url = format!("http://{control}/state");
    common::eventually(Duration::from_secs(20), || {
        let state = ureq::get(&state_url)
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
        match state {
            Some(v) if v["connected"] == true && v["class_link"] == true => Ok(()),
            Some(v) => Err(format!("the studio has not both published and joined the class events: {v}")),
            None => Err("the studio's control API does not answer".into()),
        }
    });

    let artefacts = root().join("target/artefacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    let mut node = Command::new("node")
        .arg(root().join("tests/browser/class.mjs"))
        .args([&server.base, &teacher, &admin])
        .arg(&artefacts)
        .arg(&state_url)
        .arg("960") // the studio's top layer in this test
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run node");
    let mut to_node = node.stdin.take().unwrap();
    let mut last = String::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(node.stdout.take().unwrap())) {
        let line = line.expect("read class.mjs");
        if line == "RESTART-SERVER" {
            server.restart();
            std::io::Write::write_all(&mut to_node, b"restarted\n").expect("answer class.mjs");
        } else if line == "PANIC-WORKER" {
            let worker = worker_of(&server, &admin, "demo");
            let body = serde_json::json!({"fault": "worker_panic", "worker": worker}).to_string();
            let r = common::send(
                "POST",
                &format!("{}/api/admin/faults", server.base),
                Some(&admin),
                Some("application/json"),
                &body,
            );
            assert_eq!(r.status, 204, "fault injection: {}", r.body);
            std::io::Write::write_all(&mut to_node, b"panicked\n").expect("answer class.mjs");
        } else {
            last = line;
        }
    }
    let status = node.wait().expect("class.mjs exit");
    println!("chromium: {last}");
    let line = last.as_str();
    let v: serde_json::Value = serde_json::from_str(line).expect("JSON result");
    assert!(v["error"].is_null(), "page error: {}", v["error"]);
    let pupils = v["pupils"].as_array().expect("pupils");
    assert_eq!(pupils.len(), 3, "three pupil pages");
    for p in pupils {
        assert!(p["fps"].as_f64().unwrap_or(0.0) >= 20.0, "{} decoded {} fps", p["name"], p["fps"]);
        assert!(p["audioPackets"].as_u64().unwrap_or(0) > 50, "{} received audio", p["name"]);
    }
    let hand_ms = v["handMs"].as_f64().unwrap_or(f64::MAX);
    assert!(hand_ms < 1000.0, "the raised hand showed on the console after {hand_ms} ms");
    assert_eq!(v["chatBothWays"], true, "chat both ways");
    assert_eq!(v["floorHeardByPupils"], true, "the other pupils hear the floor");
    assert_eq!(v["floorHeardByStudio"], true, "the studio hears the floor");
    assert_eq!(v["revokeStops"], true, "revoking the floor stops the voice");
    assert_eq!(v["removedShown"], true, "the removed pupil's page says so");
    assert_eq!(v["removedTokenStatus"], 401, "the removed pupil's token is refused");
    assert_eq!(v["adminListsClass"], true, "the admin dashboard lists the class and its members");
    let browser_fps = v["browserTeachingFps"].as_f64().unwrap_or(0.0);
    assert!(browser_fps >= 20.0, "teaching from the browser: the pupil decoded {browser_fps} fps");
    assert_eq!(v["studioWidth"], 960, "the studio's top layer");
    assert!(
        v["browserWidth"].as_u64().is_some_and(|w| w != 960 && w > 0),
        "the browser's camera: {}",
        v["browserWidth"]
    );
    assert_eq!(v["backToStudio"], true, "the studio's picture comes back when the browser stops");
    let shots = v["screenshots"].as_array().expect("screenshots");
    assert_eq!(shots.len(), 6, "three pages, two sizes: {shots:?}");
    for s in shots {
        assert!(PathBuf::from(s.as_str().unwrap()).exists(), "{s} saved");
    }
    assert_eq!(v["reconnected"], true, "the pupil page plays again after the server came back");
    let back = v["reconnectMs"].as_f64().unwrap_or(f64::MAX);
    assert!(back < 10_000.0, "the pupil page took {back} ms to play again");
    assert!(!v["dropStatus"].as_array().unwrap().is_empty(), "the page said what it was doing during the drop");
    assert_eq!(v["workerRecovered"], true, "the pupil page plays again after its media worker was replaced");
    let v_recording = v["recordingShown"].as_bool().unwrap_or(false);
    let back = v["workerRecoverMs"].as_f64().unwrap_or(f64::MAX);
    assert!(back < 15_000.0, "the pupil page took {back} ms to play again after the worker panic");
    let overview = common::send("GET", &format!("{}/api/admin/classes", server.base), Some(&admin), None, "");
    let v: serde_json::Value = serde_json::from_str(&overview.body).unwrap();
    let restarts: u64 = v["workers"].as_array().unwrap().iter().map(|w| w["restarts"].as_u64().unwrap_or(0)).sum();
    assert_eq!(restarts, 1, "the admin sees the worker's restart");
    assert!(v_recording, "the pupils' pages showed the recording the teacher started");
    assert!(status.success(), "class.mjs failed");
}
