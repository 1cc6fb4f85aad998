//! A real headless Chromium (Debian's) plays the class through WHEP from the `/watch` page,
//! inside a loopback-only network namespace, and decodes ≥ 20 frames per second.
//!
//! The outer test re-runs itself under `unshare -n` (root only); the inner run brings `lo` up,
//! starts the server and a str0m teacher, then drives Chromium with `tests/browser/watch.mjs`.

mod common;

use ardoise_loadgen::{Publisher, PublisherConfig};
use common::{TestServer, lo};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const NAME: &str = "chromium_plays_the_class_through_whep";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn chromium_plays_the_class_through_whep() {
    if common::in_private_network(NAME, common::browser_prerequisites) {
        inner();
    }
}

fn inner() {
    let server = TestServer::start(&[]);
    let teacher = server.token("teacher", Some("demo"));
    let stop = Arc::new(AtomicBool::new(false));
    let config = PublisherConfig {
        server: server.base.clone(),
        class: "demo".into(),
        token: teacher,
        bind: lo(),
        simulcast: true,
        record_payloads: false,
    };
    let publisher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut p = Publisher::connect(&config).expect("WHIP");
            p.run_until(|| stop.load(Ordering::Relaxed)).expect("publish");
            let _ = p.close();
        })
    };
    let artefacts = root().join("target/artefacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    let shot = artefacts.join("watch-1024x768.png");
    let url = format!("{}/watch?class=demo", server.base);
    let out = Command::new("node")
        .arg(root().join("tests/browser/watch.mjs"))
        .arg(&url)
        .arg(&shot)
        .arg("6")
        .output()
        .expect("run node");
    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    println!("chromium: {stdout}");
    let line = stdout.lines().last().expect("watch.mjs printed a result");
    let v: serde_json::Value = serde_json::from_str(line).expect("JSON result");
    let fps = v["fps"].as_f64().unwrap_or(0.0);
    assert!(v["error"].is_null(), "page error: {}", v["error"]);
    assert!(fps >= 20.0, "Chromium decoded {fps} fps");
    assert!(v["audioPacketsReceived"].as_u64().unwrap_or(0) > 50, "audio reached the browser");
    assert!(out.status.success(), "watch.mjs failed");
    assert!(shot.exists(), "screenshot saved");
}
