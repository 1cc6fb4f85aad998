//! The floor under any UDP relay on this machine: what the socket work alone costs per
//! forwarded packet, with no RTP, no SRTP, no SFU.
//!
//! - A relay thread, pinned to core 0, does only what every SFU must do with kernel UDP
//!   sockets: it sleeps in `poll` until a datagram arrives, reads each with `recvfrom`, and
//!   sends every media datagram's copies to the pupils with one `sendmmsg`. It reads the
//!   pupils' feedback datagrams too, and does nothing with them.
//! - A source, pinned to core 1, sends 1,100-byte media datagrams, one every 1/rate s
//!   (paced, as an encoder does).
//! - The pupils, also on core 1, are N sockets that read their copies and each send a
//!   60-byte feedback datagram every 50 ms (a browser's transport-cc cadence).
//!
//! It prints the relay thread's CPU time (`/proc/thread-self/schedstat`) per forwarded
//! datagram, the figure to set beside `benches/scale.sh`'s CPU per packet. On loopback the
//! kernel delivers each datagram to its receiving socket inside the sender's system call,
//! so the relay's share includes the receive side, as it does for Ardoise and Janus there.
//!
//! `cargo bench --bench send_floor -- [PUPILS] [PACKETS_PER_S] [SECS]` (25, 224, 10).

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const MEDIA_BYTES: usize = 1_100;
const FEEDBACK_BYTES: usize = 60;
const FEEDBACK_EVERY: Duration = Duration::from_millis(50);
const WARMUP: Duration = Duration::from_secs(2);

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let pupils = *args.first().unwrap_or(&25) as usize;
    let rate = (*args.get(1).unwrap_or(&224)).max(1);
    let secs = *args.get(2).unwrap_or(&10);

    let relay = UdpSocket::bind("127.0.0.1:0").expect("bind the relay");
    let relay_addr = relay.local_addr().expect("relay address");
    let sinks: Vec<UdpSocket> = (0..pupils).map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind a pupil")).collect();
    let sink_addrs: Vec<SocketAddr> = sinks.iter().map(|s| s.local_addr().expect("pupil address")).collect();
    let stop = Arc::new(AtomicBool::new(false));

    let relay_thread = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            pin(0);
            run_relay(&relay, &sink_addrs, &stop, secs)
        })
    };
    let pupils_thread = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            pin(1);
            run_pupils(&sinks, relay_addr, &stop)
        })
    };
    pin(1);
    let source = UdpSocket::bind("127.0.0.1:0").expect("bind the source");
    let media = vec![0x80u8; MEDIA_BYTES];
    let start = Instant::now();
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) && !relay_thread.is_finished() {
        let due = start + Duration::from_nanos(sent * 1_000_000_000 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let _ = source.send_to(&media, relay_addr);
        sent += 1;
    }
    stop.store(true, Ordering::Relaxed); // the pupils stop too if the relay failed
    let (cpu_ns, window, fwd, fb, media_in) = relay_thread.join().expect("the relay thread ends");
    pupils_thread.join().expect("pupils thread");
    let per_s = |n: u64| n as f64 / window.as_secs_f64();
    let us_per = |n: u64| if n == 0 { "null".to_owned() } else { format!("{:.2}", cpu_ns as f64 / 1000.0 / n as f64) };
    println!(
        "{{\"pupils\": {pupils}, \"packets_in_per_s\": {:.0}, \"forwarded_per_s\": {:.0}, \"feedback_per_s\": {:.0}, \
         \"relay_cpu_pct\": {:.2}, \"cpu_us_per_forwarded_packet\": {}, \"cpu_us_per_packet_in\": {}}}",
        per_s(media_in),
        per_s(fwd),
        per_s(fb),
        cpu_ns as f64 / window.as_nanos() as f64 * 100.0,
        us_per(fwd),
        us_per(media_in),
    );
}

