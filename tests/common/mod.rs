// SPDX-License-Identifier: MIT OR Apache-2.0
//! Helpers shared by the element tests.
#![allow(dead_code)]

pub mod publish;

use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gstiguard::clip::Clip;
use gstiguard::meta;
use gstiguard::scorer::fallback::FallbackScorer;
use gstiguard::scorer::{Cancel, Score, ScoreError, Scorer};
use gstiguard::verdict::{Status, Verdict};

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstiguard::plugin_register_static().expect("register the iguard plugin");
    });
}

/// Runs `f` on its own thread and fails the test if it takes longer than `limit`, so a block
/// in the element fails instead of hanging the suite.
pub fn with_watchdog<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let r = f();
        let _ = tx.send(());
        r
    });
    match rx.recv_timeout(limit) {
        Ok(()) => handle.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            // The body panicked: re-raise its panic.
            match handle.join() {
                Err(p) => std::panic::resume_unwind(p),
                Ok(r) => r,
            }
        }
        Err(_) => panic!("watchdog: the test did not finish within {limit:?} (blocked?)"),
    }
}

pub const W: u32 = 320;
pub const H: u32 = 240;

/// A box in pixels: x, y, width, height.
pub type Boxed = (u32, u32, u32, u32);

/// A solid blue RGBA frame with a red rectangle. Frames share their memory (read-only).
pub fn frame(red: Boxed, pts_ms: u64) -> gst::Buffer {
    static CACHE: Mutex<Vec<(Boxed, gst::Buffer)>> = Mutex::new(Vec::new());
    let cached = CACHE
        .lock()
        .unwrap()
        .iter()
        .find(|(r, _)| *r == red)
        .map(|(_, b)| b.clone());
    let pixels = cached.unwrap_or_else(|| {
        let b = paint(red);
        CACHE.lock().unwrap().push((red, b.clone()));
        b
    });
    let mut buf = pixels.copy();
    {
        let b = buf.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_mseconds(pts_ms));
        b.set_duration(gst::ClockTime::from_mseconds(33));
    }
    buf
}

fn paint(red: (u32, u32, u32, u32)) -> gst::Buffer {
    let mut buf = gst::Buffer::with_size((W * H * 4) as usize).unwrap();
    {
        let b = buf.get_mut().unwrap();
        let mut map = b.map_writable().unwrap();
        let (rx, ry, rw, rh) = red;
        for (i, px) in map.chunks_exact_mut(4).enumerate() {
            let (x, y) = (i as u32 % W, i as u32 / W);
            let inside = x >= rx && x < rx + rw && y >= ry && y < ry + rh;
            px.copy_from_slice(if inside {
                &[255, 0, 0, 255]
            } else {
                &[0, 0, 255, 255]
            });
        }
    }
    buf
}

pub fn caps() -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format(gst_video::VideoFormat::Rgba)
        .width(W as i32)
        .height(H as i32)
        .framerate(gst::Fraction::new(30, 1))
        .build()
}

/// Adds a detection the way DL Streamer-style detectors do.
pub fn add_detection(buf: &mut gst::Buffer, label: &str, conf: f64, rect: (u32, u32, u32, u32)) {
    let b = buf.make_mut();
    let mut m = gst_video::VideoRegionOfInterestMeta::add(b, label, rect);
    m.add_param(
        gst::Structure::builder("detection")
            .field("confidence", conf)
            .build(),
    );
}

/// An element configured by `props`, with a bus of its own to read its messages.
pub fn element(props: &[(&str, &dyn ToValue)]) -> (gst::Element, gst::Bus) {
    init();
    let e = gst::ElementFactory::make("iguardverify").build().unwrap();
    for (k, v) in props {
        let value = v.to_value();
        // Enum properties may be given by nick, as gst-launch does.
        match value.get::<&str>() {
            Ok(nick)
                if e.find_property(k)
                    .is_some_and(|p| p.value_type().is_a(glib::Type::ENUM)) =>
            {
                e.set_property_from_str(k, nick)
            }
            _ => e.set_property_from_value(k, &value),
        }
    }
    let bus = gst::Bus::new();
    e.set_bus(Some(&bus));
    (e, bus)
}

pub fn set_scorer(e: &gst::Element, scorer: Arc<dyn Scorer>) {
    e.downcast_ref::<gstiguard::iguardverify::IGuardVerify>()
        .unwrap()
        .set_scorer(Some(scorer));
}

/// Every verdict message on the bus so far.
pub fn bus_verdicts(bus: &gst::Bus) -> Vec<Verdict> {
    let mut out = Vec::new();
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Element]) {
        if let Some(s) = msg.structure()
            && s.name() == meta::MESSAGE_NAME
        {
            out.push(meta::from_structure(s).unwrap());
        }
    }
    out
}

