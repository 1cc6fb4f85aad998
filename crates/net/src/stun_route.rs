//! Which peer a datagram or an ICE-TCP connection belongs to, before any state is made for
//! it: a new address starts with a STUN binding request whose USERNAME (`local:remote`)
//! names our ufrag. Anything that is not such a request is answered by nobody.
//!
//! The input is untrusted bytes from any address; the function never panics and allocates
//! only the ufrag it returns (fuzzed: `fuzz/fuzz_targets/stun_route.rs`).

/// Our ufrag named by a STUN binding request's USERNAME, or `None` when `data` is not a
/// STUN binding request with a username.
pub fn local_ufrag(data: &[u8]) -> Option<String> {
    str0m::ice::StunMessage::parse(data)
        .ok()
        .filter(|m| m.is_binding_request())
        .and_then(|m| m.split_username().map(|(local, _)| local.to_owned()))
}

/// Datagrams that named no live session, counted per source (address and port) over
/// one-second windows, so that a socket spraying them is dropped before they are even parsed.
///
/// Rules: a source that sent [`UnknownSources::PER_SECOND`] unknown datagrams in the current
/// window is refused until the window ends; the table holds at most
/// [`UnknownSources::CAPACITY`] sources and is cleared at each window, so a spray of
/// addresses costs a bounded table, and sources beyond it are parsed as before (the lookup is
/// cheap; the limit only takes the repeated cost off one source). The key is the whole socket
/// address, not the IP: a client whose session ended keeps sending from its old port for a
/// while, and its new session (a new socket, a new port) must never be refused for it, nor a
/// neighbour behind the same NAT. Known peers never reach this: their datagrams are routed by
/// address first.
#[derive(Debug)]
pub struct UnknownSources {
    window_start: Option<std::time::Instant>,
    counts: std::collections::HashMap<std::net::SocketAddr, u32>,
}

impl Default for UnknownSources {
    fn default() -> Self {
        UnknownSources { window_start: None, counts: std::collections::HashMap::with_capacity(64) }
    }
}

impl UnknownSources {
    /// Unknown datagrams one source may send per second before being dropped unread.
    pub const PER_SECOND: u32 = 100;
    /// Sources tracked in one window.
    pub const CAPACITY: usize = 4096;

    fn roll(&mut self, now: std::time::Instant) {
        if self.window_start.is_none_or(|t| now.saturating_duration_since(t) >= std::time::Duration::from_secs(1)) {
            self.window_start = Some(now);
            self.counts.clear();
            if self.counts.capacity() > 4 * 64 {
                self.counts.shrink_to(64);
            }
        }
    }

    /// Whether a datagram from `src`, which is not a known peer's address, may be parsed.
    pub fn allows(&mut self, src: std::net::SocketAddr, now: std::time::Instant) -> bool {
        self.roll(now);
        self.counts.get(&src).is_none_or(|&n| n < Self::PER_SECOND)
    }

    /// A datagram from `src` named no live session.
    pub fn note(&mut self, src: std::net::SocketAddr, now: std::time::Instant) {
        self.roll(now);
        if let Some(n) = self.counts.get_mut(&src) {
            *n = n.saturating_add(1);
        } else if self.counts.len() < Self::CAPACITY {
            self.counts.insert(src, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_spraying_source_is_refused_for_the_rest_of_its_window_only() {
        let t0 = Instant::now();
        let mut u = UnknownSources::default();
        let (a, b): (std::net::SocketAddr, std::net::SocketAddr) =
            ("192.0.2.1:5000".parse().unwrap(), "192.0.2.1:5001".parse().unwrap());
        for _ in 0..UnknownSources::PER_SECOND {
            assert!(u.allows(a, t0));
            u.note(a, t0);
        }
        assert!(!u.allows(a, t0 + Duration::from_millis(500)));
        assert!(u.allows(b, t0 + Duration::from_millis(500)), "another socket of the same address is not affected");
        assert!(u.allows(a, t0 + Duration::from_millis(1000)), "the next window starts afresh");
    }

    #[test]
    fn the_table_is_bounded() {
        let t0 = Instant::now();
        let mut u = UnknownSources::default();
        for i in 0..(UnknownSources::CAPACITY as u32 + 100) {
            u.note(std::net::SocketAddr::from((i.to_be_bytes(), 9)), t0);
        }
        assert_eq!(u.counts.len(), UnknownSources::CAPACITY);
    }
}
