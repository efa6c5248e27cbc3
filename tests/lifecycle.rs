// SPDX-License-Identifier: MIT OR Apache-2.0
//! The element's lifecycle edges, each with a scorer or a bus handler that used to catch it out.
//!
//! What each test proves: PLAYING→NULL returns within a few seconds while the streaming thread
//! waits for a scorer that never returns (async=false, worker-timeout=60) and while it is in the
//! EOS drain, answering the request `dropped` (`stopped`); a flush closes the pool to that element
//! so a clip submitted during the flush is answered `dropped` (`flushing`) and no verdict from
//! before a flush is attached after it; a bus sync handler that reads properties while the
//! element posts its start-up warnings (config file, a model that fails to load, a shared
//! instance) does not deadlock; a second element joining a shared instance with other settings
//! is told each difference, and its stats report the pool's real sizes; a clip larger than
//! the limit is refused also when the model, not a property, fixes its size; sources beyond
//! `max-sources` are refused, warned about once and counted; a scorer that needs no pixels gets
//! no tiles sampled; a bus sync handler that flushes the pipeline on a verdict the streaming
//! thread posts (a clip evicted from a full queue) does not deadlock it.

mod common;
mod standin;

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;
use gstiguard::clip::Clip;
use gstiguard::meta;
use gstiguard::scorer::fallback::FallbackScorer;
use gstiguard::scorer::{Cancel, Score, ScoreError, Scorer};
use gstiguard::verdict::Status;

const RED: (u32, u32, u32, u32) = (100, 60, 64, 80);

/// A scorer that never returns until the test releases it, and ignores cancellation, like a
/// remote server that stopped answering or a driver stuck in a kernel.
#[derive(Default)]
struct Hung {
    calls: Mutex<u32>,
    released: Mutex<bool>,
    cv: Condvar,
}

impl Hung {
    fn calls(&self) -> u32 {
        *self.calls.lock().unwrap()
    }

