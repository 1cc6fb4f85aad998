//! A media worker: one OS thread, one UDP socket, the rooms assigned to it.
//!
//! The loop waits for a datagram, a command or the earliest room timeout, feeds the room
//! with `now`, then sends everything the rooms queued before waiting again.

use crate::DelayHistogram;
use crate::ice_tcp::{TcpConnection, TcpInput, UfragDirectory};
use crate::{BatchSender, Command, Fault, Joined, MediaEvent, NetError, WorkerSnapshot};
use ardoise_proto::{ClassId, ParticipantId, WorkerStats};
use ardoise_sfu::{Received, Room, RoomEvent, RoomStats, SfuConfig};
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use str0m::net::Protocol;
use tokio::net::UdpSocket;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tracing::{debug, error, info};

/// Largest datagram read.
const MAX_DATAGRAM: usize = 2048;
/// Datagrams read in one wake-up before sending what they produced.
const READ_BATCH: usize = 32;
/// How long the session an address is routed to must have heard nothing from it before a
/// binding request from that address, naming another session, moves the address there: a
/// vanished client is silent, a live one sends RTCP or media several times a second, so
/// a spoofed request cannot take a live client's address.
pub const ADDRESS_MOVES_AFTER: Duration = Duration::from_secs(1);

/// The session an address is routed to, and when a datagram from it last went there.
#[derive(Debug, Clone, Copy)]
struct Routed {
    slot: usize,
    pid: ParticipantId,
    heard: Instant,
}

mod fan_out;
use fan_out::FedSource;

/// One media worker's state (lives on its own thread).
pub struct Worker {
    index: usize,
    socket: UdpSocket,
    advertised: SocketAddr,
    config: SfuConfig,
    rooms: Vec<Option<Room>>,
    by_class: HashMap<ClassId, usize>,
    peers: HashMap<(Protocol, SocketAddr), Routed>,
    /// Local ICE ufrag → (room slot, participant): a STUN request finds its peer with one
    /// lookup, so a flood of unknown STUN costs no scan of the sessions.
    ufrags: HashMap<String, (usize, ParticipantId)>,
    /// Sources of datagrams that named no live session, this second.
    unknown_sources: crate::stun_route::UnknownSources,
    /// Recorded classes (by room slot) and where their programme goes.
    recordings: Vec<(usize, crate::RecordingSink)>,
    /// The same ufrags for the ICE-TCP listener, which hands each connection to its worker.
    directory: UfragDirectory,
    /// The advertised address of the ICE-TCP listener (the local address of TCP input).
    tcp_advertised: Option<SocketAddr>,
    /// ICE-TCP connections by client address.
    tcp: HashMap<SocketAddr, TcpConnection>,
    next_tcp: u64,
    tcp_in: tokio::sync::mpsc::Sender<TcpInput>,
    events: UnboundedSender<MediaEvent>,
    /// The peers in this worker's rooms, for placing classes and pupils (see
    /// [`crate::placement`]).
    load: Arc<crate::placement::LoadGauge>,
    stats: WorkerStats,
    retired: RoomStats,
    sender: BatchSender,
    outbox: Vec<str0m::net::Transmit>,
    /// Longest a partly received video frame is held back before its packets are sent.
    frame_hold: Duration,
    /// Slice a batch after this many packets written to pupils (0: never).
    slice_packets: usize,
    /// The current batch is held until this time (a frame is incomplete).
    hold_until: Option<Instant>,
    /// Arrival times of the publisher packets of the current batch.
    arrivals: Vec<Instant>,
    /// How many of `arrivals` were drained into datagrams (timed at the next send).
    drained_arrivals: usize,
    /// Receive → send delay of forwarded media packets.
    forward_delay: DelayHistogram,
    /// Classes whose home room here feeds fan-out rooms on other workers: their indexes and
    /// command queues.
    fan_outs: HashMap<ClassId, Vec<(usize, UnboundedSender<Command>)>>,
    /// Items handed to fan-out rooms (counted by the rooms' sinks).
    fed_out: Arc<AtomicU64>,
    /// Classes whose room here is a fan-out room: where their home is.
    fed_from: HashMap<ClassId, FedSource>,
    /// Fan-out rooms (slots) fed in this wake-up, their batch open.
    fed_now: Vec<usize>,
}

/// How a worker groups its sends.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Send runs of datagrams to one peer with UDP GSO.
    pub gso: bool,
    /// Longest a partly received video frame is held so each pupil gets it in one send.
    pub frame_hold: Duration,
    /// Drain and send a batch in slices once this many packets were written to pupils (0:
    /// never): a keyframe to hundreds of pupils would otherwise hold its first packets until
    /// the whole fan-out is ready.
    pub slice_packets: usize,
}

