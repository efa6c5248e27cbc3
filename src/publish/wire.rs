// SPDX-License-Identifier: MIT OR Apache-2.0
//! How verdicts travel from `iguardverify` to `iguardpublish`: a custom serialized downstream
//! event named `iguard-verdict`, one per verdict, whose structure holds the verdict's meta
//! fields plus `run-id`, `element` and `unix-us` (when the verdict was produced). The
//! `iguard-incident` events (see [`crate::incident`]) carry the same three fields, stamped by
//! [`stamp`].
//!
//! The meta on buffers is bounded (`result-queue-size`) and needs a buffer of the same source
//! to ride on; the event needs neither, so verdicts finished at EOS and those beyond the result
//! queue still arrive. `iguardverify` collects them in an [`Outbox`] from its reporter callback
//! and pushes them from its streaming thread: before each outgoing buffer, and before EOS.

use std::collections::VecDeque;
use std::io::Read;

use serde_json::{Map, Value};

use super::schema::{self, Origin};
use crate::meta;
use crate::verdict::Verdict;

/// The name of the custom downstream event's structure.
pub const EVENT_NAME: &str = "iguard-verdict";
pub const RUN_ID: &str = "run-id";
pub const ELEMENT: &str = "element";
pub const UNIX_US: &str = "unix-us";

/// How many verdicts wait for the streaming thread before the oldest is dropped (and counted).
pub const OUTBOX_CAPACITY: usize = 4096;

