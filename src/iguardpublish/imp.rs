// SPDX-License-Identifier: MIT OR Apache-2.0
//! GObject glue of `iguardpublish`: properties, the `iguard-verdict` events, EOS flushing and
//! the outputs' notices turned into warnings and messages. The outputs live in
//! [`crate::publish`].
//!
//! Locks: `settings` is only held to copy values out; `state` is held only to reach the
//! publisher, never while posting.

use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use crate::publish::file::FileConfig;
use crate::publish::metrics;
use crate::publish::mqtt::{self, MqttConfig};
use crate::publish::spool::SpoolConfig;
use crate::publish::webhook::{self, WebhookConfig};

use super::WebhookEvents;
use crate::publish::{self, Config, Notice, Publisher, Stats, wire};
use crate::sync::lock;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "iguardpublish",
        gst::DebugColorFlags::empty(),
        Some("iGuard verdict publishing"),
    )
});

const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
const DEFAULT_MAX_FILES: u32 = 5;
const DEFAULT_TOPIC_PREFIX: &str = "iguard";
const DEFAULT_MQTT_QOS: u32 = 1;
const DEFAULT_SPOOL_MAX_BYTES: u64 = 64 * 1024 * 1024;
const DEFAULT_MAX_ALERT_AGE: u32 = 300;
const DEFAULT_FLUSH_TIMEOUT: u32 = 5000;
const DEFAULT_QUEUE_SIZE: u32 = 1000;
const DEFAULT_STATS_INTERVAL: u32 = 10_000;
const DEFAULT_RECONNECT_DELAY: u32 = 500;
const DEFAULT_RECONNECT_MAX_DELAY: u32 = 30_000;
const DEFAULT_KEEP_ALIVE: u32 = 10;
const DEFAULT_CONNECT_TIMEOUT: u32 = 5;
const DEFAULT_WEBHOOK_TIMEOUT: u32 = 5000;
/// How long `stop()` waits for each output thread.
const STOP_JOIN_WAIT: Duration = Duration::from_secs(2);

/// `snapshot-dir` bounds: a day of one alert a minute, and a few hundred MB.
const DEFAULT_SNAPSHOT_DIR_MAX_FILES: u32 = 1440;
const DEFAULT_SNAPSHOT_DIR_MAX_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone)]
struct Settings {
    file_path: Option<String>,
    max_bytes: u64,
    max_files: u32,
    mqtt_url: Option<String>,
    topic_prefix: String,
    mqtt_user: Option<String>,
    mqtt_password: Option<String>,
    mqtt_qos: u32,
    mqtt_client_id: Option<String>,
    mqtt_max_packet_bytes: u32,
    tls_ca_file: Option<String>,
    spool_dir: Option<String>,
    spool_max_bytes: u64,
    max_alert_age: u32,
    flush_timeout: u32,
    queue_size: u32,
    stats_interval: u32,
    reconnect_delay: u32,
    reconnect_max_delay: u32,
    keep_alive: u32,
    connect_timeout: u32,
    webhook_url: Option<String>,
    webhook_secret: Option<String>,
    webhook_timeout: u32,
    webhook_events: WebhookEvents,
    metrics_address: Option<String>,
    snapshot_dir: Option<String>,
    snapshot_dir_max_files: u32,
    snapshot_dir_max_bytes: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            file_path: None,
            max_bytes: DEFAULT_MAX_BYTES,
            max_files: DEFAULT_MAX_FILES,
            mqtt_url: None,
            topic_prefix: DEFAULT_TOPIC_PREFIX.into(),
            mqtt_user: None,
            mqtt_password: None,
            mqtt_qos: DEFAULT_MQTT_QOS,
            mqtt_client_id: None,
            mqtt_max_packet_bytes: 0,
            tls_ca_file: None,
            spool_dir: None,
            spool_max_bytes: DEFAULT_SPOOL_MAX_BYTES,
            max_alert_age: DEFAULT_MAX_ALERT_AGE,
            flush_timeout: DEFAULT_FLUSH_TIMEOUT,
            queue_size: DEFAULT_QUEUE_SIZE,
            stats_interval: DEFAULT_STATS_INTERVAL,
            reconnect_delay: DEFAULT_RECONNECT_DELAY,
            reconnect_max_delay: DEFAULT_RECONNECT_MAX_DELAY,
            keep_alive: DEFAULT_KEEP_ALIVE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            webhook_url: None,
            webhook_secret: None,
            webhook_timeout: DEFAULT_WEBHOOK_TIMEOUT,
            webhook_events: WebhookEvents::All,
            metrics_address: None,
            snapshot_dir: None,
            snapshot_dir_max_files: DEFAULT_SNAPSHOT_DIR_MAX_FILES,
            snapshot_dir_max_bytes: DEFAULT_SNAPSHOT_DIR_MAX_BYTES,
        }
    }
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.clone().filter(|s| !s.is_empty())
}

