// SPDX-License-Identifier: MIT OR Apache-2.0
//! What one frame costs the streaming thread of `iguardverify` (issue 19, items 1 and 12),
//! through the real element in a `gst_check::Harness` (its pushes run `transform_ip` on this
//! thread):
//!
//! - **allocations per frame** in steady state, counted by a global allocator on the pushing
//!   thread only (the workers' allocations are theirs): no trigger (no detections; 4 `car`
//!   boxes), and 1 and 16 tracked people collecting clips. Only Rust's heap is counted: what
//!   GLib allocates (metas, structures, bus messages) is not.
//! - **CPU per frame** for 20 and for 20,000 overlapping person boxes (the same image, boxes
//!   pre-attached; thread CPU time of push + pull), and their ratio.
//!
//! `--trace` (issue 24): the allocations counted are also attributed to where they come from
//! (a backtrace each, its innermost frames in this crate), the busiest sites printed per case.
//!
//! `cargo run --release --features testing --example bench_frame [-- --quick] [-- --trace]`

#[path = "common/clock.rs"]
mod clock;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;

use gst::prelude::*;
use gstiguard::clip::Clip;
use gstiguard::scorer::{Cancel, Score, ScoreError, Scorer};

struct Counting;

thread_local! {
    /// Allocations made by this thread while `COUNTING` is set.
    static COUNT: Cell<u64> = const { Cell::new(0) };
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// `--trace`: attribute each counted allocation to its call site.
    static TRACING: Cell<bool> = const { Cell::new(false) };
    /// Set while a backtrace is taken, so its own allocations are neither counted nor traced.
    static IN_TRACE: Cell<bool> = const { Cell::new(false) };
    /// Call site (the innermost frames in this crate) → allocations.
    static SITES: RefCell<HashMap<String, u64>> = RefCell::new(HashMap::new());
}

fn note_alloc() {
    // `try_with`: a thread being torn down has no thread-locals left.
    let counting = COUNTING.try_with(|on| on.get()).unwrap_or(false);
    if !counting || IN_TRACE.try_with(|t| t.get()).unwrap_or(true) {
        return;
    }
    let _ = COUNT.try_with(|c| c.set(c.get() + 1));
    if TRACING.try_with(|t| t.get()).unwrap_or(false) {
        IN_TRACE.with(|t| t.set(true));
        let site = call_site(&std::backtrace::Backtrace::force_capture().to_string());
        SITES.with(|s| *s.borrow_mut().entry(site).or_default() += 1);
        IN_TRACE.with(|t| t.set(false));
    }
}

/// The frames around the first one in this crate's code (three callees before it, for
/// allocations made by a dependency on its behalf, and two callers), with their source lines,
/// generics cut: enough to tell the allocating call apart.
fn call_site(trace: &str) -> String {
    let mut frames: Vec<String> = Vec::new();
    let mut lines = trace.lines().map(str::trim).peekable();
    while let Some(line) = lines.next() {
        let Some((_, name)) = line.split_once(": ") else {
            continue;
        };
        let short = name.split('<').next().unwrap_or(name);
        let at = match lines.peek() {
            Some(l) if l.starts_with("at ") => lines.next().unwrap_or(""),
            _ => "",
        };
        let at = at.rsplit('/').next().unwrap_or(at);
        frames.push(format!("{short} {at}|{name}"));
    }
    let Some(first) = frames.iter().position(|f| f.contains("gstiguard")) else {
        return "(outside this crate)".to_string();
    };
    frames[first.saturating_sub(3)..(first + 2).min(frames.len())]
        .iter()
        .map(|f| f.split('|').next().unwrap_or(f).to_string())
        .collect::<Vec<_>>()
        .join("\n      <- ")
}

