//! Accounts in Debian's Chromium (issue 13), inside a loopback-only network namespace:
//! an admin creates a teacher; the teacher logs in, creates and schedules a class with the
//! waiting room on and starts it from the PC (the console teaches from the browser camera);
//! a pupil joins with the code and waits; the teacher admits them and they see the class;
//! attendance shows them and the CSV has their join time. `tests/browser/accounts.mjs`
//! drives the pages; the admin and its school are made with the command line.

mod common;

use common::{TestServer, browser_prerequisites, in_private_network};
use std::path::PathBuf;
use std::process::{Command, Stdio};

const NAME: &str = "an_admin_a_teacher_and_a_waiting_pupil_in_chromium";

#[test]
fn an_admin_a_teacher_and_a_waiting_pupil_in_chromium() {
    if !in_private_network(NAME, browser_prerequisites) {
        return;
    }
    let server = TestServer::start(&[]);
    server
        .cli(&["school", "add", "--departement", "02", "--departement-name", "Aisne", "--name", "École Jean Macé"], "")
        .unwrap();
    server
        .cli(
            &["user", "add", "--email", "admin@aisne.fr", "--role", "admin", "--password-stdin"],
            "le mot de passe admin\n",
        )
        .unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("node")
        .arg(root.join("tests/browser/accounts.mjs"))
        .args([server.base.as_str(), "admin@aisne.fr", "le mot de passe admin"])
        .current_dir(root.join("tests/browser"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run node");
    let line = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_owned();
    println!("accounts.mjs: {line}");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("accounts.mjs printed: {line}"));
    assert!(v["error"].is_null(), "accounts.mjs: {}", v["error"]);
    assert_eq!(v["ok"], true);
    assert_eq!(v["admittedAndPlaying"], true);
    assert!(v["csvLine"].as_str().is_some_and(|l| l.contains("Inès")));
}
