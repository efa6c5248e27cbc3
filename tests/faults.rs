// SPDX-License-Identifier: MIT OR Apache-2.0
//! Fault injection through real elements: a model file that goes bad under a running pipeline,
//! and scorers that panic or answer nonsense. `IGUARD_LONG=1` (`make test-long`) repeats each
//! drill many more times. Every test counts the faults it injected and the ones the element
//! answered as documented, and prints `faults: N injected, N answered (what)`.
//!
//! What each test proves:
//! - a model file truncated or deleted while the pipeline runs changes nothing for that run:
//!   the model is in memory, verdicts keep coming from `onnx` and buffers keep flowing; the
//!   next start (NULL → PLAYING) with the damaged or missing file posts the documented WARNING
//!   naming the file and the fallback, and verdicts come as `fallback`;
//! - a scorer that panics on every third clip answers exactly those clips `error` (reason: the
//!   panic), scores the others, restarts one worker per panic and never stops the video;
//! - a scorer that returns NaN, ±infinity, values just outside [0, 1] or an error answers those
//!   clips `error` (reason: the value or the failure), while 0 and 1 themselves are scores;
//! - in every case `stats` adds up and nothing is left pending.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use common::*;
use gst::prelude::*;
use gstiguard::meta;
use gstiguard::scorer::faults::{Fault, FaultScorer};
use gstiguard::verdict::{Status, Verdict};

fn long() -> bool {
    std::env::var_os("IGUARD_LONG").is_some_and(|v| v != "0")
}

/// Faults injected by one test, and those the element answered as documented.
struct Tally {
    what: &'static str,
    injected: u64,
    answered: u64,
}

impl Tally {
    fn new(what: &'static str) -> Self {
        Tally {
            what,
            injected: 0,
            answered: 0,
        }
    }

    fn report(&self) {
        println!(
            "faults: {} injected, {} answered ({})",
            self.injected, self.answered, self.what
        );
        assert!(self.injected > 0, "{}: no fault was injected", self.what);
        assert_eq!(
            self.injected, self.answered,
            "{}: faults left unanswered",
            self.what
        );
    }
}

/// The injected panics are expected: keep their messages out of the test output.
fn quiet_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info
                .payload_as_str()
                .is_some_and(|m| m.starts_with("injected panic"))
            {
                default(info);
            }
        }));
    });
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("iguard-faults-{}-{name}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    dir
}

// ---------------------------------------------------------------------------------------------
// A model file that goes bad

#[derive(Debug, Clone, Copy, PartialEq)]
enum FileFault {
    Truncate,
    Remove,
}

