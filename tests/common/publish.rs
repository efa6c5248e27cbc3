// SPDX-License-Identifier: MIT OR Apache-2.0
//! Helpers of the `iguardpublish` tests (tests/iguardpublish.rs, tests/publish_disk.rs): a real
//! pipeline to EOS with its timing, messages and figures, and readers of what it published.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstiguard::clip::Clip;
use gstiguard::meta;
use gstiguard::scorer::{Cancel, Score, ScoreError, Scorer};
use serde_json::Value;

use super::{StopOnDrop, init, set_scorer};

/// Scores each clip after `delay`, alternately high (verified) and low (rejected), so verdicts
/// keep coming after the last buffer (the EOS drain) and both statuses appear.
pub struct Slow {
    delay: Duration,
    n: AtomicU64,
}

impl Slow {
    pub fn new(ms: u64) -> Arc<Slow> {
        Arc::new(Slow {
            delay: Duration::from_millis(ms),
            n: AtomicU64::new(0),
        })
    }
}

impl Scorer for Slow {
    fn name(&self) -> &str {
        "slow"
    }
    fn is_model(&self) -> bool {
        true
    }
    fn score(&self, clips: &[&Clip], _cancel: &Cancel) -> Result<Vec<Score>, ScoreError> {
        std::thread::sleep(self.delay);
        Ok(clips
            .iter()
            .map(|_| {
                let n = self.n.fetch_add(1, Ordering::Relaxed);
                Score {
                    score: if n.is_multiple_of(2) { 0.9 } else { 0.1 },
                    label: "weapon".into(),
                }
            })
            .collect())
    }
}