/// Runtime data, created in `start()` and dropped in `stop()`.
struct State {
    publisher: Arc<Publisher>,
    flush_timeout: Duration,
}

/// This element's key in the process-wide metrics registry.
struct MetricsKey(u64);

impl Default for MetricsKey {
    fn default() -> Self {
        MetricsKey(metrics::next_key())
    }
}

#[derive(Default)]
pub struct IGuardPublish {
    metrics_key: MetricsKey,
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    /// The last run's figures, kept readable after stop.
    last_stats: Mutex<Option<Stats>>,
}

fn stats_structure(s: &Stats) -> gst::Structure {
    gst::Structure::builder("iguard-publish-stats")
        .field("received", s.received)
        .field("queue-dropped", s.queue_dropped)
        .field("invalid", s.invalid)
        .field("queued", s.queued)
        .field("file-written", s.file_written)
        .field("file-failed", s.file_failed)
        .field("mqtt-connected", s.mqtt_connected)
        .field("mqtt-delivered", s.mqtt_delivered)
        .field("mqtt-replayed", s.mqtt_replayed)
        .field("mqtt-connects", s.mqtt_connects)
        .field("mqtt-disconnects", s.mqtt_disconnects)
        .field("mqtt-snapshots-skipped", s.mqtt_snapshots_skipped)
        .field("mqtt-too-large", s.mqtt_too_large)
        .field("spool-events", s.spool_events)
        .field("spool-bytes", s.spool_bytes)
        .field("spool-dropped", s.spool_dropped)
        .field("snapshots-written", s.snapshots_written)
        .field("snapshots-failed", s.snapshots_failed)
        .field("spool-disk", s.spool_disk)
        .field("spool-disk-errors", s.spool_disk_errors)
        .field("spool-skipped", s.spool_skipped)
        .field("gaps", s.gaps)
        .field("latency-p50-ms", s.latency_p50_ms)
        .field("latency-p99-ms", s.latency_p99_ms)
        .field("webhook-connected", s.webhook_connected)
        .field("webhook-delivered", s.webhook_delivered)
        .field("webhook-replayed", s.webhook_replayed)
        .field("webhook-rejected", s.webhook_rejected)
        .field("webhook-retries", s.webhook_retries)
        .field("webhook-spool-events", s.webhook_spool_events)
        .field("webhook-spool-dropped", s.webhook_spool_dropped)
        .field("webhook-spool-skipped", s.webhook_spool_skipped)
        .field("webhook-gaps", s.webhook_gaps)
        .field("incidents", s.incidents)
        .field("incident-duplicates", s.incident_duplicates)
        .build()
}

