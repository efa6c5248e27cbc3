// SPDX-License-Identifier: MIT OR Apache-2.0
//! Incidents in `iguardverify`, through the real element and a real ONNX model (the tiny
//! model, whose "armed" class answers to red): people standing on a red patch are verified,
//! people on the blue background rejected. Each test reads the element's bus and the events
//! that come out of it, and checks that every incident goes `new` → (`update` | `alert`)* →
//! `end`, once each, revisions 1, 2, 3..., that an `update` follows its clip's verdict, and
//! that the `stats` figures add up (opened = alerted + dismissed + open).
//!
//! The model fixes clips at 16 frames of 112×112; `async=false` makes each verdict arrive
//! before the next buffer, so the order of changes is the same on every run. The per-stream EOS
//! test uses NVIDIA's own DeepStream libraries (batch metas and `gst_nvevent_new_stream_eos`),
//! as `stream_edges.rs` does, and a recording scorer.

mod common;
mod ds_element;
mod nvidia;

use nvidia::compat as builder;

use std::collections::BTreeMap;

use common::*;
use gst::prelude::*;
use gstiguard::incident::{self, Change, EndReason, Incident, State};
use gstiguard::meta;
use gstiguard::publish::wire;
use gstiguard::verdict::{Status, Verdict};

/// Where the red patch is: a person standing on it fills the clip with red.
const RED: Boxed = (20, 20, 120, 200);

/// One detection: box and tracker id (`None`: the built-in association gives one).
type Det = (Boxed, Option<u64>);

/// A person on the red patch and one on the blue background.
const ON_RED: Boxed = (40, 60, 60, 120);
const ON_BLUE: Boxed = (220, 60, 60, 120);

fn verifier(props: &[(&str, &dyn ToValue)]) -> (gst::Element, gst::Bus, gst_check::Harness) {
    let tiny = model("tiny-action.onnx");
    let labels = model("tiny-action.labels.txt");
    let mut all: Vec<(&str, &dyn ToValue)> = vec![
        ("model-path", &tiny),
        ("labels-file", &labels),
        ("positive-classes", &"armed"),
        ("trigger-labels", &"person"),
        ("roi-margin", &0.0f32),
        ("cooldown", &0u32),
        ("min-frames", &1u32),
        ("track-timeout", &5u32),
        ("async", &false),
    ];
    all.extend_from_slice(props);
    let (e, bus) = element(&all);
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_src_caps(caps());
    (e, bus, h)
}

/// Pushes frame `n` (pts n×33 ms, the red patch drawn) with people at `dets`.
fn push(h: &mut gst_check::Harness, n: u64, dets: &[Det]) {
    let mut b = frame(RED, n * 33);
    {
        let buf = b.make_mut();
        for (rect, id) in dets {
            let mut m = gst_video::VideoRegionOfInterestMeta::add(buf, "person", *rect);
            let mut s = gst::Structure::builder("detection").field("confidence", 0.9f64);
            if let Some(id) = id {
                s = s.field("object_id", *id);
            }
            m.add_param(s.build());
        }
    }
    h.push(b).expect("push");
    h.pull().expect("pull");
}

/// What the element said, in order.
#[derive(Debug, Clone)]
enum Said {
    Verdict(Verdict),
    Incident(Change, Incident),
}

fn read(s: &gst::StructureRef) -> Option<Said> {
    if s.name() == meta::MESSAGE_NAME || s.name() == wire::EVENT_NAME {
        return Some(Said::Verdict(meta::from_structure(s).unwrap()));
    }
    if s.name() == incident::EVENT_NAME {
        let (c, i) = Incident::from_structure(s).unwrap();
        return Some(Said::Incident(c, i));
    }
    None
}

/// The verdict and incident messages on `bus` so far, with their structures.
fn messages(bus: &gst::Bus) -> Vec<(Said, gst::Structure)> {
    std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Element]))
        .filter_map(|m| {
            let s = m.structure()?.to_owned();
            Some((read(&s)?, s))
        })
        .collect()
}

/// The verdict and incident events that came out of the element so far.
fn events(h: &mut gst_check::Harness) -> Vec<(Said, gst::Structure)> {
    std::iter::from_fn(|| h.try_pull_event())
        .filter_map(|ev| {
            let s = ev.structure()?.to_owned();
            Some((read(&s)?, s))
        })
        .collect()
}

