//! A str0m peer on its own UDP socket, driven by a blocking loop (one thread per peer).

use anyhow::{Context, Result};
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

/// A str0m `Rtc` with its socket.
pub struct Peer {
    /// The connection.
    pub rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    buf: Vec<u8>,
    /// Datagrams sent and received.
    pub datagrams: (u64, u64),
}

impl Peer {
    /// A peer in RTP mode bound to an ephemeral port on `ip` (a loopback address in tests).
    pub fn new(ip: IpAddr) -> Result<Peer> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).context("bind client socket")?;
        let local = socket.local_addr()?;
        let mut rtc = Rtc::builder().set_rtp_mode(true).enable_raw_packets(false).build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").context("host candidate")?);
        Ok(Peer { rtc, socket, local, buf: vec![0; 2048], datagrams: (0, 0) })
    }

    /// Local socket address.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Drain outputs (send transmits, collect events), then wait for input until `until`.
    /// Returns the events seen. Returns early as soon as one event is seen.
    pub fn drive(&mut self, until: Instant, events: &mut Vec<Event>) -> Result<()> {
        loop {
            let timeout = loop {
                match self.rtc.poll_output()? {
                    Output::Timeout(t) => break t,
                    Output::Transmit(t) => {
                        self.datagrams.0 += 1;
                        if let Err(e) = self.socket.send_to(&t.contents, t.destination) {
                            if e.kind() != ErrorKind::ConnectionRefused {
                                tracing::debug!("send: {e}");
                            }
                        }
                    }
                    Output::Event(e) => events.push(e),
                }
            };
            if !events.is_empty() {
                return Ok(());
            }
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            let wait = timeout.min(until).saturating_duration_since(now);
            if wait.is_zero() {
                self.rtc.handle_input(Input::Timeout(now))?;
                continue;
            }
            self.socket.set_read_timeout(Some(wait.max(Duration::from_micros(100))))?;
            match self.socket.recv_from(&mut self.buf) {
                Ok((n, src)) => {
                    self.datagrams.1 += 1;
                    let now = Instant::now();
                    if let Ok(r) = Receive::new(Protocol::Udp, src, self.local, &self.buf[..n]) {
                        self.rtc.handle_input(Input::Receive(now, r))?;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    self.rtc.handle_input(Input::Timeout(Instant::now()))?;
                }
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}
