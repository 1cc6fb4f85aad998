//! Per-pupil bandwidth adaptation: which media a pupil's link can carry.
//!
//! One [`BandwidthAllocator`] per pupil (subscriber) turns str0m's send-side bandwidth
//! estimate (GCC over TWCC) toward that pupil into an [`Allocation`]: which simulcast layer of
//! the class video to forward, whether to forward the floor pupil's camera, whether to ask
//! str0m to probe for more bandwidth, and whether the pupil is on audio only (and why).
//!
//! Priorities: audio always (a fixed reserve is kept for it) > class video (document camera,
//! screen or the studio mix) > the camera of the pupil holding the floor. The allocator walks
//! a ladder of levels, cheapest first:
//!
//! ```text
//! audio only  <  class Low  <  class Medium  <  class High  <  class top layer + floor camera
//! ```
//!
//! Absent layers (two-layer simulcast, a single stream, no floor camera) are not on the ladder,
//! and the pupil's [`PupilCap`] cuts its top. Each level costs what its video costs (measured
//! with a [`BitrateMeter`](crate::BitrateMeter) per layer, or a nominal value) plus the audio
//! reserve. Decisions, with an estimate `e`:
//!
//! - **Down, at once**: on the first `e` below the current level's *stay* need,
//!   `down_margin × video + audio_reserve`, go to the highest level whose stay need `e` meets
//!   (so the floor camera goes first and the class layer stays if it still fits), or to audio
//!   only. A capacity drop thus costs one estimate, well under a second (see the wiring notes
//!   below on which estimate to feed).
//! - **Up, after a hold**: a level becomes eligible once `e` has stayed at or above its *up*
//!   need, `up_headroom × video + audio_reserve`, for `up_hold` without a break. The highest
//!   eligible level is taken, in one switch, unless a still higher level is also being held
//!   (then the allocator waits for it, so a recovering estimate gives one switch, not two).
//! - **Back-off**: a down-switch within `failed_up_window` of an up-switch means the up-switch
//!   was premature. The first one may be a genuine capacity drop and costs nothing; from the
//!   second in a row, the hold doubles each time (up to `up_hold_max`), until an up-switch
//!   survives the window. This, with the gap between the up and stay needs, keeps a noisy
//!   estimate from flapping layers.
//! - **Audio only**: below `audio_only_below_bps`, or when even the lowest video level does not
//!   fit, only audio is sent ([`AudioOnlyReason::WeakConnection`]); video comes back by the same
//!   up rule. With the studio's 150 kbit/s low layer the lowest level stays down to
//!   0.9 × 150k + 64k ≈ 199 kbit/s; the 100 kbit/s floor matters for cheaper low layers.
//! - **Probe**: when the top level does not fit `e`, ask for a probe toward `probe_factor` ×
//!   the top level's up need ([`Allocation::probe_bps`]) for `probe_duration`, at most every
//!   `probe_interval`, and not within one interval of a down-switch. A link that recovered is
//!   found within about `probe_interval + probe_duration + up_hold` (4.5 s with the defaults).
//! - **Probed hold**: support that began with a step of the estimate (≥ `probe_step` × the
//!   previous one in one update — a probe's measured result, not GCC's slow additive growth)
//!   waits only `probed_hold` (backed off like `up_hold`): from 180p, each probe at most
//!   doubles str0m's estimate, so a recovered link is climbed in a few probe steps.
//!
//! Everything is pure: time is an input, nothing is read or sent here.
//!
//! # Wiring (str0m 0.25)
//!
//! - Build the pupil's `Rtc` with `.enable_bwe(Some(Bitrate::kbps(500)))` (TWCC is then
//!   negotiated; str0m probes at 3× and 6× the start value by itself).
//! - Feed estimates with [`BandwidthAllocator::on_estimate`]: `PeerStats::bwe_tx` (the raw
//!   estimate, `Event::PeerStats`, every stats interval; 500 ms is a good interval for pupils)
//!   and/or `Event::EgressBitrateEstimate(BweKind::Twcc { estimate, can_probe: true })`. The
//!   latter is a 3 s average emitted on 5 % changes: alone it reacts to a drop in up to ~3 s.
//! - Call [`BandwidthAllocator::poll`] when [`BandwidthAllocator::next_timeout`] falls due, and
//!   whenever the available video changes (a layer pauses, the floor camera comes or goes).
//! - On [`Changes::video`]: set the subscription's layer / floor forwarding; the forwarder
//!   switches at the new layer's next keyframe (request one through the layer's
//!   `KeyframeThrottle`, or serve a cached one).
//! - On [`Changes::bwe`]: `rtc.bwe().set_bitrate(Bitrate::ZERO, Bitrate::bps(desired_bps()))`.
//!   Raising the desired bitrate above the estimate makes str0m send an allocation probe
//!   (1× and 2× desired, capped at 2× the estimate, then exponential further probes while they
//!   succeed); going back down at the end of the probe window re-arms the next one. To add
//!   sustained padding during the window, pass `probe_bps` as the minimum too.
//! - On [`Changes::audio_only`]: tell the pupil page ([`Allocation::audio_only_reason`]).

use crate::LayerChoice;
use std::time::{Duration, Instant};

/// Tuning of a [`BandwidthAllocator`]. Rates are in bit/s, on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct AllocatorConfig {
    /// Kept for audio before any video: the class voice and the floor pupil's voice (Opus at
    /// ~32 kbit/s is ~50 kbit/s with RTP/SRTP/UDP/IP headers at 50 packets/s).
    pub audio_reserve_bps: u64,
    /// Below this estimate the pupil gets audio only, however cheap the lowest layer is.
    pub audio_only_below_bps: u64,
    /// The estimate must stay below what the lowest layer needs this long before the pupil
    /// falls to audio only (a capacity drop makes the estimate collapse for a moment; the
    /// lowest layer is kept meanwhile). Zero: at once.
    pub audio_only_after: Duration,
    /// Keep the lowest layer as long as the estimate stays above `audio_only_below_bps`
    /// (the class's "audio only below ~100 kbit/s" rule), instead of requiring its own cost
    /// plus the audio reserve: a congested estimate swings well below a capped link's rate.
    pub lowest_layer_down_to_floor: bool,
    /// Going up needs `estimate ≥ up_headroom × video + audio_reserve`.
    pub up_headroom: f64,
    /// Staying needs `estimate ≥ down_margin × video + audio_reserve` (below 1: tolerate a
    /// small dip; a congested GCC estimate falls to 0.85 × throughput, well below).
    pub down_margin: f64,
    /// How long the estimate must support a higher level, without a break, before going up.
    pub up_hold: Duration,
    /// The hold while a pupil is starting (before any down-switch, first two up-switches):
    /// the first estimates come from str0m's start-up probes, and a pupil on a good link
    /// should not watch 180p for seconds.
    pub startup_hold: Duration,
    /// The hold when the estimate got there in a step (≥ `probe_step` × the previous
    /// estimate): a step is the result of a bandwidth probe — throughput measured at that
    /// rate, not a guess — which is what a link that recovered shows. Repeated premature
    /// up-switches lengthen it like `up_hold`.
    pub probed_hold: Duration,
    /// The rise of the estimate, in one update, that counts as a probe result.
    pub probe_step: f64,
    /// Upper bound of the hold after repeated premature up-switches.
    pub up_hold_max: Duration,
    /// A down-switch this soon after an up-switch makes that up-switch premature; the second
    /// premature one in a row doubles the hold, and so on.
    pub failed_up_window: Duration,
    /// Least time between the starts of two probes (and after a down-switch).
    pub probe_interval: Duration,
    /// How long a probe request stays up.
    pub probe_duration: Duration,
    /// Probe toward this × the top level's up need, so that the estimate can clear the need
    /// (str0m's own allocation probes go to 1× and 2× the desired bitrate anyway).
    pub probe_factor: f64,
    /// Restart the estimator when it is stuck: the top level does not fit, the estimate has
    /// not risen by 10% for this long and the pupil's link lost (almost) nothing meanwhile
    /// (`Duration::ZERO`: never). str0m's loss-based controller, after loss (a capacity drop),
    /// holds the estimate near 1.5× what is sent and refuses probes until its window forgets
    /// the loss — seconds after the link recovered; a restart probes at once.
    pub stall_reset_after: Duration,
    /// Least time between two restarts.
    pub stall_reset_interval: Duration,
    /// The link's loss (egress loss fraction) must stay at or below this for a restart.
    pub stall_max_loss: f32,
    /// Bitrate assumed for the Low, Medium, High class layers while not measured.
    pub nominal_layer_bps: [u64; 3],
    /// Bitrate assumed for the floor pupil's camera while not measured.
    pub nominal_floor_bps: u64,
}

