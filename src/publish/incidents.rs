// SPDX-License-Identifier: MIT OR Apache-2.0
//! Incidents on their way out: the `iguard-incident` events of `iguardverify` (see
//! [`crate::incident`]) as `iguard.incident/1` JSON events, copies of one change dropped, and
//! the count of open alerts per source and label behind MQTT's retained
//! `<prefix>/<source>/<label>/active` topic.
//!
//! The JSON holds every field of the structure in snake_case, as a verdict event does, with
//! what is unknown as `null` (`object_id` with `clip-per=source`, `end_reason` and `end_time`
//! while open, a PTS, a box or a best score never known), `box` as `{x, y, width, height}` in
//! frame pixels, `zones` as an array, the snapshot named by
//! its size and digest, RFC 3339 `start_time`/`end_time` beside the Unix microseconds, and
//! `active`: the open alerts of its source and trigger label once this change is counted.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::Value;

use super::schema::{self, Event};
use super::wire;
use crate::incident::{Change, Incident, State};

/// Open incidents whose last revision is remembered; past it the oldest is forgotten.
pub const MAX_OPEN: usize = 65_536;
/// Ended incidents remembered, so a late copy of one of their events is still dropped.
pub const MAX_ENDED: usize = 4096;

/// An incident event as read: the JSON event, its change and the incident.
#[derive(Debug, Clone)]
pub struct Read {
    pub event: Event,
    pub change: Change,
    pub incident: Incident,
    /// The verifier's run id (the publisher's own when the event names none).
    pub run_id: String,
}

/// Reads an `iguard-incident` structure. `default_run` stands for the verifier's run id when
/// the structure has no `run-id`; `received_us` for the time of the change when it has no
/// `unix-us`. The error names the field that is wrong.
pub fn read(
    s: &gst::StructureRef,
    publisher: &str,
    default_run: &str,
    received_us: i64,
) -> Result<Read, String> {
    let (change, incident) = Incident::from_structure(s)?;
    let (mut fields, mut origin) = wire::read(s, publisher);
    if !s.has_field(wire::UNIX_US) {
        origin.unix_us = received_us;
    }
    if origin.run_id.is_empty() {
        origin.run_id = default_run.to_string();
    }
    let time = |us: i64| {
        if us > 0 {
            Value::String(schema::rfc3339(us))
        } else {
            Value::Null
        }
    };
    fields.insert(
        "object_id".into(),
        incident.object_id.map_or(Value::Null, Value::from),
    );
    fields.insert(
        "end_reason".into(),
        incident
            .end_reason
            .map_or(Value::Null, |r| r.as_str().into()),
    );
    fields.insert(
        "box".into(),
        incident.last_box.map_or(
            Value::Null,
            |b| serde_json::json!({"x": b.x, "y": b.y, "width": b.width, "height": b.height}),
        ),
    );
    fields.insert("start_time".into(), time(incident.start_unix_us));
    fields.insert("end_time".into(), time(incident.end_unix_us));
    let event = Event::from_incident(fields, &origin)?;
    Ok(Read {
        event,
        change,
        incident,
        run_id: origin.run_id,
    })
}

type Key = (String, u64);

/// What the publisher remembers of incidents: the last revision of each open one (to drop
/// copies), the ones ended lately, and the open alerts per source and label.
#[derive(Debug, Default)]
pub struct Tracker {
    open: BTreeMap<Key, u32>,
    ended: VecDeque<Key>,
    /// (source, trigger label) → the open incidents there that are alerts.
    alerts: BTreeMap<(String, String), BTreeSet<Key>>,
}

impl Tracker {
    /// Counts one incident event. `None`: a copy of a change already counted (the same or an
    /// older revision, or any after its end), to be dropped. Otherwise the open alerts of its
    /// source and trigger label once this change is counted.
    pub fn observe(&mut self, r: &Read) -> Option<u64> {
        let key: Key = (r.run_id.clone(), r.incident.incident_id);
        if self.ended.contains(&key) {
            return None;
        }
        if self
            .open
            .get(&key)
            .is_some_and(|rev| *rev >= r.incident.revision)
        {
            return None;
        }
        let place = (
            r.event.source.clone(),
            schema::topic_level(&r.incident.trigger_label),
        );
        let alerts = self.alerts.entry(place.clone()).or_default();
        // The state, not the change, decides: an alert whose `alert` event was lost still
        // counts from its next update.
        if r.change != Change::End && r.incident.state == State::Alert {
            alerts.insert(key.clone());
        } else {
            alerts.remove(&key);
        }
        let active = alerts.len() as u64;
        if alerts.is_empty() {
            self.alerts.remove(&place);
        }
        if r.change == Change::End {
            self.open.remove(&key);
            if self.ended.len() >= MAX_ENDED {
                self.ended.pop_front();
            }
            self.ended.push_back(key);
        } else {
            self.open.insert(key, r.incident.revision);
            if self.open.len() > MAX_OPEN {
                // An incident whose end never came (its event was dropped on the way).
                if let Some((oldest, _)) = self.open.pop_first() {
                    for set in self.alerts.values_mut() {
                        set.remove(&oldest);
                    }
                    self.alerts.retain(|_, set| !set.is_empty());
                }
            }
        }
        Some(active)
    }