/// Prints the busiest allocation sites since the last call, and forgets them.
fn print_sites(case: &str, frames: f64) {
    let mut sites: Vec<(String, u64)> = SITES.with(|s| s.borrow_mut().drain().collect());
    if sites.is_empty() {
        return;
    }
    sites.sort_by_key(|s| std::cmp::Reverse(s.1));
    println!("  allocation sites, {case} (per frame):");
    for (site, n) in sites.iter().take(12) {
        println!("    {:.2}  {site}", *n as f64 / frames);
    }
}

// SAFETY: every call goes to the system allocator unchanged; only a count is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// A scorer that reads nothing and answers at once: the workers stay out of the way.
struct Instant;

impl Scorer for Instant {
    fn name(&self) -> &str {
        "instant"
    }
    fn is_model(&self) -> bool {
        false
    }
    fn score(&self, clips: &[&Clip], _: &Cancel) -> Result<Vec<Score>, ScoreError> {
        Ok(clips
            .iter()
            .map(|_| Score {
                score: 0.0,
                label: String::new(),
            })
            .collect())
    }
}

const W: u32 = 640;
const H: u32 = 480;

/// One detection: label, confidence, box, tracker id.
type Det = (&'static str, f64, (u32, u32, u32, u32), Option<u64>);

fn frame(image: &gst::Buffer, n: u64, dets: &[Det]) -> gst::Buffer {
    let mut buf = image.copy();
    let b = buf.get_mut().unwrap();
    b.set_pts(gst::ClockTime::from_mseconds(n * 33));
    for (label, conf, rect, id) in dets {
        let mut m = gst_video::VideoRegionOfInterestMeta::add(b, label, *rect);
        let mut s = gst::Structure::builder("detection").field("confidence", *conf);
        if let Some(id) = id {
            s = s.field("object_id", *id);
        }
        m.add_param(s.build());
    }
    buf
}

fn harness(props: &[(&str, u32)]) -> gst_check::Harness {
    let e = gst::ElementFactory::make("iguardverify").build().unwrap();
    e.set_property("temporal-size", 16u32);
    e.set_property("input-width", 112u32);
    e.set_property("input-height", 112u32);
    e.set_property("cooldown", 0u32);
    e.set_property("stats-interval", 0u32);
    for (k, v) in props {
        e.set_property(k, *v);
    }
    e.downcast_ref::<gstiguard::iguardverify::IGuardVerify>()
        .unwrap()
        .set_scorer(Some(Arc::new(Instant)));
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_src_caps(
        gst_video::VideoCapsBuilder::new()
            .format(gst_video::VideoFormat::Rgba)
            .width(W as i32)
            .height(H as i32)
            .framerate(gst::Fraction::new(30, 1))
            .build(),
    );
    h
}

/// Pushes `frames` after `warm` frames; returns (allocations, thread CPU ns) per measured frame.
fn run(h: &mut gst_check::Harness, warm: Vec<gst::Buffer>, frames: Vec<gst::Buffer>) -> (f64, f64) {
    for b in warm {
        h.push(b).unwrap();
        drop(h.pull().unwrap());
    }
    let n = frames.len() as f64;
    let mut allocs = 0;
    let mut cpu = 0;
    for b in frames {
        COUNT.with(|c| c.set(0));
        COUNTING.with(|c| c.set(true));
        let t = clock::thread_cpu_ns();
        h.push(b).unwrap();
        let out = h.pull().unwrap();
        cpu += clock::thread_cpu_ns() - t;
        COUNTING.with(|c| c.set(false));
        allocs += COUNT.with(|c| c.get());
        drop(out);
    }
    (allocs as f64 / n, cpu as f64 / n)
}

/// `people` tracked people walking right, 1 px a frame, 70 px apart.
fn people(n: u64, people: u64) -> Vec<Det> {
    (0..people)
        .map(|p| {
            let (x, y) = (
                (10 + 70 * (p % 8) + n % 20) as u32,
                (20 + 200 * (p / 8)) as u32,
            );
            ("person", 0.9, (x, y, 40, 100), Some(p + 1))
        })
        .collect()
}

/// `boxes` overlapping person boxes without ids around the frame's centre.
fn crowd(boxes: u32) -> Vec<Det> {
    (0..boxes)
        .map(|i| {
            let r = (300 + i % 17, 180 + i % 13, 40, 100);
            ("person", 0.5 + (i % 1000) as f64 / 2000.0, r, None)
        })
        .collect()
}

fn main() -> ExitCode {
    if let Err(e) = clock::start_gstreamer() {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let trace = std::env::args().any(|a| a == "--trace");
    TRACING.with(|t| t.set(trace));
    let image = {
        let mut b = gst::Buffer::with_size((W * H * 4) as usize).unwrap();
        b.get_mut().unwrap().map_writable().unwrap().fill(90);
        b
    };
    let profile = if cfg!(debug_assertions) {
        "dev profile (crate unoptimised, dependencies opt-level 3)"
    } else {
        "release profile"
    };
    println!(
        "machine: {} cores, {}; {profile}; load {}",
        clock::cores(),
        gst::version_string(),
        clock::load_average()
    );
    let (warm, measured) = if quick { (48, 64) } else { (96, 320) };

    // Allocations per frame on the streaming thread.
    let steady = |dets: &dyn Fn(u64) -> Vec<Det>, props: &[(&str, u32)]| {
        let mut h = harness(props);
        let w = (0..warm).map(|n| frame(&image, n, &dets(n))).collect();
        let m = (warm..warm + measured)
            .map(|n| frame(&image, n, &dets(n)))
            .collect();
        run(&mut h, w, m)
    };
    let traced = |case: &str, r: (f64, f64)| {
        print_sites(case, measured as f64);
        r
    };
    let none = traced("no detections", steady(&|_| vec![], &[]));
    let cars = traced(
        "4 cars",
        steady(
            &|n| {
                (0..4)
                    .map(|i| {
                        (
                            "car",
                            0.9,
                            (10 + 150 * i + (n % 5) as u32, 300, 80, 50),
                            None,
                        )
                    })
                    .collect()
            },
            &[],
        ),
    );
    let one = traced("1 object", steady(&|n| people(n, 1), &[]));
    let sixteen = traced(
        "16 objects",
        steady(&|n| people(n, 16), &[("max-clips-per-source", 16)]),
    );
    println!("allocations per frame (streaming thread, Rust heap):");
    println!("  allocations_per_frame_no_detections: {:.2}", none.0);
    println!("  allocations_per_frame_4_cars_no_trigger: {:.2}", cars.0);
    println!("  allocations_per_frame_1_object_collecting: {:.2}", one.0);
    println!(
        "  allocations_per_frame_16_objects_collecting: {:.2} ({:.2} per tile)",
        sixteen.0,
        sixteen.0 / 16.0
    );

    if trace {
        println!("(--trace: CPU per frame not measured, backtraces cost more than the frame)");
        return ExitCode::SUCCESS;
    }
    // CPU per frame, 20 boxes against 20,000.
    let frames = if quick { 8 } else { 24 };
    let cost = |boxes: u32| {
        let dets = crowd(boxes);
        let mut h = harness(&[]);
        let w = (0..4).map(|n| frame(&image, n, &dets)).collect();
        let m = (4..4 + frames).map(|n| frame(&image, n, &dets)).collect();
        run(&mut h, w, m).1
    };
    let small = cost(20);
    let large = cost(20_000);
    println!("streaming-thread CPU per frame (push + pull, thread CPU time):");
    println!("  cpu-ms-per-frame-20-boxes: {:.3}", small / 1e6);
    println!("  cpu-ms-per-frame-20000-boxes: {:.3}", large / 1e6);
    println!(
        "  cpu-ratio-20000-to-20-boxes: {:.1} (boxes ratio 1000)",
        large / small
    );
    ExitCode::SUCCESS
}
