// SPDX-License-Identifier: MIT OR Apache-2.0
//! Publishing verdicts: the event schema, the outputs and their spool, run on threads of their
//! own. No GObject here; `iguardpublish` wires it to a pipeline.
//!
//! ```text
//! streaming thread ──try_send──▶ [bounded queue] ──▶ "iguardpub-io": file log, spool push
//!                                                               │
//!                                              "iguardpub-mqtt": spool ──▶ broker, PUBACK ──▶ spool
//! ```
//! The streaming thread only tries to queue the verdict event (a reference; the output thread
//! reads it); a full queue drops and counts. Locks: `spool` and `latencies` are never held
//! together, nor while calling `notice`.
//!
//! Its rooms: this file the publisher (configuration, start, stop, the shared state); the
//! output thread in `dispatch.rs`; the counters in `counters.rs`; names and URLs in `url.rs`;
//! each output in its own file (`file`, `mqtt`, `webhook`, `snapshots`, `metrics`), the spool
//! in `spool`, and the event's wire and schema in `wire`, `schema`, `intake`, `incidents`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

mod counters;
mod dispatch;
pub mod file;
pub mod incidents;
mod intake;
pub mod metrics;
pub mod mqtt;
pub mod schema;
pub mod snapshots;
pub mod spool;
pub mod tls;
mod url;
pub mod webhook;
pub mod wire;

pub use counters::{Counters, Stats};
pub use url::{default_client_id, dir, host_port};

use dispatch::{Job, Route, dispatch};
use file::FileConfig;
use mqtt::MqttConfig;
use schema::Origin;
use snapshots::SnapshotDirConfig;
use spool::{Spool, SpoolConfig};
use webhook::WebhookConfig;

use crate::sync::lock;

/// An output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// What reaches the element (a verdict event that is not valid).
    Input,
    File,
    Mqtt,
    Spool,
    Webhook,
    /// `snapshot-dir`.
    SnapshotDir,
}

impl Sink {
    pub fn as_str(self) -> &'static str {
        match self {
            Sink::Input => "input",
            Sink::File => "file",
            Sink::Mqtt => "mqtt",
            Sink::Spool => "spool",
            Sink::Webhook => "webhook",
            Sink::SnapshotDir => "snapshot-dir",
        }
    }
}

/// What the outputs tell the element (posted as warnings and `iguard-publish-state`).
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    Down {
        sink: Sink,
        reason: String,
    },
    Up {
        sink: Sink,
        detail: String,
    },
    /// A problem that does not take the output down (the spool folder failed: memory only).
    Warning {
        sink: Sink,
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The publishing element's name (in events and the MQTT client id).
    pub name: String,
    /// The publishing element's random id for this run: it names incident events whose
    /// verifier gave no run id of its own.
    pub run_id: String,
    pub queue_size: usize,
    pub file: Option<FileConfig>,
    pub mqtt: Option<MqttConfig>,
    pub webhook: Option<WebhookConfig>,
    pub spool: SpoolConfig,
    /// `snapshot-dir`: where verdicts' JPEGs are written.
    pub snapshot_dir: Option<SnapshotDirConfig>,
}

pub const LATENCY_SAMPLES: usize = 4096;

/// Which outputs an element has.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outputs {
    pub file: bool,
    pub mqtt: bool,
    pub webhook: bool,
}
/// Sources whose snapshot can wait for the broker at once; past it the new one is dropped
/// (counted in `snapshots-failed`).
pub const MAX_SNAPSHOT_SOURCES: usize = 256;

