//! Batched UDP sends: `sendmmsg`, with UDP GSO (`UDP_SEGMENT`) for runs of equal-size
//! datagrams to one destination.
//!
//! A worker's outbox after one wake-up holds, for each forwarded packet, one datagram per
//! subscriber. Sorting it (stably) by destination puts each subscriber's packets of a frame
//! side by side; each such run goes out as one GSO message (the kernel splits it), and all
//! messages go out in one `sendmmsg` call. Order toward any one destination is preserved.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use str0m::net::Transmit;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tracing::{debug, warn};

/// Most segments in one GSO message.
const MAX_SEGMENTS: usize = 32;
/// Most bytes in one GSO message.
const MAX_GSO_BYTES: usize = 60_000;
/// Most messages per `sendmmsg` call.
const MAX_MSGS: usize = 256;
/// `SOL_UDP` / `UDP_SEGMENT` (linux/udp.h).
const SOL_UDP: libc::c_int = 17;
const UDP_SEGMENT: libc::c_int = 103;
const CMSG_LEN: usize = 32;

/// Counters of the sender.
#[derive(Debug, Default, Clone, Copy)]
pub struct SendStats {
    /// Datagrams handed to the kernel.
    pub datagrams: u64,
    /// `sendmmsg` calls.
    pub syscalls: u64,
    /// Messages that carried several datagrams (GSO).
    pub gso_messages: u64,
}

struct Group {
    dest: usize,
    first_iov: usize,
    count: usize,
    segment: usize,
}

/// Reusable buffers for batched sends from one socket.
pub struct BatchSender {
    gso: bool,
    order: Vec<usize>,
    iovecs: Vec<libc::iovec>,
    groups: Vec<Group>,
    addrs: Vec<(libc::sockaddr_storage, libc::socklen_t)>,
    cmsgs: Vec<[u64; CMSG_LEN / 8]>,
    msgs: Vec<libc::mmsghdr>,
    /// Counters.
    pub stats: SendStats,
}

// SAFETY: the raw pointers in the buffers are only set and used within one `send` call.
unsafe impl Send for BatchSender {}

impl BatchSender {
    /// A sender; `gso` enables UDP segmentation offload (falls back if the kernel refuses it).
    pub fn new(gso: bool) -> Self {
        BatchSender {
            gso,
            order: Vec::new(),
            iovecs: Vec::new(),
            groups: Vec::new(),
            addrs: Vec::new(),
            cmsgs: Vec::new(),
            msgs: Vec::new(),
            stats: SendStats::default(),
        }
    }

