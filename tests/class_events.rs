//! Class events against the real server: the WebSocket handshake (`hello`), hands, the floor
//! and the pupil's WHIP rights, remove (token revoked), lock, layout, end — and bad clients
//! (garbage, oversized, flooding) that get an error and never disturb the others.

mod common;

use common::TestServer;
use common::ws::{hello, next, open, send, wait_for};
use futures_util::SinkExt;
use serde_json::{Value, json};
use std::time::Duration;
use str0m::media::{Direction, MediaKind};
use tokio_tungstenite::tungstenite::Message;

fn status_of(r: Result<ureq::Response, ureq::Error>) -> u16 {
    match r {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(c, _)) => c,
        Err(e) => panic!("{e}"),
    }
}

/// A str0m offer with these sending/receiving m-lines.
fn offer(media: &[(MediaKind, Direction)]) -> String {
    let mut rtc = str0m::Rtc::builder().build(std::time::Instant::now());
    rtc.add_local_candidate(str0m::Candidate::host("127.0.0.1:9".parse().unwrap(), "udp").unwrap());
    let mut api = rtc.sdp_api();
    for (k, d) in media {
        api.add_media(*k, *d, None, None, None);
    }
    api.apply().unwrap().0.to_sdp_string()
}

#[allow(clippy::result_large_err)] // ureq's error carries the response: fine in a test
fn post_sdp(server: &TestServer, path: &str, token: &str, sdp: &str) -> Result<ureq::Response, ureq::Error> {
    ureq::post(&format!("{}{path}", server.base))
        .set("Content-Type", "application/sdp")
        .set("Authorization", &format!("Bearer {token}"))
        .send_string(sdp)
}

