//! A publisher on its own thread, for end-to-end tests: the teacher, or a pupil holding the
//! floor.

use ardoise_loadgen::{Publisher, PublisherConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// A publisher until dropped: the teacher (three simulcast layers), or a pupil holding the
/// floor (one layer).
pub struct Publishing {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Publishing {
    /// The teacher publishing the class to `server`.
    pub fn class(server: &str, class: &str, token: String) -> Publishing {
        Self::start(server, class, token, true)
    }

    /// A pupil holding the floor (its camera granted) publishing to `server`.
    pub fn floor(server: &str, class: &str, token: String) -> Publishing {
        Self::start(server, class, token, false)
    }

    fn start(server: &str, class: &str, token: String, simulcast: bool) -> Publishing {
        let config = PublisherConfig {
            server: server.to_owned(),
            class: class.to_owned(),
            token,
            bind: super::lo(),
            simulcast,
            record_payloads: false,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut p = Publisher::connect(&config).expect("WHIP");
            p.run_until(|| stop2.load(Ordering::Relaxed)).expect("publish");
            let _ = p.close();
        });
        Publishing { stop, thread: Some(thread) }
    }
}

impl Drop for Publishing {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