/// A random id for one run of an element: 16 hex digits from the kernel's generator, so event
/// ids do not repeat across restarts.
pub fn run_id() -> String {
    let mut b = [0u8; 8];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok();
    if !ok {
        // No /dev/urandom (a sandbox): time and pid still differ between runs.
        let t = schema::now_us() as u64 ^ ((std::process::id() as u64) << 40);
        b = t.to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Adds where an event comes from: the verifying element named `element`, in its run
/// `run_id`, at `unix_us` (microseconds since the Unix epoch). A publisher names the event
/// after that run, so two verifiers, or one restarted, never share an event id.
pub fn stamp(s: &mut gst::StructureRef, run_id: &str, element: &str, unix_us: i64) {
    s.set(RUN_ID, run_id);
    s.set(ELEMENT, element);
    s.set(UNIX_US, unix_us);
}

/// The event carrying `v` from the element named `element` in run `run_id`.
pub fn verdict_event(v: &Verdict, run_id: &str, element: &str) -> gst::Event {
    let mut s = meta::to_structure(EVENT_NAME, v);
    stamp(&mut s, run_id, element, schema::now_us());
    gst::event::CustomDownstream::new(s)
}

/// The verdict structure of `event`, when it is one of ours.
pub fn verdict_structure(event: &gst::EventRef) -> Option<&gst::StructureRef> {
    if event.type_() != gst::EventType::CustomDownstream {
        return None;
    }
    event.structure().filter(|s| s.name() == EVENT_NAME)
}

/// One structure value as JSON: numbers, booleans and strings as themselves, a missing PTS
/// (`u64::MAX`) and a NaN score as `null`, anything else as GStreamer's serialisation.
fn json_value(name: &str, v: &gst::glib::SendValue) -> Value {
    use gst::glib::types::Type;
    use gst::prelude::GstValueExt;
    let t = v.type_();
    let float = |f: f64| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number);
    if t == Type::U64 {
        let x = v.get::<u64>().unwrap_or_default();
        if x == u64::MAX && name.ends_with("-pts") {
            Value::Null
        } else {
            x.into()
        }
    } else if t == Type::I64 {
        v.get::<i64>().unwrap_or_default().into()
    } else if t == Type::U32 {
        v.get::<u32>().unwrap_or_default().into()
    } else if t == Type::I32 {
        v.get::<i32>().unwrap_or_default().into()
    } else if t == Type::F64 {
        float(v.get::<f64>().unwrap_or(f64::NAN))
    } else if t == Type::F32 {
        float(v.get::<f32>().unwrap_or(f32::NAN) as f64)
    } else if t == Type::BOOL {
        v.get::<bool>().unwrap_or_default().into()
    } else if t == Type::STRING {
        v.get::<Option<String>>()
            .ok()
            .flatten()
            .map_or(Value::Null, Value::String)
    } else {
        v.serialize()
            .map_or(Value::Null, |s| Value::String(s.into()))
    }
}

/// The verdict fields of an `iguard-verdict` structure in snake_case, and where it came from.
/// `publisher` is the name of the element publishing it.
pub fn read(s: &gst::StructureRef, publisher: &str) -> (Map<String, Value>, Origin) {
    let mut fields = Map::new();
    let mut origin = Origin {
        publisher: publisher.into(),
        unix_us: schema::now_us(),
        ..Default::default()
    };
    for (name, value) in s.iter() {
        match name.as_str() {
            RUN_ID => origin.run_id = value.get::<String>().unwrap_or_default(),
            ELEMENT => origin.element = value.get::<String>().unwrap_or_default(),
            UNIX_US => {
                if let Ok(us) = value.get::<i64>() {
                    origin.unix_us = us;
                }
            }
            // The JPEG stays out of the JSON: the event names its size and digest, and the
            // publisher takes the bytes with [`snapshot`].
            meta::fields::SNAPSHOT => {
                if let Some(jpeg) = meta::snapshot(s) {
                    fields.insert("snapshot".into(), snapshot_summary(&jpeg));
                }
            }
            n => {
                fields.insert(schema::snake_case(n), json_value(n, value));
            }
        }
    }
    (fields, origin)
}

/// The JPEG snapshot an `iguard-verdict` structure carries, if any.
pub fn snapshot(s: &gst::StructureRef) -> Option<crate::snapshot::Snapshot> {
    meta::snapshot(s)
}

/// What the JSON event says of a snapshot: its type, size and SHA-256 (hex). The publisher
/// adds `file` when it writes one.
pub fn snapshot_summary(jpeg: &[u8]) -> Value {
    let digest = ring::digest::digest(&ring::digest::SHA256, jpeg);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    serde_json::json!({
        "content_type": "image/jpeg",
        "bytes": jpeg.len(),
        "sha256": hex,
    })
}

/// Verdict events waiting for the streaming thread, bounded: past the capacity the oldest is
/// dropped and counted (the verdict was on the bus already).
#[derive(Debug, Default)]
pub struct Outbox {
    events: VecDeque<gst::Event>,
    capacity: usize,
    pub overflowed: u64,
}

impl Outbox {
    pub fn new(capacity: usize) -> Outbox {
        Outbox {
            events: VecDeque::new(),
            capacity,
            overflowed: 0,
        }
    }

    pub fn push(&mut self, event: gst::Event) {
        if self.capacity == 0 {
            self.overflowed += 1;
            return;
        }
        if self.events.len() >= self.capacity {
            self.events.pop_front();
            self.overflowed += 1;
        }
        self.events.push_back(event);
    }

    /// Everything waiting, oldest first.
    pub fn take(&mut self) -> Vec<gst::Event> {
        self.events.drain(..).collect()
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::schema::Event;
    use crate::verdict::Status;

    fn verdict() -> Verdict {
        Verdict {
            request_id: 5,
            source_id: 2,
            pad_index: 0,
            status: Status::Timeout,
            score: f64::NAN,
            threshold: 0.7,
            label: String::new(),
            trigger_label: "person".into(),
            trigger_confidence: 0.9,
            clip_start_pts: Some(40),
            clip_end_pts: None,
            frames: 0,
            queue_ms: 0.5,
            processing_ms: 0.0,
            scorer: "onnx".into(),
            reason: "worker-timeout".into(),
            object_id: Some(9),
            crop: Some(crate::geometry::PixelRect {
                x: 10,
                y: 20,
                width: 30,
                height: 40,
            }),
            snapshot: None,
            zones: Vec::new(),
        }
    }

    #[test]
    fn a_verdict_event_becomes_a_schema_event_with_every_meta_field() {
        gst::init().unwrap();
        let ev = verdict_event(&verdict(), "abcd", "verify7");
        assert!(ev.is_serialized());
        let s = verdict_structure(&ev).expect("ours");
        let (fields, origin) = read(s, "pub0");
        assert_eq!(origin.run_id, "abcd");
        assert_eq!(origin.element, "verify7");
        assert!((origin.unix_us - schema::now_us()).abs() < 60_000_000);
        let meta_s = meta::to_structure("x", &verdict());
        assert_eq!(fields.len(), meta_s.n_fields());
        for (name, _) in meta_s.iter() {
            assert!(fields.contains_key(&schema::snake_case(name)), "{name}");
        }
        assert_eq!(fields["score"], Value::Null, "NaN is null");
        assert_eq!(fields["clip_end_pts"], Value::Null);
        assert_eq!(fields["clip_start_pts"], 40);
        assert_eq!(fields["status"], "timeout");
        let e = Event::from_fields(fields, &origin).unwrap();
        assert_eq!(e.event_id, "abcd-5");
        assert_eq!(e.source, "2");
    }

    #[test]
    fn a_snapshot_is_named_in_json_and_its_bytes_kept_apart() {
        gst::init().unwrap();
        let jpeg: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let v = Verdict {
            snapshot: Some(std::sync::Arc::new(jpeg.clone())),
            ..verdict()
        };
        let ev = verdict_event(&v, "abcd", "verify7");
        let s = verdict_structure(&ev).expect("ours");
        let (fields, _) = read(s, "pub0");
        let summary = &fields["snapshot"];
        assert_eq!(summary["bytes"], 100_000);
        assert_eq!(summary["content_type"], "image/jpeg");
        let sha = summary["sha256"].as_str().unwrap();
        assert_eq!(sha.len(), 64);
        // The digest of these bytes, not of something else.
        assert_ne!(sha, snapshot_summary(b"other")["sha256"].as_str().unwrap());
        assert_eq!(sha, snapshot_summary(&jpeg)["sha256"].as_str().unwrap());
        // The JSON stays small: the bytes are not in it.
        assert!(Value::Object(fields).to_string().len() < 2_000);
        assert_eq!(snapshot(s).unwrap().as_slice(), jpeg.as_slice());
    }

    #[test]
    fn sha256_of_abc_is_the_standard_one() {
        assert_eq!(
            snapshot_summary(b"abc")["sha256"],
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn other_events_are_not_ours() {
        gst::init().unwrap();
        let other = gst::event::CustomDownstream::new(gst::Structure::new_empty("x"));
        assert!(verdict_structure(&other).is_none());
        assert!(verdict_structure(&gst::event::Eos::new()).is_none());
    }

    #[test]
    fn run_ids_differ() {
        let (a, b) = (run_id(), run_id());
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
    }

    #[test]
    fn outbox_drops_the_oldest_and_counts() {
        gst::init().unwrap();
        let mut o = Outbox::new(2);
        for id in 1..=3 {
            let mut v = verdict();
            v.request_id = id;
            o.push(verdict_event(&v, "r", "e"));
        }
        assert_eq!(o.overflowed, 1);
        let ids: Vec<u64> = o
            .take()
            .iter()
            .map(|e| verdict_structure(e).unwrap().get("request-id").unwrap())
            .collect();
        assert_eq!(ids, [2, 3]);
        assert!(o.is_empty());
    }
}