/// Most rounds of due timeouts served after a batch before the worker polls its inputs again
/// (a frame of more packets goes on at the next wake-ups).
const DUE_ROUNDS: usize = 16;
/// Longest the rounds of due timeouts may keep the worker from its socket and commands.
const DUE_BUDGET: Duration = Duration::from_millis(4);

/// How a worker reaches its peers over TCP.
#[derive(Debug, Clone, Default)]
pub struct TcpSide {
    /// The advertised address of the ICE-TCP listener (`None`: no ICE-TCP).
    pub advertised: Option<SocketAddr>,
    /// The ufrag directory the listener reads.
    pub directory: UfragDirectory,
}

/// Start a worker thread owning `socket`.
///
/// The thread supervises its worker: a panic outside the str0m calls (which each room
/// catches per peer) unwinds the worker, not the thread. The worker's peers are reported
/// gone ([`MediaEvent::Left`], then [`MediaEvent::WorkerRestarted`]), and a fresh worker
/// takes the same socket and command queue at once; the clients reconnect by themselves (a
/// pupil's page on its connection failing or on the class event `reconnect`, the studio on
/// its WHIP session failing). `WorkerStats::restarts` counts it for the admin.
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    index: usize,
    socket: std::net::UdpSocket,
    advertised: SocketAddr,
    config: SfuConfig,
    batching: Batching,
    tcp: TcpSide,
    commands: UnboundedReceiver<Command>,
    events: UnboundedSender<MediaEvent>,
    load: Arc<crate::placement::LoadGauge>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    socket.set_nonblocking(true)?;
    std::thread::Builder::new().name(format!("media-{index}")).spawn(move || {
        let mut commands = commands;
        let mut restarts = 0u64;
        let mut recent: std::collections::VecDeque<Instant> = std::collections::VecDeque::new();
        let config =
            SfuConfig { candidates: vec![advertised], tcp_candidates: tcp.advertised.into_iter().collect(), ..config };
        loop {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    error!(worker = index, "cannot start the worker's runtime: {e}; retrying in 1 s");
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            };
            let _context = rt.enter();
            let socket = match socket.try_clone().and_then(UdpSocket::from_std) {
                Ok(s) => s,
                Err(e) => {
                    error!(worker = index, "cannot register the media socket: {e}; retrying in 1 s");
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            };
            let (tcp_in, tcp_rx) = tokio::sync::mpsc::channel(1024);
            load.publish(std::iter::empty()); // a fresh worker holds no peer
            let mut worker = Worker {
                index,
                socket,
                advertised,
                config: config.clone(),
                rooms: Vec::new(),
                by_class: HashMap::new(),
                peers: HashMap::new(),
                ufrags: HashMap::new(),
                unknown_sources: Default::default(),
                recordings: Vec::new(),
                directory: tcp.directory.clone(),
                tcp_advertised: tcp.advertised,
                tcp: HashMap::new(),
                next_tcp: 0,
                tcp_in,
                events: events.clone(),
                load: load.clone(),
                stats: WorkerStats { index, port: advertised.port(), restarts, ..Default::default() },
                retired: RoomStats::default(),
                sender: BatchSender::new(batching.gso),
                outbox: Vec::new(),
                frame_hold: batching.frame_hold,
                slice_packets: batching.slice_packets,
                hold_until: None,
                arrivals: Vec::new(),
                drained_arrivals: 0,
                forward_delay: DelayHistogram::default(),
                fan_outs: HashMap::new(),
                fed_out: Arc::new(AtomicU64::new(0)),
                fed_from: HashMap::new(),
                fed_now: Vec::new(),
            };
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                rt.block_on(worker.run(&mut commands, tcp_rx));
            }));
            match run {
                Ok(()) => return,
                Err(panic) => {
                    restarts += 1;
                    let why = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    let lost = worker.report_lost();
                    drop(worker);
                    let wait = restart_backoff(&mut recent, Instant::now());
                    error!(
                        worker = index,
                        restarts,
                        peers = lost,
                        "media worker panicked ({why}); its peers are gone, a fresh worker takes over in {wait:?}"
                    );
                    std::thread::sleep(wait);
                }
            }
        }
    })
}

/// How long to wait before the next fresh worker, given the restarts of the last minute
/// (`recent`, updated here): none for the first, then 250 ms doubling to 30 s, so that input
/// that makes a worker panic again and again cannot spin a core.
fn restart_backoff(recent: &mut std::collections::VecDeque<Instant>, now: Instant) -> Duration {
    while recent.front().is_some_and(|&t| now.saturating_duration_since(t) > Duration::from_secs(60)) {
        recent.pop_front();
    }
    recent.push_back(now);
    match recent.len() {
        0 | 1 => Duration::ZERO,
        n => (Duration::from_millis(250) * 2u32.saturating_pow(n as u32 - 2)).min(Duration::from_secs(30)),
    }
}

