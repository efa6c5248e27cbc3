// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `iguardverify` benchmark (`make bench`, `make bench-quick`). Not a test: it measures and
//! prints, it asserts nothing about speed.
//!
//! ```text
//! cargo run --release --features testing --example bench -- [--quick] [--out PATH] [--clip-model PATH]
//!     [--sync-model PATH] [--only rss,frame,libyuv,objects,footage,streams,sync,clips]
//! ```
//!
//! Every figure is printed as one `name: value` line when it is measured, then in a short table
//! with the goals, and written as JSON (`--out`, default `bench-results/bench.json`, or
//! `bench-results/bench-quick.json` with `--quick`). Figures meant to be compared are measured in
//! the same run, interleaved where they can be, because the machine is shared and noisy.
//!
//! Element time is what the element itself spends on a buffer: a probe on its sink pad stores
//! the entry time, a probe on its src pad the exit time (an in-place transform pushes on the
//! thread that called it). Phases, in the order they run:
//!
//! - `rss`: 64 sources (one element each, one shared pool through `model-instance-id`) trigger on
//!   every frame at 30 fps while a scorer that never returns holds every worker: peak RSS against
//!   `base + queue-size x clip bytes`. It runs first, before other phases leave freed heap behind.
//! - `frame`: 1080p frames pushed with `gst_check::Harness`, one element per case, the cases
//!   interleaved frame by frame: idle (no trigger), collecting (person box, full frame), and
//!   saturated (every worker held, `queue-size=2` overflowing), in RGBA and NV12.
//! - `objects`: 1080p RGBA and NV12 frames with 1, 4, 16 and 64 person boxes, each with its own
//!   tracked id (`clip-per=object`, `cooldown=0`: every frame samples a 112x112 tile per object;
//!   64 is the default per-buffer tile budget), the cases interleaved frame by frame:
//!   streaming-thread wall and CPU time per frame, and its ratio to N x the one-object cost.
//! - `footage`: OpenCV's `vtest.avi` with its HOG person detections (`make footage`; the paths
//!   from `IGUARD_FOOTAGE_VIDEO` and `IGUARD_FOOTAGE_DETECTIONS`), decoded into memory first,
//!   `clip-per=object` and `clip-per=source` interleaved frame by frame: time per frame.
//! - `streams`: N real-time 1080p30 sources, each a thread with its own element (all sharing one
//!   pool), for N = 1, 2, 4, ...: the largest N whose frames all leave the element within one
//!   frame interval of their arrival.
//! - `sync`: a live pipeline (`videotestsrc is-live=true ! iguardreplay ! iguardverify !
//!   fakesink sync=true`) with a real model, `async=false` then `async=true`: late and dropped
//!   frames at the sink.
//! - `libyuv`: the sampler alone against libyuv (opened at run time from `libyuv.so.0`; the
//!   phase says so and is skipped when it is missing) on the same crops of the same 1080p
//!   frames, RGBA and NV12, person box and full frame, 112² and 224² tiles: time per call
//!   and per output pixel, their ratio, and the tiles' difference, which must stay within a
//!   stated bound (the phase fails otherwise; see `common/vs_libyuv.rs`).
//! - `clips`: one clip timed directly with `OnnxScorer` (1 thread), then the element's clips/s with
//!   1 and 2 workers and with batches of 4, from a queue filled before the workers start.
//!
//! Run it with `GST_PLUGIN_PATH` unset: the plugin is registered statically, and a second copy
//! found on the plugin path would clash with it.

#[path = "common/clock.rs"]
mod clock;
#[path = "common/report.rs"]
mod report;
#[path = "common/vs_libyuv.rs"]
mod vs_libyuv;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use clock::{cores, load_average, now_ns, percentile, sleep_until, thread_cpu_ns};
use gst::prelude::*;
use gst_base::prelude::*;
use gstiguard::clip::Clip;
use gstiguard::detections::SourceFrame;
use gstiguard::geometry::PixelRect;
use gstiguard::meta;
use gstiguard::scorer::faults::{Fault, FaultScorer, Gate};
use gstiguard::scorer::onnx::{OnnxConfig, OnnxScorer};
use gstiguard::scorer::{Cancel, Score, ScoreError, Scorer};
use report::{json_num, json_str, show};

const FPS: u64 = 30;
const PERIOD_NS: u64 = 1_000_000_000 / FPS;
const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;
/// A standing person in a 1080p frame: 480 x 640 pixels.
const PERSON: (u32, u32, u32, u32) = (720, 220, 480, 640);
/// Sources in the memory storm.
const STORM_SOURCES: usize = 64;
/// Distinct frames the multi-source phases cycle through, so sources do not all read one
/// frame that stays in the cache (8 x 8 MB is twice this machine's L3).
const DISTINCT_FRAMES: u32 = 8;

// ---------------------------------------------------------------------------------------------
// Clocks, percentiles, memory

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Resident set size of this process, in bytes.
fn rss_bytes() -> u64 {
    status_kib("VmRSS:") * 1024
}

/// The kernel's record of the peak RSS (since it was last reset), in bytes.
fn rss_high_water_bytes() -> u64 {
    status_kib("VmHWM:") * 1024
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Resets the kernel's peak-RSS record to the current RSS; false where the kernel refuses.
fn reset_rss_high_water() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

unsafe extern "C" {
    fn sysconf(name: i32) -> i64;
}

/// User + system CPU time of this process (every thread), in nanoseconds.
fn cpu_time_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name may contain spaces: fields are counted after its closing ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime: fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    // SAFETY: sysconf only reads its argument; 2 is _SC_CLK_TCK on Linux.
    let hz = unsafe { sysconf(2) };
    ticks * 1_000_000_000 / if hz > 0 { hz as u64 } else { 100 }
}

// ---------------------------------------------------------------------------------------------
// The report

#[derive(Default)]
struct Report {
    figures: Vec<(String, f64)>,
    details: Vec<(String, String)>,
    streams: Vec<StreamStep>,
    errors: Vec<String>,
}

impl Report {
    fn fig(&mut self, name: &str, value: f64) {
        println!("{name}: {}", show(value));
        self.figures.push((name.to_string(), value));
    }

    fn detail(&mut self, name: &str, value: impl std::fmt::Display) {
        self.details.push((name.to_string(), value.to_string()));
    }

    fn get(&self, name: &str) -> Option<f64> {
        self.figures
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }
}

/// A goal from the issue: figure, comparison, target.
struct Goal {
    figure: &'static str,
    at_most: bool,
    target: f64,
}

const GOALS: &[Goal] = &[
    Goal {
        figure: "frame_us_collect_p99_person_rgba",
        at_most: true,
        target: 200.0,
    },
    Goal {
        figure: "frame_us_collect_p99_person_nv12",
        at_most: true,
        target: 200.0,
    },
    Goal {
        figure: "ratio_saturated_vs_collect_p99",
        at_most: true,
        target: 1.2,
    },
    Goal {
        figure: "ratio_to_compute_limit",
        at_most: false,
        target: 0.9,
    },
    Goal {
        figure: "late_frames_async_true",
        at_most: true,
        target: 0.0,
    },
    Goal {
        figure: "streams_sustained",
        at_most: false,
        target: 32.0,
    },
    Goal {
        figure: "rss_bound_ratio",
        at_most: true,
        target: 1.2,
    },
];

fn goal_met(g: &Goal, v: f64) -> Option<bool> {
    let met = if g.at_most {
        v <= g.target
    } else {
        v >= g.target
    };
    v.is_finite().then_some(met)
}

impl Report {
    fn print_table(&self) {
        println!();
        println!("{:<46} {:>12}  goal", "figure", "value");
        println!("{}", "-".repeat(78));
        for (name, v) in &self.figures {
            let goal = GOALS.iter().find(|g| g.figure == name).map(|g| {
                let met = match goal_met(g, *v) {
                    Some(true) => "met",
                    Some(false) => "MISSED",
                    None => "not measured",
                };
                format!(
                    "{} {} ({met})",
                    if g.at_most { "<=" } else { ">=" },
                    show(g.target)
                )
            });
            println!("{name:<46} {:>12}  {}", show(*v), goal.unwrap_or_default());
        }
        if !self.streams.is_empty() {
            println!();
            println!("streams: N sources x 1080p30, element time per frame, late = not through");
            println!("the element within one frame interval of its arrival");
            println!(
                "(cpu load: this process's CPU time / (wall x cores); loadavg: the machine's)"
            );
            println!(
                "{:>5} {:>8} {:>6} {:>9} {:>9} {:>12} {:>9} {:>8}",
                "N", "frames", "late", "p50 us", "p99 us", "max late ms", "cpu load", "loadavg"
            );
            for s in &self.streams {
                println!(
                    "{:>5} {:>8} {:>6} {:>9} {:>9} {:>12} {:>9} {:>8}",
                    s.n,
                    s.frames,
                    s.late,
                    show(s.p50_us),
                    show(s.p99_us),
                    show(s.max_late_ms),
                    show(s.cpu_load),
                    show(s.load_average)
                );
            }
        }
        if !self.errors.is_empty() {
            println!();
            for e in &self.errors {
                println!("error: {e}");
            }
        }
    }

