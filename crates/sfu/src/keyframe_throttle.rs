//! Keyframe requests toward one publisher layer, throttled.
//!
//! Every pupil that joins or loses a packet may ask for a keyframe; forwarding each request
//! to the teacher would make its encoder emit keyframes back to back (a PLI storm). The
//! throttle lets one request through per interval. A request that arrives too soon is not
//! lost: it is deferred to the end of the interval, unless a keyframe arrives first.

use std::time::{Duration, Instant};

/// Wait this long after the last keyframe (received or asked for) before a lazy request.
const LAZY_INTERVAL: Duration = Duration::from_secs(2);

/// At most one keyframe request per `interval`, with deferred requests; lazy requests (a
/// pupil moving up a layer keeps watching its current one meanwhile) wait for a keyframe
/// that comes anyway, and ask only when none came for [`LAZY_INTERVAL`].
#[derive(Debug, Clone)]
pub struct KeyframeThrottle {
    interval: Duration,
    last_sent: Option<Instant>,
    last_keyframe: Option<Instant>,
    deferred: bool,
    lazy: bool,
}

impl KeyframeThrottle {
    /// A throttle that lets one request through per `interval`.
    pub fn new(interval: Duration) -> Self {
        KeyframeThrottle { interval, last_sent: None, last_keyframe: None, deferred: false, lazy: false }
    }

    /// A subscriber would like a keyframe but can wait. Returns true if a request must be sent now.
    pub fn request_lazy(&mut self, now: Instant) -> bool {
        match self.last_sent.max(self.last_keyframe) {
            Some(t) if now < t + LAZY_INTERVAL => {
                self.lazy = true;
                false
            }
            _ => self.request(now),
        }
    }

    /// A subscriber wants a keyframe. Returns true if a request must be sent now.
    pub fn request(&mut self, now: Instant) -> bool {
        match self.last_sent {
            Some(t) if now < t + self.interval => {
                self.deferred = true;
                false
            }
            _ => {
                self.last_sent = Some(now);
                self.deferred = false;
                self.lazy = false;
                true
            }
        }
    }

    /// A keyframe arrived on this layer: any deferred or lazy request is satisfied.
    pub fn keyframe_received(&mut self, now: Instant) {
        self.deferred = false;
        self.lazy = false;
        self.last_keyframe = Some(now);
    }

    /// When a deferred (or lazy) request falls due, if one is pending.
    pub fn deadline(&self) -> Option<Instant> {
        let deferred = match (self.deferred, self.last_sent) {
            (true, Some(t)) => Some(t + self.interval),
            _ => None,
        };
        let lazy = self.last_sent.max(self.last_keyframe).filter(|_| self.lazy).map(|t| t + LAZY_INTERVAL);
        match (deferred, lazy) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time passed: returns true if a deferred request must be sent now.
    pub fn poll(&mut self, now: Instant) -> bool {
        match self.deadline() {
            Some(d) if now >= d => self.request(now),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_per_interval_whatever_the_number_of_pupils() {
        let t0 = Instant::now();
        let mut t = KeyframeThrottle::new(Duration::from_millis(300));
        let mut sent = 0;
        // 50 pupils asking every 10 ms for 3 s.
        for ms in (0..3000).step_by(10) {
            let now = t0 + Duration::from_millis(ms);
            for _ in 0..50 {
                if t.request(now) {
                    sent += 1;
                }
            }
            if t.poll(now) {
                sent += 1;
            }
        }
        assert_eq!(sent, 10, "one per 300 ms over 3 s");
    }

    #[test]
    fn deferred_request_fires_at_deadline_unless_keyframe_came() {
        let t0 = Instant::now();
        let mut t = KeyframeThrottle::new(Duration::from_millis(300));
        assert!(t.request(t0));
        assert!(!t.request(t0 + Duration::from_millis(100)));
        assert_eq!(t.deadline(), Some(t0 + Duration::from_millis(300)));
        assert!(!t.poll(t0 + Duration::from_millis(299)));
        assert!(t.poll(t0 + Duration::from_millis(300)));
        assert_eq!(t.deadline(), None);

        assert!(!t.request(t0 + Duration::from_millis(400)));
        t.keyframe_received(t0 + Duration::from_millis(450));
        assert_eq!(t.deadline(), None);
        assert!(!t.poll(t0 + Duration::from_millis(700)));
    }

    #[test]
    fn lazy_requests_wait_for_a_keyframe_that_comes_anyway() {
        let t0 = Instant::now();
        let mut t = KeyframeThrottle::new(Duration::from_millis(500));
        assert!(t.request_lazy(t0), "nothing recent: ask");
        assert!(!t.request_lazy(t0 + Duration::from_millis(600)), "a request went out 0.6 s ago: wait");
        assert_eq!(t.deadline(), Some(t0 + LAZY_INTERVAL));
        t.keyframe_received(t0 + Duration::from_millis(900));
        assert_eq!(t.deadline(), None, "the keyframe came: nothing to send");
        assert!(!t.request_lazy(t0 + Duration::from_millis(1000)));
        assert!(t.poll(t0 + Duration::from_millis(900) + LAZY_INTERVAL), "none came for 2 s: ask");
        // An urgent request is not slowed by lazy ones.
        assert!(t.request(t0 + Duration::from_millis(900) + LAZY_INTERVAL + Duration::from_millis(500)));
    }
}
