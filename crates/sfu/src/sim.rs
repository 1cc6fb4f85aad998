//! Simulated-time peers for tests and benchmarks (feature `sim`): str0m clients negotiated
//! with a [`Room`] in memory, exchanging datagrams through whatever link the caller models.

use crate::Room;
use ardoise_proto::ParticipantId;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

/// A datagram in flight.
#[derive(Clone, Debug)]
pub struct Datagram {
    /// Sender.
    pub from: SocketAddr,
    /// Receiver.
    pub to: SocketAddr,
    /// Bytes.
    pub data: Vec<u8>,
}

impl AsRef<[u8]> for Datagram {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

/// A str0m client (publisher or subscriber) in simulated time.
pub struct SimClient {
    /// The connection.
    pub rtc: Rtc,
    /// Its address.
    pub addr: SocketAddr,
    /// Next str0m timeout.
    pub timeout: Instant,
    /// Datagrams it sent, for the caller to deliver.
    pub outbox: Vec<Datagram>,
    /// ICE + DTLS up.
    pub connected: bool,
    /// A keyframe request arrived (publishers).
    pub keyframe_wanted: bool,
    /// Ids (bytes 2..6 of the payload) of RTP packets received.
    pub received: HashSet<u32>,
    /// Audio and video m-lines (the first of each kind).
    pub mids: (Mid, Mid),
    /// Every m-line, in offer order.
    pub all_mids: Vec<Mid>,
    /// Ids of the packets received, per m-line.
    pub received_by_mid: HashMap<Mid, Vec<u32>>,
}

impl SimClient {
    /// A client at `addr` negotiated with `room` as participant `pid` (publisher or subscriber).
    pub fn join(room: &mut Room, now: Instant, addr: SocketAddr, pid: u64, publish: bool) -> SimClient {
        let dir = if publish { Direction::SendOnly } else { Direction::RecvOnly };
        Self::negotiate(now, addr, &[(MediaKind::Audio, dir), (MediaKind::Video, dir)], |sdp| {
            if publish {
                room.add_publisher(now, ParticipantId(pid), sdp)
            } else {
                room.add_subscriber_with_layer(now, ParticipantId(pid), sdp, crate::LayerChoice::High)
            }
            .expect("room accepts the offer")
        })
    }

    /// A client offering `media` (in order), answered by `accept` (which adds it to a room).
    pub fn negotiate(
        now: Instant,
        addr: SocketAddr,
        media: &[(MediaKind, Direction)],
        accept: impl FnOnce(&str) -> String,
    ) -> SimClient {
        Self::negotiate_simulcast(now, addr, media, &[], accept)
    }

    /// The same, sending its video m-lines as simulcast over `rids` (when two or more).
    pub fn negotiate_simulcast(
        now: Instant,
        addr: SocketAddr,
        media: &[(MediaKind, Direction)],
        rids: &[&str],
        accept: impl FnOnce(&str) -> String,
    ) -> SimClient {
        let mut rtc = Rtc::builder().set_rtp_mode(true).build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("host candidate"));
        let mut api = rtc.sdp_api();
        let simulcast = |k: MediaKind| {
            (k == MediaKind::Video && rids.len() > 1).then(|| str0m::media::Simulcast {
                send: rids.iter().map(|r| str0m::media::SimulcastLayer::new(r)).collect(),
                recv: vec![],
            })
        };
        let all_mids: Vec<Mid> = media.iter().map(|(k, d)| api.add_media(*k, *d, None, None, simulcast(*k))).collect();
        let first = |kind: MediaKind| media.iter().zip(&all_mids).find(|((k, _), _)| *k == kind).map(|(_, m)| *m);
        let audio = first(MediaKind::Audio).unwrap_or_else(|| all_mids[0]);
        let video = first(MediaKind::Video).unwrap_or_else(|| all_mids[0]);
        let (offer, pending) = api.apply().expect("offer");
        let answer = accept(&offer.to_sdp_string());
        let answer = str0m::change::SdpAnswer::from_sdp_string(&answer).expect("answer parses");
        rtc.sdp_api().accept_answer(pending, answer).expect("answer accepted");
        let mut c = SimClient {
            rtc,
            addr,
            timeout: now,
            outbox: Vec::new(),
            connected: false,
            keyframe_wanted: false,
            received: HashSet::new(),
            mids: (audio, video),
            all_mids,
            received_by_mid: HashMap::new(),
        };
        c.drain(now);
        c
    }

    /// Poll str0m to its timeout, collecting transmits and noting events.
    pub fn drain(&mut self, now: Instant) {
        let _ = now;
        loop {
            match self.rtc.poll_output().expect("client poll") {
                Output::Timeout(t) => {
                    self.timeout = t;
                    break;
                }
                Output::Transmit(t) => {
                    self.outbox.push(Datagram { from: t.source, to: t.destination, data: t.contents.to_vec() })
                }
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::RtpPacket(p)) => {
                    if p.payload.len() >= 6 {
                        let id = u32::from_be_bytes(p.payload[2..6].try_into().unwrap());
                        self.received.insert(id);
                        let mid =
                            self.rtc.direct_api().stream_rx(&p.header.ssrc).map(|rx| rx.mid()).unwrap_or(self.mids.0);
                        self.received_by_mid.entry(mid).or_default().push(id);
                    }
                }
                Output::Event(Event::KeyframeRequest(_)) => self.keyframe_wanted = true,
                Output::Event(_) => {}
            }
        }
    }

    /// Deliver a datagram to this client.
    pub fn receive(&mut self, now: Instant, d: &Datagram) {
        let r = Receive::new(Protocol::Udp, d.from, d.to, &d.data).expect("datagram");
        self.rtc.handle_input(Input::Receive(now, r)).expect("client input");
        self.drain(now);
    }

    /// Drive str0m's timeout if due.
    pub fn tick(&mut self, now: Instant) {
        if self.timeout <= now {
            self.rtc.handle_input(Input::Timeout(now)).expect("client timeout");
            self.drain(now);
        }
    }
}

/// Deliver one client datagram to the room.
pub fn to_room(room: &mut Room, now: Instant, d: &Datagram) {
    let pid = room.find(now, d.from, d.to, &d.data).expect("datagram for a known participant");
    room.handle_receive(now, pid, d.from, d.to, &d.data).expect("room input");
}

/// Exchange datagrams with no loss or delay (stepping time by 1 ms) until every client is connected.
pub fn connect_all(room: &mut Room, clients: &mut [SimClient], mut now: Instant) -> Instant {
    let deadline = now + Duration::from_secs(10);
    while !clients.iter().all(|c| c.connected) {
        assert!(now < deadline, "clients did not connect within 10 s of simulated time");
        now += Duration::from_millis(1);
        pump(room, clients, now);
    }
    now
}

/// One step of a perfect network: client outboxes to the room, room transmits to clients, timeouts.
pub fn pump(room: &mut Room, clients: &mut [SimClient], now: Instant) {
    for c in clients.iter_mut() {
        c.tick(now);
        for d in std::mem::take(&mut c.outbox) {
            to_room(room, now, &d);
        }
    }
    if room.poll_timeout().is_some_and(|t| t <= now) {
        room.handle_timeout(now);
    }
    for t in room.take_transmits() {
        if let Some(c) = clients.iter_mut().find(|c| c.addr == t.destination) {
            c.receive(now, &Datagram { from: t.source, to: t.destination, data: t.contents.to_vec() });
        }
    }
}