    fn json(&self, opts: &Opts, wall_s: f64) -> String {
        let mut j = String::from("{\n");
        let _ = writeln!(
            j,
            "  \"mode\": {},",
            json_str(if opts.quick { "quick" } else { "full" })
        );
        let _ = writeln!(
            j,
            "  \"clip_model\": {},",
            json_str(&opts.clip_model.display().to_string())
        );
        let _ = writeln!(
            j,
            "  \"sync_model\": {},",
            json_str(&opts.sync_model.display().to_string())
        );
        let _ = writeln!(j, "  \"cores\": {},", cores());
        let _ = writeln!(j, "  \"wall_s\": {},", json_num(wall_s));
        j.push_str("  \"figures\": {\n");
        let figs: Vec<String> = self
            .figures
            .iter()
            .map(|(n, v)| format!("    {}: {}", json_str(n), json_num(*v)))
            .collect();
        j.push_str(&figs.join(",\n"));
        j.push_str("\n  },\n  \"goals\": [\n");
        let goals: Vec<String> = GOALS
            .iter()
            .map(|g| {
                let v = self.get(g.figure).unwrap_or(f64::NAN);
                format!(
                    "    {{\"figure\": {}, \"{}\": {}, \"value\": {}, \"met\": {}}}",
                    json_str(g.figure),
                    if g.at_most { "at_most" } else { "at_least" },
                    json_num(g.target),
                    json_num(v),
                    match goal_met(g, v) {
                        Some(m) => m.to_string(),
                        None => "null".into(),
                    }
                )
            })
            .collect();
        j.push_str(&goals.join(",\n"));
        j.push_str("\n  ],\n  \"streams\": [\n");
        let steps: Vec<String> = self
            .streams
            .iter()
            .map(|s| {
                format!(
                    "    {{\"n\": {}, \"frames\": {}, \"late\": {}, \"p50_us\": {}, \"p99_us\": {}, \
                     \"max_late_ms\": {}, \"cpu_load\": {}, \"load_average\": {}}}",
                    s.n,
                    s.frames,
                    s.late,
                    json_num(s.p50_us),
                    json_num(s.p99_us),
                    json_num(s.max_late_ms),
                    json_num(s.cpu_load),
                    json_num(s.load_average)
                )
            })
            .collect();
        j.push_str(&steps.join(",\n"));
        j.push_str("\n  ],\n  \"details\": {\n");
        let details: BTreeMap<&str, &str> = self
            .details
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let details: Vec<String> = details
            .iter()
            .map(|(k, v)| format!("    {}: {}", json_str(k), json_str(v)))
            .collect();
        j.push_str(&details.join(",\n"));
        j.push_str("\n  },\n  \"errors\": [");
        let errors: Vec<String> = self.errors.iter().map(|e| json_str(e)).collect();
        j.push_str(&errors.join(", "));
        j.push_str("]\n}\n");
        j
    }
}

// ---------------------------------------------------------------------------------------------
// Driving one element

/// Entry and exit times of buffers in one element, from probes on its pads: wall time, and
/// (when `cpu` is set) the streaming thread's CPU time.
#[derive(Default)]
struct Timing {
    cpu: bool,
    entry: AtomicU64,
    entry_cpu: AtomicU64,
    exit: AtomicU64,
    record: AtomicBool,
    samples: Mutex<Vec<u64>>,
    cpu_samples: Mutex<Vec<u64>>,
}

impl Timing {
    fn attach(element: &gst::Element, cpu: bool) -> Arc<Timing> {
        let t = Arc::new(Timing {
            cpu,
            ..Default::default()
        });
        let entry = t.clone();
        element.static_pad("sink").expect("sink pad").add_probe(
            gst::PadProbeType::BUFFER,
            move |_, _| {
                if entry.cpu {
                    entry.entry_cpu.store(thread_cpu_ns(), Ordering::Relaxed);
                }
                // Wall clock read last on entry and first on exit: it excludes the CPU clock.
                entry.entry.store(now_ns(), Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            },
        );
        let exit = t.clone();
        element.static_pad("src").expect("src pad").add_probe(
            gst::PadProbeType::BUFFER,
            move |_, _| {
                let now = now_ns();
                exit.exit.store(now, Ordering::Relaxed);
                if exit.record.load(Ordering::Relaxed) {
                    let spent = now.saturating_sub(exit.entry.load(Ordering::Relaxed));
                    exit.samples.lock().unwrap().push(spent);
                    if exit.cpu {
                        let cpu =
                            thread_cpu_ns().saturating_sub(exit.entry_cpu.load(Ordering::Relaxed));
                        exit.cpu_samples.lock().unwrap().push(cpu);
                    }
                }
                gst::PadProbeReturn::Ok
            },
        );
        t
    }

    fn start_recording(&self) {
        self.samples.lock().unwrap().clear();
        self.cpu_samples.lock().unwrap().clear();
        self.record.store(true, Ordering::Relaxed);
    }

    /// Wall times, sorted.
    fn take_sorted(&self) -> Vec<u64> {
        self.record.store(false, Ordering::Relaxed);
        let mut s = std::mem::take(&mut *self.samples.lock().unwrap());
        s.sort_unstable();
        s
    }

    /// CPU times, sorted.
    fn take_cpu_sorted(&self) -> Vec<u64> {
        let mut s = std::mem::take(&mut *self.cpu_samples.lock().unwrap());
        s.sort_unstable();
        s
    }
}

/// Verdict messages an element posted: request id, status, when.
#[derive(Default)]
struct VerdictLog(Mutex<Vec<(u64, String, u64)>>);

impl VerdictLog {
    /// Gives `element` a bus of its own whose sync handler logs verdicts and drops every
    /// message (nothing else reads it, so nothing piles up).
    fn attach(element: &gst::Element) -> Arc<VerdictLog> {
        let log = Arc::new(VerdictLog::default());
        let l = log.clone();
        let bus = gst::Bus::new();
        bus.set_sync_handler(move |_, msg| {
            if let Some(s) = msg.structure()
                && s.name() == meta::MESSAGE_NAME
            {
                let id = s.get::<u64>("request-id").unwrap_or(0);
                let status = s.get::<String>("status").unwrap_or_default();
                l.0.lock().unwrap().push((id, status, now_ns()));
            }
            gst::BusSyncReply::Drop
        });
        element.set_bus(Some(&bus));
        log
    }

    fn entries(&self) -> Vec<(u64, String, u64)> {
        self.0.lock().unwrap().clone()
    }
}

/// One `iguardverify` in a Harness, fed copies of prepared frames.
struct Rig {
    harness: gst_check::Harness,
    element: gst::Element,
    timing: Arc<Timing>,
    verdicts: Arc<VerdictLog>,
    frames: Vec<gst::Buffer>,
    pushed: u64,
}

impl Rig {
    fn new(
        props: &[(&str, &str)],
        scorer: Option<Arc<dyn Scorer>>,
        frames: Vec<gst::Buffer>,
        caps: &gst::Caps,
    ) -> Result<Rig, String> {
        Self::with_timing(props, scorer, frames, caps, false)
    }

    /// `cpu`: also record the streaming thread's CPU time per buffer.
    fn with_timing(
        props: &[(&str, &str)],
        scorer: Option<Arc<dyn Scorer>>,
        frames: Vec<gst::Buffer>,
        caps: &gst::Caps,
        cpu: bool,
    ) -> Result<Rig, String> {
        let element = gst::ElementFactory::make("iguardverify")
            .build()
            .map_err(|e| format!("cannot make iguardverify: {e}"))?;
        for (name, value) in props {
            if element.find_property(name).is_none() {
                return Err(format!("iguardverify has no property {name}"));
            }
            element.set_property_from_str(name, value);
        }
        if let Some(s) = scorer {
            element
                .downcast_ref::<gstiguard::iguardverify::IGuardVerify>()
                .expect("an iguardverify")
                .set_scorer(Some(s));
        }
        let timing = Timing::attach(&element, cpu);
        let verdicts = VerdictLog::attach(&element);
        let mut harness = gst_check::Harness::with_element(&element, Some("sink"), Some("src"));
        harness.set_drop_buffers(true);
        harness.set_src_caps(caps.clone());
        Ok(Rig {
            harness,
            element,
            timing,
            verdicts,
            frames,
            pushed: 0,
        })
    }

    /// Pushes the next frame: a shallow copy (the pixels are shared, read-only, as a decoder's
    /// output would be after the detector) with its own timestamp.
    fn push(&mut self) -> Result<(), String> {
        let i = self.pushed as usize % self.frames.len();
        let mut buf = self.frames[i].copy();
        {
            let b = buf.get_mut().expect("a fresh copy is writable");
            b.set_pts(gst::ClockTime::from_nseconds(self.pushed * PERIOD_NS));
            b.set_duration(gst::ClockTime::from_nseconds(PERIOD_NS));
        }
        self.pushed += 1;
        self.harness
            .push(buf)
            .map(|_| ())
            .map_err(|e| format!("push refused: {e:?}"))
    }

    fn stat(&self, field: &str) -> u64 {
        let s = self.element.property::<gst::Structure>("stats");
        s.get::<u64>(field)
            .or_else(|_| s.get::<u32>(field).map(u64::from))
            .unwrap_or(0)
    }
}

/// A frame of `format` filled with noise, with a `person` ROI meta (confidence 0.9) if asked.
/// Endless cheap noise bytes (xorshift32) from `seed`.
fn noise(seed: u32) -> impl Iterator<Item = u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9) | 1;
    std::iter::repeat_with(move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        (x >> 24) as u8
    })
}

