// SPDX-License-Identifier: MIT OR Apache-2.0
//! `iguardoverlay` with incidents and zones, driven by real GStreamer: the `iguard-incident`
//! events `iguardverify` sends (built with the shared `Incident` type) pushed before the
//! buffers they precede, and the frames checked pixel by pixel.

use std::time::Duration;

mod common;

use common::{StopOnDrop, error_text, init, overlay, verdict};
use gst::prelude::*;
use gstiguard::iguardoverlay::text::{DEFAULT_FONT_FILE, Font};
use gstiguard::incident::{Change, EndReason, Incident, PixelBox, State};
use gstiguard::verdict::{Status, Verdict};

const BOX_COLOR: [u8; 3] = [0x00, 0xC8, 0xFF];
const VERIFIED_COLOR: [u8; 3] = [0xFF, 0x20, 0x20];
const REJECTED_COLOR: [u8; 3] = [0x20, 0xD0, 0x20];
const GREY: [u8; 3] = [0x80; 3];
const W: u32 = 320;
const H: u32 = 240;

type Det = (Option<i32>, (u32, u32, u32, u32));

fn info() -> gst_video::VideoInfo {
    overlay::info(gst_video::VideoFormat::Rgba, W, H)
}

/// A uniform grey RGBA frame at `pts_ms` with person detections and verdicts.
fn frame(pts_ms: u64, dets: &[Det], verdicts: &[Verdict]) -> gst::Buffer {
    let people: Vec<overlay::Det> = dets
        .iter()
        .map(|&(id, rect)| ("person", id, rect))
        .collect();
    overlay::frame(&info(), pts_ms, &people, verdicts)
}

fn harness(props: &[(&str, &dyn ToValue)]) -> gst_check::Harness {
    overlay::harness(&info(), props, false)
}

fn rgb(buf: &gst::Buffer, x: u32, y: u32) -> [u8; 3] {
    let map = buf.map_readable().unwrap();
    let i = ((y * W + x) * 4) as usize;
    [map[i], map[i + 1], map[i + 2]]
}

fn near(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| (*x as i32 - y as i32).abs() <= 3)
}

/// The rightmost pixel of rows `ys` that is not grey, if any.
fn right_end(buf: &gst::Buffer, ys: std::ops::Range<u32>) -> Option<u32> {
    ys.flat_map(|y| (0..W).map(move |x| (x, y)))
        .filter(|&(x, y)| rgb(buf, x, y) != GREY)
        .map(|(x, _)| x)
        .max()
}

/// An incident on object `object` as `iguardverify` sends it after `change`.
fn incident_event(i: &mut Incident, change: Change) -> gst::Event {
    i.revision += 1;
    match change {
        Change::Alert => {
            i.state = State::Alert;
            i.clips_verified += 1;
            i.best_score = 0.93;
        }
        Change::End => i.end(EndReason::Lost, 1),
        _ => {}
    }
    i.to_event(change)
}

