// SPDX-License-Identifier: MIT OR Apache-2.0
//! Zones in `iguardverify`, driven through the real element: an object starts clips only while
//! the bottom centre of its box stands in one of `trigger-zones` and in none of
//! `ignore-zones`; each object remembers the zones it entered and its verdicts carry them (bus
//! message, buffer meta, `iguard-verdict` event); with `clip-per=source` the rule applies per
//! detection; a malformed zone or an unknown zone name fails the start, naming it. Frames are
//! 320×240, so zone coordinates are fractions of that.

mod common;

use common::*;
use gst::prelude::*;
use gstiguard::meta;
use gstiguard::publish::wire;
use gstiguard::verdict::Verdict;

const BG: Boxed = (0, 0, 1, 1);

/// One detection: box and tracker id.
type Det = (Boxed, u64);

/// Short clips, no cool-down: while an object may trigger, a clip starts every 4 frames.
fn zoned(props: &[(&str, &dyn ToValue)]) -> (gst::Element, gst::Bus) {
    let mut all: Vec<(&str, &dyn ToValue)> = vec![
        ("model-type", &"fallback"),
        ("trigger-labels", &"person"),
        ("temporal-size", &4u32),
        ("cooldown", &0u32),
        ("min-frames", &1u32),
        ("track-timeout", &5u32),
        ("clip-per", &"object"),
    ];
    all.extend_from_slice(props);
    element(&all)
}

/// Pushes frame `n` (pts n×33 ms) with people at `dets`; returns the buffer that came out.
fn push(h: &mut gst_check::Harness, n: u64, dets: &[Det]) -> gst::Buffer {
    let mut b = frame(BG, n * 33);
    {
        let buf = b.make_mut();
        for (rect, id) in dets {
            let mut m = gst_video::VideoRegionOfInterestMeta::add(buf, "person", *rect);
            m.add_param(
                gst::Structure::builder("detection")
                    .field("confidence", 0.9f64)
                    .field("object_id", *id)
                    .build(),
            );
        }
    }
    h.push(b).expect("push");
    h.pull().expect("pull")
}

/// EOS, then the verdicts in request order (workers post them in the order they finish, which
/// a loaded machine shuffles).
fn finish(h: &mut gst_check::Harness, e: &gst::Element, bus: &gst::Bus) -> Vec<Verdict> {
    h.push_event(gst::event::Eos::new());
    Stats::of(e).assert_adds_up();
    let mut v = bus_verdicts(bus);
    v.sort_by_key(|v| v.request_id);
    v
}

fn start_frame(v: &Verdict) -> u64 {
    v.clip_start_pts.expect("a start") / 33_000_000
}

/// A person (40×80) whose feet are at `foot_x`, `foot_y`.
fn standing(foot_x: u32, foot_y: u32) -> Boxed {
    (foot_x - 20, foot_y - 80, 40, 80)
}

#[test]
fn a_person_walking_in_and_out_triggers_only_inside() {
    // The left half is the trigger zone. The feet walk from x=310 to x=100 (frame 35) and back
    // out: inside (x <= 160) on frames 25 to 45.
    let (e, bus) = zoned(&[
        ("zones", &"left:0,0 0.5,0 0.5,1 0,1"),
        ("trigger-zones", &"left"),
    ]);
    let mut h = harness(&e);
    let foot = |n: u64| -> u32 {
        if n <= 35 {
            310 - 6 * n as u32
        } else {
            100 + 6 * (n as u32 - 35)
        }
    };
    for n in 0..70 {
        push(&mut h, n, &[(standing(foot(n), 200), 1)]);
    }
    let v = finish(&mut h, &e, &bus);
    assert!(v.len() >= 4, "clips while inside: {v:?}");
    for verdict in &v {
        let n = start_frame(verdict);
        assert!(
            (25..=45).contains(&n) && foot(n) <= 160,
            "a clip started on frame {n} with the feet at x={}",
            foot(n)
        );
        assert_eq!(verdict.zones, ["left"]);
    }
    // Every 4 frames while inside: 25, 29, ..., 45.
    let starts: Vec<u64> = v.iter().map(start_frame).collect();
    assert_eq!(starts, [25, 29, 33, 37, 41, 45]);
}

