// SPDX-License-Identifier: MIT OR Apache-2.0
//! The publisher's counters (atomics the output threads bump) and their snapshot, the `stats`
//! property and `<prefix>/stats`.

use std::sync::atomic::AtomicU64;

use serde_json::{Value, json};

#[derive(Default)]
pub struct Counters {
    pub received: AtomicU64,
    pub queue_dropped: AtomicU64,
    pub invalid: AtomicU64,
    pub processed: AtomicU64,
    pub file_written: AtomicU64,
    pub file_failed: AtomicU64,
    pub mqtt_delivered: AtomicU64,
    pub mqtt_replayed: AtomicU64,
    pub mqtt_connects: AtomicU64,
    pub mqtt_disconnects: AtomicU64,
    /// Snapshots over the MQTT packet bound: left off, their event sent.
    pub mqtt_snapshots_skipped: AtomicU64,
    /// Events over the MQTT packet bound: dropped.
    pub mqtt_too_large: AtomicU64,
    pub gaps: AtomicU64,
    pub webhook_delivered: AtomicU64,
    pub webhook_replayed: AtomicU64,
    /// Events the receiver refused with a 4xx (dropped).
    pub webhook_rejected: AtomicU64,
    /// Failed attempts (5xx, timeout, no connection), each followed by a back-off.
    pub webhook_retries: AtomicU64,
    pub webhook_gaps: AtomicU64,
    pub snapshots_written: AtomicU64,
    pub snapshots_failed: AtomicU64,
    /// Incident events published (copies not counted).
    pub incidents: AtomicU64,
    /// Copies of an incident change already published: dropped.
    pub incident_duplicates: AtomicU64,
}

/// A snapshot of the figures (the `stats` property, `<prefix>/stats`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub received: u64,
    pub queue_dropped: u64,
    pub invalid: u64,
    pub queued: u64,
    pub file_written: u64,
    pub file_failed: u64,
    pub mqtt_connected: bool,
    pub mqtt_delivered: u64,
    pub mqtt_replayed: u64,
    pub mqtt_connects: u64,
    pub mqtt_disconnects: u64,
    pub mqtt_snapshots_skipped: u64,
    pub mqtt_too_large: u64,
    pub spool_events: u64,
    pub spool_bytes: u64,
    pub spool_dropped: u64,
    pub spool_disk: bool,
    pub spool_disk_errors: u64,
    /// Lines of the spool folder that were not events at the start (torn, garbage): skipped.
    pub spool_skipped: u64,
    pub gaps: u64,
    /// Verdict produced → PUBACK, live (not replayed) events, over the last [`LATENCY_SAMPLES`].
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub webhook_connected: bool,
    pub webhook_delivered: u64,
    pub webhook_replayed: u64,
    pub webhook_rejected: u64,
    pub webhook_retries: u64,
    pub webhook_spool_events: u64,
    pub webhook_spool_dropped: u64,
    pub webhook_spool_skipped: u64,
    pub webhook_gaps: u64,
    /// `snapshot-dir` files written, and snapshots that could not be.
    pub snapshots_written: u64,
    pub snapshots_failed: u64,
    /// Incident events published, and copies of one dropped.
    pub incidents: u64,
    pub incident_duplicates: u64,
}

impl Stats {
    pub fn to_json(&self) -> Value {
        json!({
            "received": self.received, "queue_dropped": self.queue_dropped,
            "invalid": self.invalid, "queued": self.queued,
            "file_written": self.file_written, "file_failed": self.file_failed,
            "mqtt_connected": self.mqtt_connected, "mqtt_delivered": self.mqtt_delivered,
            "mqtt_replayed": self.mqtt_replayed, "mqtt_connects": self.mqtt_connects,
            "mqtt_disconnects": self.mqtt_disconnects,
            "mqtt_snapshots_skipped": self.mqtt_snapshots_skipped,
            "mqtt_too_large": self.mqtt_too_large, "spool_events": self.spool_events,
            "spool_bytes": self.spool_bytes, "spool_dropped": self.spool_dropped,
            "spool_disk": self.spool_disk, "spool_disk_errors": self.spool_disk_errors,
            "spool_skipped": self.spool_skipped,
            "gaps": self.gaps, "latency_p50_ms": self.latency_p50_ms,
            "latency_p99_ms": self.latency_p99_ms,
            "webhook_connected": self.webhook_connected,
            "webhook_delivered": self.webhook_delivered,
            "webhook_replayed": self.webhook_replayed,
            "webhook_rejected": self.webhook_rejected,
            "webhook_retries": self.webhook_retries,
            "webhook_spool_events": self.webhook_spool_events,
            "webhook_spool_dropped": self.webhook_spool_dropped,
            "webhook_spool_skipped": self.webhook_spool_skipped,
            "webhook_gaps": self.webhook_gaps,
            "incidents": self.incidents,
            "incident_duplicates": self.incident_duplicates,
        })
    }
}
