//! A large class over more than one worker, the workers' side ([`ardoise_sfu::fed`] has the
//! rooms' side): a home room here hands each packet it routes to its fan-out rooms' workers as
//! a command, before its own pupils get it; a fan-out room here takes them, its pupils drained
//! once per wake-up, and sends its keyframe requests to its home.

use super::Worker;
use crate::Command;
use ardoise_proto::ClassId;
use ardoise_sfu::{Fed, FedKeyframeRequest, FedShape};
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;
use tracing::info;

/// Where a fan-out room's class has its home.
pub(super) struct FedSource {
    /// The home worker's command queue.
    home: UnboundedSender<Command>,
    /// This worker's own queue, which the home feeds.
    own: UnboundedSender<Command>,
    /// The home's latest shape (a fan-out room made later starts from it).
    pub(super) shape: Option<FedShape>,
}

impl FedSource {
    /// Ask the home to feed this worker's room of `class` (`index`: this worker).
    pub(super) fn subscribe(&self, class: &ClassId, index: usize) {
        let _ = self.home.send(Command::FanOutTo { class: class.clone(), to: index, commands: self.own.clone() });
    }

    /// Tell the home this worker's room of `class` closed.
    pub(super) fn unsubscribe(&self, class: &ClassId, index: usize) {
        let _ = self.home.send(Command::FanOutEnded { class: class.clone(), to: index });
    }
}

impl Worker {
    /// Where `class`'s home room here hands what it routes: a command to each of its fan-out
    /// rooms' workers, per packet, as it comes (`None`: the class has no fan-out room).
    pub(super) fn fan_out_sink(&self, class: &ClassId) -> Option<ardoise_sfu::FanOutSink> {
        let targets: Vec<UnboundedSender<Command>> =
            self.fan_outs.get(class)?.iter().map(|(_, commands)| commands.clone()).collect();
        let (class, counter) = (class.clone(), self.fed_out.clone());
        Some(Box::new(move |item| {
            counter.fetch_add(1, Ordering::Relaxed);
            if let Some((last, others)) = targets.split_last() {
                for commands in others {
                    let _ = commands.send(Command::Fed { class: class.clone(), items: vec![item.clone()] });
                }
                let _ = last.send(Command::Fed { class: class.clone(), items: vec![item] });
            }
        }))
    }

    /// `class`'s home room here (if it has one now) hands over to its fan-out rooms as they
    /// are now (none: it stops), its shape first.
    fn refresh_fan_out(&mut self, class: &ClassId) {
        let sink = self.fan_out_sink(class);
        if let Ok(room) = self.room(class) {
            room.set_fan_out(sink);
        }
    }

    /// `class`'s home room here also feeds its fan-out room on worker `to` (idempotent: the
    /// room hands its shape again).
    pub(super) fn fan_out_to(&mut self, class: ClassId, to: usize, commands: UnboundedSender<Command>) {
        let targets = self.fan_outs.entry(class.clone()).or_default();
        let new = !targets.iter().any(|(i, _)| *i == to);
        targets.retain(|(i, _)| *i != to);
        targets.push((to, commands));
        self.refresh_fan_out(&class);
        if new {
            info!(worker = self.index, class = %class, to, "the class's fan-out reaches another worker");
        }
    }

    /// `class`'s fan-out room on worker `to` closed: the home stops feeding it.
    pub(super) fn fan_out_ended(&mut self, class: ClassId, to: usize) {
        let Some(targets) = self.fan_outs.get_mut(&class) else { return };
        targets.retain(|(i, _)| *i != to);
        if targets.is_empty() {
            self.fan_outs.remove(&class);
        }
        self.refresh_fan_out(&class);
        info!(worker = self.index, class = %class, to, "the class's fan-out room on another worker closed");
    }

    /// This worker's room of `class` is a fan-out room fed from `home` (idempotent). The home
    /// learns where it stands at once: a room here subscribes again (the home may be a fresh
    /// worker), no room unsubscribes (this may be a fresh worker, whose room the home still
    /// feeds; the pupil's `Play` that follows, if any, subscribes again, in order).
    pub(super) fn fed_from(&mut self, class: ClassId, home: UnboundedSender<Command>, own: UnboundedSender<Command>) {
        let shape = self.fed_from.remove(&class).and_then(|s| s.shape);
        let source = FedSource { home, own, shape };
        if self.by_class.contains_key(&class) {
            source.subscribe(&class, self.index);
        } else {
            source.unsubscribe(&class, self.index);
        }
        self.fed_from.insert(class, source);
    }

    /// What `class`'s home handed over: fed to its fan-out room here within this wake-up's
    /// batch ([`Worker::end_fed_batch`]).
    pub(super) fn fed(&mut self, now: Instant, class: ClassId, items: Vec<Fed>) {
        let Some(source) = self.fed_from.get_mut(&class) else { return };
        if let Some(shape) = items.iter().rev().find_map(|i| match i {
            Fed::Shape(s) => Some(s),
            Fed::Packet(_) => None,
        }) {
            source.shape = Some(shape.clone());
        }
        let Some(&slot) = self.by_class.get(&class) else {
            return; // no pupil of the class here now
        };
        let Some(room) = self.rooms[slot].as_mut() else { return };
        if self.hold_until.is_none() && !self.fed_now.contains(&slot) {
            room.begin_batch();
            self.fed_now.push(slot);
        }
        self.stats.fed_in += items.len() as u64;
        // Timed from the home's receipt to this worker's send (at `end_fed_batch`).
        self.arrivals.extend(items.iter().filter_map(|i| match i {
            Fed::Packet(p) => Some(p.received),
            Fed::Shape(_) => None,
        }));
        room.feed(now, items);
    }

    /// Drain the pupils of the fan-out rooms fed in this wake-up (unless a held frame keeps
    /// every room's batch open).
    pub(super) fn end_fed_batch(&mut self) {
        if self.fed_now.is_empty() || self.hold_until.is_some() {
            return;
        }
        let now = Instant::now();
        for slot in std::mem::take(&mut self.fed_now) {
            if let Some(room) = self.rooms[slot].as_mut() {
                room.end_batch(now);
            }
        }
        self.drained_arrivals = self.arrivals.len();
    }

    /// A fan-out room's keyframe requests go to its class's home.
    pub(super) fn ask_homes_for_keyframes(&mut self) {
        for (class, source) in &self.fed_from {
            let Some(room) = self.by_class.get(class).and_then(|&slot| self.rooms[slot].as_mut()) else {
                continue;
            };
            let requests = room.take_fed_keyframe_requests();
            if !requests.is_empty() {
                let _ = source.home.send(Command::FedKeyframes { class: class.clone(), requests });
            }
        }
    }

    /// The home room of `class` here asks its publishers for the keyframes a fan-out room's
    /// pupils need (under its own throttle).
    pub(super) fn fed_keyframes(&mut self, now: Instant, class: ClassId, requests: Vec<FedKeyframeRequest>) {
        if let Ok(room) = self.room(&class) {
            for r in requests {
                room.request_keyframe_of(now, r.publisher, r.ssrc);
            }
        }
    }
}
