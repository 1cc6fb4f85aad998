//! `ardoise loadgen`: one synthetic teacher and N synthetic pupils against a server — Ardoise
//! (WHIP/WHEP), or Janus VideoRoom with `--janus URL` for side-by-side benchmarks.
//!
//! Besides the per-pupil results, it counts the RTP packets all pupils receive over a
//! measurement window (from `--settle` seconds after the last pupil joined to the end of the
//! run) and, with `--watch-pid`, the CPU time and memory of that process (the server) over the
//! same window, so that a benchmark script can divide one by the other.

use crate::janus::{self, Janus};
use crate::pool::{PoolProgress, run_pool};
use crate::{Publisher, PublisherConfig, Subscriber, SubscriberReport};
use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Options of `ardoise loadgen`.
#[derive(Args, Debug, Clone)]
pub struct LoadgenArgs {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Class id.
    #[arg(long, default_value = "demo")]
    pub class: String,
    /// Number of synthetic pupils (in all classes).
    #[arg(long, default_value_t = 10)]
    pub pupils: usize,
    /// Classes run side by side, each with its own teacher; pupil i joins class i mod N.
    /// With N > 1 the classes are `CLASS1`…`CLASSN` (`--class` is the prefix; their ids are
    /// their join codes, as in `benches/classes.sh`'s configuration) and `--token` lists one
    /// teacher token per class, comma-separated. Against Janus: N rooms.
    #[arg(long, default_value_t = 1)]
    pub classes: usize,
    /// Pupils per class: sets `--pupils` to `--classes` × this.
    #[arg(long)]
    pub pupils_per_class: Option<usize>,
    /// Seconds to run once every pupil has joined.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Pupils joining per second.
    #[arg(long, default_value_t = 10.0)]
    pub ramp: f64,
    /// Teacher token (one per class, comma-separated, with `--classes`); without it no
    /// teacher is started (another publisher must be live). Not needed with `--janus`.
    #[arg(long)]
    pub token: Option<String>,
    /// Run against Janus VideoRoom at this HTTP API URL (e.g. `http://127.0.0.1:18088/janus`)
    /// instead of Ardoise: a room is created, the teacher publishes in it and every pupil
    /// subscribes to it; `--server`, `--class` and `--token` are ignored. `--layer high|medium|low`
    /// fixes Janus's substream 2|1|0; `auto` leaves Janus's default (the highest; it does not adapt).
    #[arg(long)]
    pub janus: Option<String>,
    /// Start the measurement window this many seconds after the last pupil joined.
    #[arg(long, default_value_t = 3)]
    pub settle: u64,
    /// Measure this process's CPU time and resident memory over the measurement window
    /// (from /proc; give the server's pid).
    #[arg(long)]
    pub watch_pid: Option<u32>,
    /// Publish only the top layer instead of three simulcast layers.
    #[arg(long)]
    pub no_simulcast: bool,
    /// The teachers pace their video like a real encoder (each frame's packets spread over
    /// most of the frame's interval) instead of sending each frame as one burst.
    #[arg(long)]
    pub paced: bool,
    /// Local IP for the synthetic peers (loopback only).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Threads sharing the pupils (each runs a readiness loop over its pupils' sockets).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Write the JSON result to this file (else to stdout after the summary).
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Video each pupil asks for: `auto` (the server adapts to its link), or a fixed layer
    /// `high`, `medium`, `low`.
    #[arg(long, default_value = "auto")]
    pub layer: String,
    /// The pupils' congestion feedback: `twcc` (transport-cc every 50 ms, receiver reports
    /// and NACKs, as browsers), `reports` (no transport-cc: receiver reports and NACKs, as
    /// many non-browser players), or `remb:KBPS` (no transport-cc, a REMB of KBPS every
    /// second). Ardoise only.
    #[arg(long, default_value = "twcc")]
    pub feedback: String,
    /// How the teacher and the pupils reach the server: `udp`, or `tcp` (ICE-TCP only, as
    /// behind a firewall that drops UDP).
    #[arg(long, default_value = "udp")]
    pub transport: String,
}

