//! The client side of one ICE-TCP connection: a TCP stream to the server's passive candidate,
//! with RFC 4571 framing both ways (non-blocking reads, so a readiness loop can own it).

use ardoise_proto::rfc4571::{Framer, frame_into};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// A framed TCP connection to the server.
pub struct TcpLink {
    stream: TcpStream,
    remote: SocketAddr,
    local: SocketAddr,
    framer: Framer,
    out: Vec<u8>,
    used: bool,
}

impl TcpLink {
    /// Connect to `server` (within 3 s) from an address of `ip`'s family.
    pub fn connect(server: SocketAddr, _ip: IpAddr) -> std::io::Result<TcpLink> {
        let stream = TcpStream::connect_timeout(&server, Duration::from_secs(3))?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        let local = stream.local_addr()?;
        Ok(TcpLink { stream, remote: server, local, framer: Framer::default(), out: Vec::new(), used: false })
    }

    /// The server's address.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// This end's address (the active candidate).
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Whether media came over it (ICE chose it).
    pub fn used(&self) -> bool {
        self.used
    }

    /// Its file descriptor (to wait on it beside the UDP socket).
    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// Send one packet, framed (waits while the kernel buffer is full, at most 1 s).
    pub fn send(&mut self, packet: &[u8]) -> std::io::Result<()> {
        self.out.clear();
        frame_into(packet, &mut self.out);
        let mut at = 0;
        while at < self.out.len() {
            match self.stream.write(&self.out[at..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => at += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if !wait_fd(self.fd(), libc::POLLOUT, Duration::from_secs(1)) {
                        return Err(ErrorKind::TimedOut.into());
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The complete frames readable now, and whether the connection is still open (a
    /// framing error closes it).
    pub fn read_frames(&mut self) -> (Vec<Vec<u8>>, bool) {
        let mut buf = [0u8; 16 * 1024];
        let mut open = true;
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    open = false;
                    break;
                }
                Ok(n) => self.framer.push(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    open = false;
                    break;
                }
            }
        }
        let mut frames = Vec::new();
        loop {
            match self.framer.next_frame() {
                Ok(Some(f)) => frames.push(f.to_vec()),
                Ok(None) => break,
                Err(_) => {
                    open = false;
                    break;
                }
            }
        }
        if frames.len() > 4 {
            self.used = true; // more than the ICE checks: media
        }
        (frames, open)
    }
}

fn wait_fd(fd: RawFd, events: libc::c_short, timeout: Duration) -> bool {
    let mut p = libc::pollfd { fd, events, revents: 0 };
    // SAFETY: one pollfd we own, for the duration of the call.
    let n = unsafe { libc::poll(&mut p, 1, timeout.as_millis().min(i32::MAX as u128) as i32) };
    n > 0
}

/// Wait until the UDP socket or the TCP connection is readable (or `timeout`); says which.
pub fn wait_readable(udp: &UdpSocket, tcp: Option<RawFd>, timeout: Duration) -> (bool, bool) {
    let mut fds = [
        libc::pollfd { fd: udp.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        libc::pollfd { fd: tcp.unwrap_or(-1), events: libc::POLLIN, revents: 0 },
    ];
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
    // SAFETY: two pollfds we own (a negative fd is ignored by poll).
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
    if n <= 0 {
        return (false, false);
    }
    let ready = |p: &libc::pollfd| p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0;
    (ready(&fds[0]), tcp.is_some() && ready(&fds[1]))
}
