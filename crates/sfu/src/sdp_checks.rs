//! Pre-checks of SDP text, before str0m parses it and after it answers: whether an offer
//! has an m-line this side can use, whether an answer receives video, and which relay
//! candidates an offer names. Every function takes untrusted text and never panics (fuzzed:
//! `fuzz/fuzz_targets/sdp_offer.rs`).

use crate::SfuError;
use std::net::SocketAddr;
use str0m::Candidate;

/// The largest offer read: a browser's offer with every candidate is under 10 KiB.
pub const MAX_SDP_BYTES: usize = 32 * 1024;

/// The most m-lines in an offer: a studio publishes audio and video, a pupil receives the
/// class and the floor; more is a client trying to make us allocate.
pub const MAX_M_LINES: usize = 16;

/// The addresses of the relay candidates (`typ relay`) of an SDP.
pub fn relay_candidates(sdp: &str) -> Vec<SocketAddr> {
    sdp.lines()
        .filter_map(|l| l.trim().strip_prefix("a="))
        .filter(|l| l.starts_with("candidate:"))
        .filter_map(|l| Candidate::from_sdp_string(l).ok())
        .filter(|c| c.kind() == str0m::CandidateKind::Relayed)
        .map(|c| c.addr())
        .collect()
}

/// The transport-wide sequence number header extension (transport-cc feedback).
const TWCC_EXTENSION: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// Whether an offer negotiates transport-cc feedback: a video m-line that lists the
/// transport-wide sequence number extension and the `transport-cc` feedback. Browsers do;
/// many other players do not, and get an estimate from their receiver reports instead.
pub fn offers_transport_cc(sdp: &str) -> bool {
    let mut video = false;
    let (mut ext, mut fb) = (false, false);
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            video = m.starts_with("video");
        } else if let Some(a) = line.strip_prefix("a=extmap:") {
            ext |= a.split_whitespace().nth(1) == Some(TWCC_EXTENSION) && video;
        } else if let Some(a) = line.strip_prefix("a=rtcp-fb:") {
            fb |= video && a.split_whitespace().nth(1) == Some("transport-cc");
        }
    }
    // (A session-level extmap counts for every m-line.)
    ext |= sdp.lines().take_while(|l| !l.starts_with("m=")).any(|l| l.trim_end().ends_with(TWCC_EXTENSION));
    ext && fb
}

/// Whether an SDP answer of ours receives video: a video m-line with a non-zero port whose
/// direction is recvonly or sendrecv.
pub fn answer_receives_video(answer: &str) -> bool {
    let mut video = false;
    let mut receiving = false;
    let mut any = false;
    for line in answer.lines().map(str::trim_end).chain(std::iter::once("m=end")) {
        if let Some(m) = line.strip_prefix("m=") {
            any |= video && receiving;
            video = m.starts_with("video") && m.split_whitespace().nth(1) != Some("0");
            receiving = true; // sendrecv is the default
        } else if matches!(line, "a=sendonly" | "a=inactive") {
            receiving = false;
        }
    }
    any
}