/// Result of one pupil.
#[derive(Debug, Clone, Serialize)]
pub struct PupilResult {
    /// Index.
    pub pupil: usize,
    /// Error, if it failed.
    pub error: Option<String>,
    /// Received video bitrate, kbit/s.
    pub video_kbps: f64,
    /// Video packets received.
    pub video_packets: usize,
    /// Audio packets received.
    pub audio_packets: usize,
    /// Missing video sequence numbers / expected.
    pub video_loss: f64,
    /// Gaps over 500 ms between video packets.
    pub freezes: usize,
    /// Connection to first video packet, ms.
    pub time_to_first_frame_ms: Option<f64>,
    /// End-to-end delay of its video frames (teacher's capture time → first packet here,
    /// abs-capture-time), ms: median and 95th percentile.
    pub e2e_delay_p50_ms: Option<f64>,
    /// See `e2e_delay_p50_ms`.
    pub e2e_delay_p95_ms: Option<f64>,
    /// How long a video frame takes to arrive here, its first packet to its last, ms
    /// (median): about nothing when the teacher sends frames as bursts, most of a frame's
    /// interval when it paces them (`--paced`).
    #[serde(default)]
    pub frame_spread_p50_ms: Option<f64>,
    /// Video loss among the packets that arrived in the measurement window (steady state,
    /// without the joins); 1 when video had come before the window but none in it.
    pub window_video_loss: Option<f64>,
    /// Local UDP port (to find its datagrams in a capture).
    pub local_port: Option<u16>,
    /// RTP packets it dropped as numbered before the start of their stream (Janus only).
    pub stale_dropped: u64,
    /// Video had come but stopped: none in the last 2 s of the run. (Gaps between packets
    /// count as freezes; a stream that never resumes has no such gap.)
    pub video_stopped: bool,
}

/// Result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    /// Classes run side by side.
    pub classes: usize,
    /// Pupils asked.
    pub pupils: usize,
    /// Pupils that connected and received video.
    pub pupils_ok: usize,
    /// Seconds measured.
    pub duration_s: f64,
    /// Mean video loss.
    pub mean_video_loss: f64,
    /// Worst video loss.
    pub max_video_loss: f64,
    /// Mean received video bitrate, kbit/s.
    pub mean_video_kbps: f64,
    /// Median time to first frame, ms.
    pub median_ttff_ms: Option<f64>,
    /// Median over the pupils of their median end-to-end frame delay, ms.
    pub e2e_delay_p50_ms: Option<f64>,
    /// Median over the pupils of their 95th-percentile end-to-end frame delay, ms.
    pub e2e_delay_p95_ms: Option<f64>,
    /// Total freezes.
    pub freezes: usize,
    /// Pupils whose video stopped before the end (counted in `pupils_ok`).
    pub pupils_video_stopped: usize,
    /// RTP packets the pupils dropped as numbered before the start of their stream.
    pub stale_dropped: u64,
    /// `ardoise` or `janus`.
    pub server: String,
    /// The measurement window (absent when `--settle` ≥ `--duration`).
    pub window: Option<WindowResult>,
    /// Per pupil.
    pub per_pupil: Vec<PupilResult>,
}

/// Counts over the measurement window: from `--settle` s after the last pupil joined to the
/// end of `--duration`.
#[derive(Debug, Clone, Serialize)]
pub struct WindowResult {
    /// Length, s.
    pub seconds: f64,
    /// RTP packets (audio + video, as str0m delivered them) all pupils received in the window.
    pub rtp_packets: u64,
    /// CPU time of this load generator (user + system, all threads) in the window, s.
    pub loadgen_cpu_s: f64,
    /// The process watched (`--watch-pid`).
    pub server_pid: Option<u32>,
    /// Its CPU time (user + system, all threads) in the window, s.
    pub server_cpu_s: Option<f64>,
    /// Its CPU time per RTP packet the pupils received, µs.
    pub server_cpu_us_per_packet: Option<f64>,
    /// Its resident memory at the start of the window, KiB.
    pub server_rss_kib_start: Option<u64>,
    /// Its resident memory at the end of the window, KiB.
    pub server_rss_kib_end: Option<u64>,
    /// Mean over the pupils that got video of their loss in the window.
    pub mean_video_loss: Option<f64>,
    /// Worst pupil's loss in the window.
    pub max_video_loss: Option<f64>,
    /// Busy share of the whole machine in the window (all cores, /proc/stat), in cores. The
    /// kernel samples it at ticks, so it undercounts short bursts (a packet forwarder's work);
    /// it reads continuous work (a compiler) well: more than server + load generator means
    /// other work disturbed the run.
    pub machine_busy_cores: Option<f64>,
}