fn make_frame(
    format: gst_video::VideoFormat,
    width: u32,
    height: u32,
    seed: u32,
    person: Option<(u32, u32, u32, u32)>,
) -> (gst::Buffer, gst::Caps) {
    let info = gst_video::VideoInfo::builder(format, width, height)
        .fps(gst::Fraction::new(FPS as i32, 1))
        .build()
        .expect("video info");
    let mut buf = gst::Buffer::with_size(info.size()).expect("buffer");
    {
        let b = buf.get_mut().expect("writable");
        {
            let mut map = b.map_writable().expect("map");
            // Noise, so the resize does not see a flat image.
            for (byte, v) in map.iter_mut().zip(noise(seed)) {
                *byte = v;
            }
        }
        if let Some(rect) = person {
            let mut m = gst_video::VideoRegionOfInterestMeta::add(b, "person", rect);
            m.add_param(
                gst::Structure::builder("detection")
                    .field("confidence", 0.9f64)
                    .build(),
            );
        }
    }
    (buf, info.to_caps().expect("caps"))
}

/// A gate that holds calls until it is opened (or the call is cancelled).
#[derive(Default)]
struct Hold {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Hold {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }

    fn wait(&self, cancel: &Cancel) {
        let mut open = self.open.lock().unwrap();
        while !*open && !cancel.is_cancelled() {
            open = self
                .cv
                .wait_timeout(open, Duration::from_millis(5))
                .unwrap()
                .0;
        }
    }
}

/// Holds the first `hold` calls (one per worker) at a gate and answers them without scoring;
/// every later call goes to `inner`. The workers are then all busy while the benchmark fills
/// the queue, so every later call takes a full batch from a full queue.
struct HoldFirst {
    inner: Arc<dyn Scorer>,
    hold: u64,
    calls: AtomicU64,
    held: AtomicU64,
    gate: Hold,
}

impl Scorer for HoldFirst {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn is_model(&self) -> bool {
        self.inner.is_model()
    }

    fn max_batch(&self) -> usize {
        self.inner.max_batch()
    }

