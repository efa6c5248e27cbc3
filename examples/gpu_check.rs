// SPDX-License-Identifier: MIT OR Apache-2.0
//! The GPU check (issue 12, item 7), run by `tests/gpu/run.sh` on a CUDA 13 machine with
//! NVIDIA's real `libnvbufsurface.so`, `libnvbufsurftransform.so` and `nvvideoconvert`:
//!
//! ```text
//! videotestsrc ! nvvideoconvert ! video/x-raw(memory:NVMM),format=NV12 ! identity name=meta
//!     ! iguardverify ! fakesink                                    (NVMM path)
//! videotestsrc ! videoconvert ! video/x-raw,format=NV12 ! identity name=meta
//!     ! iguardverify ! fakesink                                    (system-memory path)
//! ```
//!
//! `meta` is a pad probe that attaches a real DeepStream batch meta (NVIDIA's
//! `libnvds_meta.so`: one frame, batch_id 0, person boxes) to every buffer, as `nvstreammux !
//! nvinfer` would. Every run sees the same frames (`videotestsrc pattern=smpte`, no motion), so
//! their tiles are compared pixel by pixel; the streaming thread's CPU time per frame inside
//! `iguardverify` is measured by probes on its two pads (`CLOCK_THREAD_CPUTIME_ID`, an in-place
//! transform runs on the thread that pushes).
//!
//! Runs, one person box a frame: NVMM with one `NvBufSurfTransform` call per buffer
//! (`nvmm-batch=true`, the default), NVMM with one call per tile (`nvmm-batch=false`), system
//! memory; then 16 tracked people a frame (`clip-per=object`), NVMM both forms (issue 24: the
//! batched call against 16 calls, CPU per frame and calls per buffer from the element's
//! stats). Prints the figures as `name: value` lines; exits 1 if NVMM and system-memory tiles
//! differ beyond 16 levels on a pixel or 3 on average (the two paths convert NV12 differently),
//! or the batched and per-tile tiles beyond 2 levels on a pixel (the same crops and scales by
//! NVIDIA's library, one call or many).

#[path = "../tests/nvidia/mod.rs"]
mod nvidia;
#[allow(dead_code)]
mod common {
    pub const W: u32 = 1280;
    pub const H: u32 = 720;
}

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;
use gstiguard::clip::Clip;
use gstiguard::scorer::fallback::FallbackScorer;
use gstiguard::scorer::{Cancel, Score, ScoreError, Scorer};

const FRAMES: u32 = 150;
const BOX: [f32; 4] = [400.0, 100.0, 320.0, 480.0];
/// People a frame in the many-object runs: 16 boxes of 96x160 on a 4x4 grid of 320x180 cells.
const PEOPLE: u32 = 16;

/// What one run reads: NVMM or system memory, one transform call per buffer or per tile, and
/// how many people a frame (1: the one box, `clip-per=source`; more: tracked, per object).
#[derive(Clone, Copy)]
struct Case {
    nvmm: bool,
    batch: bool,
    people: u32,
}

/// What a run gave: its clips, CPU µs per frame, transform calls and tiles per frame.
struct Ran {
    clips: Vec<Clip>,
    cpu_us: f64,
    calls_per_frame: f64,
    tiles_per_frame: f64,
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Clip>>);

impl Scorer for Recorder {
    fn name(&self) -> &str {
        "gpu-check-recorder"
    }
    fn is_model(&self) -> bool {
        false
    }
    fn score(&self, clips: &[&Clip], cancel: &Cancel) -> Result<Vec<Score>, ScoreError> {
        self.0
            .lock()
            .unwrap()
            .extend(clips.iter().map(|c| (*c).clone()));
        FallbackScorer::new(vec![]).score(clips, cancel)
    }
}

fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Runs one pipeline; returns its clips and the mean CPU µs per frame inside iguardverify.
fn run(case: Case) -> Result<Ran, String> {
    let Case {
        nvmm,
        batch,
        people,
    } = case;
    let per = if people == 1 {
        "clip-per=source".to_string()
    } else {
        format!("clip-per=object tracking=ids max-clips-per-source={people}")
    };
    let convert = if nvmm {
        "nvvideoconvert ! video/x-raw(memory:NVMM),format=NV12"
    } else {
        "videoconvert ! video/x-raw,format=NV12"
    };
    let desc = format!(
        "videotestsrc num-buffers={FRAMES} pattern=smpte ! video/x-raw,width={w},height={h},\
         framerate=30/1 ! {convert} ! identity name=meta ! iguardverify name=v \
         class-labels=0=person trigger-labels=person temporal-size=16 cooldown=0 \
         input-width=112 input-height=112 roi-margin=0 queue-size=1000 nvmm-batch={batch} \
         {per} ! fakesink",
        w = common::W,
        h = common::H
    );
    let pipeline = gst::parse::launch(&desc)
        .map_err(|e| format!("{desc}: {e}"))?
        .downcast::<gst::Pipeline>()
        .unwrap();
    let v = pipeline.by_name("v").unwrap();
    let recorder = Arc::new(Recorder::default());
    v.downcast_ref::<gstiguard::iguardverify::IGuardVerify>()
        .unwrap()
        .set_scorer(Some(recorder.clone()));
    let meta = pipeline.by_name("meta").unwrap();
    let n = Arc::new(Mutex::new(0u64));
    meta.static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(gst::PadProbeData::Buffer(b)) = &mut info.data {
                let mut k = n.lock().unwrap();
                let mut f = nvidia::Frame::new(0, 0, 0)
                    .at(*k as i32, *k * 33_000_000)
                    .size(common::W, common::H);
                if people == 1 {
                    f = f.object(nvidia::Object::new(0, 0.9, BOX, ""));
                } else {
                    for p in 0..people {
                        let rect = [
                            (p % 4 * 320 + 112) as f32,
                            (p / 4 * 180 + 10) as f32,
                            96.0,
                            160.0,
                        ];
                        f = f.object(nvidia::Object::new(0, 0.9, rect, "").id(p as u64 + 1));
                    }
                }
                nvidia::attach(b.make_mut(), &[f]);
                *k += 1;
            }
            gst::PadProbeReturn::Ok
        });
    let entered = Arc::new(Mutex::new((0u64, 0u64, 0u64)));
    let e2 = entered.clone();
    v.static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            e2.lock().unwrap().0 = thread_cpu_ns();
            gst::PadProbeReturn::Ok
        });
    let e3 = entered.clone();
    v.static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let mut e = e3.lock().unwrap();
            e.1 += thread_cpu_ns() - e.0;
            e.2 += 1;
            gst::PadProbeReturn::Ok
        });
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| format!("cannot play {desc}: {e}"))?;
    let bus = pipeline.bus().unwrap();
    let mut failure = None;
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(120)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                failure = Some(format!("{}: {:?}", e.error(), e.debug()));
                break;
            }
            gst::MessageView::Warning(w) => eprintln!("warning: {} ({:?})", w.error(), w.debug()),
            _ => {}
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let stats = v.property::<gst::Structure>("stats");
    let _ = pipeline.set_state(gst::State::Null);
    if let Some(f) = failure {
        return Err(f);
    }
    let (_, total, frames) = *entered.lock().unwrap();
    let mut clips = recorder.0.lock().unwrap().clone();
    clips.sort_by_key(|c| c.request_id);
    let stat = |f: &str| stats.get::<u64>(f).unwrap_or(0) as f64 / frames.max(1) as f64;
    if stats.get::<u64>("nvmm-batch-failures").unwrap_or(0) > 0 {
        eprintln!("warning: batched transforms failed and fell back: {stats}");
    }
    Ok(Ran {
        clips,
        cpu_us: total as f64 / frames.max(1) as f64 / 1000.0,
        calls_per_frame: stat("nvmm-transform-calls"),
        tiles_per_frame: stat("nvmm-tiles"),
    })
}