impl IGuardPublish {
    fn config(&self, settings: &Settings, run: &str) -> Result<Config, gst::ErrorMessage> {
        let name = self.obj().name().to_string();
        let bad = |msg: String| gst::error_msg!(gst::LibraryError::Settings, ["{}", msg]);
        let mqtt = match non_empty(&settings.mqtt_url) {
            None => None,
            Some(url) => {
                let (host, port, tls) = mqtt::parse_url(&url).map_err(bad)?;
                let prefix = settings.topic_prefix.trim_end_matches('/').to_string();
                if prefix.is_empty() || prefix.contains(['+', '#']) {
                    return Err(bad(format!(
                        "topic-prefix {:?} is not valid: give a topic without wildcards, e.g. \
                         \"iguard\"",
                        settings.topic_prefix
                    )));
                }
                Some(MqttConfig {
                    host,
                    port,
                    tls,
                    ca_file: non_empty(&settings.tls_ca_file),
                    user: non_empty(&settings.mqtt_user),
                    password: settings.mqtt_password.clone(),
                    qos: settings.mqtt_qos as u8,
                    topic_prefix: prefix,
                    client_id: non_empty(&settings.mqtt_client_id)
                        .unwrap_or_else(|| publish::default_client_id(&name, run)),
                    max_alert_age: Duration::from_secs(settings.max_alert_age as u64),
                    stats_interval: Duration::from_millis(settings.stats_interval as u64),
                    reconnect_min: Duration::from_millis(settings.reconnect_delay as u64),
                    reconnect_max: Duration::from_millis(settings.reconnect_max_delay as u64),
                    keep_alive: Duration::from_secs(settings.keep_alive as u64),
                    connect_timeout: Duration::from_secs(settings.connect_timeout as u64),
                    max_packet_bytes: mqtt::packet_bound(
                        settings.mqtt_max_packet_bytes,
                        upstream_snapshot_max(self.obj().upcast_ref()),
                    ),
                })
            }
        };
        let webhook = match non_empty(&settings.webhook_url) {
            None => None,
            Some(url) => {
                let endpoint = webhook::parse_url(&url).map_err(bad)?;
                Some(WebhookConfig {
                    url,
                    endpoint,
                    ca_file: non_empty(&settings.tls_ca_file),
                    secret: non_empty(&settings.webhook_secret),
                    timeout: Duration::from_millis(settings.webhook_timeout as u64),
                    retry_min: Duration::from_millis(settings.reconnect_delay as u64),
                    retry_max: Duration::from_millis(settings.reconnect_max_delay as u64),
                    events: match settings.webhook_events {
                        WebhookEvents::All => webhook::WebhookEvents::All,
                        WebhookEvents::Verdicts => webhook::WebhookEvents::Verdicts,
                        WebhookEvents::Incidents => webhook::WebhookEvents::Incidents,
                        WebhookEvents::Alerts => webhook::WebhookEvents::Alerts,
                    },
                })
            }
        };
        Ok(Config {
            name,
            run_id: run.to_string(),
            webhook,
            queue_size: settings.queue_size as usize,
            file: non_empty(&settings.file_path).map(|p| FileConfig {
                path: p.into(),
                max_bytes: settings.max_bytes,
                max_files: settings.max_files,
            }),
            mqtt,
            spool: SpoolConfig {
                max_bytes: settings.spool_max_bytes,
                dir: publish::dir(settings.spool_dir.as_deref()),
            },
            snapshot_dir: publish::dir(settings.snapshot_dir.as_deref()).map(|dir| {
                publish::snapshots::SnapshotDirConfig {
                    dir,
                    max_files: settings.snapshot_dir_max_files,
                    max_bytes: settings.snapshot_dir_max_bytes,
                }
            }),
        })
    }

    /// Turns an output's notice into a message (and a warning when something failed). Runs
    /// on the output threads; posting needs no lock of ours.
    fn notify(obj: &super::IGuardPublish, notice: Notice) {
        let (sink, state, reason) = match &notice {
            Notice::Down { sink, reason } => (*sink, "down", reason.as_str()),
            Notice::Up { sink, detail } => (*sink, "up", detail.as_str()),
            Notice::Warning { sink, reason } => (*sink, "degraded", reason.as_str()),
        };
        match notice {
            Notice::Up { .. } => gst::info!(CAT, obj = obj, "{}: {reason}", sink.as_str()),
            _ => gst::element_warning!(
                obj,
                gst::ResourceError::Write,
                ("iguardpublish {} output: {}", sink.as_str(), reason)
            ),
        }
        let s = gst::Structure::builder(super::STATE_MESSAGE)
            .field("sink", sink.as_str())
            .field("state", state)
            .field("reason", reason)
            .build();
        let _ = obj.post_message(gst::message::Element::builder(s).src(obj).build());
    }
}