#[test]
fn the_feet_decide_not_the_head() {
    // The upper half triggers. Person 1 has its head in it and its feet below (y=140 > 120);
    // person 2 stands in it (feet at y=100).
    let (e, bus) = zoned(&[
        ("zones", &"upper:0,0 1,0 1,0.5 0,0.5"),
        ("trigger-zones", &"upper"),
    ]);
    let mut h = harness(&e);
    for n in 0..12 {
        push(
            &mut h,
            n,
            &[(standing(60, 140), 1), (standing(240, 100), 2)],
        );
    }
    let v = finish(&mut h, &e, &bus);
    assert_eq!(v.len(), 3, "{v:?}");
    assert!(v.iter().all(|v| v.object_id == Some(2)), "{v:?}");
    assert!(v.iter().all(|v| v.zones == ["upper"]));
}

#[test]
fn an_ignore_zone_masks_and_the_rest_of_the_frame_triggers() {
    // A door on x 80..160: person 1 stands in it, person 2 elsewhere (no trigger zones: the
    // whole frame but the mask triggers).
    let (e, bus) = zoned(&[
        ("zones", &"door:0.25,0 0.5,0 0.5,1 0.25,1"),
        ("ignore-zones", &"door"),
    ]);
    let mut h = harness(&e);
    for n in 0..8 {
        push(
            &mut h,
            n,
            &[(standing(120, 200), 1), (standing(260, 200), 2)],
        );
    }
    let v = finish(&mut h, &e, &bus);
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v.iter().all(|v| v.object_id == Some(2)), "{v:?}");
    assert!(
        v.iter().all(|v| v.zones.is_empty()),
        "person 2 entered no zone"
    );
}

#[test]
fn verdicts_carry_the_zones_entered_in_order_on_the_bus_the_meta_and_the_event() {
    // Zone b on the right, a on the left; the person walks from b through the middle into a.
    // async=false: each clip's verdict is attached on the buffer that completes it, so the
    // buffers this test pushes carry every verdict however loaded the machine is.
    let (e, bus) = zoned(&[
        ("zones", &"a:0,0 0.3,0 0.3,1 0,1; b:0.7,0 1,0 1,1 0.7,1"),
        ("async", &false),
    ]);
    let mut h = harness(&e);
    let mut metas = Vec::new();
    for n in 0..28u64 {
        let x = match n {
            0..8 => 280,
            8..16 => 160,
            _ => 40,
        };
        let out = push(&mut h, n, &[(standing(x, 200), 1)]);
        metas.extend(meta::read_all(&out));
    }
    let v = finish(&mut h, &e, &bus);
    let zones: Vec<(u64, String)> = v
        .iter()
        .map(|v| (start_frame(v), v.zones.join(",")))
        .collect();
    assert_eq!(
        zones,
        [
            (0, "b".into()),
            (4, "b".into()),
            (8, "b".into()),
            (12, "b".into()),
            (16, "b,a".into()),
            (20, "b,a".into()),
            (24, "b,a".into()),
        ]
    );
    assert!(
        metas.iter().any(|m| m.zones == ["b", "a"]),
        "buffer metas carry zones too: {metas:?}"
    );
    let mut events = Vec::new();
    while let Some(ev) = h.try_pull_event() {
        if let Some(s) = wire::verdict_structure(&ev) {
            events.push(s.get::<String>(meta::fields::ZONES).unwrap());
        }
    }
    assert_eq!(
        events.len(),
        v.len(),
        "one iguard-verdict event per verdict"
    );
    assert_eq!(events.last().map(String::as_str), Some("b,a"));
}