    fn release(&self) {
        *self.released.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

impl Scorer for Hung {
    fn name(&self) -> &str {
        "hung"
    }
    fn is_model(&self) -> bool {
        true
    }
    fn score(&self, clips: &[&Clip], _cancel: &Cancel) -> Result<Vec<Score>, ScoreError> {
        *self.calls.lock().unwrap() += 1;
        self.cv.notify_all();
        let mut r = self.released.lock().unwrap();
        while !*r {
            r = self.cv.wait(r).unwrap();
        }
        Ok(clips
            .iter()
            .map(|_| Score {
                score: 1.0,
                label: String::new(),
            })
            .collect())
    }
}

/// `appsrc ! iguardverify ! fakesink`, with the element's props; returns the pipeline, the
/// appsrc and the element.
fn pipeline(props: &str) -> (gst::Pipeline, gst::Element, gst::Element) {
    init();
    let p = gst::parse::launch(&format!(
        "appsrc name=src format=time caps=video/x-raw,format=RGBA,width={W},height={H},framerate=30/1 \
         ! iguardverify name=v {props} ! fakesink sync=false"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = p.by_name("src").unwrap();
    let v = p.by_name("v").unwrap();
    (p, src, v)
}

fn push_person(src: &gst::Element, n: u64) {
    let mut b = frame(RED, n * 33);
    add_detection(&mut b, "person", 0.9, RED);
    let r = src.emit_by_name::<gst::FlowReturn>("push-buffer", &[&b]);
    assert!(matches!(r, gst::FlowReturn::Ok), "push-buffer: {r:?}");
}

/// Takes `p` to NULL and fails if that takes longer than `limit`.
fn stop_within(p: &gst::Pipeline, limit: Duration) -> Duration {
    let start = Instant::now();
    p.set_state(gst::State::Null).unwrap();
    let took = start.elapsed();
    assert!(
        took < limit,
        "PLAYING→NULL took {took:?} with a scorer that never returns"
    );
    took
}

/// Collects the pipeline's verdict messages as they are posted (the bus is flushed at NULL).
fn collect_verdicts(p: &gst::Pipeline) -> Arc<Mutex<Vec<gstiguard::verdict::Verdict>>> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let o = out.clone();
    p.bus().unwrap().set_sync_handler(move |_, msg| {
        if let Some(s) = msg.structure()
            && s.name() == meta::MESSAGE_NAME
        {
            o.lock().unwrap().push(meta::from_structure(s).unwrap());
        }
        gst::BusSyncReply::Pass
    });
    out
}

#[test]
fn stopping_is_not_held_up_by_async_false_waiting_for_a_hung_scorer() {
    let hung = Arc::new(Hung::default());
    let h = hung.clone();
    with_watchdog(Duration::from_secs(50), move || {
        let (p, src, v) =
            pipeline("async=false worker-timeout=60 temporal-size=2 cooldown=0 max-workers=1");
        set_scorer(&v, h.clone());
        let _stop = StopOnDrop(p.clone().upcast());
        let verdicts = collect_verdicts(&p);
        p.set_state(gst::State::Playing).unwrap();
        push_person(&src, 0);
        push_person(&src, 1);
        // The second frame completes the clip: the streaming thread now waits for its verdict.
        wait_for("the scorer to be called", Duration::from_secs(20), || {
            h.calls() == 1
        });
        let took = stop_within(&p, Duration::from_secs(10));
        eprintln!("PLAYING→NULL with async=false waiting: {took:?}");
        let v_all = verdicts.lock().unwrap().clone();
        assert_eq!(v_all.len(), 1, "{v_all:?}");
        assert_eq!(v_all[0].status, Status::Dropped);
        assert_eq!(v_all[0].reason, "stopped");
        let s = Stats::of(&v);
        s.assert_adds_up();
        assert_eq!(s.u("pending"), 0);
    });
    hung.release();
}

#[test]
fn stopping_is_not_held_up_by_the_eos_drain_of_a_hung_scorer() {
    let hung = Arc::new(Hung::default());
    let h = hung.clone();
    with_watchdog(Duration::from_secs(50), move || {
        let (p, src, v) = pipeline("worker-timeout=60 temporal-size=8 cooldown=0 max-workers=1");
        set_scorer(&v, h.clone());
        let _stop = StopOnDrop(p.clone().upcast());
        let verdicts = collect_verdicts(&p);
        p.set_state(gst::State::Playing).unwrap();
        push_person(&src, 0);
        push_person(&src, 1);
        // EOS completes the partial clip and waits for its verdict (up to 61 s).
        let _ = src.emit_by_name::<gst::FlowReturn>("end-of-stream", &[]);
        wait_for("the scorer to be called", Duration::from_secs(20), || {
            h.calls() == 1
        });
        std::thread::sleep(Duration::from_millis(100));
        let took = stop_within(&p, Duration::from_secs(10));
        eprintln!("PLAYING→NULL during the EOS drain: {took:?}");
        let v_all = verdicts.lock().unwrap().clone();
        assert_eq!(v_all.len(), 1, "{v_all:?}");
        assert_eq!(
            (v_all[0].status, v_all[0].reason.as_str()),
            (Status::Dropped, "stopped")
        );
        assert_eq!(v_all[0].frames, 2, "the partial clip's real frames");
        let s = Stats::of(&v);
        s.assert_adds_up();
        assert_eq!(s.u("pending"), 0);
    });
    hung.release();
}

fn push(h: &mut gst_check::Harness, n: u64, label: &str) -> gst::Buffer {
    let mut b = frame(RED, n * 33);
    add_detection(&mut b, label, 0.9, RED);
    h.push(b).expect("push");
    h.pull().expect("pull")
}

/// Many seeks while clips are collected and scored: no verdict of a request opened before a
/// flush is attached to a buffer after it, and every request is answered once.
#[test]
fn no_verdict_from_before_a_flush_is_attached_after_it() {
    with_watchdog(Duration::from_secs(120), || {
        let (e, bus) = element(&[
            ("temporal-size", &2u32),
            ("cooldown", &0u32),
            ("max-workers", &2u32),
            ("input-width", &8u32),
            ("input-height", &8u32),
        ]);
        set_scorer(&e, Arc::new(Recorder::default()));
        let mut h = harness(&e);
        let mut n = 0;
        let mut last_before_flush = 0;
        for round in 0..60 {
            for _ in 0..(3 + round % 4) {
                let out = push(&mut h, n, "person");
                n += 1;
                for v in meta::read_all(&out) {
                    assert!(
                        v.request_id > last_before_flush,
                        "round {round}: verdict {} from before the flush (last {last_before_flush}) \
                         attached after it",
                        v.request_id
                    );
                }
            }
            h.push_event(gst::event::FlushStart::new());
            last_before_flush = Stats::of(&e).u("submitted");
            h.push_event(gst::event::FlushStop::new(true));
            h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
                gst::ClockTime,
            >::new()));
        }
        h.push_event(gst::event::Eos::new());
        let s = Stats::of(&e);
        s.assert_adds_up();
        assert_eq!(s.u("pending"), 0);
        let all = bus_verdicts(&bus);
        assert_eq!(
            all.len() as u64,
            s.u("submitted"),
            "one verdict per request"
        );
        assert!(
            all.iter()
                .any(|v| v.status == Status::Dropped && v.reason == "flushing"),
            "the flushes answered some"
        );
    });
}

/// Flushes the element (FlushStart, FlushStop) from a bus sync handler, on the thread that
/// posts the first verdict `matches` picks; returns how many flushes ran.
fn flush_on_verdict(
    bus: &gst::Bus,
    e: &gst::Element,
    matches: impl Fn(&gstiguard::verdict::Verdict) -> bool + Send + Sync + 'static,
) -> Arc<Mutex<u32>> {
    let flushes = Arc::new(Mutex::new(0u32));
    let f = flushes.clone();
    let sink = e.static_pad("sink").unwrap();
    bus.set_sync_handler(move |_, msg| {
        let verdict = msg
            .structure()
            .filter(|s| s.name() == meta::MESSAGE_NAME)
            .and_then(|s| meta::from_structure(s).ok());
        if let Some(v) = verdict
            && matches(&v)
            && *f.lock().unwrap() == 0
        {
            *f.lock().unwrap() += 1;
            sink.send_event(gst::event::FlushStart::new());
            sink.send_event(gst::event::FlushStop::new(true));
        }
        gst::BusSyncReply::Pass
    });
    flushes
}

/// The streaming thread answers some requests itself: a clip evicted from a full queue here.
/// Its verdict is posted with no lock of the element held, so an application that flushes the
/// pipeline from a bus sync handler on that verdict does not deadlock the streaming thread (a
/// regression hangs in `flush_stop` and the watchdog fails the test).
#[test]
fn a_bus_sync_handler_that_flushes_on_a_queue_full_verdict_does_not_deadlock() {
    let hung = Arc::new(Hung::default());
    let h = hung.clone();
    with_watchdog(Duration::from_secs(60), move || {
        let (e, bus) = element(&[
            ("temporal-size", &1u32),
            ("cooldown", &0u32),
            ("max-workers", &1u32),
            ("queue-size", &1u32),
            ("worker-timeout", &60.0f64),
            ("input-width", &8u32),
            ("input-height", &8u32),
        ]);
        set_scorer(&e, h.clone());
        let flushes = flush_on_verdict(&bus, &e, |v| {
            v.status == Status::Dropped && v.reason == "queue full"
        });
        let mut harness = harness(&e);
        // Clip 1 runs (and hangs), clip 2 waits in the queue, clip 3 finds it full.
        push(&mut harness, 0, "person");
        wait_for("the scorer to be called", Duration::from_secs(20), || {
            h.calls() == 1
        });
        push(&mut harness, 1, "person");
        let mut b = frame(RED, 2 * 33);
        add_detection(&mut b, "person", 0.9, RED);
        let _ = harness.push(b);
        assert_eq!(*flushes.lock().unwrap(), 1, "the handler flushed");
        // The flush answered what was queued and running; the video goes on after it.
        harness.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
            gst::ClockTime,
        >::new()));
        push(&mut harness, 3, "none");
        let s = Stats::of(&e);
        s.assert_adds_up();
        assert_eq!(s.u("pending"), 0, "{}", s.0);
        assert_eq!(s.u("dropped"), 3, "{}", s.0);
        drop(harness);
    });
    hung.release();
}

