//! ICE-TCP, the passive side (RFC 6544): the server's TCP listener, and each connection's
//! framing (RFC 4571) and queues inside the media worker that owns its peer.
//!
//! Rules:
//! - a connection must send its first frame, a STUN binding request, within
//!   [`FIRST_FRAME_TIMEOUT`]; its username names the peer's ufrag, which says which worker
//!   owns the peer ([`UfragDirectory`]); anything else closes the connection;
//! - a client address holds at most `per_ip` connections;
//! - a framing error or an oversized frame closes that connection only;
//! - toward the client, each connection has two bounded queues: small packets (audio, RTCP,
//!   STUN, DTLS) go first, video after; a full video queue drops video, a full small queue
//!   drops the packet; the worker never waits for a connection, and a write that takes longer
//!   than [`WRITE_TIMEOUT`] closes it;
//! - a connection lives no longer than its peer: the worker closes it when the peer leaves
//!   (a tablet that vanished sends no FIN, and would hold one of its address's `per_ip`
//!   connections for good), and a connection silent for [`READ_IDLE`] closes itself (a live
//!   client sends consent checks and RTCP every few seconds).

use crate::Command;
use crate::open_counts::{OpenCounts, OpenGuard};
use ardoise_proto::rfc4571::{Framer, frame_into};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Time a new connection has to send its first STUN request.
pub const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a connection may stay without a byte from its client before it is closed.
pub const READ_IDLE: Duration = Duration::from_secs(30);
/// Longest a write toward a client may take before its connection is closed.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Packets at most this long go to the small (first) queue: audio, RTCP, STUN, DTLS.
pub const SMALL_PACKET: usize = 400;
/// Packets queued toward one client: small ones, and video.
pub const SMALL_QUEUE: usize = 256;
/// Video packets queued toward one client (≈ 0.5 s of 720p).
pub const VIDEO_QUEUE: usize = 256;
/// The kernel's send buffer of a connection: small, so that what a slow client cannot take
/// waits in our queues (where video is dropped first) instead of arriving seconds late.
pub const SEND_BUFFER: usize = 64 * 1024;

/// Which worker owns the peer with a given local ICE ufrag (kept by the workers).
#[derive(Debug, Default, Clone)]
pub struct UfragDirectory(Arc<RwLock<HashMap<String, usize>>>);

impl UfragDirectory {
    /// Worker `worker` owns the peer whose local ufrag is `ufrag`.
    pub fn insert(&self, ufrag: String, worker: usize) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).insert(ufrag, worker);
    }

    /// The peer with this ufrag is gone.
    pub fn remove(&self, ufrag: &str) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).remove(ufrag);
    }

    /// The worker owning `ufrag`.
    pub fn get(&self, ufrag: &str) -> Option<usize> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).get(ufrag).copied()
    }
}

/// A connection handed to its worker, with its first frame.
#[derive(Debug)]
pub struct NewConnection {
    /// The stream (non-blocking, not yet registered with a runtime).
    pub stream: std::net::TcpStream,
    /// The client's address.
    pub remote: SocketAddr,
    /// The first frame (a STUN binding request).
    pub first: Vec<u8>,
    /// The bytes read after the first frame.
    pub framer: Framer,
    /// The client address's connection count, given back when the connection ends.
    pub guard: OpenGuard<IpAddr>,
}

/// The server's ICE-TCP listener.
pub struct IceTcpListener {
    listener: TcpListener,
    directory: UfragDirectory,
    workers: Vec<mpsc::UnboundedSender<Command>>,
    per_ip: usize,
    counts: Arc<OpenCounts<IpAddr>>,
}

impl IceTcpListener {
    /// Wrap a bound listener; connections go to `workers` by the ufrags of `directory`.
    pub fn new(
        listener: TcpListener,
        directory: UfragDirectory,
        workers: Vec<mpsc::UnboundedSender<Command>>,
        per_ip: usize,
    ) -> Self {
        IceTcpListener { listener, directory, workers, per_ip, counts: Arc::default() }
    }

    /// Accept connections until the task is dropped.
    pub async fn run(self) {
        loop {
            let (stream, remote) = match self.listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    debug!("ICE-TCP accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(guard) = self.counts.try_open(remote.ip(), self.per_ip) else {
                debug!(%remote, "ICE-TCP connection refused: too many from this address");
                continue;
            };
            let (directory, workers) = (self.directory.clone(), self.workers.clone());
            tokio::spawn(async move {
                if let Err(why) = hand_over(stream, remote, guard, &directory, &workers).await {
                    debug!(%remote, "ICE-TCP connection closed: {why}");
                }
            });
        }
    }
}

