// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `iguardoverlay` benchmark (`make bench-overlay`). Not a test: it measures and prints,
//! it asserts nothing about speed.
//!
//! ```text
//! cargo run --release --features testing --example bench_overlay -- [--quick] [--out PATH]
//!     [--objects N] [--frames N] [--width W] [--height H]
//! ```
//!
//! The element alone in a `gst_check::Harness`, on frames of `--width` x `--height` (default
//! 1920x1080) carrying `--objects` (default 16) tracked person boxes that move and change size
//! on every frame, as a tracker's boxes do, each with a held verdict (so each box has a label:
//! `person #7: verified 0.91`). Per case (RGBA and I420 blended into the frame, and the
//! composition attached for a downstream renderer) the streaming thread's cost of one frame
//! inside the element: the push through the element, CPU time of the thread and wall time,
//! p50, p90 and mean, after a warm-up. Building each input frame is not counted.
//!
//! Every figure is printed as a `name: value` line, then in a table, and written as JSON
//! (`--out`, default `bench-results/bench-overlay.json`). Run it with `GST_PLUGIN_PATH` unset:
//! the plugin is registered statically.

#[path = "common/clock.rs"]
mod clock;
#[path = "common/report.rs"]
mod report;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clock::{load_average, percentile, thread_cpu_ns};
use gst::prelude::*;
use gstiguard::verdict::{Status, Verdict};
use report::{json_num, json_str, show};

struct Args {
    quick: bool,
    out: PathBuf,
    objects: u32,
    frames: usize,
    width: u32,
    height: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        quick: false,
        out: PathBuf::from("bench-results/bench-overlay.json"),
        objects: 16,
        frames: 300,
        width: 1920,
        height: 1080,
    };
    let mut it = std::env::args().skip(1);
    let number = |name: &str, v: Option<String>| -> Result<u64, String> {
        let v = v.ok_or_else(|| format!("{name} needs a value"))?;
        v.parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{name} {v}: expected a whole number above 0"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--out" => a.out = PathBuf::from(it.next().ok_or("--out needs a path")?),
            "--objects" => a.objects = number("--objects", it.next())?.min(1000) as u32,
            "--frames" => a.frames = number("--frames", it.next())? as usize,
            "--width" => a.width = number("--width", it.next())?.clamp(64, 8192) as u32,
            "--height" => a.height = number("--height", it.next())?.clamp(64, 8192) as u32,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.quick {
        a.frames = a.frames.min(60);
    }
    Ok(a)
}

fn verdict(request_id: u64, object_id: u64) -> Verdict {
    let verified = object_id.is_multiple_of(2);
    Verdict {
        request_id,
        source_id: 0,
        pad_index: 0,
        status: if verified {
            Status::Verified
        } else {
            Status::Rejected
        },
        score: if verified { 0.91 } else { 0.12 },
        threshold: 0.5,
        label: String::new(),
        trigger_label: "person".into(),
        trigger_confidence: 0.9,
        clip_start_pts: None,
        clip_end_pts: None,
        frames: 16,
        queue_ms: 0.0,
        processing_ms: 1.0,
        scorer: "bench".into(),
        reason: String::new(),
        object_id: Some(object_id),
        crop: None,
        snapshot: None,
        zones: Vec::new(),
    }
}

/// Object `k`'s box on frame `n`: objects spread over the frame, each walking its own way and
/// growing and shrinking by a few pixels, as tracked boxes do.
fn box_of(k: u32, n: u64, width: u32, height: u32) -> (u32, u32, u32, u32) {
    let (bw, bh) = (width / 12, height / 4);
    let cols = 4;
    let (cx, cy) = (k % cols, k / cols);
    let x0 = 20 + cx * (width / cols);
    let y0 = 40 + (cy % 3) * (height / 4);
    let t = n as f64;
    let kf = k as f64;
    let dx = (40.0 * (t / 15.0 + kf).sin()) as i64;
    let dy = (20.0 * (t / 11.0 + kf * 0.7).cos()) as i64;
    let dw = (6.0 * (t / 5.0 + kf).sin()) as i64;
    let dh = (8.0 * (t / 7.0 + kf).cos()) as i64;
    let x = (x0 as i64 + 40 + dx).clamp(0, (width - bw - 8) as i64) as u32;
    let y = (y0 as i64 + 20 + dy).clamp(0, (height - bh - 8) as i64) as u32;
    let w = (bw as i64 + dw).max(8) as u32;
    let h = (bh as i64 + dh).max(8) as u32;
    (x, y, w, h)
}

fn frame(info: &gst_video::VideoInfo, n: u64, objects: u32) -> gst::Buffer {
    let mut buf = gst::Buffer::with_size(info.size()).expect("frame buffer");
    {
        let b = buf.get_mut().expect("new buffer");
        b.map_writable().expect("writable").fill(0x80);
        b.set_pts(gst::ClockTime::from_mseconds(n * 100));
        b.set_duration(gst::ClockTime::from_mseconds(100));
        for k in 0..objects {
            let rect = box_of(k, n, info.width(), info.height());
            let mut m = gst_video::VideoRegionOfInterestMeta::add(b, "person", rect);
            m.add_param(
                gst::Structure::builder("detection")
                    .field("confidence", 0.9f64)
                    .field("object_id", k as i32 + 1)
                    .build(),
            );
            if n == 0 {
                gstiguard::meta::add(b, &verdict(k as u64 + 1, k as u64 + 1)).expect("meta");
            }
        }
    }
    buf
}

struct Case {
    name: &'static str,
    format: gst_video::VideoFormat,
    attach: bool,
}