/// Refuse an offer with no usable media before str0m sees it: it must start with `v=0`, be
/// at most [`MAX_SDP_BYTES`] with at most [`MAX_M_LINES`] m-lines, and have an audio or video
/// m-line, with a non-zero port, that the role may use (a publisher
/// sends, a pupil receives).
pub fn check_offer(sdp: &str, publisher: bool) -> Result<(), SfuError> {
    if !sdp.starts_with("v=0") {
        return Err(SfuError::BadSdp("an SDP offer starts with v=0".into()));
    }
    if sdp.len() > MAX_SDP_BYTES {
        return Err(SfuError::UnusableOffer(format!("an offer is at most {MAX_SDP_BYTES} bytes")));
    }
    if sdp.lines().filter(|l| l.starts_with("m=")).count() > MAX_M_LINES {
        return Err(SfuError::UnusableOffer(format!("an offer has at most {MAX_M_LINES} m-lines")));
    }
    let mut sections = 0;
    let mut usable = 0;
    let mut current: Option<&str> = None;
    let mut dir = "sendrecv";
    let close = |kind: Option<&str>, dir: &str, sections: &mut i32, usable: &mut i32| {
        if let Some(k) = kind
            && (k.starts_with("audio") || k.starts_with("video"))
        {
            *sections += 1;
            let ok =
                if publisher { dir == "sendonly" || dir == "sendrecv" } else { dir == "recvonly" || dir == "sendrecv" };
            // "m=audio 0 …" is a rejected m-line (port 0); payload type 0 (PCMU) is fine.
            let port_zero = k.split_whitespace().nth(1) == Some("0");
            if ok && !port_zero {
                *usable += 1;
            }
        }
    };
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(m) = line.strip_prefix("m=") {
            close(current, dir, &mut sections, &mut usable);
            current = Some(m);
            dir = "sendrecv";
        } else if let Some(d) = line.strip_prefix("a=")
            && matches!(d, "sendonly" | "recvonly" | "sendrecv" | "inactive")
        {
            dir = d;
        }
    }
    close(current, dir, &mut sections, &mut usable);
    if sections == 0 {
        return Err(SfuError::UnusableOffer("the offer has no audio or video m-line".into()));
    }
    if usable == 0 {
        let want = if publisher { "send (sendonly/sendrecv)" } else { "receive (recvonly/sendrecv)" };
        return Err(SfuError::UnusableOffer(format!("no audio or video m-line to {want}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_cc_is_told_from_the_video_m_line() {
        let head = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
        let ext = format!("a=extmap:3 {TWCC_EXTENSION}\r\n");
        let video = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\na=rtpmap:96 VP8/90000\r\n";
        let chrome = format!("{head}{video}{ext}a=rtcp-fb:96 transport-cc\r\na=rtcp-fb:96 nack\r\n");
        assert!(offers_transport_cc(&chrome));
        let player = format!("{head}{video}a=rtcp-fb:96 nack\r\na=rtcp-fb:96 goog-remb\r\n");
        assert!(!offers_transport_cc(&player), "REMB only");
        let half = format!("{head}{video}{ext}");
        assert!(!offers_transport_cc(&half), "the extension without the feedback");
        let audio_only = format!("{head}m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n{ext}a=rtcp-fb:111 transport-cc\r\n{video}");
        assert!(!offers_transport_cc(&audio_only), "on the audio m-line only");
        let session = format!("{head}{ext}{video}a=rtcp-fb:96 transport-cc\r\n");
        assert!(offers_transport_cc(&session), "a session-level extension");
    }

    #[test]
    fn offer_checks() {
        assert!(matches!(check_offer("hello", true), Err(SfuError::BadSdp(_))));
        let no_media = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
        assert!(matches!(check_offer(no_media, true), Err(SfuError::UnusableOffer(_))));
        let recv = format!("{no_media}m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\n");
        assert!(matches!(check_offer(&recv, true), Err(SfuError::UnusableOffer(_))));
        assert!(check_offer(&recv, false).is_ok());
        let send = format!("{no_media}m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendonly\r\n");
        assert!(check_offer(&send, true).is_ok());
        // Browsers list PCMU (payload type 0) in their audio m-line.
        let chrome_audio = format!("{no_media}m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\na=sendonly\r\n");
        assert!(check_offer(&chrome_audio, true).is_ok());
        let rejected = format!("{no_media}m=audio 0 UDP/TLS/RTP/SAVPF 111\r\na=sendonly\r\n");
        assert!(check_offer(&rejected, true).is_err());
        let many = format!("{no_media}{}", "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendonly\r\n".repeat(MAX_M_LINES + 1));
        assert!(matches!(check_offer(&many, true), Err(SfuError::UnusableOffer(d)) if d.contains("m-lines")));
        let big = format!("{send}a={}\r\n", "x".repeat(MAX_SDP_BYTES));
        assert!(matches!(check_offer(&big, true), Err(SfuError::UnusableOffer(d)) if d.contains("bytes")));
    }
}
