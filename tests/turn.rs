//! TURN (issue 12) against Debian's real coturn, which `ardoise serve` runs beside itself
//! (`[turn] mode = "coturn"`): clients get short-lived credentials (join answer, Link
//! headers, `/api/ice-servers`); coturn accepts them, refuses forged and expired ones (401),
//! holds each to its quota, and relays only to Ardoise's media addresses (403 elsewhere).
//! The client is coturn's own `turnutils_uclient`.

mod common;

use common::{TestServer, free_port, send};
use std::process::Command;
use std::time::Duration;

fn uclient_prerequisites() -> Result<(), String> {
    for p in ["/usr/bin/turnserver", "/usr/bin/turnutils_uclient"] {
        if !std::path::Path::new(p).exists() {
            return Err(format!("{p} is missing (make test installs coturn)"));
        }
    }
    Ok(())
}

/// Run `turnutils_uclient` for at most 4 s; its output.
fn uclient(port: u16, user: &str, pass: &str, peer: &str, extra: &[&str]) -> String {
    let out = Command::new("timeout")
        .args(["4", "turnutils_uclient", "-c", "-n", "1", "-p", &port.to_string(), "-u", user, "-w", pass, "-e", peer])
        .args(extra)
        .arg("127.0.0.1")
        .output()
        .expect("run turnutils_uclient");
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn coturn_beside_ardoise_relays_only_to_the_media_with_short_lived_credentials() {
    if let Err(why) = uclient_prerequisites() {
        panic!("cannot run: {why}");
    }
    let port = free_port();
    // Above the kernel's ephemeral range (32768-60999), where no other socket takes them.
    let relay_base = 61000 + (std::process::id() % 80) as u16 * 50;
    let relay_ports = format!("{}-{}", relay_base, relay_base + 24);
    let listen = format!("127.0.0.1:{port}");
    let server = TestServer::start(&[
        ("ARDOISE__TURN__MODE", "coturn"),
        ("ARDOISE__TURN__LISTEN", &listen),
        ("ARDOISE__TURN__RELAY_PORTS", &relay_ports),
        ("ARDOISE__TURN__USER_QUOTA", "2"),
    ]);
    // The join answer carries the servers and a credential.
    let r = send(
        "POST",
        &format!("{}/api/classes/demo/join", server.base),
        None,
        Some("application/json"),
        r#"{"name":"Relais"}"#,
    );
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let ice = &v["ice_servers"][0];
    let urls: Vec<&str> = ice["urls"].as_array().unwrap().iter().map(|u| u.as_str().unwrap()).collect();
    assert!(urls.contains(&format!("turn:127.0.0.1:{port}?transport=udp").as_str()), "{urls:?}");
    let (user, pass) = (ice["username"].as_str().unwrap().to_owned(), ice["credential"].as_str().unwrap().to_owned());
    let expiry: u64 = user.split(':').next().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!((now + 3500..=now + 3700).contains(&expiry), "an hour's credential: {user}");

    // WHEP answers carry them as Link headers (RFC 9725 §4.6); /api/ice-servers too.
    let token = v["token"].as_str().unwrap();
    let mut rtc = str0m::Rtc::builder().build(std::time::Instant::now());
    let mut api = rtc.sdp_api();
    api.add_media(str0m::media::MediaKind::Audio, str0m::media::Direction::RecvOnly, None, None, None);
    let offer = api.apply().unwrap().0.to_sdp_string();
    let whep = ardoise_client::trust::agent()
        .post(&format!("{}/whep/demo", server.base))
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", "application/sdp")
        .send_string(&offer)
        .unwrap();
    let links: Vec<String> = whep.all("Link").into_iter().map(String::from).collect();
    assert!(
        links.iter().any(|l| l.contains("rel=\"ice-server\"") && l.contains("credential-type=\"password\"")),
        "{links:?}"
    );
    let servers = send("GET", &format!("{}/api/ice-servers", server.base), Some(token), None, "");
    assert!(servers.body.contains("turn:127.0.0.1"), "{}", servers.body);
    assert_eq!(send("GET", &format!("{}/api/ice-servers", server.base), None, None, "").status, 401);

    // coturn accepts the credential and relays to the media address.
    let media_ip = server.media[0].ip().to_string();
    let ok = uclient(port, &user, &pass, &media_ip, &[]);
    assert!(!ok.contains("Cannot complete Allocation") && !ok.contains("error 4"), "an allocation works: {ok}");
    assert!(ok.contains("Total connect time"), "allocated, with a permission toward the media: {ok}");
    // Forged and expired credentials: 401, no allocation.
    let forged = uclient(port, &user, "bm90LXRoZS1yaWdodC1wYXNzd29yZA==", &media_ip, &[]);
    assert!(
        forged.contains("Cannot complete Allocation") && !forged.contains("Total connect time"),
        "forged: {forged}"
    );
    let secret = std::fs::read(server.data_dir.join("turn-secret")).unwrap();
    let (old_user, old_pass) = ardoise_server::turn::credential(&secret, "late", now - 60);
    let expired = uclient(port, &old_user, &old_pass, &media_ip, &[]);
    assert!(expired.contains("Cannot complete Allocation"), "an expired credential is refused: {expired}");
    // A relay toward any other address: 403 (a fresh credential: each has its own quota).
    let (u2, p2) = ardoise_server::turn::credential(&secret, "elsewhere", now + 600);
    let elsewhere = uclient(port, &u2, &p2, "10.1.2.3", &[]);
    assert!(elsewhere.contains("403"), "no relay into the school's network: {elsewhere}");
    // The quota per credential (2 here): a flood of allocations is refused (486).
    let (u3, p3) = ardoise_server::turn::credential(&secret, "flood", now + 600);
    let flood = uclient(port, &u3, &p3, &media_ip, &["-m", "6"]);
    assert!(flood.contains("486"), "allocations beyond the quota are refused: {flood}");

    // coturn stops with Ardoise.
    let pid_file = server.data_dir.join("turn/turnserver.pid");
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    let mut server = server;
    server.terminate(Duration::from_secs(5)).expect("ardoise stops");
    common::wait_until(Duration::from_secs(5), "coturn to stop with Ardoise", || {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    });
}

/// `[turn] mode = "external"`: a coturn the school runs itself (started here with its own
/// configuration), with the shared secret in Ardoise's configuration: the credentials Ardoise
/// hands out are accepted by it.
#[test]
fn an_external_coturn_accepts_the_credentials_ardoise_hands_out() {
    if let Err(why) = uclient_prerequisites() {
        panic!("cannot run: {why}");
    }
    let dir = std::env::temp_dir().join(format!("ardoise-ext-turn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let relay_base = 61000 + (std::process::id() % 80) as u16 * 50 + 25;
    let secret = "an-external-secret-of-32-bytes-!";
    let conf = dir.join("turnserver.conf");
    std::fs::write(
        &conf,
        format!(
            "listening-ip=127.0.0.1\nlistening-port={port}\nrelay-ip=127.0.0.1\nmin-port={relay_base}\nmax-port={}\n\
             use-auth-secret\nstatic-auth-secret={secret}\nrealm=school\nno-cli\nno-tls\nno-dtls\n\
             allow-loopback-peers\nsimple-log\nlog-file=stdout\npidfile={}\n",
            relay_base + 24,
            dir.join("pid").display()
        ),
    )
    .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _coturn = Kill(
        Command::new("turnserver")
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    common::wait_until(Duration::from_secs(10), "the external coturn to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
    });
    let urls = format!(r#"["turn:127.0.0.1:{port}?transport=udp"]"#);
    let server = TestServer::start(&[
        ("ARDOISE__TURN__MODE", "external"),
        ("ARDOISE__TURN__URLS", &urls),
        ("ARDOISE__TURN__SECRET", secret),
    ]);
    let token = server.join("demo", "Externe");
    let r = send("GET", &format!("{}/api/ice-servers", server.base), Some(&token), None, "");
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let ice = &v["ice_servers"][0];
    assert_eq!(ice["urls"][0], format!("turn:127.0.0.1:{port}?transport=udp"));
    let ok = uclient(port, ice["username"].as_str().unwrap(), ice["credential"].as_str().unwrap(), "127.0.0.1", &[]);
    assert!(ok.contains("Total connect time") && !ok.contains("Cannot complete"), "accepted: {ok}");
    let bad = uclient(port, ice["username"].as_str().unwrap(), "d3Jvbmc=", "127.0.0.1", &[]);
    assert!(bad.contains("Cannot complete Allocation"), "a wrong password is refused: {bad}");
    let _ = std::fs::remove_dir_all(&dir);
}
