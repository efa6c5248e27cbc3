// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the output thread takes in: a verdict's or an incident's event made ready to write
//! and send, and counted for the metrics; what is not valid is counted and warned of, and a
//! copy of an incident change already published is dropped and counted.

use std::sync::atomic::Ordering;

use serde_json::{Map, Value};

use super::schema::{Event, Origin};
use super::{Notice, Shared, Sink, incidents, lock, metrics};

/// A verdict's event, counted for the metrics; `None` (counted and warned of) when its
/// fields are not a verdict's.
pub(super) fn verdict_event(
    shared: &Shared,
    fields: Map<String, Value>,
    origin: &Origin,
) -> Option<Event> {
    let c = &shared.counters;
    let event = match Event::from_fields(fields, origin) {
        Ok(e) => e,
        Err(reason) => {
            c.invalid.fetch_add(1, Ordering::Relaxed);
            c.processed.fetch_add(1, Ordering::Relaxed);
            (shared.notice)(Notice::Warning {
                sink: Sink::Input,
                reason: format!("a verdict event was not valid: {reason}"),
            });
            return None;
        }
    };
    let element = event
        .body()
        .get("element")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(ms) = event.body().get("processing_ms").and_then(Value::as_f64) {
        lock(&shared.processing)
            .entry(element.clone())
            .or_insert_with(metrics::processing_histogram)
            .observe(ms / 1000.0);
    }
    let key = (element, event.source.clone(), event.status.clone());
    *lock(&shared.verdicts).entry(key).or_insert(0) += 1;
    Some(event)
}

/// An incident's event with its `active` count, counted for the metrics, and its snapshot
/// when `want_jpeg` and it is an alert (the one `snapshot-dir` keeps for the incident).
/// `None` for a copy of a change already published and for a structure that is not an
/// incident (both counted, the latter warned of).
pub(super) fn incident_event(
    shared: &Shared,
    tracker: &mut incidents::Tracker,
    ev: &gst::Event,
    received_us: i64,
    run_id: &str,
    want_jpeg: bool,
) -> Option<(Event, Option<crate::snapshot::Snapshot>)> {
    let c = &shared.counters;
    let read = crate::incident::event_structure(ev)
        .ok_or_else(|| "not an iguard-incident event".to_string())
        .and_then(|s| incidents::read(s, &shared.name, run_id, received_us));
    let mut read = match read {
        Ok(r) => r,
        Err(reason) => {
            c.invalid.fetch_add(1, Ordering::Relaxed);
            c.processed.fetch_add(1, Ordering::Relaxed);
            (shared.notice)(Notice::Warning {
                sink: Sink::Input,
                reason: format!("an incident event was not valid: {reason}"),
            });
            return None;
        }
    };
    let Some(active) = tracker.observe(&read) else {
        c.incident_duplicates.fetch_add(1, Ordering::Relaxed);
        c.processed.fetch_add(1, Ordering::Relaxed);
        return None;
    };
    c.incidents.fetch_add(1, Ordering::Relaxed);
    read.event.body_mut().insert("active".into(), active.into());
    let element = read
        .event
        .body()
        .get("element")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let key = (
        element,
        read.event.source.clone(),
        read.event.status.clone(),
    );
    *lock(&shared.incidents).entry(key).or_insert(0) += 1;
    let jpeg = if want_jpeg && read.change == crate::incident::Change::Alert {
        read.incident.snapshot.take()
    } else {
        None
    };
    Some((read.event, jpeg))
}
