//! The set of media workers and the assignment of classes to them.

use crate::ice_tcp::{IceTcpListener, UfragDirectory};
use crate::placement::{self, LoadGauge, WorkerLoad};
use crate::worker::{self, Batching, TcpSide};
use crate::{Command, Fault, Joined, MediaEvent, NetError, WorkerSnapshot};
use ardoise_proto::{ClassId, ParticipantId};
use ardoise_sfu::{Feed, PublisherRole, SfuConfig, VideoChoice};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use str0m::Candidate;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::oneshot;
use tracing::warn;

/// How to start the media workers.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// First worker's UDP address; worker `i` binds port + `i` (port 0: any free port each).
    pub udp: SocketAddr,
    /// Number of workers (at least 1).
    pub workers: usize,
    /// IP put in SDP candidates; `None` means the bind IP.
    pub advertise: Option<IpAddr>,
    /// Forwarding settings (the candidates are filled per worker).
    pub sfu: SfuConfig,
    /// Send runs of datagrams to one peer with UDP GSO.
    pub gso: bool,
    /// Longest a partly received video frame is held so each pupil gets it in one send.
    pub frame_hold: Duration,
    /// Send a batch in slices once this many packets were written to pupils (0: never).
    pub slice_packets: usize,
    /// Address of the ICE-TCP listener (`None`: no ICE-TCP); port 0: any free port.
    pub tcp: Option<SocketAddr>,
    /// ICE-TCP connections from one client address at once.
    pub tcp_per_ip: usize,
    /// Each worker's UDP receive buffer, bytes (0: the system's default).
    pub receive_buffer: usize,
    /// A class whose home room holds this many peers sends its next pupils to a fan-out room
    /// on a less loaded worker, which the home room feeds ([`ardoise_sfu::fed`]); 0: never
    /// ([`placement::fan_out_worker`]).
    pub fan_out_peers: usize,
}

/// Where a class's rooms are.
#[derive(Debug, Default)]
struct ClassPlacement {
    /// The worker of its home room (its publishers, its first pupils).
    home: usize,
    /// The workers of its fan-out rooms.
    fan_outs: Vec<usize>,
    /// The pupils placed in a fan-out room, and its worker (forgotten when they leave,
    /// [`MediaServer::participant_left`], or when the class ends).
    fanned: HashMap<ParticipantId, usize>,
}

struct WorkerHandle {
    commands: UnboundedSender<Command>,
    advertised: SocketAddr,
    /// The peers in its rooms, kept by the worker.
    load: Arc<LoadGauge>,
}

/// Handle to the media workers.
pub struct MediaServer {
    workers: Vec<WorkerHandle>,
    assignments: Mutex<HashMap<ClassId, ClassPlacement>>,
    fan_out_peers: usize,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    tcp_advertised: Option<SocketAddr>,
    tcp_task: Option<tokio::task::JoinHandle<()>>,
}

impl MediaServer {
    /// Bind every worker's socket and the ICE-TCP listener, start the workers (the listener
    /// runs on the calling tokio runtime). Events come out of the receiver.
    pub fn start(config: MediaConfig) -> Result<(Self, UnboundedReceiver<MediaEvent>), NetError> {
        let (events_tx, events_rx) = unbounded_channel();
        let mut workers = Vec::new();
        let mut threads = Vec::new();
        let directory = UfragDirectory::default();
        let tcp_listener = match config.tcp {
            None => None,
            Some(addr) => {
                let l = std::net::TcpListener::bind(addr).map_err(|source| NetError::Bind { addr, source })?;
                l.set_nonblocking(true).map_err(|source| NetError::Bind { addr, source })?;
                let local = l.local_addr().map_err(|source| NetError::Bind { addr, source })?;
                Some((l, SocketAddr::new(config.advertise.unwrap_or(local.ip()), local.port())))
            }
        };
        let tcp_advertised = tcp_listener.as_ref().map(|(_, a)| *a);
        for i in 0..config.workers.max(1) {
            let mut addr = config.udp;
            if addr.port() != 0 {
                addr.set_port(addr.port() + i as u16);
            }
            let socket = UdpSocket::bind(addr).map_err(|source| NetError::Bind { addr, source })?;
            set_receive_buffer(&socket, config.receive_buffer);
            let local = socket.local_addr().map_err(|source| NetError::Bind { addr, source })?;
            let advertised = SocketAddr::new(config.advertise.unwrap_or(local.ip()), local.port());
            let (tx, rx) = unbounded_channel();
            let load = Arc::new(LoadGauge::default());
            let handle = worker::spawn(
                i,
                socket,
                advertised,
                config.sfu.clone(),
                Batching { gso: config.gso, frame_hold: config.frame_hold, slice_packets: config.slice_packets },
                TcpSide { advertised: tcp_advertised, directory: directory.clone() },
                rx,
                events_tx.clone(),
                load.clone(),
            )
            .map_err(|source| NetError::Bind { addr, source })?;
            threads.push(handle);
            workers.push(WorkerHandle { commands: tx, advertised, load });
        }
        let tcp_task = match tcp_listener {
            None => None,
            Some((l, _)) => {
                let addr = config.tcp.expect("bound above");
                let l = tokio::net::TcpListener::from_std(l).map_err(|source| NetError::Bind { addr, source })?;
                let senders = workers.iter().map(|w| w.commands.clone()).collect();
                Some(tokio::spawn(IceTcpListener::new(l, directory, senders, config.tcp_per_ip).run()))
            }
        };
        let server = MediaServer {
            workers,
            assignments: Mutex::new(HashMap::new()),
            fan_out_peers: config.fan_out_peers,
            threads: Mutex::new(threads),
            tcp_advertised,
            tcp_task,
        };
        Ok((server, events_rx))
    }

