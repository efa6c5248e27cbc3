// SPDX-License-Identifier: MIT OR Apache-2.0
//! `iguardverify` driven through real GStreamer: a Harness for frame-exact control, real
//! pipelines for EOS, flushing and state changes. What each test proves is in its name:
//! clip shape and crop (ROI and full), no clip without a trigger, cool-down and frame-interval
//! pacing, a verdict as meta on a later buffer and as a bus message with every field, a stuck
//! scorer never blocking 3000 buffers (queue drops by policy, drops reported), confidence
//! priority (served order and drops), worker-timeout and panic respawn, EOS draining every
//! verdict before EOS, async=false giving the same verdicts, flush and PLAYING→NULL with work in
//! flight (no hang, no thread left), periodic stats, clear errors for bad settings and caps.
//! Every test that submits work checks that the stats add up.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use gst::glib;
use gst::prelude::*;
use gstiguard::meta;
use gstiguard::pool::{thread_names, thread_nice};
use gstiguard::scorer::faults::{Fault, FaultScorer, Gate};
use gstiguard::verdict::{Status, Verdict};

const RED: (u32, u32, u32, u32) = (100, 60, 64, 80);

/// Pushes frame `n` (pts n×33 ms) with the given detections and returns the output buffer.
fn push(h: &mut gst_check::Harness, n: u64, dets: &[(&str, f64)]) -> gst::Buffer {
    let mut b = frame(RED, n * 33);
    for (label, conf) in dets {
        add_detection(&mut b, label, *conf, RED);
    }
    h.push(b).expect("push");
    h.pull().expect("pull")
}

fn is_red(px: &[u8]) -> bool {
    px[0] > 200 && px[1] < 40 && px[2] < 40
}

#[test]
fn a_trigger_gives_one_clip_of_temporal_size_tiles_from_the_crop() {
    let (e, _bus) = element(&[
        // The crop is exactly the box with clip-per=source (per object it is made square).
        ("clip-per", &"source"),
        ("temporal-size", &4u32),
        ("input-width", &32u32),
        ("input-height", &24u32),
        ("roi-margin", &0.0f32),
        ("cooldown", &1000u32),
        ("trigger-labels", &"person"),
    ]);
    let rec = Arc::new(Recorder::default());
    set_scorer(&e, rec.clone());
    let mut h = harness(&e);
    push(&mut h, 1, &[]);
    push(&mut h, 2, &[("person", 0.9)]);
    for n in 3..12 {
        push(&mut h, n, &[]);
    }
    h.push_event(gst::event::Eos::new());
    let clips = rec.clips.lock().unwrap().clone();
    assert_eq!(clips.len(), 1, "one trigger, one clip");
    let c = &clips[0];
    assert_eq!((c.frames, c.real_frames, c.width, c.height), (4, 4, 32, 24));
    assert_eq!(c.pixels.len(), 4 * 32 * 24 * 3);
    assert_eq!(
        c.region,
        gstiguard::geometry::PixelRect {
            x: RED.0,
            y: RED.1,
            width: RED.2,
            height: RED.3
        }
    );
    assert!(
        c.pixels.chunks(3).all(is_red),
        "every tile shows the red box only"
    );
    assert_eq!(c.start_pts, Some(66_000_000));
    assert_eq!(c.end_pts, Some(165_000_000));
    assert_eq!(c.trigger_label, "person");
    let s = Stats::of(&e);
    s.assert_adds_up();
    assert_eq!(s.u("submitted"), 1);
}

#[test]
fn full_crop_covers_the_whole_frame() {
    let (e, _bus) = element(&[
        ("temporal-size", &1u32),
        ("input-width", &64u32),
        ("input-height", &48u32),
    ]);
    e.set_property_from_str("crop", "full");
    let rec = Arc::new(Recorder::default());
    set_scorer(&e, rec.clone());
    let mut h = harness(&e);
    push(&mut h, 1, &[("person", 0.9)]);
    h.push_event(gst::event::Eos::new());
    let clips = rec.clips.lock().unwrap().clone();
    let red = clips[0].pixels.chunks(3).filter(|p| is_red(p)).count() as f64;
    let share = red / (64.0 * 48.0);
    let expected = (RED.2 * RED.3) as f64 / (W * H) as f64;
    assert!(
        (share - expected).abs() < 0.03,
        "red share {share}, expected about {expected}"
    );
}

