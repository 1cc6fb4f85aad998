//! One function per fuzz target: each takes untrusted bytes, drives a parser Ardoise owns,
//! and panics only when a property of that parser breaks. `fuzz/` (its own workspace,
//! nightly, cargo-fuzz) calls them under libFuzzer; `tests/corpora.rs` replays the checked-in
//! corpora and every crash ever found through them on stable, in `make test`.
//!
//! Rule: a target never panics on its input; an `assert!` here states a property (a round
//! trip, a bound), so a failure is a bug in Ardoise, not in the input.

use ardoise_proto::rfc4571::{Framer, frame_into};
use ardoise_proto::{ClassId, ClientEvent, ParticipantId, ServerEvent};
use ardoise_sfu::keyframe::{VideoCodec, is_keyframe_start, vp8_descriptor_len};
use ardoise_sfu::{Room, SfuConfig, sdp_checks};
use std::time::Instant;

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/` call them.
pub const TARGETS: &[(&str, Target)] = &[
    ("sdp_offer", sdp_offer),
    ("sdpfrag", sdpfrag),
    ("class_event", class_event),
    ("token", token),
    ("keyframe", keyframe),
    ("rfc4571", rfc4571),
    ("stun_route", stun_route),
    ("config", config),
];

/// A WHIP/WHEP offer: the pre-checks, then (when they pass) str0m's parser and our answer
/// munging (simulcast layers, RED, header extensions) in a real room. The first byte picks
/// publisher or pupil.
pub fn sdp_offer(data: &[u8]) {
    let Some((&role, rest)) = data.split_first() else { return };
    let Ok(sdp) = std::str::from_utf8(rest) else { return };
    let publisher = role & 1 == 1;
    let _ = sdp_checks::relay_candidates(sdp);
    let _ = sdp_checks::answer_receives_video(sdp);
    let _ = ardoise_server::media_endpoints::sends_video(sdp);
    if sdp_checks::check_offer(sdp, publisher).is_err() {
        return;
    }
    let config = SfuConfig { candidates: vec!["127.0.0.1:5000".parse().expect("an address")], ..Default::default() };
    let mut room = Room::new(ClassId("fuzz".into()), config);
    let now = Instant::now();
    let answer = if publisher {
        room.add_publisher(now, ParticipantId(1), sdp)
    } else {
        room.add_subscriber(now, ParticipantId(1), sdp)
    };
    if let Ok(answer) = answer {
        assert!(answer.starts_with("v=0"), "an answer is SDP: {answer}");
    }
}

/// A WHIP/WHEP PATCH body (trickle-ice-sdpfrag): candidates and ICE restart credentials.
pub fn sdpfrag(data: &[u8]) {
    let Ok(frag) = std::str::from_utf8(data) else { return };
    if let Ok((_, candidates)) = ardoise_server::media_endpoints::parse_sdpfrag(frag) {
        assert!(candidates.len() <= ardoise_server::media_endpoints::MAX_TRICKLED_CANDIDATES);
    }
}

/// A class-events WebSocket message from a page; whatever parses must survive a round trip.
/// The same bytes are also read as a server event, as the studio and the pages read them.
pub fn class_event(data: &[u8]) {
    if let Ok(event) = serde_json::from_slice::<ClientEvent>(data) {
        let text = serde_json::to_string(&event).expect("a client event serializes");
        let again: ClientEvent = serde_json::from_str(&text).expect("a serialized client event parses");
        assert_eq!(again, event, "{text}");
    }
    if let Ok(event) = serde_json::from_slice::<ServerEvent>(data) {
        let text = serde_json::to_string(&event).expect("a server event serializes");
        assert!(serde_json::from_str::<ServerEvent>(&text).is_ok(), "{text}");
    }
}

/// A bearer token: the bytes as a token, then the bytes as claims signed with the server's
/// key (what a leaked key or a confused issuer could produce), through the same checks.
pub fn token(data: &[u8]) {
    const SECRET: &[u8] = b"a fuzzing secret of at least thirty-two bytes";
    let signer = ardoise_server::auth::TokenSigner::new(SECRET, 3600).expect("a usable secret");
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = signer.verify(text);
    }
    if let Ok(claims) = serde_json::from_slice::<serde_json::Value>(data) {
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET).expect("a usable secret");
        if let Ok(signed) = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key)
            && let Ok(c) = signer.verify(&signed)
        {
            assert!(c.class.is_some() || !c.role.is_class_bound(), "a class-bound role without a class: {c:?}");
        }
    }
}

/// An RTP video payload: VP8 and H.264 keyframe detection, the VP8 descriptor's length.
pub fn keyframe(data: &[u8]) {
    let _ = is_keyframe_start(VideoCodec::Vp8, data);
    let _ = is_keyframe_start(VideoCodec::H264, data);
    if let Some(len) = vp8_descriptor_len(data) {
        assert!(len <= data.len(), "a descriptor longer than its payload");
    }
}

/// An ICE-TCP byte stream (RFC 4571), cut into reads of sizes taken from the first bytes:
/// every frame is at most the framer's maximum and frames again to the same bytes.
pub fn rfc4571(data: &[u8]) {
    let Some((&max, rest)) = data.split_first() else { return };
    let max = 16 + usize::from(max) * 8;
    let mut framer = Framer::new(max);
    let mut at = 0;
    let mut cut = 1;
    while at < rest.len() {
        let end = (at + cut).min(rest.len());
        framer.push(&rest[at..end]);
        cut = 1 + usize::from(rest[at]) % 97;
        at = end;
        loop {
            match framer.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= max, "a frame of {} over the maximum {max}", frame.len());
                    let frame = frame.to_vec();
                    let mut out = Vec::new();
                    frame_into(&frame, &mut out);
                    let mut again = Framer::new(max);
                    again.push(&out);
                    assert_eq!(again.next_frame().ok().flatten(), Some(frame.as_slice()));
                }
                Ok(None) => break,
                Err(_) => return, // the connection closes
            }
        }
    }
}

/// A datagram from an unknown address, or an ICE-TCP connection's first frame.
pub fn stun_route(data: &[u8]) {
    if let Some(ufrag) = ardoise_net::stun_route::local_ufrag(data) {
        assert!(ufrag.len() < data.len(), "the ufrag comes from inside the message");
    }
}

/// The configuration loader: a TOML file, then after a NUL byte `KEY=value` lines read as
/// the environment.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (file, env) = text.split_once('\0').unwrap_or((text, ""));
    let env: Vec<(String, String)> =
        env.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    let _ = ardoise_server::config::Config::from_text(Some(("fuzz.toml", file)), env);
}