impl Default for AllocatorConfig {
    fn default() -> Self {
        AllocatorConfig {
            audio_reserve_bps: 64_000,
            audio_only_below_bps: 100_000,
            audio_only_after: Duration::ZERO,
            lowest_layer_down_to_floor: false,
            up_headroom: 1.15,
            down_margin: 0.9,
            up_hold: Duration::from_millis(1500),
            // As long as `up_hold` here (no start-up phase); the SFU shortens it.
            startup_hold: Duration::from_millis(1500),
            // As long as `up_hold` here (steps are treated like any rise); the SFU shortens it.
            probed_hold: Duration::from_millis(1500),
            probe_step: 1.5,
            // After five premature up-switches in a row (1.5 → 1.5 → 3 → 6 → 12 → 24 s).
            up_hold_max: Duration::from_secs(24),
            failed_up_window: Duration::from_secs(10),
            probe_interval: Duration::from_secs(2),
            probe_duration: Duration::from_secs(1),
            probe_factor: 1.1,
            stall_reset_after: Duration::ZERO,
            stall_reset_interval: Duration::from_secs(10),
            stall_max_loss: 0.005,
            // The studio's layers: 180p 150 kbit/s, 360p 500 kbit/s, 720p 1.5 Mbit/s.
            nominal_layer_bps: [150_000, 500_000, 1_500_000],
            // A tablet camera relayed as sent (no simulcast); assume a 480p-ish stream.
            nominal_floor_bps: 500_000,
        }
    }
}

impl AllocatorConfig {
    /// Check the values make sense together.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.up_headroom >= 1.0 && self.up_headroom.is_finite()) {
            return Err(format!("up_headroom must be ≥ 1 (got {})", self.up_headroom));
        }
        if !(self.down_margin > 0.0 && self.down_margin <= self.up_headroom) {
            return Err(format!("down_margin must be in (0, up_headroom] (got {})", self.down_margin));
        }
        if self.up_hold.is_zero() || self.up_hold_max < self.up_hold {
            return Err("up_hold must be > 0 and ≤ up_hold_max".into());
        }
        if self.probe_interval.is_zero() || self.probe_duration > self.probe_interval {
            return Err("probe_interval must be > 0 and ≥ probe_duration".into());
        }
        if !(self.probe_step > 1.0 && self.probe_step.is_finite()) {
            return Err(format!("probe_step must be > 1 (got {})", self.probe_step));
        }
        if !(0.0..1.0).contains(&self.stall_max_loss) {
            return Err(format!("stall_max_loss must be in 0..1 (got {})", self.stall_max_loss));
        }
        if !(self.probe_factor >= 1.0 && self.probe_factor.is_finite()) {
            return Err(format!("probe_factor must be ≥ 1 (got {})", self.probe_factor));
        }
        if self.nominal_layer_bps.contains(&0) || self.nominal_floor_bps == 0 {
            return Err("nominal bitrates must be > 0".into());
        }
        Ok(())
    }
}

/// The pupil's own choice on its page; caps what the allocator may pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PupilCap {
    /// Whatever the link carries.
    #[default]
    Auto,
    /// At most the lowest layer of the class video, and no floor camera.
    DataSaver,
    /// No video at all.
    AudioOnly,
}

impl std::str::FromStr for PupilCap {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(PupilCap::Auto),
            "data-saver" | "data_saver" => Ok(PupilCap::DataSaver),
            "audio-only" | "audio_only" => Ok(PupilCap::AudioOnly),
            other => Err(format!("unknown choice '{other}' (auto, data-saver, audio-only)")),
        }
    }
}

/// Why a pupil receives no video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioOnlyReason {
    /// The pupil chose [`PupilCap::AudioOnly`].
    PupilChoice,
    /// The link cannot carry even the lowest video layer ("audio only — connection too weak").
    WeakConnection,
}

/// The video a pupil could receive now, with what each stream costs.
///
/// Each entry: `None` = not available (not published, or paused); `Some(bps)` = available,
/// measured at `bps` bit/s; `Some(0)` = available but not measured yet (a nominal bitrate
/// from [`AllocatorConfig`] is used).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AvailableVideo {
    /// The class video's Low, Medium and High simulcast layers. A two-layer publication
    /// fills Low and High, a single stream fills High (see [`layer_for_rank`]).
    pub class: [Option<u64>; 3],
    /// The camera of the pupil holding the floor.
    pub floor: Option<u64>,
}

impl AvailableVideo {
    /// Nothing but audio.
    pub const NONE: AvailableVideo = AvailableVideo { class: [None; 3], floor: None };

    /// Class video with these layers.
    pub fn simulcast(low: Option<u64>, medium: Option<u64>, high: Option<u64>) -> Self {
        AvailableVideo { class: [low, medium, high], floor: None }
    }

    /// Class video as one stream (no simulcast).
    pub fn single(bps: u64) -> Self {
        AvailableVideo { class: [None, None, Some(bps)], floor: None }
    }

    /// The same, with a floor camera costing `bps` (0 = not measured yet).
    pub fn with_floor(self, bps: u64) -> Self {
        AvailableVideo { floor: Some(bps), ..self }
    }
}

/// The [`LayerChoice`] slot of the layer of quality `rank` (0 = lowest) among `layers` layers,
/// the same mapping as [`LayerSelector::select_rank`](crate::LayerSelector::select_rank):
/// one layer is High, two are Low and High, three are Low, Medium and High.
pub fn layer_for_rank(rank: usize, layers: usize) -> LayerChoice {
    match (layers, rank) {
        (0 | 1, _) => LayerChoice::High,
        (2, 0) => LayerChoice::Low,
        (2, _) => LayerChoice::High,
        (_, 0) => LayerChoice::Low,
        (_, 1) => LayerChoice::Medium,
        _ => LayerChoice::High,
    }
}

/// What a pupil should receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Allocation {
    /// The class video layer; `None` = no class video (audio only, or none published).
    pub class_video: Option<LayerChoice>,
    /// Whether to forward the floor pupil's camera.
    pub floor_video: bool,
    /// While `Some`, ask str0m to probe toward this bitrate (see the module's wiring notes).
    pub probe_bps: Option<u64>,
    /// Why the pupil gets no video although some is published, to show on its page.
    pub audio_only_reason: Option<AudioOnlyReason>,
}

/// What changed in one call, so that the caller acts only on changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[must_use]
pub struct Changes {
    /// `class_video` or `floor_video` changed: switch the forwarders (at a keyframe).
    pub video: bool,
    /// `audio_only_reason` changed: tell the pupil page.
    pub audio_only: bool,
    /// [`BandwidthAllocator::desired_bps`] changed: call `Rtc::bwe().set_bitrate`.
    pub bwe: bool,
    /// The estimator is stuck below the top level on a clean link: restart it from this
    /// bitrate (`Rtc::bwe().reset`), which probes at once.
    pub reset_estimate: Option<u64>,
}

impl Changes {
    /// Whether anything changed.
    pub fn any(&self) -> bool {
        self.video || self.audio_only || self.bwe || self.reset_estimate.is_some()
    }
}

/// Per-pupil counters for `/metrics` and the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AllocatorStats {
    /// Changes of the forwarded video (layer or floor camera), whatever the cause; the first
    /// choice is none.
    pub switches: u64,
    /// Of which up-switches decided from the estimate.
    pub up_switches: u64,
    /// Of which down-switches decided from the estimate.
    pub down_switches: u64,
    /// Times the pupil fell back to audio only for lack of bandwidth.
    pub audio_only_fallbacks: u64,
    /// Probes requested.
    pub probes: u64,
    /// Estimator restarts (stuck below the top level on a clean link).
    pub estimator_resets: u64,
    /// The last estimate received, bit/s.
    pub estimate_bps: Option<u64>,
    /// The current hold before going up (grows after premature up-switches).
    pub up_hold: Duration,
    /// The current choice.
    pub allocation: Allocation,
}

// Ladder levels ("slots"), cheapest first.
const AUDIO: usize = 0;
const FLOOR: usize = 4;
const SLOTS: usize = 5;

/// The levels available now and their video cost.
#[derive(Debug, Clone, Copy, Default)]
struct Ladder {
    present: [bool; SLOTS],
    cost: [u64; SLOTS],
    /// Highest present slot.
    top: usize,
    /// The class layer shown with the floor camera (the highest present class slot).
    top_class: Option<usize>,
}

impl Ladder {
    fn lowest_video(&self) -> Option<usize> {
        (1..SLOTS).find(|&s| self.present[s])
    }
}

fn choice_of(slot: usize) -> Option<LayerChoice> {
    match slot {
        1 => Some(LayerChoice::Low),
        2 => Some(LayerChoice::Medium),
        3 => Some(LayerChoice::High),
        _ => None,
    }
}

/// Chooses, for one pupil, the media its link can carry. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct BandwidthAllocator {
    config: AllocatorConfig,
    cap: PupilCap,
    /// Current ladder slot.
    level: usize,
    /// At audio only for lack of bandwidth.
    weak: bool,
    /// The next evaluation chooses a level from scratch (first call, or cap raised).
    fresh: bool,
    /// A first video layer was chosen: the first is not a switch.
    chosen: bool,
    /// The estimate was measured on this link before (`start_from`), while its level was
    /// held: the first choice takes the best level it can stay at.
    measured_start: bool,
    estimate: Option<u64>,
    /// Per slot: since when the estimate has supported its up need without a break.
    since: [Option<Instant>; SLOTS],
    /// Premature up-switches in a row.
    failures: u32,
    /// Since when the estimate is below what the lowest video layer needs.
    below_lowest_since: Option<Instant>,
    last_up: Option<Instant>,
    /// When the estimate last rose in a step (a probe result).
    stepped_at: Option<Instant>,
    /// The highest estimate of the current flat period (no new high by 10% since), and when
    /// it began.
    flat: Option<(u64, Instant)>,
    /// Since when the link's loss is at most `stall_max_loss`.
    clean_since: Option<Instant>,
    last_reset: Option<Instant>,
    /// Active probe: until when, toward which bitrate.
    probe: Option<(Instant, u64)>,
    next_probe: Option<Instant>,
    desired: u64,
    ladder: Ladder,
    allocation: Allocation,
    stats: AllocatorStats,
}