pub fn tmpdir(name: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!(
        "iguard-publish-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A person in every frame, so with temporal-size=4 and cooldown=0 a clip ends every 4 frames.
pub fn detections(dir: &Path, frames: u32) -> PathBuf {
    let p = dir.join("detections.txt");
    let mut s = String::new();
    for f in 1..=frames {
        s.push_str(&format!("{f},1,100,60,60,120,0.9,1\n"));
    }
    std::fs::write(&p, s).unwrap();
    p
}

pub struct Run {
    /// Request ids of the verdicts posted on the bus, in order.
    pub verdicts: Vec<u64>,
    /// iguard-publish-state messages: (sink, state, reason).
    pub states: Vec<(String, String, String)>,
    pub warnings: Vec<String>,
    /// When the last buffer left the publisher (ms since the epoch).
    pub last_buffer_ms: i64,
    /// Largest delay of a buffer through the publisher, and largest gap between buffers.
    pub max_delay: Duration,
    pub max_gap: Duration,
    pub publisher: gst::Structure,
    pub verifier: gst::Structure,
}

/// Largest delay through the publisher, largest gap between buffers, the last buffer's
/// Instant and wall-clock ms.
pub type Timing = (Duration, Duration, Option<Instant>, i64);

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Runs `videotestsrc → iguardreplay → iguardverify → iguardpublish <props> → fakesink` for
/// `frames` frames (live at 30 fps when `live`) to EOS; `during` runs alongside on the test
/// thread with the elapsed time, until it returns false.
pub fn run_pipeline(
    dir: &Path,
    frames: u32,
    live: bool,
    scorer_ms: u64,
    props: &str,
    mut during: impl FnMut(Duration) -> bool,
) -> Run {
    run_pipeline_with(dir, frames, live, scorer_ms, "", props, |t, _| during(t))
}

/// [`run_pipeline`] under a watchdog of `limit`, with nothing done during the run.
pub fn run_watched(
    dir: &Path,
    limit: Duration,
    frames: u32,
    live: bool,
    scorer_ms: u64,
    props: &str,
) -> Run {
    let (dir, props) = (dir.to_path_buf(), props.to_string());
    crate::common::with_watchdog(limit, move || {
        run_pipeline(&dir, frames, live, scorer_ms, &props, |_| false)
    })
}

/// [`run_pipeline`] with more `iguardverify` properties (`verify_props`), and `during` also
/// given the `iguardpublish` element (to read its `stats` as the run goes).
pub fn run_pipeline_with(
    dir: &Path,
    frames: u32,
    live: bool,
    scorer_ms: u64,
    verify_props: &str,
    props: &str,
    mut during: impl FnMut(Duration, &gst::Element) -> bool,
) -> Run {
    init();
    let det = detections(dir, frames);
    let desc = format!(
        "videotestsrc num-buffers={frames} is-live={live} \
         ! video/x-raw,format=RGBA,width=320,height=240,framerate=30/1 \
         ! iguardreplay location={} \
         ! iguardverify name=v cooldown=0 temporal-size=4 input-width=32 input-height=32 \
           result-queue-size=1 max-workers=1 queue-size=1000 model-type=fallback incidents=false {verify_props} \
         ! iguardpublish name=p {props} ! fakesink name=sink sync={live}",
        det.display()
    );
    let pipeline = gst::parse::launch(&desc).unwrap();
    let guard = StopOnDrop(pipeline.clone());
    let bin = pipeline.downcast_ref::<gst::Bin>().unwrap();
    let v = bin.by_name("v").unwrap();
    set_scorer(&v, Slow::new(scorer_ms));
    let p = bin.by_name("p").unwrap();

    // Per-buffer delay through the publisher, keyed by PTS.
    let entered: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let timing: Arc<Mutex<Timing>> = Arc::default();
    let e2 = entered.clone();
    p.static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(b) = info.buffer() {
                e2.lock()
                    .unwrap()
                    .insert(b.pts().map_or(0, |t| t.nseconds()), Instant::now());
            }
            gst::PadProbeReturn::Ok
        });
    let (e3, t3) = (entered.clone(), timing.clone());
    p.static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(b) = info.buffer() {
                let now = Instant::now();
                let pts = b.pts().map_or(0, |t| t.nseconds());
                let mut t = t3.lock().unwrap();
                if let Some(at) = e3.lock().unwrap().remove(&pts) {
                    t.0 = t.0.max(now - at);
                }
                if let Some(prev) = t.2 {
                    t.1 = t.1.max(now - prev);
                }
                t.2 = Some(now);
                t.3 = now_ms();
            }
            gst::PadProbeReturn::Ok
        });

    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let start = Instant::now();
    let mut run = Run {
        verdicts: Vec::new(),
        states: Vec::new(),
        warnings: Vec::new(),
        last_buffer_ms: 0,
        max_delay: Duration::ZERO,
        max_gap: Duration::ZERO,
        publisher: gst::Structure::new_empty("none"),
        verifier: gst::Structure::new_empty("none"),
    };
    let mut during_on = true;
    loop {
        if during_on {
            during_on = during(start.elapsed(), &p);
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(20)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("pipeline error: {} ({:?})", e.error(), e.debug()),
            gst::MessageView::Warning(w) => run.warnings.push(w.error().to_string()),
            gst::MessageView::Element(_) => {
                let s = msg.structure().unwrap();
                if s.name() == meta::MESSAGE_NAME {
                    run.verdicts.push(s.get("request-id").unwrap());
                } else if s.name() == "iguard-publish-state" {
                    run.states.push((
                        s.get("sink").unwrap(),
                        s.get("state").unwrap(),
                        s.get("reason").unwrap(),
                    ));
                }
            }
            _ => {}
        }
    }
    while during_on {
        during_on = during(start.elapsed(), &p);
        std::thread::sleep(Duration::from_millis(20));
    }
    run.verifier = v.property("stats");
    pipeline.set_state(gst::State::Null).unwrap();
    // Messages posted by the outputs up to the stop.
    while let Some(msg) = bus.pop() {
        if let gst::MessageView::Warning(w) = msg.view() {
            run.warnings.push(w.error().to_string());
        }
        if let Some(s) = msg.structure()
            && s.name() == "iguard-publish-state"
        {
            run.states.push((
                s.get("sink").unwrap(),
                s.get("state").unwrap(),
                s.get("reason").unwrap(),
            ));
        }
    }
    run.publisher = p.property("stats");
    let t = timing.lock().unwrap();
    run.max_delay = t.0;
    run.max_gap = t.1;
    run.last_buffer_ms = t.3;
    drop(guard);
    run
}