    fn score(&self, clips: &[&Clip], cancel: &Cancel) -> Result<Vec<Score>, ScoreError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.hold {
            self.held.fetch_add(1, Ordering::SeqCst);
            self.gate.wait(cancel);
            return Ok(clips
                .iter()
                .map(|_| Score {
                    score: 0.0,
                    label: "placeholder".into(),
                })
                .collect());
        }
        self.inner.score(clips, cancel)
    }
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            return Err(format!("timed out after {limit:?} waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Real-time sources

#[derive(Default)]
struct SourceRun {
    frames: u64,
    late: u64,
    max_late_ns: u64,
    element_ns: Vec<u64>,
    error: Option<String>,
}

/// Runs every rig as a live 30 fps source on its own thread for `secs`: frame f of source s
/// arrives at `start + s/N of a frame interval + f intervals` (cameras are not in step), and
/// is late when it leaves the element more than one frame interval after it arrived.
fn run_live(rigs: &mut [Rig], secs: f64) -> Vec<SourceRun> {
    let n = rigs.len() as u64;
    let frames = (secs * FPS as f64).round() as u64;
    for r in rigs.iter() {
        r.timing.start_recording();
    }
    // Time for every thread to start before its first frame is due.
    let start = now_ns() + 50_000_000 + n * 200_000;
    std::thread::scope(|scope| {
        let handles: Vec<_> = rigs
            .iter_mut()
            .enumerate()
            .map(|(i, rig)| {
                std::thread::Builder::new()
                    .name(format!("bench-src-{i}"))
                    .spawn_scoped(scope, move || {
                        let offset = i as u64 * PERIOD_NS / n;
                        let mut run = SourceRun::default();
                        for f in 0..frames {
                            let due = start + offset + f * PERIOD_NS;
                            sleep_until(due);
                            if let Err(e) = rig.push() {
                                run.error = Some(e);
                                break;
                            }
                            let lateness =
                                rig.timing.exit.load(Ordering::Relaxed).saturating_sub(due);
                            run.frames += 1;
                            run.max_late_ns = run.max_late_ns.max(lateness);
                            if lateness > PERIOD_NS {
                                run.late += 1;
                            }
                        }
                        run.element_ns = rig.timing.take_sorted();
                        run
                    })
                    .expect("spawn a source thread")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("source thread"))
            .collect()
    })
}

// ---------------------------------------------------------------------------------------------
// Phases

struct Opts {
    quick: bool,
    out: PathBuf,
    clip_model: PathBuf,
    sync_model: PathBuf,
    only: Option<Vec<String>>,
}

impl Opts {
    fn parse() -> Result<Opts, String> {
        let mut args = std::env::args().skip(1);
        let (mut quick, mut out, mut clip, mut sync, mut only) = (false, None, None, None, None);
        while let Some(a) = args.next() {
            let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
            match a.as_str() {
                "--quick" => quick = true,
                "--out" => out = Some(PathBuf::from(value("--out")?)),
                "--clip-model" => clip = Some(PathBuf::from(value("--clip-model")?)),
                "--sync-model" => sync = Some(PathBuf::from(value("--sync-model")?)),
                "--only" => {
                    only = Some(
                        value("--only")?
                            .split(',')
                            .map(|s| s.trim().to_string())
                            .collect(),
                    )
                }
                "-h" | "--help" => {
                    return Err("usage: bench [--quick] [--out PATH] [--clip-model PATH] \
                                [--sync-model PATH] \
                                [--only rss,frame,libyuv,objects,footage,streams,sync,clips]"
                        .into());
                }
                other => return Err(format!("unknown argument {other:?} (try --help)")),
            }
        }
        let model = |name: &str| PathBuf::from("models").join(name);
        Ok(Opts {
            quick,
            out: out.unwrap_or_else(|| {
                PathBuf::from(if quick {
                    "bench-results/bench-quick.json"
                } else {
                    "bench-results/bench.json"
                })
            }),
            // Quick: the tiny model for throughput, and `slow` (about as long per clip as
            // R3D-18 here, but loads in no time) for the sync/async comparison.
            clip_model: clip.unwrap_or_else(|| {
                model(if quick {
                    "tiny-action.onnx"
                } else {
                    "r3d18-action.onnx"
                })
            }),
            sync_model: sync.unwrap_or_else(|| {
                model(if quick {
                    "slow-action.onnx"
                } else {
                    "r3d18-action.onnx"
                })
            }),
            only,
        })
    }

    fn runs(&self, phase: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|p| p == phase))
    }
}

const MB: f64 = 1024.0 * 1024.0;

/// Figure 8: peak RSS while 64 sources trigger on every frame and no clip is ever scored.
fn phase_rss(opts: &Opts, rep: &mut Report) -> Result<(), String> {
    let secs = if opts.quick { 2.0 } else { 10.0 };
    let frames: Vec<(gst::Buffer, gst::Caps)> = (0..DISTINCT_FRAMES)
        .map(|i| make_frame(gst_video::VideoFormat::Rgba, WIDTH, HEIGHT, i, Some(PERSON)))
        .collect();
    let caps = frames[0].1.clone();
    let gate = Arc::new(Gate::default());
    let scorer: Arc<dyn Scorer> =
        Arc::new(FaultScorer::new(|_| Fault::None).with_gate(gate.clone()));
    let props = [
        ("cooldown", "0"),
        ("roi-margin", "0"),
        ("worker-timeout", "3600"),
        ("model-instance-id", "bench-rss"),
    ];
    let mut rigs = (0..STORM_SOURCES)
        .map(|s| {
            let f = (0..DISTINCT_FRAMES as usize)
                .map(|i| frames[(s + i) % frames.len()].0.clone())
                .collect();
            Rig::new(&props, Some(scorer.clone()), f, &caps)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let e = &rigs[0].element;
    let queue_size = e.property::<u32>("queue-size") as u64;
    let workers = e.property::<u32>("max-workers") as u64;
    let clip_bytes = e.property::<u32>("temporal-size") as u64
        * e.property::<u32>("input-width") as u64
        * e.property::<u32>("input-height") as u64
        * 3;

    let base = rss_bytes();
    let kernel_peak = reset_rss_high_water();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("bench-rss".into())
            .spawn(move || {
                let mut peak = 0;
                while !stop.load(Ordering::Relaxed) {
                    peak = peak.max(rss_bytes());
                    std::thread::sleep(Duration::from_millis(2));
                }
                peak
            })
            .map_err(|e| e.to_string())?
    };
    let runs = run_live(&mut rigs, secs);
    stop.store(true, Ordering::Relaxed);
    let sampled = sampler.join().map_err(|_| "RSS sampler panicked")?;
    let peak = if kernel_peak {
        sampled.max(rss_high_water_bytes())
    } else {
        sampled
    };
    if let Some(e) = runs.iter().find_map(|r| r.error.clone()) {
        return Err(format!("storm: {e}"));
    }
    let submitted: u64 = rigs.iter().map(|r| r.stat("submitted")).sum();
    let dropped: u64 = rigs.iter().map(|r| r.stat("dropped")).sum();
    let queue_depth = rigs[0].stat("queue-depth");
    let late: u64 = runs.iter().map(|r| r.late).sum();
    gate.open();
    drop(rigs);

    let bound = base + queue_size * clip_bytes;
    rep.fig("rss_base_mb", base as f64 / MB);
    rep.fig("rss_peak_mb", peak as f64 / MB);
    rep.fig("rss_bound_mb", bound as f64 / MB);
    rep.fig("rss_bound_ratio", peak as f64 / bound as f64);
    // What the element can hold at once: a full queue, a clip in every worker and one being
    // collected by every source.
    let held = queue_size + workers + STORM_SOURCES as u64;
    rep.fig("rss_expected_mb", (base + held * clip_bytes) as f64 / MB);
    rep.detail("rss_clip_bytes", clip_bytes);
    rep.detail(
        "rss_storm",
        format!(
            "{STORM_SOURCES} sources x 1080p RGBA at 30 fps for {secs} s, a person on every \
             frame, cooldown=0, one pool (model-instance-id) of {workers} workers held by a \
             scorer that never returns, queue-size={queue_size}: {submitted} clips started, \
             {dropped} dropped, queue depth {queue_depth} at the end, {late} late frames; peak \
             from {}",
            if kernel_peak {
                "VmHWM (reset before the storm) and 2 ms samples of VmRSS"
            } else {
                "2 ms samples of VmRSS"
            }
        ),
    );
    rep.detail(
        "rss_model",
        format!(
            "base + (queue-size {queue_size} + workers {workers} + collecting sources \
             {STORM_SOURCES}) x clip bytes"
        ),
    );
    Ok(())
}

/// Figures 1-3: element time per 1080p frame, idle, collecting and saturated, interleaved.
fn phase_frame(opts: &Opts, rep: &mut Report) -> Result<(), String> {
    use gst_video::VideoFormat::{Nv12, Rgba};
    let (warm, n) = if opts.quick { (100, 1500) } else { (200, 6000) };
    let collect = [("cooldown", "0"), ("roi-margin", "0")];
    let full = [("cooldown", "0"), ("roi-margin", "0"), ("crop", "full")];
    let saturate = [
        ("cooldown", "0"),
        ("roi-margin", "0"),
        ("queue-size", "2"),
        ("max-workers", "2"),
        ("worker-timeout", "3600"),
    ];
    let gate = Arc::new(Gate::default());
    let held: Arc<dyn Scorer> = Arc::new(FaultScorer::new(|_| Fault::None).with_gate(gate.clone()));
    let mut cases: Vec<(String, Rig)> = Vec::new();
    for (format, suffix) in [(Rgba, "rgba"), (Nv12, "nv12")] {
        let (plain, caps) = make_frame(format, WIDTH, HEIGHT, 1, None);
        let (person, _) = make_frame(format, WIDTH, HEIGHT, 2, Some(PERSON));
        let name = |case: &str| format!("{case}_{suffix}");
        let rig = |props: &[(&str, &str)], scorer: Option<Arc<dyn Scorer>>, frame: &gst::Buffer| {
            Rig::with_timing(props, scorer, vec![frame.clone()], &caps, true)
        };
        cases.push((name("idle"), rig(&[], None, &plain)?));
        cases.push((
            name("collect_person"),
            rig(&collect, sampling_scorer(), &person)?,
        ));
        cases.push((
            name("collect_full"),
            rig(&full, sampling_scorer(), &person)?,
        ));
        if format == Rgba {
            cases.push((
                "saturated".to_string(),
                rig(&saturate, Some(held.clone()), &person)?,
            ));
        }
    }
    for i in 0..warm + n {
        if i == warm {
            for (_, rig) in &cases {
                rig.timing.start_recording();
            }
        }
        for (_, rig) in cases.iter_mut() {
            rig.push()?;
        }
    }
    let (mut p99, mut cpu_p99) = (BTreeMap::new(), BTreeMap::new());
    for (name, rig) in &cases {
        let (kind, case) = match name.split_once('_') {
            Some(("idle", fmt)) => ("idle", fmt.to_string()),
            Some(("collect", rest)) => ("collect", rest.to_string()),
            _ => ("saturated", String::new()),
        };
        let fig = |clock: &str, p: &str| {
            if case.is_empty() {
                format!("frame_{clock}_{kind}_{p}")
            } else {
                format!("frame_{clock}_{kind}_{p}_{case}")
            }
        };
        let wall = rig.timing.take_sorted();
        let cpu = rig.timing.take_cpu_sorted();
        rep.fig(&fig("us", "p50"), percentile(&wall, 50.0) / 1e3);
        rep.fig(&fig("us", "p99"), percentile(&wall, 99.0) / 1e3);
        rep.fig(&fig("cpu_us", "p50"), percentile(&cpu, 50.0) / 1e3);
        rep.fig(&fig("cpu_us", "p99"), percentile(&cpu, 99.0) / 1e3);
        let mean = cpu.iter().sum::<u64>() as f64 / cpu.len().max(1) as f64;
        rep.fig(&fig("cpu_us", "mean"), mean / 1e3);
        p99.insert(name.as_str(), percentile(&wall, 99.0));
        cpu_p99.insert(name.as_str(), percentile(&cpu, 99.0));
    }
    let sat = &cases
        .iter()
        .find(|(n, _)| n == "saturated")
        .expect("saturated")
        .1;
    let (dropped, depth, active) = (
        sat.stat("dropped"),
        sat.stat("queue-depth"),
        sat.stat("workers-active"),
    );
    if dropped == 0 || depth < 2 {
        rep.errors.push(format!(
            "the saturated case did not saturate: dropped {dropped}, queue depth {depth}"
        ));
    }
    rep.fig(
        "ratio_saturated_vs_collect_p99",
        p99["saturated"] / p99["collect_person_rgba"],
    );
    rep.fig(
        "ratio_saturated_vs_collect_p99_cpu",
        cpu_p99["saturated"] / cpu_p99["collect_person_rgba"],
    );
    rep.detail(
        "frame",
        format!(
            "{n} frames per case after {warm} warm-up frames, 1920x1080, cases interleaved frame \
             by frame on one thread; person box {}x{} at ({}, {}) with roi-margin=0; \
             collecting cases have cooldown=0 so every frame is sampled into a 224x224 tile; \
             frame_us = wall time between the probes, frame_cpu_us = the streaming thread's \
             CPU time over the same span (wall minus preemption by other processes)",
            PERSON.2, PERSON.3, PERSON.0, PERSON.1
        ),
    );
    rep.detail(
        "frame_saturated",
        format!(
            "person RGBA, queue-size=2, 2 workers held by a gated FaultScorer: {dropped} clips \
             dropped by overflow, queue depth {depth}, {active} workers busy at the end"
        ),
    );
    gate.open();
    drop(cases);

    // The person case again, alone: the same frame back to back, so the crop's pixels stay in
    // the caches. Against the interleaved (cold) figure, it shows how much is memory traffic.
    let (person, caps) = make_frame(Rgba, WIDTH, HEIGHT, 2, Some(PERSON));
    let mut warm_rig = Rig::with_timing(&collect, sampling_scorer(), vec![person], &caps, true)?;
    for i in 0..warm + n / 2 {
        if i == warm {
            warm_rig.timing.start_recording();
        }
        warm_rig.push()?;
    }
    let wall = warm_rig.timing.take_sorted();
    let cpu = warm_rig.timing.take_cpu_sorted();
    rep.fig(
        "frame_us_collect_p50_person_rgba_cached",
        percentile(&wall, 50.0) / 1e3,
    );
    rep.fig(
        "frame_cpu_us_collect_p50_person_rgba_cached",
        percentile(&cpu, 50.0) / 1e3,
    );
    rep.fig(
        "frame_cpu_us_collect_p99_person_rgba_cached",
        percentile(&cpu, 99.0) / 1e3,
    );
    Ok(())
}

/// The sampler against libyuv (issue 24): `sampler_vs_libyuv_<case>` is the sampler's median
/// time per call over libyuv's; an error when the tiles differ by more than the bound.
fn phase_libyuv(opts: &Opts, rep: &mut Report) -> Result<(), String> {
    let lib = match vs_libyuv::open() {
        Ok(lib) => lib,
        Err(e) => {
            println!("{e}");
            rep.detail("libyuv", "not found: comparison skipped");
            return Ok(());
        }
    };
    let rows = vs_libyuv::run(&lib, if opts.quick { 150 } else { 1500 })?;
    let mut disagree = Vec::new();
    for r in &rows {
        let px = f64::from(r.pixels);
        rep.fig(
            &format!("sampler_vs_libyuv_{}", r.case),
            r.sampler_ns / r.libyuv_ns,
        );
        rep.fig(&format!("sampler_ns_per_px_{}", r.case), r.sampler_ns / px);
        rep.fig(&format!("libyuv_ns_per_px_{}", r.case), r.libyuv_ns / px);
        if let Some(ns) = r.libyuv_420_ns {
            rep.fig(&format!("libyuv_420tile_ns_per_px_{}", r.case), ns / px);
        }
        let [mr, mg, mb] = r.max_diff;
        let [ar, ag, ab] = r.mean_diff;
        let agreement = format!(
            "max {mr}/{mg}/{mb}, mean {ar:.2}/{ag:.2}/{ab:.2} (R/G/B; bound max {}, mean {})",
            r.bound, r.mean_bound
        );
        println!("sampler_libyuv_diff_{}: {agreement}", r.case);
        rep.fig(
            &format!("sampler_libyuv_max_diff_{}", r.case),
            f64::from(*r.max_diff.iter().max().unwrap_or(&0)),
        );
        rep.detail(&format!("sampler_libyuv_diff_{}", r.case), &agreement);
        if !r.agrees() {
            disagree.push(format!("{}: {agreement}", r.case));
        }
    }
    rep.detail("sampler_libyuv_bound", vs_libyuv::bounds());
    if disagree.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the sampler and libyuv disagree beyond {}: {}",
            vs_libyuv::bounds(),
            disagree.join("; ")
        ))
    }
}

/// Objects collecting at once in the per-object phase: 64 is the default per-buffer tile
/// budget (`max-tiles-per-buffer`) and `max-clips`, so every object still gets its tile.
const OBJECT_COUNTS: [usize; 4] = [1, 4, 16, 64];
/// The per-object phase's tile side (the shipped R3D-18-style models take 112² clips).
const OBJECT_TILE: u32 = 112;

