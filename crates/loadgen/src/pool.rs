//! Many pupils on one thread: a readiness loop (epoll through mio) over their sockets.
//!
//! A thread per pupil would make the load generator, not the server, the bottleneck on a
//! 2-core machine (one wake-up per datagram per thread). A pool wakes once for whatever
//! arrived on any of its sockets.

use crate::{Subscriber, SubscriberReport};
use anyhow::Result;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

/// Counters visible while the pool runs.
#[derive(Debug, Default)]
pub struct PoolProgress {
    /// Pupils whose ICE + DTLS is up.
    pub connected: AtomicUsize,
    /// Pupils that failed.
    pub failed: AtomicUsize,
}

/// Run pupils arriving on `incoming` until `stop`; returns each pupil's (index, report or error).
pub fn run_pool(
    incoming: Receiver<(usize, Subscriber)>,
    stop: Arc<AtomicBool>,
    progress: Arc<PoolProgress>,
) -> Result<Vec<(usize, Result<SubscriberReport, String>)>> {
    let mut poll = Poll::new()?;
    let mut mio_events = Events::with_capacity(1024);
    let mut pupils: Vec<(usize, Subscriber, bool)> = Vec::new();
    let mut results = Vec::new();
    let mut events = Vec::new();
    let mut open = true;
    let mut ready: Vec<bool> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        // New pupils.
        while open {
            match incoming.try_recv() {
                Ok((i, s)) => {
                    s.peer().socket().set_nonblocking(true)?;
                    let fd = s.peer().socket().as_raw_fd();
                    poll.registry().register(&mut SourceFd(&fd), Token(pupils.len()), Interest::READABLE)?;
                    if let Some(tcp) = s.peer().tcp_fd() {
                        poll.registry().register(&mut SourceFd(&tcp), Token(pupils.len()), Interest::READABLE)?;
                    }
                    pupils.push((i, s, false));
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => open = false,
            }
        }
        let now = Instant::now();
        let next = pupils.iter().filter(|p| !p.2).map(|p| p.1.peer().next_timeout()).min();
        let wait =
            next.map_or(Duration::from_millis(20), |t| t.saturating_duration_since(now)).min(Duration::from_millis(20));
        poll.poll(&mut mio_events, Some(wait))?;
        let now = Instant::now();
        ready.clear();
        ready.resize(pupils.len(), false);
        for e in mio_events.iter() {
            ready[e.token().0] = true;
        }
        for (k, (idx, pupil, failed)) in pupils.iter_mut().enumerate() {
            if *failed || !(ready[k] || pupil.peer().next_timeout() <= now) {
                continue;
            }
            let was_connected = pupil.report.connected_at.is_some();
            if let Err(e) = pupil.process(&mut events) {
                *failed = true;
                progress.failed.fetch_add(1, Ordering::Relaxed);
                results.push((*idx, Err(format!("pupil {idx}: {e}"))));
                continue;
            }
            if !was_connected && pupil.report.connected_at.is_some() {
                progress.connected.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    for (idx, pupil, failed) in pupils {
        if !failed {
            let (_, report) = pupil.close();
            results.push((idx, Ok(report)));
        }
    }
    Ok(results)
}
