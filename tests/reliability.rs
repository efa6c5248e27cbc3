// SPDX-License-Identifier: MIT OR Apache-2.0
//! Reliability: state churn with work in flight, bad input through a real element, and the
//! promises the Python original made and broke. `IGUARD_LONG=1` (`make test-long`) runs the
//! long modes: more cycles, more frames.
//!
//! What each test proves: PLAYING→NULL→PLAYING cycles with a slow scorer never hang, leave no
//! worker thread behind and always add up; odd boxes, thousands of boxes, odd label bytes,
//! resolution and format changes mid-clip, missing timestamps and 1×1 / odd-sized frames keep
//! the video flowing with every request answered; a 64-source trigger storm stays within the
//! queue bound; stats stay consistent with several workers under load; the pending bookkeeping
//! does not grow over a long run.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;
use gstiguard::pool::thread_names;
use gstiguard::scorer::faults::{Fault, FaultScorer};
use gstiguard::verdict::Status;

fn long() -> bool {
    std::env::var_os("IGUARD_LONG").is_some_and(|v| v != "0")
}

/// Buffers of any raw format and size, with optional ROI metas.
fn raw(format: gst_video::VideoFormat, w: u32, h: u32, pts: Option<u64>) -> gst::Buffer {
    let info = gst_video::VideoInfo::builder(format, w, h).build().unwrap();
    let mut b = gst::Buffer::with_size(info.size()).unwrap();
    {
        let b = b.get_mut().unwrap();
        b.map_writable().unwrap().fill(128);
        b.set_pts(pts.map(gst::ClockTime::from_nseconds));
    }
    b
}

fn raw_caps(format: gst_video::VideoFormat, w: u32, h: u32) -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format(format)
        .width(w as i32)
        .height(h as i32)
        .framerate(gst::Fraction::new(30, 1))
        .build()
}