/// One reading at a window edge.
struct Sample {
    at: Instant,
    packets: u64,
    loadgen_ticks: Option<u64>,
    server_ticks: Option<u64>,
    server_rss_kib: Option<u64>,
    machine: Option<(u64, u64, usize)>,
}

/// `/proc/<pid>/stat` utime + stime, in clock ticks.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let rest: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
    Some(rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?)
}

/// `/proc/<pid>/status` VmRSS, KiB.
fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok()
}

/// `/proc/stat` all-cores (busy, total) ticks and the number of cores; idle and iowait are not
/// busy. (Not `available_parallelism`: the load generator may be pinned to one core.)
fn machine_ticks() -> Option<(u64, u64, usize)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).take(8).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().sum();
    let cores =
        stat.lines().filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit)).count();
    Some((total - v.get(3)? - v.get(4)?, total, cores))
}

/// Clock ticks per second of /proc's times (USER_HZ, 100 on Linux x86 and arm64).
const TICKS_PER_S: f64 = 100.0;

impl Sample {
    fn take(counter: &AtomicU64, pid: Option<u32>) -> Sample {
        let pid = pid.map(|p| p.to_string());
        Sample {
            at: Instant::now(),
            packets: counter.load(Ordering::Relaxed),
            loadgen_ticks: cpu_ticks("self"),
            server_ticks: pid.as_deref().and_then(cpu_ticks),
            server_rss_kib: pid.as_deref().and_then(rss_kib),
            machine: machine_ticks(),
        }
    }

    fn window(&self, end: &Sample, pid: Option<u32>) -> WindowResult {
        let ticks = |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?) as f64 / TICKS_PER_S);
        let packets = end.packets - self.packets;
        let server_cpu_s = ticks(self.server_ticks, end.server_ticks);
        WindowResult {
            seconds: end.at.duration_since(self.at).as_secs_f64(),
            rtp_packets: packets,
            loadgen_cpu_s: ticks(self.loadgen_ticks, end.loadgen_ticks).unwrap_or(f64::NAN),
            server_pid: pid,
            server_cpu_s,
            server_cpu_us_per_packet: server_cpu_s.filter(|_| packets > 0).map(|c| c * 1e6 / packets as f64),
            server_rss_kib_start: self.server_rss_kib,
            server_rss_kib_end: end.server_rss_kib,
            mean_video_loss: None,
            max_video_loss: None,
            machine_busy_cores: match (self.machine, end.machine) {
                (Some((b0, t0, _)), Some((b1, t1, cores))) if t1 > t0 => {
                    Some((b1 - b0) as f64 / (t1 - t0) as f64 * cores as f64)
                }
                _ => None,
            },
        }
    }
}

/// The `q` quantile (0..1) of `values` (nearest rank), if any.
fn percentile(values: &[f32], q: f64) -> Option<f64> {
    let mut v: Vec<f32> = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v.get(i).map(|x| *x as f64)
}

/// The median of `values`, if any.
fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f32> = values.map(|x| x as f32).collect();
    percentile(&v, 0.5)
}

