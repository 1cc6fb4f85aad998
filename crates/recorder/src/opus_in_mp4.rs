//! Puts right the Opus header GStreamer 1.22's `mp4mux` writes into an MP4 file.
//!
//! The `dOps` box (Opus in ISO BMFF) is big-endian; Debian 12's `mp4mux` writes its
//! pre-skip, input sample rate and output gain little-endian (the `OpusHead` order), and
//! browsers refuse the file (Chromium: "Opus AudioSampleEntry sample rate mismatches
//! OpusSpecificBox"). Rules:
//! - only a `dOps` box in the file's first [`HEAD`] bytes (the `moov`, written first) is
//!   looked at;
//! - it is rewritten only when its rate reads as a valid Opus rate little-endian and not
//!   big-endian: a right file (a fixed GStreamer) is left as it is.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// How far into a file its `moov` (and its `dOps`) is looked for.
pub const HEAD: usize = 64 * 1024;

/// The input sample rates an Opus header may state.
const RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];

/// Fix the `dOps` box of `head` (a file's first bytes) in place; whether it changed.
pub fn fix_dops(head: &mut [u8]) -> bool {
    let Some(at) = head.windows(4).position(|w| w == b"dOps") else { return false };
    // After the type: version (1), output channels (1), pre-skip (2), rate (4), gain (2).
    let Some(body) = head.get_mut(at + 4..at + 14) else { return false };
    let rate = [body[4], body[5], body[6], body[7]];
    if RATES.contains(&u32::from_be_bytes(rate)) || !RATES.contains(&u32::from_le_bytes(rate)) {
        return false;
    }
    body[2..4].reverse();
    body[4..8].reverse();
    body[8..10].reverse();
    true
}

/// Fix the `dOps` box of the MP4 file at `path`, in place; whether it changed.
pub fn fix_file(path: &Path) -> std::io::Result<bool> {
    let mut file = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
    let mut head = Vec::with_capacity(HEAD);
    (&mut file).take(HEAD as u64).read_to_end(&mut head)?;
    if !fix_dops(&mut head) {
        return Ok(false);
    }
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&head)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `Opus` sample entry's `dOps` box as Debian 12's mp4mux writes it (from a recording).
    const WRITTEN: &str = "00000013644f70730002000080bb0000000000";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn a_little_endian_header_is_made_big_endian_once() {
        let mut head = hex(WRITTEN);
        assert!(fix_dops(&mut head));
        assert_eq!(head, hex("00000013644f7073000200000000bb80000000"), "rate 48000 big-endian");
        assert!(!fix_dops(&mut head), "a right header stays as it is");
    }

    #[test]
    fn pre_skip_and_gain_turn_too() {
        // pre-skip 312 (0x0138) and gain 256 (0x0100), written little-endian.
        let mut head = hex("644f7073000138010000bb80000001");
        head[6..8].copy_from_slice(&312u16.to_le_bytes());
        head[8..12].copy_from_slice(&48_000u32.to_le_bytes());
        head[12..14].copy_from_slice(&256u16.to_le_bytes());
        assert!(fix_dops(&mut head));
        assert_eq!(&head[6..8], &312u16.to_be_bytes());
        assert_eq!(&head[8..12], &48_000u32.to_be_bytes());
        assert_eq!(&head[12..14], &256u16.to_be_bytes());
    }

    #[test]
    fn no_header_or_a_cut_one_changes_nothing() {
        assert!(!fix_dops(&mut b"ftypisom".to_vec()));
        let mut cut = hex(WRITTEN)[..10].to_vec();
        assert!(!fix_dops(&mut cut));
    }
}