#[test]
fn state_churn_with_work_in_flight() {
    let cycles = if long() { 1000 } else { 100 };
    with_watchdog(
        Duration::from_secs(if long() { 3600 } else { 300 }),
        move || {
            init();
            // Today's defaults: per-object clips, and a publisher writing the event log.
            let dir = std::env::temp_dir().join(format!("iguard-churn-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let log = dir.join("events.jsonl");
            let p = gst::parse::launch(&format!(
            "videotestsrc is-live=true ! video/x-raw,width=160,height=120,format=RGBA,framerate=120/1 \
             ! iguardreplay location={}/tests/data/demo-detections.txt ! iguardverify name=v \
             cooldown=0 temporal-size=2 max-workers=2 queue-size=4 input-width=32 input-height=32 \
             worker-timeout=0.5 ! iguardpublish name=pub file-path={} ! fakesink sync=false",
            env!("CARGO_MANIFEST_DIR"),
            log.display()
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
            let _stop = StopOnDrop(p.clone().upcast());
            let v = p.by_name("v").unwrap();
            let publisher = p.by_name("pub").unwrap();
            assert_eq!(
                v.property_value("clip-per").serialize().unwrap().as_str(),
                "object"
            );
            // A slow scorer (cancellable) so requests are always in flight when the state drops.
            set_scorer(
                &v,
                Arc::new(FaultScorer::new(|_| Fault::None).with_delay(Duration::from_millis(30))),
            );
            let mut total = 0;
            let mut published = 0;
            let mut max_threads = 0;
            for i in 0..cycles {
                p.set_state(gst::State::Playing).unwrap();
                let start = Instant::now();
                // Let the demo detections (frames 5-40) trigger and one verdict reach the
                // publisher, then stop with more in flight.
                while (Stats::of(&v).u("submitted") < 2 || Stats::of(&publisher).u("received") < 1)
                    && start.elapsed() < Duration::from_secs(10)
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let pool = Stats::of(&v).0.get::<String>("pool").unwrap();
                max_threads = max_threads.max(thread_names(&format!("iguard-w{pool}-")).len());
                p.set_state(gst::State::Null).unwrap();
                let s = Stats::of(&v);
                s.assert_adds_up();
                assert_eq!(s.u("pending"), 0, "cycle {i}: {}", s.0);
                total += s.u("submitted");
                let left = threads_left(&format!("iguard-w{pool}-"));
                assert!(left.is_empty(), "cycle {i}: threads left behind: {left:?}");
                let left = threads_left(&format!("iguard-s{pool}"));
                assert!(
                    left.is_empty(),
                    "cycle {i}: supervisor left behind: {left:?}"
                );
                // The publisher wrote every event it took in before it stopped, and left no
                // thread behind.
                let ps = Stats::of(&publisher);
                assert_eq!(
                    ps.u("received"),
                    ps.u("file-written") + ps.u("queue-dropped") + ps.u("invalid"),
                    "cycle {i}: {}",
                    ps.0
                );
                published += ps.u("file-written");
                let left = threads_left("iguardpub-");
                assert!(
                    left.is_empty(),
                    "cycle {i}: publisher threads left: {left:?}"
                );
            }
            // Every line of the log is one whole event: nothing torn by the stops.
            let text = std::fs::read_to_string(&log).unwrap();
            let lines = text.lines().count() as u64;
            for line in text.lines() {
                let event: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("a torn line in the event log ({e}): {line}"));
                assert!(
                    event["schema"] == "iguard.verdict/1" || event["schema"] == "iguard.incident/1",
                    "{line}"
                );
            }
            assert_eq!(lines, published, "the log holds what the publisher wrote");
            assert!(
                published >= cycles as u64,
                "a verdict logged in every cycle"
            );
            let _ = std::fs::remove_dir_all(&dir);
            assert!(
                max_threads <= 2,
                "never more workers than max-workers ({max_threads})"
            );
            println!(
                "state churn: {cycles} cycles, {total} requests, all answered, \
                 {published} events logged whole, no thread left"
            );
        },
    );
}

/// Pushes `n` frames through a harness with `detections(frame)`, then EOS; checks that every
/// buffer came out and the stats add up. Returns the element's stats.
fn flow(
    props: &[(&str, &dyn ToValue)],
    caps_for: impl Fn(u64) -> gst::Caps,
    buffer_for: impl Fn(u64) -> gst::Buffer,
    n: u64,
) -> Stats {
    let (e, _bus) = element(props);
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    let mut current: Option<gst::Caps> = None;
    for i in 0..n {
        let caps = caps_for(i);
        if current.as_ref() != Some(&caps) {
            h.set_src_caps(caps.clone());
            current = Some(caps);
        }
        h.push(buffer_for(i))
            .unwrap_or_else(|e| panic!("frame {i}: {e:?}"));
        h.pull().unwrap();
    }
    h.push_event(gst::event::Eos::new());
    let s = Stats::of(&e);
    s.assert_adds_up();
    assert_eq!(s.u("pending"), 0);
    s
}

fn small() -> Vec<(&'static str, &'static dyn ToValue)> {
    vec![
        // The counts below are of one clip at a time per source.
        ("clip-per", &"source"),
        ("temporal-size", &4u32),
        ("cooldown", &0u32),
        ("input-width", &16u32),
        ("input-height", &16u32),
    ]
}

#[test]
fn odd_boxes_never_trigger_and_partly_outside_ones_are_clamped() {
    use gst_video::VideoFormat::Rgba;
    let s = flow(
        &small(),
        |_| raw_caps(Rgba, 64, 48),
        |i| {
            let mut b = raw(Rgba, 64, 48, Some(i * 33_000_000));
            match i % 4 {
                // Zero size, outside the frame, far outside (u32 extremes).
                0 => add_detection(&mut b, "person", 0.9, (10, 10, 0, 0)),
                1 => add_detection(&mut b, "person", 0.9, (64, 48, 10, 10)),
                2 => add_detection(&mut b, "person", 0.9, (u32::MAX - 5, u32::MAX - 5, 5, 5)),
                _ => add_detection(&mut b, "person", 0.9, (u32::MAX / 2, 1, u32::MAX, 1)),
            }
            b
        },
        200,
    );
    assert_eq!(s.u("submitted"), 0, "no usable box, no clip: {}", s.0);

    // Partly outside: clamped, clips are made.
    let s = flow(
        &small(),
        |_| raw_caps(Rgba, 64, 48),
        |i| {
            let mut b = raw(Rgba, 64, 48, Some(i));
            add_detection(&mut b, "person", 0.9, (50, 40, 100, 100));
            b
        },
        40,
    );
    assert_eq!(s.u("submitted"), 10);
    assert_eq!(s.u("fallback"), 10);
}

#[test]
fn thousands_of_boxes_and_odd_label_bytes() {
    use gst_video::VideoFormat::Rgba;
    let s = flow(
        &small(),
        |_| raw_caps(Rgba, 320, 240),
        |i| {
            let mut b = raw(Rgba, 320, 240, Some(i));
            for k in 0..2000u32 {
                let label = match k % 5 {
                    0 => "person",
                    1 => "weap\u{1}on\u{7f}",
                    2 => "\u{202e}nosrep",
                    3 => "ñandú 🐦",
                    _ => "",
                };
                add_detection(
                    &mut b,
                    label,
                    (k % 100) as f64 / 100.0,
                    (k % 300, k % 200, 20, 20),
                );
            }
            b
        },
        12,
    );
    assert_eq!(s.u("submitted"), 3);
}

#[test]
fn resolution_and_format_changes_mid_clip() {
    use gst_video::VideoFormat::*;
    let formats = [
        (Rgba, 320, 240),
        (Nv12, 640, 480),
        (I420, 33, 17),
        (Bgr, 1, 1),
        (Rgbx, 7, 5),
    ];
    let s = flow(
        &[
            // One clip at a time per source: the count below is of those.
            ("clip-per", &"source"),
            ("temporal-size", &5u32),
            ("cooldown", &0u32),
            ("input-width", &8u32),
            ("input-height", &8u32),
        ],
        |i| {
            let (f, w, h) = formats[(i / 3) as usize % formats.len()];
            raw_caps(f, w, h)
        },
        |i| {
            let (f, w, h) = formats[(i / 3) as usize % formats.len()];
            let mut b = raw(f, w, h, if i % 7 == 0 { None } else { Some(i * 1000) });
            if i % 11 == 0 {
                b.make_mut().set_flags(gst::BufferFlags::DISCONT);
            }
            add_detection(&mut b, "person", 0.9, (0, 0, w.div_ceil(2), h.div_ceil(2)));
            b
        },
        60,
    );
    assert_eq!(s.u("submitted"), 12, "{}", s.0);
    assert_eq!(
        s.u("fallback"),
        12,
        "every clip survived the changes: {}",
        s.0
    );
}

#[test]
fn a_64_source_storm_stays_bounded_and_answered() {
    // One element per source would be 64 pools; DeepStream sends all sources through one
    // element, so the storm is 64 sources' frames through one element via the stand-in-free
    // path: 64 elements sharing one model instance, each flooded.
    init();
    let frames = if long() { 2000 } else { 200 };
    let mut elements = Vec::new();
    for i in 0..64 {
        let (e, _bus) = element(&[
            ("temporal-size", &2u32),
            ("cooldown", &0u32),
            ("input-width", &32u32),
            ("input-height", &32u32),
            ("queue-size", &8u32),
            ("max-workers", &2u32),
            ("model-instance-id", &"storm"),
        ]);
        let slow = FaultScorer::new(|_| Fault::None).with_delay(Duration::from_millis(2));
        if i == 0 {
            set_scorer(&e, Arc::new(slow));
        }
        let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
        h.set_src_caps(caps());
        elements.push((e, h));
    }
    let pool = Stats::of(&elements[0].0).0.get::<String>("pool").unwrap();
    for (e, _) in &elements {
        assert_eq!(
            Stats::of(e).0.get::<String>("pool").unwrap(),
            pool,
            "one shared pool"
        );
    }
    let mut max_depth = 0;
    for n in 0..frames {
        for (e, h) in elements.iter_mut() {
            let mut b = frame((10, 10, 50, 50), n * 33);
            add_detection(&mut b, "person", 0.9, (10, 10, 50, 50));
            h.push(b).unwrap();
            h.pull().unwrap();
            if n % 50 == 0 {
                max_depth = max_depth.max(Stats::of(e).u("queue-depth"));
            }
        }
    }
    assert!(max_depth <= 8, "queue depth {max_depth} beyond queue-size");
    let mut submitted = 0;
    for (e, mut h) in elements {
        h.push_event(gst::event::Eos::new());
        let s = Stats::of(&e);
        s.assert_adds_up();
        assert_eq!(s.u("pending"), 0);
        submitted += s.u("submitted");
        drop(h);
    }
    assert_eq!(submitted, 64 * frames / 2);
    let left = threads_left(&format!("iguard-w{pool}-"));
    assert!(left.is_empty(), "threads left behind: {left:?}");
}

#[test]
fn a_long_run_leaves_no_bookkeeping_behind() {
    use gst_video::VideoFormat::Rgba;
    let n = if long() { 100_000 } else { 5_000 };
    let s = flow(
        &[
            ("temporal-size", &1u32),
            ("cooldown", &0u32),
            ("input-width", &8u32),
            ("input-height", &8u32),
            ("queue-size", &4u32),
        ],
        |_| raw_caps(Rgba, 32, 24),
        |i| {
            let mut b = raw(Rgba, 32, 24, Some(i));
            add_detection(&mut b, "person", 0.9, (0, 0, 8, 8));
            b
        },
        n,
    );
    assert_eq!(s.u("submitted"), n);
    assert!(s.u("results-waiting") <= 100, "{}", s.0);
    assert_eq!(s.u("pending"), 0);
    let dropped_or_done = s.u("fallback") + s.u("dropped");
    assert_eq!(dropped_or_done, n);
}

#[test]
fn no_verdict_arrives_after_null() {
    init();
    let (e, bus) = element(&[
        ("temporal-size", &1u32),
        ("cooldown", &0u32),
        ("input-width", &8u32),
        ("input-height", &8u32),
    ]);
    set_scorer(
        &e,
        Arc::new(FaultScorer::new(|_| Fault::None).with_delay(Duration::from_millis(200))),
    );
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_src_caps(caps());
    for n in 0..6 {
        let mut b = frame((0, 0, 10, 10), n);
        add_detection(&mut b, "person", 0.9, (0, 0, 10, 10));
        h.push(b).unwrap();
    }
    drop(h); // to NULL with requests running and queued
    let at_null = bus_verdicts(&bus);
    assert_eq!(at_null.len(), 6);
    assert!(
        at_null
            .iter()
            .all(|v| v.status == Status::Dropped && v.reason == "stopped")
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        bus_verdicts(&bus).is_empty(),
        "a verdict arrived after NULL"
    );
}

#[test]
fn the_leaks_tracer_finds_no_object_alive_at_exit() {
    init();
    let root = env!("CARGO_MANIFEST_DIR");
    let model = format!("{root}/models/tiny-action.onnx");
    assert!(
        std::path::Path::new(&model).is_file(),
        "{model} is missing: run `make models`"
    );
    // The fallback scorer, the ONNX scorer, and a flush-free stop mid-run (num-buffers ends it).
    for verify in [
        "cooldown=0",
        &format!("cooldown=0 model-path={model} max-workers=2"),
    ] {
        let desc = format!(
            "videotestsrc num-buffers=60 ! video/x-raw,width=320,height=240 \
             ! iguardreplay location={root}/tests/data/demo-detections.txt ! iguardverify {verify} \
             ! fakesink"
        );
        let out = std::process::Command::new("gst-launch-1.0")
            .args(desc.split_whitespace())
            .env("GST_TRACERS", "leaks")
            .env("GST_DEBUG", "GST_TRACER:7")
            .env("GST_DEBUG_NO_COLOR", "1")
            .env("GST_PLUGIN_PATH", plugin_dir())
            .output()
            .expect("run gst-launch-1.0");
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{log}");
        assert!(log.contains("leaks"), "the leaks tracer did not run");
        let alive: Vec<&str> =
            // Records name real objects; the format line has `%s` in their place.
            log.lines().filter(|l| l.contains("object-alive, type-name=(string)") && !l.contains("%s")).collect();
        assert!(
            alive.is_empty(),
            "{} objects alive at exit:\n{}",
            alive.len(),
            alive.join("\n")
        );
    }
}