/// The relay: returns its CPU ns, the window, and the datagrams forwarded, feedback read and
/// media read in it.
fn run_relay(socket: &UdpSocket, sinks: &[SocketAddr], stop: &AtomicBool, secs: u64) -> (u64, Duration, u64, u64, u64) {
    socket.set_nonblocking(true).expect("non-blocking relay");
    let addrs: Vec<libc::sockaddr_in> = sinks.iter().map(sockaddr).collect();
    let mut buf = [0u8; 2048];
    let (mut fwd, mut fb, mut media_in) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    let mut window: Option<(Instant, u64, u64, u64, u64)> = None;
    loop {
        let now = Instant::now();
        match window {
            None if now >= start + WARMUP => window = Some((now, cpu_ns(), fwd, fb, media_in)),
            Some((t0, c0, f0, b0, m0)) if now >= t0 + Duration::from_secs(secs) => {
                let result = (cpu_ns() - c0, now - t0, fwd - f0, fb - b0, media_in - m0);
                stop.store(true, Ordering::Relaxed);
                return result;
            }
            _ => {}
        }
        let mut pfd = libc::pollfd { fd: socket.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 100) };
        while let Ok((n, _)) = socket.recv_from(&mut buf) {
            if n == MEDIA_BYTES {
                media_in += 1;
                fwd += send_copies(socket, &buf[..n], &addrs);
            } else {
                fb += 1;
            }
        }
    }
}

/// `sendmmsg` of `data` to every address (again for those a short count left); returns the
/// datagrams the kernel took.
fn send_copies(socket: &UdpSocket, data: &[u8], addrs: &[libc::sockaddr_in]) -> u64 {
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut _, iov_len: data.len() };
    let iov_ptr: *mut libc::iovec = &mut iov;
    let mut msgs: Vec<libc::mmsghdr> = addrs
        .iter()
        .map(|a| {
            // SAFETY: all-zero is a valid mmsghdr; the fields that matter are set below.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_name = a as *const _ as *mut _;
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            m.msg_hdr.msg_iov = iov_ptr;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let mut done = 0;
    while done < msgs.len() {
        let rest = &mut msgs[done..];
        // SAFETY: the messages point at `iov`, `data` and `addrs`, all alive for the call.
        let n = unsafe { libc::sendmmsg(socket.as_raw_fd(), rest.as_mut_ptr(), rest.len() as u32, 0) };
        if n <= 0 {
            break; // a full buffer: the rest is not counted
        }
        done += n as usize;
    }
    done as u64
}

/// The pupils: read their copies; each sends feedback every [`FEEDBACK_EVERY`].
fn run_pupils(sinks: &[UdpSocket], relay: SocketAddr, stop: &AtomicBool) {
    let mut pfds: Vec<libc::pollfd> =
        sinks.iter().map(|s| libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    for s in sinks {
        s.set_nonblocking(true).expect("non-blocking pupil");
    }
    let feedback = [0u8; FEEDBACK_BYTES];
    let mut buf = [0u8; 2048];
    let mut next_feedback = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let wait = next_feedback.saturating_duration_since(Instant::now()).as_millis() as i32;
        // SAFETY: `pfds` is a valid array of its length.
        unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, wait.max(1)) };
        for (s, p) in sinks.iter().zip(&pfds) {
            if p.revents != 0 {
                while s.recv_from(&mut buf).is_ok() {}
            }
        }
        if Instant::now() >= next_feedback {
            for s in sinks {
                let _ = s.send_to(&feedback, relay);
            }
            next_feedback += FEEDBACK_EVERY;
        }
    }
}

fn sockaddr(a: &SocketAddr) -> libc::sockaddr_in {
    let SocketAddr::V4(v4) = a else { unreachable!("the pupils bind IPv4 loopback") };
    // SAFETY: all-zero is a valid sockaddr_in.
    let mut s: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    s.sin_family = libc::AF_INET as libc::sa_family_t;
    s.sin_port = v4.port().to_be();
    s.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
    s
}

/// This thread's CPU time so far, ns.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .expect("/proc/thread-self/schedstat gives this thread's CPU time")
}

/// Pin this thread to `cpu` when the machine has it.
fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET and sched_setaffinity take valid pointers.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