/// The largest and the mean difference between the tiles of two runs, over the bytes compared.
fn differences(a: &[Clip], b: &[Clip]) -> (i32, f64, u64) {
    let (mut worst, mut sum, mut count) = (0i32, 0u64, 0u64);
    for (a, b) in a.iter().zip(b) {
        for (x, y) in a.pixels.iter().zip(&b.pixels) {
            let d = (*x as i32 - *y as i32).abs();
            worst = worst.max(d);
            sum += d as u64;
            count += 1;
        }
    }
    (worst, sum as f64 / count.max(1) as f64, count)
}

fn main() -> std::process::ExitCode {
    gst::init().unwrap();
    gstiguard::plugin_register_static().unwrap();
    nvidia::lib();
    nvidia::gst_lib();
    // A smoke run of the harness where there is no GPU: the system-memory path alone.
    if std::env::args().any(|a| a == "--system-only") {
        let system = Case {
            nvmm: false,
            batch: false,
            people: 1,
        };
        return match run(system) {
            Ok(r) => {
                println!(
                    "system memory only: {} clips, {:.1} us per frame",
                    r.clips.len(),
                    r.cpu_us
                );
                if r.clips.is_empty() {
                    1.into()
                } else {
                    0.into()
                }
            }
            Err(e) => {
                eprintln!("system-memory run failed: {e}");
                2.into()
            }
        };
    }
    let cases = [
        (
            "nvmm_batched",
            Case {
                nvmm: true,
                batch: true,
                people: 1,
            },
        ),
        (
            "nvmm_single",
            Case {
                nvmm: true,
                batch: false,
                people: 1,
            },
        ),
        (
            "system",
            Case {
                nvmm: false,
                batch: false,
                people: 1,
            },
        ),
        (
            "nvmm_batched_16",
            Case {
                nvmm: true,
                batch: true,
                people: PEOPLE,
            },
        ),
        (
            "nvmm_single_16",
            Case {
                nvmm: true,
                batch: false,
                people: PEOPLE,
            },
        ),
    ];
    let mut ran = Vec::new();
    for (name, case) in cases {
        match run(case) {
            Ok(r) => {
                println!("gpu_{name}_clips: {}", r.clips.len());
                println!("gpu_{name}_cpu_us_per_frame: {:.1}", r.cpu_us);
                if case.nvmm {
                    println!(
                        "gpu_{name}_transform_calls_per_buffer: {:.2}",
                        r.calls_per_frame
                    );
                    println!("gpu_{name}_tiles_per_buffer: {:.2}", r.tiles_per_frame);
                }
                ran.push(r);
            }
            Err(e) => {
                eprintln!("{name} run failed: {e}");
                return 2.into();
            }
        }
    }
    let [batched, single, system, batched16, single16] = &ran[..] else {
        unreachable!()
    };
    let mut ok = true;
    let (worst, mean, count) = differences(&batched.clips, &system.clips);
    println!(
        "NVMM against system memory: {count} bytes, largest difference {worst}, mean {mean:.2}"
    );
    if batched.clips.is_empty()
        || batched.clips.len() != system.clips.len()
        || worst > 16
        || mean > 3.0
    {
        ok = false;
    }
    for (what, a, b) in [
        ("1 person", batched, single),
        ("16 people", batched16, single16),
    ] {
        let (worst, mean, count) = differences(&a.clips, &b.clips);
        println!(
            "one call per buffer against one per tile, {what}: {count} bytes, largest difference \
             {worst}, mean {mean:.3}"
        );
        if a.clips.is_empty() || a.clips.len() != b.clips.len() || worst > 2 {
            ok = false;
        }
    }
    println!(
        "nvmm_transform_calls_per_buffer: {:.2}",
        batched16.calls_per_frame
    );
    println!(
        "nvmm_transform_calls_per_buffer_single: {:.2}",
        single16.calls_per_frame
    );
    if !ok {
        println!("GPU CHECK FAILED");
        return 1.into();
    }
    println!("GPU CHECK PASSED");
    0.into()
}