/// Summarise one pupil's report over `duration`.
pub fn pupil_result(pupil: usize, r: &SubscriberReport, duration: Duration) -> PupilResult {
    let seqs = r.video_seqs();
    let expected = match (seqs.first(), seqs.last()) {
        (Some(a), Some(b)) => b - a + 1,
        _ => 0,
    };
    let loss = if expected > 0 { 1.0 - seqs.len() as f64 / expected as f64 } else { 1.0 };
    let bytes: u64 = r.video.iter().map(|p| p.len as u64).sum();
    let freezes = r.video.windows(2).filter(|w| w[1].at.duration_since(w[0].at) > Duration::from_millis(500)).count();
    PupilResult {
        pupil,
        error: None,
        video_kbps: bytes as f64 * 8.0 / duration.as_secs_f64().max(0.001) / 1000.0,
        video_packets: r.video.len(),
        audio_packets: r.audio_hashes.len(),
        video_loss: loss,
        freezes,
        time_to_first_frame_ms: r.time_to_first_video().map(|d| d.as_secs_f64() * 1000.0),
        e2e_delay_p50_ms: percentile(&r.frame_delays_ms, 0.5),
        e2e_delay_p95_ms: percentile(&r.frame_delays_ms, 0.95),
        frame_spread_p50_ms: {
            let spreads: Vec<f32> = r
                .video
                .chunk_by(|a, b| a.ts == b.ts)
                .filter(|f| f.len() > 1)
                .map(|f| f[f.len() - 1].at.duration_since(f[0].at).as_secs_f32() * 1000.0)
                .collect();
            percentile(&spreads, 0.5)
        },
        window_video_loss: None,
        video_stopped: false,
        local_port: r.local.map(|a| a.port()),
        stale_dropped: r.stale_dropped,
    }
}

/// Video loss among the packets of `r` that arrived between `from` and `to` (1 when video
/// had come before `from` but none in the window).
fn loss_between(r: &SubscriberReport, from: Instant, to: Instant) -> Option<f64> {
    let mut s: Vec<u64> = r.video.iter().filter(|p| p.at >= from && p.at <= to).map(|p| p.seq).collect();
    if s.is_empty() {
        return r.video.first().map(|_| 1.0);
    }
    s.sort_unstable();
    s.dedup();
    let expected = s.last()? - s.first()? + 1;
    Some(1.0 - s.len() as f64 / expected as f64)
}

fn failed(pupil: usize, error: String) -> PupilResult {
    PupilResult {
        pupil,
        error: Some(error),
        video_kbps: 0.0,
        video_packets: 0,
        audio_packets: 0,
        video_loss: 1.0,
        freezes: 0,
        time_to_first_frame_ms: None,
        e2e_delay_p50_ms: None,
        e2e_delay_p95_ms: None,
        frame_spread_p50_ms: None,
        window_video_loss: None,
        video_stopped: false,
        local_port: None,
        stale_dropped: 0,
    }
}

fn join(server: &str, class: &str, name: &str) -> Result<String> {
    let body = serde_json::json!({ "name": name }).to_string();
    let r: serde_json::Value = serde_json::from_str(
        &ardoise_client::http::post(&format!("{server}/api/classes/{class}/join"), "application/json", None, &body)
            .with_context(|| format!("join {class}"))?
            .into_string()?,
    )?;
    r["token"].as_str().map(String::from).context("no token in join answer")
}

/// The class ids of a run: `--class` alone, or `--class` numbered from 1 with `--classes`.
pub fn class_ids(class: &str, classes: usize) -> Vec<String> {
    match classes {
        0 | 1 => vec![class.to_owned()],
        n => (1..=n).map(|k| format!("{class}{k}")).collect(),
    }
}

