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
//! `libnvds_meta.so`: one frame, batch_id 0, a person box) to every buffer, as `nvstreammux !
//! nvinfer` would. Both runs see the same frames (`videotestsrc pattern=smpte`, no motion), so
//! their tiles are compared pixel by pixel; the streaming thread's CPU time per frame inside
//! `iguardverify` is measured by probes on its two pads (`CLOCK_THREAD_CPUTIME_ID`, an in-place
//! transform runs on the thread that pushes). Prints the figures, exits 1 if the tiles differ
//! beyond 16 levels on a pixel or 3 on average (the two paths convert NV12 differently).

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
fn run(nvmm: bool) -> Result<(Vec<Clip>, f64), String> {
    let convert = if nvmm {
        "nvvideoconvert ! video/x-raw(memory:NVMM),format=NV12"
    } else {
        "videoconvert ! video/x-raw,format=NV12"
    };
    let desc = format!(
        "videotestsrc num-buffers={FRAMES} pattern=smpte ! video/x-raw,width={w},height={h},\
         framerate=30/1 ! {convert} ! identity name=meta ! iguardverify name=v \
         class-labels=0=person trigger-labels=person temporal-size=16 cooldown=0 \
         input-width=112 input-height=112 roi-margin=0 ! fakesink",
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
                let f = nvidia::Frame::new(0, 0, 0)
                    .at(*k as i32, *k * 33_000_000)
                    .size(common::W, common::H)
                    .object(nvidia::Object::new(0, 0.9, BOX, ""));
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
    let _ = pipeline.set_state(gst::State::Null);
    if let Some(f) = failure {
        return Err(f);
    }
    let (_, total, frames) = *entered.lock().unwrap();
    let mut clips = recorder.0.lock().unwrap().clone();
    clips.sort_by_key(|c| c.request_id);
    Ok((clips, total as f64 / frames.max(1) as f64 / 1000.0))
}

fn main() -> std::process::ExitCode {
    gst::init().unwrap();
    gstiguard::plugin_register_static().unwrap();
    nvidia::lib();
    nvidia::gst_lib();
    // A smoke run of the harness where there is no GPU: the system-memory path alone.
    if std::env::args().any(|a| a == "--system-only") {
        return match run(false) {
            Ok((clips, us)) => {
                println!(
                    "system memory only: {} clips, {us:.1} us per frame",
                    clips.len()
                );
                if clips.is_empty() { 1.into() } else { 0.into() }
            }
            Err(e) => {
                eprintln!("system-memory run failed: {e}");
                2.into()
            }
        };
    }
    let (nvmm, nvmm_us) = match run(true) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("NVMM run failed: {e}");
            return 2.into();
        }
    };
    let (system, system_us) = match run(false) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("system-memory run failed: {e}");
            return 2.into();
        }
    };
    println!("clips: NVMM {}, system memory {}", nvmm.len(), system.len());
    println!(
        "iguardverify streaming-thread CPU per frame: NVMM {nvmm_us:.1} us, system memory {system_us:.1} us"
    );
    let (mut worst, mut sum, mut count) = (0i32, 0u64, 0u64);
    for (a, b) in nvmm.iter().zip(&system) {
        for (x, y) in a.pixels.iter().zip(&b.pixels) {
            let d = (*x as i32 - *y as i32).abs();
            worst = worst.max(d);
            sum += d as u64;
            count += 1;
        }
    }
    let mean = sum as f64 / count.max(1) as f64;
    println!("tiles compared: {count} bytes, largest difference {worst}, mean {mean:.2}");
    if nvmm.is_empty() || nvmm.len() != system.len() || worst > 16 || mean > 3.0 {
        println!("GPU CHECK FAILED");
        return 1.into();
    }
    println!("GPU CHECK PASSED");
    0.into()
}
