// SPDX-License-Identifier: MIT OR Apache-2.0
//! Streaming-thread CPU time of `iguardverify` on NVMM input, through the CPU STAND-IN of
//! NVIDIA's surface libraries (`tests/nvmm_standin/`). Not a test: it measures and prints.
//!
//! ```text
//! IGUARD_DEEPSTREAM_LIB_DIR=.../_libs cargo run --release --features testing --example bench_nvmm \
//!     -- [--quick] [--frames N] [--out PATH]
//! ```
//!
//! Three parts, every figure a `name: value` line, then written as JSON (`--out`, default
//! `bench-results/bench-nvmm.json`):
//!
//! 1. **NVMM against system memory**: one 1920×1080 source, a person box of 480×640 on every
//!    frame, 112×112 tiles, 16-frame clips with cooldown 0 (every frame after the first samples
//!    a tile), with the same run without a trigger (`idle`) for the fixed cost; mean per frame.
//! 2. **One transform call per buffer** (issue 24): a batch of 4 sources × 4 tracked people
//!    (16 tiles a buffer), `nvmm-batch=true` against `false`, interleaved buffer by buffer:
//!    `NvBufSurfTransform` calls per buffer (the stand-in counts them) and streaming-thread
//!    CPU per buffer, p50, with and without the stand-in's own transform work.
//! 3. **Per object**: one source with 1, 4, 16 and 64 tracked people (64 is the default
//!    `max-tiles-per-buffer`), both forms, p50 per buffer and the ratio to N × one.
//!
//! The figure is `CLOCK_THREAD_CPUTIME_ID` around each push (the element runs on the pushing
//! thread). The stand-in crops and scales on the CPU (a plain float bilinear), which a GPU does
//! instead: the `_without_transform` figures take its CPU time out, leaving what stays on the
//! streaming thread with NVIDIA's library (views, session, the calls, map, copies, unmap) bar
//! the real call's launch and wait, which only a GPU can measure (`tests/gpu/run.sh`).
//! Needs NVIDIA's `libnvds_meta.so` for the batch metas (`make deepstream-libs`) and `cc` for
//! the stand-in.

#[path = "common/clock.rs"]
mod clock;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/nvidia/mod.rs"]
mod nvidia;
#[path = "../tests/nvmm_standin/mod.rs"]
mod nvmm_standin;
#[path = "common/report.rs"]
mod report;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clock::{load_average, percentile, thread_cpu_ns};
use common::*;
use gst::prelude::*;
use gstiguard::scorer::faults::{Fault, FaultScorer};
use nvmm_standin::*;
use report::{json_num, json_str, show};

const W: u32 = 1920;
const H: u32 = 1080;
const BOX: [f32; 4] = [700.0, 200.0, 480.0, 640.0];
const TILE: u32 = 112;
/// Part 2: sources in the batch and tracked people per source.
const SOURCES: u32 = 4;
const PEOPLE: u32 = 4;
/// Part 3: people in one source's frame.
const OBJECT_COUNTS: [u32; 4] = [1, 4, 16, 64];

struct Args {
    quick: bool,
    frames: Option<u64>,
    out: PathBuf,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut a = Args {
            quick: false,
            frames: None,
            out: PathBuf::from("bench-results/bench-nvmm.json"),
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--quick" => a.quick = true,
                "--frames" => {
                    let v = it.next().ok_or("--frames needs a number")?;
                    a.frames = Some(
                        v.parse()
                            .map_err(|_| format!("--frames {v}: not a number"))?,
                    );
                }
                "--out" => a.out = PathBuf::from(it.next().ok_or("--out needs a path")?),
                // The old form: the frame count alone.
                n if n.parse::<u64>().is_ok() => a.frames = n.parse().ok(),
                other => {
                    return Err(format!(
                        "unknown argument {other:?}; usage: bench_nvmm [--quick] [--frames N] \
                         [--out PATH]"
                    ));
                }
            }
        }
        Ok(a)
    }

    /// Frames of part 1, and buffers of parts 2 and 3.
    fn counts(&self) -> (u64, u64) {
        match (self.frames, self.quick) {
            (Some(n), _) => (n, n),
            (None, true) => (60, 40),
            (None, false) => (300, 200),
        }
    }
}

/// Figures in the order they were measured, printed as they come.
#[derive(Default)]
struct Figures(Vec<(String, f64)>);