/// Reads a property of the element on every message, on the posting thread (as a bus sync
/// handler in an application does).
fn read_properties_on_every_message(bus: &gst::Bus, e: &gst::Element) {
    let weak = e.downgrade();
    bus.set_sync_handler(move |_, _msg| {
        if let Some(e) = weak.upgrade() {
            let _ = e.property::<f64>("threshold");
            let _ = e.property::<gst::Structure>("stats");
            let _ = e.property::<gst::Structure>("effective-settings");
        }
        gst::BusSyncReply::Pass
    });
}

#[test]
fn a_bus_sync_handler_reading_properties_during_start_up_warnings_does_not_deadlock() {
    with_watchdog(Duration::from_secs(60), || {
        let dir = std::env::temp_dir().join(format!("iguard-lifecycle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("unknown-key.yaml");
        std::fs::write(&file, "step2:\n  queue_size: 5\n  no_such_key: 1\n").unwrap();
        // A config file with an unknown key, and a model that cannot be loaded: two warnings.
        let (e, bus) = element(&[
            ("config-file", &file.to_str().unwrap()),
            ("model-path", &"/nonexistent/iguard-model.onnx"),
            ("model-instance-id", &"lifecycle-sync-handler"),
        ]);
        read_properties_on_every_message(&bus, &e);
        e.set_state(gst::State::Paused).unwrap();
        let warnings: Vec<String> =
            std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Warning]))
                .filter_map(|m| match m.view() {
                    gst::MessageView::Warning(w) => Some(w.error().to_string()),
                    _ => None,
                })
                .collect();
        e.set_state(gst::State::Null).unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("no_such_key")));
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("/nonexistent/iguard-model.onnx"))
        );
    });
}