fn join_status(server: &TestServer, name: &str) -> u16 {
    status_of(
        ureq::post(&format!("{}/api/classes/demo/join", server.base))
            .set("Content-Type", "application/json")
            .send_string(&json!({"name": name}).to_string()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_events_hands_floor_remove_lock_end_and_bad_clients() {
    let server = TestServer::start(&[]);
    let teacher_token = server.token("teacher", Some("demo"));

    // Handshake: hello first, with a valid token for this class.
    let mut ws = open(&server, "demo").await;
    send(&mut ws, json!({"type": "raise_hand"})).await;
    assert_eq!(next(&mut ws).await.unwrap()["code"], "unauthorized");
    assert!(next(&mut ws).await.is_none(), "closed after a refused hello");
    let mut ws = open(&server, "demo").await;
    send(&mut ws, json!({"type": "hello", "token": "not-a-jwt"})).await;
    assert_eq!(next(&mut ws).await.unwrap()["code"], "unauthorized");
    let other_class = server.token("teacher", Some("elsewhere"));
    let mut ws = open(&server, "demo").await;
    send(&mut ws, json!({"type": "hello", "token": other_class})).await;
    assert_eq!(next(&mut ws).await.unwrap()["code"], "forbidden");

    let (mut teacher, welcome) = hello(&server, "demo", &teacher_token).await;
    assert_eq!(welcome["you"]["role"], "teacher");
    assert_eq!(welcome["class"]["id"], "demo");

    let alice_token = server.join("demo", "Alice");
    let (mut alice, w) = hello(&server, "demo", &alice_token).await;
    let alice_id = w["you"]["id"].as_str().unwrap().to_owned();
    assert_eq!(w["you"]["name"], "Alice");
    let joined = wait_for(&mut teacher, "joined").await;
    assert_eq!(joined["member"]["name"], "Alice");

    // Garbage gets an error reply; the class goes on.
    send(&mut alice, json!({"type": "fly"})).await;
    assert_eq!(wait_for(&mut alice, "error").await["code"], "invalid");
    alice.send(Message::Text("{not json".into())).await.unwrap();
    assert_eq!(wait_for(&mut alice, "error").await["code"], "invalid");
    send(&mut alice, json!({"type": "chat", "text": ""})).await;
    assert_eq!(wait_for(&mut alice, "error").await["code"], "invalid");
    send(&mut alice, json!({"type": "set_layout", "layout": "camera"})).await;
    assert_eq!(wait_for(&mut alice, "error").await["code"], "forbidden");

    send(&mut alice, json!({"type": "raise_hand"})).await;
    let hand = wait_for(&mut teacher, "hand").await;
    assert_eq!((hand["id"].as_str().unwrap(), hand["raised"].as_bool().unwrap()), (alice_id.as_str(), true));
    send(&mut alice, json!({"type": "chat", "text": "J'ai une question"})).await;
    assert_eq!(wait_for(&mut teacher, "chat").await["text"], "J'ai une question");
    send(&mut teacher, json!({"type": "chat", "text": "Vas-y"})).await;
    let reply = loop {
        let m = wait_for(&mut alice, "chat").await;
        if m["role"] == "teacher" {
            break m;
        }
    };
    assert_eq!((reply["name"].as_str(), reply["text"].as_str()), (Some("Enseignant·e"), Some("Vas-y")));

    // A flooding pupil is rate limited; an oversized message closes only its own socket.
    let bruno_token = server.join("demo", "Bruno");
    let (mut bruno, w) = hello(&server, "demo", &bruno_token).await;
    let bruno_id = w["you"]["id"].as_str().unwrap().to_owned();
    for _ in 0..30 {
        send(&mut bruno, json!({"type": "ping"})).await;
    }
    let mut limited = 0;
    let mut pongs = 0;
    while let Some(m) = next(&mut bruno).await {
        match m["type"].as_str() {
            Some("pong") => pongs += 1,
            Some("error") if m["code"] == "rate_limited" => limited += 1,
            _ => {}
        }
        if pongs + limited >= 30 {
            break;
        }
    }
    assert!((18..=22).contains(&pongs) && limited >= 8, "burst of 20 then refused: {pongs} pongs, {limited} refused");
    let (mut mallory, _) = hello(&server, "demo", &server.join("demo", "Mallory")).await;
    mallory.send(Message::Text(format!("{{\"type\":\"chat\",\"text\":\"{}\"}}", "x".repeat(4000)).into())).await.ok();
    assert!(next(&mut mallory).await.is_none_or(|m| m["type"] != "chat"), "an oversized message is not relayed");
    send(&mut teacher, json!({"type": "ping"})).await;
    assert_eq!(wait_for(&mut teacher, "pong").await["type"], "pong", "the teacher is not disturbed");

    // The floor: a pupil may publish only while it holds it, and only what was granted.
    let audio_only = offer(&[(MediaKind::Audio, Direction::SendOnly)]);
    let with_camera = offer(&[(MediaKind::Audio, Direction::SendOnly), (MediaKind::Video, Direction::SendOnly)]);
    assert_eq!(status_of(post_sdp(&server, "/whip/demo", &alice_token, &audio_only)), 403, "no floor, no publishing");
    send(&mut teacher, json!({"type": "grant_floor", "pupil": alice_id, "camera": false})).await;
    let floor = wait_for(&mut alice, "floor").await;
    assert_eq!(floor["floor"]["pupil"], alice_id.as_str());
    assert_eq!(floor["floor"]["name"], "Alice");
    assert_eq!(status_of(post_sdp(&server, "/whip/demo", &alice_token, &with_camera)), 403, "camera not granted");
    assert_eq!(status_of(post_sdp(&server, "/whip/demo", &bruno_token, &audio_only)), 403, "Bruno has no floor");
    let r = post_sdp(&server, "/whip/demo", &alice_token, &audio_only).expect("Alice publishes her voice");
    assert_eq!(r.status(), 201);
    let location = r.header("Location").unwrap().to_owned();
    send(&mut teacher, json!({"type": "mute", "pupil": alice_id, "muted": true})).await;
    assert_eq!(wait_for(&mut alice, "floor").await["floor"]["muted"], true);
    // Alice's page reconnects (her tablet's Wi-Fi came back): her floor and her mute come
    // from the server, never from the page's defaults.
    drop(alice);
    let (mut alice, w) = hello(&server, "demo", &alice_token).await;
    assert_eq!(w["you"]["id"], alice_id.as_str(), "the same pupil: {w}");
    assert_eq!(w["floor"]["pupil"], alice_id.as_str(), "she still holds the floor: {w}");
    assert_eq!(w["floor"]["muted"], true, "still muted: {w}");
    send(&mut teacher, json!({"type": "revoke_floor", "pupil": alice_id})).await;
    assert!(wait_for(&mut alice, "floor").await["floor"].is_null());
    // Revoking the floor closes Alice's WHIP session: its resource goes away. An empty
    // trickle PATCH asks without changing anything (a DELETE would itself remove it).
    tokio::task::block_in_place(|| {
        common::eventually(Duration::from_secs(2), || {
            let patch = ureq::request("PATCH", &format!("{}{location}", server.base))
                .set("Authorization", &format!("Bearer {alice_token}"))
                .set("Content-Type", "application/trickle-ice-sdpfrag")
                .send_string("");
            match status_of(patch) {
                404 => Ok(()),
                s => Err(format!("Alice's WHIP session still answers {s}")),
            }
        })
    });

    // Lock.
    send(&mut teacher, json!({"type": "lock", "locked": true})).await;
    assert_eq!(wait_for(&mut alice, "locked").await["locked"], true);
    assert_eq!(join_status(&server, "Zoé"), 423);
    send(&mut teacher, json!({"type": "lock", "locked": false})).await;
    wait_for(&mut alice, "locked").await;
    assert_eq!(join_status(&server, "Zoé"), 200);

    // Layout goes to everyone (the studio applies it).
    send(&mut teacher, json!({"type": "set_layout", "layout": "side-by-side"})).await;
    assert_eq!(wait_for(&mut alice, "layout").await["layout"], "side-by-side");

    // Admin view: the members with their names.
    let admin = server.token("admin", None);
    let overview: Value = serde_json::from_str(
        &ureq::get(&format!("{}/api/admin/classes", server.base))
            .set("Authorization", &format!("Bearer {admin}"))
            .call()
            .unwrap()
            .into_string()
            .unwrap(),
    )
    .unwrap();
    let demo = overview["classes"].as_array().unwrap().iter().find(|c| c["id"] == "demo").unwrap();
    assert!(demo["members"].as_array().unwrap().iter().any(|m| m["name"] == "Alice"), "{demo}");
    assert!(overview["process"]["rss_bytes"].as_u64().unwrap() > 0);

    // Remove Bruno: his page is told, his socket closes, his token is refused.
    let bruno_whep = post_sdp(&server, "/whep/demo", &bruno_token, &offer(&[(MediaKind::Audio, Direction::RecvOnly)]));
    assert_eq!(status_of(bruno_whep), 201);
    send(&mut teacher, json!({"type": "remove", "pupil": bruno_id})).await;
    assert_eq!(wait_for(&mut bruno, "removed").await["id"], bruno_id.as_str());
    assert!(next(&mut bruno).await.is_none(), "Bruno's socket is closed");
    assert_eq!(wait_for(&mut alice, "removed").await["id"], bruno_id.as_str());
    let again = post_sdp(&server, "/whep/demo", &bruno_token, &offer(&[(MediaKind::Audio, Direction::RecvOnly)]));
    assert_eq!(status_of(again), 401, "a removed pupil's token is refused");
    let mut ws = open(&server, "demo").await;
    send(&mut ws, json!({"type": "hello", "token": bruno_token})).await;
    assert_eq!(next(&mut ws).await.unwrap()["code"], "unauthorized");
    // The code Bruno knows was replaced: he cannot join again; the teacher has the new one.
    let code = wait_for(&mut teacher, "code").await["code"].as_str().unwrap().to_owned();
    assert_ne!(code, "demo");
    assert_eq!(join_status(&server, "Bruno"), 404, "the old code finds nothing");

    // End: everyone is told, joins are refused.
    send(&mut teacher, json!({"type": "end_class"})).await;
    wait_for(&mut alice, "class_ended").await;
    assert!(next(&mut alice).await.is_none(), "sockets close when the class ends");
    let ended = status_of(
        ureq::post(&format!("{}/api/classes/{code}/join", server.base))
            .set("Content-Type", "application/json")
            .send_string(&json!({"name": "Zoé"}).to_string()),
    );
    assert_eq!(ended, 410, "the new code finds an ended class");
}
