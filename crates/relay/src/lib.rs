//! A seeded UDP relay that impairs a link, for tests and rehearsals: random and bursty loss,
//! delay with jitter, and a rate cap with a drop-tail buffer, separately for each direction.
//!
//! The relay listens on one address (the one the server advertises to clients in that test)
//! and gives every client its own upstream socket toward the real server, so the server still
//! sees one source address per client. Impairments are applied per client and per direction
//! from one seeded generator: a run with the same seed and the same traffic replays the same
//! losses. They can be changed while running ([`Relay::set_impairment`]).
//!
//! Everything stays on the addresses given (loopback in tests).

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BinaryHeap, HashMap};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::debug;

/// Bursty loss (Gilbert–Elliott): a good and a bad state with their own loss rates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Burst {
    /// Chance per packet of going from good to bad.
    pub enter: f64,
    /// Chance per packet of going from bad back to good.
    pub leave: f64,
    /// Loss rate in the bad state (the good state uses [`Impairment::loss`]).
    pub loss_in_burst: f64,
}

/// What one direction of the link does to packets.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Impairment {
    /// Random loss rate (0..1).
    pub loss: f64,
    /// Bursts of loss on top.
    pub burst: Option<Burst>,
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Uniform extra delay in `0..jitter` (packets may be reordered).
    pub jitter: Duration,
    /// Rate cap, bit/s; packets beyond the buffer are dropped.
    pub rate_bps: Option<u64>,
    /// Buffer of the rate cap, bytes (default 64 KiB when zero).
    pub buffer_bytes: usize,
}

/// Which way a packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client → server.
    Up,
    /// Server → client.
    Down,
}

/// Counters.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Packets received from clients.
    pub up_in: AtomicU64,
    /// Packets dropped on the way up.
    pub up_dropped: AtomicU64,
    /// Packets received from the server.
    pub down_in: AtomicU64,
    /// Packets dropped on the way down.
    pub down_dropped: AtomicU64,
}

/// Relay settings.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Where clients send (advertised by the server in that test).
    pub listen: SocketAddr,
    /// The real server.
    pub upstream: SocketAddr,
    /// Client → server.
    pub up: Impairment,
    /// Server → client.
    pub down: Impairment,
    /// Seed of every random choice.
    pub seed: u64,
}

/// One link state per client and direction: burst state and rate-cap queue.
#[derive(Debug, Default)]
struct LinkState {
    in_burst: bool,
    /// When the rate-limited link is free again.
    busy_until: Option<Instant>,
}

struct Scheduled {
    due: Instant,
    order: u64,
    via: Token,
    to: SocketAddr,
    data: Vec<u8>,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.order) == (o.due, o.order)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // Min-heap on (due, order).
        (o.due, o.order).cmp(&(self.due, self.order))
    }
}

/// Decide the fate of one packet: `None` = lost, else its extra delay.
fn judge(imp: &Impairment, link: &mut LinkState, rng: &mut StdRng, now: Instant, len: usize) -> Option<Duration> {
    if let Some(b) = imp.burst {
        link.in_burst = if link.in_burst {
            !rng.random_bool(b.leave.clamp(0.0, 1.0))
        } else {
            rng.random_bool(b.enter.clamp(0.0, 1.0))
        };
    }
    let loss = match (imp.burst, link.in_burst) {
        (Some(b), true) => b.loss_in_burst,
        _ => imp.loss,
    };
    if loss > 0.0 && rng.random_bool(loss.clamp(0.0, 1.0)) {
        return None;
    }
    let mut delay = imp.delay;
    if !imp.jitter.is_zero() {
        delay += imp.jitter.mul_f64(rng.random::<f64>());
    }
    if let Some(rate) = imp.rate_bps.filter(|r| *r > 0) {
        let buffer = if imp.buffer_bytes == 0 { 64 * 1024 } else { imp.buffer_bytes };
        let tx = Duration::from_secs_f64((len as f64 + 28.0) * 8.0 / rate as f64);
        let start = link.busy_until.filter(|b| *b > now).unwrap_or(now);
        let queued = start - now;
        // The bytes already waiting are about queued × rate: beyond the buffer, tail-drop.
        if queued.as_secs_f64() * rate as f64 / 8.0 > buffer as f64 {
            return None;
        }
        link.busy_until = Some(start + tx);
        delay += queued + tx;
    }
    Some(delay)
}

const LISTEN: Token = Token(0);

