//! ClassHub: the live interaction state of every class (who is connected, hands, chat, the
//! floor, lock, layout) and the fan-out of class events to the participants' WebSockets.
//!
//! Pure bookkeeping under one mutex: a handler asks [`ClassHub::handle`] what an event does,
//! gets back the media [`Effect`]s to carry out (close a pupil's sessions, mute, end the class),
//! and the hub has already queued every message to every connection.

use ardoise_proto::events::{LAYOUTS, MAX_CHAT_CHARS};
use ardoise_proto::{
    ChatLine, ClassId, ClassInfo, ClientEvent, ClientKind, ErrorCode, Floor, Member, Role, ServerEvent,
};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::UnboundedSender;

/// Chat lines kept for late joiners.
const CHAT_HISTORY: usize = 50;

/// What a connection's writer task sends.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A serialized [`ServerEvent`].
    Event(Arc<str>),
    /// Close the socket (removed, class ended, replaced by a newer connection).
    Close,
}

/// A media action the caller must carry out after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Close the WHIP sessions of this pupil (floor revoked).
    CloseFloorMedia(String),
    /// Close every session of this pupil and refuse its token from now on (removed).
    Expel(String),
    /// Stop or resume relaying this pupil's voice.
    Mute(String, bool),
    /// End the class.
    EndClass,
}

struct Conn {
    id: u64,
    member: Member,
    tx: UnboundedSender<Outgoing>,
}

#[derive(Default)]
struct HubRoom {
    conns: Vec<Conn>,
    hands: Vec<String>,
    floor: Option<Floor>,
    locked: bool,
    layout: Option<String>,
    chat: VecDeque<ChatLine>,
    live: bool,
}

impl HubRoom {
    fn send_to(&self, pred: impl Fn(&Conn) -> bool, ev: &ServerEvent) {
        let text: Arc<str> = serde_json::to_string(ev).expect("events serialize").into();
        for c in self.conns.iter().filter(|c| pred(c)) {
            let _ = c.tx.send(Outgoing::Event(text.clone()));
        }
    }

    fn broadcast(&self, ev: &ServerEvent) {
        self.send_to(|_| true, ev);
    }

    fn members(&self) -> Vec<Member> {
        let mut seen: Vec<Member> = Vec::new();
        for c in &self.conns {
            if !seen.iter().any(|m| m.id == c.member.id && m.client == c.member.client) {
                seen.push(c.member.clone());
            }
        }
        seen
    }

    fn pupil(&self, id: &str) -> Option<&Member> {
        self.conns.iter().map(|c| &c.member).find(|m| m.id == id && m.role == Role::Pupil)
    }

    fn set_hand(&mut self, id: &str, raised: bool) -> bool {
        let was = self.hands.iter().any(|h| h == id);
        if was == raised {
            return false;
        }
        if raised {
            self.hands.push(id.to_owned());
        } else {
            self.hands.retain(|h| h != id);
        }
        for c in self.conns.iter_mut().filter(|c| c.member.id == id) {
            c.member.hand = raised;
        }
        self.broadcast(&ServerEvent::Hand { id: id.to_owned(), raised });
        true
    }
}

/// Interaction state of every class.
#[derive(Default)]
pub struct ClassHub {
    rooms: Mutex<HashMap<ClassId, HubRoom>>,
    next_conn: AtomicU64,
}