#[test]
fn no_trigger_no_request() {
    let (e, bus) = element(&[("temporal-size", &2u32)]);
    let rec = Arc::new(Recorder::default());
    set_scorer(&e, rec.clone());
    let mut h = harness(&e);
    for n in 0..30 {
        push(&mut h, n, &[("car", 0.99), ("person", 0.3), ("cat", 1.0)]);
    }
    h.push_event(gst::event::Eos::new());
    assert!(rec.clips.lock().unwrap().is_empty());
    assert!(bus_verdicts(&bus).is_empty());
    assert_eq!(Stats::of(&e).u("submitted"), 0);
}

#[test]
fn cooldown_and_frame_interval_pace_the_clips() {
    let (e, _bus) = element(&[
        ("temporal-size", &2u32),
        ("frame-interval", &2u32),
        ("cooldown", &3u32),
        ("input-width", &8u32),
        ("input-height", &8u32),
    ]);
    let rec = Arc::new(Recorder::default());
    set_scorer(&e, rec.clone());
    let mut h = harness(&e);
    for n in 1..=30 {
        push(&mut h, n, &[("person", 0.9)]);
    }
    h.push_event(gst::event::Eos::new());
    let clips = rec.clips.lock().unwrap().clone();
    // A clip samples frames f and f+2; cool-down blocks f+3..f+5; the next starts at f+6.
    // Two workers may score them in either order.
    let mut spans: Vec<(u64, u64)> = clips
        .iter()
        .map(|c| {
            (
                c.start_pts.unwrap() / 33_000_000,
                c.end_pts.unwrap() / 33_000_000,
            )
        })
        .collect();
    spans.sort();
    assert_eq!(spans, vec![(1, 3), (7, 9), (13, 15), (19, 21), (25, 27)]);
}