/// Each incident's changes in order, by incident id.
fn by_incident(said: &[(Said, gst::Structure)]) -> BTreeMap<u64, Vec<(Change, Incident)>> {
    let mut out: BTreeMap<u64, Vec<(Change, Incident)>> = BTreeMap::new();
    for (s, _) in said {
        if let Said::Incident(c, i) = s {
            out.entry(i.incident_id).or_default().push((*c, i.clone()));
        }
    }
    out
}

fn changes(list: &[(Change, Incident)]) -> Vec<Change> {
    list.iter().map(|(c, _)| *c).collect()
}

/// Every incident: `new` first, `end` last and once, `alert` at most once, revisions 1, 2,
/// 3...; each `update`/`alert` comes after the verdict of the clip it counts (its clip
/// counts go up by one); the state after `end` says how it ended.
fn assert_well_formed(said: &[(Said, gst::Structure)]) {
    for (id, list) in by_incident(said) {
        let c = changes(&list);
        assert_eq!(c.first(), Some(&Change::New), "incident {id}: {c:?}");
        assert_eq!(c.last(), Some(&Change::End), "incident {id}: {c:?}");
        assert_eq!(c.iter().filter(|c| **c == Change::End).count(), 1, "{c:?}");
        assert!(
            c.iter().filter(|c| **c == Change::Alert).count() <= 1,
            "{c:?}"
        );
        let revisions: Vec<u32> = list.iter().map(|(_, i)| i.revision).collect();
        assert_eq!(revisions, (1..=list.len() as u32).collect::<Vec<_>>());
        let (_, last) = list.last().unwrap();
        assert!(!last.is_open() && last.end_unix_us > 0);
        assert_eq!(
            last.state == State::Alert,
            c.contains(&Change::Alert),
            "incident {id}"
        );
        assert_eq!(
            last.clips,
            last.clips_verified + last.clips_rejected + last.clips_unscored,
            "every clip of incident {id} has its verdict when it ends"
        );
    }
    // An update or alert follows the verdict it counts.
    let mut verdicts_seen: BTreeMap<(u32, Option<u64>), u32> = BTreeMap::new();
    let mut last: BTreeMap<u64, u32> = BTreeMap::new();
    for (s, _) in said {
        match s {
            Said::Verdict(v) => *verdicts_seen.entry((v.source_id, v.object_id)).or_default() += 1,
            Said::Incident(Change::Update | Change::Alert, i) => {
                let counted = i.clips_verified + i.clips_rejected + i.clips_unscored;
                let prev = last.insert(i.incident_id, counted).unwrap_or(0);
                assert_eq!(counted, prev + 1, "one verdict per update: {i:?}");
                let seen = verdicts_seen
                    .get(&(i.source_id, i.object_id))
                    .copied()
                    .unwrap_or(0);
                assert!(seen >= counted, "update before its verdict: {i:?}");
            }
            _ => (),
        }
    }
}

/// The incident figures add up and are as expected: (opened, alerted, dismissed, open).
fn assert_counts(e: &gst::Element, expected: (u64, u64, u64, u64)) {
    let s = Stats::of(e);
    s.assert_adds_up();
    let got = (
        s.u("incidents-opened"),
        s.u("incidents-alerted"),
        s.u("incidents-dismissed"),
        s.u("incidents-open"),
    );
    assert_eq!(got.0, got.1 + got.2 + got.3, "{}", s.0);
    assert_eq!(got, expected, "{}", s.0);
}

