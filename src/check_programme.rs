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
    pub fn start(server: &ardoise_server::Server, idle: Duration) -> Result<CheckStudio> {
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
        let token = server.state().tokens.issue(Role::Teacher, Some(ClassId(PROGRAMME.into())), None, None);
        let mut config = ardoise_studio::StudioConfig::test_sources(&format!("{scheme}://{host}"), PROGRAMME, &token);
        config.bind = bind;
        config.speaker = ardoise_studio::Speaker::None;
        config.follow_class = false;
        // Scrolling SMPTE bars: every layer costs about its target bitrate, as a class does
        // (a still or a bouncing-ball pattern costs a tenth, and the check would pass links
        // that a real class fills).
        config.camera = ardoise_studio::SourceSpec::TestPattern("smpte horizontal-speed=8".into());
        config.layout = ardoise_studio::Layout::Camera;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new().name("check-programme".into()).spawn(move || run(config, rx, idle))?;
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

fn run(config: ardoise_studio::StudioConfig, notes: Receiver<()>, idle: Duration) {
    let mut studio: Option<ardoise_studio::Studio> = None;
    let mut last = Instant::now();
    loop {
        match notes.recv_timeout(Duration::from_secs(1)) {
            Ok(()) => {
                last = Instant::now();
                if studio.is_none() {
                    match ardoise_studio::Studio::start(config.clone()) {
                        Ok(s) => {
                            info!("the check's test programme is published");
                            studio = Some(s);
                        }
                        Err(e) => warn!("the check's test programme cannot start: {e:#}"),
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if last.elapsed() >= idle
                    && let Some(mut s) = studio.take()
                {
                    s.stop();
                    info!("the check's test programme stopped (nobody checks)");
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                if let Some(mut s) = studio.take() {
                    s.stop();
                }
                return;
            }
        }
    }
}