#[test]
fn a_verdict_arrives_as_meta_on_a_later_buffer_and_on_the_bus() {
    let (e, bus) = element(&[
        ("temporal-size", &4u32),
        ("input-width", &16u32),
        ("input-height", &16u32),
    ]);
    let mut h = harness(&e);
    let mut attached: Option<(u64, Verdict)> = None;
    for n in 1..2000 {
        let out = push(&mut h, n, &[("weapon", 0.8)]);
        let mut v = meta::read_all(&out);
        assert!(v.len() <= 1, "at most one verdict per source per buffer");
        if let Some(v) = v.pop() {
            attached = Some((n, v));
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let (n, v) = attached.expect("a verdict was attached");
    assert!(n >= 4, "attached once the clip is complete (got {n})");
    assert_eq!(v.request_id, 1);
    assert_eq!(v.source_id, 0);
    assert_eq!(v.status, Status::Fallback);
    assert!((v.score - 0.8).abs() < 1e-9, "{v:?}");
    assert_eq!(v.threshold, 0.7);
    assert!(v.is_positive());
    assert_eq!(v.label, "weapon");
    assert_eq!(v.trigger_label, "weapon");
    assert_eq!(v.trigger_confidence, 0.8);
    assert_eq!(v.clip_start_pts, Some(33_000_000));
    assert_eq!(v.clip_end_pts, Some(4 * 33_000_000));
    assert_eq!(v.frames, 4);
    assert!(v.queue_ms >= 0.0 && v.processing_ms >= 0.0);
    assert_eq!(v.scorer, "fallback");
    assert_eq!(v.reason, "");
    let on_bus = bus_verdicts(&bus);
    assert_eq!(
        on_bus.first(),
        Some(&v),
        "the same verdict was posted on the bus"
    );
    Stats::of(&e).assert_adds_up();
}

#[test]
fn the_streaming_thread_never_waits_for_a_stuck_scorer() {
    with_watchdog(Duration::from_secs(120), || {
        let (e, bus) = element(&[
            ("temporal-size", &2u32),
            ("cooldown", &0u32),
            ("queue-size", &5u32),
            ("max-workers", &1u32),
            ("input-width", &16u32),
            ("input-height", &16u32),
            ("result-queue-size", &10u32),
            ("worker-timeout", &600.0f64),
        ]);
        let gate = Arc::new(Gate::default());
        set_scorer(
            &e,
            Arc::new(FaultScorer::new(|_| Fault::None).with_gate(gate.clone())),
        );
        let mut h = harness(&e);
        let mut with_meta = 0;
        for n in 0..3000 {
            let out = push(&mut h, n, &[("person", 0.9)]);
            with_meta += meta::read_all(&out).len();
        }
        let s = Stats::of(&e);
        s.assert_adds_up();
        assert_eq!(s.u("submitted"), 1500);
        assert_eq!(s.u("pending"), 6, "one running, five queued: {}", s.0);
        assert_eq!(s.u("dropped"), 1494);
        assert_eq!(s.u("queue-depth"), 5);
        let dropped = bus_verdicts(&bus);
        assert_eq!(dropped.len(), 1494);
        assert!(
            dropped
                .iter()
                .all(|v| v.status == Status::Dropped && v.reason == "queue full")
        );
        assert!(
            with_meta > 1000,
            "dropped verdicts were attached too ({with_meta})"
        );
        // Stopping answers what is left.
        drop(h);
        let s = Stats::of(&e);
        s.assert_adds_up();
        assert_eq!(s.u("pending"), 0);
        assert_eq!(s.u("dropped"), 1500);
        gate.open();
    });
}

#[test]
fn confidence_priority_serves_the_best_and_drops_the_weakest() {
    let (e, bus) = element(&[
        ("temporal-size", &1u32),
        ("cooldown", &0u32),
        ("queue-size", &2u32),
        ("max-workers", &1u32),
        ("min-confidence", &0.1f64),
        ("input-width", &8u32),
        ("input-height", &8u32),
    ]);
    e.set_property_from_str("priority", "confidence");
    let gate = Arc::new(Gate::default());
    let scorer = Arc::new(FaultScorer::new(|_| Fault::None).with_gate(gate.clone()));
    set_scorer(&e, scorer.clone());
    let mut h = harness(&e);
    push(&mut h, 0, &[("person", 0.55)]);
    wait_for(
        "the worker to take the first clip",
        Duration::from_secs(10),
        || Stats::of(&e).u("workers-active") == 1,
    );
    for (n, c) in [0.6, 0.9, 0.7, 0.95, 0.65].iter().enumerate() {
        push(&mut h, n as u64 + 1, &[("person", *c)]);
    }
    let dropped: Vec<f64> = bus_verdicts(&bus)
        .iter()
        .map(|v| v.trigger_confidence)
        .collect();
    assert_eq!(dropped, vec![0.6, 0.7, 0.65]);
    gate.open();
    h.push_event(gst::event::Eos::new());
    let served = scorer.served.lock().unwrap().clone();
    assert_eq!(served, vec![1, 5, 3], "0.55 (running), then 0.95, then 0.9");
    Stats::of(&e).assert_adds_up();
}

/// The first clip meets `fault`; the second is scored normally. Returns both verdicts and the
/// stats, which must add up and count one worker restart.
fn first_clip_fails(fault: Fault, counter: &str, extra: &[(&str, &dyn ToValue)]) -> Vec<Verdict> {
    let mut props: Vec<(&str, &dyn ToValue)> = vec![
        ("temporal-size", &1u32),
        ("cooldown", &0u32),
        ("max-workers", &1u32),
        ("input-width", &8u32),
        ("input-height", &8u32),
    ];
    props.extend_from_slice(extra);
    let (e, bus) = element(&props);
    set_scorer(
        &e,
        Arc::new(FaultScorer::new(
            move |n| if n == 1 { fault } else { Fault::None },
        )),
    );
    let mut h = harness(&e);
    push(&mut h, 0, &[("person", 0.9)]);
    wait_for(counter, Duration::from_secs(10), || {
        Stats::of(&e).u(counter) == 1
    });
    push(&mut h, 1, &[("person", 0.9)]);
    h.push_event(gst::event::Eos::new());
    let s = Stats::of(&e);
    s.assert_adds_up();
    assert_eq!(s.u("worker-restarts"), 1);
    assert_eq!(s.u("workers"), 1);
    bus_verdicts(&bus)
}

#[test]
fn worker_timeout_answers_timeout_and_the_pool_goes_on() {
    // The first clip takes 4x the timeout, ignoring cancellation.
    let v = first_clip_fails(
        Fault::Hang(Duration::from_millis(800)),
        "timed-out",
        &[("worker-timeout", &0.2f64)],
    );
    let statuses: Vec<Status> = v.iter().map(|v| v.status).collect();
    assert_eq!(statuses, vec![Status::Timeout, Status::Fallback]);
    assert!(v[0].reason.contains("worker-timeout"), "{}", v[0].reason);
    assert!(v[0].score.is_nan());
}

#[test]
fn a_panicking_worker_answers_error_and_is_respawned() {
    let v = first_clip_fails(Fault::Panic, "failed", &[]);
    let statuses: Vec<Status> = v.iter().map(|v| v.status).collect();
    assert_eq!(statuses, vec![Status::Error, Status::Fallback]);
    assert!(v[0].reason.contains("panicked"), "{}", v[0].reason);
}

/// Runs `videotestsrc ! iguardreplay(demo) ! iguardverify ! fakesink` to EOS and returns the
/// verdict messages in bus order and the final stats.
fn run_demo(
    verify_props: &str,
    scorer: Option<Arc<dyn gstiguard::scorer::Scorer>>,
) -> (Vec<Verdict>, Stats) {
    let desc = format!(
        "videotestsrc num-buffers=45 ! video/x-raw,width=320,height=240,format=RGBA,framerate=30/1 \
         ! iguardreplay location={}/tests/data/demo-detections.txt ! iguardverify name=v clip-per=source {verify_props} \
         ! fakesink sync=false",
        env!("CARGO_MANIFEST_DIR")
    );
    run_to_eos(&desc, Duration::from_secs(60), |v| {
        if let Some(s) = scorer {
            set_scorer(v, s);
        }
    })
}

#[test]
fn eos_waits_for_every_verdict() {
    with_watchdog(Duration::from_secs(90), || {
        // A slow scorer and one worker: verdicts are still running when the last frame passes.
        let slow =
            Arc::new(FaultScorer::new(|_| Fault::None).with_delay(Duration::from_millis(300)));
        let (verdicts, stats) = run_demo("cooldown=0 max-workers=1", Some(slow));
        stats.assert_adds_up();
        // Clips from frames 5-20 and 21-36, and 37-40 completed at EOS.
        assert_eq!(stats.u("submitted"), 3, "{}", stats.0);
        assert_eq!(stats.u("pending"), 0);
        assert_eq!(verdicts.len(), 3, "every verdict was posted before EOS");
        assert!(verdicts.iter().all(|v| v.status == Status::Fallback));
        assert_eq!(
            verdicts[2].frames, 9,
            "the last clip had frames 37-45 when EOS came"
        );
    });
}

#[test]
fn async_false_gives_the_same_verdicts() {
    let key = |v: &Verdict| {
        (
            v.request_id,
            v.status,
            (v.score * 1e9).round() as i64,
            v.label.clone(),
            v.trigger_label.clone(),
            v.clip_start_pts,
            v.clip_end_pts,
            v.frames,
        )
    };
    let (a, sa) = run_demo("cooldown=0", None);
    let (s, ss) = run_demo("cooldown=0 async=false", None);
    sa.assert_adds_up();
    ss.assert_adds_up();
    assert_eq!(a.len(), 3);
    assert_eq!(
        a.iter().map(key).collect::<Vec<_>>(),
        s.iter().map(key).collect::<Vec<_>>()
    );
    // The weapon shows on frames 20-36: the second clip (21-36) scores high.
    assert!(a[1].score > 0.7, "{:?}", a[1]);
}

#[test]
fn flushing_answers_pending_requests_dropped() {
    with_watchdog(Duration::from_secs(60), || {
        let (e, bus) = element(&[
            ("temporal-size", &1u32),
            ("cooldown", &0u32),
            ("max-workers", &1u32),
            ("input-width", &8u32),
            ("input-height", &8u32),
        ]);
        let gate = Arc::new(Gate::default());
        set_scorer(
            &e,
            Arc::new(FaultScorer::new(|_| Fault::None).with_gate(gate.clone())),
        );
        let mut h = harness(&e);
        for n in 0..4 {
            push(&mut h, n, &[("person", 0.9)]);
        }
        assert_eq!(Stats::of(&e).u("pending"), 4);
        h.push_event(gst::event::FlushStart::new());
        h.push_event(gst::event::FlushStop::new(true));
        let v = bus_verdicts(&bus);
        assert_eq!(v.len(), 4);
        assert!(
            v.iter()
                .all(|v| v.status == Status::Dropped && v.reason == "flushing"),
            "{v:?}"
        );
        let s = Stats::of(&e);
        s.assert_adds_up();
        assert_eq!(s.u("pending"), 0);
        // The element keeps working after the flush.
        gate.open();
        h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
            gst::ClockTime,
        >::new()));
        push(&mut h, 10, &[("person", 0.9)]);
        h.push_event(gst::event::Eos::new());
        assert_eq!(
            bus_verdicts(&bus)
                .iter()
                .map(|v| v.status)
                .collect::<Vec<_>>(),
            vec![Status::Fallback]
        );
    });
}