impl Default for BandwidthAllocator {
    fn default() -> Self {
        BandwidthAllocator::new(AllocatorConfig::default())
    }
}

impl BandwidthAllocator {
    /// An allocator with no estimate yet. Call [`poll`](Self::poll) once the subscription
    /// exists: with no estimate it starts on the lowest video layer (a picture fast; the
    /// estimate then moves it).
    pub fn new(config: AllocatorConfig) -> Self {
        let desired = config.audio_reserve_bps;
        BandwidthAllocator {
            config,
            cap: PupilCap::Auto,
            level: AUDIO,
            weak: false,
            fresh: true,
            chosen: false,
            measured_start: false,
            estimate: None,
            since: [None; SLOTS],
            failures: 0,
            below_lowest_since: None,
            last_up: None,
            stepped_at: None,
            flat: None,
            clean_since: None,
            last_reset: None,
            probe: None,
            next_probe: None,
            desired,
            ladder: Ladder::default(),
            allocation: Allocation::default(),
            stats: AllocatorStats::default(),
        }
    }

    /// Start from an estimate measured before (the pre-class check's): the first choice
    /// takes the best level it carries, instead of the lowest. Call before the first
    /// [`poll`](Self::poll) or [`set_cap`](Self::set_cap). The estimator must start from the
    /// same value, or its first estimate takes the level back down.
    ///
    /// The rule is the *stay* need, not the up need: the measure was taken on this link
    /// while a level was held, and an estimator that holds a level settles near what it
    /// needs (a check that held 720p measured just above 720p's stay need), so the up need
    /// would start it one layer lower about as often as not.
    pub fn start_from(&mut self, bps: u64) {
        self.estimate = Some(bps);
        self.measured_start = true;
    }

    /// The settings.
    pub fn config(&self) -> &AllocatorConfig {
        &self.config
    }

    /// The current choice.
    pub fn allocation(&self) -> Allocation {
        self.allocation
    }

    /// The pupil's cap.
    pub fn cap(&self) -> PupilCap {
        self.cap
    }

    /// The bitrate to give str0m as desired (`Rtc::bwe().set_bitrate(minimum, desired)`):
    /// the probe target while probing, else the current level's up need. It changes only
    /// with the level or the probe, so that meter jitter never triggers str0m probes.
    pub fn desired_bps(&self) -> u64 {
        self.desired
    }

    /// Counters and the current choice.
    pub fn stats(&self) -> AllocatorStats {
        AllocatorStats { estimate_bps: self.estimate, up_hold: self.hold(), allocation: self.allocation, ..self.stats }
    }

    /// A new bandwidth estimate toward this pupil, bit/s.
    pub fn on_estimate(&mut self, now: Instant, bps: u64, video: &AvailableVideo) -> Changes {
        if self.estimate.is_some_and(|e| bps as f64 >= self.config.probe_step * e as f64) {
            self.stepped_at = Some(now);
        }
        // A new high (by 10%) ends a flat period; dips do not.
        if self.flat.is_none_or(|(high, _)| bps as f64 >= 1.1 * high as f64) {
            self.flat = Some((bps, now));
        }
        self.estimate = Some(bps);
        let mut changes = self.evaluate(now, video);
        changes.reset_estimate = self.stall_reset(now);
        changes
    }

    /// The loss on the link toward the pupil since the last report (0..1).
    pub fn on_loss(&mut self, now: Instant, fraction: f32) {
        if fraction > self.config.stall_max_loss {
            self.clean_since = None;
        } else if self.clean_since.is_none() {
            self.clean_since = Some(now);
        }
    }

    /// Whether to restart the estimator now (see `AllocatorConfig::stall_reset_after`).
    fn stall_reset(&mut self, now: Instant) -> Option<u64> {
        let after = self.config.stall_reset_after;
        let e = self.estimate?;
        let long = |t: Option<Instant>| t.is_some_and(|t| now.saturating_duration_since(t) >= after);
        let stuck = !after.is_zero()
            && self.level < self.ladder.top
            && e < self.up_need(self.ladder.top)
            && long(self.flat.map(|f| f.1))
            && long(self.clean_since)
            && self.last_reset.is_none_or(|t| now.saturating_duration_since(t) >= self.config.stall_reset_interval);
        if !stuck {
            return None;
        }
        self.last_reset = Some(now);
        self.flat = Some((e, now));
        self.stats.estimator_resets += 1;
        Some(e)
    }

    /// The pupil changed its choice. Lowering the cap applies at once; raising it chooses
    /// again from the last estimate, at once (no hold: the pupil asked for it).
    pub fn set_cap(&mut self, now: Instant, cap: PupilCap, video: &AvailableVideo) -> Changes {
        let rank = |c: PupilCap| match c {
            PupilCap::AudioOnly => 0,
            PupilCap::DataSaver => 1,
            PupilCap::Auto => 2,
        };
        if rank(cap) > rank(self.cap) {
            self.fresh = true;
        }
        self.cap = cap;
        self.evaluate(now, video)
    }

    /// Time passed, or the available video changed.
    pub fn poll(&mut self, now: Instant, video: &AvailableVideo) -> Changes {
        self.evaluate(now, video)
    }