#[test]
fn an_incidents_state_is_drawn_on_its_object_and_an_ended_one_goes_after_hold() {
    let mut h = harness(&[("hold", &0.5f64), ("font-size", &12.0f64)]);
    // 8 lower than 7, so that 7's long label does not run into 8's.
    let (a, b) = ((20u32, 60u32, 50u32, 80u32), (220u32, 170u32, 50u32, 60u32));
    let dets = [(Some(7), a), (Some(8), b)];
    // The bottom middle of each outline: the box's colour.
    let bottom =
        |out: &gst::Buffer, r: (u32, u32, u32, u32)| rgb(out, r.0 + r.2 / 2, r.1 + r.3 - 1);
    let mut seven = Incident::open(12, 0, 0, Some(7), "person", None, 0);
    let mut eight = Incident::open(13, 0, 0, Some(8), "person", None, 0);
    let mut colours = Vec::new();
    let mut label_ends = Vec::new();
    for n in 0..14u64 {
        // 0: a rejected clip and both incidents open; 1: 7 becomes an alert; 3: 8 ends without
        // one (dismissed); 6: 7 ends, an alert still.
        let events: Vec<gst::Event> = match n {
            0 => vec![
                incident_event(&mut seven, Change::New),
                incident_event(&mut eight, Change::New),
            ],
            1 => vec![incident_event(&mut seven, Change::Alert)],
            3 => vec![incident_event(&mut eight, Change::End)],
            6 => vec![incident_event(&mut seven, Change::End)],
            _ => vec![],
        };
        for e in events {
            assert!(h.push_event(e));
        }
        let verdicts = if n == 0 {
            vec![verdict(1, Status::Rejected, Some(7))]
        } else {
            vec![]
        };
        let out = h.push_and_pull(frame(n * 100, &dets, &verdicts)).unwrap();
        colours.push((bottom(&out, a), bottom(&out, b)));
        label_ends.push(right_end(&out, a.1 - 6..a.1 - 5));
    }
    for (n, (ca, cb)) in colours.iter().enumerate() {
        // 7: its rejected clip's colour while pending, the alert colour from the alert to
        // 0.5 s after its end (frames 1 to 10), then the box colour (the verdict's hold
        // passed at 500 ms).
        let want_a = match n {
            0 => REJECTED_COLOR,
            1..=10 => VERIFIED_COLOR,
            _ => BOX_COLOR,
        };
        // 8: pending without a verdict, dismissed (the rejected colour) for 0.5 s after its
        // end at frame 3.
        let want_b = if (3..8).contains(&n) {
            REJECTED_COLOR
        } else {
            BOX_COLOR
        };
        assert!(
            near(*ca, want_a),
            "frame {n}: object 7 {ca:?}, want {want_a:?}"
        );
        assert!(
            near(*cb, want_b),
            "frame {n}: object 8 {cb:?}, want {want_b:?}"
        );
    }
    // The label above object 7 names the incident's state: as long as the text says.
    let font = Font::load(std::path::Path::new(DEFAULT_FONT_FILE)).unwrap();
    let end_of = |text: &str| a.0 + font.measure(text, 12.0).0 - 1;
    let want = [
        (0, "person #7: incident 12 pending"),
        (1, "person #7: incident 12 ALERT 0.93"),
        (7, "person #7: incident 12 ALERT 0.93"),
        (12, "person #7"),
    ];
    for (n, text) in want {
        let got = label_ends[n].expect("a label");
        assert!(
            got.abs_diff(end_of(text)) <= 1,
            "frame {n}: label ends at {got}, {text:?} ends at {}",
            end_of(text)
        );
    }
}

#[test]
fn an_incident_without_an_object_is_a_line_at_the_top_left_and_a_flush_forgets_incidents() {
    let mut h = harness(&[("hold", &10.0f64)]);
    let mut whole = Incident::open(3, 2, 0, None, "person", None, 0);
    assert!(h.push_event(incident_event(&mut whole, Change::New)));
    assert!(h.push_event(incident_event(&mut whole, Change::Alert)));
    let out = h.push_and_pull(frame(0, &[], &[])).unwrap();
    assert!(
        near(rgb(&out, 0, 0), VERIFIED_COLOR),
        "{:?}",
        rgb(&out, 0, 0)
    );
    let font = Font::load(std::path::Path::new(DEFAULT_FONT_FILE)).unwrap();
    let (w, _) = font.measure("source 2: incident 3 ALERT 0.93", 14.0);
    assert_eq!(right_end(&out, 2..3), Some(w - 1));

    // An object's incident, then a flush (a seek: every incident upstream ends with it).
    let bx = (100u32, 100u32, 50u32, 80u32);
    let mut seven = Incident::open(4, 0, 0, Some(7), "person", None, 0);
    seven.last_box = Some(PixelBox {
        x: bx.0,
        y: bx.1,
        width: bx.2,
        height: bx.3,
    });
    assert!(h.push_event(incident_event(&mut seven, Change::New)));
    assert!(h.push_event(incident_event(&mut seven, Change::Alert)));
    // The detections carry no id (a detector without a tracker): the incident's box says
    // which one it is.
    let out = h.push_and_pull(frame(100, &[(None, bx)], &[])).unwrap();
    assert!(near(
        rgb(&out, bx.0 + bx.2 / 2, bx.1 + bx.3 - 1),
        VERIFIED_COLOR
    ));
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    let segment = gst::FormattedSegment::<gst::ClockTime>::new();
    assert!(h.push_event(gst::event::Segment::new(&segment)));
    let out = h.push_and_pull(frame(0, &[(Some(7), bx)], &[])).unwrap();
    assert!(near(rgb(&out, bx.0 + bx.2 / 2, bx.1 + bx.3 - 1), BOX_COLOR));
    assert_eq!(rgb(&out, 0, 0), GREY, "the line went with the flush");
}