/// An `iguardpublish <props>` in a harness, playing, with its bus: events pushed into it are
/// published as a pipeline's would be.
pub fn publisher(props: &str) -> (gst_check::Harness, gst::Element, gst::Bus) {
    init();
    let e = gst::parse::launch(&format!("iguardpublish {props}")).unwrap();
    let bus = gst::Bus::new();
    e.set_bus(Some(&bus));
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_src_caps_str("video/x-raw");
    (h, e, bus)
}

/// The `event_id` of each event.
pub fn event_ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect()
}

pub fn u(s: &gst::Structure, f: &str) -> u64 {
    s.get::<u64>(f)
        .unwrap_or_else(|e| panic!("{f}: {e} in {s}"))
}

pub fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn request_ids(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e["schema"] == "iguard.verdict/1")
        .map(|e| e["request_id"].as_u64().unwrap())
        .collect()
}

pub fn assert_once(what: &str, got: &[u64], want: &[u64]) {
    let mut sorted = got.to_vec();
    sorted.sort_unstable();
    let mut w = want.to_vec();
    w.sort_unstable();
    let dups: Vec<_> = sorted.windows(2).filter(|p| p[0] == p[1]).collect();
    assert!(dups.is_empty(), "{what}: published twice: {dups:?}");
    assert_eq!(sorted, w, "{what}: not every verdict once");
}

/// `name{labels} value` lines of an OpenMetrics text, as (name, labels, value).
pub fn parse_openmetrics(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}').unwrap()),
            None => (series, ""),
        };
        let labels = labels
            .split(',')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap();
                (k.to_string(), v.trim_matches('"').to_string())
            })
            .collect();
        out.push((name.to_string(), labels, value.parse().unwrap()));
    }
    out
}

/// What [`check_incident_log`] found in an event log.
#[derive(Debug, Default)]
pub struct IncidentLog {
    /// Incidents, by (run, incident id): their `end` event.
    pub ended: BTreeMap<(String, u64), Value>,
    /// Incidents that became alerts.
    pub alerts: usize,
    /// Verdict events, by status.
    pub verdicts: BTreeMap<String, usize>,
    /// Verdict events of no open incident (`incidents=false`, or an object's clip after its
    /// incident ended).
    pub orphans: usize,
}

/// The run id an event is named after: its `event_id` before `-<request>` (a verdict) or
/// `-incident-` (an incident).
fn run_of(e: &Value) -> String {
    let id = e["event_id"].as_str().unwrap();
    match id.split_once("-incident-") {
        Some((run, _)) => run.to_string(),
        None => id.rsplit_once('-').unwrap().0.to_string(),
    }
}

