//! The floor: a pupil the teacher lets speak publishes its voice as a floor publisher. Every
//! pupil hears it on its second audio m-line, the studio (feed = floor) on its first; the class
//! sound keeps its own m-line; muting stops the relay at once; the class stays the class; a
//! recording copies the class's programme, never the floor pupil's voice.

use ardoise_proto::{ClassId, ParticipantId};
use ardoise_sfu::sim::{SimClient, connect_all, pump};
use ardoise_sfu::{Feed, PublisherRole, Room, SfuConfig};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind};
use str0m::rtp::RtpWrite;

const CLASS_ID_BASE: u32 = 0;
const FLOOR_ID_BASE: u32 = 1 << 30;

fn addr(port: u16) -> SocketAddr {
    format!("127.0.0.1:{port}").parse().unwrap()
}

/// Write one 20 ms Opus-sized packet carrying `id` on the client's first audio m-line.
fn send_audio(c: &mut SimClient, now: Instant, seq: u64, id: u32) {
    let opus = c.rtc.codec_config().find(|p| p.spec().codec == Codec::Opus).unwrap().pt();
    let mut payload = vec![0u8; 60];
    payload[2..6].copy_from_slice(&id.to_be_bytes());
    let mid = c.mids.0;
    let mut api = c.rtc.direct_api();
    let tx = api.stream_tx_by_mid(mid, None).expect("audio send stream");
    tx.write_rtp(RtpWrite::new(opus, seq.into(), seq as u32 * 960, now, payload));
    c.drain(now);
}

fn count(c: &SimClient, m: usize, base: u32) -> usize {
    let mid = c.all_mids[m];
    c.received_by_mid.get(&mid).map_or(0, |ids| ids.iter().filter(|&&i| i & FLOOR_ID_BASE == base).count())
}

#[test]
fn floor_voice_reaches_pupils_and_studio_and_mute_stops_it() {
    let t0 = Instant::now();
    let mut room = Room::new(ClassId("floor".into()), SfuConfig { candidates: vec![addr(5000)], ..Default::default() });
    let teacher = SimClient::join(&mut room, t0, addr(6000), 1, true);
    let floor = SimClient::negotiate(t0, addr(6001), &[(MediaKind::Audio, Direction::SendOnly)], |sdp| {
        room.add_publisher_as(t0, ParticipantId(2), sdp, PublisherRole::Floor).unwrap()
    });
    let recv = Direction::RecvOnly;
    let pupil = SimClient::negotiate(
        t0,
        addr(7000),
        &[(MediaKind::Audio, recv), (MediaKind::Video, recv), (MediaKind::Audio, recv)],
        |sdp| room.add_subscriber(t0, ParticipantId(3), sdp).unwrap(),
    );
    let studio = SimClient::negotiate(t0, addr(7001), &[(MediaKind::Audio, recv)], |sdp| {
        room.add_subscriber_to(t0, ParticipantId(4), sdp, None, Feed::Floor).unwrap()
    });
    let mut clients = vec![teacher, floor, pupil, studio];
    let mut now = connect_all(&mut room, &mut clients, t0);
    assert!(room.is_live(), "the teacher publishes the class");

    let mut seq = 1u64;
    let mut run = |room: &mut Room, clients: &mut Vec<SimClient>, now: &mut Instant, ms: u64| {
        let end = *now + Duration::from_millis(ms);
        while *now < end {
            *now += Duration::from_millis(20);
            send_audio(&mut clients[0], *now, seq, CLASS_ID_BASE + seq as u32);
            send_audio(&mut clients[1], *now, seq, FLOOR_ID_BASE + seq as u32);
            seq += 1;
            for _ in 0..5 {
                pump(room, clients, *now);
            }
        }
    };
    // The class is recorded meanwhile: the recording copies the teacher's programme, never
    // the pupil's voice on the floor.
    room.set_recording(now, true);
    run(&mut room, &mut clients, &mut now, 2000);
    let tapped: Vec<u32> =
        room.take_tapped().iter().map(|p| u32::from_be_bytes(p.payload[2..6].try_into().unwrap())).collect();
    assert!(tapped.len() >= 95, "the class sound is recorded: {} packets", tapped.len());
    assert!(tapped.iter().all(|id| id & FLOOR_ID_BASE == CLASS_ID_BASE), "a pupil's voice is never recorded");
    let (pupil, studio) = (&clients[2], &clients[3]);
    let class_on_first = count(pupil, 0, CLASS_ID_BASE);
    let floor_on_third = count(pupil, 2, FLOOR_ID_BASE);
    assert!(class_on_first >= 95, "the class sound on the pupil's 1st audio m-line: {class_on_first}");
    assert!(floor_on_third >= 95, "the floor voice on the pupil's 2nd audio m-line: {floor_on_third}");
    assert_eq!(count(pupil, 0, FLOOR_ID_BASE), 0, "the floor never replaces the class sound");
    assert_eq!(count(pupil, 2, CLASS_ID_BASE), 0, "the class sound never goes to the floor m-line");
    assert!(count(studio, 0, FLOOR_ID_BASE) >= 95, "the studio hears the floor");
    assert_eq!(count(studio, 0, CLASS_ID_BASE), 0, "the studio does not get its own sound back");

    room.set_muted(ParticipantId(2), true).unwrap();
    let before = (count(&clients[2], 2, FLOOR_ID_BASE), count(&clients[3], 0, FLOOR_ID_BASE));
    let class_before = count(&clients[2], 0, CLASS_ID_BASE);
    run(&mut room, &mut clients, &mut now, 1000);
    assert_eq!(count(&clients[2], 2, FLOOR_ID_BASE), before.0, "muted: nothing more relayed to pupils");
    assert_eq!(count(&clients[3], 0, FLOOR_ID_BASE), before.1, "muted: nothing more relayed to the studio");
    assert!(count(&clients[2], 0, CLASS_ID_BASE) >= class_before + 45, "the class sound goes on");

    room.set_muted(ParticipantId(2), false).unwrap();
    run(&mut room, &mut clients, &mut now, 1000);
    assert!(count(&clients[2], 2, FLOOR_ID_BASE) >= before.0 + 45, "unmuted: the voice is back");
    assert!(room.set_muted(ParticipantId(3), true).is_err(), "a subscriber cannot be muted");

    // The floor pupil leaving does not end the class.
    room.remove(now, ParticipantId(2)).unwrap();
    clients.remove(1);
    for _ in 0..10 {
        now += Duration::from_millis(20);
        pump(&mut room, &mut clients, now);
    }
    assert!(room.is_live());
    assert_eq!(room.len(), 3);
}