fn error(code: ErrorCode, message: impl Into<String>) -> ServerEvent {
    ServerEvent::Error { code, message: message.into() }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl ClassHub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ClassId, HubRoom>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Register a connection of `member` to `class`; returns its id. The welcome message is
    /// queued first, then everyone else hears `joined`. A pupil's older connection is closed.
    pub fn connect(&self, class: &ClassInfo, mut member: Member, tx: UnboundedSender<Outgoing>) -> u64 {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let mut rooms = self.lock();
        let room = rooms.entry(class.id.clone()).or_default();
        if member.role == Role::Pupil {
            for old in room.conns.iter().filter(|c| c.member.id == member.id && c.member.client == member.client) {
                let _ = old.tx.send(Outgoing::Close);
            }
            room.conns.retain(|c| !(c.member.id == member.id && c.member.client == member.client));
        }
        member.hand = room.hands.contains(&member.id);
        let already = room.conns.iter().any(|c| c.member.id == member.id && c.member.client == member.client);
        let mut members = room.members();
        if !already {
            members.push(member.clone());
        }
        let welcome = ServerEvent::Welcome {
            you: member.clone(),
            class: class.clone(),
            members,
            floor: room.floor.clone(),
            layout: room.layout.clone(),
            locked: room.locked,
            live: room.live,
            chat: room.chat.iter().cloned().collect(),
        };
        let _ = tx.send(Outgoing::Event(serde_json::to_string(&welcome).expect("serialize").into()));
        if !already {
            room.broadcast(&ServerEvent::Joined { member: member.clone() });
        }
        room.conns.push(Conn { id, member, tx });
        id
    }

    /// A connection closed.
    pub fn disconnect(&self, class: &ClassId, conn: u64) {
        let mut rooms = self.lock();
        let Some(room) = rooms.get_mut(class) else { return };
        let Some(pos) = room.conns.iter().position(|c| c.id == conn) else { return };
        let gone = room.conns.remove(pos).member;
        if !room.conns.iter().any(|c| c.member.id == gone.id && c.member.client == gone.client) {
            room.broadcast(&ServerEvent::Left { id: gone.id.clone() });
            if !room.conns.iter().any(|c| c.member.id == gone.id) {
                room.set_hand(&gone.id, false);
            }
        }
    }

    /// Whether new pupils are refused.
    pub fn is_locked(&self, class: &ClassId) -> bool {
        self.lock().get(class).is_some_and(|r| r.locked)
    }

    /// Who holds the floor in `class`.
    pub fn floor(&self, class: &ClassId) -> Option<Floor> {
        self.lock().get(class).and_then(|r| r.floor.clone())
    }

    /// Connected members of `class` (admin view).
    pub fn members(&self, class: &ClassId) -> Vec<Member> {
        self.lock().get(class).map(|r| r.members()).unwrap_or_default()
    }

    /// Send `ev` to every connection of member `id` only.
    pub fn tell(&self, class: &ClassId, id: &str, ev: &ServerEvent) {
        if let Some(room) = self.lock().get(class) {
            room.send_to(|c| c.member.id == id, ev);
        }
    }

    /// The class picture started or stopped.
    pub fn set_live(&self, class: &ClassId, live: bool) {
        let mut rooms = self.lock();
        let room = rooms.entry(class.clone()).or_default();
        if room.live != live {
            room.live = live;
            room.broadcast(&ServerEvent::Live { live });
        }
    }

    /// The class ended: tell everyone and close every connection.
    pub fn end(&self, class: &ClassId) {
        if let Some(room) = self.lock().remove(class) {
            room.broadcast(&ServerEvent::ClassEnded);
            for c in &room.conns {
                let _ = c.tx.send(Outgoing::Close);
            }
        }
    }

    /// Apply one event from connection `conn`. Replies and broadcasts are queued; the media
    /// effects are returned for the caller to carry out.
    pub fn handle(&self, class: &ClassId, conn: u64, event: ClientEvent) -> Vec<Effect> {
        let mut rooms = self.lock();
        let Some(room) = rooms.get_mut(class) else { return Vec::new() };
        let Some(me) = room.conns.iter().find(|c| c.id == conn).map(|c| (c.member.clone(), c.tx.clone())) else {
            return Vec::new();
        };
        let (me, tx) = me;
        let reply = |ev: ServerEvent| {
            let _ = tx.send(Outgoing::Event(serde_json::to_string(&ev).expect("serialize").into()));
        };
        let teacher = matches!(me.role, Role::Teacher | Role::Admin);
        let teacher_only = |what: &str| error(ErrorCode::Forbidden, format!("only the teacher may {what}"));
        let mut effects = Vec::new();
        match event {
            ClientEvent::Hello { .. } => reply(error(ErrorCode::Invalid, "hello was already received")),
            ClientEvent::Ping => reply(ServerEvent::Pong),
            ClientEvent::RaiseHand => {
                if me.role != Role::Pupil {
                    reply(error(ErrorCode::Forbidden, "only pupils raise a hand"));
                } else {
                    room.set_hand(&me.id, true);
                }
            }
            ClientEvent::LowerHand { pupil } => match pupil {
                Some(p) if p != me.id && !teacher => reply(teacher_only("lower another pupil's hand")),
                Some(p) => {
                    room.set_hand(&p, false);
                }
                None => {
                    room.set_hand(&me.id, false);
                }
            },
            ClientEvent::Chat { text } => {
                let text = text.trim();
                let n = text.chars().count();
                if n == 0 || n > MAX_CHAT_CHARS {
                    reply(error(ErrorCode::Invalid, format!("a chat message has 1 to {MAX_CHAT_CHARS} characters")));
                } else if text.chars().any(|c| c.is_control() && c != '\n') {
                    reply(error(ErrorCode::Invalid, "a chat message may not hold control characters"));
                } else {
                    let line =
                        ChatLine { id: me.id.clone(), name: me.name.clone(), role: me.role, text: text.to_owned(), at: now_ms() };
                    if room.chat.len() == CHAT_HISTORY {
                        room.chat.pop_front();
                    }
                    room.chat.push_back(line.clone());
                    room.broadcast(&ServerEvent::Chat(line));
                }
            }
            ClientEvent::Quality { level } => {
                for c in room.conns.iter_mut().filter(|c| c.member.id == me.id) {
                    c.member.quality = Some(level);
                }
                room.send_to(
                    |c| matches!(c.member.role, Role::Teacher | Role::Admin),
                    &ServerEvent::Quality { id: me.id.clone(), level },
                );
            }
            ClientEvent::GrantFloor { pupil, camera } => {
                if !teacher {
                    reply(teacher_only("give the floor"));
                } else if let Some(m) = room.pupil(&pupil) {
                    let name = m.name.clone();
                    if let Some(prev) = room.floor.take().filter(|f| f.pupil != pupil) {
                        effects.push(Effect::CloseFloorMedia(prev.pupil));
                    }
                    room.floor = Some(Floor { pupil: pupil.clone(), name, camera, muted: false });
                    room.set_hand(&pupil, false);
                    room.broadcast(&ServerEvent::Floor { floor: room.floor.clone() });
                } else {
                    reply(error(ErrorCode::NotFound, "no such pupil connected"));
                }
            }
            ClientEvent::RevokeFloor { pupil } => {
                if !teacher {
                    reply(teacher_only("take the floor back"));
                } else if room.floor.as_ref().is_some_and(|f| f.pupil == pupil) {
                    room.floor = None;
                    effects.push(Effect::CloseFloorMedia(pupil));
                    room.broadcast(&ServerEvent::Floor { floor: None });
                } else {
                    reply(error(ErrorCode::NotFound, "this pupil does not hold the floor"));
                }
            }
            ClientEvent::Mute { pupil, muted } => {
                if !teacher {
                    reply(teacher_only("mute a pupil"));
                } else if let Some(f) = room.floor.as_mut().filter(|f| f.pupil == pupil) {
                    f.muted = muted;
                    effects.push(Effect::Mute(pupil, muted));
                    room.broadcast(&ServerEvent::Floor { floor: room.floor.clone() });
                } else {
                    reply(error(ErrorCode::NotFound, "this pupil does not hold the floor"));
                }
            }
            ClientEvent::Remove { pupil } => {
                if !teacher {
                    reply(teacher_only("remove a pupil"));
                } else if room.pupil(&pupil).is_none() {
                    reply(error(ErrorCode::NotFound, "no such pupil connected"));
                } else {
                    effects.push(Effect::Expel(pupil.clone()));
                    room.set_hand(&pupil, false);
                    if room.floor.as_ref().is_some_and(|f| f.pupil == pupil) {
                        room.floor = None;
                        room.broadcast(&ServerEvent::Floor { floor: None });
                    }
                    room.broadcast(&ServerEvent::Removed { id: pupil.clone() });
                    for c in room.conns.iter().filter(|c| c.member.id == pupil) {
                        let _ = c.tx.send(Outgoing::Close);
                    }
                    room.conns.retain(|c| c.member.id != pupil);
                }
            }
            ClientEvent::Lock { locked } => {
                if !teacher {
                    reply(teacher_only("lock the class"));
                } else {
                    room.locked = locked;
                    room.broadcast(&ServerEvent::Locked { locked });
                }
            }
            ClientEvent::SetLayout { layout } => {
                if !teacher {
                    reply(teacher_only("change the layout"));
                } else if !LAYOUTS.contains(&layout.as_str()) {
                    reply(error(ErrorCode::Invalid, format!("unknown layout '{layout}' ({})", LAYOUTS.join(", "))));
                } else {
                    room.layout = Some(layout.clone());
                    room.broadcast(&ServerEvent::Layout { layout });
                }
            }
            ClientEvent::EndClass => {
                if !teacher {
                    reply(teacher_only("end the class"));
                } else {
                    effects.push(Effect::EndClass);
                }
            }
        }
        effects
    }
}