    /// The advertised address of the ICE-TCP listener, if there is one.
    pub fn tcp_address(&self) -> Option<SocketAddr> {
        self.tcp_advertised
    }

    /// The advertised UDP address of each worker.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.workers.iter().map(|w| w.advertised).collect()
    }

    /// The worker hosting `class`, assigning the least loaded one on first use
    /// ([`placement::least_loaded`]).
    pub fn worker_for(&self, class: &ClassId) -> usize {
        let mut a = self.assignments.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = a.get(class) {
            return p.home;
        }
        let mut loads = self.loads();
        for p in a.values() {
            loads[p.home].classes += 1;
        }
        let w = placement::least_loaded(&loads);
        a.insert(class.clone(), ClassPlacement { home: w, ..Default::default() });
        w
    }

    fn loads(&self) -> Vec<WorkerLoad> {
        self.workers.iter().map(|w| WorkerLoad { peers: w.load.peers(), classes: 0 }).collect()
    }

    /// The worker of `class`'s home room, if it has one.
    pub fn assigned(&self, class: &ClassId) -> Option<usize> {
        self.assignments.lock().unwrap_or_else(|e| e.into_inner()).get(class).map(|p| p.home)
    }

    /// The worker serving `participant` of `class`: its fan-out room's, or the home's.
    pub fn worker_of(&self, class: &ClassId, participant: ParticipantId) -> Option<usize> {
        let a = self.assignments.lock().unwrap_or_else(|e| e.into_inner());
        a.get(class).map(|p| p.fanned.get(&participant).copied().unwrap_or(p.home))
    }

    /// The worker a new subscriber of `class` goes to: the class's home, or a fan-out room on
    /// another worker once the class is large ([`placement::fan_out_worker`]: its room at
    /// home holds [`MediaConfig::fan_out_peers`] peers); the home feeds that room. The
    /// studio's floor feed stays home.
    fn worker_for_subscriber(&self, class: &ClassId, participant: ParticipantId, feed: Feed) -> usize {
        let home = self.worker_for(class);
        if feed != Feed::Class || self.fan_out_peers == 0 {
            return home;
        }
        let at_home = self.workers[home].load.class_peers(class);
        let Some(w) = placement::fan_out_worker(&self.loads(), home, at_home, self.fan_out_peers) else {
            return home;
        };
        {
            let mut a = self.assignments.lock().unwrap_or_else(|e| e.into_inner());
            let Some(p) = a.get_mut(class) else { return home };
            if !p.fan_outs.contains(&w) {
                p.fan_outs.push(w);
            }
            p.fanned.insert(participant, w);
        }
        // Each time (idempotent): a worker replaced after a panic is wired again by the next
        // pupil. `FedFrom` goes before the pupil's `Play` on the same queue; the fan-out
        // worker then subscribes to the home itself (so its subscribing and unsubscribing
        // reach the home in order).
        self.wire_fan_out(class, home, w);
        w
    }

    /// Tell worker `w` that its room of `class` is a fan-out room fed by worker `home`.
    fn wire_fan_out(&self, class: &ClassId, home: usize, w: usize) {
        let _ = self.workers[w].commands.send(Command::FedFrom {
            class: class.clone(),
            home: self.workers[home].commands.clone(),
            own: self.workers[w].commands.clone(),
        });
    }

    async fn ask<T>(&self, w: usize, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        self.workers[w].commands.send(make(tx)).map_err(|_| NetError::WorkerGone)?;
        rx.await.map_err(|_| NetError::WorkerGone)
    }

    /// Negotiate the class's publisher (WHIP).
    pub async fn publish(
        &self,
        class: &ClassId,
        participant: ParticipantId,
        offer: String,
    ) -> Result<Joined, NetError> {
        self.publish_as(class, participant, offer, PublisherRole::Class).await
    }

    /// Negotiate a publisher in `role` (a pupil holding the floor: [`PublisherRole::Floor`]).
    pub async fn publish_as(
        &self,
        class: &ClassId,
        participant: ParticipantId,
        offer: String,
        role: PublisherRole,
    ) -> Result<Joined, NetError> {
        self.publish_granted(class, participant, offer, role, role == PublisherRole::Class).await
    }

    /// Negotiate a publisher in `role` whose video is relayed only if `camera` (a floor
    /// pupil's camera needs the teacher's grant; the SFU refuses the offer otherwise).
    pub async fn publish_granted(
        &self,
        class: &ClassId,
        participant: ParticipantId,
        offer: String,
        role: PublisherRole,
        camera: bool,
    ) -> Result<Joined, NetError> {
        let w = self.worker_for(class);
        // The class's fan-out rooms subscribe again: its home may be a fresh worker (after a
        // panic) that has forgotten them.
        let fan_outs =
            self.assignments.lock().unwrap_or_else(|e| e.into_inner()).get(class).map(|p| p.fan_outs.clone());
        for f in fan_outs.unwrap_or_default() {
            self.wire_fan_out(class, w, f);
        }
        let class = class.clone();
        self.ask(w, |reply| Command::Publish { class, participant, offer, role, camera, reply }).await?
    }

    /// Negotiate a subscriber (WHEP), optionally with its own simulcast layer choice.
    pub async fn play(
        &self,
        class: &ClassId,
        participant: ParticipantId,
        offer: String,
        layer: Option<ardoise_sfu::LayerChoice>,
    ) -> Result<Joined, NetError> {
        self.play_feed(class, participant, offer, layer.map(VideoChoice::Fixed), Feed::Class).await
    }

    /// Negotiate a subscriber of `feed` (the class, or the floor only for the studio), its video
    /// adaptive or fixed (`None`: the configured default).
    pub async fn play_feed(
        &self,
        class: &ClassId,
        participant: ParticipantId,
        offer: String,
        choice: Option<VideoChoice>,
        feed: Feed,
    ) -> Result<Joined, NetError> {
        let w = self.worker_for_subscriber(class, participant, feed);
        let class = class.clone();
        self.ask(w, |reply| Command::Play { class, participant, offer, choice, feed, reply }).await?
    }

    /// Stop (or resume) relaying a floor publisher's voice.
    pub async fn mute(&self, class: &ClassId, participant: ParticipantId, muted: bool) -> Result<(), NetError> {
        let w = self.assigned(class).ok_or(NetError::UnknownClass)?;
        let class = class.clone();
        self.ask(w, |reply| Command::Mute { class, participant, muted, reply }).await?
    }

    /// Trickle ICE / ICE restart.
    pub async fn patch(
        &self,
        class: &ClassId,
        participant: ParticipantId,
        remote_creds: Option<(String, String)>,
        candidates: Vec<Candidate>,
    ) -> Result<Option<(String, String)>, NetError> {
        let w = self.worker_of(class, participant).ok_or(NetError::UnknownClass)?;
        let class = class.clone();
        self.ask(w, |reply| Command::Patch { class, participant, remote_creds, candidates, reply }).await?
    }

    /// Remove a participant.
    pub async fn leave(&self, class: &ClassId, participant: ParticipantId) -> Result<(), NetError> {
        let w = self.worker_of(class, participant).ok_or(NetError::UnknownClass)?;
        let class = class.clone();
        self.ask(w, |reply| Command::Leave { class, participant, reply }).await?
    }

    /// Disconnect everyone in a class.
    pub fn end_class(&self, class: &ClassId) {
        if let Some(p) = self.assignments.lock().unwrap_or_else(|e| e.into_inner()).remove(class) {
            for w in std::iter::once(p.home).chain(p.fan_outs) {
                let _ = self.workers[w].commands.send(Command::EndClass { class: class.clone() });
            }
        }
    }

    /// Counters of every worker.
    pub async fn snapshot(&self) -> Vec<WorkerSnapshot> {
        let mut out = Vec::new();
        for w in 0..self.workers.len() {
            if let Ok(s) = self.ask(w, |reply| Command::Snapshot { reply }).await {
                out.push(s);
            }
        }
        out
    }

    /// Start (`Some(sink)`) or stop copying `class`'s programme toward a recorder.
    pub async fn record(&self, class: &ClassId, sink: Option<crate::RecordingSink>) -> Result<(), NetError> {
        let w = self.assigned(class).ok_or(NetError::UnknownClass)?;
        self.ask(w, |reply| Command::Record { class: class.clone(), sink, reply }).await?
    }

    /// Inject a fault (tests of robustness only): a worker panic on worker `worker`, or a
    /// str0m panic for one peer of a class.
    pub async fn inject_fault(&self, worker: usize, fault: Fault) -> Result<(), NetError> {
        let w = match &fault {
            Fault::WorkerPanic => worker,
            Fault::Str0mPanic { class, participant } => {
                self.worker_of(class, *participant).ok_or(NetError::UnknownClass)?
            }
        };
        if w >= self.workers.len() {
            return Err(NetError::WorkerGone);
        }
        self.ask(w, |reply| Command::InjectFault { fault, reply }).await?
    }

    /// A participant left (`MediaEvent::Left`): forget where it was placed.
    pub fn participant_left(&self, class: &ClassId, participant: ParticipantId) {
        if let Some(p) = self.assignments.lock().unwrap_or_else(|e| e.into_inner()).get_mut(class) {
            p.fanned.remove(&participant);
        }
    }

    /// Worker `worker` was replaced after a panic (`MediaEvent::WorkerRestarted`): every
    /// fan-out involving it is wired again. A fresh fan-out worker has no room, and tells
    /// its classes' homes to stop feeding it; a fresh home is told its fan-out rooms again.
    pub fn worker_restarted(&self, worker: usize) {
        let mut pairs = Vec::new();
        {
            let mut a = self.assignments.lock().unwrap_or_else(|e| e.into_inner());
            for (class, p) in a.iter_mut() {
                p.fanned.retain(|_, w| *w != worker); // its peers are gone
                for &f in &p.fan_outs {
                    if p.home == worker || f == worker {
                        pairs.push((class.clone(), p.home, f));
                    }
                }
            }
        }
        for (class, home, f) in pairs {
            self.wire_fan_out(&class, home, f);
        }
    }

    /// Close every peer (DTLS close) and stop the workers, waiting at most `deadline`.
    pub async fn shutdown(&self, deadline: Duration) {
        if let Some(t) = &self.tcp_task {
            t.abort();
        }
        let all = async {
            for w in 0..self.workers.len() {
                let _ = self.ask(w, |reply| Command::Shutdown { reply }).await;
            }
        };
        if tokio::time::timeout(deadline, all).await.is_err() {
            warn!("media workers did not stop within {deadline:?}");
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

/// Ask for a UDP receive buffer of `bytes` (0: leave the system's default), and return the
/// size the socket has. As root the system's ceiling (`net.core.rmem_max`) does not apply;
/// otherwise the kernel clamps to it, and this is logged.
fn set_receive_buffer(socket: &UdpSocket, bytes: usize) -> usize {
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd();
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    if bytes > 0 {
        let value = bytes.min(i32::MAX as usize / 2) as libc::c_int;
        // SAFETY: `value` is a c_int that outlives each call; `fd` is an open socket.
        unsafe {
            let v = &value as *const libc::c_int as *const libc::c_void;
            if libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, v, len) != 0 {
                libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, v, len);
            }
        }
    }
    let mut got: libc::c_int = 0;
    let mut got_len = len;
    // SAFETY: `got` and `got_len` are valid for writing.
    unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &mut got as *mut libc::c_int as *mut libc::c_void,
            &mut got_len,
        )
    };
    // The kernel doubles the size asked (room for its bookkeeping) and reports that.
    let usable = got.max(0) as usize / 2;
    if usable < bytes {
        warn!(
            asked = bytes,
            usable,
            "the media socket's receive buffer is smaller than media.receive_buffer_kib: raise net.core.rmem_max (sysctl) or run as root"
        );
    }
    usable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receive_buffer_is_what_was_asked_up_to_the_systems_ceiling_unless_root() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let default = set_receive_buffer(&socket, 0);
        let asked = 4 << 20;
        let got = set_receive_buffer(&socket, asked);
        let ceiling: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max").unwrap().trim().parse().unwrap();
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        println!("receive buffer: default {default} B, asked {asked} B, got {got} B (rmem_max {ceiling}, root {root})");
        if root {
            assert!(got >= asked, "as root the buffer is what was asked: {got}");
        } else {
            assert!(got >= asked.min(ceiling), "up to net.core.rmem_max: {got}");
        }
    }
}