fn verdicts(said: &[(Said, gst::Structure)]) -> Vec<Verdict> {
    said.iter()
        .filter_map(|(s, _)| match s {
            Said::Verdict(v) => Some(v.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn an_incident_opens_updates_alerts_and_ends_once_in_order() {
    let (e, bus, mut h) = verifier(&[]);
    // Person 1 on red, person 2 on blue, 3 clips each; then both leave and are lost after
    // track-timeout (5 frames).
    for n in 0..48 {
        push(&mut h, n, &[(ON_RED, Some(1)), (ON_BLUE, Some(2))]);
    }
    let mut said = messages(&bus);
    assert_eq!(by_incident(&said).len(), 2, "{said:?}");
    assert_counts(&e, (2, 1, 0, 1));
    for n in 48..56 {
        push(&mut h, n, &[]);
    }
    said.extend(messages(&bus));
    assert_well_formed(&said);
    let incidents = by_incident(&said);
    let red = &incidents[&1];
    assert_eq!(
        changes(red),
        [
            Change::New,
            Change::Alert,
            Change::Update,
            Change::Update,
            Change::End
        ]
    );
    let (_, end) = red.last().unwrap();
    assert_eq!(
        (end.object_id, end.state, end.end_reason),
        (Some(1), State::Alert, Some(EndReason::Lost))
    );
    assert_eq!((end.clips, end.clips_verified), (3, 3));
    assert!(
        end.best_score >= 0.7 && end.best_label == "armed",
        "{end:?}"
    );
    assert_eq!(end.trigger_label, "person");
    assert_eq!(end.start_pts, Some(0));
    let blue = &incidents[&2];
    assert_eq!(
        changes(blue),
        [
            Change::New,
            Change::Update,
            Change::Update,
            Change::Update,
            Change::End
        ]
    );
    let (_, end) = blue.last().unwrap();
    assert_eq!(
        (end.object_id, end.state, end.clips_rejected),
        (Some(2), State::Dismissed, 3)
    );
    assert_eq!(
        end.last_box.map(|b| (b.x, b.y, b.width, b.height)),
        Some(ON_BLUE),
        "the latest box"
    );
    h.push_event(gst::event::Eos::new());
    assert!(messages(&bus).is_empty(), "nothing more at EOS");
    assert_counts(&e, (2, 1, 1, 0));
}

#[test]
fn alert_after_two_alerts_on_the_second_verified_clip() {
    let (e, bus, mut h) = verifier(&[("alert-after", &2u32)]);
    for n in 0..48 {
        push(&mut h, n, &[(ON_RED, Some(1))]);
    }
    h.push_event(gst::event::Eos::new());
    let said = messages(&bus);
    assert_well_formed(&said);
    let list = &by_incident(&said)[&1];
    assert_eq!(
        changes(list),
        [
            Change::New,
            Change::Update,
            Change::Alert,
            Change::Update,
            Change::End
        ]
    );
    let (_, alert) = &list[2];
    assert_eq!((alert.clips_verified, alert.state), (2, State::Alert));
    assert_eq!(list[4].1.end_reason, Some(EndReason::Eos));
    assert_counts(&e, (1, 1, 0, 0));
}

#[test]
fn a_label_guess_never_makes_an_alert() {
    // The fallback scorer calls a weapon label positive, but a guess is not a verification.
    let (e, bus, mut h) = verifier(&[("model-type", &"fallback"), ("trigger-labels", &"gun")]);
    for n in 0..32 {
        let mut b = frame(RED, n * 33);
        let mut m = gst_video::VideoRegionOfInterestMeta::add(b.make_mut(), "gun", ON_RED);
        m.add_param(
            gst::Structure::builder("detection")
                .field("confidence", 0.9f64)
                .field("object_id", 4u64)
                .build(),
        );
        h.push(b).unwrap();
        h.pull().unwrap();
    }
    h.push_event(gst::event::Eos::new());
    let said = messages(&bus);
    assert_well_formed(&said);
    let v = verdicts(&said);
    assert!(
        v.len() == 2
            && v.iter()
                .all(|v| v.status == Status::Fallback && v.is_positive()),
        "{v:?}"
    );
    let list = &by_incident(&said)[&1];
    assert_eq!(
        changes(list),
        [Change::New, Change::Update, Change::Update, Change::End]
    );
    let (_, end) = list.last().unwrap();
    assert_eq!(
        (end.state, end.clips_unscored, end.best_score.is_nan()),
        (State::Dismissed, 2, true)
    );
    assert_counts(&e, (1, 0, 1, 0));
}

#[test]
fn a_lost_object_that_comes_back_with_its_id_in_time_keeps_its_incident() {
    // The detector's id 1 misses 3 frames (under track-timeout=5): the same incident. Then it
    // misses 8 frames: lost, its incident ends, and with the same id back a new one opens.
    let (e, bus, mut h) = verifier(&[]);
    let mut n = 0;
    let mut run = |h: &mut gst_check::Harness, frames: u64, dets: &[Det]| {
        for _ in 0..frames {
            push(h, n, dets);
            n += 1;
        }
    };
    run(&mut h, 20, &[(ON_RED, Some(1))]);
    run(&mut h, 3, &[]);
    run(&mut h, 20, &[(ON_RED, Some(1))]);
    let said = messages(&bus);
    let ids: Vec<u64> = by_incident(&said).into_keys().collect();
    assert_eq!(ids, [1], "one incident through a short gap: {said:?}");
    assert!(
        !by_incident(&said)[&1]
            .iter()
            .any(|(c, _)| *c == Change::End)
    );
    run(&mut h, 8, &[]);
    run(&mut h, 20, &[(ON_RED, Some(1))]);
    h.push_event(gst::event::Eos::new());
    let all: Vec<_> = said.into_iter().chain(messages(&bus)).collect();
    assert_well_formed(&all);
    let incidents = by_incident(&all);
    assert_eq!(incidents.len(), 2);
    let first = &incidents[&1].last().unwrap().1;
    let second = &incidents[&2].last().unwrap().1;
    assert_eq!(
        (first.object_id, first.end_reason),
        (Some(1), Some(EndReason::Lost))
    );
    assert_eq!(
        (second.object_id, second.end_reason),
        (Some(1), Some(EndReason::Eos))
    );
    // The first ended before the second began.
    let end_at = all
        .iter()
        .position(|(s, _)| matches!(s, Said::Incident(Change::End, i) if i.incident_id == 1));
    let new_at = all
        .iter()
        .position(|(s, _)| matches!(s, Said::Incident(Change::New, i) if i.incident_id == 2));
    assert!(end_at < new_at, "{end_at:?} {new_at:?}");
    assert_counts(&e, (2, 2, 0, 0));
}

#[test]
fn two_objects_that_cross_keep_their_own_incidents() {
    // No ids: the built-in association follows A (walking right) and B (walking left, 10 px
    // lower) through each other.
    let (e, bus, mut h) = verifier(&[]);
    for i in 0..40u32 {
        let a = (20 + 6 * i, 60, 40, 80);
        let b = (260 - 6 * i, 70, 40, 80);
        push(&mut h, i as u64, &[(a, None), (b, None)]);
    }
    h.push_event(gst::event::Eos::new());
    let said = messages(&bus);
    assert_well_formed(&said);
    let incidents = by_incident(&said);
    assert_eq!(incidents.len(), 2, "{incidents:?}");
    let objects: Vec<Option<u64>> = incidents
        .values()
        .map(|l| l.last().unwrap().1.object_id)
        .collect();
    assert!(
        objects[0].is_some() && objects[0] != objects[1],
        "{objects:?}"
    );
    for list in incidents.values() {
        let end = &list.last().unwrap().1;
        let theirs = verdicts(&said)
            .iter()
            .filter(|v| v.object_id == end.object_id)
            .count() as u32;
        assert_eq!(
            end.clips, theirs,
            "each incident counts its own object's clips"
        );
        assert_eq!(end.clips, 3);
    }
    let s = Stats::of(&e);
    assert_eq!(s.u("incidents-opened"), 2);
    assert_eq!(s.u("incidents-open"), 0);
}

/// Two people mid-incident (each with a clip collecting) when `interrupt` happens: each
/// incident ends once, for `reason`.
fn ends_mid_incident(
    reason: EndReason,
    interrupt: impl FnOnce(&mut gst_check::Harness, &gst::Element),
) {
    let (e, bus, mut h) = verifier(&[]);
    for n in 0..24 {
        push(&mut h, n, &[(ON_RED, Some(1)), (ON_BLUE, Some(2))]);
    }
    interrupt(&mut h, &e);
    let said = messages(&bus);
    assert_well_formed(&said);
    let incidents = by_incident(&said);
    assert_eq!(incidents.len(), 2, "{incidents:?}");
    for list in incidents.values() {
        assert_eq!(list.last().unwrap().1.end_reason, Some(reason));
    }
    let s = Stats::of(&e);
    s.assert_adds_up();
    assert_eq!(s.u("pending"), 0, "{}", s.0);
    assert_counts(&e, (2, 1, 1, 0));
}

#[test]
fn eos_mid_incident_ends_every_incident_once() {
    ends_mid_incident(EndReason::Eos, |h, _| {
        h.push_event(gst::event::Eos::new());
    });
}

#[test]
fn a_flush_mid_incident_ends_every_incident_once() {
    ends_mid_incident(EndReason::Flush, |h, _| {
        h.push_event(gst::event::FlushStart::new());
        h.push_event(gst::event::FlushStop::new(true));
    });
}

#[test]
fn a_stop_mid_incident_ends_every_incident_once_and_holds_nothing() {
    ends_mid_incident(EndReason::Stop, |_, e| {
        e.set_state(gst::State::Null).unwrap();
    });
}

#[test]
fn a_quiet_incident_ends_after_incident_timeout() {
    // A long cool-down: one clip, then the person stays without a new one. One second of
    // buffer time after that clip's last frame (frame 15, 495 ms), on frame 46, it ends.
    let (e, bus, mut h) = verifier(&[("cooldown", &1000u32), ("incident-timeout", &1.0f64)]);
    for n in 0..46 {
        push(&mut h, n, &[(ON_RED, Some(1))]);
    }
    assert!(
        !by_incident(&messages(&bus))[&1]
            .iter()
            .any(|(c, _)| *c == Change::End),
        "not before the timeout"
    );
    push(&mut h, 46, &[(ON_RED, Some(1))]);
    let said = messages(&bus);
    let (change, end) = said
        .iter()
        .find_map(|(s, _)| match s {
            Said::Incident(c, i) => Some((*c, i.clone())),
            _ => None,
        })
        .expect("the end on frame 46");
    assert_eq!(
        (change, end.end_reason, end.state),
        (Change::End, Some(EndReason::Timeout), State::Alert)
    );
    for n in 47..60 {
        push(&mut h, n, &[(ON_RED, Some(1))]);
    }
    h.push_event(gst::event::Eos::new());
    assert!(messages(&bus).is_empty(), "no clip, no new incident");
    assert_counts(&e, (1, 1, 0, 0));
}

#[test]
fn with_clip_per_source_an_incident_is_a_period_of_activity() {
    // Two clips of activity, a quiet second and a half, then more: two incidents, each ended
    // by incident-timeout (1 s) or EOS.
    let (e, bus, mut h) = verifier(&[("clip-per", &"source"), ("incident-timeout", &1.0f64)]);
    for n in 0..100 {
        let dets: &[Det] = if !(32..80).contains(&n) {
            &[(ON_RED, None)]
        } else {
            &[]
        };
        push(&mut h, n, dets);
    }
    h.push_event(gst::event::Eos::new());
    let said = messages(&bus);
    assert_well_formed(&said);
    let incidents = by_incident(&said);
    let ends: Vec<(Option<u64>, u32, Option<EndReason>)> = incidents
        .values()
        .map(|l| {
            let i = &l.last().unwrap().1;
            (i.object_id, i.clips, i.end_reason)
        })
        .collect();
    assert_eq!(
        ends,
        [
            (None, 2, Some(EndReason::Timeout)),
            (None, 2, Some(EndReason::Eos))
        ]
    );
    assert_counts(&e, (2, 2, 0, 0));
}

#[test]
fn the_event_downstream_equals_the_bus_message() {
    let (_e, bus, mut h) = verifier(&[]);
    for n in 0..40 {
        push(&mut h, n, &[(ON_RED, Some(1)), (ON_BLUE, Some(2))]);
    }
    h.push_event(gst::event::Eos::new());
    // As text: a NaN best score (no clip scored yet) never compares equal as a value.
    let on_bus: Vec<String> = messages(&bus)
        .into_iter()
        .filter(|(s, _)| matches!(s, Said::Incident(..)))
        .map(|(_, s)| s.to_string())
        .collect();
    let downstream = events(&mut h);
    assert_well_formed(&downstream);
    let sent: Vec<String> = downstream
        .iter()
        .filter(|(s, _)| matches!(s, Said::Incident(..)))
        .map(|(_, s)| s.to_string())
        .collect();
    assert!(on_bus.len() >= 6, "{on_bus:?}");
    assert_eq!(sent, on_bus);
}

/// NVIDIA's per-stream EOS for `source`, made by `gst_nvevent_new_stream_eos`.
fn stream_eos(source: u32) -> gst::Event {
    type NewStreamEos = unsafe extern "C" fn(u32) -> *mut gst::ffi::GstEvent;
    static LIB: std::sync::OnceLock<(libloading::Library, NewStreamEos)> =
        std::sync::OnceLock::new();
    let (_, new) = LIB.get_or_init(|| {
        init();
        let dir = std::env::var("IGUARD_DEEPSTREAM_LIB_DIR")
            .expect("IGUARD_DEEPSTREAM_LIB_DIR: run `make deepstream-libs` and export it");
        let path = std::path::Path::new(&dir).join("libnvdsgst_helper.so");
        // SAFETY: NVIDIA's helper library; its initialisers only register GLib types.
        let lib = unsafe { libloading::Library::new(&path) }
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
        // SAFETY: the signature of gst-nvevent.h: GstEvent *(guint source_id).
        let new = unsafe {
            *lib.get::<NewStreamEos>(b"gst_nvevent_new_stream_eos")
                .unwrap()
        };
        (lib, new)
    });
    // SAFETY: the function returns a new event (full ownership).
    unsafe { gst::glib::translate::from_glib_full(new(source)) }
}

#[test]
fn a_source_eos_ends_that_sources_incidents_after_their_clips() {
    use ds_element::{BOX, CLASS_LABELS, MS, PERSON};
    let (e, bus, scorer) = ds_element::element_with(&[
        ("class-labels", &CLASS_LABELS),
        ("trigger-labels", &"person"),
        ("temporal-size", &4u32),
        ("cooldown", &0u32),
        ("input-width", &8u32),
        ("input-height", &8u32),
        ("tracking", &"builtin"),
    ]);
    scorer.open();
    let mut h = common::harness(&e);
    let people = |h: &mut gst_check::Harness, n: u64, sources: &[u32]| {
        let mut b = builder::Batch::new();
        for &s in sources {
            b = b.frame(s, s, n as i32, n * 33 * MS, |f| {
                f.object(PERSON, 0.9, BOX, "")
            });
        }
        ds_element::push(h, n, b);
    };
    for n in 1..=6 {
        people(&mut h, n, &[0, 1]);
    }
    // Camera 0 ends with a clip half collected: it is completed and scored, then the incident
    // ends; camera 1's goes on.
    h.push_event(stream_eos(0));
    // Taken off the bus as they come (in the order they were posted) while waiting.
    let mut said = Vec::new();
    wait_for("source 0's end", std::time::Duration::from_secs(10), || {
        said.extend(messages(&bus));
        by_incident(&said)
            .values()
            .any(|l| l.last().is_some_and(|(c, _)| *c == Change::End))
    });
    for n in 7..=8 {
        people(&mut h, n, &[1]);
    }
    h.push_event(gst::event::Eos::new());
    said.extend(messages(&bus));
    assert_well_formed(&said);
    let ends: Vec<(u32, u32, Option<EndReason>)> = by_incident(&said)
        .values()
        .map(|l| {
            let i = &l.last().unwrap().1;
            (i.source_id, i.clips, i.end_reason)
        })
        .collect();
    assert_eq!(
        ends,
        [
            (0, 2, Some(EndReason::SourceEos)),
            (1, 2, Some(EndReason::Eos))
        ]
    );
    assert_counts(&e, (2, 0, 2, 0));
}

/// Where a change or verdict says it comes from: `run-id`, `element`, `unix-us`.
fn origin(s: &gst::StructureRef) -> (String, String, i64) {
    let get = |f: &str| s.value(f).unwrap_or_else(|_| panic!("no {f} in {s}"));
    (
        get(wire::RUN_ID).get().unwrap(),
        get(wire::ELEMENT).get().unwrap(),
        get(wire::UNIX_US).get().unwrap(),
    )
}

/// One run of the verifier in `h`: a person on the red patch for 20 frames, then EOS. Every
/// incident change, as a message and as an event, names the run its verdicts name and the
/// element, and the time of the change (its start for `new`, its end for `end`). Returns the
/// run id and the verdict and incident events sent downstream, in order.
fn one_run(h: &mut gst_check::Harness, bus: &gst::Bus) -> (String, Vec<gst::Event>) {
    let e = h.element().unwrap();
    let from = common::publish::now_ms() * 1000;
    for n in 0..20 {
        push(h, n, &[(ON_RED, Some(1))]);
    }
    h.push_event(gst::event::Eos::new());
    let to = common::publish::now_ms() * 1000 + 1000;
    let sent: Vec<gst::Event> = std::iter::from_fn(|| h.try_pull_event())
        .filter(|ev| {
            wire::verdict_structure(ev).is_some() || incident::event_structure(ev).is_some()
        })
        .collect();
    let said = messages(bus);
    let downstream: Vec<(Said, gst::Structure)> = sent
        .iter()
        .filter_map(|ev| {
            let s = ev.structure()?.to_owned();
            Some((read(&s)?, s))
        })
        .collect();
    assert_well_formed(&said);
    assert_eq!(by_incident(&said).len(), 1, "{said:?}");
    let name = e.name().to_string();
    let verdict_runs: std::collections::BTreeSet<String> = downstream
        .iter()
        .filter(|(s, _)| matches!(s, Said::Verdict(_)))
        .map(|(_, s)| origin(s).0)
        .collect();
    assert_eq!(verdict_runs.len(), 1, "one run: {verdict_runs:?}");
    let run = verdict_runs.into_iter().next().unwrap();
    let mut checked = 0;
    for (s, st) in said.iter().chain(&downstream) {
        let Said::Incident(change, i) = s else {
            continue;
        };
        let (r, element, at) = origin(st);
        assert_eq!(
            (r.as_str(), element.as_str()),
            (run.as_str(), name.as_str())
        );
        assert!((from..=to).contains(&at), "{at} outside {from}..{to}: {st}");
        match change {
            Change::New => assert_eq!(at, i.start_unix_us),
            Change::End => assert_eq!(at, i.end_unix_us),
            _ => assert!(at >= i.start_unix_us),
        }
        checked += 1;
    }
    assert!(
        checked >= 6,
        "message and event of new, alert, end: {checked}"
    );
    (run, sent)
}

#[test]
fn a_restarted_verifier_and_a_second_one_name_their_incidents_after_their_own_runs() {
    let (a, a_bus, mut ha) = verifier(&[("name", &"cam-a")]);
    let (_b, b_bus, mut hb) = verifier(&[("name", &"cam-b")]);
    let (run1, first) = one_run(&mut ha, &a_bus);
    // Restarted: a new run, whose incidents count from 1 again.
    a.set_state(gst::State::Null).unwrap();
    a.set_state(gst::State::Playing).unwrap();
    ha.push_event(gst::event::StreamStart::new("restarted"));
    ha.set_src_caps(caps());
    let (run2, again) = one_run(&mut ha, &a_bus);
    let (run3, other) = one_run(&mut hb, &b_bus);
    assert!(run1 != run2 && run2 != run3 && run1 != run3);

    // One publisher takes all three: each run's incident 1 is its own, none a copy.
    let dir = common::publish::tmpdir("incident-runs");
    let log = dir.join("events.jsonl");
    let (mut h, p, _bus) = common::publish::publisher(&format!("file-path={}", log.display()));
    let mut pushed = 0;
    for ev in first.into_iter().chain(again).chain(other) {
        if incident::event_structure(&ev).is_some() {
            pushed += 1;
        }
        assert!(h.push_event(ev));
    }
    assert!(h.push_event(gst::event::Eos::new()));
    let stats = p.property::<gst::Structure>("stats");
    drop(h);
    let logged: Vec<serde_json::Value> = common::publish::lines(&log)
        .into_iter()
        .filter(|e| e["schema"] == "iguard.incident/1")
        .collect();
    assert_eq!(logged.len(), pushed, "{logged:#?}");
    assert_eq!(
        common::publish::u(&stats, "incident-duplicates"),
        0,
        "{stats}"
    );
    let ids = common::publish::event_ids(&logged);
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
    for (run, element) in [(&run1, "cam-a"), (&run2, "cam-a"), (&run3, "cam-b")] {
        let new = logged
            .iter()
            .find(|e| e["event_id"] == format!("{run}-incident-1-1"))
            .unwrap_or_else(|| panic!("no incident 1 of run {run}: {ids:?}"));
        assert_eq!(
            (new["type"].as_str(), new["element"].as_str()),
            (Some("new"), Some(element))
        );
        // The time of the event is the change's, not its arrival's.
        let start = new["start_unix_us"].as_i64().unwrap();
        assert_eq!(new["unix_ms"].as_i64(), Some(start / 1000));
        assert_eq!(new["time"], new["start_time"]);
    }
    std::fs::remove_dir_all(dir).unwrap();
}