/// Issue 11, hole 7: a pupil given the floor with the microphone only cannot slip a video
/// m-line past the grant, whether it is plain or hidden as port 0 + `a=bundle-only`.
#[test]
fn a_floor_camera_needs_the_grant() {
    let t0 = Instant::now();
    let mut room =
        Room::new(ClassId("floor-cam".into()), SfuConfig { candidates: vec![addr(5000)], ..Default::default() });
    let send = Direction::SendOnly;
    let offered = offer(t0, &[(MediaKind::Audio, send), (MediaKind::Video, send)]);
    let refused = room.add_publisher_as(t0, ParticipantId(2), &offered, PublisherRole::Floor);
    assert!(matches!(refused, Err(ardoise_sfu::SfuError::NotGranted(_))), "{refused:?}");
    // The same video line hidden behind port 0 + bundle-only.
    let hidden = hide_video(&offered);
    assert!(hidden.contains("m=video 0 "), "{hidden}");
    let refused = room.add_publisher_as(t0, ParticipantId(3), &hidden, PublisherRole::Floor);
    assert!(
        !matches!(refused, Ok(ref answer) if ardoise_sfu::sdp_checks::answer_receives_video(answer)),
        "{refused:?}"
    );
    // With the camera granted, the same offer is accepted.
    let answer = room.add_publisher_granted(t0, ParticipantId(4), &offered, PublisherRole::Floor, true).unwrap();
    assert!(ardoise_sfu::sdp_checks::answer_receives_video(&answer));
    // Audio only is always fine.
    let audio_offer = offer(t0, &[(MediaKind::Audio, send)]);
    assert!(room.add_publisher_as(t0, ParticipantId(5), &audio_offer, PublisherRole::Floor).is_ok());
}

/// A str0m offer with these m-lines.
fn offer(now: Instant, media: &[(MediaKind, Direction)]) -> String {
    let mut rtc = str0m::Rtc::builder().build(now);
    rtc.add_local_candidate(str0m::Candidate::host(addr(6002), "udp").unwrap());
    let mut api = rtc.sdp_api();
    for (k, d) in media {
        api.add_media(*k, *d, None, None, None);
    }
    api.apply().unwrap().0.to_sdp_string()
}

/// The video m-line of `sdp` with port 0 and `a=bundle-only`, as the probe sent it.
fn hide_video(sdp: &str) -> String {
    let mut out = String::new();
    for line in sdp.split("\r\n").filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("m=video ") {
            let after_port = rest.split_once(' ').map(|x| x.1).unwrap_or("");
            out.push_str(&format!("m=video 0 {after_port}\r\na=bundle-only\r\n"));
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}