/// `n` person boxes of 96 x 128 on an 8 x 8 grid over a 1080p frame (cells of 240 x 135), one
/// per tracked object.
fn object_boxes(n: usize) -> Vec<(u32, u32, u32, u32)> {
    (0..n as u32)
        .map(|i| (i % 8 * 240 + 72, i / 8 * 135 + 3, 96, 128))
        .collect()
}

/// `frame` with one `person` ROI meta per box, each with its own tracked `object_id`.
fn with_objects(frame: &gst::Buffer, boxes: &[(u32, u32, u32, u32)]) -> gst::Buffer {
    let mut buf = frame.copy();
    {
        let b = buf.get_mut().expect("a fresh copy is writable");
        for (id, rect) in boxes.iter().enumerate() {
            let mut m = gst_video::VideoRegionOfInterestMeta::add(b, "person", *rect);
            m.add_param(
                gst::Structure::builder("detection")
                    .field("confidence", 0.9f64)
                    .field("object_id", id as u64 + 1)
                    .build(),
            );
        }
    }
    buf
}

/// Streaming-thread cost per 1080p frame with 1, 4, 16 and 64 objects collecting at once
/// (clip-per=object, 112² tiles), RGBA and NV12, interleaved frame by frame, and its ratio to
/// N x the one-object cost of the same format.
fn phase_objects(opts: &Opts, rep: &mut Report) -> Result<(), String> {
    let (warm, n) = if opts.quick { (100, 1000) } else { (200, 4000) };
    let tile = OBJECT_TILE.to_string();
    let mut cases: Vec<(&str, usize, Rig)> = Vec::new();
    for (name, format) in [
        ("rgba", gst_video::VideoFormat::Rgba),
        ("nv12", gst_video::VideoFormat::Nv12),
    ] {
        let (plain, caps) = make_frame(format, WIDTH, HEIGHT, 3, None);
        for objects in OBJECT_COUNTS {
            let most = objects.to_string();
            // cooldown=0: an object's clip starts again on the frame after it completes, so
            // every frame samples a tile for every object. The queue is large enough that the
            // instant scorer keeps it from overflowing (an overflow is another path).
            // max-clips and max-tiles-per-buffer stay at their defaults (64): the 64-object
            // case is within the per-buffer budget.
            let props = [
                ("clip-per", "object"),
                ("tracking", "ids"),
                ("max-clips-per-source", most.as_str()),
                ("cooldown", "0"),
                ("roi-margin", "0"),
                ("input-width", tile.as_str()),
                ("input-height", tile.as_str()),
                ("queue-size", "10000"),
            ];
            let frame = with_objects(&plain, &object_boxes(objects));
            cases.push((
                name,
                objects,
                Rig::with_timing(&props, sampling_scorer(), vec![frame], &caps, true)?,
            ));
        }
    }
    for i in 0..warm + n {
        if i == warm {
            for (_, _, rig) in &cases {
                rig.timing.start_recording();
            }
        }
        for (_, _, rig) in cases.iter_mut() {
            rig.push()?;
        }
    }
    let mut one = (f64::NAN, f64::NAN, f64::NAN, f64::NAN);
    let mut seen = Vec::new();
    for (format, objects, rig) in &cases {
        let wall = rig.timing.take_sorted();
        let cpu = rig.timing.take_cpu_sorted();
        let p = (
            percentile(&wall, 50.0) / 1e3,
            percentile(&wall, 99.0) / 1e3,
            percentile(&cpu, 50.0) / 1e3,
            percentile(&cpu, 99.0) / 1e3,
        );
        if *objects == 1 {
            one = p;
        }
        let fig = |what: &str| format!("objects_{format}_{what}_n{objects}");
        rep.fig(&fig("frame_us_p50"), p.0);
        rep.fig(&fig("frame_us_p99"), p.1);
        rep.fig(&fig("frame_cpu_us_p50"), p.2);
        rep.fig(&fig("frame_cpu_us_p99"), p.3);
        let k = *objects as f64;
        rep.fig(&fig("ratio_p50"), p.0 / (k * one.0));
        rep.fig(&fig("ratio_p99"), p.1 / (k * one.1));
        rep.fig(&fig("ratio_cpu_p50"), p.2 / (k * one.2));
        rep.fig(&fig("ratio_cpu_p99"), p.3 / (k * one.3));
        let (most, overflowed, over_budget, dropped) = (
            rig.stat("clips-most-collecting"),
            rig.stat("clips-overflowed"),
            rig.stat("tiles-over-budget"),
            rig.stat("dropped"),
        );
        // A case that never had its N clips collecting at once, or ran past the per-buffer
        // tile budget, measured something else.
        if most < *objects as u64 || overflowed > 0 || over_budget > 0 {
            rep.errors.push(format!(
                "objects {format} n={objects}: at most {most} clips collected at once, \
                 {overflowed} triggers beyond max-clips-per-source, {over_budget} tiles over \
                 the per-buffer budget"
            ));
        }
        seen.push(format!(
            "{format} n={objects}: {} clips completed, {dropped} dropped, at most {most} \
             collecting",
            rig.stat("completed")
        ));
    }
    rep.detail(
        "objects",
        format!(
            "{n} frames per case after {warm} warm-up frames, 1920x1080 RGBA and NV12, cases \
             (N = {:?} per format) interleaved frame by frame on one thread; N person boxes of \
             96x128 on an 8x8 grid, each with its own object_id (tracking=ids), \
             clip-per=object, max-clips-per-source=N, cooldown=0 and roi-margin=0 so every \
             frame samples a {OBJECT_TILE}x{OBJECT_TILE} tile for each of the N objects \
             (max-tiles-per-buffer and max-clips at their default, 64); an instant scorer that \
             asks for pixels (as a model does); objects_<format>_ratio_* = the N-object figure \
             / (N x the 1-object figure of that format); {}",
            OBJECT_COUNTS,
            seen.join("; ")
        ),
    );
    Ok(())
}

/// A scorer that answers at once but, like a model, asks for the clips' pixels, so the
/// streaming thread samples every tile (the label-based fallback needs none and samples none).
fn sampling_scorer() -> Option<Arc<dyn Scorer>> {
    Some(Arc::new(FaultScorer::new(|_| Fault::None)))
}

/// The footage's video and HOG detections, from the environment footage.mk exports or from
/// their place under `.cache/footage/`.
fn footage_paths() -> Result<(PathBuf, PathBuf), String> {
    let dir = PathBuf::from(".cache/footage");
    let path = |var: &str, name: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| dir.join(name))
    };
    let video = path("IGUARD_FOOTAGE_VIDEO", "vtest.avi");
    let dets = path("IGUARD_FOOTAGE_DETECTIONS", "vtest-hog.txt");
    for p in [&video, &dets] {
        if !p.is_file() {
            return Err(format!("no footage at {} (make footage)", p.display()));
        }
    }
    Ok((video, dets))
}

/// Person boxes (x, y, width, height) and their confidence, by frame number (1-based).
type DetectionsByFrame = BTreeMap<u64, Vec<((u32, u32, u32, u32), f64)>>;

/// The HOG detections by frame number (1-based, MOTChallenge lines
/// `frame,id,x,y,w,h,confidence,...`): box and confidence.
fn read_detections(path: &Path) -> Result<DetectionsByFrame, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = DetectionsByFrame::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<f64> = line
            .split(',')
            .map(|v| v.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{} line {}: {line:?}: {e}", path.display(), n + 1))?;
        if f.len() < 7 || f[..7].iter().any(|v| !v.is_finite()) {
            return Err(format!(
                "{} line {}: {line:?} is not frame,id,x,y,w,h,confidence",
                path.display(),
                n + 1
            ));
        }
        let px = |v: f64| v.max(0.0) as u32;
        out.entry(f[0] as u64)
            .or_default()
            .push(((px(f[2]), px(f[3]), px(f[4]), px(f[5])), f[6]));
    }
    Ok(out)
}

/// Decodes up to `max` frames of `video` into RGBA buffers in memory (deep copies, so no
/// decoder pool is held), with their caps.
fn decode_footage(video: &Path, max: usize) -> Result<(Vec<gst::Buffer>, gst::Caps), String> {
    let desc = format!(
        "filesrc location=\"{}\" ! decodebin ! videoconvert ! video/x-raw,format=RGBA \
         ! fakesink name=sink sync=false",
        video.display()
    );
    let pipeline = gst::parse::launch(&desc)
        .map_err(|e| format!("{desc}: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())?;
    let frames = Arc::new(Mutex::new((Vec::new(), None::<gst::Caps>)));
    {
        let frames = frames.clone();
        let sink = pipeline.by_name("sink").ok_or("no sink")?;
        sink.static_pad("sink").ok_or("no sink pad")?.add_probe(
            gst::PadProbeType::BUFFER,
            move |pad, info| {
                if let Some(buf) = info.buffer() {
                    let mut f = frames.lock().unwrap();
                    if f.0.len() < max {
                        f.0.push(buf.copy_deep().unwrap_or_else(|_| buf.copy()));
                        if f.1.is_none() {
                            f.1 = pad.current_caps();
                        }
                    }
                }
                gst::PadProbeReturn::Ok
            },
        );
    }
    let bus = pipeline.bus().ok_or("no bus")?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| format!("cannot decode {}: {e}", video.display()))?;
    let mut error = None;
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(300)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                error = Some(format!("decoding {}: {}", video.display(), e.error()));
                break;
            }
            _ => (),
        }
        if frames.lock().unwrap().0.len() >= max {
            break;
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    if let Some(e) = error {
        return Err(e);
    }
    let (bufs, caps) = std::mem::take(&mut *frames.lock().unwrap());
    match caps {
        Some(caps) if !bufs.is_empty() => Ok((bufs, caps)),
        _ => Err(format!("{} decoded to no frame", video.display())),
    }
}