/// The `iguardverify` elements upstream of `element` (through any elements in between).
fn upstream_verifier_elements(element: &gst::Element) -> Vec<gst::Element> {
    let mut found = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut todo = vec![element.clone()];
    while let Some(e) = todo.pop() {
        if !seen.insert(e.name().to_string()) || seen.len() > 256 {
            continue;
        }
        for pad in e.sink_pads() {
            if let Some(up) = pad.peer().and_then(|p| p.parent_element()) {
                todo.push(up);
            }
        }
        if e.factory().is_some_and(|f| f.name() == "iguardverify") {
            found.push(e);
        }
    }
    found
}

/// The largest `snapshot-max-bytes` of the verifiers upstream, `None` without one.
fn upstream_snapshot_max(element: &gst::Element) -> Option<usize> {
    upstream_verifier_elements(element)
        .iter()
        .filter_map(|e| {
            e.find_property("snapshot-max-bytes")
                .map(|_| e.property::<u32>("snapshot-max-bytes") as usize)
        })
        .max()
}

/// The `iguardverify` elements upstream of `element` in the same bin (through any elements in
/// between), with their pool figures from `stats`.
fn upstream_verifiers(element: &gst::Element) -> Vec<metrics::Verifier> {
    upstream_verifier_elements(element)
        .iter()
        .map(|e| {
            let s = e.property::<gst::Structure>("stats");
            let get = |f: &str| s.get::<u32>(f).map_or(0, u64::from);
            metrics::Verifier {
                element: e.name().to_string(),
                queue_depth: get("queue-depth"),
                workers: get("workers"),
                workers_active: get("workers-active"),
            }
        })
        .collect()
}

