//! `ardoise loadgen`: one synthetic teacher and N synthetic pupils against a server.

use crate::pool::{PoolProgress, run_pool};
use crate::{Publisher, PublisherConfig, Subscriber, SubscriberReport};
use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// Number of synthetic pupils.
    #[arg(long, default_value_t = 10)]
    pub pupils: usize,
    /// Seconds to run once every pupil has joined.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Pupils joining per second.
    #[arg(long, default_value_t = 10.0)]
    pub ramp: f64,
    /// Teacher token; without it no teacher is started (another publisher must be live).
    #[arg(long)]
    pub token: Option<String>,
    /// Publish only the top layer instead of three simulcast layers.
    #[arg(long)]
    pub no_simulcast: bool,
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
}

/// Result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
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
    /// Total freezes.
    pub freezes: usize,
    /// Per pupil.
    pub per_pupil: Vec<PupilResult>,
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
    }
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
    }
}

fn join(server: &str, class: &str, name: &str) -> Result<String> {
    let body = serde_json::json!({ "name": name }).to_string();
    let r: serde_json::Value = serde_json::from_str(
        &ureq::post(&format!("{server}/api/classes/{class}/join"))
            .set("Content-Type", "application/json")
            .send_string(&body)
            .with_context(|| format!("join {class}"))?
            .into_string()?,
    )?;
    r["token"].as_str().map(String::from).context("no token in join answer")
}

/// Run the scenario.
pub fn run(args: LoadgenArgs) -> Result<()> {
    if !args.bind.is_loopback() {
        anyhow::bail!("loadgen only binds loopback addresses (got {})", args.bind);
    }
    if !matches!(args.layer.as_str(), "auto" | "high" | "medium" | "low") {
        anyhow::bail!("--layer must be auto, high, medium or low (got '{}')", args.layer);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let teacher = match &args.token {
        Some(token) => {
            let config = PublisherConfig {
                server: args.server.clone(),
                class: args.class.clone(),
                token: token.clone(),
                bind: args.bind,
                simulcast: !args.no_simulcast,
                record_payloads: false,
            };
            let mut p = Publisher::connect(&config)?;
            let stop = stop.clone();
            Some(std::thread::spawn(move || -> Result<()> {
                p.run_until(|| stop.load(Ordering::Relaxed))?;
                p.close()?;
                Ok(())
            }))
        }
        None => None,
    };
    let progress = Arc::new(PoolProgress::default());
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
        let attempt = join(&args.server, &args.class, &format!("Eleve{i}"))
            .and_then(|token| {
                let layer = (args.layer != "auto").then_some(args.layer.as_str());
                Subscriber::connect_with_layer(&args.server, &args.class, &token, args.bind, layer)
            });
        match attempt {
            Ok(mut s) => {
                s.keep_audio = false;
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
    while Instant::now() < end {
        std::thread::sleep(Duration::from_secs(1));
        eprintln!(
            "loadgen: {:>4.0}s  pupils connected {}/{}  failed {}",
            start.elapsed().as_secs_f64(),
            progress.connected.load(Ordering::Relaxed),
            args.pupils,
            progress.failed.load(Ordering::Relaxed) + failed_to_join.len(),
        );
    }
    stop.store(true, Ordering::Relaxed);
    let measured = start.elapsed() + gap * args.pupils as u32;
    let mut per: Vec<PupilResult> = failed_to_join.into_iter().map(|(i, e)| failed(i, e)).collect();
    for pool in pools {
        let results = pool.join().map_err(|_| anyhow::anyhow!("pupil pool panicked"))??;
        for (i, r) in results {
            per.push(match r {
                Ok(report) => pupil_result(i, &report, measured),
                Err(e) => failed(i, e),
            });
        }
    }
    per.sort_by_key(|p| p.pupil);
    if let Some(t) = teacher {
        t.join().map_err(|_| anyhow::anyhow!("teacher thread panicked"))??;
    }
    let ok: Vec<&PupilResult> = per.iter().filter(|p| p.error.is_none() && p.video_packets > 0).collect();
    let n = ok.len().max(1) as f64;
    let mut ttff: Vec<f64> = ok.iter().filter_map(|p| p.time_to_first_frame_ms).collect();
    ttff.sort_by(|a, b| a.total_cmp(b));
    let result = LoadResult {
        pupils: args.pupils,
        pupils_ok: ok.len(),
        duration_s: measured.as_secs_f64(),
        mean_video_loss: ok.iter().map(|p| p.video_loss).sum::<f64>() / n,
        max_video_loss: ok.iter().map(|p| p.video_loss).fold(0.0, f64::max),
        mean_video_kbps: ok.iter().map(|p| p.video_kbps).sum::<f64>() / n,
        median_ttff_ms: ttff.get(ttff.len() / 2).copied(),
        freezes: ok.iter().map(|p| p.freezes).sum(),
        per_pupil: per,
    };
    eprintln!(
        "loadgen: {}/{} pupils ok, video {:.0} kbit/s each, loss mean {:.3}% max {:.3}%, freezes {}, median time to first frame {:?} ms",
        result.pupils_ok,
        result.pupils,
        result.mean_video_kbps,
        result.mean_video_loss * 100.0,
        result.max_video_loss * 100.0,
        result.freezes,
        result.median_ttff_ms.map(|v| v.round())
    );
    let json = serde_json::to_string_pretty(&result)?;
    match &args.json {
        Some(path) => std::fs::write(path, json)?,
        None => println!("{json}"),
    }
    Ok(())
}
