//! RFC 4571 framing: STUN, DTLS and SRTP over a TCP stream (ICE-TCP, RFC 6544), each packet
//! preceded by its length in two big-endian bytes.
//!
//! Sans-IO: push the bytes a read returned, take the frames out; the reader never trusts a
//! length beyond [`Framer::max_frame`]. A zero length or a frame over the maximum is an error
//! that ends the connection (its stream can no longer be followed).

/// Why a stream cannot be followed any longer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// A frame of length zero.
    Empty,
    /// A frame longer than the maximum.
    TooLong(usize),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Empty => f.write_str("a frame of length zero"),
            FrameError::TooLong(n) => write!(f, "a frame of {n} bytes, over the maximum"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Longest frame accepted by default: a media packet fits in an MTU; this leaves room.
pub const DEFAULT_MAX_FRAME: usize = 4096;

/// Reassembles frames from the bytes of a stream.
#[derive(Debug, Clone)]
pub struct Framer {
    buf: Vec<u8>,
    start: usize,
    max: usize,
    failed: Option<FrameError>,
}

impl Default for Framer {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

impl Framer {
    /// A framer accepting frames of at most `max` bytes.
    pub fn new(max: usize) -> Self {
        Framer { buf: Vec::new(), start: 0, max, failed: None }
    }

    /// The longest frame accepted.
    pub fn max_frame(&self) -> usize {
        self.max
    }

    /// Append bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `Ok(None)` while one is incomplete, or the error that ends
    /// the stream (returned again on every later call).
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let pending = &self.buf[self.start..];
        if pending.len() < 2 {
            self.compact();
            return Ok(None);
        }
        let len = u16::from_be_bytes([pending[0], pending[1]]) as usize;
        if len == 0 {
            return Err(*self.failed.insert(FrameError::Empty));
        }
        if len > self.max {
            return Err(*self.failed.insert(FrameError::TooLong(len)));
        }
        if pending.len() < 2 + len {
            self.compact();
            return Ok(None);
        }
        let from = self.start + 2;
        self.start = from + len;
        Ok(Some(&self.buf[from..from + len]))
    }

    /// Bytes held for an incomplete frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }
}

/// Append `payload` framed (length, then bytes) to `out`. Payloads over 65,535 bytes cannot be
/// framed: the caller never makes one (packets are MTU-sized).
pub fn frame_into(payload: &[u8], out: &mut Vec<u8>) {
    debug_assert!(payload.len() <= u16::MAX as usize);
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames(f: &mut Framer) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut out = Vec::new();
        while let Some(fr) = f.next_frame()? {
            out.push(fr.to_vec());
        }
        Ok(out)
    }

    #[test]
    fn split_and_merged_reads() {
        let mut wire = Vec::new();
        frame_into(b"stun", &mut wire);
        frame_into(&[7u8; 1200], &mut wire);
        frame_into(b"x", &mut wire);
        // Byte by byte.
        let mut f = Framer::default();
        let mut got = Vec::new();
        for b in &wire {
            f.push(std::slice::from_ref(b));
            got.extend(frames(&mut f).unwrap());
        }
        assert_eq!(got, vec![b"stun".to_vec(), vec![7u8; 1200], b"x".to_vec()]);
        assert_eq!(f.buffered(), 0);
        // All at once.
        let mut f = Framer::default();
        f.push(&wire);
        assert_eq!(frames(&mut f).unwrap().len(), 3);
        // A header split across reads.
        let mut f = Framer::default();
        f.push(&wire[..1]);
        assert!(frames(&mut f).unwrap().is_empty());
        f.push(&wire[1..7]);
        assert_eq!(frames(&mut f).unwrap(), vec![b"stun".to_vec()]);
    }

    #[test]
    fn zero_and_oversized_lengths_end_the_stream() {
        let mut f = Framer::new(100);
        f.push(&[0, 0, 1, 2]);
        assert_eq!(f.next_frame(), Err(FrameError::Empty));
        f.push(&[0, 1, 9]);
        assert_eq!(f.next_frame(), Err(FrameError::Empty), "a failed stream stays failed");
        let mut f = Framer::new(100);
        f.push(&[0xff, 0xff]);
        assert_eq!(f.next_frame(), Err(FrameError::TooLong(65535)));
        let mut f = Framer::new(100);
        f.push(&[0, 101]);
        assert_eq!(f.next_frame(), Err(FrameError::TooLong(101)), "refused before its bytes arrive");
    }

    proptest! {
        /// Whatever the frames and however the stream is cut into reads, the frames come out
        /// whole and in order.
        #[test]
        fn any_cut_gives_back_the_frames(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 0..20),
            cuts in proptest::collection::vec(1usize..64, 1..50),
        ) {
            let mut wire = Vec::new();
            for p in &payloads {
                frame_into(p, &mut wire);
            }
            let mut f = Framer::new(300);
            let mut got = Vec::new();
            let mut at = 0;
            let mut i = 0;
            while at < wire.len() {
                let n = cuts[i % cuts.len()].min(wire.len() - at);
                f.push(&wire[at..at + n]);
                at += n;
                i += 1;
                got.extend(frames(&mut f).unwrap());
            }
            prop_assert_eq!(got, payloads);
            prop_assert_eq!(f.buffered(), 0);
        }

        /// Garbage never panics and never yields a frame over the maximum.
        #[test]
        fn garbage_is_safe(bytes in proptest::collection::vec(any::<u8>(), 0..2000), max in 1usize..3000) {
            let mut f = Framer::new(max);
            f.push(&bytes);
            while let Ok(Some(fr)) = f.next_frame() {
                prop_assert!(!fr.is_empty() && fr.len() <= max);
            }
        }
    }
}
