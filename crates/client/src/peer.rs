//! A str0m peer on its own UDP socket. Driven either by a blocking loop ([`Peer::drive`],
//! one thread per peer, for tests) or by a readiness loop shared by many peers
//! ([`Peer::process`]).

use anyhow::{Context, Result};
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

/// A str0m `Rtc` with its socket.
pub struct Peer {
    /// The connection.
    pub rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    buf: Vec<u8>,
    timeout: Instant,
    last_input: Instant,
}

impl Peer {
    /// A peer in RTP mode bound to an ephemeral port on `ip` (a loopback address in tests).
    pub fn new(ip: IpAddr) -> Result<Peer> {
        Self::with_config(ip, Rtc::builder().set_rtp_mode(true))
    }

    /// The header extension id this client offers for abs-capture-time (the frame's capture
    /// wall-clock time, carried by the SFU: end-to-end delay in load tests).
    pub const ABS_CAPTURE_TIME_ID: u8 = 7;

    /// A peer with this str0m configuration, bound to an ephemeral port on `ip`.
    pub fn with_config(ip: IpAddr, config: RtcConfig) -> Result<Peer> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).context("bind client socket")?;
        let local = socket.local_addr()?;
        let now = Instant::now();
        let config = config.set_extension(Self::ABS_CAPTURE_TIME_ID, str0m::rtp::Extension::AbsoluteCaptureTime);
        let mut rtc = config.build(now);
        rtc.add_local_candidate(Candidate::host(local, "udp").context("host candidate")?);
        Ok(Peer { rtc, socket, local, buf: vec![0; 2048], timeout: now, last_input: now })
    }

    /// Local socket address.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// The socket, for readiness registration.
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// When str0m next wants a timeout.
    pub fn next_timeout(&self) -> Instant {
        self.timeout
    }

    /// Send what str0m queued and collect its events, until it asks for a timeout.
    fn poll_out(&mut self, events: &mut Vec<Event>) -> Result<()> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(t) => {
                    self.timeout = t;
                    return Ok(());
                }
                Output::Transmit(t) => {
                    if let Err(e) = self.socket.send_to(&t.contents, t.destination)
                        && !matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::WouldBlock)
                    {
                        tracing::debug!("send: {e}");
                    }
                }
                Output::Event(e) => events.push(e),
            }
        }
    }

    /// When the last datagram arrived (or the peer was made).
    pub fn last_input(&self) -> Instant {
        self.last_input
    }

    fn input(&mut self, n: usize, src: SocketAddr) -> Result<()> {
        self.last_input = Instant::now();
        if let Ok(r) = Receive::new(Protocol::Udp, src, self.local, &self.buf[..n]) {
            self.rtc.handle_input(Input::Receive(Instant::now(), r))?;
        }
        Ok(())
    }

    /// Non-blocking step for readiness loops: read every queued datagram, serve a due
    /// timeout, send, collect events. The socket must be non-blocking.
    pub fn process(&mut self, events: &mut Vec<Event>) -> Result<()> {
        loop {
            match self.socket.recv_from(&mut self.buf) {
                Ok((n, src)) => {
                    self.input(n, src)?;
                    self.poll_out(events)?;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e.into()),
            }
        }
        let now = Instant::now();
        if self.timeout <= now {
            self.rtc.handle_input(Input::Timeout(now))?;
        }
        self.poll_out(events)
    }

    /// Blocking step for a thread of its own: send, then wait for input until `until`.
    /// Returns as soon as events were collected.
    pub fn drive(&mut self, until: Instant, events: &mut Vec<Event>) -> Result<()> {
        loop {
            self.poll_out(events)?;
            if !events.is_empty() {
                return Ok(());
            }
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            let wait = self.timeout.min(until).saturating_duration_since(now);
            if wait.is_zero() {
                self.rtc.handle_input(Input::Timeout(now))?;
                continue;
            }
            self.socket.set_read_timeout(Some(wait.max(Duration::from_micros(100))))?;
            match self.socket.recv_from(&mut self.buf) {
                Ok((n, src)) => self.input(n, src)?,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    self.rtc.handle_input(Input::Timeout(Instant::now()))?;
                }
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}