/// A live pipeline whose detections trigger a clip on every frame, with what its bus said.
/// Dropping it (also when a test fails) stops the pipeline first: freeing a playing pipeline
/// would pull the objects from under its streaming threads.
struct Live {
    pipeline: gst::Pipeline,
    verify: gst::Element,
    buffers: Arc<AtomicU64>,
    verdicts: Vec<Verdict>,
    warnings: Vec<String>,
    errors: Vec<String>,
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Live {
    fn new(model: &Path, detections: &Path) -> Live {
        init();
        let pipeline = gst::parse::launch(&format!(
            "videotestsrc is-live=true \
             ! video/x-raw,width=160,height=120,format=RGBA,framerate=60/1 \
             ! iguardreplay location={} ! iguardverify name=v cooldown=0 model-path={} \
             ! fakesink name=sink sync=false",
            detections.display(),
            model.display()
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let verify = pipeline.by_name("v").unwrap();
        let buffers = Arc::new(AtomicU64::new(0));
        let counter = buffers.clone();
        pipeline
            .by_name("sink")
            .unwrap()
            .static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                counter.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
        Live {
            pipeline,
            verify,
            buffers,
            verdicts: vec![],
            warnings: vec![],
            errors: vec![],
        }
    }

    fn buffers(&self) -> u64 {
        self.buffers.load(Ordering::Relaxed)
    }

    fn play(&mut self) {
        self.verdicts.clear();
        self.warnings.clear();
        self.errors.clear();
        self.pipeline.set_state(gst::State::Playing).unwrap();
    }

    /// To NULL: every request answered, nothing pending.
    fn stop(&mut self) {
        self.pipeline.set_state(gst::State::Null).unwrap();
        let s = Stats::of(&self.verify);
        s.assert_adds_up();
        assert_eq!(s.u("pending"), 0, "{}", s.0);
    }

    /// Reads the bus until `done` holds; fails after `limit` or on an error message.
    fn wait(&mut self, what: &str, limit: Duration, done: impl Fn(&Live) -> bool) {
        let bus = self.pipeline.bus().unwrap();
        let deadline = std::time::Instant::now() + limit;
        while !done(self) {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}: {} verdicts, warnings {:?}, errors {:?}",
                self.verdicts.len(),
                self.warnings,
                self.errors
            );
            let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(20)) else {
                continue;
            };
            match msg.view() {
                gst::MessageView::Error(e) => {
                    self.errors.push(format!("{} {:?}", e.error(), e.debug()))
                }
                gst::MessageView::Warning(w) => self.warnings.push(w.error().to_string()),
                gst::MessageView::Element(m) => {
                    if let Some(s) = m.structure()
                        && s.name() == meta::MESSAGE_NAME
                    {
                        self.verdicts.push(meta::from_structure(s).unwrap());
                    }
                }
                _ => (),
            }
            assert!(self.errors.is_empty(), "{:?}", self.errors);
        }
    }
}

/// A detections file with a person on each of `frames` frames of a 160×120 stream.
fn person_on_every_frame(dir: &Path, frames: u64) -> PathBuf {
    let path = dir.join("detections.txt");
    let mut text = String::from("# frame, id, left, top, width, height, conf, class\n");
    for f in 1..=frames {
        text.push_str(&format!("{f},1,40,30,80,60,0.9,1\n"));
    }
    fs::write(&path, text).unwrap();
    path
}

fn scored_by_the_model(v: &Verdict) -> bool {
    v.scorer == "onnx" && matches!(v.status, Status::Verified | Status::Rejected)
}

fn a_model_file_that_goes_bad(fault: FileFault, what: &'static str) {
    let tiny = root().join("models/tiny-action.onnx");
    assert!(
        tiny.is_file(),
        "{} is missing: run `make models`",
        tiny.display()
    );
    let dir = scratch(&format!("{fault:?}"));
    let model = dir.join("model.onnx");
    // Ten minutes of frames at 60 fps: more than any phase below waits for.
    let detections = person_on_every_frame(&dir, 36_000);
    let rounds = if long() { 10 } else { 1 };
    let mut tally = Tally::new(what);
    let minute = Duration::from_secs(60);

    for round in 0..rounds {
        fs::copy(&tiny, &model).unwrap();
        let mut live = Live::new(&model, &detections);
        live.play();
        live.wait("the first verdicts", minute, |l| l.verdicts.len() >= 2);
        assert!(
            live.verdicts.iter().all(scored_by_the_model),
            "round {round}: the model did not load: {:?} {:?}",
            live.warnings,
            live.verdicts
        );

        // The file goes bad under the running pipeline.
        match fault {
            FileFault::Truncate => {
                let f = fs::OpenOptions::new().write(true).open(&model).unwrap();
                let len = f.metadata().unwrap().len();
                f.set_len(len / 3).unwrap();
            }
            FileFault::Remove => fs::remove_file(&model).unwrap(),
        }
        tally.injected += 1;
        let (seen, flowed) = (live.verdicts.len(), live.buffers());
        live.wait("verdicts after the fault", minute, |l| {
            l.verdicts.len() >= seen + 3
        });
        let after = &live.verdicts[seen..];
        assert!(
            after.iter().all(scored_by_the_model),
            "round {round}: the loaded model stopped answering: {after:?}"
        );
        assert!(live.buffers() > flowed, "round {round}: the video stopped");
        tally.answered += 1;

        // The next start finds the file damaged or gone: a warning, then the fallback.
        live.stop();
        live.play();
        tally.injected += 1;
        live.wait("a warning and verdicts after the restart", minute, |l| {
            !l.warnings.is_empty() && l.verdicts.len() >= 2
        });
        let named = live.warnings.iter().any(|w| {
            w.contains(&model.display().to_string()) && w.contains("label-based fallback")
        });
        assert!(named, "round {round}: {:?}", live.warnings);
        assert!(
            live.verdicts
                .iter()
                .all(|v| v.status == Status::Fallback && v.scorer == "fallback"),
            "round {round}: {:?}",
            live.verdicts
        );
        let flowed = live.buffers();
        live.wait("buffers after the restart", minute, |l| {
            l.buffers() > flowed + 10
        });
        tally.answered += 1;
        live.stop();
    }
    let _ = fs::remove_dir_all(&dir);
    tally.report();
}