impl Worker {
    async fn run(
        &mut self,
        commands: &mut UnboundedReceiver<Command>,
        mut tcp_rx: tokio::sync::mpsc::Receiver<TcpInput>,
    ) {
        info!(worker = self.index, addr = %self.advertised, "media worker started");
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let mut deadline = self.next_timeout().unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            if let Some(h) = self.hold_until {
                // Timeouts wait for the held frame (at most frame_hold): a timeout now would
                // drain the subscribers and send the frame in pieces.
                deadline = h;
            }
            self.stats.wakeups += 1;
            tokio::select! {
                biased;
                cmd = commands.recv() => match cmd {
                    None => break,
                    Some(Command::Shutdown { reply }) => {
                        self.shutdown().await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(Command::Snapshot { reply }) => {
                        let _ = reply.send(self.snapshot_queued(commands.len(), tcp_rx.len()));
                    }
                    Some(cmd) => {
                        // What a class's home hands over (each packet) changes no peer count.
                        let mut fed = cmd.is_fed();
                        let mut peers_changed = !fed;
                        self.command(cmd);
                        // A class's home hands over each packet as it comes: the ones queued
                        // meanwhile are fed in the same batch (each pupil drained once).
                        for _ in 0..READ_BATCH {
                            match commands.try_recv() {
                                Ok(Command::Shutdown { reply }) => {
                                    self.shutdown().await;
                                    let _ = reply.send(());
                                    return;
                                }
                                Ok(Command::Snapshot { reply }) => {
                                    let _ = reply.send(self.snapshot_queued(commands.len(), tcp_rx.len()));
                                }
                                Ok(cmd) => {
                                    let is_fed = cmd.is_fed();
                                    fed |= is_fed;
                                    peers_changed |= !is_fed;
                                    self.command(cmd);
                                }
                                Err(_) => break,
                            }
                        }
                        self.end_fed_batch();
                        if peers_changed {
                            self.publish_load();
                        }
                        if fed {
                            // Commands win the select: a busy home could keep this worker
                            // from its socket (its own pupils' feedback, its own classes).
                            self.read_batch(&mut buf).await;
                        }
                    }
                },
                r = self.socket.readable() => {
                    if r.is_ok() {
                        self.read_batch(&mut buf).await;
                    }
                }
                Some(input) = tcp_rx.recv() => {
                    self.tcp_batch(input, &mut tcp_rx);
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    self.stats.timer_wakeups += 1;
                    let now = Instant::now();
                    if self.hold_until.is_some_and(|h| h <= now) {
                        self.end_batch(now);
                    }
                    self.timeout(now);
                }
            }
            // A held frame's deadline holds whichever input woke the worker (commands win the
            // select, and may keep the timer from firing).
            if let Some(held) = self.hold_until {
                let now = Instant::now();
                if held <= now {
                    self.end_batch(now);
                }
            }
            self.ask_homes_for_keyframes();
            self.flush().await;
            self.serve_due().await;
            self.room_events();
        }
    }

    /// Serve the timeouts due by the time the batch is sent, in rounds, each round's datagrams
    /// sent before the next: str0m's pacer releases one packet per pupil, then asks for a
    /// timeout 1 µs later before it releases the next. Served here, a frame's packets follow
    /// each other within the wake-up, every pupil's first before anyone's second, instead of
    /// one per timer wake-up (a millisecond apart) and a wake-up each. The rounds stop when
    /// one sends nothing, after [`DUE_ROUNDS`], or after [`DUE_BUDGET`]: the socket and the
    /// commands wait meanwhile.
    async fn serve_due(&mut self) {
        let start = Instant::now();
        for _ in 0..DUE_ROUNDS {
            let now = Instant::now();
            if self.hold_until.is_some() || now - start >= DUE_BUDGET || self.next_timeout().is_none_or(|t| t > now) {
                return;
            }
            let sent = self.stats.datagrams_out;
            self.timeout(now);
            self.flush().await;
            if self.stats.datagrams_out == sent {
                return; // a timeout with nothing to send waits for the timer
            }
        }
    }

    /// Publish the number of peers in this worker's rooms (after a command, and when peers
    /// left: nothing else changes it).
    fn publish_load(&self) {
        self.load.publish(self.rooms.iter().flatten().map(|r| (r.id(), r.len())));
    }

    async fn read_batch(&mut self, buf: &mut [u8]) {
        if self.hold_until.is_none() {
            for room in self.rooms.iter_mut().flatten() {
                room.begin_batch();
            }
        }
        self.read_datagrams(buf).await;
        let now = Instant::now();
        if !self.frame_hold.is_zero() && self.rooms.iter().flatten().any(|r| r.frame_open()) {
            let until = *self.hold_until.get_or_insert(now + self.frame_hold);
            if now < until {
                return; // wait for the rest of the frame (or the deadline)
            }
        }
        self.end_batch(now);
    }