    /// When [`poll`](Self::poll) should next be called if nothing else happens: a hold or a
    /// probe window ending, or a probe falling due.
    pub fn next_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if let Some((until, _)) = self.probe {
            consider(until);
        } else if let (Some(e), Some(t)) = (self.estimate, self.next_probe)
            && self.level < self.ladder.top
            && e < self.probe_target()
        {
            consider(t);
        }
        for s in self.level + 1..=self.ladder.top {
            if let Some(t) = self.since[s] {
                consider(t + self.hold_for(s));
            }
        }
        next
    }

    fn hold(&self) -> Duration {
        // One premature up-switch may be a genuine capacity drop; repeated ones are flapping.
        if self.failures == 0 && self.stats.down_switches == 0 && self.stats.up_switches < 2 {
            return self.config.startup_hold.min(self.config.up_hold);
        }
        self.backed_off(self.config.up_hold)
    }

    /// The hold for level `s`: shorter when its support began with a probe's step.
    fn hold_for(&self, s: usize) -> Duration {
        let hold = self.hold();
        match (self.since[s], self.stepped_at) {
            (Some(since), Some(step)) if since >= step => hold.min(self.backed_off(self.config.probed_hold)),
            _ => hold,
        }
    }

    /// `hold` lengthened after premature up-switches.
    fn backed_off(&self, hold: Duration) -> Duration {
        let factor = 1u32 << self.failures.saturating_sub(1).min(16);
        hold.saturating_mul(factor).min(self.config.up_hold_max)
    }

    fn ladder_for(&self, video: &AvailableVideo) -> Ladder {
        let c = &self.config;
        let mut l = Ladder::default();
        l.present[AUDIO] = true;
        let cost = |m: Option<u64>, nominal: u64| m.map(|b| if b == 0 { nominal } else { b });
        for i in 0..3 {
            let Some(b) = cost(video.class[i], c.nominal_layer_bps[i]) else { continue };
            let allowed = match self.cap {
                PupilCap::Auto => true,
                PupilCap::DataSaver => l.top_class.is_none(),
                PupilCap::AudioOnly => false,
            };
            if allowed {
                l.present[i + 1] = true;
                l.cost[i + 1] = b;
                l.top_class = Some(i + 1);
            }
        }
        if self.cap == PupilCap::Auto
            && let Some(f) = cost(video.floor, c.nominal_floor_bps)
        {
            l.present[FLOOR] = true;
            l.cost[FLOOR] = f + l.top_class.map_or(0, |s| l.cost[s]);
        }
        l.top = (0..SLOTS).rev().find(|&s| l.present[s]).unwrap_or(AUDIO);
        l
    }

    /// The estimate needed to go up to `slot`.
    fn up_need(&self, slot: usize) -> u64 {
        if slot == AUDIO {
            return 0;
        }
        let c = &self.config;
        let need = c.up_headroom * self.ladder.cost[slot] as f64 + c.audio_reserve_bps as f64;
        let floor = c.up_headroom * c.audio_only_below_bps as f64;
        need.max(floor).round() as u64
    }

    /// The estimate needed to stay at `slot`.
    fn stay_need(&self, slot: usize) -> u64 {
        if slot == AUDIO {
            return 0;
        }
        let c = &self.config;
        if c.lowest_layer_down_to_floor && Some(slot) == self.ladder.lowest_video() {
            return c.audio_only_below_bps;
        }
        let need = c.down_margin * self.ladder.cost[slot] as f64 + c.audio_reserve_bps as f64;
        (need.round() as u64).max(c.audio_only_below_bps)
    }

    /// An estimate that carries every level, the top with its headroom and a margin: a
    /// pupil's link need not be known to be wider (what probes aim at).
    pub fn enough_bps(&self) -> u64 {
        self.probe_target()
    }

    /// What to probe toward: a little above the top level's up need.
    fn probe_target(&self) -> u64 {
        (self.up_need(self.ladder.top) as f64 * self.config.probe_factor).round() as u64
    }

    /// A level chosen from the estimate alone (first call, video appearing, cap raised).
    fn fresh_level(&self) -> usize {
        let l = &self.ladder;
        let Some(lowest) = l.lowest_video() else { return AUDIO };
        let Some(e) = self.estimate else { return lowest };
        let need = |s| if self.measured_start { self.stay_need(s) } else { self.up_need(s) };
        (1..=l.top)
            .rev()
            .find(|&s| l.present[s] && need(s) <= e)
            .or_else(|| (!self.weak && e >= self.stay_need(lowest)).then_some(lowest))
            .unwrap_or(AUDIO)
    }

    fn evaluate(&mut self, now: Instant, video: &AvailableVideo) -> Changes {
        let before = self.allocation;
        let level_before = self.level;
        let probe_before = self.probe.map(|p| p.1);
        let top_before = self.ladder.top;
        self.ladder = self.ladder_for(video);
        let top = self.ladder.top;

        // An up-switch that lasted is not premature: reset the back-off.
        if let Some(t) = self.last_up
            && now.saturating_duration_since(t) >= self.config.failed_up_window
        {
            self.failures = 0;
            self.last_up = None;
        }

        // The current level went away (layer paused, floor ended, cap lowered): the best
        // level below it; from audio only, the fresh choice below picks again.
        if !self.ladder.present[self.level] {
            self.level = (1..self.level).rev().find(|&s| self.ladder.present[s]).unwrap_or(AUDIO);
        }
        if self.fresh || (self.level == AUDIO && !self.weak && top > AUDIO) {
            let fresh = self.fresh_level();
            self.level = self.level.max(fresh);
            self.fresh = false;
            self.measured_start = false;
            if self.level == AUDIO && top > AUDIO {
                self.weak = true;
            } else if self.level > AUDIO {
                self.weak = false;
            }
        }

        // Which levels the estimate supports, and since when.
        for s in 1..SLOTS {
            let supported = self.ladder.present[s] && self.estimate.is_some_and(|e| e >= self.up_need(s));
            if !supported {
                self.since[s] = None;
            } else if self.since[s].is_none() {
                self.since[s] = Some(now);
            }
        }

        let lowest = self.ladder.lowest_video();
        match (self.estimate, lowest) {
            (Some(e), Some(lo)) if e < self.stay_need(lo) => {
                self.below_lowest_since.get_or_insert(now);
            }
            _ => self.below_lowest_since = None,
        }
        let mut went_down = false;
        if let Some(e) = self.estimate
            && self.level > AUDIO
            && e < self.stay_need(self.level)
        {
            // The best level that still fits, by the same rule that keeps a level.
            let mut target =
                (1..self.level).rev().find(|&s| self.ladder.present[s] && self.stay_need(s) <= e).unwrap_or(AUDIO);
            // Audio only only once the estimate has stayed that low for a while.
            if let (AUDIO, Some(lo)) = (target, lowest)
                && self
                    .below_lowest_since
                    .is_some_and(|t| now.saturating_duration_since(t) < self.config.audio_only_after)
            {
                target = lo;
            }
            if target < self.level {
                if let Some(t) = self.last_up.take()
                    && now.saturating_duration_since(t) < self.config.failed_up_window
                {
                    self.failures = (self.failures + 1).min(16);
                }
                self.level = target;
                self.weak = target == AUDIO;
                self.stats.down_switches += 1;
                self.probe = None;
                self.next_probe = Some(now + self.config.probe_interval);
                went_down = true;
            }
        }

        if !went_down && self.estimate.is_some() && self.level < top {
            let held = |s: usize| self.since[s].is_some_and(|t| now.saturating_duration_since(t) >= self.hold_for(s));
            let ready = (self.level + 1..=top).rev().find(|&s| held(s));
            if let Some(r) = ready {
                let higher_pending = (r + 1..=top).any(|s| self.since[s].is_some());
                if !higher_pending {
                    self.level = r;
                    self.weak = false;
                    self.last_up = Some(now);
                    self.stats.up_switches += 1;
                }
            }
        }

        // Probing toward the top level while it does not fit.
        if let Some((until, _)) = self.probe
            && (now >= until || self.level >= top)
        {
            self.probe = None;
        }
        if self.probe.is_none()
            && let Some(e) = self.estimate
            && self.level < top
        {
            let target = self.probe_target();
            let due = self.next_probe.is_none_or(|t| now >= t);
            if e < target && due {
                self.probe = Some((now + self.config.probe_duration, target));
                self.next_probe = Some(now + self.config.probe_interval);
                self.stats.probes += 1;
            }
        }

        let probe_bps = self.probe.map(|p| p.1);
        let desired_before = self.desired;
        if self.level != level_before || probe_bps != probe_before || top != top_before {
            self.desired = match probe_bps {
                Some(x) => x,
                None if self.level == AUDIO => self.config.audio_reserve_bps,
                // Below the top: ask for the top between probes, so that str0m's follow-up
                // probes (capped at twice the desired bitrate) are not capped near what the
                // current layer needs; a probe then raises it by `probe_factor`.
                None if self.level < top => self.up_need(top),
                None => self.up_need(self.level),
            };
        }

        let class_video = match self.level {
            FLOOR => self.ladder.top_class.and_then(choice_of),
            s => choice_of(s),
        };
        let audio_only_reason = if self.cap == PupilCap::AudioOnly {
            Some(AudioOnlyReason::PupilChoice)
        } else if self.level == AUDIO && self.weak && top > AUDIO {
            Some(AudioOnlyReason::WeakConnection)
        } else {
            None
        };
        self.allocation = Allocation { class_video, floor_video: self.level == FLOOR, probe_bps, audio_only_reason };

        let video = (before.class_video, before.floor_video) != (class_video, self.allocation.floor_video);
        if video && self.chosen {
            self.stats.switches += 1;
        }
        self.chosen |= class_video.is_some();
        if audio_only_reason == Some(AudioOnlyReason::WeakConnection)
            && before.audio_only_reason != Some(AudioOnlyReason::WeakConnection)
        {
            self.stats.audio_only_fallbacks += 1;
        }
        Changes {
            video,
            audio_only: before.audio_only_reason != audio_only_reason,
            bwe: self.desired != desired_before,
            reset_estimate: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LayerChoice::{High, Low, Medium};

    const TICK: Duration = Duration::from_millis(50);
    /// What the forwarded audio really costs on the wire (the reserve is a bit larger).
    const AUDIO_ON_WIRE: u64 = 60_000;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn three() -> AvailableVideo {
        AvailableVideo::simulcast(Some(0), Some(0), Some(0))
    }

    /// What an allocation sends on the wire.
    fn sent_bps(a: &Allocation, v: &AvailableVideo, c: &AllocatorConfig) -> u64 {
        let layer = |i: usize| v.class[i].map_or(0, |b| if b == 0 { c.nominal_layer_bps[i] } else { b });
        let class = match a.class_video {
            Some(Low) => layer(0),
            Some(Medium) => layer(1),
            Some(High) => layer(2),
            None => 0,
        };
        let floor = match (a.floor_video, v.floor) {
            (true, Some(0)) => c.nominal_floor_bps,
            (true, Some(b)) => b,
            _ => 0,
        };
        AUDIO_ON_WIRE + class + floor
    }

    /// A crude model of str0m's GCC estimate toward one pupil: it falls to 0.85 × capacity
    /// 200 ms after the sender overloads the link, grows by 8 %/s up to 1.5 × what is sent,
    /// and, while the allocator asks for a probe at X, rises to min(capacity, X) within 1 s.
    struct Link {
        capacity: u64,
        estimate: f64,
        overload: Duration,
        probe: Option<(Instant, f64, f64)>,
    }

    impl Link {
        fn new(capacity: u64, start: u64) -> Self {
            Link { capacity, estimate: start as f64, overload: Duration::ZERO, probe: None }
        }

        fn step(&mut self, now: Instant, sent: u64, probe: Option<u64>) {
            let cap = self.capacity as f64;
            match (probe, self.probe) {
                (Some(x), None) => self.probe = Some((now, self.estimate, cap.min(x as f64))),
                (None, Some(_)) => self.probe = None,
                _ => {}
            }
            if sent > self.capacity {
                self.overload += TICK;
                if self.overload >= Duration::from_millis(200) {
                    self.estimate = self.estimate.min(0.85 * cap);
                }
                return;
            }
            self.overload = Duration::ZERO;
            if let Some((t, from, to)) = self.probe {
                let f = now.duration_since(t).as_secs_f64().min(1.0);
                self.estimate = self.estimate.max(from + (to - from) * f);
                return;
            }
            let grown = self.estimate * 1.08f64.powf(TICK.as_secs_f64());
            let limit = 1.5 * sent as f64 + 10_000.0;
            self.estimate = self.estimate.max(grown.min(limit));
        }
    }

    /// A pupil behind a [`Link`], with estimates fed every `feed` and polls in between.
    struct Sim {
        t0: Instant,
        now: Instant,
        a: BandwidthAllocator,
        link: Link,
        video: AvailableVideo,
        feed: Duration,
        last_feed: Option<Instant>,
        /// Every change of forwarded video: (ms since start, class layer, floor camera).
        switches: Vec<(u64, Option<LayerChoice>, bool)>,
        /// Every allocation seen, once per tick.
        trace: Vec<(u64, Allocation)>,
    }

    impl Sim {
        fn new(capacity: u64, video: AvailableVideo) -> Self {
            let t0 = Instant::now();
            let mut a = BandwidthAllocator::default();
            let _ = a.poll(t0, &video);
            Sim {
                t0,
                now: t0,
                a,
                link: Link::new(capacity, 500_000),
                video,
                feed: Duration::from_millis(100),
                last_feed: None,
                switches: vec![],
                trace: vec![],
            }
        }

        fn ms(&self) -> u64 {
            self.now.duration_since(self.t0).as_millis() as u64
        }

        fn run_until(&mut self, ms: u64) {
            while self.ms() < ms {
                self.now += TICK;
                let alloc = self.a.allocation();
                self.link.step(self.now, sent_bps(&alloc, &self.video, self.a.config()), alloc.probe_bps);
                let due = self.last_feed.is_none_or(|t| self.now.duration_since(t) >= self.feed);
                let ch = if due {
                    self.last_feed = Some(self.now);
                    self.a.on_estimate(self.now, self.link.estimate as u64, &self.video)
                } else {
                    self.a.poll(self.now, &self.video)
                };
                let alloc = self.a.allocation();
                if ch.video {
                    self.switches.push((self.ms(), alloc.class_video, alloc.floor_video));
                }
                self.trace.push((self.ms(), alloc));
            }
        }

        /// First time at or after `from_ms` when `pred` holds for the allocation.
        fn first(&self, from_ms: u64, pred: impl Fn(&Allocation) -> bool) -> Option<u64> {
            self.trace.iter().find(|(t, a)| *t >= from_ms && pred(a)).map(|(t, _)| *t)
        }

        fn switches_between(&self, from_ms: u64, to_ms: u64) -> usize {
            self.switches.iter().filter(|(t, ..)| (from_ms..to_ms).contains(t)).count()
        }
    }

    /// Deterministic noise for the tests (xorshift64*).
    struct Rng(u64);
    impl Rng {
        fn unit(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        }
        /// Uniform in [-1, 1).
        fn signed(&mut self) -> f64 {
            self.unit() * 2.0 - 1.0
        }
    }

    fn steps_2m_300k_2m(feed: Duration) {
        let mut sim = Sim::new(2_000_000, three());
        sim.feed = feed;
        sim.run_until(20_000);
        assert_eq!(sim.a.allocation().class_video, Some(High), "settled on 720p with 2 Mbit/s");
        let reached_high = sim.first(0, |a| a.class_video == Some(High)).unwrap();
        assert!(reached_high <= 5_000, "720p after {reached_high} ms from a 500 kbit/s start");

        sim.link.capacity = 300_000;
        sim.run_until(40_000);
        let down = sim.first(20_000, |a| a.class_video == Some(Low)).unwrap();
        assert!(down <= 21_000, "down to 180p {} ms after the drop", down - 20_000);
        // One switch, straight to Low, and it holds while probes fail.
        assert_eq!(sim.switches_between(20_000, 40_000), 1, "{:?}", sim.switches);
        assert!(sim.trace.iter().filter(|(t, _)| *t >= down).all(|(_, a)| a.class_video == Some(Low)));

        sim.link.capacity = 2_000_000;
        sim.run_until(60_000);
        let up = sim.first(40_000, |a| a.class_video == Some(High)).unwrap();
        assert!(up <= 45_000, "back to 720p {} ms after the capacity returned", up - 40_000);
        assert_eq!(sim.switches_between(40_000, 60_000), 1, "straight back up: {:?}", sim.switches);

        // The voice never went: no audio-only moment in the whole run.
        assert!(sim.trace.iter().all(|(_, a)| a.class_video.is_some() && a.audio_only_reason.is_none()));
        let st = sim.a.stats();
        assert_eq!(st.down_switches, 1);
        assert!(st.probes >= 5, "kept probing while capped: {st:?}");
    }

    #[test]
    fn capacity_steps_2m_300k_2m() {
        steps_2m_300k_2m(Duration::from_millis(100));
    }

    #[test]
    fn capacity_steps_with_estimates_every_500ms() {
        // The cadence of `PeerStats::bwe_tx` with a 500 ms stats interval.
        steps_2m_300k_2m(Duration::from_millis(500));
    }

    #[test]
    fn recovery_within_5s_whatever_the_probe_phase() {
        // The capacity comes back at any point of the probe cycle: 720p within 5 s each time.
        let mut worst = 0;
        for offset in (0..2000).step_by(100) {
            let mut sim = Sim::new(300_000, three());
            sim.run_until(10_000 + offset);
            assert_eq!(sim.a.allocation().class_video, Some(Low));
            sim.link.capacity = 2_000_000;
            sim.run_until(20_000);
            let up = sim.first(10_000 + offset, |a| a.class_video == Some(High)).unwrap() - (10_000 + offset);
            worst = worst.max(up);
            assert_eq!(sim.switches_between(10_000 + offset, 20_000), 1, "{:?}", sim.switches);
        }
        assert!(worst <= 5_000, "worst recovery {worst} ms");
    }

    #[test]
    fn starts_on_the_lowest_layer_before_any_estimate() {
        let t0 = Instant::now();
        let mut a = BandwidthAllocator::default();
        assert_eq!(a.allocation(), Allocation::default());
        let ch = a.poll(t0, &three());
        assert!(ch.video && ch.bwe && !ch.audio_only);
        assert_eq!(a.allocation().class_video, Some(Low));
        assert_eq!(a.allocation().probe_bps, None, "no probe before str0m has an estimate");
        assert_eq!(a.next_timeout(), None);
        // Nothing published: audio, and no "connection too weak" notice.
        let mut b = BandwidthAllocator::default();
        let _ = b.on_estimate(t0, 50_000, &AvailableVideo::NONE);
        assert_eq!(b.allocation(), Allocation::default());
        assert_eq!(b.desired_bps(), 64_000);
        // The first estimate picks directly what it supports (str0m's first one is the start value).
        let mut c = BandwidthAllocator::default();
        let _ = c.on_estimate(t0, 700_000, &three());
        assert_eq!(c.allocation().class_video, Some(Medium));
    }

    #[test]
    fn a_start_measured_before_picks_the_first_layer() {
        let t0 = Instant::now();
        // The pre-class check measured 3 Mbit/s: 720p from the first choice.
        let mut a = BandwidthAllocator::default();
        a.start_from(3_000_000);
        let _ = a.poll(t0, &three());
        assert_eq!(a.allocation().class_video, Some(High));
        // 250 kbit/s: 180p; 80 kbit/s: audio only, told why.
        let mut b = BandwidthAllocator::default();
        b.start_from(250_000);
        let _ = b.poll(t0, &three());
        assert_eq!(b.allocation().class_video, Some(Low));
        let mut c = BandwidthAllocator::default();
        c.start_from(80_000);
        let ch = c.poll(t0, &three());
        assert_eq!(c.allocation().class_video, None);
        assert!(ch.audio_only);
        // The link is worse than measured: the first real estimate takes it down at once.
        let _ = a.on_estimate(t0 + Duration::from_millis(500), 600_000, &three());
        assert_eq!(a.allocation().class_video, Some(Medium));
        // A check that held 720p measured 1.6 Mbit/s: above 720p's stay need (1.414M), under
        // its up need (1.789M). Measured before, it starts on 720p; as a first live estimate,
        // on 360p (the up rule).
        let mut d = BandwidthAllocator::default();
        d.start_from(1_600_000);
        let _ = d.poll(t0, &three());
        assert_eq!(d.allocation().class_video, Some(High));
        let mut e = BandwidthAllocator::default();
        let _ = e.on_estimate(t0, 1_600_000, &three());
        assert_eq!(e.allocation().class_video, Some(Medium));
    }

    #[test]
    fn noisy_estimate_does_not_flap() {
        // ±15 % independent jitter on every estimate (5 a second), at levels all along the
        // ladder, for several layer sets and seeds: after 10 s of settling, at most one
        // switch in the next 30 s.
        let sets = [
            ("3 layers", three()),
            ("3 layers + floor", three().with_floor(0)),
            ("2 layers", AvailableVideo::simulcast(Some(0), None, Some(0))),
            ("single", AvailableVideo::single(0)),
        ];
        for (name, video) in sets {
            let mut level = 120_000.0;
            while level < 3_500_000.0 {
                for seed in 1..=4u64 {
                    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(level as u64));
                    let t0 = Instant::now();
                    let mut a = BandwidthAllocator::default();
                    let mut late = vec![];
                    for i in 0..200u64 {
                        let now = at(t0, i * 200);
                        let e = level * (1.0 + 0.15 * rng.signed());
                        let ch = a.on_estimate(now, e as u64, &video);
                        if ch.video && i * 200 >= 10_000 {
                            late.push((i * 200, a.allocation()));
                        }
                    }
                    assert!(late.len() <= 1, "{name} at {level:.0} bit/s (seed {seed}): {late:?}");
                }
                level *= 1.03;
            }
        }
    }

    #[test]
    fn slow_swings_back_off_and_stop() {
        // ±15 % swinging slowly around a level where both the up and the stay needs of Medium
        // are crossed (up 639k, stay 514k): the first premature up-switch doubles the hold,
        // and switching stops.
        for period_s in [8.0, 20.0] {
            let t0 = Instant::now();
            let mut a = BandwidthAllocator::default();
            let mut switches = vec![];
            for i in 0..(200_000 / 100) {
                let ms = i as u64 * 100;
                let phase = ms as f64 / 1000.0 / period_s * std::f64::consts::TAU;
                let e = 590_000.0 * (1.0 + 0.15 * phase.sin());
                if a.on_estimate(at(t0, ms), e as u64, &three()).video {
                    switches.push((ms, a.allocation().class_video));
                }
            }
            let late = switches.iter().filter(|(t, _)| *t >= 100_000).count();
            assert_eq!(late, 0, "period {period_s} s: {switches:?}");
            // The first choice, then at most four premature up-switches, each undone.
            assert!(switches.len() <= 9, "period {period_s} s: {switches:?}");
            assert!(a.stats().up_hold > Duration::from_millis(1500));
        }
    }

    #[test]
    fn premature_up_switches_back_off() {
        let t0 = Instant::now();
        let mut a = BandwidthAllocator::default();
        let v = three();
        let mut ms = 0;
        // Feed `bps` every 100 ms for `dur_ms`; return after how long the layer first changed.
        let mut run = |a: &mut BandwidthAllocator, bps: u64, dur_ms: u64| {
            let (start, mut changed) = (ms, None);
            for _ in 0..dur_ms / 100 {
                ms += 100;
                if a.on_estimate(at(t0, ms), bps, &v).video && changed.is_none() {
                    changed = Some(ms - start);
                }
            }
            changed
        };
        run(&mut a, 300_000, 1000);
        assert_eq!(a.allocation().class_video, Some(Low));
        // Up after 1.5 s, undone 1 s later: the first premature up-switch is forgiven.
        assert_eq!(run(&mut a, 900_000, 3000), Some(1600));
        assert_eq!(a.allocation().class_video, Some(Medium));
        run(&mut a, 400_000, 1000);
        assert_eq!(a.stats().up_hold, Duration::from_millis(1500));
        assert_eq!(run(&mut a, 900_000, 3000), Some(1600));
        // The second in a row doubles the hold, the third doubles it again.
        run(&mut a, 400_000, 1000);
        assert_eq!(a.stats().up_hold, Duration::from_secs(3));
        assert_eq!(run(&mut a, 900_000, 4000), Some(3100));
        run(&mut a, 400_000, 1000);
        assert_eq!(a.stats().up_hold, Duration::from_secs(6));
        assert_eq!(run(&mut a, 900_000, 7000), Some(6100));
        // An up-switch that lasts the window resets the back-off.
        run(&mut a, 900_000, 10_000);
        assert_eq!(a.allocation().class_video, Some(Medium));
        assert_eq!(a.stats().up_hold, Duration::from_millis(1500));
        // The bound.
        let c = AllocatorConfig::default();
        let mut b = BandwidthAllocator::new(c.clone());
        b.failures = 30;
        assert_eq!(b.hold(), c.up_hold_max);
    }

    #[test]
    fn audio_only_below_the_threshold_and_back() {
        let mut sim = Sim::new(2_000_000, three());
        sim.run_until(10_000);
        assert_eq!(sim.a.allocation().class_video, Some(High));
        sim.link.capacity = 80_000;
        sim.run_until(30_000);
        let off = sim.first(10_000, |a| a.class_video.is_none()).unwrap();
        assert!(off <= 11_000, "audio only {} ms after the drop", off - 10_000);
        let a = sim.a.allocation();
        assert_eq!(a.audio_only_reason, Some(AudioOnlyReason::WeakConnection));
        assert!(!a.floor_video);
        // It stays so (probes keep failing) and still probes for the lowest layer and beyond.
        assert!(sim.trace.iter().filter(|(t, _)| *t >= off).all(|(_, a)| a.class_video.is_none()));
        assert!(sim.trace.iter().any(|(t, a)| *t >= off && a.probe_bps.is_some()));

        sim.link.capacity = 1_000_000;
        sim.run_until(40_000);
        let back = sim.first(30_000, |a| a.class_video.is_some()).unwrap();
        assert!(back <= 35_000, "video back {} ms after recovery", back - 30_000);
        // Straight to the best layer 1 Mbit/s carries, and the notice is withdrawn.
        assert_eq!(sim.a.allocation().class_video, Some(Medium));
        assert_eq!(sim.a.allocation().audio_only_reason, None);
        assert_eq!(sim.switches_between(30_000, 40_000), 1);
        assert_eq!(sim.a.stats().audio_only_fallbacks, 1);
    }

    #[test]
    fn audio_only_thresholds_follow_the_lowest_layer() {
        let t0 = Instant::now();
        // The studio's 150 kbit/s low layer cannot stay under 0.9 × 150k + 64k = 199 kbit/s.
        let mut a = BandwidthAllocator::default();
        let _ = a.on_estimate(t0, 300_000, &three());
        assert_eq!(a.allocation().class_video, Some(Low));
        let _ = a.on_estimate(at(t0, 100), 200_000, &three());
        assert_eq!(a.allocation().class_video, Some(Low));
        let ch = a.on_estimate(at(t0, 200), 190_000, &three());
        assert!(ch.video && ch.audio_only);
        assert_eq!(a.allocation().audio_only_reason, Some(AudioOnlyReason::WeakConnection));
        // A cheap low layer (slides, 30 kbit/s) keeps video down to the 100 kbit/s floor.
        let cheap = AvailableVideo::simulcast(Some(30_000), Some(0), Some(0));
        let mut b = BandwidthAllocator::default();
        let _ = b.on_estimate(t0, 130_000, &cheap);
        assert_eq!(b.allocation().class_video, Some(Low));
        let _ = b.on_estimate(at(t0, 100), 101_000, &cheap);
        assert_eq!(b.allocation().class_video, Some(Low));
        let _ = b.on_estimate(at(t0, 200), 99_000, &cheap);
        assert_eq!(b.allocation().class_video, None);
        // Back only once 115 kbit/s (1.15 × the floor) has held for the hold time.
        for i in 3..20 {
            let _ = b.on_estimate(at(t0, i * 100), 110_000, &cheap);
        }
        assert_eq!(b.allocation().class_video, None);
        let _ = b.on_estimate(at(t0, 2000), 120_000, &cheap);
        let _ = b.poll(at(t0, 3400), &cheap);
        assert_eq!(b.allocation().class_video, None);
        let _ = b.poll(at(t0, 3500), &cheap);
        assert_eq!(b.allocation().class_video, Some(Low));
    }

    #[test]
    fn data_saver_caps_at_the_low_layer() {
        let mut sim = Sim::new(3_000_000, three().with_floor(0));
        let _ = sim.a.set_cap(sim.now, PupilCap::DataSaver, &sim.video);
        sim.run_until(20_000);
        assert!(sim.trace.iter().all(|(_, a)| a.class_video == Some(Low) && !a.floor_video));
        // At its top already: no probing, no padding for a pupil saving data.
        assert_eq!(sim.a.stats().probes, 0);
        assert!(sim.trace.iter().all(|(_, a)| a.probe_bps.is_none()));
        assert_eq!(sim.a.desired_bps(), 236_500);
        // Lifting the cap: the estimate only knows the low layer (nothing probed), so probing
        // starts at once and 720p + the floor camera follow within seconds.
        let lifted = sim.ms();
        let ch = sim.a.set_cap(sim.now, PupilCap::Auto, &sim.video);
        assert!(ch.bwe && sim.a.allocation().probe_bps.is_some());
        sim.run_until(lifted + 5_000);
        let a = sim.a.allocation();
        assert_eq!((a.class_video, a.floor_video), (Some(High), true));
        // Data saver on a weak link: audio only, then probes toward the low layer only.
        let t0 = Instant::now();
        let mut a = BandwidthAllocator::default();
        let _ = a.set_cap(t0, PupilCap::DataSaver, &three());
        let _ = a.on_estimate(t0, 90_000, &three());
        assert_eq!(a.allocation().audio_only_reason, Some(AudioOnlyReason::WeakConnection));
        assert_eq!(a.allocation().probe_bps, None, "no probe right after a down-switch");
        let _ = a.poll(at(t0, 2000), &three());
        assert_eq!(a.allocation().probe_bps, Some(260_150));
    }

    #[test]
    fn audio_only_cap_sends_no_video() {
        let t0 = Instant::now();
        let video = three().with_floor(0);
        let mut a = BandwidthAllocator::default();
        let _ = a.on_estimate(t0, 5_000_000, &video);
        assert!(a.allocation().floor_video);
        let ch = a.set_cap(at(t0, 100), PupilCap::AudioOnly, &video);
        assert!(ch.video && ch.audio_only && ch.bwe);
        let want = Allocation {
            class_video: None,
            floor_video: false,
            probe_bps: None,
            audio_only_reason: Some(AudioOnlyReason::PupilChoice),
        };
        assert_eq!(a.allocation(), want);
        assert_eq!(a.desired_bps(), 64_000);
        for i in 2..100 {
            let ch = a.on_estimate(at(t0, i * 100), 5_000_000, &video);
            assert!(!ch.any());
        }
        assert_eq!(a.allocation(), want);
        assert_eq!(a.next_timeout(), None);
        // Back to automatic: the estimate is known, so the best level comes at once.
        let ch = a.set_cap(at(t0, 10_000), PupilCap::Auto, &video);
        assert!(ch.video && ch.audio_only);
        assert_eq!(a.allocation().class_video, Some(High));
        assert!(a.allocation().floor_video);
        assert_eq!(a.allocation().audio_only_reason, None);
        assert!("data-saver".parse::<PupilCap>().is_ok() && "hd".parse::<PupilCap>().is_err());
    }

    #[test]
    fn floor_camera_goes_before_the_class_video() {
        let video = three().with_floor(300_000);
        let mut sim = Sim::new(3_000_000, video);
        sim.run_until(10_000);
        let a = sim.a.allocation();
        assert_eq!((a.class_video, a.floor_video), (Some(High), true));
        // 1.8 Mbit/s cannot carry 720p + the floor camera (1.86 Mbit/s with audio) but does
        // carry 720p: only the floor camera goes.
        sim.link.capacity = 1_800_000;
        sim.run_until(15_000);
        let dropped = sim.first(10_000, |a| !a.floor_video).unwrap();
        assert!(dropped <= 11_000);
        assert!(sim.trace.iter().filter(|(t, _)| *t >= 10_000).all(|(_, a)| a.class_video == Some(High)));
        assert_eq!(sim.switches_between(10_000, 15_000), 1);
        // Room again: the floor camera comes back within 5 s.
        sim.link.capacity = 3_000_000;
        sim.run_until(25_000);
        let back = sim.first(15_000, |a| a.floor_video).unwrap();
        assert!(back <= 20_000, "floor camera back after {} ms", back - 15_000);
        // Kept at 1.8 Mbit/s, the app-limited estimate creeps above the floor level's need now
        // and then; each up-switch overloads the link and is undone at once, and the back-off
        // spaces those attempts out. 720p is never touched.
        sim.link.capacity = 1_800_000;
        sim.run_until(100_000);
        assert!(sim.trace.iter().filter(|(t, _)| *t >= 25_000).all(|(_, a)| a.class_video == Some(High)));
        assert!(sim.switches_between(40_000, 100_000) <= 6, "{:?}", sim.switches);
        assert!(sim.a.stats().up_hold >= Duration::from_secs(6));
        // With no class video at all, the floor camera is the only video.
        let t0 = Instant::now();
        let only_floor = AvailableVideo::NONE.with_floor(0);
        let mut a = BandwidthAllocator::default();
        let _ = a.on_estimate(t0, 1_000_000, &only_floor);
        assert_eq!((a.allocation().class_video, a.allocation().floor_video), (None, true));
        let _ = a.on_estimate(at(t0, 100), 300_000, &only_floor);
        assert_eq!(a.allocation().audio_only_reason, Some(AudioOnlyReason::WeakConnection));
    }

    #[test]
    fn the_floor_camera_ends_and_a_layer_pauses() {
        let t0 = Instant::now();
        let mut a = BandwidthAllocator::default();
        let _ = a.on_estimate(t0, 5_000_000, &three().with_floor(0));
        assert!(a.allocation().floor_video);
        // The pupil leaves the floor: class video stays on its layer.
        let ch = a.poll(at(t0, 100), &three());
        assert!(ch.video);
        assert_eq!((a.allocation().class_video, a.allocation().floor_video), (Some(High), false));
        // The teacher's 720p layer pauses: 360p at once (not counted as a bandwidth switch).
        let paused = AvailableVideo::simulcast(Some(0), Some(0), None);
        let ch = a.poll(at(t0, 200), &paused);
        assert!(ch.video);
        assert_eq!(a.allocation().class_video, Some(Medium));
        assert_eq!(a.stats().down_switches, 0);
        // It resumes: back up after the hold, like any up-switch.
        let _ = a.on_estimate(at(t0, 300), 5_000_000, &three());
        assert_eq!(a.allocation().class_video, Some(Medium));
        let _ = a.poll(at(t0, 1800), &three());
        assert_eq!(a.allocation().class_video, Some(High));
        // The class video stops altogether, then comes back: a fresh choice, no notice.
        let ch = a.poll(at(t0, 2000), &AvailableVideo::NONE);
        assert!(ch.video && !ch.audio_only);
        assert_eq!(a.allocation(), Allocation::default());
        let _ = a.poll(at(t0, 2100), &three());
        assert_eq!(a.allocation().class_video, Some(High));
    }

    #[test]
    fn two_layers_and_a_single_stream() {
        // Two layers (rids l, h): the allocator never names Medium.
        let two = AvailableVideo::simulcast(Some(0), None, Some(0));
        let mut sim = Sim::new(1_000_000, two);
        sim.run_until(20_000);
        assert!(sim.trace.iter().all(|(_, a)| a.class_video == Some(Low)));
        sim.link.capacity = 2_500_000;
        sim.run_until(30_000);
        assert_eq!(sim.a.allocation().class_video, Some(High));
        assert!(sim.trace.iter().all(|(_, a)| a.class_video != Some(Medium)));

        // One 1.5 Mbit/s stream: it or audio only.
        let single = AvailableVideo::single(0);
        let mut sim = Sim::new(2_000_000, single);
        sim.run_until(10_000);
        assert_eq!(sim.a.allocation().class_video, Some(High));
        sim.link.capacity = 600_000;
        sim.run_until(20_000);
        assert_eq!(sim.a.allocation().class_video, None);
        assert_eq!(sim.a.allocation().audio_only_reason, Some(AudioOnlyReason::WeakConnection));
        let off = sim.first(10_000, |a| a.class_video.is_none()).unwrap();
        assert!(off <= 11_000);
        sim.link.capacity = 2_000_000;
        sim.run_until(30_000);
        let back = sim.first(20_000, |a| a.class_video == Some(High)).unwrap();
        assert!(back <= 25_000);
        assert!(sim.trace.iter().all(|(_, a)| matches!(a.class_video, None | Some(High))));
        // A cheap single stream (a static screen at 200 kbit/s) fits a 400 kbit/s link.
        let t0 = Instant::now();
        let mut a = BandwidthAllocator::default();
        let _ = a.on_estimate(t0, 400_000, &AvailableVideo::single(200_000));
        assert_eq!(a.allocation().class_video, Some(High));
    }

    #[test]
    fn measured_costs_are_used_and_unknown_ones_are_nominal() {
        let t0 = Instant::now();
        // Slides: 720p costs 400 kbit/s measured; 600 kbit/s carries it.
        let slides = AvailableVideo::simulcast(Some(60_000), Some(200_000), Some(400_000));
        let mut a = BandwidthAllocator::default();
        let _ = a.on_estimate(t0, 600_000, &slides);
        assert_eq!(a.allocation().class_video, Some(High));
        // The teacher moves: 720p now costs 1.6 Mbit/s; 600 kbit/s no longer keeps it.
        let moving = AvailableVideo::simulcast(Some(150_000), Some(480_000), Some(1_600_000));
        let ch = a.poll(at(t0, 100), &moving);
        assert!(ch.video);
        assert_eq!(a.allocation().class_video, Some(Medium));
        // Not measured yet (Some(0)): nominal 150k / 500k / 1.5M.
        let mut b = BandwidthAllocator::default();
        let _ = b.on_estimate(t0, 600_000, &three());
        assert_eq!(b.allocation().class_video, Some(Low));
        assert_eq!(b.allocation().probe_bps, Some(1_967_900), "probing toward 1.1 × (1.15 × 1.5M + 64k)");
    }

    #[test]
    fn desired_bitrate_changes_only_with_the_level_or_the_probe() {
        let t0 = Instant::now();
        let mut a = BandwidthAllocator::default();
        let v = |low: u64| AvailableVideo::simulcast(Some(low), Some(500_000), Some(1_500_000));
        let ch = a.on_estimate(t0, 300_000, &v(150_000));
        assert!(ch.video && ch.bwe);
        // A probe toward 720p's up need starts at once: 1.15 × 1.5M + 64k.
        assert_eq!(a.allocation().probe_bps, Some(1_967_900));
        assert_eq!(a.desired_bps(), 1_967_900);
        // Meter jitter inside the probe window changes nothing.
        for i in 1..10 {
            let ch = a.on_estimate(at(t0, i * 100), 300_000, &v(140_000 + i * 2_000));
            assert!(!ch.any(), "{i}: {ch:?}");
        }
        // The window closes: desired back to the top level's need (below the probe target),
        // which re-arms str0m's allocation probe without capping its follow-up probes near
        // what 180p needs.
        let ch = a.poll(at(t0, 1000), &v(150_000));
        assert!(ch.bwe && !ch.video);
        assert_eq!(a.allocation().probe_bps, None);
        assert_eq!(a.desired_bps(), 1_789_000);
        assert_eq!(a.next_timeout(), Some(at(t0, 2000)));
        // Next probe no sooner than the interval.
        assert!(!a.poll(at(t0, 1999), &v(150_000)).any());
        let ch = a.poll(at(t0, 2000), &v(150_000));
        assert!(ch.bwe);
        assert_eq!(a.allocation().probe_bps, Some(1_967_900));
        assert_eq!(a.stats().probes, 2);
        assert_eq!(a.next_timeout(), Some(at(t0, 3000)));
    }

    #[test]
    fn a_short_startup_hold_reaches_the_top_fast_then_the_normal_hold_applies() {
        let config = AllocatorConfig { startup_hold: Duration::from_millis(400), ..Default::default() };
        let mut a = BandwidthAllocator::new(config);
        let video = AvailableVideo::simulcast(Some(0), Some(0), Some(0));
        let t0 = Instant::now();
        let _ = a.poll(t0, &video);
        assert_eq!(a.allocation().class_video, Some(LayerChoice::Low));
        let mut t = t0;
        while a.allocation().class_video != Some(LayerChoice::High) {
            t += Duration::from_millis(100);
            assert!(t < t0 + Duration::from_secs(2), "720p within 2 s on a 4 Mbit/s estimate");
            let _ = a.on_estimate(t, 4_000_000, &video);
        }
        // After a real drop, going up again takes the normal hold.
        let _ = a.on_estimate(t + Duration::from_millis(100), 300_000, &video);
        assert_eq!(a.allocation().class_video, Some(LayerChoice::Low));
        let back = t + Duration::from_millis(200);
        let _ = a.on_estimate(back, 4_000_000, &video);
        let _ = a.on_estimate(back + Duration::from_millis(600), 4_000_000, &video);
        assert_eq!(a.allocation().class_video, Some(LayerChoice::Low), "no start-up hold after a down-switch");
    }

    #[test]
    fn a_probe_step_is_trusted_sooner_than_a_slow_rise() {
        let config = AllocatorConfig { probed_hold: Duration::from_millis(500), ..Default::default() };
        let t0 = Instant::now();
        // Settled on 180p after a drop (so no start-up hold).
        let start = |a: &mut BandwidthAllocator| {
            let _ = a.on_estimate(t0, 4_000_000, &three());
            let _ = a.on_estimate(at(t0, 100), 250_000, &three());
            assert_eq!(a.allocation().class_video, Some(Low));
        };
        // A probe result: 250 → 1,000 kbit/s in one update carries 360p after 500 ms.
        let mut a = BandwidthAllocator::new(config.clone());
        start(&mut a);
        let _ = a.on_estimate(at(t0, 1000), 1_000_000, &three());
        assert_eq!(a.next_timeout(), Some(at(t0, 1500)));
        let _ = a.poll(at(t0, 1400), &three());
        assert_eq!(a.allocation().class_video, Some(Low));
        let _ = a.poll(at(t0, 1500), &three());
        assert_eq!(a.allocation().class_video, Some(Medium));
        // The same level reached by small rises waits the whole `up_hold`.
        let mut b = BandwidthAllocator::new(config);
        start(&mut b);
        let mut e = 250_000.0;
        let mut t = 200;
        while e < 1_000_000.0 {
            e *= 1.2;
            t += 100;
            let _ = b.on_estimate(at(t0, t), e as u64, &three());
        }
        let carried = t0 + Duration::from_millis(t);
        let _ = b.poll(carried + Duration::from_millis(600), &three());
        assert_eq!(b.allocation().class_video, Some(Low), "no step: the normal hold");
        let _ = b.poll(carried + Duration::from_millis(1500), &three());
        assert_eq!(b.allocation().class_video, Some(Medium));
    }

    #[test]
    fn a_flat_estimate_on_a_clean_link_restarts_the_estimator() {
        let config = AllocatorConfig {
            stall_reset_after: Duration::from_secs(2),
            stall_reset_interval: Duration::from_secs(4),
            ..Default::default()
        };
        let t0 = Instant::now();
        // Every 500 ms: the link's loss, then an estimate hovering at 300–380 kbit/s (180p).
        let run = |a: &mut BandwidthAllocator, from: u64, to: u64, loss: f32| -> Vec<(u64, u64)> {
            let mut resets = Vec::new();
            for (i, ms) in (from..to).step_by(500).enumerate() {
                a.on_loss(at(t0, ms), loss);
                let e = if i % 2 == 0 { 300_000 } else { 380_000 };
                if let Some(r) = a.on_estimate(at(t0, ms), e, &three()).reset_estimate {
                    resets.push((ms, r));
                }
            }
            resets
        };
        let mut a = BandwidthAllocator::new(config.clone());
        let resets = run(&mut a, 0, 10_000, 0.0);
        assert_eq!(a.allocation().class_video, Some(Low));
        // First once no new high came for 2 s (the last one: 380k at 0.5 s) on a clean link,
        // then at most every 4 s.
        assert_eq!(resets.iter().map(|r| r.0).collect::<Vec<_>>(), vec![2500, 6500]);
        assert_eq!(resets[0].1, 380_000, "restarted from the current estimate");
        assert_eq!(a.stats().estimator_resets, 2);
        // A lossy link is not stuck, it is congested: no restart.
        let mut b = BandwidthAllocator::new(config.clone());
        assert!(run(&mut b, 0, 10_000, 0.03).is_empty());
        // A rising estimate is not stuck either.
        let mut c = BandwidthAllocator::new(config.clone());
        let mut e = 200_000.0;
        for ms in (0..6_000).step_by(500) {
            c.on_loss(at(t0, ms), 0.0);
            e *= 1.15;
            assert_eq!(c.on_estimate(at(t0, ms), e as u64, &three()).reset_estimate, None);
        }
        // Off by default.
        let mut d = BandwidthAllocator::default();
        assert!(run(&mut d, 0, 10_000, 0.0).is_empty());
    }

    #[test]
    fn next_timeout_completes_the_hold_without_new_estimates() {
        let t0 = Instant::now();
        let mut a = BandwidthAllocator::default();
        let _ = a.on_estimate(t0, 300_000, &three());
        assert_eq!(a.allocation().class_video, Some(Low));
        // One estimate that carries 360p (not 720p), then silence (str0m emits on change only).
        let _ = a.on_estimate(at(t0, 500), 900_000, &three());
        assert_eq!(a.allocation().class_video, Some(Low));
        // Pending: probe window end (1 s), hold end (0.5 s + 1.5 s).
        assert_eq!(a.next_timeout(), Some(at(t0, 1000)));
        let _ = a.poll(at(t0, 1000), &three());
        assert_eq!(a.next_timeout(), Some(at(t0, 2000)));
        let ch = a.poll(at(t0, 2000), &three());
        assert!(ch.video);
        assert_eq!(a.allocation().class_video, Some(Medium));
        assert_eq!(a.stats().up_switches, 1);
        // 720p still out of reach: the next probe started with it, its window ends in 1 s.
        assert_eq!(a.next_timeout(), Some(at(t0, 3000)));
        // A dip resets the hold.
        let mut b = BandwidthAllocator::default();
        let _ = b.on_estimate(t0, 300_000, &three());
        let _ = b.on_estimate(at(t0, 100), 900_000, &three());
        let _ = b.on_estimate(at(t0, 1000), 600_000, &three());
        let _ = b.on_estimate(at(t0, 1100), 900_000, &three());
        let _ = b.poll(at(t0, 2500), &three());
        assert_eq!(b.allocation().class_video, Some(Low));
        let _ = b.poll(at(t0, 2600), &three());
        assert_eq!(b.allocation().class_video, Some(Medium));
    }

    #[test]
    fn stats_count_switches_and_keep_the_estimate() {
        let mut sim = Sim::new(2_000_000, three());
        sim.run_until(10_000);
        sim.link.capacity = 300_000;
        sim.run_until(20_000);
        let st = sim.a.stats();
        assert_eq!(st.switches as usize, sim.switches.len(), "the first choice is no switch");
        assert_eq!(st.down_switches, 1);
        assert_eq!(st.up_switches as usize + st.down_switches as usize, st.switches as usize);
        assert_eq!(st.allocation, sim.a.allocation());
        assert!(st.estimate_bps.unwrap() < 400_000);
        assert_eq!(st.up_hold, Duration::from_millis(1500));
    }

    #[test]
    fn config_and_layer_mapping() {
        assert_eq!(AllocatorConfig::default().validate(), Ok(()));
        let bad = AllocatorConfig { up_headroom: 0.9, ..Default::default() };
        assert!(bad.validate().is_err());
        let bad = AllocatorConfig { probe_duration: Duration::from_secs(5), ..Default::default() };
        assert!(bad.validate().is_err());
        // layer_for_rank agrees with the selector the room uses.
        for n in 1..=3 {
            for rank in 0..n {
                let choice = layer_for_rank(rank, n);
                assert_eq!(crate::LayerSelector::new(choice).select_rank(n), rank, "rank {rank} of {n}");
            }
        }
    }
}
