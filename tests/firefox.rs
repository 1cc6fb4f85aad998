//! A second browser engine (issue 17): the pupil page in Debian's firefox-esr, driven over
//! WebDriver BiDi (`tests/browser/firefox.mjs`, puppeteer-core), in a private network
//! namespace. The server runs on a host namespace of its own reached over a veth pair
//! (Firefox never pairs its candidates with a loopback server's, whatever its preferences).
//! A synthetic teacher publishes VP8 simulcast and Opus; the Firefox pupil joins with the
//! code, plays video and audio, and raises a hand, which the teacher's class events receive.

mod common;

use ardoise_loadgen::{Publisher, PublisherConfig};
use common::ws::{hello, next};
use common::{HostNamespace, TestServer, in_private_network};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const NAME: &str = "a_pupil_plays_the_class_and_raises_a_hand_in_firefox";

fn prerequisites() -> Result<(), String> {
    for p in ["/usr/bin/firefox-esr", "/usr/bin/unshare"] {
        if !std::path::Path::new(p).exists() {
            return Err(format!("{p} is missing (make test installs it)"));
        }
    }
    let modules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/node_modules/puppeteer-core");
    if !modules.exists() {
        return Err("tests/browser/node_modules/puppeteer-core is missing (make test runs npm ci)".into());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pupil_plays_the_class_and_raises_a_hand_in_firefox() {
    if !in_private_network(NAME, prerequisites) {
        return;
    }
    let host = HostNamespace::new("ff", "10.78.0");
    let server =
        TestServer::start_on("10.78.0.2:0", &[("ARDOISE_TEST_NETNS", &host.name), ("ARDOISE_TEST_UDP", "10.78.0.2:0")]);
    let teacher = server.token("teacher", Some("demo"));
    let config = PublisherConfig {
        server: server.base.clone(),
        class: "demo".into(),
        token: teacher.clone(),
        bind: "10.78.0.1".parse().unwrap(),
        simulcast: true,
        record_payloads: false,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let teaching = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut p = Publisher::connect(&config).expect("the teacher publishes");
            p.run_until(|| stop.load(Ordering::Relaxed)).expect("publishing")
        })
    };
    let (mut console, _) = hello(&server, "demo", &teacher).await;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let base = server.base.clone();
    let firefox = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(root.join("tests/browser/firefox.mjs"))
            .args([base.as_str(), "demo", "Fox"])
            .current_dir(root.join("tests/browser"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run node")
    });
    // The teacher's socket hears the Firefox pupil's hand (read on for a while after the
    // page closed: the event may still be on its way).
    let mut hand = false;
    let mut finished: Option<std::time::Instant> = None;
    while let Some(m) = next(&mut console).await.or(Some(serde_json::Value::Null)) {
        if m["type"] == "hand" && m["raised"] == true {
            hand = true;
            break;
        }
        if firefox.is_finished() && finished.get_or_insert_with(std::time::Instant::now).elapsed().as_secs() >= 5 {
            break;
        }
    }
    let out = firefox.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let _ = teaching.join();
    let line = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_owned();
    println!("firefox.mjs: {line}");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("firefox.mjs printed: {line}"));
    assert!(v["error"].is_null(), "firefox.mjs: {}", v["error"]);
    assert!(hand, "the teacher saw the Firefox pupil's hand");
}