#[test]
fn a_warning_handler_that_stops_another_element_does_not_deadlock() {
    with_watchdog(Duration::from_secs(60), || {
        // `other` runs a private instance; stopping it from the handler of `e`'s model warning
        // must not wait for the registry of shared instances, which `e` is joining.
        let (other, _ob) = element(&[]);
        other.set_state(gst::State::Paused).unwrap();
        let (e, bus) = element(&[
            ("model-path", &"/nonexistent/iguard-model-2.onnx"),
            ("model-instance-id", &"lifecycle-warning-handler"),
        ]);
        let o = other.clone();
        bus.set_sync_handler(move |_, msg| {
            if let gst::MessageView::Warning(_) = msg.view() {
                o.set_state(gst::State::Null).unwrap();
            }
            gst::BusSyncReply::Pass
        });
        e.set_state(gst::State::Paused).unwrap();
        assert_eq!(other.current_state(), gst::State::Null);
        e.set_state(gst::State::Null).unwrap();
    });
}

#[test]
fn a_shared_instance_names_each_setting_it_ignores_and_reports_its_own_sizes() {
    let id = "lifecycle-shared-key";
    let (a, _abus) = element(&[
        ("model-instance-id", &id),
        ("max-workers", &1u32),
        ("queue-size", &5u32),
    ]);
    let (b, bbus) = element(&[
        ("model-instance-id", &id),
        ("max-workers", &3u32),
        ("queue-size", &9u32),
        ("worker-timeout", &2.5f64),
    ]);
    a.set_state(gst::State::Paused).unwrap();
    b.set_state(gst::State::Paused).unwrap();
    let warnings: Vec<String> =
        std::iter::from_fn(|| bbus.pop_filtered(&[gst::MessageType::Warning]))
            .filter_map(|m| match m.view() {
                gst::MessageView::Warning(w) => Some(w.error().to_string()),
                _ => None,
            })
            .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = &warnings[0];
    for part in [
        "max-workers: 1 vs 3",
        "queue-size: 5 vs 9",
        "worker-timeout: 10 vs 2.5",
        id,
    ] {
        assert!(w.contains(part), "{part:?} missing in {w}");
    }
    let s = Stats::of(&b);
    assert_eq!(
        (s.u("max-workers"), s.u("queue-size")),
        (1, 5),
        "the pool's own"
    );
    assert_eq!(s.u("instance-users"), 2);
    b.set_state(gst::State::Null).unwrap();
    a.set_state(gst::State::Null).unwrap();
}