/// What the threads share.
pub struct Shared {
    pub name: String,
    pub counters: Counters,
    pub spool: Mutex<Spool>,
    /// The newest snapshot of each source not yet handed to the broker, for the retained
    /// `<prefix>/<source>/snapshot` topic: a newer one replaces an older one (only the last
    /// is retained anyway), so this holds one per source, at most [`MAX_SNAPSHOT_SOURCES`].
    pub snapshots: Mutex<std::collections::BTreeMap<String, crate::snapshot::Snapshot>>,
    /// Wakes the MQTT thread for new events.
    pub wake: tokio::sync::Notify,
    /// Wakes the MQTT thread to stop.
    pub stop: tokio::sync::Notify,
    pub stopping: AtomicBool,
    pub mqtt_up: AtomicBool,
    /// The webhook's own spool (same bound and kind as MQTT's; its folder is
    /// `<spool-dir>/webhook`). Its mutex also guards `webhook_wake`.
    pub webhook_spool: Mutex<Spool>,
    pub webhook_wake: Condvar,
    pub webhook_up: AtomicBool,
    latencies: Mutex<VecDeque<f64>>,
    /// Verdicts received, by (verifying element, source, status), for the metrics.
    pub verdicts: Mutex<BTreeMap<(String, String, String), u64>>,
    /// Incident events published, by (verifying element, source, type), for the metrics.
    pub incidents: Mutex<BTreeMap<(String, String, String), u64>>,
    /// The verdicts' `processing_ms` (clip scored), by verifying element, in seconds.
    pub processing: Mutex<BTreeMap<String, prometheus_client::metrics::histogram::Histogram>>,
    /// Which outputs are on (for the metrics).
    pub outputs: Outputs,
    pub notice: Box<dyn Fn(Notice) + Send + Sync>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

impl Shared {
    pub fn record_latency(&self, ms: f64) {
        let mut l = lock(&self.latencies);
        if l.len() >= LATENCY_SAMPLES {
            l.pop_front();
        }
        l.push_back(ms.max(0.0));
    }

    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (spool_events, spool_bytes, spool_dropped, spool_disk, spool_disk_errors) = {
            let s = lock(&self.spool);
            (
                s.len() as u64,
                s.bytes(),
                s.dropped,
                s.has_disk(),
                s.disk_errors,
            )
        };
        let spool_skipped = lock(&self.spool).skipped;
        let (webhook_spool_events, webhook_spool_dropped, webhook_spool_skipped) = {
            let s = lock(&self.webhook_spool);
            (s.len() as u64, s.dropped, s.skipped)
        };
        let mut lat: Vec<f64> = lock(&self.latencies).iter().copied().collect();
        lat.sort_by(f64::total_cmp);
        let received = get(&c.received);
        let dropped = get(&c.queue_dropped);
        Stats {
            received,
            queue_dropped: dropped,
            invalid: get(&c.invalid),
            queued: received.saturating_sub(dropped + get(&c.processed)),
            file_written: get(&c.file_written),
            file_failed: get(&c.file_failed),
            mqtt_connected: self.mqtt_up.load(Ordering::Relaxed),
            mqtt_delivered: get(&c.mqtt_delivered),
            mqtt_replayed: get(&c.mqtt_replayed),
            mqtt_connects: get(&c.mqtt_connects),
            mqtt_disconnects: get(&c.mqtt_disconnects),
            mqtt_snapshots_skipped: get(&c.mqtt_snapshots_skipped),
            mqtt_too_large: get(&c.mqtt_too_large),
            spool_events,
            spool_bytes,
            spool_dropped,
            spool_disk,
            spool_disk_errors,
            spool_skipped,
            gaps: get(&c.gaps),
            latency_p50_ms: percentile(&lat, 0.5),
            latency_p99_ms: percentile(&lat, 0.99),
            webhook_connected: self.webhook_up.load(Ordering::Relaxed),
            webhook_delivered: get(&c.webhook_delivered),
            webhook_replayed: get(&c.webhook_replayed),
            webhook_rejected: get(&c.webhook_rejected),
            webhook_retries: get(&c.webhook_retries),
            webhook_spool_events,
            webhook_spool_dropped,
            webhook_spool_skipped,
            webhook_gaps: get(&c.webhook_gaps),
            snapshots_written: get(&c.snapshots_written),
            snapshots_failed: get(&c.snapshots_failed),
            incidents: get(&c.incidents),
            incident_duplicates: get(&c.incident_duplicates),
        }
    }
}

/// The running outputs of one element.
pub struct Publisher {
    /// `None` once stopped.
    tx: Mutex<Option<SyncSender<Job>>>,
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    has_mqtt: bool,
    has_webhook: bool,
}