/// Waits until `f` holds, failing after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The `stats` property as a map of counts.
pub struct Stats(pub gst::Structure);

impl Stats {
    pub fn of(e: &gst::Element) -> Stats {
        Stats(e.property::<gst::Structure>("stats"))
    }

    pub fn u(&self, f: &str) -> u64 {
        self.0
            .get::<u64>(f)
            .unwrap_or_else(|_| self.0.get::<u32>(f).unwrap() as u64)
    }

    /// submitted = verified + rejected + fallback + timed-out + dropped + failed + pending,
    /// and completed = verified + rejected + fallback.
    pub fn assert_adds_up(&self) {
        let sum: u64 = [
            "verified",
            "rejected",
            "fallback",
            "timed-out",
            "dropped",
            "failed",
            "pending",
        ]
        .iter()
        .map(|f| self.u(f))
        .sum();
        assert_eq!(self.u("submitted"), sum, "stats do not add up: {}", self.0);
        assert_eq!(
            self.u("completed"),
            self.u("verified") + self.u("rejected") + self.u("fallback"),
            "{}",
            self.0
        );
    }
}

/// Runs a `gst-launch` description with an `iguardverify name=v` to EOS (`setup` sees that
/// element before PLAYING) and returns the verdict messages in bus order and its final `stats`.
/// An error message or no EOS within `limit` fails the test.
pub fn run_to_eos(
    desc: &str,
    limit: Duration,
    setup: impl FnOnce(&gst::Element),
) -> (Vec<Verdict>, Stats) {
    init();
    let p = gst::parse::launch(desc)
        .unwrap_or_else(|e| panic!("{desc}: {e}"))
        .downcast::<gst::Pipeline>()
        .unwrap();
    let _stop = StopOnDrop(p.clone().upcast());
    let v = p.by_name("v").expect("an element named v");
    setup(&v);
    let bus = p.bus().unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let mut verdicts = Vec::new();
    let mut eos = false;
    for msg in bus.iter_timed(gst::ClockTime::from_nseconds(limit.as_nanos() as u64)) {
        match msg.view() {
            gst::MessageView::Eos(_) => {
                eos = true;
                break;
            }
            gst::MessageView::Error(err) => panic!("pipeline error: {err:?}"),
            gst::MessageView::Element(m) => {
                if let Some(s) = m.structure()
                    && s.name() == meta::MESSAGE_NAME
                {
                    verdicts.push(meta::from_structure(s).unwrap());
                }
            }
            _ => (),
        }
    }
    assert!(eos, "no EOS within {limit:?}: {desc}");
    let stats = Stats::of(&v);
    p.set_state(gst::State::Null).unwrap();
    (verdicts, stats)
}

/// A scorer that keeps a copy of every clip and scores with the real fallback heuristic.
#[derive(Default)]
pub struct Recorder {
    pub clips: Mutex<Vec<Clip>>,
}

impl Scorer for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    fn is_model(&self) -> bool {
        false
    }
    fn score(&self, clips: &[&Clip], cancel: &Cancel) -> Result<Vec<Score>, ScoreError> {
        self.clips
            .lock()
            .unwrap()
            .extend(clips.iter().map(|c| (*c).clone()));
        FallbackScorer::new(vec!["weapon".into()]).score(clips, cancel)
    }
}

/// Sets a pipeline to NULL when dropped, also when a test fails: freeing a playing pipeline
/// would pull its objects from under its streaming threads and crash the test binary instead
/// of reporting the failure.
pub struct StopOnDrop(pub gst::Element);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

/// Names of the threads starting with `prefix` still listed after up to 5 s: a joined thread
/// can stay in /proc/self/task for a moment on a loaded machine.
#[cfg(feature = "testing")]
pub fn threads_left(prefix: &str) -> Vec<String> {
    let start = Instant::now();
    while !gstiguard::pool::thread_names(prefix).is_empty()
        && start.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    gstiguard::pool::thread_names(prefix)
}

/// A verdict for drawing tests: source 0, a person trigger, scored 0.91 when verified and
/// 0.12 otherwise, threshold 0.5.
pub fn verdict(request_id: u64, status: Status, object_id: Option<u64>) -> Verdict {
    Verdict {
        request_id,
        source_id: 0,
        pad_index: 0,
        status,
        score: if status == Status::Verified {
            0.91
        } else {
            0.12
        },
        threshold: 0.5,
        label: String::new(),
        trigger_label: "person".into(),
        trigger_confidence: 0.9,
        clip_start_pts: None,
        clip_end_pts: None,
        frames: 16,
        queue_ms: 0.0,
        processing_ms: 1.0,
        scorer: "onnx".into(),
        reason: String::new(),
        object_id,
        crop: None,
        snapshot: None,
        zones: Vec::new(),
    }
}