#[derive(Default)]
struct Figures {
    cpu_p50_ms: f64,
    cpu_p90_ms: f64,
    cpu_mean_ms: f64,
    wall_p50_ms: f64,
    wall_mean_ms: f64,
    frames: usize,
}

fn run(case: &Case, args: &Args) -> Result<Figures, String> {
    let info = gst_video::VideoInfo::builder(case.format, args.width, args.height)
        .fps(gst::Fraction::new(10, 1))
        .build()
        .map_err(|e| format!("video info: {e}"))?;
    let e = gst::ElementFactory::make("iguardoverlay")
        .property("hold", 3600.0f64)
        .build()
        .map_err(|e| format!("cannot make iguardoverlay: {e}"))?;
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    if case.attach {
        h.add_propose_allocation_meta(gst_video::VideoOverlayCompositionMeta::meta_api(), None);
    }
    h.set_src_caps(info.to_caps().map_err(|e| format!("caps: {e}"))?);
    let warmup = 10u64;
    let (mut cpu, mut wall) = (Vec::new(), Vec::new());
    for n in 0..warmup + args.frames as u64 {
        let input = frame(&info, n, args.objects);
        let (c0, w0) = (thread_cpu_ns(), Instant::now());
        h.push(input).map_err(|e| format!("push: {e:?}"))?;
        let out = h.pull().map_err(|e| format!("pull: {e}"))?;
        let (c1, w1) = (thread_cpu_ns(), w0.elapsed().as_nanos() as u64);
        drop(out);
        if n >= warmup {
            cpu.push(c1 - c0);
            wall.push(w1);
        }
    }
    cpu.sort_unstable();
    wall.sort_unstable();
    let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len().max(1) as f64 / 1e6;
    Ok(Figures {
        cpu_p50_ms: percentile(&cpu, 50.0) / 1e6,
        cpu_p90_ms: percentile(&cpu, 90.0) / 1e6,
        cpu_mean_ms: mean(&cpu),
        wall_p50_ms: percentile(&wall, 50.0) / 1e6,
        wall_mean_ms: mean(&wall),
        frames: cpu.len(),
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench_overlay: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = clock::start_gstreamer() {
        eprintln!("bench_overlay: {e}");
        return ExitCode::FAILURE;
    }
    use gst_video::VideoFormat::*;
    let cases = [
        Case {
            name: "rgba-blend",
            format: Rgba,
            attach: false,
        },
        Case {
            name: "i420-blend",
            format: I420,
            attach: false,
        },
        Case {
            name: "i420-attach",
            format: I420,
            attach: true,
        },
    ];
    let load_before = load_average();
    let mut results = Vec::new();
    for case in &cases {
        match run(case, &args) {
            Ok(f) => results.push((case, f)),
            Err(e) => {
                eprintln!("bench_overlay: {}: {e}", case.name);
                return ExitCode::FAILURE;
            }
        }
    }
    let what = format!(
        "{} moving objects, {}x{}",
        args.objects, args.width, args.height
    );
    // The machine line says "release build"; say what this binary really is.
    let build = if cfg!(debug_assertions) {
        "debug assertions on (dev profile): figures only comparable with the same build"
    } else {
        "optimised, no debug assertions"
    };
    println!("machine: {}", clock::machine());
    println!("build: {build}");
    println!(
        "load-average: {} before, {} after",
        load_before,
        load_average()
    );
    println!("scene: {what}");
    for (case, f) in &results {
        println!("overlay-{}-cpu-p50-ms: {}", case.name, show(f.cpu_p50_ms));
        println!("overlay-{}-cpu-mean-ms: {}", case.name, show(f.cpu_mean_ms));
        println!("overlay-{}-wall-p50-ms: {}", case.name, show(f.wall_p50_ms));
    }
    println!();
    println!(
        "{:<14} {:>8} {:>12} {:>12} {:>13} {:>13} {:>13}",
        "case", "frames", "cpu p50 ms", "cpu p90 ms", "cpu mean ms", "wall p50 ms", "wall mean ms"
    );
    for (case, f) in &results {
        println!(
            "{:<14} {:>8} {:>12} {:>12} {:>13} {:>13} {:>13}",
            case.name,
            f.frames,
            show(f.cpu_p50_ms),
            show(f.cpu_p90_ms),
            show(f.cpu_mean_ms),
            show(f.wall_p50_ms),
            show(f.wall_mean_ms)
        );
    }

    let mut json = String::from("{\n");
    let _ = writeln!(json, "  \"machine\": {},", json_str(&clock::machine()));
    let _ = writeln!(json, "  \"scene\": {},", json_str(&what));
    let _ = writeln!(json, "  \"build\": {},", json_str(build));
    json.push_str("  \"cases\": [\n");
    for (i, (case, f)) in results.iter().enumerate() {
        let _ = write!(
            json,
            "    {{\"case\": {}, \"frames\": {}, \"cpu_p50_ms\": {}, \"cpu_p90_ms\": {}, \
             \"cpu_mean_ms\": {}, \"wall_p50_ms\": {}, \"wall_mean_ms\": {}}}",
            json_str(case.name),
            f.frames,
            json_num(f.cpu_p50_ms),
            json_num(f.cpu_p90_ms),
            json_num(f.cpu_mean_ms),
            json_num(f.wall_p50_ms),
            json_num(f.wall_mean_ms)
        );
        json.push_str(if i + 1 < results.len() { ",\n" } else { "\n" });
    }
    json.push_str("  ]\n}\n");
    if let Some(dir) = args.out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(&args.out, json) {
        eprintln!("bench_overlay: cannot write {}: {e}", args.out.display());
        return ExitCode::FAILURE;
    }
    println!("\nwritten: {}", args.out.display());
    ExitCode::SUCCESS
}