/// Checks the incidents of an event log (read in order) against its verdicts, and returns
/// what it found:
/// - every event id once;
/// - every incident: one `new` first, one `end` last, `alert` at most once, revisions 1, 2,
///   3... in log order;
/// - each `update`/`alert` counts one verdict more than the change before it, and never more
///   than the verdict events of its clips logged since its `new`: a verdict's event precedes
///   the change that counts it (two workers' verdicts may both come before either's change),
///   so an `alert` comes after a verified verdict of its object;
/// - its `end` counts exactly the verdicts of its clips (`clips` is their sum).
///
/// A verdict's clips are those of its object (same run, source and object) whose incident is
/// open: the newest one that started (`start_pts`) at or before the clip. An object lost while
/// its last clip waits for a verdict may be back, with the same id, in a new incident before
/// the old one ends.
pub fn check_incident_log(events: &[Value]) -> IncidentLog {
    type Object = (String, u64, Option<u64>);
    type Id = (String, u64);
    #[derive(Default)]
    struct Open {
        object: Option<Object>,
        start_pts: Option<u64>,
        revision: u64,
        /// The verdict events of its clips logged so far: verified, rejected, unscored.
        seen: [u64; 3],
        /// The verdicts its latest change counted.
        counted: u64,
        alerted: bool,
    }
    let mut out = IncidentLog::default();
    let ids: Vec<String> = event_ids(events);
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "an event id twice in {ids:?}");
    let mut open: BTreeMap<Id, Open> = BTreeMap::new();
    let mut ended: Vec<Id> = Vec::new();
    for e in events {
        let run = run_of(e);
        let source = e["source_id"].as_u64().unwrap();
        // A verdict of `clip-per=source` names object G_MAXUINT64, its incident null.
        let object = e["object_id"].as_u64().filter(|o| *o != u64::MAX);
        let key: Object = (run.clone(), source, object);
        if e["schema"] == "iguard.verdict/1" {
            let status = e["status"].as_str().unwrap().to_string();
            *out.verdicts.entry(status.clone()).or_default() += 1;
            let clip = e["clip_start_pts"].as_u64();
            // Incident ids grow: the last that fits is the newest.
            let theirs = open.values_mut().rev().find(|o| {
                o.object.as_ref() == Some(&key)
                    && match (o.start_pts, clip) {
                        (Some(start), Some(clip)) => start <= clip,
                        _ => true,
                    }
            });
            match theirs {
                Some(o) => {
                    let slot = match status.as_str() {
                        "verified" => 0,
                        "rejected" => 1,
                        _ => 2,
                    };
                    o.seen[slot] += 1;
                }
                None => out.orphans += 1,
            }
            continue;
        }
        if e["schema"] != "iguard.incident/1" {
            continue;
        }
        let id: Id = (run, e["incident_id"].as_u64().unwrap());
        let revision = e["revision"].as_u64().unwrap();
        let change = e["type"].as_str().unwrap();
        assert!(!ended.contains(&id), "a change after its end: {e}");
        if change == "new" {
            assert_eq!(revision, 1, "{e}");
            let was = open.insert(
                id.clone(),
                Open {
                    object: Some(key),
                    start_pts: e["start_pts"].as_u64(),
                    revision,
                    ..Default::default()
                },
            );
            assert!(was.is_none(), "a second new: {e}");
        }
        let o = open
            .get_mut(&id)
            .unwrap_or_else(|| panic!("a change before its new: {e}"));
        if change != "new" {
            assert_eq!(revision, o.revision + 1, "revisions one by one: {e}");
            o.revision = revision;
        }
        let counts = [
            e["clips_verified"].as_u64().unwrap(),
            e["clips_rejected"].as_u64().unwrap(),
            e["clips_unscored"].as_u64().unwrap(),
        ];
        assert!(
            counts.iter().zip(&o.seen).all(|(c, seen)| c <= seen),
            "counts (verified, rejected, unscored) {counts:?} beyond the verdicts of its clips \
             logged so far {:?}: {e}",
            o.seen
        );
        let total: u64 = counts.iter().sum();
        if matches!(change, "update" | "alert") {
            assert_eq!(total, o.counted + 1, "one verdict per change: {e}");
        }
        o.counted = total;
        match change {
            "alert" => {
                assert!(!o.alerted, "a second alert: {e}");
                assert!(
                    counts[0] >= 1 && o.seen[0] >= 1,
                    "an alert before a verified verdict: {e}"
                );
                o.alerted = true;
                out.alerts += 1;
            }
            "end" => {
                assert_eq!(counts, o.seen, "its end counts its clips' verdicts: {e}");
                assert_eq!(
                    e["clips"].as_u64().unwrap(),
                    total,
                    "every clip has its verdict at the end: {e}"
                );
                assert_eq!(e["state"] == "alert", o.alerted, "{e}");
                assert!(e["end_reason"].is_string(), "{e}");
                open.remove(&id);
                ended.push(id.clone());
                out.ended.insert(id, e.clone());
            }
            "new" | "update" => {}
            other => panic!("unknown type {other}: {e}"),
        }
    }
    let left: Vec<&Id> = open.keys().collect();
    assert!(left.is_empty(), "incidents with no end: {left:?}");
    out
}
