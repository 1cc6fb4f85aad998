//! A str0m peer on its own UDP socket, and over ICE-TCP when asked ([`Transports`]).
//! Driven either by a blocking loop ([`Peer::drive`], one thread per peer, for tests and the
//! studio) or by a readiness loop shared by many peers ([`Peer::process`]).
//!
//! With TCP on, once the server's answer is applied ([`Peer::accept_answer`]) the peer opens
//! a TCP connection to the answer's passive candidate and offers an active TCP candidate of
//! its own: ICE then picks UDP when it works (its candidates rank higher) and TCP when the
//! network drops UDP, with no setting to change.

use crate::tcp_link::TcpLink;
use anyhow::{Context, Result};
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

/// Which transports a peer offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transports {
    /// A UDP host candidate.
    pub udp: bool,
    /// An active ICE-TCP candidate toward the server's passive one.
    pub tcp: bool,
}

impl Transports {
    /// UDP only (load-test pupils).
    pub const UDP: Transports = Transports { udp: true, tcp: false };
    /// TCP only (a network that drops UDP, forced).
    pub const TCP: Transports = Transports { udp: false, tcp: true };
    /// Both: UDP when it works, TCP as the fallback (the studio).
    pub const BOTH: Transports = Transports { udp: true, tcp: true };
}

/// A str0m `Rtc` with its socket.
pub struct Peer {
    /// The connection.
    pub rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    buf: Vec<u8>,
    timeout: Instant,
    last_input: Instant,
    transports: Transports,
    tcp: Option<TcpLink>,
}

impl Peer {
    /// A peer in RTP mode bound to an ephemeral port on `ip` (a loopback address in tests).
    pub fn new(ip: IpAddr) -> Result<Peer> {
        Self::with_config(ip, Rtc::builder().set_rtp_mode(true))
    }

    /// The header extension id this client offers for abs-capture-time (the frame's capture
    /// wall-clock time, carried by the SFU: end-to-end delay in load tests).
    pub const ABS_CAPTURE_TIME_ID: u8 = 7;

    /// A peer with this str0m configuration, bound to an ephemeral port on `ip`, over UDP.
    pub fn with_config(ip: IpAddr, config: RtcConfig) -> Result<Peer> {
        Self::with_transports(ip, config, Transports::UDP)
    }

    /// A peer with this str0m configuration offering `transports`.
    pub fn with_transports(ip: IpAddr, config: RtcConfig, transports: Transports) -> Result<Peer> {
        Self::bound(SocketAddr::new(ip, 0), config, transports)
    }

    /// A peer bound to `local` (a port another client used before: a tablet's reused port).
    pub fn bound(local: SocketAddr, config: RtcConfig, transports: Transports) -> Result<Peer> {
        let socket = UdpSocket::bind(local).context("bind client socket")?;
        let local = socket.local_addr()?;
        let now = Instant::now();
        let config = config.set_extension(Self::ABS_CAPTURE_TIME_ID, str0m::rtp::Extension::AbsoluteCaptureTime);
        let mut rtc = config.build(now);
        if transports.udp {
            rtc.add_local_candidate(Candidate::host(local, "udp").context("host candidate")?);
        }
        Ok(Peer { rtc, socket, local, buf: vec![0; 2048], timeout: now, last_input: now, transports, tcp: None })
    }

    /// Apply the server's answer; with TCP on, connect to its passive TCP candidate and offer
    /// an active one (a failed connection only leaves UDP).
    pub fn accept_answer(&mut self, pending: SdpPendingOffer, answer_sdp: &str) -> Result<()> {
        let answer = SdpAnswer::from_sdp_string(answer_sdp).context("parse answer")?;
        self.rtc.sdp_api().accept_answer(pending, answer)?;
        if self.transports.tcp {
            match passive_tcp_candidate(answer_sdp) {
                Some(server) => match TcpLink::connect(server, self.local.ip()) {
                    Ok(link) => {
                        let c = Candidate::builder()
                            .tcp()
                            .host(link.local())
                            .tcptype(TcpType::Active)
                            .build()
                            .context("TCP candidate")?;
                        self.rtc.add_local_candidate(c);
                        self.tcp = Some(link);
                    }
                    Err(e) => tracing::debug!("ICE-TCP to {server}: {e}"),
                },
                None => tracing::debug!("the answer has no passive TCP candidate"),
            }
        }
        Ok(())
    }

    /// The TCP connection's file descriptor, for readiness loops (ICE-TCP on).
    pub fn tcp_fd(&self) -> Option<std::os::fd::RawFd> {
        self.tcp.as_ref().map(|l| l.fd())
    }

    /// Whether media travels over the TCP connection (it was chosen by ICE).
    pub fn over_tcp(&self) -> bool {
        self.tcp.as_ref().is_some_and(|l| l.used())
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
                Output::Transmit(t) if t.proto == Protocol::Tcp => match &mut self.tcp {
                    Some(link) if link.remote() == t.destination => {
                        if let Err(e) = link.send(&t.contents) {
                            tracing::debug!("ICE-TCP send: {e}");
                        }
                    }
                    _ => {}
                },
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

    /// Feed every complete frame the TCP connection has; returns whether it is still open.
    fn tcp_input(&mut self, events: &mut Vec<Event>) -> Result<bool> {
        let Some(link) = self.tcp.as_mut() else { return Ok(false) };
        let (frames, open) = link.read_frames();
        let (remote, local) = (link.remote(), link.local());
        for f in frames {
            self.last_input = Instant::now();
            if let Ok(r) = Receive::new(Protocol::Tcp, remote, local, &f) {
                self.rtc.handle_input(Input::Receive(Instant::now(), r))?;
            }
            self.poll_out(events)?;
        }
        if !open {
            self.tcp = None;
        }
        Ok(open)
    }

    /// Non-blocking step for readiness loops: read every queued datagram, serve a due
    /// timeout, send, collect events. The socket must be non-blocking.
    pub fn process(&mut self, events: &mut Vec<Event>) -> Result<()> {
        self.tcp_input(events)?;
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
            if self.tcp.is_some() {
                // Wait on both the UDP socket and the TCP connection.
                match crate::tcp_link::wait_readable(&self.socket, self.tcp.as_ref().map(|l| l.fd()), wait) {
                    (false, false) => {
                        self.rtc.handle_input(Input::Timeout(Instant::now()))?;
                        continue;
                    }
                    (udp, tcp) => {
                        if tcp {
                            self.tcp_input(events)?;
                        }
                        if !udp {
                            continue;
                        }
                    }
                }
                self.socket.set_read_timeout(Some(Duration::from_micros(100)))?;
            } else {
                self.socket.set_read_timeout(Some(wait.max(Duration::from_micros(100))))?;
            }
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

/// The passive TCP host candidate of an SDP answer (`… tcp … typ host tcptype passive`).
pub fn passive_tcp_candidate(sdp: &str) -> Option<SocketAddr> {
    sdp.lines()
        .filter_map(|l| l.trim().strip_prefix("a="))
        .filter(|l| l.starts_with("candidate:"))
        .filter_map(|l| Candidate::from_sdp_string(l).ok())
        .find(|c| c.proto() == Protocol::Tcp && c.tcptype() == Some(TcpType::Passive))
        .map(|c| c.addr())
}
