//! End to end against the real server on loopback: a str0m WHIP teacher sends real VP8
//! simulcast and Opus; 20 WHEP pupils receive; the teacher drops and comes back.

mod common;

use ardoise_loadgen::{Publisher, PublisherConfig, Subscriber, SubscriberReport, dominant_frequency, tone};
use common::{TestServer, lo};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const PUPILS: usize = 20;

#[test]
fn twenty_pupils_receive_everything_across_a_teacher_reconnect() {
    let server = TestServer::start(&[]);
    let teacher = server.token("teacher", Some("demo"));
    let stop = Arc::new(AtomicBool::new(false));

    // Pupils arrive before the teacher.
    let mut pupils = Vec::new();
    let connected = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Video packets each pupil has received so far.
    let received: Arc<Vec<std::sync::atomic::AtomicUsize>> =
        Arc::new((0..PUPILS).map(|_| std::sync::atomic::AtomicUsize::new(0)).collect());
    for i in 0..PUPILS {
        let token = server.join("demo", &format!("Eleve{i}"));
        let base = server.base.clone();
        let stop = stop.clone();
        let connected = connected.clone();
        let received = received.clone();
        pupils.push(std::thread::spawn(move || -> SubscriberReport {
            let mut s = Subscriber::connect_with_layer(&base, "demo", &token, lo(), Some("high")).expect("WHEP");
            // Counted once ICE and DTLS are up, not at the answer.
            while s.report.connected_at.is_none() {
                s.run_for(Duration::from_millis(10)).expect("pupil connects");
            }
            connected.fetch_add(1, Ordering::Relaxed);
            s.keep_audio = i == 0;
            while !stop.load(Ordering::Relaxed) {
                s.run_for(Duration::from_millis(20)).expect("pupil runs");
                received[i].store(s.report.video.len(), Ordering::Relaxed);
            }
            let (status, report) = s.close();
            assert_eq!(status.unwrap(), 200, "WHEP DELETE");
            report
        }));
    }
    common::wait_until(Duration::from_secs(10), "every pupil to connect", || {
        (connected.load(Ordering::Relaxed) == PUPILS).then_some(())
    });

    let config = PublisherConfig {
        server: server.base.clone(),
        class: "demo".into(),
        token: teacher.clone(),
        bind: lo(),
        simulcast: true,
        record_payloads: true,
    };
    // Teacher: 4 s, disconnect (DELETE), back 0.5 s later for 4 s.
    let teacher_thread = {
        let config = config.clone();
        std::thread::spawn(move || {
            let mut first = Publisher::connect(&config).expect("WHIP");
            first.run_for(Duration::from_secs(4)).expect("publish");
            let stats1 = first.stats.clone();
            assert_eq!(first.close().unwrap(), 200, "WHIP DELETE");
            let gone_at = Instant::now();
            std::thread::sleep(Duration::from_millis(500));
            let mut second = Publisher::connect(&config).expect("WHIP again");
            second.run_for(Duration::from_secs(4)).expect("publish again");
            let stats2 = second.stats.clone();
            second.close().unwrap();
            (stats1, stats2, gone_at)
        })
    };

    // A late pupil joins mid-class.
    std::thread::sleep(Duration::from_millis(2500));
    let late_token = server.join("demo", "Retard");
    let mut late =
        Subscriber::connect_with_layer(&server.base, "demo", &late_token, lo(), Some("high")).expect("late WHEP");
    late.run_for(Duration::from_millis(1200)).unwrap();
    let (_, late_report) = late.close();

    let (stats1, stats2, gone_at) = teacher_thread.join().unwrap();
    // The teacher's last packets reach every pupil before the pupils stop.
    let top_sent =
        (stats1.top_layer_packets.load(Ordering::Relaxed) + stats2.top_layer_packets.load(Ordering::Relaxed)) as f64;
    common::eventually(Duration::from_secs(5), || {
        let counts: Vec<usize> = received.iter().map(|r| r.load(Ordering::Relaxed)).collect();
        if counts.iter().all(|&n| n as f64 >= 0.999 * top_sent) {
            Ok(())
        } else {
            Err(format!("video packets received {counts:?} of {top_sent} sent on the top layer"))
        }
    });
    stop.store(true, Ordering::Relaxed);
    let reports: Vec<SubscriberReport> = pupils.into_iter().map(|h| h.join().unwrap()).collect();

    let mut sent: HashSet<u64> = stats1.payloads.lock().unwrap().clone();
    sent.extend(stats2.payloads.lock().unwrap().iter().copied());
    let audio_sent = stats1.audio_packets.load(Ordering::Relaxed) + stats2.audio_packets.load(Ordering::Relaxed);

    for (i, r) in reports.iter().enumerate() {
        let seqs = r.video_seqs();
        assert!(seqs.len() > 500, "pupil {i} got only {} video packets", seqs.len());
        // Identical payloads: every payload received was sent by the teacher.
        let foreign = r.video.iter().filter(|p| !sent.contains(&p.hash)).count();
        assert_eq!(foreign, 0, "pupil {i}: {foreign} video payloads differ from what the teacher sent");
        let foreign_audio = r.audio_hashes.iter().filter(|h| !sent.contains(h)).count();
        assert_eq!(foreign_audio, 0, "pupil {i}: audio payloads differ");
        // Contiguous sequence numbers over the whole class, across the teacher's reconnection.
        let span = seqs.last().unwrap() - seqs.first().unwrap() + 1;
        assert_eq!(span, seqs.len() as u64, "pupil {i}: gaps in video sequence numbers");
        // ≥ 99.9% of the top layer's packets.
        assert!(seqs.len() as f64 >= 0.999 * top_sent, "pupil {i}: {} of {top_sent} top-layer packets", seqs.len());
        let audio: HashSet<u64> = r.audio_seqs.iter().copied().collect();
        assert!(
            audio.len() as f64 >= 0.999 * audio_sent as f64 - 2.0,
            "pupil {i}: {} of {audio_sent} audio packets",
            audio.len()
        );
        // The first packet after the teacher came back starts a keyframe, with a later timestamp.
        let resumed = r
            .video
            .iter()
            .position(|p| p.at > gone_at + Duration::from_millis(100))
            .expect("video after the reconnection");
        let (before, after) = (&r.video[resumed - 1], &r.video[resumed]);
        assert!(after.keyframe_start, "pupil {i}: resumed on a non-keyframe");
        assert_eq!(after.seq, before.seq + 1, "pupil {i}: sequence continues across the reconnection");
        let dt = after.ts.wrapping_sub(before.ts);
        assert!((30_000..200_000).contains(&dt), "pupil {i}: timestamp jumped by {dt} ticks over ~0.5 s");
        assert_eq!(
            r.video.iter().map(|p| p.ssrc).collect::<HashSet<_>>().len(),
            1,
            "pupil {i}: one SSRC for the whole class"
        );
    }
    // Audio decodes to the teacher's 440 Hz tone.
    let pcm = tone::decode(&reports[0].audio_in_order()).expect("opus decodes");
    assert!(pcm.len() > 48_000 * 4, "several seconds of audio");
    assert_eq!(dominant_frequency(&pcm), 440.0);

    // The late pupil's first video packet starts a keyframe, within 500 ms of connecting.
    let first = late_report.video.first().expect("late pupil got video");
    assert!(first.keyframe_start, "late pupil's first frame is a keyframe");
    let ttff = late_report.time_to_first_video().unwrap();
    assert!(ttff <= Duration::from_millis(500), "late pupil waited {ttff:?}");
}