#[test]
fn zones_are_drawn_as_thin_outlines_with_their_names() {
    const MAGENTA: [u8; 3] = [0xFF, 0x00, 0xFF];
    let zones = "lawn:0.25,0.5 0.75,0.5 0.75,0.9 0.25,0.9; door:0.1,0.1 0.3,0.1 0.1,0.3";
    let mut h = harness(&[
        ("zones", &zones),
        ("zone-color", &0xFFFF_00FFu32),
        ("line-width", &2u32),
    ]);
    let out = h.push_and_pull(frame(0, &[], &[])).unwrap();
    // The lawn's edges: the pixels its corners fall in, (80, 120) to (240, 216).
    for (x, y) in [(160, 120), (80, 170), (240, 170), (160, 216)] {
        assert!(
            near(rgb(&out, x, y), MAGENTA),
            "({x}, {y}): {:?}",
            rgb(&out, x, y)
        );
    }
    // Thin: one pixel off the edge, and inside, the frame is as it was.
    for (x, y) in [(160, 121), (160, 168), (81, 170), (241, 170), (160, 217)] {
        assert_eq!(rgb(&out, x, y), GREY, "({x}, {y})");
    }
    // The door's diagonal, (96, 24) to (32, 72), and not beside it.
    assert!(near(rgb(&out, 64, 48), MAGENTA), "{:?}", rgb(&out, 64, 48));
    assert_eq!(rgb(&out, 70, 40), GREY);
    assert_eq!(rgb(&out, 58, 56), GREY);
    // Each name on a label above its zone's top-left corner.
    let font = Font::load(std::path::Path::new(DEFAULT_FONT_FILE)).unwrap();
    let (lw, lh) = font.measure("lawn", 14.0);
    assert!(near(rgb(&out, 81, 120 - lh + 1), MAGENTA));
    assert_eq!(
        right_end(&out, 120 - lh + 1..120 - lh + 2),
        Some(80 + lw - 1)
    );
    let (dw, dh) = font.measure("door", 14.0);
    assert_eq!(right_end(&out, 24 - dh + 1..24 - dh + 2), Some(32 + dw - 1));

    // Downstream that renders the composition meta gets the zones as rectangles of it, and
    // the frame stays as it was.
    let mut h = harness(&[("zones", &zones)]);
    h.add_propose_allocation_meta(gst_video::VideoOverlayCompositionMeta::meta_api(), None);
    let out = h.push_and_pull(frame(0, &[], &[])).unwrap();
    let meta = out
        .meta::<gst_video::VideoOverlayCompositionMeta>()
        .expect("a composition");
    assert!(meta.overlay().n_rectangles() > 10);
    assert_eq!(right_end(&out, 0..H), None);
    // A subsampled format: drawn near the outlines only.
    let i420 = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, W, H)
        .fps(gst::Fraction::new(10, 1))
        .build()
        .unwrap();
    let o = gst::ElementFactory::make("iguardoverlay")
        .property("zones", zones)
        .build()
        .unwrap();
    let mut h = gst_check::Harness::with_element(&o, Some("sink"), Some("src"));
    h.set_src_caps(i420.to_caps().unwrap());
    let mut input = gst::Buffer::with_size(i420.size()).unwrap();
    input.get_mut().unwrap().map_writable().unwrap().fill(0x80);
    let out = h.push_and_pull(input).unwrap();
    let map = out.map_readable().unwrap();
    let luma = |x: u32, y: u32| map[(y * i420.stride()[0] as u32 + x) as usize];
    assert_ne!(luma(160, 120), 0x80, "on the lawn's top edge");
    assert_eq!(luma(160, 168), 0x80, "inside the lawn");

    // draw-zones=false: nothing drawn.
    let mut h = harness(&[("zones", &zones), ("draw-zones", &false)]);
    let out = h.push_and_pull(frame(0, &[], &[])).unwrap();
    assert_eq!(right_end(&out, 0..H), None);
}

#[test]
fn a_malformed_zone_fails_the_start_naming_it() {
    init();
    for (zones, name) in [
        ("lawn:0,0 1,0", "lawn"),
        ("lawn:0,0 1,0 1,1; door:0,0 2,0 0,1", "door"),
        ("porch:0,0 1,1 1,0 0,1", "porch"),
        ("0,0 1,0 1,1", "has no name"),
    ] {
        let p = gst::Pipeline::new();
        let src = gst::ElementFactory::make("videotestsrc")
            .property("num-buffers", 1)
            .build()
            .unwrap();
        let o = gst::ElementFactory::make("iguardoverlay")
            .property("zones", zones)
            .build()
            .unwrap();
        let sink = gst::ElementFactory::make("fakesink").build().unwrap();
        p.add_many([&src, &o, &sink]).unwrap();
        gst::Element::link_many([&src, &o, &sink]).unwrap();
        let _stop = StopOnDrop(p.clone().upcast());
        assert!(p.set_state(gst::State::Playing).is_err(), "{zones}");
        let text = error_text(&p.bus().unwrap(), Duration::from_secs(5));
        assert!(text.contains(name), "{zones}: {text}");
    }
}
