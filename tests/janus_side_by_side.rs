//! The side-by-side benchmark's other server: `ardoise loadgen --janus` runs the class (one
//! str0m teacher with VP8 simulcast + Opus, str0m pupils) against Janus 1.1 VideoRoom from
//! Debian, configured from `benches/janus/` as `benches/scale.sh` does, inside a private
//! loopback-only network namespace. It guards the tooling behind the Janus figures of
//! `benches/RESULTS.md`: every pupil gets the top layer and the window measures Janus.

mod common;

use common::{bin, in_private_network};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn janus_prerequisites() -> Result<(), String> {
    for p in ["/usr/bin/janus", "/usr/bin/gcc", "/usr/bin/unshare"] {
        if !Path::new(p).exists() {
            return Err(format!("{p} is missing (make test installs it)"));
        }
    }
    Ok(())
}

/// Janus on 127.0.0.1, killed on drop.
struct Janus {
    child: Child,
    url: String,
}

impl Janus {
    fn start(dir: &Path) -> Janus {
        let conf = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/janus");
        let work = dir.join("conf");
        std::fs::create_dir_all(&work).unwrap();
        for f in ["janus.jcfg", "janus.plugin.videoroom.jcfg", "janus.transport.http.jcfg"] {
            let text =
                std::fs::read_to_string(conf.join(f)).unwrap().replace("@CONF_DIR@", &work.display().to_string());
            std::fs::write(work.join(f), text).unwrap();
        }
        let shim = dir.join("lo_shim.so");
        let built = Command::new("gcc")
            .args(["-shared", "-fPIC", "-O2", "-o"])
            .arg(&shim)
            .arg(conf.join("lo_shim.c"))
            .arg("-ldl")
            .status()
            .expect("gcc");
        assert!(built.success(), "build the loopback shim");
        let log = std::fs::File::create(dir.join("janus.log")).unwrap();
        let child = Command::new("janus")
            .arg("-F")
            .arg(&work)
            .arg("-C")
            .arg(work.join("janus.jcfg"))
            .arg("-o")
            .env("LD_PRELOAD", &shim)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start janus");
        let janus = Janus { child, url: "http://127.0.0.1:18088/janus".into() };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let info = ureq::post(&janus.url).send_string(r#"{"janus":"info","transaction":"up"}"#);
            if info.is_ok() {
                return janus;
            }
            assert!(
                Instant::now() < deadline,
                "janus did not answer within 15 s: {}",
                std::fs::read_to_string(dir.join("janus.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Janus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn loadgen_runs_the_class_against_janus_videoroom() {
    if !in_private_network("loadgen_runs_the_class_against_janus_videoroom", janus_prerequisites) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ardoise-janus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let janus = Janus::start(&dir);
    let json = dir.join("load.json");
    let out = Command::new(bin())
        .args(["loadgen", "--janus", &janus.url, "--pupils", "4", "--ramp", "20", "--duration", "8", "--settle", "2"])
        .args(["--layer", "high", "--watch-pid", &janus.child.id().to_string(), "--json"])
        .arg(&json)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run loadgen");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "loadgen --janus failed: {stderr}");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    println!(
        "janus run: {}",
        stderr.lines().filter(|l| l.contains("pupils ok") || l.contains("window")).collect::<Vec<_>>().join(" / ")
    );
    assert_eq!(r["server"], "janus");
    assert_eq!(r["pupils_ok"], 4, "every pupil got video through Janus: {stderr}");
    assert_eq!(r["pupils_video_stopped"], 0);
    for p in r["per_pupil"].as_array().unwrap() {
        // The top layer (substream 2): ~1.3 Mbit/s, not the 140 kbit/s of the lowest.
        assert!(p["video_kbps"].as_f64().unwrap() > 700.0, "pupil on the 720p layer: {p}");
        assert!(p["video_loss"].as_f64().unwrap() < 0.02, "loss on loopback: {p}");
    }
    let w = &r["window"];
    assert!(w["rtp_packets"].as_u64().unwrap() > 4 * 150 * 5, "packets counted in the window: {w}");
    let cpu = w["server_cpu_us_per_packet"].as_f64().expect("Janus's CPU measured");
    assert!(cpu > 0.0 && cpu < 1000.0, "Janus CPU per packet {cpu} µs");
    assert!(w["server_rss_kib_end"].as_u64().unwrap() > 1000, "Janus's memory read: {w}");
    let _ = std::fs::remove_dir_all(&dir);
}
