//! HTTPS (issue 12): the server speaks TLS with a self-signed or given certificate, prints the
//! fingerprints clients pin, sends HSTS, redirects plain HTTP when asked, and never lets a
//! half-finished handshake hold a connection; publishing and playing work over https.

mod common;

use ardoise_loadgen::{Publisher, PublisherConfig, Subscriber};
use common::{TestServer, free_port, lo, send, wait_until};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn pin(server: &TestServer) -> String {
    let (fingerprint, spki) = server.tls.clone().expect("the server prints its certificate");
    assert_eq!(fingerprint.len(), 95, "{fingerprint}");
    assert_eq!(spki.len(), 44, "{spki}");
    ardoise_client::trust::pin(&fingerprint).unwrap();
    fingerprint
}

#[test]
fn publish_and_play_over_https_with_a_self_signed_certificate() {
    let server = TestServer::start(&[("ARDOISE__HTTP__TLS_SELF_SIGNED", "true")]);
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let fingerprint = pin(&server);
    let teacher = server.token("teacher", Some("demo"));
    let mut publisher = Publisher::connect(&PublisherConfig {
        server: server.base.clone(),
        class: "demo".into(),
        token: teacher,
        bind: lo(),
        simulcast: true,
        record_payloads: false,
    })
    .expect("WHIP over https");
    let mut pupil =
        Subscriber::connect_with_layer(&server.base, "demo", &server.join("demo", "Léa"), lo(), Some("high"))
            .expect("WHEP over https");
    let t = std::thread::spawn(move || {
        publisher.run_for(Duration::from_secs(2)).unwrap();
        publisher
    });
    pupil.run_for(Duration::from_secs(2)).unwrap();
    t.join().unwrap();
    assert!(pupil.report.video.len() > 100, "video over a session negotiated over https: {}", pupil.report.video.len());

    // Every answer carries HSTS; pages are served.
    let r = ardoise_client::trust::agent().get(&format!("{}/c/demo", server.base)).call().unwrap();
    assert_eq!(r.header("Strict-Transport-Security"), Some("max-age=31536000"));
    // The same certificate is kept across restarts (clients keep their pin).
    let mut server = server;
    server.restart();
    assert_eq!(server.tls.as_ref().unwrap().0, fingerprint, "the self-signed certificate is reused");
    assert_eq!(send("GET", &format!("{}/healthz", server.base), None, None, "").status, 200);

    // The same files, given as --tls-cert/--tls-key, give the same certificate.
    let dir = server.data_dir.join("tls");
    let files = TestServer::start(&[
        ("ARDOISE__HTTP__TLS_CERT", dir.join("self-signed.crt").to_str().unwrap()),
        ("ARDOISE__HTTP__TLS_KEY", dir.join("self-signed.key").to_str().unwrap()),
    ]);
    assert_eq!(files.tls.as_ref().unwrap().0, fingerprint);
    assert_eq!(send("GET", &format!("{}/healthz", files.base), None, None, "").status, 200);
}

#[test]
fn an_unpinned_or_wrong_certificate_is_refused() {
    let server = TestServer::start(&[("ARDOISE__HTTP__TLS_SELF_SIGNED", "true")]);
    // Another process's trust: the system's authorities only.
    let agent = ureq::AgentBuilder::new().tls_config(ardoise_client::trust::Trust::default().client_config()).build();
    let err = agent.get(&format!("{}/healthz", server.base)).call().unwrap_err().to_string();
    assert!(err.to_lowercase().contains("certificate") || err.contains("UnknownIssuer"), "{err}");
    let wrong = ardoise_client::trust::Trust::default().with_fingerprint(&["AB"; 32].join(":")).unwrap();
    let agent = ureq::AgentBuilder::new().tls_config(wrong.client_config()).build();
    assert!(agent.get(&format!("{}/healthz", server.base)).call().is_err());
}