#[test]
fn stopping_with_work_in_flight_neither_hangs_nor_leaves_threads() {
    with_watchdog(Duration::from_secs(60), || {
        init();
        let gate = Arc::new(Gate::default());
        let p = gst::parse::launch(&format!(
            "videotestsrc is-live=true ! video/x-raw,width=320,height=240,format=RGBA,framerate=30/1 \
             ! iguardreplay location={}/tests/data/demo-detections.txt ! iguardverify name=v \
             cooldown=0 temporal-size=2 max-workers=2 ! fakesink",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let _stop = StopOnDrop(p.clone().upcast());
        let v = p.by_name("v").unwrap();
        set_scorer(
            &v,
            Arc::new(FaultScorer::new(|_| Fault::None).with_gate(gate.clone())),
        );
        p.set_state(gst::State::Playing).unwrap();
        wait_for("requests in flight", Duration::from_secs(20), || {
            Stats::of(&v).u("workers-active") == 2
        });
        let pool = Stats::of(&v).0.get::<String>("pool").unwrap();
        let prefix = format!("iguard-w{pool}-");
        assert_eq!(thread_names(&prefix).len(), 2);
        if cfg!(target_os = "linux") {
            assert_eq!(
                thread_nice(&prefix),
                vec![10, 10],
                "the default worker-nice"
            );
        }
        p.set_state(gst::State::Null).unwrap();
        let s = Stats::of(&v);
        s.assert_adds_up();
        assert_eq!(s.u("pending"), 0);
        assert!(s.u("dropped") >= 2);
        let left = threads_left(&prefix);
        assert!(left.is_empty(), "worker threads left: {left:?}");
        gate.open();
    });
}

#[test]
fn stats_messages_are_posted_periodically() {
    let (e, bus) = element(&[("stats-interval", &1u32)]);
    let mut h = harness(&e);
    for n in 0..5 {
        push(&mut h, n, &[]);
        std::thread::sleep(Duration::from_millis(3));
    }
    let mut stats = 0;
    while let Some(m) = bus.pop_filtered(&[gst::MessageType::Element]) {
        if m.structure().is_some_and(|s| s.name() == "iguard-stats") {
            stats += 1;
        }
    }
    assert!(stats >= 3, "{stats} stats messages");
}

#[test]
fn an_empty_trigger_list_is_a_clear_error_at_start() {
    init();
    let p = gst::parse::launch(
        "videotestsrc num-buffers=1 ! iguardverify trigger-labels=\" , \" ! fakesink",
    )
    .unwrap();
    let _stop = StopOnDrop(p.clone().upcast());
    let bus = p.bus().unwrap();
    assert!(p.set_state(gst::State::Playing).is_err());
    let text = error_text(&bus, Duration::from_secs(5));
    assert!(
        text.contains("trigger-labels") && text.contains("\" , \""),
        "{text}"
    );
    p.set_state(gst::State::Null).unwrap();
}

#[test]
fn unsupported_caps_are_refused() {
    let (e, _bus) = element(&[]);
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_src_caps_str("video/x-raw,format=GRAY16_LE,width=64,height=48,framerate=30/1");
    let r = h.push(gst::Buffer::with_size(64 * 48 * 2).unwrap());
    assert_eq!(r, Err(gst::FlowError::NotNegotiated));
}

#[test]
fn every_property_is_documented_with_a_blurb() {
    let (e, _bus) = element(&[]);
    for p in e.list_properties() {
        if ["name", "parent", "qos"].contains(&p.name()) {
            continue;
        }
        let blurb = p.blurb().unwrap_or_default();
        assert!(
            blurb.len() > 20,
            "{} has no real blurb: {blurb:?}",
            p.name()
        );
    }
    assert_eq!(e.property::<u32>("temporal-size"), 16);
    assert_eq!(e.property::<f64>("worker-timeout"), 10.0);
    assert_eq!(e.property::<u32>("queue-size"), 50);
    assert_eq!(e.property::<f64>("threshold"), 0.7);
    assert!(e.property::<bool>("async"));
}

#[test]
fn every_property_can_be_set_to_its_default_and_read_back() {
    let (e, _bus) = element(&[]);
    for p in e.list_properties() {
        if !p.flags().contains(glib::ParamFlags::WRITABLE) || ["name", "parent"].contains(&p.name())
        {
            continue;
        }
        let default = p.default_value().clone();
        e.set_property_from_value(p.name(), &default);
        let back = e.property_value(p.name());
        assert_eq!(
            format!("{:?}", back),
            format!("{:?}", default),
            "{} did not read back as set",
            p.name()
        );
    }
}