/// Read the first frame, find the worker owning its ufrag, and give it the connection.
pub async fn hand_over(
    mut stream: TcpStream,
    remote: SocketAddr,
    guard: OpenGuard<IpAddr>,
    directory: &UfragDirectory,
    workers: &[mpsc::UnboundedSender<Command>],
) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    set_send_buffer(&stream, SEND_BUFFER);
    let mut framer = Framer::default();
    let mut buf = [0u8; 2048];
    let first = tokio::time::timeout(FIRST_FRAME_TIMEOUT, async {
        loop {
            match framer.next_frame() {
                Ok(Some(f)) => return Ok(f.to_vec()),
                Ok(None) => {}
                Err(e) => return Err(e.to_string()),
            }
            match stream.read(&mut buf).await {
                Ok(0) => return Err("closed before its first frame".to_owned()),
                Ok(n) => framer.push(&buf[..n]),
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .map_err(|_| format!("no first frame within {FIRST_FRAME_TIMEOUT:?}"))??;
    let ufrag = crate::stun_route::local_ufrag(&first).ok_or("the first frame is not a STUN binding request")?;
    let worker = directory.get(&ufrag).ok_or("no session has this ufrag")?;
    let stream = stream.into_std().map_err(|e| e.to_string())?;
    let conn = NewConnection { stream, remote, first, framer, guard };
    workers[worker].send(Command::TcpConnection(Box::new(conn))).map_err(|_| "the worker is gone".to_owned())
}

fn set_send_buffer(stream: &TcpStream, bytes: usize) {
    use std::os::fd::AsRawFd;
    let v = bytes as libc::c_int;
    // SAFETY: setsockopt on a socket we own, with a c_int we own for the call.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        debug!("cannot set the ICE-TCP send buffer: {}", std::io::Error::last_os_error());
    }
}

/// What a connection's reader tells its worker.
#[derive(Debug)]
pub enum TcpInput {
    /// A frame from `remote`.
    Frame(SocketAddr, Vec<u8>),
    /// The connection from `remote` (number `id`) ended.
    Closed(SocketAddr, u64),
}

/// A worker's side of one connection: the queues toward the client.
#[derive(Debug)]
pub struct TcpConnection {
    /// Number, to tell a new connection from the same address apart from an old one.
    pub id: u64,
    small: mpsc::Sender<Vec<u8>>,
    video: mpsc::Sender<Vec<u8>>,
    /// Packets dropped because a queue was full.
    pub dropped: u64,
    /// Dropped with the connection: its reader stops (the writer stops with the queues).
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl TcpConnection {
    /// Register `conn` with the current runtime: a reader task sends its frames to `input`, a
    /// writer task sends what [`TcpConnection::send`] queues.
    pub fn start(conn: NewConnection, id: u64, input: mpsc::Sender<TcpInput>) -> std::io::Result<TcpConnection> {
        conn.stream.set_nonblocking(true)?;
        let stream = TcpStream::from_std(conn.stream)?;
        let (mut rd, mut wr) = stream.into_split();
        let (small, mut small_rx) = mpsc::channel::<Vec<u8>>(SMALL_QUEUE);
        let (video, mut video_rx) = mpsc::channel::<Vec<u8>>(VIDEO_QUEUE);
        let remote = conn.remote;
        let mut framer = conn.framer;
        let guard = conn.guard;
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _guard = guard;
            let mut buf = vec![0u8; 16 * 1024];
            'read: loop {
                loop {
                    match framer.next_frame() {
                        Ok(Some(f)) => {
                            if input.send(TcpInput::Frame(remote, f.to_vec())).await.is_err() {
                                break 'read;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            debug!(%remote, "ICE-TCP framing error: {e}; closed");
                            break 'read;
                        }
                    }
                }
                let read = tokio::select! {
                    biased;
                    _ = &mut stopped => break,
                    r = tokio::time::timeout(READ_IDLE, rd.read(&mut buf)) => r,
                };
                match read {
                    Ok(Ok(0) | Err(_)) => break,
                    Ok(Ok(n)) => framer.push(&buf[..n]),
                    Err(_) => {
                        debug!(%remote, "ICE-TCP connection silent for {READ_IDLE:?}; closed");
                        break;
                    }
                }
            }
            let _ = input.send(TcpInput::Closed(remote, id)).await;
        });
        tokio::spawn(async move {
            let mut out = Vec::with_capacity(4096);
            loop {
                let packet = tokio::select! {
                    biased;
                    p = small_rx.recv() => p,
                    p = video_rx.recv() => p,
                };
                let Some(packet) = packet else { break };
                out.clear();
                frame_into(&packet, &mut out);
                // Coalesce what is already queued (small first) into one write.
                while out.len() < 32 * 1024 {
                    match small_rx.try_recv().or_else(|_| video_rx.try_recv()) {
                        Ok(p) => frame_into(&p, &mut out),
                        Err(_) => break,
                    }
                }
                match tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&out)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break,
                    Err(_) => {
                        warn!(%remote, "ICE-TCP client does not read; closed");
                        break;
                    }
                }
            }
        });
        Ok(TcpConnection { id, small, video, dropped: 0, _stop: stop })
    }

    /// Queue a packet toward the client, never waiting: small packets first, video dropped
    /// when its queue is full. Returns false when the connection is gone.
    pub fn send(&mut self, packet: &[u8]) -> bool {
        let q = if packet.len() <= SMALL_PACKET { &self.small } else { &self.video };
        match q.try_send(packet.to_vec()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped += 1;
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}