/// Per-frame cost on real footage (vtest.avi with its HOG person detections, decoded into
/// memory first), clip-per=object against clip-per=source, interleaved frame by frame.
fn phase_footage(opts: &Opts, rep: &mut Report) -> Result<(), String> {
    let (video, dets) = footage_paths()?;
    let detections = read_detections(&dets)?;
    // RGBA at 768x576 is 1.7 MB a frame: the quick run takes the first 300 frames, the full
    // run all 795 (1.4 GB).
    let max = if opts.quick { 300 } else { usize::MAX };
    let (decoded, caps) = decode_footage(&video, max)?;
    let frames: Vec<gst::Buffer> = decoded
        .iter()
        .enumerate()
        .map(|(i, frame)| {
            let mut buf = frame.copy();
            let b = buf.get_mut().expect("a fresh copy is writable");
            for (rect, confidence) in detections.get(&(i as u64 + 1)).into_iter().flatten() {
                let mut m = gst_video::VideoRegionOfInterestMeta::add(b, "person", *rect);
                m.add_param(
                    gst::Structure::builder("detection")
                        .field("confidence", *confidence)
                        .build(),
                );
            }
            buf
        })
        .collect();
    drop(decoded);
    let boxes: usize = frames
        .iter()
        .map(|f| {
            f.iter_meta::<gst_video::VideoRegionOfInterestMeta>()
                .count()
        })
        .sum();
    // The element's defaults otherwise (cooldown, max-clips-per-source, tracking=auto: the
    // built-in association, as HOG gives no ids), with an instant scorer that asks for pixels.
    let mut cases: Vec<(&str, Rig)> = Vec::new();
    for per in ["object", "source"] {
        let props = [("clip-per", per)];
        cases.push((
            per,
            Rig::with_timing(&props, sampling_scorer(), frames.clone(), &caps, true)?,
        ));
    }
    for (_, rig) in &cases {
        rig.timing.start_recording();
    }
    for _ in 0..frames.len() {
        for (_, rig) in cases.iter_mut() {
            rig.push()?;
        }
    }
    let mut seen = Vec::new();
    for (per, rig) in &cases {
        let wall = rig.timing.take_sorted();
        let cpu = rig.timing.take_cpu_sorted();
        let fig = |what: &str| format!("footage_{what}_{per}");
        rep.fig(&fig("frame_us_p50"), percentile(&wall, 50.0) / 1e3);
        rep.fig(&fig("frame_us_p99"), percentile(&wall, 99.0) / 1e3);
        rep.fig(&fig("frame_cpu_us_p50"), percentile(&cpu, 50.0) / 1e3);
        rep.fig(&fig("frame_cpu_us_p99"), percentile(&cpu, 99.0) / 1e3);
        let mean = cpu.iter().sum::<u64>() as f64 / cpu.len().max(1) as f64;
        rep.fig(&fig("frame_cpu_us_mean"), mean / 1e3);
        rep.fig(&fig("clips_submitted"), rig.stat("submitted") as f64);
        rep.fig(
            &fig("most_collecting"),
            rig.stat("clips-most-collecting") as f64,
        );
        seen.push(format!(
            "clip-per={per}: {} clips started, {} dropped, {} triggers beyond \
             max-clips-per-source",
            rig.stat("submitted"),
            rig.stat("dropped"),
            rig.stat("clips-overflowed")
        ));
    }
    rep.detail(
        "footage",
        format!(
            "{} frames of {} ({}) decoded into RGBA in memory before timing, {boxes} HOG person \
             boxes from {} as ROI metas without ids (tracking=auto: the built-in association); \
             element defaults otherwise (cooldown, max-clips-per-source, 224x224 tiles), \
             an instant scorer that asks for pixels (tiles sampled); the two cases interleaved frame by frame on one \
             thread, every frame pushed once; {}",
            frames.len(),
            video.display(),
            caps,
            dets.display(),
            seen.join("; ")
        ),
    );
    Ok(())
}
#[derive(Debug, Clone)]
struct StreamStep {
    n: usize,
    frames: u64,
    late: u64,
    p50_us: f64,
    p99_us: f64,
    max_late_ms: f64,
    cpu_load: f64,
    load_average: f64,
}

