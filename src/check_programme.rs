//! The pre-class check's test programme: a studio on test sources (GStreamer's scrolling
//! SMPTE bars in the studio's three simulcast layers, a 440 Hz tone) publishing over WHIP to this
//! server's own check class, started when someone checks and stopped when nobody has for
//! `check.idle_secs`.
//!
//! One thread owns the studio: [`CheckStudio::wanted`] only sends it a note (the HTTP side
//! never waits on GStreamer); it starts the studio on the first note and stops it once the
//! notes stop.

use anyhow::Result;
use ardoise_proto::{ClassId, Role};
use ardoise_server::check::{PROGRAMME, TestProgramme};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// The test programme's publisher (see the module's rules).
pub struct CheckStudio {
    notes: Mutex<SyncSender<()>>,
}

impl CheckStudio {
    /// A publisher for `server` (its HTTP listener, its scheme, its first media address for
    /// the WebRTC socket); nothing runs until the first check.
    pub fn start(server: &ardoise_server::Server, codec: &str, idle: Duration) -> Result<CheckStudio> {
        let http = server.http_addr();
        // A server listening on every address is reached here on loopback.
        let host =
            if http.ip().is_unspecified() { SocketAddr::new(Ipv4Addr::LOCALHOST.into(), http.port()) } else { http };
        let scheme = if server.tls().is_some() { "https" } else { "http" };
        let bind = server
            .media_addrs()
            .first()
            .map(|a| a.ip())
            .filter(|ip| !ip.is_unspecified())
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let mut config = ardoise_studio::StudioConfig::test_sources(&format!("{scheme}://{host}"), PROGRAMME, "");
        // The classes' codec: the check tests what a class will send.
        config.codec = codec.parse().map_err(anyhow::Error::msg)?;
        config.bind = bind;
        config.speaker = ardoise_studio::Speaker::None;
        config.follow_class = false;
        // Scrolling SMPTE bars: every layer costs about its target bitrate, as a class does
        // (a still or a bouncing-ball pattern costs a tenth, and the check would pass links
        // that a real class fills).
        config.camera = ardoise_studio::SourceSpec::TestPattern("smpte horizontal-speed=8".into());
        config.layout = ardoise_studio::Layout::Camera;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let state = server.state();
        // A fresh token at each start: a server runs for weeks, a token for hours.
        let token = move || state.tokens.issue(Role::Teacher, Some(ClassId(PROGRAMME.into())), None, Some(TOKEN_SECS));
        std::thread::Builder::new().name("check-programme".into()).spawn(move || run(config, token, rx, idle))?;
        Ok(CheckStudio { notes: Mutex::new(tx) })
    }
}

impl TestProgramme for CheckStudio {
    fn wanted(&self) {
        // A full queue holds a note already: that one will do.
        if let Err(TrySendError::Disconnected(())) = self.notes.lock().unwrap_or_else(|e| e.into_inner()).try_send(()) {
            warn!("the check's test programme is gone");
        }
    }
}

/// The programme's teacher token lives this long; the studio is started again with a fresh
/// one after [`RESTART_AFTER`].
const TOKEN_SECS: u64 = 4 * 3600;
const RESTART_AFTER: Duration = Duration::from_secs(3 * 3600);

fn run(config: ardoise_studio::StudioConfig, token: impl Fn() -> String, notes: Receiver<()>, idle: Duration) {
    let mut studio: Option<(ardoise_studio::Studio, Instant)> = None;
    let mut last = Instant::now();
    loop {
        match notes.recv_timeout(Duration::from_secs(1)) {
            Ok(()) => {
                last = Instant::now();
                if studio.is_none() {
                    let config = ardoise_studio::StudioConfig { token: token(), ..config.clone() };
                    match ardoise_studio::Studio::start(config) {
                        Ok(s) => {
                            info!("the check's test programme is published");
                            studio = Some((s, Instant::now()));
                        }
                        Err(e) => warn!("the check's test programme cannot start: {e:#}"),
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                let idle_now = last.elapsed() >= idle;
                let old = studio.as_ref().is_some_and(|(_, at)| at.elapsed() >= RESTART_AFTER);
                if (idle_now || old)
                    && let Some((mut s, _)) = studio.take()
                {
                    s.stop();
                    info!(idle_now, "the check's test programme stopped");
                    if old && !idle_now {
                        // Started again at once, with a fresh token.
                        last = Instant::now();
                        let config = ardoise_studio::StudioConfig { token: token(), ..config.clone() };
                        if let Ok(s) = ardoise_studio::Studio::start(config) {
                            studio = Some((s, Instant::now()));
                        }
                    }
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                if let Some((mut s, _)) = studio.take() {
                    s.stop();
                }
                return;
            }
        }
    }
}