#[test]
fn a_model_file_truncated_mid_run_keeps_the_loaded_model_then_falls_back() {
    with_watchdog(Duration::from_secs(1800), || {
        a_model_file_that_goes_bad(FileFault::Truncate, "model file truncated mid-run")
    });
}

#[test]
fn a_model_file_removed_mid_run_keeps_the_loaded_model_then_falls_back() {
    with_watchdog(Duration::from_secs(1800), || {
        a_model_file_that_goes_bad(FileFault::Remove, "model file removed mid-run")
    });
}

// ---------------------------------------------------------------------------------------------
// Scorers that misbehave

/// Pushes `clips` two-frame clips (a person, and a weapon at 0.9 on every frame) through an
/// element scoring with `scorer` on one worker, then EOS. Every buffer must come out. Returns the
/// verdicts and the final stats.
fn through_the_element(scorer: Arc<FaultScorer>, clips: u64) -> (Vec<Verdict>, Stats) {
    let (e, bus) = element(&[
        // One clip per person-and-weapon frame pair, not one per object.
        ("clip-per", &"source"),
        ("temporal-size", &2u32),
        ("cooldown", &0u32),
        ("input-width", &16u32),
        ("input-height", &16u32),
        // One worker: calls are served in order, so call n is the n-th clip served.
        ("max-workers", &1u32),
        ("queue-size", &10_000u32),
    ]);
    set_scorer(&e, scorer);
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_src_caps(caps());
    for n in 0..clips * 2 {
        let mut b = frame((10, 10, 50, 50), n * 33);
        add_detection(&mut b, "person", 0.9, (10, 10, 50, 50));
        add_detection(&mut b, "weapon", 0.9, (20, 20, 10, 10));
        h.push(b)
            .unwrap_or_else(|e| panic!("frame {n} was refused: {e:?}"));
        h.pull()
            .unwrap_or_else(|e| panic!("frame {n} did not come out: {e:?}"));
    }
    h.push_event(gst::event::Eos::new());
    let verdicts = bus_verdicts(&bus);
    let s = Stats::of(&e);
    s.assert_adds_up();
    assert_eq!(s.u("pending"), 0, "{}", s.0);
    assert_eq!(s.u("submitted"), clips, "{}", s.0);
    assert_eq!(s.u("dropped"), 0, "{}", s.0);
    assert_eq!(verdicts.len() as u64, clips, "one verdict per clip");
    (verdicts, s)
}

/// The call (numbered from 1) that scored each request.
fn calls_by_request(scorer: &FaultScorer) -> std::collections::HashMap<u64, u64> {
    scorer
        .served
        .lock()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i as u64 + 1))
        .collect()
}

