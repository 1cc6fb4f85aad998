//! The pre-class check (`/check`): its API's rules, and Chromium checking a tablet through
//! the server's own test programme (a studio on test sources the server starts on demand):
//! an open link is "ready" and the microphone's echo comes back; a link capped at 300 kbit/s
//! (tc, in a private network namespace) is told to expect less; a wrong join link is said
//! wrong and the test runs anyway; a refused microphone and camera get a plain sentence.

mod common;

use common::{TestServer, assert_problem, send};
use serde_json::Value;
use std::process::Command;

/// The two Chromium checks measure a link: never side by side on this 2-core box.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn the_check_token_opens_the_test_programme_only_and_counts_once() {
    let server = TestServer::start(&[]);
    let api = |p: &str| format!("{}{p}", server.base);
    // With the demo class's join code: the link is valid, and the token is for the test
    // programme only.
    let r = send("POST", &api("/api/check"), None, Some("application/json"), r#"{"code":"demo"}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    let start = json(&r.body);
    assert_eq!(start["class"], "check.programme");
    assert_eq!(start["link"]["valid"], true, "{start}");
    assert_eq!(start["programme"], true, "serve publishes the test programme on demand");
    let token = start["token"].as_str().unwrap().to_owned();
    let r = send("POST", &api("/whep/demo"), Some(&token), Some("application/sdp"), &common::recv_offer());
    assert_problem(&r, 403, "a check's token is not a pupil's token for a class");
    // A wrong code: said invalid, and the token is given all the same.
    let r = send("POST", &api("/api/check"), None, Some("application/json"), r#"{"code":"nope-nope"}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(json(&r.body)["link"]["valid"], false);
    // Bad input.
    let r = send("POST", &api("/api/check"), None, Some("application/json"), r#"{"code":3}"#);
    assert_problem(&r, 400, "a code that is not a string");
    let r = send("POST", &api("/api/check/verdict"), Some(&token), Some("application/json"), r#"{"verdict":"great"}"#);
    assert_problem(&r, 400, "an unknown verdict");
    let pupil = server.join("demo", "Lina");
    let r = send("POST", &api("/api/check/verdict"), Some(&pupil), Some("application/json"), r#"{"verdict":"ready"}"#);
    assert_problem(&r, 403, "a class's pupil token reports no check");
    let r = send("GET", &api("/api/check/session/1"), Some(&token), None, "");
    assert_problem(&r, 404, "a session that is not the check's");
    // One verdict per check, counted for the link's class; the teacher reads the counts.
    let verdict = |body: &str| send("POST", &api("/api/check/verdict"), Some(&token), Some("application/json"), body);
    assert_eq!(verdict(r#"{"verdict":"reduced","code":"demo"}"#).status, 204);
    assert_problem(&verdict(r#"{"verdict":"ready","code":"demo"}"#), 409, "a second verdict of one check");
    let teacher = server.token("teacher", Some("demo"));
    let r = send("GET", &api("/api/classes/demo/checks"), Some(&teacher), None, "");
    assert_eq!(r.status, 200, "{}", r.body);
    let counts = json(&r.body);
    assert_eq!((counts["checked"].as_u64(), counts["reduced"].as_u64()), (Some(1), Some(1)), "{counts}");
    let r = send("GET", &api("/api/classes/demo/checks"), Some(&pupil), None, "");
    assert_eq!(r.status, 403, "a pupil does not read the counts: {}", r.body);
    // The echo's class: its own token, and nobody else's token opens it.
    let r = send("POST", &api("/api/check/echo"), Some(&token), None, "");
    assert_eq!(r.status, 201, "{}", r.body);
    let echo = json(&r.body);
    let class = echo["class"].as_str().unwrap();
    assert!(class.starts_with("check.echo-"), "{echo}");
    let other = send("POST", &api("/api/check"), None, Some("application/json"), "{}");
    let other = json(&other.body)["token"].as_str().unwrap().to_owned();
    for t in [&other, &pupil] {
        let r = send(
            "POST",
            &api(&format!("/whep/{class}?feed=floor")),
            Some(t),
            Some("application/sdp"),
            &common::recv_offer(),
        );
        assert_problem(&r, 403, "another check, or a pupil, cannot hear an echo");
    }
    let r = send("POST", &api("/api/check/echo"), Some(&pupil), None, "");
    assert_problem(&r, 403, "only a check's token opens an echo");
    // Strangers checking at the same moment never meet: a check has no class events.
    let upgrade = [
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    for class in ["check.programme", class] {
        let (r, _) = common::send_with("GET", &api(&format!("/ws/{class}")), &upgrade, "");
        assert_eq!(r.status, 404, "class events of {class}: {}", r.body);
    }
}

/// Run check.mjs on `url` in Chromium (`echo`: "", "echo", or "deny" for the echo with the
/// permissions refused; then, with `admin`, the same tablet joins the demo class); its
/// result.
fn check_in_chromium(url: &str, echo: &str, admin: Option<&str>) -> Value {
    let args: Vec<&str> = [url, echo].into_iter().chain(admin).collect();
    common::browser_script("check.mjs", &args)
}

#[test]
fn an_open_link_is_ready_and_the_microphone_comes_back() {
    common::browser_prerequisites().expect("Chromium and node (make test installs them)");
    let _alone = alone();
    let server = TestServer::start(&[]);
    let teacher = server.token("teacher", Some("demo"));
    let _studio = common::publishing_studio(&server, "demo", &teacher, |_| {});
    let admin = server.token("admin", None);
    let v = check_in_chromium(&format!("{}/check?code=demo", server.base), "echo", Some(&admin));
    let c = &v["check"];
    println!(
        "check, open link: verdict {}, layer {}, estimate {} bit/s, connected in {} ms, first picture {} ms after the WHEP POST, transport {}",
        c["verdict"], c["layer"], c["estimateBps"], c["connectMs"], c["firstFrameMs"], c["transport"]
    );
    assert_eq!(c["verdict"], "ready", "{v}");
    assert_eq!(c["layer"], "high", "{v}");
    assert_eq!(c["transport"], "udp", "{v}");
    assert!(v["verdictText"].as_str().unwrap().contains("Tout est prêt"), "{v}");
    assert!(v["linkText"].as_str().unwrap().contains("Classe"), "the link's class is named: {v}");
    assert_eq!(v["stored"]["verdict"], "ready", "the verdict stays on the device: {v}");
    // The echo came back through the server: audio packets with sound in them.
    let echo = &c["echo"];
    assert_eq!(echo["ok"], true, "{v}");
    assert!(echo["audioPackets"].as_u64().unwrap() > 50, "{v}");
    // The tablet then joins its class: the server starts it where the check left it, on
    // 720p, not on 180p to climb from there.
    let pupil = &v["pupil"];
    println!("pupil after the check: first layer {}, switches {}", pupil["layer"], pupil["switches"]);
    assert_eq!(pupil["layer"], "high", "{v}");
    assert_eq!(pupil["switches"], 0, "{v}");
    // The class counts one check, ready.
    let r = send("GET", &format!("{}/api/classes/demo/checks", server.base), Some(&teacher), None, "");
    let counts = json(&r.body);
    assert_eq!((counts["checked"].as_u64(), counts["ready"].as_u64()), (Some(1), Some(1)), "{counts}");
}

const CAPPED: &str = "a_link_capped_at_300_kbit_is_told_to_expect_less_and_a_wrong_link_is_said";

#[test]
fn a_link_capped_at_300_kbit_is_told_to_expect_less_and_a_wrong_link_is_said() {
    let _alone = alone();
    if common::in_private_network(CAPPED, || {
        common::browser_prerequisites()?;
        common::tc_present()
    }) {
        capped();
    }
}

fn capped() {
    let server = TestServer::start(&[]);
    // 300 kbit/s from every media port of the server, with a home router's queue.
    let tc = |args: &[&str]| {
        let s = Command::new("tc").args(args).status().expect("tc");
        assert!(s.success(), "tc {args:?}");
    };
    tc(&["qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "10"]);
    tc(&["class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit"]);
    tc(&["class", "add", "dev", "lo", "parent", "1:", "classid", "1:20", "htb", "rate", "300kbit", "ceil", "300kbit"]);
    tc(&["qdisc", "add", "dev", "lo", "parent", "1:20", "handle", "20:", "bfifo", "limit", "40000"]);
    for m in &server.media {
        let port = m.port().to_string();
        tc(&[
            "filter", "add", "dev", "lo", "protocol", "ip", "parent", "1:", "prio", "1", "u32", "match", "ip",
            "protocol", "17", "0xff", "match", "ip", "sport", &port, "0xffff", "flowid", "1:20",
        ]);
    }
    // (The microphone and camera refused: said plainly.)
    let v = check_in_chromium(&format!("{}/check?code=wrong-code", server.base), "deny", None);
    let c = &v["check"];
    println!(
        "check, 300 kbit/s: verdict {}, layer {}, estimate {} bit/s, layers {}",
        c["verdict"], c["layer"], c["estimateBps"], c["layers"]
    );
    let verdict = c["verdict"].as_str().unwrap();
    assert!(["reduced", "audio_only"].contains(&verdict), "{v}");
    assert_eq!(c["link"]["valid"], false, "{v}");
    assert!(v["linkText"].as_str().unwrap().contains("pas valable"), "{v}");
    assert_eq!(c["echo"]["error"], "NotAllowedError", "{v}");
    let said = v["echoText"].as_str().unwrap();
    assert!(said.contains("refusé le micro") && !said.contains("Error"), "a sentence, not a trace: {said}");
}