struct Inner {
    config: Mutex<RelayConfig>,
    stats: RelayStats,
    stop: AtomicBool,
}

/// A running relay (stops on drop).
pub struct Relay {
    inner: Arc<Inner>,
    thread: Option<std::thread::JoinHandle<()>>,
    local: SocketAddr,
}

impl Relay {
    /// Bind `config.listen` and start relaying on a thread of its own.
    pub fn start(config: RelayConfig) -> std::io::Result<Relay> {
        let listen = UdpSocket::bind(config.listen)?;
        let local = listen.local_addr()?;
        let inner =
            Arc::new(Inner { config: Mutex::new(config), stats: RelayStats::default(), stop: AtomicBool::new(false) });
        let thread = {
            let inner = inner.clone();
            std::thread::Builder::new().name("impair-relay".into()).spawn(move || {
                if let Err(e) = run(listen, &inner) {
                    debug!("relay stopped: {e}");
                }
            })?
        };
        Ok(Relay { inner, thread: Some(thread), local })
    }

    /// The address clients send to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Change one direction's impairment while running.
    pub fn set_impairment(&self, dir: Direction, imp: Impairment) {
        let mut c = self.inner.config.lock().unwrap_or_else(|e| e.into_inner());
        match dir {
            Direction::Up => c.up = imp,
            Direction::Down => c.down = imp,
        }
    }