impl Publisher {
    /// Starts the threads. Problems that leave the outputs running (an unusable spool folder)
    /// are reported through `notice`; an error means nothing could start.
    pub fn start(
        config: Config,
        notice: Box<dyn Fn(Notice) + Send + Sync>,
    ) -> Result<Publisher, String> {
        if let Some(m) = &config.mqtt {
            mqtt::validate(m)?;
        }
        if let Some(w) = &config.webhook {
            webhook::validate(w)?;
        }
        let spool_config = SpoolConfig {
            dir: config.mqtt.as_ref().and(config.spool.dir.clone()),
            ..config.spool.clone()
        };
        let (spool, mut problems) = Spool::open(&spool_config);
        let webhook_spool_config = SpoolConfig {
            dir: config
                .webhook
                .as_ref()
                .and(config.spool.dir.as_ref())
                .map(|d| d.join("webhook")),
            ..config.spool.clone()
        };
        let (webhook_spool, more) = Spool::open(&webhook_spool_config);
        problems.extend(more);
        let shared = Arc::new(Shared {
            name: config.name.clone(),
            counters: Counters::default(),
            spool: Mutex::new(spool),
            snapshots: Mutex::new(Default::default()),
            wake: tokio::sync::Notify::new(),
            stop: tokio::sync::Notify::new(),
            stopping: AtomicBool::new(false),
            mqtt_up: AtomicBool::new(false),
            webhook_spool: Mutex::new(webhook_spool),
            webhook_wake: Condvar::new(),
            webhook_up: AtomicBool::new(false),
            latencies: Mutex::new(VecDeque::new()),
            verdicts: Mutex::new(BTreeMap::new()),
            incidents: Mutex::new(BTreeMap::new()),
            processing: Mutex::new(BTreeMap::new()),
            outputs: Outputs {
                file: config.file.is_some(),
                mqtt: config.mqtt.is_some(),
                webhook: config.webhook.is_some(),
            },
            notice,
        });
        for reason in problems {
            (shared.notice)(Notice::Warning {
                sink: Sink::Spool,
                reason,
            });
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(config.queue_size.max(1));
        let mut threads = Vec::new();
        let has_mqtt = config.mqtt.is_some();
        let has_webhook = config.webhook.is_some();
        let sh = shared.clone();
        let route = Route {
            file: config.file.clone(),
            mqtt: has_mqtt,
            webhook_events: config.webhook.as_ref().map(|w| w.events),
            snapshot_dir: config.snapshot_dir.clone(),
            want_jpeg: config.snapshot_dir.is_some() || config.mqtt.is_some(),
            run_id: config.run_id.clone(),
        };
        threads.push(
            std::thread::Builder::new()
                .name("iguardpub-io".into())
                .spawn(move || dispatch(sh, rx, route))
                .map_err(|e| format!("cannot start the publishing thread: {e}"))?,
        );
        if let Some(m) = config.mqtt.clone() {
            let sh = shared.clone();
            match std::thread::Builder::new()
                .name("iguardpub-mqtt".into())
                .spawn(move || mqtt::run(sh, m))
            {
                Ok(t) => threads.push(t),
                Err(e) => {
                    drop(tx);
                    for t in threads {
                        let _ = t.join();
                    }
                    return Err(format!("cannot start the MQTT thread: {e}"));
                }
            }
        }
        if let Some(w) = config.webhook.clone() {
            let sh = shared.clone();
            match std::thread::Builder::new()
                .name("iguardpub-http".into())
                .spawn(move || webhook::run(sh, w))
            {
                Ok(t) => threads.push(t),
                Err(e) => {
                    drop(tx);
                    shared.stopping.store(true, Ordering::Relaxed);
                    shared.stop.notify_one();
                    for t in threads {
                        let _ = t.join();
                    }
                    return Err(format!("cannot start the webhook thread: {e}"));
                }
            }
        }
        Ok(Publisher {
            tx: Mutex::new(Some(tx)),
            shared,
            threads: Mutex::new(threads),
            has_mqtt,
            has_webhook,
        })
    }

    /// Hands a verdict to the outputs without waiting; a full queue drops it (counted).
    pub fn submit(&self, fields: Map<String, Value>, origin: Origin) {
        self.submit_with_snapshot(fields, origin, None);
    }

    /// Like [`Publisher::submit`], with the verdict's JPEG for `snapshot-dir`.
    pub fn submit_with_snapshot(
        &self,
        fields: Map<String, Value>,
        origin: Origin,
        snapshot: Option<crate::snapshot::Snapshot>,
    ) {
        self.queue(Job::Event(fields, origin, snapshot));
    }

    /// Hands an `iguard-verdict` event (see [`wire::verdict_structure`]) to the outputs
    /// without waiting, unread: the output thread turns it into fields. A full queue drops it
    /// (counted).
    pub fn submit_verdict(&self, event: gst::Event) {
        self.queue(Job::Verdict(event, schema::now_us()));
    }

    /// Hands an `iguard-incident` event (see [`crate::incident::event_structure`]) to the
    /// outputs without waiting, as [`Publisher::submit_verdict`] does a verdict's.
    pub fn submit_incident(&self, event: gst::Event) {
        self.queue(Job::Incident(event, schema::now_us()));
    }

    fn queue(&self, job: Job) {
        let c = &self.shared.counters;
        c.received.fetch_add(1, Ordering::Relaxed);
        let sent = match lock(&self.tx).as_ref() {
            Some(tx) => tx.try_send(job).is_ok(),
            None => false,
        };
        if !sent {
            c.queue_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits until everything submitted is written and, with MQTT, acknowledged, or until
    /// `timeout`. Returns whether everything got out.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let Some(tx) = lock(&self.tx).clone() else {
            return false;
        };
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
        let mut job = Job::Barrier(done_tx);
        loop {
            match tx.try_send(job) {
                Ok(()) => break,
                Err(TrySendError::Full(j)) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    job = j;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(TrySendError::Disconnected(_)) => return false,
            }
        }
        match done_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(()) => {}
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => return false,
        }
        loop {
            let mqtt_done = !self.has_mqtt || lock(&self.shared.spool).is_empty();
            let webhook_done = !self.has_webhook || lock(&self.shared.webhook_spool).is_empty();
            if mqtt_done && webhook_done {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Puts this element's figures in the process-wide metrics registry under its instance
    /// `key`; returns the `publisher` label they carry.
    pub fn register_metrics(&self, key: u64) -> String {
        metrics::register(key, self.shared.clone())
    }

    /// Stops the threads (waiting at most `join_wait` for each) and saves what the spool
    /// still holds to its folder. Returns the final figures.
    pub fn stop(&self, join_wait: Duration) -> Stats {
        lock(&self.tx).take();
        self.shared.stopping.store(true, Ordering::Relaxed);
        self.shared.stop.notify_one();
        {
            // Under the spool's lock, so the webhook thread cannot miss it between its check
            // of `stopping` and its wait.
            let _spool = lock(&self.shared.webhook_spool);
            self.shared.webhook_wake.notify_all();
        }
        let deadline = Instant::now() + join_wait;
        let threads = std::mem::take(&mut *lock(&self.threads));
        for t in threads {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            if t.is_finished() {
                let _ = t.join();
            }
            // else: left behind (a connect that hangs); it ends on its own at its timeout.
        }
        // Only once: a second stop finds the folder closed.
        let saved = [
            lock(&self.shared.spool).close(),
            lock(&self.shared.webhook_spool).close(),
        ];
        for reason in saved.into_iter().filter_map(Result::err) {
            (self.shared.notice)(Notice::Warning {
                sink: Sink::Spool,
                reason,
            });
        }
        self.shared.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A publisher config with only the JSON Lines log at `path`.
    fn file_only(path: impl Into<std::path::PathBuf>, queue_size: usize) -> Config {
        Config {
            name: "p".into(),
            run_id: "0ff1ce".into(),
            queue_size,
            file: Some(FileConfig {
                path: path.into(),
                max_bytes: 0,
                max_files: 0,
            }),
            mqtt: None,
            webhook: None,
            spool: SpoolConfig {
                max_bytes: 1 << 20,
                dir: None,
            },
            snapshot_dir: None,
        }
    }
    use crate::publish::schema::tests::{fields, origin};

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "iguard-pub-{name}-{}-{}",
            std::process::id(),
            schema::now_us()
        ))
    }

    #[test]
    fn every_event_lands_in_the_file_once_and_flush_waits_for_it() {
        let d = tmp("file");
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("events.jsonl");
        let notices = Arc::new(Mutex::new(Vec::new()));
        let n2 = notices.clone();
        let p = Publisher::start(
            file_only(path.clone(), 1000),
            Box::new(move |n| lock(&n2).push(n)),
        )
        .unwrap();
        for i in 1..=200 {
            p.submit(fields(i, 0, "rejected"), origin());
        }
        assert!(p.flush(Duration::from_secs(30)));
        let text = std::fs::read_to_string(&path).unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["event_id"].as_str().unwrap().to_string()
            })
            .collect();
        let want: Vec<String> = (1..=200).map(|i| format!("00c0ffee-{i}")).collect();
        assert_eq!(ids, want);
        let s = p.stop(Duration::from_secs(5));
        assert_eq!((s.received, s.file_written, s.queue_dropped), (200, 200, 0));
        assert!(lock(&notices).is_empty());
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_a_dead_file_warns_once() {
        let notices = Arc::new(Mutex::new(Vec::new()));
        let n2 = notices.clone();
        let p = Publisher::start(
            file_only("/nonexistent-iguard/x.jsonl", 1),
            Box::new(move |n| lock(&n2).push(n)),
        )
        .unwrap();
        for i in 1..=500 {
            p.submit(fields(i, 0, "rejected"), origin());
        }
        p.flush(Duration::from_secs(30));
        let s = p.stop(Duration::from_secs(5));
        assert_eq!(s.received, 500);
        assert_eq!(
            s.queue_dropped + s.file_failed + s.file_written,
            500,
            "{s:?}"
        );
        assert_eq!(s.file_written, 0);
        assert!(s.file_failed >= 1);
        let n = lock(&notices);
        let downs = n
            .iter()
            .filter(|n| {
                matches!(
                    n,
                    Notice::Down {
                        sink: Sink::File,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(downs, 1, "{n:?}");
    }

    #[test]
    fn verdict_events_are_read_on_the_output_thread_with_their_fields_and_times() {
        gst::init().unwrap();
        let d = tmp("verdict-events");
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("events.jsonl");
        let p = Publisher::start(file_only(path.clone(), 100), Box::new(|_| {})).unwrap();
        let event = |request_id: u64, unix_us: Option<i64>| {
            let mut s = gst::Structure::builder(wire::EVENT_NAME)
                .field("request-id", request_id)
                .field("source-id", 3u32)
                .field("status", "verified")
                .field(wire::RUN_ID, "feed")
                .field(wire::ELEMENT, "verify1")
                .build();
            if let Some(us) = unix_us {
                s.set(wire::UNIX_US, us);
            }
            gst::event::CustomDownstream::new(s)
        };
        let before_ms = schema::now_us() / 1000;
        p.submit_verdict(event(1, Some(1_700_000_000_123_456)));
        // No time from the verifier: the time it reached the element.
        p.submit_verdict(event(2, None));
        // Not a verdict: counted as invalid, nothing written.
        p.submit_verdict(gst::event::CustomDownstream::new(
            gst::Structure::new_empty("other"),
        ));
        assert!(p.flush(Duration::from_secs(30)));
        let lines: Vec<Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["event_id"], "feed-1");
        assert_eq!(lines[0]["unix_ms"], 1_700_000_000_123i64);
        assert_eq!(lines[0]["element"], "verify1");
        assert_eq!(lines[0]["publisher"], "p");
        assert_eq!(lines[0]["source"], "3");
        assert_eq!(lines[0]["status"], "verified");
        assert_eq!(lines[1]["event_id"], "feed-2");
        let ms = lines[1]["unix_ms"].as_i64().unwrap();
        assert!(
            ms >= before_ms && ms <= schema::now_us() / 1000,
            "{ms} {before_ms}"
        );
        let s = p.stop(Duration::from_secs(5));
        assert_eq!(
            (s.received, s.invalid, s.file_written, s.queue_dropped),
            (3, 1, 2, 0)
        );
        std::fs::remove_dir_all(d).unwrap();
    }
}