    /// Open incidents remembered.
    pub fn open(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{EndReason, PixelBox};

    fn structure(change: Change, i: &Incident, run: Option<&str>) -> gst::Structure {
        let mut s = i.to_structure(change);
        if let Some(run) = run {
            wire::stamp(&mut s, run, "verify0", 1_764_581_400_123_456);
        }
        s
    }

    fn incident(id: u64, revision: u32, state: State) -> Incident {
        let mut i = Incident::open(id, 2, 0, Some(7), "person", Some(1_000_000), 1_700_000);
        i.revision = revision;
        i.state = state;
        i
    }

    #[test]
    fn an_incident_event_has_every_field_and_its_own_event_id() {
        gst::init().unwrap();
        let mut i = incident(12, 3, State::Alert);
        i.clips = 2;
        i.clips_verified = 1;
        i.best_score = 0.93;
        i.best_label = "person".into();
        i.last_box = Some(PixelBox {
            x: 10,
            y: 20,
            width: 30,
            height: 40,
        });
        i.enter_zone("lawn");
        i.enter_zone("door");
        i.snapshot = Some(std::sync::Arc::new(vec![0xff, 0xd8, 1, 2]));
        let s = structure(Change::Alert, &i, Some("feed"));
        let r = read(&s, "pub0", "mine", 5).unwrap();
        assert_eq!(r.change, Change::Alert);
        assert_eq!(r.run_id, "feed");
        let e = &r.event;
        assert_eq!(e.event_id, "feed-incident-12-3");
        assert!(e.incident && e.is_alert() && !e.is_verified());
        let v: Value = serde_json::from_str(&e.render(false, 0)).unwrap();
        assert_eq!(v["schema"], schema::INCIDENT_SCHEMA);
        assert_eq!(v["type"], "alert");
        assert_eq!(v["source"], "2");
        assert_eq!(v["element"], "verify0");
        assert_eq!(v["publisher"], "pub0");
        assert_eq!(v["unix_ms"], 1_764_581_400_123i64);
        assert_eq!(v["incident_id"], 12);
        assert_eq!(v["revision"], 3);
        assert_eq!(v["object_id"], 7);
        assert_eq!(v["trigger_label"], "person");
        assert_eq!(v["state"], "alert");
        assert_eq!(v["end_reason"], Value::Null);
        assert_eq!(v["start_pts"], 1_000_000);
        assert_eq!(v["end_pts"], Value::Null);
        assert_eq!(v["start_unix_us"], 1_700_000);
        assert_eq!(v["start_time"], schema::rfc3339(1_700_000));
        assert_eq!(v["end_time"], Value::Null);
        assert_eq!(v["clips"], 2);
        assert_eq!(v["clips_verified"], 1);
        assert_eq!(v["clips_rejected"], 0);
        assert_eq!(v["clips_unscored"], 0);
        assert_eq!(v["best_score"], 0.93);
        assert_eq!(v["best_label"], "person");
        assert_eq!(
            v["box"],
            serde_json::json!({"x": 10, "y": 20, "width": 30, "height": 40})
        );
        assert_eq!(v["zones"], serde_json::json!(["lawn", "door"]));
        assert_eq!(v["snapshot"]["bytes"], 4);
        assert_eq!(v["snapshot"]["sha256"].as_str().unwrap().len(), 64);
        // Every structure field is there, under its snake_case name.
        for (name, _) in s.iter() {
            let k = schema::snake_case(name);
            if ![wire::RUN_ID, wire::ELEMENT, wire::UNIX_US].contains(&name.as_str()) {
                assert!(v.get(&k).is_some(), "{k} missing: {v}");
            }
        }
        // It reads back from the spool as an incident event.
        let back = Event::from_json(&e.stored()).unwrap();
        assert!(back.incident && back.is_alert());
        assert_eq!(back.event_id, e.event_id);
    }

    #[test]
    fn without_a_run_id_or_a_time_the_publisher_gives_its_own() {
        gst::init().unwrap();
        let mut i = Incident::open(4, 0, 0, None, "gun", None, 0);
        i.revision = 1;
        let r = read(&structure(Change::New, &i, None), "p", "mine", 9_000_000).unwrap();
        assert_eq!(r.event.event_id, "mine-incident-4-1");
        assert_eq!(r.event.unix_us, 9_000_000);
        let v = r.event.body();
        assert_eq!(v["element"], "", "no verifier named");
        assert_eq!(v["object_id"], Value::Null);
        assert_eq!(v["best_score"], Value::Null);
        assert_eq!(v["zones"], serde_json::json!([]));
        assert_eq!(v["start_time"], Value::Null);
        assert_eq!(v["box"], Value::Null, "no box known");
        // A structure that is not an incident is refused, naming what is wrong.
        let mut bad = structure(Change::New, &i, None);
        bad.remove_field("revision");
        assert!(read(&bad, "p", "r", 0).unwrap_err().contains("revision"));
    }

    #[test]
    fn each_verifier_run_names_its_own_incidents() {
        gst::init().unwrap();
        // Incident 1 of two runs (a restart, or two verifiers into one publisher), stamped as
        // `iguardverify` stamps them.
        let i = incident(1, 1, State::Pending);
        let stamped = |run: &str, element: &str, at: i64| {
            let mut s = i.to_structure(Change::New);
            wire::stamp(&mut s, run, element, at);
            read(&s, "pub0", "mine", 5).unwrap()
        };
        let a = stamped("0a", "cam-a", 1_764_581_400_000_001);
        let b = stamped("0b", "cam-b", 1_764_581_400_500_000);
        assert_eq!(
            (a.event.event_id.as_str(), b.event.event_id.as_str()),
            ("0a-incident-1-1", "0b-incident-1-1")
        );
        assert_eq!((a.run_id.as_str(), b.run_id.as_str()), ("0a", "0b"));
        let v = b.event.body();
        assert_eq!(v["element"], "cam-b");
        assert_eq!(v["publisher"], "pub0");
        assert_eq!(
            v["unix_ms"], 1_764_581_400_500i64,
            "the change's time, not 5"
        );
        assert_eq!(v["time"], schema::rfc3339(1_764_581_400_500_000));
        // Neither is a copy of the other.
        let mut t = Tracker::default();
        assert_eq!(t.observe(&a), Some(0));
        assert_eq!(t.observe(&b), Some(0));
        assert_eq!(t.observe(&b), None, "b again is a copy");
        assert_eq!(t.open(), 2);
    }

    #[test]
    fn copies_are_dropped_and_alerts_are_counted_per_source_and_label() {
        gst::init().unwrap();
        let mut t = Tracker::default();
        let ev = |id: u64, rev: u32, change: Change, state: State| {
            let mut i = incident(id, rev, state);
            if change == Change::End {
                i.end(EndReason::Lost, 5);
            }
            read(&structure(change, &i, Some("r")), "p", "x", 0).unwrap()
        };
        assert_eq!(t.observe(&ev(1, 1, Change::New, State::Pending)), Some(0));
        assert_eq!(t.observe(&ev(1, 1, Change::New, State::Pending)), None);
        assert_eq!(t.observe(&ev(2, 1, Change::New, State::Pending)), Some(0));
        assert_eq!(t.observe(&ev(1, 2, Change::Alert, State::Alert)), Some(1));
        assert_eq!(t.observe(&ev(2, 2, Change::Alert, State::Alert)), Some(2));
        assert_eq!(t.observe(&ev(1, 2, Change::Alert, State::Alert)), None);
        assert_eq!(t.observe(&ev(1, 3, Change::Update, State::Alert)), Some(2));
        assert_eq!(t.observe(&ev(1, 4, Change::End, State::Alert)), Some(1));
        assert_eq!(t.observe(&ev(1, 4, Change::End, State::Alert)), None);
        assert_eq!(
            t.observe(&ev(1, 5, Change::Update, State::Alert)),
            None,
            "nothing after the end"
        );
        // Another run's incident 2 is another incident.
        let mut other = ev(2, 1, Change::New, State::Pending);
        other.run_id = "s".into();
        assert_eq!(t.observe(&other), Some(1));
        // An alert whose `alert` event never came counts from its next update.
        assert_eq!(t.observe(&ev(3, 3, Change::Update, State::Alert)), Some(2));
        assert_eq!(t.observe(&ev(2, 3, Change::End, State::Alert)), Some(1));
        assert_eq!(t.observe(&ev(3, 4, Change::End, State::Alert)), Some(0));
        assert_eq!(t.open(), 1, "the other run's incident is still open");
    }
}