    /// Send every transmit; returns once all are handed to the kernel (or dropped on error).
    pub async fn send(&mut self, socket: &UdpSocket, transmits: &[Transmit]) {
        if transmits.is_empty() {
            return;
        }
        self.plan(transmits);
        let mut next = 0;
        while next < self.groups.len() {
            let end = (next + MAX_MSGS).min(self.groups.len());
            self.build_msgs(next, end);
            let fd = socket.as_raw_fd();
            let msgs = &mut self.msgs;
            let r = socket.try_io(Interest::WRITABLE, || {
                // SAFETY: msgs points into buffers (iovecs, addrs, cmsgs) that live until the
                // end of this call; each msghdr's lengths match those buffers.
                let n = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), msgs.len() as libc::c_uint, 0) };
                if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(n as usize) }
            });
            match r {
                Ok(n) => {
                    self.stats.syscalls += 1;
                    for g in &self.groups[next..next + n] {
                        self.stats.datagrams += g.count as u64;
                        if g.count > 1 {
                            self.stats.gso_messages += 1;
                        }
                    }
                    next += n.max(1);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if socket.writable().await.is_err() {
                        return;
                    }
                }
                Err(e)
                    if self.gso
                        && next == 0
                        && self.groups[next].count > 1
                        && matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT)) =>
                {
                    warn!("UDP GSO refused by the kernel ({e}); sending datagrams one by one");
                    self.gso = false;
                    self.plan(transmits);
                    next = 0;
                }
                Err(e) => {
                    // One bad destination must not stop the others: skip its message.
                    debug!("sendmmsg: {e}; dropping one message");
                    next += 1;
                }
            }
        }
    }

    /// Sort by destination and cut runs into groups.
    fn plan(&mut self, transmits: &[Transmit]) {
        self.order.clear();
        self.order.extend(0..transmits.len());
        self.order.sort_by_key(|&i| transmits[i].destination);
        self.iovecs.clear();
        self.groups.clear();
        self.addrs.clear();
        let mut last_dest: Option<SocketAddr> = None;
        for &i in &self.order {
            let t = &transmits[i];
            let len = t.contents.len();
            if last_dest != Some(t.destination) {
                self.addrs.push(sockaddr(t.destination));
                last_dest = Some(t.destination);
            }
            let dest = self.addrs.len() - 1;
            let extend = self.gso
                && self.groups.last().is_some_and(|g| {
                    g.dest == dest
                        && g.count < MAX_SEGMENTS
                        && (g.count + 1) * g.segment <= MAX_GSO_BYTES
                        && len <= g.segment
                        // only the last segment may be shorter
                        && self.iovecs.last().is_some_and(|v| v.iov_len == g.segment)
                });
            self.iovecs.push(libc::iovec { iov_base: t.contents.as_ptr() as *mut libc::c_void, iov_len: len });
            if extend {
                self.groups.last_mut().expect("checked").count += 1;
            } else {
                self.groups.push(Group { dest, first_iov: self.iovecs.len() - 1, count: 1, segment: len });
            }
        }
    }

    fn build_msgs(&mut self, from: usize, to: usize) {
        self.msgs.clear();
        self.cmsgs.clear();
        self.cmsgs.resize(to - from, [0; CMSG_LEN / 8]);
        for (k, g) in self.groups[from..to].iter().enumerate() {
            // SAFETY: an all-zero msghdr is valid; the fields set below point into live buffers.
            let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
            let (addr, addr_len) = &mut self.addrs[g.dest];
            hdr.msg_name = addr as *mut libc::sockaddr_storage as *mut libc::c_void;
            hdr.msg_namelen = *addr_len;
            hdr.msg_iov = self.iovecs[g.first_iov..].as_mut_ptr();
            hdr.msg_iovlen = g.count as _;
            if g.count > 1 {
                let buf = &mut self.cmsgs[k];
                hdr.msg_control = buf.as_mut_ptr() as *mut libc::c_void;
                // SAFETY: CMSG_SPACE(2) <= CMSG_LEN; the buffer is 8-byte aligned.
                unsafe {
                    hdr.msg_controllen = libc::CMSG_SPACE(2) as _;
                    let c = libc::CMSG_FIRSTHDR(&hdr);
                    (*c).cmsg_level = SOL_UDP;
                    (*c).cmsg_type = UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(2) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, g.segment as u16);
                }
            }
            self.msgs.push(libc::mmsghdr { msg_hdr: hdr, msg_len: 0 });
        }
    }
}

fn sockaddr(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is valid; we write a sockaddr_in/in6 into it.
    let mut s: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match a {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(v4.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably aligned.
            unsafe { std::ptr::write(&mut s as *mut _ as *mut libc::sockaddr_in, sin) };
            (s, std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t)
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: v6.ip().octets() },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write(&mut s as *mut _ as *mut libc::sockaddr_in6, sin6) };
            (s, std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::net::Protocol;

    fn tx(to: SocketAddr, body: Vec<u8>) -> Transmit {
        Transmit {
            proto: Protocol::Udp,
            source: "127.0.0.1:1".parse().unwrap(),
            destination: to,
            contents: body.into(),
        }
    }

    async fn check(gso: bool) {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&a, &b] {
            s.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        }
        let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        // Interleaved like a worker outbox: packet-major, subscriber-minor; full-size runs
        // with a short last packet, then audio-sized ones.
        let mut list = Vec::new();
        let mut want_a = Vec::new();
        let mut want_b = Vec::new();
        for i in 0..40u8 {
            let len = if i == 39 {
                300
            } else if i >= 35 {
                120
            } else {
                1100
            };
            let body = vec![i; len];
            list.push(tx(aa, body.clone()));
            want_a.push(body.clone());
            list.push(tx(ba, body.clone()));
            want_b.push(body);
        }
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut sender = BatchSender::new(gso);
        sender.send(&sock, &list).await;
        assert_eq!(sender.stats.datagrams, 80);
        if gso {
            assert!(sender.stats.gso_messages >= 2, "{:?}", sender.stats);
        }
        assert_eq!(sender.stats.syscalls, 1, "one sendmmsg for the whole outbox");
        let mut buf = [0u8; 2048];
        for (sock, want) in [(&a, want_a), (&b, want_b)] {
            for w in want {
                let n = sock.recv(&mut buf).expect("datagram arrives");
                assert_eq!(&buf[..n], &w[..], "datagrams arrive whole and in order");
            }
        }
    }

    #[tokio::test]
    async fn batched_sends_keep_order_and_boundaries() {
        check(true).await;
        check(false).await;
    }
}