/// A member for `claims`-like facts.
pub fn member(id: &str, role: Role, name: Option<&str>, client: ClientKind) -> Member {
    let name = match (name, role, client) {
        (Some(n), _, _) => n.to_owned(),
        (None, _, ClientKind::Studio) => "Studio".to_owned(),
        (None, Role::Teacher, _) => "Enseignant·e".to_owned(),
        (None, Role::Admin, _) => "Admin".to_owned(),
        (None, Role::Pupil, _) => "Élève".to_owned(),
    };
    Member { id: id.to_owned(), name, role, hand: false, quality: None, client }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ardoise_proto::{ClassState, JoinCode, Quality};
    use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

    fn class() -> ClassInfo {
        ClassInfo { id: ClassId("c".into()), code: JoinCode("c".into()), title: "C".into(), state: ClassState::Open }
    }

    fn join(hub: &ClassHub, id: &str, role: Role) -> (u64, UnboundedReceiver<Outgoing>) {
        let (tx, rx) = unbounded_channel();
        let name = (role == Role::Pupil).then_some(id);
        (hub.connect(&class(), member(id, role, name, ClientKind::Browser), tx), rx)
    }

    fn drain(rx: &mut UnboundedReceiver<Outgoing>) -> Vec<ServerEvent> {
        let mut out = Vec::new();
        while let Ok(m) = rx.try_recv() {
            if let Outgoing::Event(t) = m {
                out.push(serde_json::from_str(&t).unwrap());
            }
        }
        out
    }

    #[test]
    fn hands_chat_and_floor() {
        let hub = ClassHub::default();
        let id = class().id;
        let (t, mut trx) = join(&hub, "teacher", Role::Teacher);
        let (a, mut arx) = join(&hub, "alice", Role::Pupil);
        assert!(matches!(drain(&mut arx)[0], ServerEvent::Welcome { ref members, .. } if members.len() == 2));
        assert!(drain(&mut trx).contains(&ServerEvent::Joined { member: member("alice", Role::Pupil, Some("alice"), ClientKind::Browser) }));

        assert!(hub.handle(&id, a, ClientEvent::RaiseHand).is_empty());
        assert!(drain(&mut trx).contains(&ServerEvent::Hand { id: "alice".into(), raised: true }));

        hub.handle(&id, a, ClientEvent::Quality { level: Quality::Weak });
        assert!(drain(&mut trx).contains(&ServerEvent::Quality { id: "alice".into(), level: Quality::Weak }));
        assert!(!drain(&mut arx).iter().any(|e| matches!(e, ServerEvent::Quality { .. })), "quality goes to teachers only");

        // A pupil may not give the floor.
        hub.handle(&id, a, ClientEvent::GrantFloor { pupil: "alice".into(), camera: false });
        assert!(matches!(drain(&mut arx)[..], [ServerEvent::Error { code: ErrorCode::Forbidden, .. }]));

        hub.handle(&id, t, ClientEvent::GrantFloor { pupil: "alice".into(), camera: false });
        let got = drain(&mut arx);
        assert!(got.contains(&ServerEvent::Hand { id: "alice".into(), raised: false }), "granting lowers the hand");
        assert!(got.iter().any(|e| matches!(e, ServerEvent::Floor { floor: Some(f) } if f.pupil == "alice")));
        assert_eq!(hub.floor(&id).unwrap().name, "alice");

        assert_eq!(hub.handle(&id, t, ClientEvent::Mute { pupil: "alice".into(), muted: true }), vec![Effect::Mute("alice".into(), true)]);
        assert_eq!(hub.handle(&id, t, ClientEvent::RevokeFloor { pupil: "alice".into() }), vec![Effect::CloseFloorMedia("alice".into())]);
        assert!(hub.floor(&id).is_none());

        hub.handle(&id, a, ClientEvent::Chat { text: "  bonjour ".into() });
        let chat = drain(&mut trx).into_iter().find_map(|e| if let ServerEvent::Chat(c) = e { Some(c) } else { None });
        assert_eq!(chat.unwrap().text, "bonjour");
        hub.handle(&id, a, ClientEvent::Chat { text: "x".repeat(501) });
        assert!(matches!(drain(&mut arx).last(), Some(ServerEvent::Error { code: ErrorCode::Invalid, .. })));

        // Late joiners get the chat history.
        let (_, mut brx) = join(&hub, "bruno", Role::Pupil);
        assert!(matches!(&drain(&mut brx)[0], ServerEvent::Welcome { chat, .. } if chat.len() == 1));
    }

    #[test]
    fn removing_a_pupil_closes_it_and_expels_its_media() {
        let hub = ClassHub::default();
        let id = class().id;
        let (t, _trx) = join(&hub, "teacher", Role::Teacher);
        let (_, mut crx) = join(&hub, "chloe", Role::Pupil);
        hub.handle(&id, t, ClientEvent::GrantFloor { pupil: "chloe".into(), camera: true });
        assert_eq!(hub.handle(&id, t, ClientEvent::Remove { pupil: "chloe".into() }), vec![Effect::Expel("chloe".into())]);
        let mut got = Vec::new();
        while let Ok(m) = crx.try_recv() {
            got.push(m);
        }
        assert!(matches!(got.last(), Some(Outgoing::Close)));
        assert!(got.iter().any(|m| matches!(m, Outgoing::Event(t) if t.contains("\"removed\""))));
        assert!(hub.floor(&id).is_none());
        assert!(hub.members(&id).iter().all(|m| m.id != "chloe"));
        assert_eq!(hub.handle(&id, t, ClientEvent::Remove { pupil: "chloe".into() }), vec![]);
    }

    #[test]
    fn lock_layout_and_end() {
        let hub = ClassHub::default();
        let id = class().id;
        let (t, mut trx) = join(&hub, "teacher", Role::Teacher);
        let (p, mut prx) = join(&hub, "p", Role::Pupil);
        hub.handle(&id, p, ClientEvent::Lock { locked: true });
        assert!(!hub.is_locked(&id));
        hub.handle(&id, t, ClientEvent::Lock { locked: true });
        assert!(hub.is_locked(&id));
        hub.handle(&id, t, ClientEvent::SetLayout { layout: "sideways".into() });
        assert!(matches!(drain(&mut trx).last(), Some(ServerEvent::Error { code: ErrorCode::Invalid, .. })));
        hub.handle(&id, t, ClientEvent::SetLayout { layout: "document+camera".into() });
        assert!(drain(&mut prx).contains(&ServerEvent::Layout { layout: "document+camera".into() }));
        assert_eq!(hub.handle(&id, t, ClientEvent::EndClass), vec![Effect::EndClass]);
        hub.end(&id);
        let mut last = None;
        while let Ok(m) = prx.try_recv() {
            last = Some(m);
        }
        assert!(matches!(last, Some(Outgoing::Close)));
        assert!(!hub.is_locked(&id), "an ended class forgets its state");
    }

    #[test]
    fn a_pupil_reconnecting_replaces_its_old_connection() {
        let hub = ClassHub::default();
        let id = class().id;
        let (_t, mut trx) = join(&hub, "teacher", Role::Teacher);
        let (old, mut orx) = join(&hub, "p", Role::Pupil);
        hub.handle(&id, old, ClientEvent::RaiseHand);
        let (_new, mut nrx) = join(&hub, "p", Role::Pupil);
        assert!(std::iter::from_fn(|| orx.try_recv().ok()).any(|m| matches!(m, Outgoing::Close)));
        assert!(matches!(&drain(&mut nrx)[0], ServerEvent::Welcome { you, .. } if you.hand), "the hand stays up");
        hub.disconnect(&id, old); // the old socket's late close changes nothing
        assert!(!drain(&mut trx).iter().any(|e| matches!(e, ServerEvent::Left { .. })));
        assert_eq!(hub.members(&id).len(), 2);
    }
}