    fn end_batch(&mut self, now: Instant) {
        self.hold_until = None;
        for room in self.rooms.iter_mut().flatten() {
            room.end_batch(now);
        }
        self.drained_arrivals = self.arrivals.len();
    }

    async fn read_datagrams(&mut self, buf: &mut [u8]) {
        for _ in 0..READ_BATCH {
            match self.socket.try_recv_from(buf) {
                Ok((n, src)) => {
                    let now = Instant::now();
                    self.stats.datagrams_in += 1;
                    self.stats.bytes_in += n as u64;
                    self.datagram(now, Protocol::Udp, src, &buf[..n]);
                    if self.slice_packets > 0
                        && self.rooms.iter().flatten().any(|r| r.undrained() >= self.slice_packets)
                    {
                        // A large fan-out (a keyframe to many pupils): send what is ready
                        // now, and go on with the batch (the frame's hold still applies).
                        for room in self.rooms.iter_mut().flatten() {
                            room.slice_batch(now);
                        }
                        self.drained_arrivals = self.arrivals.len();
                        self.stats.slices += 1;
                        self.flush().await;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => {
                    // ICMP port unreachable from a gone peer surfaces here on Linux: not fatal.
                    debug!(worker = self.index, "recv error: {e}");
                    break;
                }
            }
        }
    }

    /// Frames of ICE-TCP connections, as a batch (like datagrams read in one wake-up).
    fn tcp_batch(&mut self, first: TcpInput, more: &mut tokio::sync::mpsc::Receiver<TcpInput>) {
        if self.hold_until.is_none() {
            for room in self.rooms.iter_mut().flatten() {
                room.begin_batch();
            }
        }
        let mut input = Some(first);
        let mut n = 0;
        while let Some(i) = input.take() {
            match i {
                TcpInput::Frame(remote, data) => {
                    let now = Instant::now();
                    self.stats.tcp_frames_in += 1;
                    self.stats.bytes_in += data.len() as u64;
                    self.datagram(now, Protocol::Tcp, remote, &data);
                }
                TcpInput::Closed(remote, id) => {
                    if self.tcp.get(&remote).is_some_and(|c| c.id == id) {
                        self.tcp.remove(&remote);
                        self.peers.remove(&(Protocol::Tcp, remote));
                        debug!(worker = self.index, %remote, "ICE-TCP connection closed");
                    }
                }
            }
            n += 1;
            if n < READ_BATCH {
                input = more.try_recv().ok();
            }
        }
        let now = Instant::now();
        if !self.frame_hold.is_zero() && self.rooms.iter().flatten().any(|r| r.frame_open()) {
            let until = *self.hold_until.get_or_insert(now + self.frame_hold);
            if now < until {
                return;
            }
        }
        self.end_batch(now);
    }

    fn datagram(&mut self, now: Instant, proto: Protocol, src: SocketAddr, data: &[u8]) {
        if self.route(now, proto, src, data).media > 0 {
            self.arrivals.push(now); // publisher media: timed until its copies leave
        }
    }

    /// Feed the datagram to its room: what it carried, as the room says.
    fn route(&mut self, now: Instant, proto: Protocol, src: SocketAddr, data: &[u8]) -> Received {
        let dst = match proto {
            Protocol::Udp => self.advertised,
            _ => self.tcp_advertised.unwrap_or(self.advertised),
        };
        // The cache is kept true by `room_events` (Left) and `retire`; a stale entry is only
        // possible for a moment, and then the room answers UnknownParticipant. Except one: a
        // client that vanished without a DELETE keeps its address here until its session
        // times out, and that address may meanwhile be another client's (its port reused by
        // a new socket, a carrier NAT's mapping handed to another tablet). A STUN binding
        // request naming another live session's ufrag, once the cached session has heard
        // nothing from the address for ADDRESS_MOVES_AFTER, is that new client: routed by its
        // ufrag below, and the address is then its own.
        if let Some(r) = self.peers.get_mut(&(proto, src))
            && let other = names_another_session(&self.ufrags, data, (r.slot, r.pid))
            && !(other && now.saturating_duration_since(r.heard) >= ADDRESS_MOVES_AFTER)
        {
            if !other {
                r.heard = now;
            }
            let (slot, pid) = (r.slot, r.pid);
            match self
                .rooms
                .get_mut(slot)
                .and_then(Option::as_mut)
                .map(|r| r.handle_receive_over(now, pid, proto, src, dst, data))
            {
                Some(Err(ardoise_sfu::SfuError::UnknownParticipant)) | None => {
                    self.peers.remove(&(proto, src));
                }
                Some(r) => return r.unwrap_or_default(),
            }
        }
        // A new address starts with a STUN binding request (ICE, consent after a NAT
        // rebinding): its USERNAME names our ufrag. Anything else from an unknown address,
        // and STUN for an unknown ufrag, is dropped before any work.
        if !self.unknown_sources.allows(src, now) {
            self.stats.datagrams_unknown += 1;
            self.stats.datagrams_unknown_limited += 1;
            return Received::default();
        }
        let hit = crate::stun_route::local_ufrag(data).and_then(|ufrag| self.ufrags.get(&ufrag).copied()).filter(
            |&(slot, pid)| {
                self.rooms
                    .get(slot)
                    .and_then(Option::as_ref)
                    .is_some_and(|r| r.accepts(now, pid, proto, src, dst, data))
            },
        );
        let Some((slot, pid)) = hit else {
            self.stats.datagrams_unknown += 1;
            self.unknown_sources.note(src, now);
            return Received::default();
        };
        self.peers.insert((proto, src), Routed { slot, pid, heard: now });
        match self.rooms[slot].as_mut() {
            Some(room) => room.handle_receive_over(now, pid, proto, src, dst, data).unwrap_or_default(),
            None => Received::default(),
        }
    }

    fn next_timeout(&self) -> Option<Instant> {
        self.rooms.iter().flatten().filter_map(|r| r.poll_timeout()).min()
    }

    fn timeout(&mut self, now: Instant) {
        for room in self.rooms.iter_mut().flatten() {
            if room.poll_timeout().is_some_and(|t| t <= now) {
                room.handle_timeout(now);
            }
        }
    }

    fn room_slot(&mut self, class: &ClassId) -> usize {
        if let Some(&slot) = self.by_class.get(class) {
            return slot;
        }
        let mut room = match self.fed_from.get(class) {
            Some(source) => {
                let mut room = Room::fed(class.clone(), self.config.clone());
                if let Some(shape) = &source.shape {
                    room.feed(Instant::now(), vec![ardoise_sfu::Fed::Shape(shape.clone())]);
                }
                source.subscribe(class, self.index);
                room
            }
            None => Room::new(class.clone(), self.config.clone()),
        };
        if let Some(sink) = self.fan_out_sink(class) {
            room.set_fan_out(Some(sink));
        }
        let slot = match self.rooms.iter().position(|r| r.is_none()) {
            Some(free) => {
                self.rooms[free] = Some(room);
                free
            }
            None => {
                self.rooms.push(Some(room));
                self.rooms.len() - 1
            }
        };
        self.by_class.insert(class.clone(), slot);
        slot
    }

    fn room(&mut self, class: &ClassId) -> Result<&mut Room, NetError> {
        let slot = *self.by_class.get(class).ok_or(NetError::UnknownClass)?;
        self.rooms[slot].as_mut().ok_or(NetError::UnknownClass)
    }

    fn command(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::Publish { class, participant, offer, role, camera, reply } => {
                let slot = self.room_slot(&class);
                let room = self.rooms[slot].as_mut().expect("slot just made");
                let r = room
                    .add_publisher_granted(now, participant, &offer, role, camera)
                    .map(|answer| Joined { participant, answer });
                if r.is_ok() {
                    self.index_ufrag(slot, participant);
                }
                let _ = reply.send(r.map_err(NetError::from));
                self.drop_if_empty(slot);
            }
            Command::Play { class, participant, offer, choice, feed, reply } => {
                let slot = self.room_slot(&class);
                let room = self.rooms[slot].as_mut().expect("slot just made");
                let r = room
                    .add_subscriber_to(now, participant, &offer, choice, feed)
                    .map(|answer| Joined { participant, answer });
                if r.is_ok() {
                    self.index_ufrag(slot, participant);
                }
                let _ = reply.send(r.map_err(NetError::from));
                self.drop_if_empty(slot);
            }
            Command::Patch { class, participant, remote_creds, candidates, reply } => {
                let r = self.room(&class).and_then(|room| {
                    room.patch_ice(now, participant, remote_creds, candidates).map_err(NetError::from)
                });
                if let Ok(Some(_)) = &r
                    && let Some(&slot) = self.by_class.get(&class)
                {
                    self.unindex_ufrags(|s, p| s == slot && p == participant);
                    self.index_ufrag(slot, participant);
                }
                let _ = reply.send(r);
            }
            Command::Leave { class, participant, reply } => {
                let r = self.room(&class).and_then(|room| room.remove(now, participant).map_err(NetError::from));
                let _ = reply.send(r);
            }
            Command::Mute { class, participant, muted, reply } => {
                let r = self.room(&class).and_then(|room| room.set_muted(participant, muted).map_err(NetError::from));
                let _ = reply.send(r);
            }
            Command::FanOutTo { class, to, commands } => self.fan_out_to(class, to, commands),
            Command::FanOutEnded { class, to } => self.fan_out_ended(class, to),
            Command::FedFrom { class, home, own } => self.fed_from(class, home, own),
            Command::Fed { class, items } => self.fed(now, class, items),
            Command::FedKeyframes { class, requests } => self.fed_keyframes(now, class, requests),
            Command::EndClass { class } => {
                self.fan_outs.remove(&class);
                self.fed_from.remove(&class);
                if let Ok(room) = self.room(&class) {
                    room.close(now);
                }
            }
            Command::TcpConnection(conn) => {
                let remote = conn.remote;
                self.next_tcp += 1;
                let first = conn.first.clone();
                match TcpConnection::start(*conn, self.next_tcp, self.tcp_in.clone()) {
                    Ok(c) => {
                        self.tcp.insert(remote, c);
                        self.stats.tcp_connections += 1;
                        // The first frame (the STUN request that found this worker).
                        let _ = self.tcp_in.try_send(TcpInput::Frame(remote, first));
                    }
                    Err(e) => debug!(worker = self.index, %remote, "ICE-TCP connection lost: {e}"),
                }
            }
            Command::Snapshot { .. } => unreachable!("handled in run"),
            Command::Record { class, sink, reply } => {
                let Some(&slot) = self.by_class.get(&class) else {
                    let _ = reply.send(Err(NetError::UnknownClass));
                    return;
                };
                self.recordings.retain(|(s, _)| *s != slot);
                if let Some(room) = self.rooms[slot].as_mut() {
                    room.set_recording(now, sink.is_some());
                }
                if let Some(sink) = sink {
                    self.recordings.push((slot, sink));
                }
                let _ = reply.send(Ok(()));
            }
            Command::InjectFault { fault, reply } => match fault {
                Fault::WorkerPanic => {
                    let _ = reply.send(Ok(()));
                    panic!("fault injection: a panic in the media worker's loop");
                }
                Fault::Str0mPanic { class, participant } => {
                    let r = self
                        .room(&class)
                        .and_then(|room| room.inject_str0m_panic(now, participant).map_err(NetError::from));
                    let _ = reply.send(r);
                }
            },
            Command::Shutdown { .. } => unreachable!("handled in run"),
        }
    }

    fn index_ufrag(&mut self, slot: usize, participant: ParticipantId) {
        if let Some(ufrag) = self.rooms[slot].as_mut().and_then(|r| r.local_ufrag(participant)) {
            self.directory.insert(ufrag.clone(), self.index);
            self.ufrags.insert(ufrag, (slot, participant));
        }
    }

    /// Forget the ufrags of the peers `gone` says are gone.
    fn unindex_ufrags(&mut self, gone: impl Fn(usize, ParticipantId) -> bool) {
        unindex(&mut self.ufrags, &self.directory, gone);
    }

    fn drop_if_empty(&mut self, slot: usize) {
        if self.rooms[slot].as_ref().is_some_and(|r| r.is_empty()) {
            self.retire(slot);
        }
    }

    fn retire(&mut self, slot: usize) {
        self.recordings.retain(|(s, _)| *s != slot);
        if let Some(room) = self.rooms[slot].take() {
            if let Some(source) = self.fed_from.get(room.id()) {
                source.unsubscribe(room.id(), self.index);
            }
            let s = room.stats();
            self.retired.rtp_in += s.rtp_in;
            self.retired.forwarded += s.forwarded;
            self.retired.plis_sent += s.plis_sent;
            self.retired.keyframe_replays += s.keyframe_replays;
            self.retired.peer_panics += s.peer_panics;
            self.by_class.remove(room.id());
            forget_peers(&mut self.peers, &mut self.tcp, |s, _| s == slot);
            self.unindex_ufrags(|s, _| s == slot);
            debug!(worker = self.index, class = %room.id(), "room closed");
        }
    }

    /// The snapshot, with the input still queued.
    fn snapshot_queued(&self, commands: usize, tcp_input: usize) -> WorkerSnapshot {
        let mut snap = self.snapshot();
        snap.worker.commands_queued = commands as u64;
        snap.worker.tcp_input_queued = tcp_input as u64;
        snap
    }

    fn snapshot(&self) -> WorkerSnapshot {
        let mut w = self.stats.clone();
        w.fed_out = self.fed_out.load(Ordering::Relaxed);
        w.rooms = self.rooms.iter().flatten().count();
        w.participants = self.rooms.iter().flatten().map(|r| r.len()).sum();
        w.cpu_us = thread_cpu_us();
        w.send_syscalls = self.sender.stats.syscalls;
        w.tcp_open = self.tcp.len();
        let mut rtp_in = self.retired.rtp_in;
        let mut fwd = self.retired.forwarded;
        let mut plis = self.retired.plis_sent;
        let mut replays = self.retired.keyframe_replays;
        let mut panics = self.retired.peer_panics;
        let mut nacks = 0;
        let mut rooms = Vec::new();
        for r in self.rooms.iter().flatten() {
            let s = r.stats();
            rtp_in += s.rtp_in;
            fwd += s.forwarded;
            plis += s.plis_sent;
            replays += s.keyframe_replays;
            panics += s.peer_panics;
            let ps = r.participant_stats();
            nacks += ps.iter().map(|p| p.nacks_in).sum::<u64>();
            rooms.push((r.id().clone(), r.is_live(), ps));
        }
        w.rtp_in = rtp_in;
        w.rtp_forwarded = fwd;
        w.plis_sent = plis;
        w.keyframe_replays = replays;
        w.peer_panics = panics;
        w.nacks = nacks;
        w.forward_delay_p50_us = self.forward_delay.quantile_us(0.5);
        w.forward_delay_p99_us = self.forward_delay.quantile_us(0.99);
        WorkerSnapshot { worker: w, rooms, forward_delay: self.forward_delay.clone() }
    }

    /// Send what every room queued, in one batch (sendmmsg + GSO).
    async fn flush(&mut self) {
        for room in self.rooms.iter_mut().flatten() {
            self.outbox.append(room.transmits());
        }
        if !self.tcp.is_empty() || self.outbox.iter().any(|t| t.proto != Protocol::Udp) {
            self.send_over_tcp();
        }
        let drained = self.drained_arrivals.min(self.arrivals.len());
        self.drained_arrivals = 0;
        if self.outbox.is_empty() {
            // Drained into nothing (no pupil, muted): nothing to time.
            self.arrivals.drain(..drained);
            return;
        }
        self.stats.datagrams_out += self.outbox.len() as u64;
        self.stats.bytes_out += self.outbox.iter().map(|t| t.contents.len() as u64).sum::<u64>();
        self.sender.send(&self.socket, &self.outbox).await;
        self.outbox.clear();
        let sent = Instant::now();
        for t in self.arrivals.drain(..drained) {
            self.forward_delay.record(sent - t);
        }
    }

    /// Move the transmits toward ICE-TCP peers from the outbox to their connections' queues.
    fn send_over_tcp(&mut self) {
        let tcp = &mut self.tcp;
        let stats = &mut self.stats;
        let mut gone = Vec::new();
        self.outbox.retain(|t| {
            if t.proto == Protocol::Udp {
                return true;
            }
            match tcp.get_mut(&t.destination) {
                Some(c) => {
                    let before = c.dropped;
                    if !c.send(&t.contents) {
                        gone.push(t.destination);
                    }
                    stats.tcp_dropped += c.dropped - before;
                    stats.datagrams_out += 1;
                    stats.bytes_out += t.contents.len() as u64;
                }
                None => stats.tcp_dropped += 1,
            }
            false
        });
        for g in gone {
            tcp.remove(&g);
        }
    }

    fn room_events(&mut self) {
        let mut ended = Vec::new();
        for (i, (slot, sink)) in self.recordings.iter().enumerate() {
            let Some(room) = self.rooms[*slot].as_mut() else { continue };
            let batch = room.take_tapped();
            if batch.is_empty() {
                continue;
            }
            let n = batch.len() as u64;
            match sink.try_send(batch) {
                Ok(()) => {}
                Err(std::sync::mpsc::TrySendError::Full(_)) => self.stats.recording_dropped += n,
                Err(std::sync::mpsc::TrySendError::Disconnected(_)) => ended.push(i),
            }
        }
        for i in ended.into_iter().rev() {
            let (slot, _) = self.recordings.remove(i);
            if let Some(room) = self.rooms[slot].as_mut() {
                room.set_recording(Instant::now(), false);
            }
        }
        let mut left = false;
        for slot in 0..self.rooms.len() {
            let Some(room) = self.rooms[slot].as_mut() else { continue };
            let class = room.id().clone();
            while let Some(ev) = room.poll_event() {
                let ev = match ev {
                    RoomEvent::Connected(p) => MediaEvent::Connected(class.clone(), p),
                    RoomEvent::Left(p) => {
                        left = true;
                        forget_peers(&mut self.peers, &mut self.tcp, |s, pid| s == slot && pid == p);
                        unindex(&mut self.ufrags, &self.directory, |s, pid| s == slot && pid == p);
                        MediaEvent::Left(class.clone(), p)
                    }
                    RoomEvent::Transport(p, t) => MediaEvent::Transport(class.clone(), p, t),
                    RoomEvent::Live(l) => MediaEvent::Live(class.clone(), l),
                    RoomEvent::AudioOnly(p, on) => MediaEvent::AudioOnly(class.clone(), p, on),
                };
                let _ = self.events.send(ev);
            }
            if room.is_empty() {
                self.retire(slot);
            }
        }
        if left {
            self.publish_load();
        }
    }

    /// After a panic: tell the HTTP side that every peer of this worker is gone, forget their
    /// ufrags in the shared ICE-TCP directory, and say which classes lost their media.
    /// Reads only the routing tables (the rooms may be half-updated). Returns the peer count.
    fn report_lost(&mut self) -> usize {
        let class_of: HashMap<usize, ClassId> = self.by_class.iter().map(|(c, &s)| (s, c.clone())).collect();
        let mut lost: Vec<(usize, ParticipantId)> = self.ufrags.values().copied().collect();
        lost.sort();
        lost.dedup();
        // A fan-out room's pupils first, while the HTTP side still knows whose they are.
        let mut fanned: HashMap<ClassId, Vec<ParticipantId>> = HashMap::new();
        for &(slot, pid) in &lost {
            if let Some(class) = class_of.get(&slot).filter(|c| self.fed_from.contains_key(*c)) {
                fanned.entry(class.clone()).or_default().push(pid);
            }
        }
        for (class, pids) in fanned {
            let _ = self.events.send(MediaEvent::FanOutLost(class, pids));
        }
        for &(slot, pid) in &lost {
            if let Some(class) = class_of.get(&slot) {
                let _ = self.events.send(MediaEvent::Left(class.clone(), pid));
            }
        }
        self.unindex_ufrags(|_, _| true);
        // Only the classes whose home this was lost their publishers.
        let classes: Vec<ClassId> = class_of.into_values().filter(|c| !self.fed_from.contains_key(c)).collect();
        for class in &classes {
            let _ = self.events.send(MediaEvent::Live(class.clone(), false));
        }
        let _ = self.events.send(MediaEvent::WorkerRestarted { worker: self.index, classes });
        lost.len()
    }

    async fn shutdown(&mut self) {
        let now = Instant::now();
        for room in self.rooms.iter_mut().flatten() {
            room.close(now);
        }
        self.flush().await;
        self.room_events();
        info!(worker = self.index, "media worker stopped");
    }
}

/// Whether `data` is a STUN binding request naming the ufrag of a session other than
/// `cached`, the one its address was last routed to. Only STUN binding requests (first byte
/// 0: consent checks, a few per second at most) are parsed; media never is.
fn names_another_session(
    ufrags: &HashMap<String, (usize, ParticipantId)>,
    data: &[u8],
    cached: (usize, ParticipantId),
) -> bool {
    data.first() == Some(&0)
        && crate::stun_route::local_ufrag(data)
            .and_then(|ufrag| ufrags.get(&ufrag))
            .is_some_and(|&named| named != cached)
}

/// Forget the addresses of the peers `gone` says are gone, and close their ICE-TCP
/// connections (see `ice_tcp`: a connection lives no longer than its peer).
fn forget_peers(
    peers: &mut HashMap<(Protocol, SocketAddr), Routed>,
    tcp: &mut HashMap<SocketAddr, TcpConnection>,
    gone: impl Fn(usize, ParticipantId) -> bool,
) {
    peers.retain(|&(proto, remote), r| {
        let keep = !gone(r.slot, r.pid);
        if !keep && proto == Protocol::Tcp {
            tcp.remove(&remote);
        }
        keep
    });
}

/// Forget the ufrags of the peers `gone` says are gone, here and in the directory.
fn unindex(
    ufrags: &mut HashMap<String, (usize, ParticipantId)>,
    directory: &UfragDirectory,
    gone: impl Fn(usize, ParticipantId) -> bool,
) {
    ufrags.retain(|u, (s, p)| {
        let keep = !gone(*s, *p);
        if !keep {
            directory.remove(u);
        }
        keep
    });
}

/// CPU time consumed by the calling thread, microseconds.
pub fn thread_cpu_us() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_within_a_minute_and_recover_after_it() {
        let t0 = Instant::now();
        let mut recent = std::collections::VecDeque::new();
        let waits: Vec<Duration> = (0..10).map(|i| restart_backoff(&mut recent, t0 + Duration::from_secs(i))).collect();
        assert_eq!(waits[0], Duration::ZERO, "the first restart is immediate");
        assert_eq!(waits[1], Duration::from_millis(250));
        assert_eq!(waits[2], Duration::from_millis(500));
        assert_eq!(waits[9], Duration::from_secs(30), "capped");
        assert_eq!(
            restart_backoff(&mut recent, t0 + Duration::from_secs(200)),
            Duration::ZERO,
            "a quiet minute resets"
        );
    }
}
