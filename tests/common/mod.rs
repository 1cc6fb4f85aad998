//! Helpers for end-to-end tests: run the real `ardoise` binary on loopback, port 0.
#![allow(dead_code)]

pub mod cluster;
pub mod publishing;
pub mod webm;
pub mod ws;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `ardoise` binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ardoise")
}

/// The configuration of test servers: the class `demo` (join code `demo`), and per-address
/// limits raised because every test client comes from 127.0.0.1 (the security tests set
/// their own limits with `ARDOISE__LIMITS__…` variables, which override these).
pub const TEST_CONFIG: &str = r#"
[[classes]]
id = "demo"
code = "demo"
title = "Classe de démonstration"

[limits]
connections_per_ip = 2000
offers_per_ip_per_minute = 100000
joins_per_ip_per_minute = 100000
joins_per_class_per_minute = 100000
sessions_per_ip = 2000
pending_per_class = 500
websockets_per_ip = 2000
"#;

/// A running `ardoise serve`, killed on drop.
pub struct TestServer {
    pub child: Child,
    pub base: String,
    pub media: Vec<std::net::SocketAddr>,
    pub data_dir: PathBuf,
    pub env: Vec<(String, String)>,
    /// Over HTTPS: the certificate's SHA-256 fingerprint and SPKI hash, as printed.
    pub tls: Option<(String, String)>,
}

impl TestServer {
    /// Start a server with two workers on ephemeral ports, with extra `ARDOISE__…` variables.
    pub fn start(extra_env: &[(&str, &str)]) -> TestServer {
        Self::start_on("127.0.0.1:0", extra_env)
    }

    /// Same, with the HTTP server on `http` (to restart a server at the same address).
    pub fn start_on(http: &str, extra_env: &[(&str, &str)]) -> TestServer {
        Self::start_with(http, TEST_CONFIG, extra_env)
    }

