//! `/metrics` in the Prometheus text exposition format.
//!
//! Readable without a token only from `http.metrics_allow` (loopback by default), otherwise
//! with an admin token. Classes appear under opaque labels (`c` + 8 hex digits, stable for
//! the life of the process; the admin API gives each class's label), never by id. The
//! numbers come from the workers' cached snapshot: a flood of requests reaches the media
//! threads at most every [`SNAPSHOT_MAX_AGE`](crate::state::SNAPSHOT_MAX_AGE).

use crate::Problem;
use crate::limits::ClientAddr;
use crate::state::SharedState;
use ardoise_proto::{ClassState, Role};
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use std::fmt::Write;

/// `GET /metrics`
pub async fn metrics(
    State(s): State<SharedState>,
    ClientAddr(ip): ClientAddr,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    if !s.metrics_allow.iter().any(|n| n.contains(&ip)) {
        let claims = s.authenticate(&headers)?;
        if claims.role != Role::Admin {
            return Err(Problem::forbidden("/metrics needs an admin token from this address"));
        }
    }
    let snaps = s.snapshots.get(&s.media).await;
    let classes = s.classes.list();
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, rows: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let count = |st: ClassState| classes.iter().filter(|c| c.state == st).count() as f64;
    gauge(
        "ardoise_classes",
        "Classes by state.",
        "gauge",
        vec![
            ("{state=\"open\"}".into(), count(ClassState::Open)),
            ("{state=\"live\"}".into(), count(ClassState::Live)),
            ("{state=\"ended\"}".into(), count(ClassState::Ended)),
        ],
    );
    let per_worker = |f: &dyn Fn(&ardoise_proto::WorkerStats) -> u64| -> Vec<(String, f64)> {
        snaps.iter().map(|s| (format!("{{worker=\"{}\"}}", s.worker.index), f(&s.worker) as f64)).collect()
    };
    gauge("ardoise_rooms", "Rooms hosted per media worker.", "gauge", per_worker(&|w| w.rooms as u64));
    gauge(
        "ardoise_participants",
        "Peer connections per media worker.",
        "gauge",
        per_worker(&|w| w.participants as u64),
    );
    gauge("ardoise_datagrams_in_total", "UDP datagrams received.", "counter", per_worker(&|w| w.datagrams_in));
    gauge("ardoise_datagrams_out_total", "UDP datagrams sent.", "counter", per_worker(&|w| w.datagrams_out));
    gauge(
        "ardoise_tcp_connections_total",
        "ICE-TCP connections handed to each worker.",
        "counter",
        per_worker(&|w| w.tcp_connections),
    );
    gauge("ardoise_tcp_open", "ICE-TCP connections open now.", "gauge", per_worker(&|w| w.tcp_open as u64));
    gauge("ardoise_tcp_frames_in_total", "Frames received over ICE-TCP.", "counter", per_worker(&|w| w.tcp_frames_in));
    gauge(
        "ardoise_tcp_dropped_total",
        "Packets dropped toward ICE-TCP clients that do not keep up (video first).",
        "counter",
        per_worker(&|w| w.tcp_dropped),
    );
    gauge(
        "ardoise_datagrams_unknown_total",
        "UDP datagrams dropped unread (unknown address, not STUN for a known session).",
        "counter",
        per_worker(&|w| w.datagrams_unknown),
    );
    gauge(
        "ardoise_datagrams_unknown_limited_total",
        "Of those, dropped before parsing: their source sent over 100 unknown datagrams that second.",
        "counter",
        per_worker(&|w| w.datagrams_unknown_limited),
    );
    gauge(
        "ardoise_worker_commands_queued",
        "Commands waiting in a media worker's queue.",
        "gauge",
        per_worker(&|w| w.commands_queued),
    );
    gauge(
        "ardoise_worker_tcp_input_queued",
        "ICE-TCP frames waiting for a media worker.",
        "gauge",
        per_worker(&|w| w.tcp_input_queued),
    );
    gauge(
        "ardoise_worker_restarts_total",
        "Times a media worker panicked and was replaced (its classes reconnected).",
        "counter",
        per_worker(&|w| w.restarts),
    );
    gauge(
        "ardoise_send_syscalls_total",
        "sendmmsg calls (each carries many datagrams).",
        "counter",
        per_worker(&|w| w.send_syscalls),
    );
    gauge("ardoise_worker_wakeups_total", "Times a media worker woke up.", "counter", per_worker(&|w| w.wakeups));
    gauge(
        "ardoise_worker_timer_wakeups_total",
        "Times a media worker woke up for a timer.",
        "counter",
        per_worker(&|w| w.timer_wakeups),
    );
    gauge(
        "ardoise_worker_slices_total",
        "Batches a media worker sent in slices (large fan-outs).",
        "counter",
        per_worker(&|w| w.slices),
    );
    if let Some(cluster) = &s.cluster {
        let view = cluster.view();
        let me = cluster.node_id();
        let node = |n: &str| format!("{{node=\"{n}\"}}");
        gauge(
            "ardoise_cluster_nodes_alive",
            "Nodes of the cluster heart-beating, as this node sees them.",
            "gauge",
            vec![(node(me), view.nodes.iter().filter(|n| n.alive).count() as f64)],
        );
        gauge(
            "ardoise_cluster_classes_owned",
            "Classes this node owns.",
            "gauge",
            vec![(node(me), view.nodes.iter().find(|n| n.id == me).map_or(0, |n| n.classes) as f64)],
        );
        gauge(
            "ardoise_cluster_edges",
            "Edges relaying the classes this node owns (a class larger than a node).",
            "gauge",
            vec![(node(me), s.cascade.edges() as f64)],
        );
        gauge(
            "ardoise_cluster_classes_relayed",
            "Classes another node owns that this node relays to its pupils (an edge).",
            "gauge",
            vec![(node(me), s.cascade.relayed() as f64)],
        );
    }
    gauge("ardoise_bytes_in_total", "UDP bytes received.", "counter", per_worker(&|w| w.bytes_in));
    gauge("ardoise_bytes_out_total", "UDP bytes sent.", "counter", per_worker(&|w| w.bytes_out));
    gauge(
        "ardoise_rtp_packets_in_total",
        "RTP packets received from publishers.",
        "counter",
        per_worker(&|w| w.rtp_in),
    );
    gauge(
        "ardoise_rtp_packets_forwarded_total",
        "RTP packets forwarded to subscribers.",
        "counter",
        per_worker(&|w| w.rtp_forwarded),
    );
    gauge("ardoise_nacks_total", "NACKs received from subscribers.", "counter", per_worker(&|w| w.nacks));
    gauge("ardoise_plis_sent_total", "Keyframe requests sent to publishers.", "counter", per_worker(&|w| w.plis_sent));
    gauge(
        "ardoise_keyframe_replays_total",
        "Pupils sent the frames since a recent keyframe when they connected (no keyframe asked for).",
        "counter",
        per_worker(&|w| w.keyframe_replays),
    );
    gauge(
        "ardoise_recording_dropped_total",
        "Batches of a recorded programme dropped because the recorder's queue was full.",
        "counter",
        per_worker(&|w| w.recording_dropped),
    );
    gauge(
        "ardoise_fan_out_items_total",
        "Packets and shapes a class's home room handed to its fan-out rooms on other workers.",
        "counter",
        per_worker(&|w| w.fed_out),
    );
    gauge(
        "ardoise_fan_in_items_total",
        "Packets and shapes fan-out rooms took from their class's home room on another worker.",
        "counter",
        per_worker(&|w| w.fed_in),
    );
    gauge("ardoise_peer_faults_total", "Peers removed after a fault.", "counter", per_worker(&|w| w.peer_panics));
    gauge(
        "ardoise_worker_cpu_seconds_total",
        "CPU time of each media worker thread.",
        "counter",
        snaps.iter().map(|s| (format!("{{worker=\"{}\"}}", s.worker.index), s.worker.cpu_us as f64 / 1e6)).collect(),
    );
    // Per pupil (adaptive subscribers): what the allocator decided and why.
    let mut rows: [Vec<(String, f64)>; 5] = Default::default();
    for snap in snaps.iter() {
        for (class, _, participants) in &snap.rooms {
            for p in participants.iter().filter(|p| p.kind == "subscriber") {
                let labels = format!("{{class=\"{}\",participant=\"{}\"", s.metrics_label(class), p.id);
                if let Some(layer) = &p.layer {
                    rows[0].push((format!("{labels},layer=\"{layer}\"}}"), 1.0));
                }
                if let Some(e) = p.estimate_bps {
                    rows[1].push((format!("{labels}}}"), e as f64));
                }
                rows[2].push((format!("{labels}}}"), p.switches as f64));
                if let Some(rtt) = p.rtt_ms {
                    rows[3].push((format!("{labels}}}"), rtt as f64 / 1000.0));
                }
                if let Some(loss) = p.loss {
                    rows[4].push((format!("{labels}}}"), loss as f64));
                }
            }
        }
    }
    let [layers, estimates, switches, rtts, losses] = rows;
    gauge(
        "ardoise_pupil_layer",
        "Video forwarded to each pupil (1 for its current layer; audio = audio only).",
        "gauge",
        layers,
    );
    gauge("ardoise_pupil_estimate_bps", "Send-side bandwidth estimate toward each adaptive pupil.", "gauge", estimates);
    gauge("ardoise_pupil_layer_switches_total", "Layer changes of each adaptive pupil.", "counter", switches);
    gauge("ardoise_pupil_rtt_seconds", "Round-trip time to each pupil (RTCP).", "gauge", rtts);
    gauge("ardoise_pupil_loss_ratio", "Fraction of packets each pupil reports lost (RTCP).", "gauge", losses);
    let name = "ardoise_forward_delay_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time a publisher's packet spends in the worker, from its arrival to the send of its copies."
    );
    let _ = writeln!(out, "# TYPE {name} histogram");
    for snap in snaps.iter() {
        let w = snap.worker.index;
        let h = &snap.forward_delay;
        for (bound, n) in ardoise_net::delay_histogram::EXPORT_BOUNDS_US.iter().zip(h.cumulative()) {
            let _ = writeln!(out, "{name}_bucket{{worker=\"{w}\",le=\"{}\"}} {n}", *bound as f64 / 1e6);
        }
        let _ = writeln!(out, "{name}_bucket{{worker=\"{w}\",le=\"+Inf\"}} {}", h.count());
        let _ = writeln!(out, "{name}_sum{{worker=\"{w}\"}} {}", h.sum_us() as f64 / 1e6);
        let _ = writeln!(out, "{name}_count{{worker=\"{w}\"}} {}", h.count());
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out))
}
