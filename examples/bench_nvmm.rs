// SPDX-License-Identifier: MIT OR Apache-2.0
//! Streaming-thread CPU time per frame of `iguardverify`: NVMM input (through the CPU STAND-IN
//! of NVIDIA's surface libraries, `tests/nvmm_standin/`) against system-memory input, at the
//! same crop, frame size and tile. Not a test: it measures and prints.
//!
//! ```text
//! IGUARD_DEEPSTREAM_LIB_DIR=.../_libs cargo run --features testing --example bench_nvmm -- [FRAMES]
//! ```
//!
//! One 1920×1080 source, a person box of 480×640 on every frame, 112×112 tiles, 16-frame clips
//! with cooldown 0, so every frame after the first samples a tile. Each frame is pushed through
//! a `gst_check::Harness` on this thread; the figure is `CLOCK_THREAD_CPUTIME_ID` around the
//! push (the element runs on the pushing thread), averaged, with the same run without a trigger
//! (`idle`) for the fixed cost. With the stand-in, the NVMM figure includes the crop and scale
//! done on the CPU by the stand-in's `NvBufSurfTransform`; on a GPU that work is the GPU's and
//! the streaming thread only launches it, maps and copies the 112×112 tile.
//! Needs NVIDIA's `libnvds_meta.so` for the batch metas (`make deepstream-libs`).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/nvidia/mod.rs"]
mod nvidia;
#[path = "../tests/nvmm_standin/mod.rs"]
mod nvmm_standin;

use std::sync::Arc;

use common::*;
use gst::prelude::*;
use nvmm_standin::*;

const W: u32 = 1920;
const H: u32 = 1080;
const BOX: [f32; 4] = [700.0, 200.0, 480.0, 640.0];

fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
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

fn buffer(input: Input, format: &str, n: u64, trigger: bool) -> gst::Buffer {
    let mut b = match input {
        Input::Nvmm => {
            Batch::new(1, 1, W, H, if format == "NV12" { NV12 } else { RGBA }).into_buffer(n * 33)
        }
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
fn run(input: Input, format: &str, frames: u64, trigger: bool) -> (f64, f64) {
    let (e, _bus) = element(&[
        ("class-labels", &"0=person"),
        ("trigger-labels", &"person"),
        ("temporal-size", &16u32),
        ("cooldown", &0u32),
        ("input-width", &112u32),
        ("input-height", &112u32),
        ("roi-margin", &0.0f32),
    ]);
    set_scorer(&e, Arc::new(Recorder::default()));
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

fn main() {
    let frames: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    init();
    standin();
    println!(
        "streaming-thread CPU time per frame, {W}x{H}, crop 480x640 -> 112x112 tile, \
         {frames} frames, the NVMM path through the CPU stand-in of NVIDIA's surface libraries"
    );
    for format in ["RGBA", "NV12"] {
        for input in [Input::System, Input::Nvmm] {
            let name = match input {
                Input::System => "system-memory",
                Input::Nvmm => "NVMM (stand-in)",
            };
            let (idle, _) = run(input, format, frames, false);
            let (busy, transform) = run(input, format, frames, true);
            println!(
                "{format} {name:<16} idle {idle:7.1} us/frame  sampling {busy:7.1} us/frame  \
                 tile {:7.1} us  of it the stand-in's transform {transform:7.1} us  \
                 without it {:7.1} us",
                busy - idle,
                busy - idle - transform
            );
        }
    }
}