#[test]
fn a_scorer_that_panics_on_every_third_clip() {
    quiet_injected_panics();
    let clips = if long() { 3_000 } else { 60 };
    let scorer = Arc::new(FaultScorer::new(|n| {
        if n.is_multiple_of(3) {
            Fault::Panic
        } else {
            Fault::None
        }
    }));
    let (verdicts, s) = with_watchdog(Duration::from_secs(600), {
        let scorer = scorer.clone();
        move || through_the_element(scorer, clips)
    });
    let calls = calls_by_request(&scorer);
    let mut tally = Tally::new("scorer panics on every third clip");
    tally.injected = scorer.calls() / 3;
    for v in &verdicts {
        let call = calls[&v.request_id];
        if call.is_multiple_of(3) {
            assert_eq!(v.status, Status::Error, "call {call}: {v:?}");
            assert!(
                v.reason.contains("scorer panicked")
                    && v.reason.contains(&format!("injected panic on call {call}")),
                "{v:?}"
            );
            assert!(v.score.is_nan(), "an unscored verdict has no score: {v:?}");
            tally.answered += 1;
        } else {
            assert_eq!(v.status, Status::Fallback, "call {call}: {v:?}");
            assert!((v.score - 0.9).abs() < 1e-9, "{v:?}");
        }
    }
    assert_eq!(s.u("failed"), tally.injected, "{}", s.0);
    assert_eq!(s.u("fallback"), clips - tally.injected, "{}", s.0);
    assert_eq!(
        s.u("worker-restarts"),
        tally.injected,
        "one restart per panic: {}",
        s.0
    );
    tally.report();
}

/// What the nonsense scorer does on call `n`, and what the element must answer.
fn nonsense(n: u64) -> (Fault, Status) {
    match n % 10 {
        1 => (Fault::None, Status::Verified),
        2 => (Fault::Nan, Status::Error),
        3 => (Fault::Fixed(1.5), Status::Error),
        4 => (Fault::Fixed(-0.25), Status::Error),
        5 => (Fault::Fixed(f64::INFINITY), Status::Error),
        6 => (Fault::Fixed(f64::NEG_INFINITY), Status::Error),
        7 => (Fault::Fixed(1.0), Status::Verified),
        8 => (Fault::Fixed(0.0), Status::Rejected),
        9 => (Fault::Fail, Status::Error),
        _ => (Fault::Fixed(1.0 + f64::EPSILON), Status::Error),
    }
}

#[test]
fn a_scorer_that_returns_nan_out_of_range_scores_or_errors() {
    let clips = if long() { 5_000 } else { 100 };
    let scorer = Arc::new(FaultScorer::new(|n| nonsense(n).0).as_model());
    let (verdicts, s) = with_watchdog(Duration::from_secs(600), {
        let scorer = scorer.clone();
        move || through_the_element(scorer, clips)
    });
    let calls = calls_by_request(&scorer);
    let mut tally = Tally::new("scorer returns NaN, out-of-range scores or errors");
    let mut expected = std::collections::BTreeMap::<Status, u64>::new();
    for v in &verdicts {
        let call = calls[&v.request_id];
        let (fault, status) = nonsense(call);
        *expected.entry(status).or_default() += 1;
        assert_eq!(v.status, status, "call {call} ({fault:?}): {v:?}");
        assert_eq!(v.scorer, "test-model");
        if status != Status::Error {
            continue;
        }
        tally.injected += 1;
        let reason = match fault {
            Fault::Fail => format!("scorer failed: injected failure on call {call}"),
            Fault::Nan => "scorer returned score NaN, outside [0, 1]".to_string(),
            Fault::Fixed(x) => format!("scorer returned score {x}, outside [0, 1]"),
            _ => unreachable!(),
        };
        assert_eq!(v.reason, reason, "call {call}");
        assert!(v.score.is_nan(), "an unscored verdict has no score: {v:?}");
        tally.answered += 1;
    }
    let count = |st: Status| expected.get(&st).copied().unwrap_or(0);
    assert_eq!(s.u("failed"), count(Status::Error), "{}", s.0);
    assert_eq!(s.u("verified"), count(Status::Verified), "{}", s.0);
    assert_eq!(s.u("rejected"), count(Status::Rejected), "{}", s.0);
    assert_eq!(s.u("worker-restarts"), 0, "no panic, no restart: {}", s.0);
    tally.report();
}