/// Figure 7: the largest N of real-time 1080p30 sources the element keeps up with.
fn phase_streams(opts: &Opts, rep: &mut Report) -> Result<(), String> {
    let (secs, max_n) = if opts.quick { (1.0, 256) } else { (4.0, 512) };
    let frames: Vec<(gst::Buffer, gst::Caps)> = (0..DISTINCT_FRAMES)
        .map(|i| make_frame(gst_video::VideoFormat::Rgba, WIDTH, HEIGHT, i, Some(PERSON)))
        .collect();
    let caps = frames[0].1.clone();
    let mut best = 0usize;
    let mut first_failing = f64::NAN;
    let mut n = 1usize;
    while n <= max_n {
        let id = format!("bench-streams-{n}");
        let props = [
            ("cooldown", "0"),
            ("roi-margin", "0"),
            ("model-instance-id", id.as_str()),
        ];
        let mut rigs = (0..n)
            .map(|s| {
                let f = (0..DISTINCT_FRAMES as usize)
                    .map(|i| frames[(s + i) % frames.len()].0.clone())
                    .collect();
                // A scorer that asks for pixels: the label-based fallback would let the
                // element skip sampling, and this phase would time bookkeeping only.
                Rig::new(&props, sampling_scorer(), f, &caps)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (cpu0, wall0) = (cpu_time_ns(), now_ns());
        let runs = run_live(&mut rigs, secs);
        let (cpu, wall) = (cpu_time_ns() - cpu0, now_ns() - wall0);
        drop(rigs);
        if let Some(e) = runs.iter().find_map(|r| r.error.clone()) {
            return Err(format!("{n} streams: {e}"));
        }
        let mut all: Vec<u64> = runs
            .iter()
            .flat_map(|r| r.element_ns.iter().copied())
            .collect();
        all.sort_unstable();
        let step = StreamStep {
            n,
            frames: runs.iter().map(|r| r.frames).sum(),
            late: runs.iter().map(|r| r.late).sum(),
            p50_us: percentile(&all, 50.0) / 1e3,
            p99_us: percentile(&all, 99.0) / 1e3,
            max_late_ms: runs.iter().map(|r| r.max_late_ns).max().unwrap_or(0) as f64 / 1e6,
            cpu_load: cpu as f64 / (wall as f64 * cores() as f64),
            load_average: load_average().parse().unwrap_or(f64::NAN),
        };
        eprintln!("  streams {n}: {step:?}");
        let ok = step.late == 0;
        rep.streams.push(step);
        if !ok {
            first_failing = n as f64;
            break;
        }
        best = n;
        n *= 2;
    }
    rep.fig("streams_sustained", best as f64);
    rep.fig("streams_first_failing", first_failing);
    if let Some(mean) = rep.get("frame_cpu_us_collect_mean_person_rgba") {
        // The cost model: the cores' time divided by one source's element CPU time per second.
        rep.fig(
            "streams_by_cost",
            (cores() as f64 * 1e6 / (mean * FPS as f64)).floor(),
        );
    }
    rep.detail(
        "streams",
        format!(
            "N = 1, 2, 4 ... {max_n} live 1080p30 RGBA sources, {secs} s each, one thread and one \
             element per source (the ROI-meta path carries one source per buffer), all \
             sharing one pool (model-instance-id) and an instant scorer that asks for pixels \
             (element cost only: no model, no decode); a person on every frame, cooldown=0 \
             (every frame sampled); late = leaves the element more than 1/30 s after it was due; \
             streams_by_cost = cores / (30 x mean element CPU time per collected \
             frame from the frame phase)"
        ),
    );
    Ok(())
}

/// Figure 4: a live pipeline with a real model, async=false against async=true.
fn phase_sync(opts: &Opts, rep: &mut Report) -> Result<(), String> {
    let secs = if opts.quick { 4.0 } else { 20.0 };
    let model = &opts.sync_model;
    if !model.is_file() {
        return Err(format!("model {model:?} is missing (make models)"));
    }
    // A person on every frame of the run (and some to spare).
    let dets = std::env::temp_dir().join(format!("iguard-bench-{}.txt", std::process::id()));
    let mut text = String::new();
    for f in 1..=(secs as u64 + 10) * FPS {
        let (x, y, w, h) = PERSON;
        let _ = writeln!(text, "{f},-1,{x},{y},{w},{h},0.9,1");
    }
    std::fs::write(&dets, text).map_err(|e| format!("{dets:?}: {e}"))?;
    let result = (|| {
        // The baseline has no model (label-based fallback): what this machine's load alone does
        // to the same pipeline.
        let m = Some(model.as_path());
        let runs = [
            ("baseline", None, true, 10),
            ("async_false", m, false, 10),
            ("async_true", m, true, 10),
            ("async_true_nice0", m, true, 0),
        ];
        for (tag, model, async_, nice) in runs {
            let r = live_pipeline(model, &dets, async_, nice, secs)?;
            rep.fig(&format!("frames_{tag}"), r.frames as f64);
            rep.fig(&format!("late_frames_{tag}"), r.late as f64);
            rep.fig(&format!("dropped_frames_{tag}"), r.dropped as f64);
            rep.fig(&format!("max_lateness_ms_{tag}"), r.max_late_ms);
            rep.fig(&format!("clips_verified_{tag}"), r.clips as f64);
        }
        Ok::<_, String>(())
    })();
    let _ = std::fs::remove_file(&dets);
    result?;
    rep.detail(
        "sync",
        format!(
            "videotestsrc is-live=true 1920x1080 RGBA 30 fps ! iguardreplay (a person on every \
             frame) ! iguardverify model-path={} (defaults: 2 workers, cooldown 30) ! fakesink \
             sync=true qos=true max-lateness=20 ms, {secs} s per mode; late = reached the sink \
             after its render time (running time + pipeline latency), by a probe on the sink \
             pad; dropped = the sink's stats (more than 20 ms late); baseline = the same \
             pipeline with model-type=fallback (no inference), async=true; worker threads at \
             the default worker-nice=10, except async_true_nice0 (worker-nice=0: inference \
             competes with the streaming thread on equal terms)",
            model.display()
        ),
    );
    Ok(())
}

struct LiveRun {
    frames: u64,
    late: u64,
    dropped: u64,
    max_late_ms: f64,
    clips: u64,
}

fn live_pipeline(
    model: Option<&Path>,
    dets: &Path,
    async_: bool,
    worker_nice: i32,
    secs: f64,
) -> Result<LiveRun, String> {
    let (x, y) = (WIDTH, HEIGHT);
    let scorer = match model {
        Some(m) => format!("model-path=\"{}\"", m.display()),
        None => "model-type=fallback".into(),
    };
    let desc = format!(
        "videotestsrc is-live=true pattern=ball \
         ! video/x-raw,format=RGBA,width={x},height={y},framerate={FPS}/1 \
         ! iguardreplay location=\"{}\" class-labels=1=person \
         ! iguardverify name=verify {scorer} async={async_} worker-nice={worker_nice} \
         ! fakesink name=sink sync=true qos=true max-lateness=20000000",
        dets.display(),
    );
    let pipeline = gst::parse::launch(&desc)
        .map_err(|e| format!("{desc}: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())?;
    let sink = pipeline.by_name("sink").ok_or("no sink")?;
    let verify = pipeline.by_name("verify").ok_or("no verify")?;
    let counts = Arc::new(Mutex::new((0u64, 0u64, 0i64)));
    {
        let counts = counts.clone();
        let weak = sink.downgrade();
        sink.static_pad("sink").ok_or("no sink pad")?.add_probe(
            gst::PadProbeType::BUFFER,
            move |pad, info| {
                let (Some(sink), Some(buf)) = (weak.upgrade(), info.buffer()) else {
                    return gst::PadProbeReturn::Ok;
                };
                let Some(sink) = sink.downcast_ref::<gst_base::BaseSink>() else {
                    return gst::PadProbeReturn::Ok;
                };
                let (Some(clock), Some(base), Some(pts)) =
                    (sink.clock(), sink.base_time(), buf.pts())
                else {
                    return gst::PadProbeReturn::Ok;
                };
                let running = pad
                    .sticky_event::<gst::event::Segment>(0)
                    .and_then(|e| {
                        e.segment()
                            .downcast_ref::<gst::ClockTime>()
                            .and_then(|s| s.to_running_time(pts))
                    })
                    .unwrap_or(pts);
                let now = clock.time().saturating_sub(base);
                let due = running + sink.latency();
                let lateness = now.nseconds() as i64 - due.nseconds() as i64;
                let mut c = counts.lock().unwrap();
                c.0 += 1;
                if lateness > 0 {
                    c.1 += 1;
                }
                c.2 = c.2.max(lateness);
                gst::PadProbeReturn::Ok
            },
        );
    }
    let bus = pipeline.bus().ok_or("no bus")?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| format!("cannot start the pipeline: {e}"))?;
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut error = None;
    while Instant::now() < end && error.is_none() {
        let left = end.saturating_duration_since(Instant::now());
        if let Some(msg) = bus.timed_pop(gst::ClockTime::from_nseconds(
            left.min(Duration::from_millis(50)).as_nanos() as u64,
        )) && let gst::MessageView::Error(e) = msg.view()
        {
            error = Some(format!("{}: {:?}", e.error(), e.debug()));
        }
    }
    let stats = sink.property::<gst::Structure>("stats");
    let dropped = stats.get::<u64>("dropped").unwrap_or(0);
    let clips = {
        let s = verify.property::<gst::Structure>("stats");
        s.get::<u64>("completed").unwrap_or(0)
    };
    let (frames, late, max_late) = *counts.lock().unwrap();
    let _ = pipeline.set_state(gst::State::Null);
    if let Some(e) = error {
        return Err(e);
    }
    Ok(LiveRun {
        frames,
        late,
        dropped,
        max_late_ms: max_late.max(0) as f64 / 1e6,
        clips,
    })
}

fn test_clip(id: u64, t: u32, h: u32, w: u32) -> Clip {
    let pixels = noise(id as u32).take((t * h * w * 3) as usize).collect();
    Clip {
        request_id: id,
        source: SourceFrame::default(),
        width: w,
        height: h,
        frames: t,
        real_frames: t,
        pixels,
        frame_labels: gstiguard::clip::FrameLabels::empty(t as usize),
        region: PixelRect::full(w, h),
        trigger_label: "person".into(),
        trigger_confidence: 0.9,
        start_pts: None,
        end_pts: None,
    }
}

fn clip_dims(s: &OnnxScorer) -> (u32, u32, u32) {
    let i = s.info();
    (
        i.frames.unwrap_or(16),
        i.height.unwrap_or(112),
        i.width.unwrap_or(112),
    )
}

/// How the pool runs the model in one throughput mode: `workers` workers, each with its own
/// session of `threads` intra-op threads, scoring calls of `batch` clips.
#[derive(Clone, Copy)]
struct Mode {
    workers: usize,
    batch: usize,
    threads: usize,
}

impl Mode {
    /// The element's defaults for `workers`: the cores shared out between the workers.
    fn of(workers: usize, batch: usize) -> Mode {
        Mode {
            workers,
            batch,
            threads: (cores() / workers).max(1),
        }
    }
}

/// Wall and CPU seconds of scoring calls made the way a pool worker makes them: a session
/// loaded as the element loads one for `mode`, called with a full batch of `mode.batch` clips
/// on a fresh thread at the workers' nice value, after `warm` calls that are not timed.
fn direct_calls(
    model: &Path,
    mode: Mode,
    nice: i32,
    warm: usize,
    runs: usize,
) -> Result<Vec<(f64, f64)>, String> {
    let model = model.to_path_buf();
    std::thread::Builder::new()
        .name("bench-direct".into())
        .spawn(move || {
            // SAFETY: as the pool does for its workers: setpriority on this thread's id only.
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice);
            }
            let scorer = OnnxScorer::load(OnnxConfig {
                model_path: model,
                threads: mode.threads,
                sessions: 1,
                max_batch: mode.batch,
                ..Default::default()
            })
            .map_err(|e| e.to_string())?;
            let (t, h, w) = clip_dims(&scorer);
            let clips: Vec<Clip> = (1..=mode.batch as u64)
                .map(|i| test_clip(i, t, h, w))
                .collect();
            let batch: Vec<&Clip> = clips.iter().collect();
            let cancel = Cancel::new();
            let mut times = Vec::with_capacity(runs);
            for i in 0..warm + runs {
                let (t0, c0) = (Instant::now(), thread_cpu_ns());
                scorer.score(&batch, &cancel).map_err(|e| e.to_string())?;
                // With one intra-op thread the model runs on this thread: its CPU time is the
                // call's. With more, it is only this thread's share.
                let cpu = thread_cpu_ns().saturating_sub(c0) as f64 / 1e9;
                if i >= warm {
                    times.push((t0.elapsed().as_secs_f64(), cpu));
                }
            }
            Ok(times)
        })
        .map_err(|e| format!("cannot start the timing thread: {e}"))?
        .join()
        .map_err(|_| "the timing thread panicked".to_string())?
}

/// Figures 5-6: the compute limit of each mode, timed directly the way the pool runs the model,
/// then the element's clips/s in that mode.
fn phase_clips(opts: &Opts, rep: &mut Report) -> Result<(), String> {
    let model = &opts.clip_model;
    if !model.is_file() {
        return Err(format!("model {model:?} is missing (make models)"));
    }
    // Direct runs are split before and after the element runs, so the compute limit reflects
    // the machine over the same period.
    let (runs, warm, k1, k2): (usize, usize, u64, u64) = if opts.quick {
        (16, 3, 192, 192)
    } else {
        (2, 1, 8, 16)
    };
    let nice = gst::ElementFactory::make("iguardverify")
        .build()
        .map_err(|e| format!("cannot make iguardverify: {e}"))?
        .property::<i32>("worker-nice");
    let (one, two, batched) = (Mode::of(1, 1), Mode::of(2, 1), Mode::of(2, 4));
    let modes = [one, two, batched];
    // Batches of 4 take four times as long: fewer of them.
    let runs_of = |m: &Mode| if m.batch > 1 { runs.div_ceil(4) } else { runs };
    let mut direct: Vec<Vec<(f64, f64)>> = vec![Vec::new(); modes.len()];
    let measure = |direct: &mut [Vec<(f64, f64)>]| -> Result<(), String> {
        for (m, times) in modes.iter().zip(direct.iter_mut()) {
            times.extend(direct_calls(model, *m, nice, warm, runs_of(m))?);
        }
        Ok(())
    };
    measure(&mut direct)?;
    let one_worker = element_throughput(model, one.workers, one.batch, k1)?;
    let two_workers = element_throughput(model, two.workers, two.batch, k2)?;
    let batched_run = element_throughput(model, batched.workers, batched.batch, k2)?;
    measure(&mut direct)?;

    let wall = |i: usize| median(&direct[i].iter().map(|t| t.0).collect::<Vec<_>>());
    let (call_one, call_two, call_batched) = (wall(0), wall(1), wall(2));
    let single_cpu = median(&direct[1].iter().map(|t| t.1).collect::<Vec<_>>());
    // The most a mode can do: every worker scoring full batches back to back, in parallel,
    // each call as fast as alone.
    let limit = |m: &Mode, call_s: f64| (m.workers * m.batch) as f64 / call_s;
    let (limit_one, limit_two, limit_batched) = (
        limit(&one, call_one),
        limit(&two, call_two),
        limit(&batched, call_batched),
    );
    rep.fig("single_clip_ms", call_two * 1e3);
    rep.fig("single_clip_cpu_ms", single_cpu * 1e3);
    rep.fig("single_clip_ms_1_worker", call_one * 1e3);
    rep.fig("compute_limit_clips_per_s", limit_two);
    rep.fig("compute_limit_clips_per_s_1_worker", limit_one);
    rep.fig("compute_limit_clips_per_s_batch4", limit_batched);
    rep.fig("clips_per_s_1_worker", one_worker.clips_per_s);
    rep.fig("clips_per_s_2_workers", two_workers.clips_per_s);
    rep.fig(
        "ratio_to_compute_limit",
        two_workers.clips_per_s / limit_two,
    );
    rep.fig(
        "ratio_to_compute_limit_1_worker",
        one_worker.clips_per_s / limit_one,
    );
    rep.fig(
        "ratio_to_compute_limit_batch4",
        batched_run.clips_per_s / limit_batched,
    );
    // Against the CPU the runs actually got: 1.0 = the pool costs nothing beyond the model.
    rep.fig("cores_used_1_worker", one_worker.cores_used);
    rep.fig("cores_used_2_workers", two_workers.cores_used);
    rep.fig(
        "cpu_per_clip_vs_single_2_workers",
        two_workers.cpu_s_per_clip / single_cpu,
    );
    rep.fig(
        "cpu_per_clip_vs_single_1_worker",
        one_worker.cpu_s_per_clip / single_cpu,
    );
    rep.fig("clips_per_s_2_workers_batch4", batched_run.clips_per_s);
    rep.fig(
        "batch4_vs_batch1",
        batched_run.clips_per_s / two_workers.clips_per_s,
    );
    rep.fig("batch4_vs_batch1_model", 4.0 * call_two / call_batched);
    rep.detail(
        "clips",
        format!(
            "model {}; compute limit of each mode = workers x batch / one call, the call timed \
             the way a worker makes it: an OnnxScorer session with cores/workers intra-op \
             threads (1 worker: {} threads; 2 workers: {} each), a full batch (1, or 4 for \
             batch-size=4), on its own thread at the element's worker-nice ({nice}), after {warm} \
             untimed calls; median of {} calls (batch 4: {}), half before and half after the \
             element runs. single_clip_ms = one call of the 2-worker mode. Element: ONNX scorer \
             with one session per worker and the same threads, queue filled with {k1} (1 worker) \
             or {k2} (2 workers) clips while every worker is held, clips/s = clips / (last \
             verdict - release); cores_used = process CPU time / wall over that span, \
             cpu_per_clip_vs_single = process CPU time per clip / single clip CPU time; \
             batch4_vs_batch1 = element clips/s with batch-size=4 / batch-size=1, \
             batch4_vs_batch1_model = the same measured directly on one session",
            model.display(),
            one.threads,
            two.threads,
            2 * runs,
            2 * runs.div_ceil(4),
        ),
    );
    Ok(())
}

/// What one element throughput run measured.
struct Throughput {
    clips_per_s: f64,
    /// CPU time this process used per clip while the clips were scored.
    cpu_s_per_clip: f64,
    /// CPU time used / wall time over the same span: the cores the run actually got.
    cores_used: f64,
}

/// Clips per second of an element whose queue holds `k` clips when its workers start.
fn element_throughput(
    model: &Path,
    workers: usize,
    batch: usize,
    k: u64,
) -> Result<Throughput, String> {
    let threads = Mode::of(workers, batch).threads;
    let inner = OnnxScorer::load(OnnxConfig {
        model_path: model.to_path_buf(),
        threads,
        sessions: workers,
        max_batch: batch,
        ..Default::default()
    })
    .map_err(|e| e.to_string())?;
    let (t, h, w) = clip_dims(&inner);
    let scorer = Arc::new(HoldFirst {
        inner: Arc::new(inner),
        hold: workers as u64,
        calls: AtomicU64::new(0),
        held: AtomicU64::new(0),
        gate: Hold::default(),
    });
    let (frame, caps) = make_frame(
        gst_video::VideoFormat::Rgba,
        320,
        240,
        7,
        Some((40, 20, 120, 200)),
    );
    let (ts, ws, hs, queue) = (
        t.to_string(),
        w.to_string(),
        h.to_string(),
        (k + workers as u64).to_string(),
    );
    let (workers_s, batch_s) = (workers.to_string(), batch.to_string());
    let props = [
        ("max-workers", workers_s.as_str()),
        ("batch-size", batch_s.as_str()),
        ("queue-size", queue.as_str()),
        ("temporal-size", ts.as_str()),
        ("input-width", ws.as_str()),
        ("input-height", hs.as_str()),
        ("crop", "full"),
        ("cooldown", "0"),
        ("worker-timeout", "3600"),
    ];
    let mut rig = Rig::new(&props, Some(scorer.clone()), vec![frame], &caps)?;
    // One clip at a time, each taken before the next is made: with batch-size > 1 a worker
    // that wakes late would take two clips in one batch and leave another worker without any.
    for held in 1..=workers as u64 {
        for _ in 0..t {
            rig.push()?;
        }
        wait_until(
            "every worker to hold a clip",
            Duration::from_secs(30),
            || scorer.held.load(Ordering::SeqCst) >= held,
        )?;
    }
    for _ in 0..k * t as u64 {
        rig.push()?;
    }
    wait_until("the queue to fill", Duration::from_secs(30), || {
        rig.stat("queue-depth") >= k
    })?;
    let (released, cpu0) = (now_ns(), cpu_time_ns());
    scorer.gate.open();
    let placeholders = workers as u64;
    let limit = Duration::from_secs(600);
    wait_until("every verdict", limit, || {
        rig.verdicts
            .entries()
            .iter()
            .filter(|(id, _, _)| *id > placeholders)
            .count() as u64
            >= k
    })?;
    let cpu = cpu_time_ns() - cpu0;
    let real: Vec<_> = rig
        .verdicts
        .entries()
        .into_iter()
        .filter(|(id, _, _)| *id > placeholders)
        .collect();
    if let Some((id, status, _)) = real
        .iter()
        .find(|(_, s, _)| s != "verified" && s != "rejected")
    {
        return Err(format!("clip {id} ended {status}, not scored"));
    }
    let last = real.iter().map(|(_, _, t)| *t).max().unwrap_or(released);
    let wall = (last - released) as f64 / 1e9;
    Ok(Throughput {
        clips_per_s: k as f64 / wall,
        cpu_s_per_clip: cpu as f64 / 1e9 / k as f64,
        // The CPU clock was read a polling interval after the last verdict: use the same span.
        cores_used: cpu as f64 / 1e9 / ((now_ns() - released) as f64 / 1e9),
    })
}

fn main() -> ExitCode {
    let opts = match Opts::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = clock::start_gstreamer() {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    let started = Instant::now();
    let mut rep = Report::default();
    rep.detail("load_average_start", load_average());
    rep.detail("machine", clock::machine());
    type Phase = fn(&Opts, &mut Report) -> Result<(), String>;
    let phases: [(&str, Phase); 8] = [
        ("rss", phase_rss),
        ("frame", phase_frame),
        ("libyuv", phase_libyuv),
        ("objects", phase_objects),
        ("footage", phase_footage),
        ("streams", phase_streams),
        ("sync", phase_sync),
        ("clips", phase_clips),
    ];
    for (name, phase) in phases {
        if !opts.runs(name) {
            continue;
        }
        let t0 = Instant::now();
        eprintln!("== {name}");
        if let Err(e) = phase(&opts, &mut rep) {
            eprintln!("{name}: {e}");
            rep.errors.push(format!("{name}: {e}"));
        }
        rep.detail(
            &format!("phase_s_{name}"),
            format!("{:.1}", t0.elapsed().as_secs_f64()),
        );
    }
    let wall = started.elapsed().as_secs_f64();
    rep.detail("load_average_end", load_average());
    rep.print_table();
    println!("wall time: {wall:.1} s");
    if let Some(dir) = opts.out.parent()
        && !dir.as_os_str().is_empty()
    {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(&opts.out, rep.json(&opts, wall)) {
        Ok(()) => println!("written: {}", opts.out.display()),
        Err(e) => {
            eprintln!("cannot write {}: {e}", opts.out.display());
            return ExitCode::FAILURE;
        }
    }
    if rep.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