/// The teacher of one class, publishing until `stop`, on its own thread.
fn start_ardoise_teacher(
    args: &LoadgenArgs,
    class: &str,
    token: &str,
    transports: ardoise_client::Transports,
    stop: &Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<Result<()>>> {
    let config = PublisherConfig {
        server: args.server.clone(),
        class: class.to_owned(),
        token: token.to_owned(),
        bind: args.bind,
        simulcast: !args.no_simulcast,
        record_payloads: false,
    };
    let mut p = Publisher::connect_over(&config, transports).with_context(|| format!("teacher of {class}"))?;
    p.set_paced(args.paced);
    let stop = stop.clone();
    Ok(std::thread::spawn(move || -> Result<()> {
        p.run_until(|| stop.load(Ordering::Relaxed))?;
        p.close()?;
        Ok(())
    }))
}

/// The teacher of one Janus room; returns its thread and its feed once its media flows
/// (Janus offers subscribers the streams it has seen).
fn start_janus_teacher(
    args: &LoadgenArgs,
    api: &Arc<Janus>,
    room: u64,
    stop: &Arc<AtomicBool>,
) -> Result<(std::thread::JoinHandle<Result<()>>, u64)> {
    let (mut p, feed) = janus::publish(api, room, args.bind, !args.no_simulcast).context("Janus publisher")?;
    p.set_paced(args.paced);
    let stats = p.stats.clone();
    let teacher_stop = stop.clone();
    let t = std::thread::spawn(move || -> Result<()> {
        p.run_until(|| teacher_stop.load(Ordering::Relaxed))?;
        p.close()?;
        Ok(())
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while stats.video_packets.load(Ordering::Relaxed) == 0 {
        if t.is_finished() || Instant::now() > deadline {
            stop.store(true, Ordering::Relaxed);
            t.join().map_err(|_| anyhow::anyhow!("teacher thread panicked"))??;
            anyhow::bail!("the teacher did not connect to Janus within 10 s");
        }
        std::thread::sleep(Duration::from_millis(50)); // polling the teacher's counter
    }
    Ok((t, feed))
}

/// Run the scenario.
pub fn run(mut args: LoadgenArgs) -> Result<()> {
    if args.classes == 0 {
        anyhow::bail!("--classes must be at least 1");
    }
    if let Some(m) = args.pupils_per_class {
        args.pupils = args.classes * m;
    }
    let classes = class_ids(&args.class, args.classes);
    let tokens: Option<Vec<String>> = args.token.as_ref().map(|t| t.split(',').map(str::to_owned).collect());
    if let Some(t) = &tokens
        && args.janus.is_none()
        && t.len() != classes.len()
    {
        anyhow::bail!("--token lists {} teacher tokens for {} classes", t.len(), classes.len());
    }
    if !args.bind.is_loopback() {
        anyhow::bail!("loadgen only binds loopback addresses (got {})", args.bind);
    }
    let transports = match args.transport.as_str() {
        "udp" => ardoise_client::Transports::UDP,
        "tcp" => ardoise_client::Transports::TCP,
        other => anyhow::bail!("--transport must be udp or tcp (got '{other}')"),
    };
    let feedback: crate::Feedback = args.feedback.parse().map_err(anyhow::Error::msg)?;
    if !matches!(args.layer.as_str(), "auto" | "high" | "medium" | "low") {
        anyhow::bail!("--layer must be auto, high, medium or low (got '{}')", args.layer);
    }
    let stop = Arc::new(AtomicBool::new(false));
    // With --janus: the API client, its keepalive thread, a room per class and each room's
    // teacher's feed.
    let janus = match &args.janus {
        Some(url) => {
            let api = Janus::new(url);
            let keepalive = api.keep_alive(stop.clone());
            let mut rooms = Vec::new();
            for _ in &classes {
                rooms.push(janus::Room::create(&api, 4_000_000).context("create a Janus room")?);
            }
            Some((api, keepalive, rooms))
        }
        None => None,
    };
    let mut janus_feeds = Vec::new();
    let mut teachers = Vec::new();
    match (&janus, &tokens) {
        (Some((api, _, rooms)), _) => {
            for room in rooms {
                let (t, feed) = start_janus_teacher(&args, api, room.id, &stop)?;
                teachers.push(t);
                janus_feeds.push(feed);
            }
            // Give Janus a moment to learn the simulcast layers.
            std::thread::sleep(Duration::from_secs(1));
        }
        (None, Some(tokens)) => {
            for (class, token) in classes.iter().zip(tokens) {
                teachers.push(start_ardoise_teacher(&args, class, token, transports, &stop)?);
            }
        }
        (None, None) => {}
    }
    let progress = Arc::new(PoolProgress::default());
    let received = Arc::new(AtomicU64::new(0));
    let threads = args.threads.max(1);
    let mut senders = Vec::new();
    let mut pools = Vec::new();
    for _ in 0..threads {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, progress) = (stop.clone(), progress.clone());
        pools.push(std::thread::spawn(move || run_pool(rx, stop, progress)));
        senders.push(tx);
    }
    let gap = Duration::from_secs_f64(1.0 / args.ramp.max(0.1));
    let mut failed_to_join = Vec::new();
    let started = Instant::now();
    for i in 0..args.pupils {
        let k = i % classes.len();
        let attempt = match &janus {
            Some((api, _, rooms)) => {
                // Janus sends the highest layer unless told otherwise (it does not adapt).
                let substream = match args.layer.as_str() {
                    "low" => Some(0),
                    "medium" => Some(1),
                    "high" => Some(2),
                    _ => None,
                };
                janus::subscribe(api, rooms[k].id, janus_feeds[k], args.bind, substream)
            }
            None => join(&args.server, &classes[k], &format!("Eleve{i}")).and_then(|token| {
                let layer = (args.layer != "auto").then_some(args.layer.as_str());
                Subscriber::connect_with_feedback(
                    &args.server,
                    &classes[k],
                    &token,
                    args.bind,
                    layer,
                    transports,
                    feedback,
                )
            }),
        };
        match attempt {
            Ok(mut s) => {
                s.keep_audio = false;
                s.rtp_counter = Some(received.clone());
                let _ = senders[i % threads].send((i, s));
            }
            Err(e) => failed_to_join.push((i, e.to_string())),
        }
        let due = started + gap * (i as u32 + 1);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    drop(senders);
    let start = Instant::now();
    let end = start + Duration::from_secs(args.duration);
    let window_at = (args.settle < args.duration).then(|| start + Duration::from_secs(args.settle));
    let mut window_start = None;
    let mut next_line = start + Duration::from_secs(1);
    while Instant::now() < end {
        let wake = match (&window_start, window_at) {
            (None, Some(at)) => next_line.min(at),
            _ => next_line,
        };
        std::thread::sleep(wake.min(end).saturating_duration_since(Instant::now()));
        if window_start.is_none() && window_at.is_some_and(|at| Instant::now() >= at) {
            window_start = Some(Sample::take(&received, args.watch_pid));
        }
        if Instant::now() < next_line {
            continue;
        }
        next_line += Duration::from_secs(1);
        eprintln!(
            "loadgen: {:>4.0}s  pupils connected {}/{}  failed {}",
            start.elapsed().as_secs_f64(),
            progress.connected.load(Ordering::Relaxed),
            args.pupils,
            progress.failed.load(Ordering::Relaxed) + failed_to_join.len(),
        );
    }
    let window_end = Sample::take(&received, args.watch_pid);
    let bounds = window_start.as_ref().map(|s| (s.at, window_end.at));
    let mut window = window_start.map(|s| s.window(&window_end, args.watch_pid));
    stop.store(true, Ordering::Relaxed);
    let measured = start.elapsed() + gap * args.pupils as u32;
    let mut per: Vec<PupilResult> = failed_to_join.into_iter().map(|(i, e)| failed(i, e)).collect();
    for pool in pools {
        let results = pool.join().map_err(|_| anyhow::anyhow!("pupil pool panicked"))??;
        for (i, r) in results {
            per.push(match r {
                Ok(report) => PupilResult {
                    window_video_loss: bounds.and_then(|(from, to)| loss_between(&report, from, to)),
                    video_stopped: report
                        .video
                        .last()
                        .is_some_and(|p| window_end.at.saturating_duration_since(p.at) > Duration::from_secs(2)),
                    ..pupil_result(i, &report, measured)
                },
                Err(e) => failed(i, e),
            });
        }
    }
    per.sort_by_key(|p| p.pupil);
    for t in teachers {
        t.join().map_err(|_| anyhow::anyhow!("teacher thread panicked"))??;
    }
    if let Some((_, keepalive, rooms)) = janus {
        for room in rooms {
            if let Err(e) = room.destroy() {
                eprintln!("loadgen: destroying a Janus room: {e}");
            }
        }
        let _ = keepalive.join();
    }
    let ok: Vec<&PupilResult> = per.iter().filter(|p| p.error.is_none() && p.video_packets > 0).collect();
    let n = ok.len().max(1) as f64;
    let mut ttff: Vec<f64> = ok.iter().filter_map(|p| p.time_to_first_frame_ms).collect();
    ttff.sort_by(|a, b| a.total_cmp(b));
    if let Some(w) = &mut window {
        let losses: Vec<f64> = ok.iter().filter_map(|p| p.window_video_loss).collect();
        if !losses.is_empty() {
            w.mean_video_loss = Some(losses.iter().sum::<f64>() / losses.len() as f64);
            w.max_video_loss = Some(losses.iter().copied().fold(0.0, f64::max));
        }
    }
    let result = LoadResult {
        classes: classes.len(),
        pupils: args.pupils,
        pupils_ok: ok.len(),
        duration_s: measured.as_secs_f64(),
        mean_video_loss: ok.iter().map(|p| p.video_loss).sum::<f64>() / n,
        max_video_loss: ok.iter().map(|p| p.video_loss).fold(0.0, f64::max),
        mean_video_kbps: ok.iter().map(|p| p.video_kbps).sum::<f64>() / n,
        median_ttff_ms: ttff.get(ttff.len() / 2).copied(),
        e2e_delay_p50_ms: median(ok.iter().filter_map(|p| p.e2e_delay_p50_ms)),
        e2e_delay_p95_ms: median(ok.iter().filter_map(|p| p.e2e_delay_p95_ms)),
        freezes: ok.iter().map(|p| p.freezes).sum(),
        pupils_video_stopped: ok.iter().filter(|p| p.video_stopped).count(),
        stale_dropped: per.iter().map(|p| p.stale_dropped).sum(),
        server: if args.janus.is_some() { "janus" } else { "ardoise" }.to_owned(),
        window,
        per_pupil: per,
    };
    eprintln!(
        "loadgen: {}/{} pupils ok ({} of them stopped getting video), video {:.0} kbit/s each, loss mean {:.3}% max {:.3}%, freezes {}, median time to first frame {:?} ms, end-to-end frame delay p50 {:?} ms p95 {:?} ms",
        result.pupils_ok,
        result.pupils,
        result.pupils_video_stopped,
        result.mean_video_kbps,
        result.mean_video_loss * 100.0,
        result.max_video_loss * 100.0,
        result.freezes,
        result.median_ttff_ms.map(|v| v.round()),
        result.e2e_delay_p50_ms.map(|v| (v * 10.0).round() / 10.0),
        result.e2e_delay_p95_ms.map(|v| (v * 10.0).round() / 10.0)
    );
    if let Some(w) = &result.window {
        eprintln!(
            "loadgen: window {:.1} s: {} RTP packets received ({:.0}/s), video loss mean {:.3}% max {:.3}%, loadgen CPU {:.2} s{}",
            w.seconds,
            w.rtp_packets,
            w.rtp_packets as f64 / w.seconds.max(0.001),
            w.mean_video_loss.unwrap_or(f64::NAN) * 100.0,
            w.max_video_loss.unwrap_or(f64::NAN) * 100.0,
            w.loadgen_cpu_s,
            match (w.server_cpu_s, w.server_cpu_us_per_packet) {
                (Some(c), Some(us)) => format!(", server CPU {c:.2} s = {us:.2} us per packet"),
                _ => String::new(),
            }
        );
    }
    let json = serde_json::to_string_pretty(&result)?;
    match &args.json {
        Some(path) => std::fs::write(path, json)?,
        None => println!("{json}"),
    }
    Ok(())
}
