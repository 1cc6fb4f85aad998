//! Where classes go among a server's media workers: by load, not by count.

mod common;

use ardoise_loadgen::{Publisher, PublisherConfig, Subscriber};
use common::{TestServer, lo, placed, send, wait_until};
use serde_json::{Value, json};
use std::time::Duration;

fn teacher(server: &TestServer, class: &str, token: &str) -> Publisher {
    let config = PublisherConfig {
        server: server.base.clone(),
        class: class.into(),
        token: token.to_owned(),
        bind: lo(),
        simulcast: true,
        record_payloads: false,
    };
    Publisher::connect(&config).expect("the teacher publishes")
}

fn new_class(server: &TestServer, admin: &str, id: &str) -> String {
    let body = json!({"id": id, "title": id}).to_string();
    let r = send("POST", &format!("{}/api/classes", server.base), Some(admin), Some("application/json"), &body);
    assert_eq!(r.status, 201, "{}", r.body);
    let created: Value = serde_json::from_str(&r.body).unwrap();
    created["teacher_token"].as_str().unwrap().to_owned()
}

#[test]
fn a_new_class_goes_to_the_worker_with_fewer_pupils_not_fewer_classes() {
    // The peers are never driven through ICE: they must outlive a slow run.
    let server =
        TestServer::start(&[("ARDOISE__MEDIA__WORKERS", "2"), ("ARDOISE__MEDIA__CONNECT_TIMEOUT_SECS", "300")]);
    let admin = server.token("admin", None);
    // Class A: its teacher and 12 pupils, on one worker.
    let a_token = server.token("teacher", Some("demo"));
    let _a = teacher(&server, "demo", &a_token);
    let _pupils: Vec<Subscriber> = (0..12)
        .map(|i| {
            let token = server.join("demo", &format!("Élève {i}"));
            Subscriber::connect_with_layer(&server.base, "demo", &token, lo(), Some("low")).expect("WHEP")
        })
        .collect();
    let (wa, _) = wait_until(Duration::from_secs(5), "class A's 13 peers in the overview", || {
        placed(&server, &admin, "demo").filter(|&(_, n)| n >= 13)
    });
    // Class B: only its teacher, on the other worker (both rules agree).
    let b_token = new_class(&server, &admin, "cm1-b");
    let _b = teacher(&server, "cm1-b", &b_token);
    let (wb, _) = wait_until(Duration::from_secs(5), "class B placed", || placed(&server, &admin, "cm1-b"));
    assert_ne!(wa, wb, "class B is on the worker without a class");
    // Class C: each worker has one class, but A's has 13 peers and B's 1: C goes with B.
    let c_token = new_class(&server, &admin, "cm1-c");
    let _c = teacher(&server, "cm1-c", &c_token);
    let (wc, _) = wait_until(Duration::from_secs(5), "class C placed", || placed(&server, &admin, "cm1-c"));
    println!("PLACEMENT class A (13 peers) on worker {wa}, class B (1 peer) on {wb}, class C on {wc}");
    assert_eq!(wc, wb, "class C is on the worker with fewer peers, not the first of two with one class each");
    let (_, a_peers) = placed(&server, &admin, "demo").expect("class A");
    assert!(a_peers >= 13, "class A still had its peers when C was placed: {a_peers}");
}