impl Figures {
    fn put(&mut self, name: &str, v: f64) {
        println!("{name}: {}", show(v));
        self.0.push((name.to_string(), v));
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Input {
    System,
    Nvmm,
}

fn caps(input: Input, format: &str) -> gst::Caps {
    let mut caps = gst::Caps::builder("video/x-raw")
        .field("format", format)
        .field("width", W as i32)
        .field("height", H as i32)
        .field("framerate", gst::Fraction::new(30, 1))
        .build();
    if input == Input::Nvmm {
        caps.get_mut()
            .unwrap()
            .set_features(0, Some(gst::CapsFeatures::new(["memory:NVMM"])));
    }
    caps
}

fn surface_format(format: &str) -> u32 {
    if format == "NV12" { NV12 } else { RGBA }
}

/// A scorer that answers at once but asks for the pixels, as a model does, and keeps nothing.
fn scorer() -> Arc<FaultScorer> {
    Arc::new(FaultScorer::new(|_| Fault::None))
}

fn element_with(props: &[(&str, &dyn ToValue)]) -> gst::Element {
    let mut all: Vec<(&str, &dyn ToValue)> = vec![
        ("class-labels", &"0=person"),
        ("trigger-labels", &"person"),
        ("temporal-size", &16u32),
        ("cooldown", &0u32),
        ("input-width", &TILE),
        ("input-height", &TILE),
        ("roi-margin", &0.0f32),
        ("queue-size", &10_000u32),
    ];
    all.extend_from_slice(props);
    let (e, _bus) = element(&all);
    set_scorer(&e, scorer());
    e
}

// ---------------------------------------------------------------------------------------------
// Part 1: NVMM against system memory, one tile a frame

fn buffer(input: Input, format: &str, n: u64, trigger: bool) -> gst::Buffer {
    let mut b = match input {
        Input::Nvmm => Batch::new(1, 1, W, H, surface_format(format)).into_buffer(n * 33),
        Input::System => {
            let size = if format == "NV12" {
                W * H * 3 / 2
            } else {
                W * H * 4
            };
            let mut b = gst::Buffer::from_mut_slice(vec![90u8; size as usize]);
            b.get_mut()
                .unwrap()
                .set_pts(gst::ClockTime::from_mseconds(n * 33));
            b
        }
    };
    let mut f = nvidia::Frame::new(0, 0, 0)
        .at(n as i32, n * 33_000_000)
        .size(W, H);
    if trigger {
        f = f.object(nvidia::Object::new(0, 0.9, BOX, ""));
    }
    nvidia::attach(b.get_mut().unwrap(), &[f]);
    b
}

/// Mean streaming-thread CPU µs per frame over `frames` frames, and of it the stand-in's
/// transform.
fn run_one(input: Input, format: &str, frames: u64, trigger: bool) -> (f64, f64) {
    let e = element_with(&[]);
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_src_caps(caps(input, format));
    // The first frames warm caches and open the libraries.
    for n in 0..4 {
        h.push(buffer(input, format, n, trigger)).unwrap();
        h.pull().unwrap();
    }
    let mut total = 0u64;
    let transform0 = standin().transform_ns();
    for n in 4..4 + frames {
        let b = buffer(input, format, n, trigger);
        let t0 = thread_cpu_ns();
        h.push(b).unwrap();
        total += thread_cpu_ns() - t0;
        h.pull().unwrap();
    }
    let transform = standin().transform_ns() - transform0;
    drop(h);
    let _ = e.set_state(gst::State::Null);
    let per_frame = |ns: u64| ns as f64 / frames as f64 / 1000.0;
    (per_frame(total), per_frame(transform))
}

fn part_one(frames: u64, figs: &mut Figures) {
    println!(
        "== NVMM against system memory: {W}x{H}, crop 480x640 -> {TILE}x{TILE} tile, {frames} \
         frames, mean streaming-thread CPU per frame"
    );
    for format in ["RGBA", "NV12"] {
        for input in [Input::System, Input::Nvmm] {
            let name = match input {
                Input::System => "system",
                Input::Nvmm => "nvmm",
            };
            let (idle, _) = run_one(input, format, frames, false);
            let (busy, transform) = run_one(input, format, frames, true);
            let f = format.to_lowercase();
            figs.put(&format!("nvmm_vs_system_{f}_{name}_idle_us"), idle);
            figs.put(&format!("nvmm_vs_system_{f}_{name}_sampling_us"), busy);
            figs.put(&format!("nvmm_vs_system_{f}_{name}_tile_us"), busy - idle);
            if input == Input::Nvmm {
                figs.put(
                    &format!("nvmm_vs_system_{f}_{name}_tile_without_transform_us"),
                    busy - idle - transform,
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parts 2 and 3: batches of tracked people, one call per buffer against one per tile

/// One element on NVMM input of `sources` × `people`, batched or not.
struct Rig {
    element: gst::Element,
    harness: gst_check::Harness,
    format: u32,
    sources: u32,
    people: u32,
    pushed: u64,
    /// Per buffer: streaming-thread CPU ns, of it the stand-in's transform, its calls.
    cpu: Vec<u64>,
    transform: Vec<u64>,
    calls: Vec<u64>,
}

impl Rig {
    fn new(format: &str, sources: u32, people: u32, batch: bool) -> Rig {
        let element = element_with(&[
            ("clip-per", &"object"),
            ("tracking", &"ids"),
            ("max-clips-per-source", &people),
            ("nvmm-batch", &batch),
        ]);
        let mut harness = gst_check::Harness::with_element(&element, Some("sink"), Some("src"));
        harness.set_src_caps(caps(Input::Nvmm, format));
        Rig {
            element,
            harness,
            format: surface_format(format),
            sources,
            people,
            pushed: 0,
            cpu: Vec::new(),
            transform: Vec::new(),
            calls: Vec::new(),
        }
    }

    /// People of 96×128 on an 8×8 grid of 240×135 cells, each source's frame its own.
    fn frames(&self, n: u64) -> Vec<nvidia::Frame> {
        (0..self.sources)
            .map(|s| {
                let mut f = nvidia::Frame::new(s, s, s)
                    .at(n as i32, n * 33_000_000)
                    .size(W, H);
                for k in 0..self.people {
                    let rect = [
                        (k % 8 * 240 + 72) as f32,
                        (k / 8 * 135 + 3) as f32,
                        96.0,
                        128.0,
                    ];
                    f = f.object(nvidia::Object::new(0, 0.9, rect, "").id(k as u64 + 1));
                }
                f
            })
            .collect()
    }

    fn push(&mut self, record: bool) {
        let n = self.pushed;
        self.pushed += 1;
        let mut b = Batch::new(self.sources, self.sources, W, H, self.format).into_buffer(n * 33);
        nvidia::attach(b.get_mut().unwrap(), &self.frames(n));
        let (c0, t0, k0) = (
            thread_cpu_ns(),
            standin().transform_ns(),
            standin().transform_calls(),
        );
        self.harness.push(b).unwrap();
        let (c1, t1, k1) = (
            thread_cpu_ns(),
            standin().transform_ns(),
            standin().transform_calls(),
        );
        self.harness.pull().unwrap();
        if record {
            self.cpu.push(c1 - c0);
            self.transform.push(t1 - t0);
            self.calls.push((k1 - k0) as u64);
        }
    }

    /// p50 CPU µs per buffer, p50 without the stand-in's transform, calls per buffer (mean).
    fn figures(&self) -> (f64, f64, f64) {
        let mut cpu = self.cpu.clone();
        cpu.sort_unstable();
        let mut rest: Vec<u64> = self
            .cpu
            .iter()
            .zip(&self.transform)
            .map(|(c, t)| c.saturating_sub(*t))
            .collect();
        rest.sort_unstable();
        let calls = self.calls.iter().sum::<u64>() as f64 / self.calls.len().max(1) as f64;
        (
            percentile(&cpu, 50.0) / 1e3,
            percentile(&rest, 50.0) / 1e3,
            calls,
        )
    }

    /// The element's own figures: a check that every tile was cut and none fell back.
    fn check(&self, what: &str) -> Result<(), String> {
        let s = Stats::of(&self.element);
        let (tiles, failures, over) = (
            s.u("nvmm-tiles"),
            s.u("nvmm-batch-failures"),
            s.u("tiles-over-budget"),
        );
        let want = (self.sources * self.people) as u64 * self.pushed;
        if tiles != want || failures > 0 || over > 0 {
            return Err(format!(
                "{what}: {tiles} tiles cut of {want}, {failures} batched calls failed, {over} \
                 over the tile budget"
            ));
        }
        Ok(())
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = self.element.set_state(gst::State::Null);
    }
}

/// Pushes `warm` then `n` buffers through every rig, interleaved buffer by buffer, the order
/// turned by one rig each round (the rig after another one's buffer finds the caches as that
/// one left them).
fn interleave(rigs: &mut [Rig], warm: u64, n: u64) {
    let k = rigs.len();
    for i in 0..warm + n {
        for j in 0..k {
            rigs[(i as usize + j) % k].push(i >= warm);
        }
    }
}

fn part_two(buffers: u64, figs: &mut Figures) -> Result<(), String> {
    println!(
        "== one transform call per buffer: {SOURCES} sources x {PEOPLE} tracked people, {W}x{H}, \
         {TILE}x{TILE} tiles, {buffers} buffers per case, p50 streaming-thread CPU per buffer"
    );
    for format in ["RGBA", "NV12"] {
        let mut rigs = vec![
            Rig::new(format, SOURCES, PEOPLE, true),
            Rig::new(format, SOURCES, PEOPLE, false),
        ];
        interleave(&mut rigs, 4, buffers);
        let (b_cpu, b_rest, b_calls) = rigs[0].figures();
        let (s_cpu, s_rest, s_calls) = rigs[1].figures();
        rigs[0].check(&format!("{format} batched"))?;
        rigs[1].check(&format!("{format} single"))?;
        let f = format.to_lowercase();
        if format == "RGBA" {
            figs.put("nvmm_transform_calls_per_buffer", b_calls);
            figs.put("nvmm_transform_calls_per_buffer_single", s_calls);
            figs.put("nvmm_tiles_per_buffer", (SOURCES * PEOPLE) as f64);
        }
        figs.put(&format!("nvmm_4x4_{f}_buffer_cpu_us_batched"), b_cpu);
        figs.put(&format!("nvmm_4x4_{f}_buffer_cpu_us_single"), s_cpu);
        figs.put(
            &format!("nvmm_4x4_{f}_buffer_cpu_us_batched_without_transform"),
            b_rest,
        );
        figs.put(
            &format!("nvmm_4x4_{f}_buffer_cpu_us_single_without_transform"),
            s_rest,
        );
    }
    Ok(())
}

fn part_three(buffers: u64, figs: &mut Figures) -> Result<(), String> {
    println!(
        "== per object: one source, N tracked people (N = {OBJECT_COUNTS:?}), {W}x{H}, \
         {TILE}x{TILE} tiles, {buffers} buffers per case, p50 streaming-thread CPU per buffer \
         and its ratio to N x one"
    );
    for format in ["RGBA", "NV12"] {
        let mut rigs: Vec<Rig> = OBJECT_COUNTS
            .iter()
            .flat_map(|&n| [Rig::new(format, 1, n, true), Rig::new(format, 1, n, false)])
            .collect();
        interleave(&mut rigs, 4, buffers);
        let f = format.to_lowercase();
        let mut one = [f64::NAN; 4];
        for (pair, &n) in rigs.chunks(2).zip(OBJECT_COUNTS.iter()) {
            for (rig, form) in pair.iter().zip(["batched", "single"]) {
                rig.check(&format!("{format} {n} objects {form}"))?;
                let (cpu, rest, calls) = rig.figures();
                let i = if form == "batched" { 0 } else { 2 };
                if n == 1 {
                    one[i] = cpu;
                    one[i + 1] = rest;
                }
                let k = n as f64;
                let name = |what: &str| format!("nvmm_objects_{f}_n{n}_{what}_{form}");
                figs.put(&name("cpu_us"), cpu);
                figs.put(&name("cpu_us_without_transform"), rest);
                figs.put(&name("ratio"), cpu / (k * one[i]));
                figs.put(&name("ratio_without_transform"), rest / (k * one[i + 1]));
                figs.put(&name("calls_per_buffer"), calls);
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench_nvmm: {e}");
            return ExitCode::from(2);
        }
    };
    init();
    standin();
    let load_before = load_average();
    println!("machine: {}", clock::machine());
    println!(
        "build: {}",
        if cfg!(debug_assertions) {
            "debug assertions on (dev profile): figures only comparable with the same build"
        } else {
            "optimised, no debug assertions"
        }
    );
    println!("NVIDIA's surface libraries: the CPU stand-in (tests/nvmm_standin/), not NVIDIA's");
    let (frames, buffers) = args.counts();
    let mut figs = Figures::default();
    part_one(frames, &mut figs);
    let mut failed = None;
    if let Err(e) = part_two(buffers, &mut figs).and_then(|()| part_three(buffers, &mut figs)) {
        eprintln!("bench_nvmm: {e}");
        failed = Some(e);
    }
    let load_after = load_average();
    println!("load-average: {load_before} before, {load_after} after");

    let mut json = String::from("{\n");
    let _ = writeln!(json, "  \"machine\": {},", json_str(&clock::machine()));
    let _ = writeln!(
        json,
        "  \"load_average\": {},",
        json_str(&format!("{load_before} before, {load_after} after"))
    );
    let _ = writeln!(json, "  \"quick\": {},", args.quick);
    if let Some(e) = &failed {
        let _ = writeln!(json, "  \"error\": {},", json_str(e));
    }
    json.push_str("  \"figures\": {\n");
    for (i, (name, v)) in figs.0.iter().enumerate() {
        let _ = write!(json, "    {}: {}", json_str(name), json_num(*v));
        json.push_str(if i + 1 < figs.0.len() { ",\n" } else { "\n" });
    }
    json.push_str("  }\n}\n");
    if let Some(dir) = args.out.parent()
        && !dir.as_os_str().is_empty()
    {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(&args.out, json) {
        eprintln!("bench_nvmm: cannot write {}: {e}", args.out.display());
        return ExitCode::FAILURE;
    }
    println!("written: {}", args.out.display());
    if failed.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