#[glib::object_subclass]
impl ObjectSubclass for IGuardPublish {
    const NAME: &'static str = "GstIGuardPublish";
    type Type = super::IGuardPublish;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for IGuardPublish {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let string = |name: &str, nick: &str, blurb: &str| {
                glib::ParamSpecString::builder(name)
                    .nick(nick)
                    .blurb(blurb)
                    .mutable_ready()
                    .build()
            };
            vec![
                string(
                    "file-path",
                    "Event log",
                    "Path of the JSON Lines event log (one iguard.verdict/1 or \
                     iguard.incident/1 object a line, appended); unset = no log",
                ),
                string(
                    "snapshot-dir",
                    "Snapshot folder",
                    "Folder where each verdict's snapshot (iguardverify snapshot=true) is written \
                     as <event_id>.jpg, named in the event's snapshot.file; unset = not written",
                ),
                glib::ParamSpecUInt::builder("snapshot-dir-max-files")
                    .nick("Snapshots kept")
                    .blurb("Snapshots kept in snapshot-dir; the oldest are removed")
                    .minimum(1)
                    .default_value(DEFAULT_SNAPSHOT_DIR_MAX_FILES)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("snapshot-dir-max-bytes")
                    .nick("Snapshot folder size")
                    .blurb("Bytes of snapshots kept in snapshot-dir; the oldest are removed")
                    .minimum(1024)
                    .default_value(DEFAULT_SNAPSHOT_DIR_MAX_BYTES)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("max-bytes")
                    .nick("Event log size")
                    .blurb(
                        "Bytes after which the event log is rotated (log → log.1 → log.2 ...); \
                         0 = never rotate",
                    )
                    .default_value(DEFAULT_MAX_BYTES)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-files")
                    .nick("Rotated logs kept")
                    .blurb("Rotated event logs kept beside the current one (log.1 … log.N)")
                    .maximum(1000)
                    .default_value(DEFAULT_MAX_FILES)
                    .mutable_ready()
                    .build(),
                string(
                    "mqtt-url",
                    "MQTT broker",
                    "Broker to publish to: mqtt://host[:port] (1883), mqtts://host[:port] for \
                     TLS (8883); unset = no MQTT",
                ),
                glib::ParamSpecString::builder("topic-prefix")
                    .nick("Topic prefix")
                    .blurb(
                        "First level of every topic: <prefix>/available, <prefix>/verdicts, \
                         <prefix>/<source>/verified, <prefix>/<source>/last, \
                         <prefix>/incidents, <prefix>/<source>/alerts, \
                         <prefix>/<source>/<label>/active, <prefix>/stats",
                    )
                    .default_value(Some(DEFAULT_TOPIC_PREFIX))
                    .mutable_ready()
                    .build(),
                string(
                    "mqtt-user",
                    "MQTT user",
                    "User name for the broker; unset = none",
                ),
                glib::ParamSpecString::builder("mqtt-password")
                    .nick("MQTT password")
                    .blurb("Password for the broker (write-only)")
                    .write_only()
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("mqtt-qos")
                    .nick("MQTT QoS")
                    .blurb(
                        "QoS of verdict publishes: 1 = at least once (an event leaves the \
                         spool on its PUBACK), 2 = exactly once per connection, 0 = fire and \
                         forget (nothing waits for the broker)",
                    )
                    .maximum(2)
                    .default_value(DEFAULT_MQTT_QOS)
                    .mutable_ready()
                    .build(),
                string(
                    "mqtt-client-id",
                    "MQTT client id",
                    "Client id at the broker; unset = iguard-<element name>-<random>",
                ),
                glib::ParamSpecUInt::builder("mqtt-max-packet-bytes")
                    .nick("MQTT packet bound")
                    .blurb(
                        "Largest MQTT packet sent, in bytes: set it to the broker's limit. A \
                         snapshot over it is left off (its event is sent) and counted in \
                         mqtt-snapshots-skipped; 0 = room for the largest snapshot of the \
                         iguardverify elements upstream (their snapshot-max-bytes + 64 KiB, \
                         at least 1 MiB)",
                    )
                    .maximum(mqtt::PROTOCOL_MAX_PACKET as u32)
                    .default_value(0)
                    .mutable_ready()
                    .build(),
                string(
                    "tls-ca-file",
                    "TLS CA file",
                    "PEM file of the CAs that sign the broker's (mqtts://) and the webhook's \
                     (https://) certificates; unset = the system's \
                     (/etc/ssl/certs/ca-certificates.crt)",
                ),
                string(
                    "spool-dir",
                    "Spool folder",
                    "Folder for MQTT events not yet acknowledged (append-only JSON Lines \
                     segments), kept for the next start; unset = memory only",
                ),
                glib::ParamSpecUInt64::builder("spool-max-bytes")
                    .nick("Spool size")
                    .blurb(
                        "Bytes of events the spool holds (memory and folder); beyond it the \
                         oldest are dropped, counted and reported by a gap event",
                    )
                    .minimum(1)
                    .default_value(DEFAULT_SPOOL_MAX_BYTES)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-alert-age")
                    .nick("Maximum alert age")
                    .blurb(
                        "Seconds after which a late (replayed) verified verdict or alert no \
                         longer goes to <prefix>/<source>/verified or <prefix>/<source>/alerts \
                         (still to verdicts, incidents, last and the log); 0 = no limit",
                    )
                    .default_value(DEFAULT_MAX_ALERT_AGE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("flush-timeout")
                    .nick("Flush timeout")
                    .blurb(
                        "Milliseconds EOS waits for the outputs (log written, MQTT \
                         acknowledged); the rest stays in the spool folder",
                    )
                    .maximum(600_000)
                    .default_value(DEFAULT_FLUSH_TIMEOUT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("queue-size")
                    .nick("Queue size")
                    .blurb(
                        "Verdicts waiting for the output thread; beyond it new ones are \
                         dropped and counted (queue-dropped), never waited for",
                    )
                    .minimum(1)
                    .maximum(1_000_000)
                    .default_value(DEFAULT_QUEUE_SIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("stats-interval")
                    .nick("Stats interval")
                    .blurb("Milliseconds between <prefix>/stats publishes; 0 = never")
                    .default_value(DEFAULT_STATS_INTERVAL)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("reconnect-delay")
                    .nick("Reconnect delay")
                    .blurb(
                        "Milliseconds before the first reconnect attempt; doubled after each \
                         failure up to reconnect-max-delay, each wait a random 50–100 % of it",
                    )
                    .minimum(10)
                    .default_value(DEFAULT_RECONNECT_DELAY)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("reconnect-max-delay")
                    .nick("Reconnect maximum delay")
                    .blurb("Milliseconds the reconnect back-off grows to at most")
                    .minimum(10)
                    .default_value(DEFAULT_RECONNECT_MAX_DELAY)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("keep-alive")
                    .nick("MQTT keep-alive")
                    .blurb("Seconds between MQTT pings; a broker silent for 1.5× that is gone")
                    .minimum(1)
                    .maximum(3600)
                    .default_value(DEFAULT_KEEP_ALIVE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("connect-timeout")
                    .nick("Connect timeout")
                    .blurb("Seconds one connection attempt may take (TCP and TLS)")
                    .minimum(1)
                    .maximum(600)
                    .default_value(DEFAULT_CONNECT_TIMEOUT)
                    .mutable_ready()
                    .build(),
                string(
                    "webhook-url",
                    "Webhook URL",
                    "POST each event as JSON to http[s]://host[:port]/path (Idempotency-Key: \
                     event_id; retried on 5xx, 408, 429 (after Retry-After) and timeouts, kept \
                     and retried through 401/403 as an outage, dropped and counted on other \
                     4xx); unset = no webhook",
                ),
                glib::ParamSpecString::builder("webhook-secret")
                    .nick("Webhook secret")
                    .blurb(
                        "Key of the X-IGuard-Signature header: sha256=<hex HMAC-SHA256 of the \
                         body> (write-only); unset = unsigned",
                    )
                    .write_only()
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("webhook-events", WebhookEvents::All)
                    .nick("Webhook events")
                    .blurb(
                        "Which events the webhook gets: all (verdicts and every incident \
                         change), verdicts, incidents (every change), or alerts (one POST per \
                         incident, when it becomes an alert); gap events always go",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("webhook-timeout")
                    .nick("Webhook timeout")
                    .blurb(
                        "Milliseconds one POST may take (connect, send, status line); past it \
                         the event is retried after a back-off",
                    )
                    .minimum(10)
                    .maximum(600_000)
                    .default_value(DEFAULT_WEBHOOK_TIMEOUT)
                    .mutable_ready()
                    .build(),
                string(
                    "metrics-address",
                    "Metrics address",
                    "Serve Prometheus /metrics (OpenMetrics) of every iguardpublish in the \
                     process here: PORT (= 127.0.0.1:PORT) or HOST:PORT (0.0.0.0:PORT for all \
                     interfaces); unset = off",
                ),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb(
                        "iguard-publish-stats: received, queue-dropped, invalid, queued, \
                         file-written, file-failed, mqtt-connected, mqtt-delivered, \
                         mqtt-replayed, mqtt-connects, mqtt-disconnects, \
                         mqtt-snapshots-skipped (over mqtt-max-packet-bytes: left off their \
                         event), mqtt-too-large (events over it: dropped), spool-events, \
                         spool-bytes, spool-dropped, spool-disk, spool-disk-errors, \
                         spool-skipped (folder lines that were not events at the start), gaps, \
                         latency-p50-ms, latency-p99-ms (verdict to PUBACK, live events), \
                         webhook-connected, webhook-delivered, webhook-replayed, \
                         webhook-rejected, webhook-retries, webhook-spool-events, \
                         webhook-spool-dropped, webhook-spool-skipped, webhook-gaps, incidents \
                         (incident events published), incident-duplicates (copies of a change \
                         already published: dropped)",
                    )
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        let string = || {
            value
                .get::<Option<String>>()
                .expect("type checked upstream")
        };
        match pspec.name() {
            "file-path" => s.file_path = string(),
            "max-bytes" => s.max_bytes = value.get().expect("type checked upstream"),
            "max-files" => s.max_files = value.get().expect("type checked upstream"),
            "snapshot-dir" => s.snapshot_dir = string(),
            "snapshot-dir-max-files" => {
                s.snapshot_dir_max_files = value.get().expect("type checked upstream")
            }
            "snapshot-dir-max-bytes" => {
                s.snapshot_dir_max_bytes = value.get().expect("type checked upstream")
            }
            "mqtt-url" => s.mqtt_url = string(),
            "topic-prefix" => s.topic_prefix = string().unwrap_or_default(),
            "mqtt-user" => s.mqtt_user = string(),
            "mqtt-password" => s.mqtt_password = string(),
            "mqtt-qos" => s.mqtt_qos = value.get().expect("type checked upstream"),
            "mqtt-client-id" => s.mqtt_client_id = string(),
            "tls-ca-file" => s.tls_ca_file = string(),
            "spool-dir" => s.spool_dir = string(),
            "spool-max-bytes" => s.spool_max_bytes = value.get().expect("type checked upstream"),
            "max-alert-age" => s.max_alert_age = value.get().expect("type checked upstream"),
            "flush-timeout" => s.flush_timeout = value.get().expect("type checked upstream"),
            "queue-size" => s.queue_size = value.get().expect("type checked upstream"),
            "stats-interval" => s.stats_interval = value.get().expect("type checked upstream"),
            "reconnect-delay" => s.reconnect_delay = value.get().expect("type checked upstream"),
            "reconnect-max-delay" => {
                s.reconnect_max_delay = value.get().expect("type checked upstream")
            }
            "keep-alive" => s.keep_alive = value.get().expect("type checked upstream"),
            "connect-timeout" => s.connect_timeout = value.get().expect("type checked upstream"),
            "mqtt-max-packet-bytes" => {
                s.mqtt_max_packet_bytes = value.get().expect("type checked upstream")
            }
            "webhook-url" => s.webhook_url = string(),
            "webhook-secret" => s.webhook_secret = string(),
            "webhook-timeout" => s.webhook_timeout = value.get().expect("type checked upstream"),
            "webhook-events" => s.webhook_events = value.get().expect("type checked upstream"),
            "metrics-address" => s.metrics_address = string(),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "stats" {
            let live = lock(&self.state).as_ref().map(|st| st.publisher.stats());
            let stats = live
                .or_else(|| lock(&self.last_stats).clone())
                .unwrap_or_default();
            return stats_structure(&stats).to_value();
        }
        let s = lock(&self.settings);
        match pspec.name() {
            "file-path" => s.file_path.to_value(),
            "max-bytes" => s.max_bytes.to_value(),
            "max-files" => s.max_files.to_value(),
            "snapshot-dir" => s.snapshot_dir.to_value(),
            "snapshot-dir-max-files" => s.snapshot_dir_max_files.to_value(),
            "snapshot-dir-max-bytes" => s.snapshot_dir_max_bytes.to_value(),
            "mqtt-url" => s.mqtt_url.to_value(),
            "topic-prefix" => s.topic_prefix.to_value(),
            "mqtt-user" => s.mqtt_user.to_value(),
            "mqtt-password" => None::<String>.to_value(),
            "mqtt-qos" => s.mqtt_qos.to_value(),
            "mqtt-client-id" => s.mqtt_client_id.to_value(),
            "tls-ca-file" => s.tls_ca_file.to_value(),
            "spool-dir" => s.spool_dir.to_value(),
            "spool-max-bytes" => s.spool_max_bytes.to_value(),
            "max-alert-age" => s.max_alert_age.to_value(),
            "flush-timeout" => s.flush_timeout.to_value(),
            "queue-size" => s.queue_size.to_value(),
            "stats-interval" => s.stats_interval.to_value(),
            "reconnect-delay" => s.reconnect_delay.to_value(),
            "reconnect-max-delay" => s.reconnect_max_delay.to_value(),
            "keep-alive" => s.keep_alive.to_value(),
            "connect-timeout" => s.connect_timeout.to_value(),
            "mqtt-max-packet-bytes" => s.mqtt_max_packet_bytes.to_value(),
            "webhook-url" => s.webhook_url.to_value(),
            "webhook-secret" => None::<String>.to_value(),
            "webhook-timeout" => s.webhook_timeout.to_value(),
            "webhook-events" => s.webhook_events.to_value(),
            "metrics-address" => s.metrics_address.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn dispose(&self) {
        metrics::unregister(self.metrics_key.0);
    }

    fn constructed(&self) {
        self.parent_constructed();
        self.obj().set_passthrough(true);
    }
}

impl GstObjectImpl for IGuardPublish {}

impl ElementImpl for IGuardPublish {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "iGuard verdict publisher",
                "Filter/Analyzer",
                "Publishes the verdicts of iguardverify elements upstream to a JSON Lines event \
                 log and MQTT, spooling what the broker has not acknowledged",
                "iguardverify developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::new_any();
            crate::src_sink_templates(&caps)
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for IGuardPublish {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = true;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let run = wire::run_id();
        let config = self.config(&settings, &run)?;
        if config.file.is_none() && config.mqtt.is_none() && config.webhook.is_none() {
            gst::warning!(
                CAT,
                imp = self,
                "none of file-path, mqtt-url, webhook-url is set: verdicts are counted, not published"
            );
        }
        if let Some(a) = non_empty(&settings.metrics_address) {
            let bad = |msg: String| gst::error_msg!(gst::LibraryError::Settings, ["{}", msg]);
            let addr = metrics::parse_address(&a).map_err(bad)?;
            metrics::serve(addr)
                .map_err(|e| gst::error_msg!(gst::ResourceError::OpenRead, ["{}", e]))?;
        }
        let weak = self.obj().downgrade();
        let publisher = Publisher::start(
            config,
            Box::new(move |n| {
                if let Some(obj) = weak.upgrade() {
                    Self::notify(&obj, n);
                }
            }),
        )
        .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ["{}", e]))?;
        // Every element is in the process-wide registry, served by any metrics-address.
        let name = self.obj().name();
        let label = publisher.register_metrics(self.metrics_key.0);
        if label != name.as_str() {
            let why = format!(
                "another iguardpublish in this process is named {name:?}: this one's metrics \
                 are labelled publisher=\"{label}\" (give each a distinct name)"
            );
            // A warning where this element serves the metrics; otherwise nobody may look.
            if non_empty(&settings.metrics_address).is_some() {
                gst::element_imp_warning!(self, gst::LibraryError::Settings, ["{}", why]);
            } else {
                gst::info!(CAT, imp = self, "{why}");
            }
        }
        let weak = self.obj().downgrade();
        metrics::register_upstream(
            self.metrics_key.0,
            Box::new(move || {
                weak.upgrade()
                    .map(|o| upstream_verifiers(o.upcast_ref()))
                    .unwrap_or_default()
            }),
        );
        gst::info!(CAT, imp = self, "started");
        *lock(&self.state) = Some(State {
            publisher: Arc::new(publisher),
            flush_timeout: Duration::from_millis(settings.flush_timeout as u64),
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let state = lock(&self.state).take();
        if let Some(state) = state {
            let stats = state.publisher.stop(STOP_JOIN_WAIT);
            gst::info!(CAT, imp = self, "stopped: {stats:?}");
            *lock(&self.last_stats) = Some(stats);
        }
        Ok(())
    }

    fn transform_ip_passthrough(
        &self,
        _buf: &gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        Ok(gst::FlowSuccess::Ok)
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        if wire::verdict_structure(&event).is_some() {
            if let Some(st) = lock(&self.state).as_ref() {
                // A reference is queued; the output thread reads it.
                st.publisher.submit_verdict(event.clone());
            }
        } else if crate::incident::event_structure(&event).is_some() {
            if let Some(st) = lock(&self.state).as_ref() {
                st.publisher.submit_incident(event.clone());
            }
        } else if let gst::EventView::Eos(_) = event.view() {
            let running = lock(&self.state)
                .as_ref()
                .map(|st| (st.publisher.clone(), st.flush_timeout));
            if let Some((publisher, timeout)) = running {
                // The stream ends here anyway; bounded by flush-timeout.
                if !publisher.flush(timeout) {
                    let s = publisher.stats();
                    gst::info!(
                        CAT,
                        imp = self,
                        "EOS: flush-timeout reached with {} events spooled, {} queued",
                        s.spool_events,
                        s.queued
                    );
                }
            }
        }
        self.parent_sink_event(event)
    }
}