    /// Counters.
    pub fn stats(&self) -> &RelayStats {
        &self.inner.stats
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(listen: UdpSocket, inner: &Inner) -> std::io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listen = listen;
    poll.registry().register(&mut listen, LISTEN, Interest::READABLE)?;
    let (upstream, seed) = {
        let c = inner.config.lock().unwrap_or_else(|e| e.into_inner());
        (c.upstream, c.seed)
    };
    let mut rng = StdRng::seed_from_u64(seed);
    // Per client: its upstream socket (token i+1) and its link states.
    let mut clients: Vec<(SocketAddr, UdpSocket, LinkState, LinkState)> = Vec::new();
    let mut by_addr: HashMap<SocketAddr, usize> = HashMap::new();
    let mut queue: BinaryHeap<Scheduled> = BinaryHeap::new();
    let mut order = 0u64;
    let mut events = Events::with_capacity(256);
    let mut buf = vec![0u8; 2048];
    let bind_ip = upstream.ip();
    while !inner.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let wait = queue.peek().map(|s| s.due.saturating_duration_since(now)).unwrap_or(Duration::from_millis(50));
        poll.poll(&mut events, Some(wait.min(Duration::from_millis(50))))?;
        let (up, down) = {
            let c = inner.config.lock().unwrap_or_else(|e| e.into_inner());
            (c.up, c.down)
        };
        for ev in events.iter() {
            if ev.token() == LISTEN {
                loop {
                    let (n, from) = match listen.recv_from(&mut buf) {
                        Ok(x) => x,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
                        Err(e) => return Err(e),
                    };
                    let i = match by_addr.get(&from) {
                        Some(&i) => i,
                        None => {
                            let mut s = UdpSocket::bind(SocketAddr::new(bind_ip, 0))?;
                            poll.registry().register(&mut s, Token(clients.len() + 1), Interest::READABLE)?;
                            clients.push((from, s, LinkState::default(), LinkState::default()));
                            by_addr.insert(from, clients.len() - 1);
                            clients.len() - 1
                        }
                    };
                    inner.stats.up_in.fetch_add(1, Ordering::Relaxed);
                    let now = Instant::now();
                    match judge(&up, &mut clients[i].2, &mut rng, now, n) {
                        Some(d) => {
                            order += 1;
                            queue.push(Scheduled {
                                due: now + d,
                                order,
                                via: Token(i + 1),
                                to: upstream,
                                data: buf[..n].to_vec(),
                            });
                        }
                        None => {
                            inner.stats.up_dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            } else {
                let i = ev.token().0 - 1;
                while let Some(c) = clients.get_mut(i) {
                    let n = match c.1.recv_from(&mut buf) {
                        Ok((n, _)) => n,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
                        Err(e) => return Err(e),
                    };
                    inner.stats.down_in.fetch_add(1, Ordering::Relaxed);
                    let now = Instant::now();
                    match judge(&down, &mut c.3, &mut rng, now, n) {
                        Some(d) => {
                            order += 1;
                            queue.push(Scheduled {
                                due: now + d,
                                order,
                                via: LISTEN,
                                to: c.0,
                                data: buf[..n].to_vec(),
                            });
                        }
                        None => {
                            inner.stats.down_dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
        let now = Instant::now();
        while queue.peek().is_some_and(|s| s.due <= now) {
            let s = queue.pop().expect("peeked");
            let sock = if s.via == LISTEN { &listen } else { &clients[s.via.0 - 1].1 };
            let _ = sock.send_to(&s.data, s.to);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket as StdSocket;

    fn echo_server() -> (SocketAddr, std::thread::JoinHandle<()>) {
        let s = StdSocket::bind("127.0.0.1:0").unwrap();
        let addr = s.local_addr().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let h = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = s.recv_from(&mut buf) {
                if &buf[..n] == b"quit" {
                    return;
                }
                let _ = s.send_to(&buf[..n], from);
            }
        });
        (addr, h)
    }

    fn exchange(relay: &Relay, n: u32) -> (u32, Vec<Duration>) {
        let c = StdSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let reader = c.try_clone().unwrap();
        let t0 = Instant::now();
        // Read while sending, so the client's socket buffer never overflows.
        let rx = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 16];
            while let Ok((k, _)) = reader.recv_from(&mut buf) {
                if k == 4 {
                    got.push((u32::from_be_bytes(buf[..4].try_into().unwrap()), t0.elapsed()));
                }
            }
            got
        });
        let mut sent_at = HashMap::new();
        for i in 0..n {
            sent_at.insert(i, t0.elapsed());
            c.send_to(&i.to_be_bytes(), relay.local_addr()).unwrap();
            std::thread::sleep(Duration::from_micros(200));
        }
        let got = rx.join().unwrap();
        let rtts = got.iter().map(|(i, at)| *at - sent_at[i]).collect();
        (got.len() as u32, rtts)
    }

    #[test]
    fn loss_is_seeded_and_delay_is_applied() {
        let (server, h) = echo_server();
        let cfg = |seed| RelayConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            upstream: server,
            up: Impairment::default(),
            down: Impairment { loss: 0.2, delay: Duration::from_millis(30), ..Default::default() },
            seed,
        };
        let relay = Relay::start(cfg(7)).unwrap();
        let (got, rtts) = exchange(&relay, 500);
        assert!((340..=460).contains(&got), "about 80% of 500 come back: {got}");
        assert!(rtts.iter().all(|r| *r >= Duration::from_millis(30)), "every packet is delayed by 30 ms");
        assert_eq!(relay.stats().down_dropped.load(Ordering::Relaxed) as u32, 500 - got);
        drop(relay);
        // Same seed, same traffic: the same number of losses.
        let relay = Relay::start(cfg(7)).unwrap();
        let (again, _) = exchange(&relay, 500);
        assert_eq!(again, got, "seeded: replayable");
        drop(relay);
        StdSocket::bind("127.0.0.1:0").unwrap().send_to(b"quit", server).unwrap();
        h.join().unwrap();
    }

    #[test]
    fn bursts_and_rate_cap() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut link = LinkState::default();
        let now = Instant::now();
        let imp =
            Impairment { burst: Some(Burst { enter: 0.02, leave: 0.2, loss_in_burst: 1.0 }), ..Default::default() };
        let fates: Vec<bool> = (0..10_000).map(|_| judge(&imp, &mut link, &mut rng, now, 100).is_none()).collect();
        let lost = fates.iter().filter(|l| **l).count();
        let runs = fates.windows(2).filter(|w| !w[0] && w[1]).count();
        assert!((600..=1400).contains(&lost), "≈ 9% lost in bursts: {lost}");
        assert!(lost as f64 / runs as f64 > 3.0, "losses come in bursts (mean run {:.1})", lost as f64 / runs as f64);

        // 400 kbit/s: 1000-byte packets leave every ≈ 20.6 ms; the buffer overflows.
        let mut link = LinkState::default();
        let imp = Impairment { rate_bps: Some(400_000), buffer_bytes: 10_000, ..Default::default() };
        let delays: Vec<Option<Duration>> = (0..20).map(|_| judge(&imp, &mut link, &mut rng, now, 1000)).collect();
        assert!(delays[1].unwrap() > delays[0].unwrap() + Duration::from_millis(19));
        assert!(delays.iter().any(|d| d.is_none()), "tail drop beyond 10 kB");
    }
}