#[test]
fn with_clip_per_source_the_rule_applies_to_each_detection() {
    // Person 1 stands in the left half (the trigger zone), person 2 in the right. The clip's
    // crop covers person 1 only; once only person 2 is left, nothing triggers.
    let (e, bus) = zoned(&[
        ("clip-per", &"source"),
        ("zones", &"left:0,0 0.5,0 0.5,1 0,1"),
        ("trigger-zones", &"left"),
    ]);
    let mut h = harness(&e);
    for n in 0..16 {
        let dets: &[Det] = if n < 8 {
            &[(standing(60, 200), 1), (standing(260, 200), 2)]
        } else {
            &[(standing(260, 200), 2)]
        };
        push(&mut h, n, dets);
    }
    let v = finish(&mut h, &e, &bus);
    assert_eq!(v.len(), 2, "{v:?}");
    for verdict in &v {
        let crop = verdict.crop.expect("a crop");
        assert!(
            crop.x + crop.width < 240,
            "the crop reaches person 2: {crop:?}"
        );
        assert_eq!(verdict.zones, ["left"], "person 2's feet stood in no zone");
    }
}

/// Takes an element with `props` to PAUSED, expecting a failure; returns the error's text.
fn start_error(props: &[(&str, &dyn ToValue)]) -> String {
    let (e, bus) = zoned(props);
    assert!(
        e.set_state(gst::State::Paused).is_err(),
        "the start must fail"
    );
    let msg = bus
        .pop_filtered(&[gst::MessageType::Error])
        .expect("an error message");
    e.set_state(gst::State::Null).unwrap();
    match msg.view() {
        gst::MessageView::Error(err) => err.error().to_string(),
        _ => unreachable!(),
    }
}

#[test]
fn malformed_zones_and_unknown_names_fail_the_start_naming_them() {
    let e = start_error(&[("zones", &"lawn:0,0 1,0")]);
    assert!(e.contains("zones: zone \"lawn\" has 2 corner(s)"), "{e}");
    let e = start_error(&[("zones", &"bow:0,0 1,1 1,0 0,1")]);
    assert!(e.contains("\"bow\" crosses itself"), "{e}");
    let e = start_error(&[("zones", &"lawn:0,0 1,0 1,1"), ("trigger-zones", &"gate")]);
    assert!(
        e.contains("trigger-zones names zone \"gate\"") && e.contains("zones: lawn"),
        "{e}"
    );
    let e = start_error(&[
        ("zones", &"lawn:0,0 1,0 1,1"),
        ("ignore-zones", &"lawn,pool"),
    ]);
    assert!(e.contains("ignore-zones names zone \"pool\""), "{e}");
    let e = start_error(&[("ignore-zones", &"pool")]);
    assert!(e.contains("\"pool\"") && e.contains("zones: none"), "{e}");

    // A warning already when the property is set.
    let (e, bus) = zoned(&[]);
    e.set_property("zones", "lawn:0,0 1.5,0 1,1");
    let warning = bus
        .pop_filtered(&[gst::MessageType::Warning])
        .expect("a warning at set time");
    let gst::MessageView::Warning(w) = warning.view() else {
        unreachable!()
    };
    assert!(
        w.error().to_string().contains("corner 1.5,0 is outside"),
        "{}",
        w.error()
    );
    // Names may come before the zones they name: no warning until `zones` is set.
    let (e, bus) = zoned(&[]);
    e.set_property("trigger-zones", "lawn");
    assert!(bus.pop_filtered(&[gst::MessageType::Warning]).is_none());
    e.set_property("zones", "lawn:0,0 1,0 1,1");
    assert!(bus.pop_filtered(&[gst::MessageType::Warning]).is_none());
    assert!(e.set_state(gst::State::Paused).is_ok());
    e.set_state(gst::State::Null).unwrap();
}