    /// A server on `http` with `config` as its configuration file (instead of
    /// [`TEST_CONFIG`]), then the `ARDOISE__…` variables.
    pub fn start_with(http: &str, config: &str, extra_env: &[(&str, &str)]) -> TestServer {
        let data_dir = std::env::temp_dir().join(format!("ardoise-test-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&data_dir).unwrap();
        std::fs::write(data_dir.join("test.toml"), config).unwrap();
        let mut env: Vec<(String, String)> = vec![
            ("ARDOISE__DATA__DIR".into(), data_dir.display().to_string()),
            ("ARDOISE__MEDIA__WORKERS".into(), "2".into()),
            ("ARDOISE__HTTP__SHUTDOWN_GRACE_SECS".into(), "2".into()),
            // Tests record seconds, on whatever disk the machine has (the full-disk test
            // makes its own 6 MB one).
            ("ARDOISE__RECORDING__MIN_FREE_MB".into(), "1".into()),
        ];
        env.extend(extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let (child, base, media, tls) = Self::spawn(http, &env);
        TestServer { child, base, media, data_dir, env, tls }
    }

    /// Kill the server and start it again on the same HTTP address with the same data
    /// directory (same token secret), as after a crash or a network cut.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let http = self.base.trim_start_matches("http://").trim_start_matches("https://").to_owned();
        let (child, base, media, tls) = Self::spawn(&http, &self.env);
        self.child = child;
        self.base = base;
        self.media = media;
        self.tls = tls;
    }

    fn spawn(
        http: &str,
        env: &[(String, String)],
    ) -> (Child, String, Vec<std::net::SocketAddr>, Option<(String, String)>) {
        let data_dir = env.iter().find(|(k, _)| k == "ARDOISE__DATA__DIR").map(|(_, v)| PathBuf::from(v)).unwrap();
        // ARDOISE_TEST_LOG=FILE (in `env`): the server's log goes to that file.
        // (Or the test process's own ARDOISE_TEST_LOG, when debugging a test by hand.)
        let log = env
            .iter()
            .find(|(k, _)| k == "ARDOISE_TEST_LOG")
            .map(|(_, v)| PathBuf::from(v))
            .or_else(|| std::env::var_os("ARDOISE_TEST_LOG").map(PathBuf::from));
        let stderr = match &log {
            Some(f) => Stdio::from(std::fs::OpenOptions::new().create(true).append(true).open(f).unwrap()),
            None => Stdio::inherit(),
        };
        let level = env.iter().find(|(k, _)| k == "ARDOISE_LOG").map(|(_, v)| v.clone());
        // ARDOISE_TEST_NETNS=NAME (in `env`): run the server in that network namespace, its
        // media on ARDOISE_TEST_UDP (else loopback).
        let netns = env.iter().find(|(k, _)| k == "ARDOISE_TEST_NETNS").map(|(_, v)| v.clone());
        let udp =
            env.iter().find(|(k, _)| k == "ARDOISE_TEST_UDP").map_or("127.0.0.1:0".to_owned(), |(_, v)| v.clone());
        // ARDOISE_TEST_MOUNTNS=1 (in `env`): run the server in a private mount namespace, so
        // that a test can lay a read-only mount over its data directory under the running
        // server (see `TestServer::data_dir_read_only`).
        let mountns = env.iter().any(|(k, _)| k == "ARDOISE_TEST_MOUNTNS");
        let mut cmd = match (&netns, mountns) {
            (Some(ns), _) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(bin());
                c
            }
            (None, true) => {
                let mut c = Command::new("unshare");
                c.args(["-m", "--propagation", "private", "--"]).arg(bin());
                c
            }
            (None, false) => Command::new(bin()),
        };
        let mut child = cmd
            .args(["serve", "--http", http, "--udp", &udp, "--config"])
            .arg(data_dir.join("test.toml"))
            .envs(env.iter().cloned())
            .env("ARDOISE_LOG", level.unwrap_or_else(|| std::env::var("ARDOISE_LOG").unwrap_or_else(|_| "warn".into())))
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start ardoise serve");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(20);
        let (base, media) = loop {
            assert!(Instant::now() < deadline, "server did not print its address");
            let line = lines.next().expect("server exited early").unwrap();
            if let Some(rest) = line.strip_prefix("ardoise: listening on ") {
                let base = rest.split_whitespace().next().unwrap().to_owned();
                let media = rest
                    .split("media UDP ")
                    .nth(1)
                    .unwrap()
                    .trim_end_matches(')')
                    .split(", ")
                    .map(|a| a.parse().unwrap())
                    .collect();
                break (base, media);
            }
        };
        let tls = base.starts_with("https://").then(|| {
            let mut fingerprint = None;
            loop {
                let line = lines.next().expect("server exited early").unwrap();
                if let Some(f) = line.split("SHA-256 fingerprint ").nth(1) {
                    fingerprint = Some(f.trim().to_owned());
                } else if let Some(h) = line.split("--ignore-certificate-errors-spki-list): ").nth(1) {
                    break (fingerprint.expect("fingerprint printed first"), h.trim().to_owned());
                }
            }
        });
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        (child, base, media, tls)
    }

    /// Make the server's data directory read-only (`true`) or writable again, under the running
    /// server (started with `ARDOISE_TEST_MOUNTNS=1`, as root): a read-only bind mount laid
    /// over it, then lifted. As with `chmod a-w`, files the server already holds open stay
    /// writable through their descriptors; every new file, rename and open fails (EROFS).
    pub fn data_dir_read_only(&self, read_only: bool) {
        let dir = self.data_dir.display().to_string();
        let script = if read_only {
            format!("mount --bind '{dir}' '{dir}' && mount -o remount,bind,ro '{dir}'")
        } else {
            format!("umount -l '{dir}'")
        };
        let status = Command::new("nsenter")
            .args(["-t", &self.child.id().to_string(), "-m", "sh", "-c", &script])
            .status()
            .expect("nsenter");
        assert!(status.success(), "{script}");
    }

    /// Lay a `size` tmpfs (`3m`, say) over `sub` of the data directory under the running
    /// server (started with `ARDOISE_TEST_MOUNTNS=1`, as root): a small disk that fills.
    pub fn small_disk(&self, sub: &str, size: &str) {
        let dir = self.data_dir.join(sub);
        std::fs::create_dir_all(&dir).unwrap();
        let script = format!("mount -t tmpfs -o size={size} tmpfs '{}'", dir.display());
        let status = Command::new("nsenter")
            .args(["-t", &self.child.id().to_string(), "-m", "sh", "-c", &script])
            .status()
            .expect("nsenter");
        assert!(status.success(), "{script}");
    }

    /// A token from `ardoise token`, run with the server's configuration.
    pub fn token(&self, role: &str, class: Option<&str>) -> String {
        let mut cmd = Command::new(bin());
        cmd.args(["token", "--role", role, "--config"])
            .arg(self.data_dir.join("test.toml"))
            .envs(self.env.iter().cloned());
        if let Some(c) = class {
            cmd.args(["--class", c]);
        }
        let out = cmd.output().expect("run ardoise token");
        assert!(out.status.success(), "ardoise token failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Run `ardoise ARGS --config <the server's>` with its environment, `stdin` piped in;
    /// its standard output, or its standard error when it fails.
    pub fn cli(&self, args: &[&str], stdin: &str) -> Result<String, String> {
        use std::io::Write;
        let mut child = Command::new(bin())
            .args(args)
            .arg("--config")
            .arg(self.data_dir.join("test.toml"))
            .envs(self.env.iter().cloned())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ardoise");
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            Ok(String::from_utf8(out.stdout).unwrap().trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// A pupil token through the join API.
    pub fn join(&self, code: &str, name: &str) -> String {
        let body = format!("{{\"name\":\"{name}\"}}");
        let r = ardoise_client::trust::agent()
            .post(&format!("{}/api/classes/{code}/join", self.base))
            .set("Content-Type", "application/json")
            .send_string(&body)
            .expect("join");
        let v: serde_json::Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
        v["token"].as_str().unwrap().to_owned()
    }

    /// Send SIGTERM and wait for the exit status (at most `within`).
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        unsafe_kill(self.child.id(), 15);
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("ARDOISE_TEST_KEEP").is_some() {
            eprintln!("ARDOISE_TEST_KEEP: the server's data stay in {}", self.data_dir.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

fn unsafe_kill(pid: u32, sig: i32) {
    let _ = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status();
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish()
}

/// Resident memory of process `pid`, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Poll `check` every 20 ms until it returns `Ok`, or panic after `within` with the reason
/// of its last `Err` (what it was still waiting for).
pub fn eventually<T>(within: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + within;
    loop {
        match check() {
            Ok(v) => return v,
            Err(why) => assert!(Instant::now() < deadline, "still not so after {within:?}: {why}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// [`eventually`] for a check that only says yes (`Some`) or not yet: the timeout names
/// `what` was awaited.
pub fn wait_until<T>(within: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    eventually(within, || check().ok_or_else(|| format!("waiting for {what}")))
}

/// The sum of the `/metrics` series named `name` (every label set; read from loopback).
pub fn metric(server: &TestServer, name: &str) -> f64 {
    send("GET", &format!("{}/metrics", server.base), None, None, "")
        .body
        .lines()
        .filter(|l| l.split([' ', '{']).next() == Some(name))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

/// A WHEP offer from str0m: audio and video, receive only.
pub fn recv_offer() -> String {
    use str0m::media::{Direction, MediaKind};
    let mut rtc = str0m::Rtc::builder().build(Instant::now());
    rtc.add_local_candidate(str0m::Candidate::host("127.0.0.1:9".parse().unwrap(), "udp").unwrap());
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.apply().unwrap().0.to_sdp_string()
}

/// Loopback.
pub fn lo() -> std::net::IpAddr {
    "127.0.0.1".parse().unwrap()
}

/// A free TCP port on loopback (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Run test `name` of this test binary again inside a private, loopback-only network
/// namespace (`unshare -n`, root). Returns true when called inside it (the caller then runs
/// the test body after bringing `lo` up); outside, runs the inner process and returns false
/// once it passed. When `prerequisites` fail (not root, a missing package) the test fails.
pub fn in_private_network(name: &str, prerequisites: impl FnOnce() -> Result<(), String>) -> bool {
    if std::env::var_os("ARDOISE_IN_NETNS").is_some() {
        let up = Command::new("ip").args(["link", "set", "lo", "up"]).status().expect("ip");
        assert!(up.success(), "bring lo up in the namespace");
        return true;
    }
    let ready =
        if is_root() { prerequisites() } else { Err("needs root for a private network namespace (unshare -n)".into()) };
    // A test that cannot run here fails: it never passes having skipped its work.
    if let Err(why) = ready {
        panic!("{name} cannot run here: {why} (make test installs what it needs and runs as root)");
    }
    let status = Command::new("unshare")
        .args(["-n", "--"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env("ARDOISE_IN_NETNS", "1")
        .status()
        .expect("run unshare");
    assert!(status.success(), "the run of {name} inside the namespace failed");
    false
}

/// A host of its own for the server: a named network namespace joined to the test's own
/// namespace by a veth pair, `PREFIX.1` on the test's side and `PREFIX.2` on the host's (a
/// /24). Deleted on drop. Call it inside [`in_private_network`].
pub struct HostNamespace {
    /// The namespace's name (for `ARDOISE_TEST_NETNS` and `ip netns exec`).
    pub name: String,
}

impl HostNamespace {
    /// Make `ardoise-TAG-PID` with `PREFIX.2` inside and `PREFIX.1` here.
    pub fn new(tag: &str, prefix: &str) -> HostNamespace {
        let run = |args: &[&str]| {
            let ok = Command::new("ip").args(args).status().expect("ip").success();
            assert!(ok, "ip {}", args.join(" "));
        };
        let name = format!("ardoise-{tag}-{}", std::process::id());
        run(&["netns", "add", &name]);
        let host = HostNamespace { name: name.clone() };
        run(&["link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", &name]);
        // IPv4 only: an IPv6 address finishing duplicate detection a second later would be a
        // network change, which makes a running Chromium drop its requests
        // (ERR_NETWORK_CHANGED).
        let here = Command::new("sysctl").args(["-qw", "net.ipv6.conf.va.disable_ipv6=1"]).status();
        assert!(here.is_ok_and(|s| s.success()), "disable IPv6 on va");
        run(&["netns", "exec", &name, "sysctl", "-qw", "net.ipv6.conf.vb.disable_ipv6=1"]);
        run(&["addr", "add", &format!("{prefix}.1/24"), "dev", "va"]);
        run(&["link", "set", "va", "up"]);
        run(&["netns", "exec", &name, "ip", "addr", "add", &format!("{prefix}.2/24"), "dev", "vb"]);
        run(&["netns", "exec", &name, "ip", "link", "set", "vb", "up"]);
        run(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"]);
        // Both ends carry traffic before anyone (a browser) looks at the interfaces.
        eventually(Duration::from_secs(5), || {
            let out = Command::new("ip").args(["-o", "link", "show", "va"]).output().expect("ip link show");
            let line = String::from_utf8_lossy(&out.stdout).into_owned();
            if line.contains("state UP") { Ok(()) } else { Err(format!("veth va is not up yet: {line}")) }
        });
        host
    }
}

impl Drop for HostNamespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// What a test driving Debian's Chromium needs (make test installs them).
pub fn browser_prerequisites() -> Result<(), String> {
    for p in ["/usr/bin/chromium", "/usr/bin/unshare"] {
        if !std::path::Path::new(p).exists() {
            return Err(format!("{p} is missing (make test installs it)"));
        }
    }
    let modules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/node_modules/playwright-core");
    if !modules.exists() {
        return Err("tests/browser/node_modules is missing (make test runs npm ci)".into());
    }
    Ok(())
}

/// Run `node tests/browser/SCRIPT ARGS…` (a script on `harness.mjs`: one line of JSON at the
/// end of its output): its result, once it says it passed. Its progress (stderr) and result
/// (stdout) are printed.
pub fn browser_script(script: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new("node")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser").join(script))
        .args(args)
        .output()
        .expect("run node");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{script}: {stdout}");
    let v: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("the script printed a result")).unwrap();
    assert!(v["error"].is_null(), "{script}: {}", v["error"]);
    assert!(out.status.success(), "{script} failed");
    v
}

/// `tc` is there (make test installs iproute2), for the tests that cap links.
pub fn tc_present() -> Result<(), String> {
    ["/usr/sbin/tc", "/sbin/tc"]
        .iter()
        .any(|p| std::path::Path::new(p).exists())
        .then_some(())
        .ok_or_else(|| "tc is missing (make test installs iproute2)".to_owned())
}

/// An HTTP answer, whatever its status.
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub retry_after: Option<String>,
    pub body: String,
}

/// Send a request and return the answer (errors included).
pub fn send(method: &str, url: &str, token: Option<&str>, content_type: Option<&str>, body: &str) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    if let Some(ct) = content_type {
        headers.push(("Content-Type", ct));
    }
    send_with(method, url, &headers, body).0
}

/// Send a request with these headers; the answer and its `Set-Cookie` header.
pub fn send_with(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> (Reply, Option<String>) {
    let mut req = ardoise_client::trust::agent().request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let r = match req.send_string(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let cookie = r.header("Set-Cookie").map(String::from);
    let reply = Reply {
        status: r.status(),
        content_type: r.content_type().to_owned(),
        retry_after: r.header("Retry-After").map(String::from),
        body: r.into_string().unwrap_or_default(),
    };
    (reply, cookie)
}

/// Assert a problem+json answer with this status and a detail.
pub fn assert_problem(r: &Reply, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    assert_eq!(r.content_type, "application/problem+json", "{what}");
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_else(|_| panic!("{what}: not JSON: {}", r.body));
    assert_eq!(v["status"], status, "{what}");
    assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()), "{what}: a detail explains it");
}

/// The studio on test sources publishing `class` with `teacher`'s token, not following the
/// class's events, then `adjust`ed (a codec, following the console…); not yet waited for.
pub fn start_studio(
    server: &TestServer,
    class: &str,
    teacher: &str,
    adjust: impl FnOnce(&mut ardoise_studio::StudioConfig),
) -> ardoise_studio::Studio {
    let mut config = ardoise_studio::StudioConfig::test_sources(&server.base, class, teacher);
    config.follow_class = false;
    adjust(&mut config);
    ardoise_studio::Studio::start(config).expect("studio starts on test sources")
}

/// The studio (`adjust`ed) publishing `demo` and recorded for `secs` seconds by `teacher`:
/// the stopped recording's description.
pub fn recorded_for(
    server: &TestServer,
    teacher: &str,
    secs: u64,
    adjust: impl FnOnce(&mut ardoise_studio::StudioConfig),
) -> serde_json::Value {
    let studio = publishing_studio(server, "demo", teacher, adjust);
    let url = |p: &str| format!("{}/api/classes/demo/recording/{p}", server.base);
    let r = send("POST", &url("start"), Some(teacher), None, "");
    assert_eq!(r.status, 201, "{}", r.body);
    std::thread::sleep(Duration::from_secs(secs)); // the recording's length, not a synchronisation
    let r = send("POST", &url("stop"), Some(teacher), None, "");
    assert_eq!(r.status, 200, "{}", r.body);
    drop(studio);
    serde_json::from_str(&r.body).unwrap()
}

/// [`start_studio`], once it publishes.
pub fn publishing_studio(
    server: &TestServer,
    class: &str,
    teacher: &str,
    adjust: impl FnOnce(&mut ardoise_studio::StudioConfig),
) -> ardoise_studio::Studio {
    let studio = start_studio(server, class, teacher, adjust);
    eventually(Duration::from_secs(15), || {
        if studio.stats.connected.load(std::sync::atomic::Ordering::Relaxed) {
            Ok(())
        } else {
            Err("the studio publishes".into())
        }
    });
    studio
}

/// The worker the admin overview says `class` is on (its home), with its participants (on
/// every worker).
pub fn placed(server: &TestServer, admin: &str, class: &str) -> Option<(u64, u64)> {
    let r = send("GET", &format!("{}/api/admin/classes", server.base), Some(admin), None, "");
    assert_eq!(r.status, 200, "{}", r.body);
    let overview: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let c = overview["classes"].as_array()?.iter().find(|c| c["id"] == class)?.clone();
    Some((c["worker"].as_u64()?, c["participants"].as_array().map_or(0, |p| p.len() as u64)))
}