#[test]
fn plain_http_half_open_handshakes_and_the_redirect() {
    let redirect_port = free_port();
    let redirect = format!("127.0.0.1:{redirect_port}");
    let server = TestServer::start(&[
        ("ARDOISE__HTTP__TLS_SELF_SIGNED", "true"),
        ("ARDOISE__HTTP__REDIRECT_LISTEN", &redirect),
        ("ARDOISE__LIMITS__HEADER_TIMEOUT_SECS", "2"),
    ]);
    pin(&server);
    let addr = server.base.trim_start_matches("https://").to_owned();
    // Plain HTTP on the HTTPS port: closed without an answer.
    let mut plain = TcpStream::connect(&addr).unwrap();
    plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(plain.read(&mut buf).unwrap_or(0), 0, "no plain answer on the HTTPS port");
    // A handshake that never finishes is closed after the header timeout.
    let mut stalled = TcpStream::connect(&addr).unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01, 0x00, 0x50]).unwrap(); // a ClientHello record header, then nothing
    stalled.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let t = Instant::now();
    assert_eq!(stalled.read(&mut buf).unwrap_or(0), 0);
    assert!(t.elapsed() < Duration::from_secs(5), "closed after {:?}", t.elapsed());
    // A thousand half-open connections do not take HTTPS down (the per-address cap refuses
    // the excess at once; the timeout closes the rest).
    let held: Vec<TcpStream> = (0..1000).filter_map(|_| TcpStream::connect(&addr).ok()).collect();
    drop(held);
    wait_until(Duration::from_secs(8), "HTTPS to answer again", || {
        ardoise_client::trust::agent().get(&format!("{}/healthz", server.base)).call().ok().map(|_| ())
    });
    // The plain listener redirects to https, path kept.
    let no_follow = ureq::AgentBuilder::new().redirects(0).build();
    let r = no_follow.get(&format!("http://{redirect}/c/demo?x=1")).call().unwrap();
    assert_eq!(r.status(), 308);
    let https_port = addr.rsplit(':').next().unwrap();
    assert_eq!(r.header("Location"), Some(format!("https://127.0.0.1:{https_port}/c/demo?x=1").as_str()));
}

/// Kills the studio on drop.
struct Studio(std::process::Child);

impl Drop for Studio {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_studio_publishes_over_https_with_a_pinned_fingerprint() {
    let server = TestServer::start(&[("ARDOISE__HTTP__TLS_SELF_SIGNED", "true")]);
    let fingerprint = pin(&server);
    let teacher = server.token("teacher", Some("demo"));
    let studio = |fingerprint: &str, control: &str| {
        Studio(
            std::process::Command::new(common::bin())
                .args(["studio", "--server", &server.base, "--class", "demo", "--token", &teacher])
                .args(["--server-fingerprint", fingerprint])
                .env("ARDOISE__STUDIO__CONTROL", control)
                .env("ARDOISE__STUDIO__SPEAKER", "none")
                .env("ARDOISE__DATA__DIR", &server.data_dir)
                .env("ARDOISE_LOG", "warn")
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("start the studio"),
        )
    };
    let state = |control: &str| -> Option<serde_json::Value> {
        let text = ureq::get(&format!("http://{control}/state")).call().ok()?.into_string().ok()?;
        serde_json::from_str(&text).ok()
    };
    // Pinned: it publishes (WHIP) and follows the class (wss).
    let control = format!("127.0.0.1:{}", free_port());
    let _good = studio(&fingerprint, &control);
    wait_until(Duration::from_secs(20), "the studio to publish over https and follow the class over wss", || {
        state(&control).filter(|v| v["connected"] == true && v["class_link"] == true).map(|_| ())
    });
    let mut pupil =
        Subscriber::connect_with_layer(&server.base, "demo", &server.join("demo", "Noé"), lo(), Some("low")).unwrap();
    pupil.run_for(Duration::from_secs(2)).unwrap();
    assert!(pupil.report.video.len() > 20, "the studio's picture over https: {}", pupil.report.video.len());
    // A wrong pin: it never connects.
    let wrong = format!("127.0.0.1:{}", free_port());
    let _bad = studio(&["00"; 32].join(":"), &wrong);
    let seen = wait_until(Duration::from_secs(20), "the second studio's control API", || state(&wrong));
    std::thread::sleep(Duration::from_secs(2)); // a window in which it must not connect
    let later = state(&wrong).unwrap_or(seen);
    assert_eq!(later["connected"], false, "a studio that does not trust the certificate does not publish: {later}");
}