/// A tiny 3D-CNN whose input is `[1, 3, t, h, w]`, from the project's model generator.
fn model_with_input(t: u32, h: u32, w: u32) -> std::path::PathBuf {
    let python = std::env::var("IGUARD_PYTHON").unwrap_or_else(|_| "python3".into());
    let dir = std::env::temp_dir().join(format!("iguard-lifecycle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("model-{t}x{h}x{w}.onnx"));
    let out = std::process::Command::new(&python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/models/generate.py"))
        .args([
            "tiny",
            "--frames",
            &t.to_string(),
            "--height",
            &h.to_string(),
        ])
        .args(["--width", &w.to_string(), "--out", path.to_str().unwrap()])
        .output()
        .expect("run the project's model generator");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

#[test]
fn the_clip_size_limit_holds_for_a_shape_the_model_fixes() {
    init();
    // 1024 × 512 × 512 RGB tiles: 768 MiB, over the 512 MiB limit, with no property set.
    let big = model_with_input(1024, 512, 512);
    let (e, bus) = element(&[("model-path", &big.to_str().unwrap())]);
    assert!(e.set_state(gst::State::Paused).is_err());
    let error = std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Error]))
        .find_map(|m| match m.view() {
            gst::MessageView::Error(e) => Some(e.error().to_string()),
            _ => None,
        })
        .expect("an error message");
    e.set_state(gst::State::Null).unwrap();
    assert!(
        error.contains("temporal-size=1024") && error.contains("768 MiB"),
        "{error}"
    );
    // The same model at a size within the limit starts, with its shape in force.
    let small = model_with_input(8, 64, 48);
    let (e, _bus) = element(&[("model-path", &small.to_str().unwrap())]);
    e.set_state(gst::State::Paused).unwrap();
    let eff = e.property::<gst::Structure>("effective-settings");
    assert_eq!(
        (
            eff.get::<u32>("temporal-size").unwrap(),
            eff.get::<u32>("input-height").unwrap(),
            eff.get::<u32>("input-width").unwrap()
        ),
        (8, 64, 48)
    );
    assert_eq!(
        e.property::<u32>("temporal-size"),
        16,
        "the property as set"
    );
    e.set_state(gst::State::Null).unwrap();
}

#[test]
fn sources_beyond_max_sources_are_refused_warned_once_and_counted() {
    use standin::Batch;
    let (e, bus) = element(&[
        ("max-sources", &2u32),
        ("temporal-size", &1u32),
        ("cooldown", &0u32),
        ("class-labels", &"0=person"),
    ]);
    let scorer = Arc::new(Recorder::default());
    set_scorer(&e, scorer.clone());
    let mut h = harness(&e);
    for n in 0..3u64 {
        let mut batch = Batch::new();
        for s in 0..6u32 {
            batch = batch.frame(s, s, n as i32, n * 33_000_000, |f| {
                f.object(0, 0.9, (100.0, 60.0, 64.0, 80.0), "")
            });
        }
        let mut b = frame(RED, n * 33);
        batch.attach(b.make_mut());
        h.push(b).unwrap();
        h.pull().unwrap();
    }
    h.push_event(gst::event::Eos::new());
    let mut sources: Vec<u32> = scorer
        .clips
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.source.source_id)
        .collect();
    sources.sort();
    sources.dedup();
    assert_eq!(sources, [0, 1], "only the first two sources are followed");
    let s = Stats::of(&e);
    s.assert_adds_up();
    assert_eq!(s.u("sources-refused"), 4);
    let warnings: Vec<String> =
        std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Warning]))
            .filter_map(|m| match m.view() {
                gst::MessageView::Warning(w) => Some(w.error().to_string()),
                _ => None,
            })
            // (Without NVIDIA's libraries a warning also says verdicts cannot be written as
            // DeepStream metadata on the stand-in's batches.)
            .filter(|w| w.contains("max-sources"))
            .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("source 2") && warnings[0].contains("max-sources=2"),
        "{warnings:?}"
    );
}

/// Records the clips it scores, and says whether it wants their pixels.
struct PixelProbe {
    needs: bool,
    clips: Mutex<Vec<Clip>>,
}

impl Scorer for PixelProbe {
    fn name(&self) -> &str {
        "probe"
    }
    fn is_model(&self) -> bool {
        false
    }
    fn needs_pixels(&self) -> bool {
        self.needs
    }
    fn score(&self, clips: &[&Clip], cancel: &Cancel) -> Result<Vec<Score>, ScoreError> {
        self.clips
            .lock()
            .unwrap()
            .extend(clips.iter().map(|c| (*c).clone()));
        FallbackScorer::new(vec![]).score(clips, cancel)
    }
}

#[test]
fn a_scorer_that_needs_no_pixels_gets_no_tiles_sampled() {
    assert!(!FallbackScorer::new(vec![]).needs_pixels());
    for needs in [true, false] {
        let (e, _bus) = element(&[("temporal-size", &2u32), ("cooldown", &0u32)]);
        let probe = Arc::new(PixelProbe {
            needs,
            clips: Mutex::new(Vec::new()),
        });
        set_scorer(&e, probe.clone());
        let mut h = harness(&e);
        push(&mut h, 0, "person");
        push(&mut h, 1, "person");
        h.push_event(gst::event::Eos::new());
        let clips = probe.clips.lock().unwrap();
        assert_eq!(clips.len(), 1);
        let c = &clips[0];
        assert_eq!(
            (c.frames, c.frame_labels.len()),
            (2, 2),
            "labels still travel"
        );
        let lit = c.pixels.iter().any(|&p| p != 0);
        assert_eq!(
            lit, needs,
            "pixels sampled = {lit}, scorer needs them = {needs}"
        );
    }
}
