// SPDX-License-Identifier: MIT OR Apache-2.0
//! `iguardverify` on NVMM (`video/x-raw(memory:NVMM)`) batches, the way they come out of
//! `nvstreammux ! nvinfer`: the pixels are read through a CPU STAND-IN of NVIDIA's
//! `libnvbufsurface.so` / `libnvbufsurftransform.so` (`nvmm_standin/nvbufsurface_standin.c`; not
//! NVIDIA's code, which needs CUDA), the batch metas are made by NVIDIA's real
//! `libnvds_meta.so` 9.0 (`nvidia/mod.rs`; the tests fail without it).
//!
//! Covered: RGBA and NV12 batches of 1 and 4, each source's tile from its own surface; crop
//! position and size against the system-memory path on the same frames (RGBA within 2 levels,
//! NV12 within 16 levels per pixel and 3 on average: the two paths convert chroma differently);
//! pitch ≠ width; odd crops (rounded to even); an index beyond numFilled, a null surface list,
//! block-linear and unsupported colour formats, a header of another release, memory that is
//! not NVIDIA's (a system-memory buffer under NVMM caps) and header fields out of bounds (a
//! clear reason naming the value, no crash, the video flows); stats add up; no surface or
//! mapping is held after a run. The buffers' memory comes from a stand-in of DeepStream's
//! allocator (memory type `nvds`, `nvmm_standin/mod.rs`).
//! The tests of this binary run one at a time (`SERIAL`): they count the stand-in's surfaces.

mod common;
mod nvidia;
mod nvmm_standin;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use gst::prelude::*;
use gstiguard::deepstream::surface::even_crop;
use gstiguard::geometry::PixelRect;
use gstiguard::sampler::Sampler;
use gstiguard::verdict::{Status, Verdict};
use nvmm_standin::*;

static SERIAL: Mutex<()> = Mutex::new(());

const CLASS_LABELS: &str = "0=person,1=bag,2=weapon";
const TILE: u32 = 16;
const SW: u32 = 96;
const SH: u32 = 64;
/// One colour per surface.
const COLOURS: [[u8; 3]; 4] = [[200, 30, 30], [30, 200, 30], [30, 30, 200], [200, 200, 40]];

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn nvmm_element(extra: &[(&str, &dyn ToValue)]) -> (gst::Element, gst::Bus, Arc<Recorder>) {
    standin();
    let mut props: Vec<(&str, &dyn ToValue)> = vec![
        ("class-labels", &CLASS_LABELS),
        ("trigger-labels", &"person,weapon"),
        ("temporal-size", &2u32),
        ("cooldown", &0u32),
        ("input-width", &TILE),
        ("input-height", &TILE),
        ("roi-margin", &0.0f32),
        // The crop is the trigger box itself (one clip per source, no margin), so the tiles
        // of both paths can be compared pixel for pixel.
        ("clip-per", &"source"),
    ];
    props.extend_from_slice(extra);
    let (e, bus) = element(&props);
    let scorer = Arc::new(Recorder::default());
    set_scorer(&e, scorer.clone());
    (e, bus, scorer)
}

fn harness(e: &gst::Element, format: &str) -> gst_check::Harness {
    let mut h = gst_check::Harness::with_element(e, Some("sink"), Some("src"));
    h.set_src_caps(nvmm_caps(format, SW, SH));
    h
}

/// Frame metas: source `s` at `batch_ids[s]`, each with a person at `rect` (x, y, w, h).
fn metas(n: u64, batch_ids: &[u32], rect: (f32, f32, f32, f32)) -> Vec<nvidia::Frame> {
    batch_ids
        .iter()
        .enumerate()
        .map(|(s, &b)| {
            nvidia::Frame::new(s as u32, s as u32, b)
                .at(n as i32, n * 33_000_000)
                .size(SW, SH)
                .object(nvidia::Object::new(
                    0,
                    0.9,
                    [rect.0, rect.1, rect.2, rect.3],
                    "",
                ))
        })
        .collect()
}

/// Pushes `batch` with `frames` as buffer `n`; checks the buffer came out with its memory
/// untouched (the same 72 bytes: no copy of the surface, no new memory).
fn push(h: &mut gst_check::Harness, n: u64, batch: Batch, frames: &[nvidia::Frame]) {
    push_buffer(h, batch.into_buffer(n * 33), frames);
}

/// Pushes `b` with `frames`; checks it came out with the same memories and bytes.
fn push_buffer(h: &mut gst_check::Harness, mut b: gst::Buffer, frames: &[nvidia::Frame]) {
    nvidia::attach(b.get_mut().unwrap(), frames);
    // Each memory mapped alone: mapping the buffer would merge several into one.
    let bytes = |b: &gst::BufferRef| -> Vec<Vec<u8>> {
        b.iter_memories()
            .map(|m| m.map_readable().unwrap().to_vec())
            .collect()
    };
    let before = bytes(&b);
    h.push(b).expect("push");
    let out = h.pull().expect("the buffer came out");
    assert_eq!(bytes(&out), before);
}

fn wait_verdicts(bus: &gst::Bus, n: usize) -> Vec<Verdict> {
    let mut all = Vec::new();
    wait_for("verdicts", Duration::from_secs(20), || {
        all.extend(bus_verdicts(bus));
        all.len() >= n
    });
    assert_eq!(all.len(), n, "{all:?}");
    all
}

fn stop(e: &gst::Element, h: gst_check::Harness) {
    drop(h);
    let _ = e.set_state(gst::State::Null);
}

/// Every surface and mapping the run made is gone (the test's buffers are dropped by now).
fn assert_nothing_held(live_before: i32) {
    let s = standin();
    wait_for("surfaces released", Duration::from_secs(5), || {
        s.live_surfaces() == live_before
    });
    assert_eq!(s.maps_held(), 0, "a tile surface was left mapped");
}

#[test]
fn rgba_and_nv12_batches_of_1_and_4_take_each_tile_from_its_own_surface() {
    let _g = serial();
    with_watchdog(Duration::from_secs(120), || {
        for (format, fmt, tolerance) in [("RGBA", RGBA, 2i32), ("NV12", NV12, 8)] {
            for n_sources in [1u32, 4] {
                let live = standin().live_surfaces();
                let transforms = standin().transforms();
                let calls = standin().transform_calls();
                let (e, bus, scorer) = nvmm_element(&[]);
                let mut h = harness(&e, format);
                // Source s's frame is at batch_id (s + 1) % n: not in source order.
                let ids: Vec<u32> = (0..n_sources).map(|s| (s + 1) % n_sources).collect();
                for n in 1..=2u64 {
                    let batch = Batch::new(n_sources, n_sources, SW, SH, fmt);
                    for i in 0..n_sources {
                        let c = COLOURS[i as usize];
                        batch.paint(i, |_, _| c);
                    }
                    push(&mut h, n, batch, &metas(n, &ids, (20.0, 10.0, 40.0, 30.0)));
                }
                let verdicts = wait_verdicts(&bus, n_sources as usize);
                assert!(
                    verdicts.iter().all(|v| v.status != Status::Error),
                    "{verdicts:?}"
                );
                let clips = scorer.clips.lock().unwrap().clone();
                assert_eq!(clips.len(), n_sources as usize);
                for clip in &clips {
                    let s = clip.source.source_id;
                    let want = COLOURS[ids[s as usize] as usize];
                    assert_eq!(clip.real_frames, 2);
                    for t in 0..2 {
                        for px in clip.tile(t).chunks_exact(3) {
                            for k in 0..3 {
                                assert!(
                                    (px[k] as i32 - want[k] as i32).abs() <= tolerance,
                                    "{format} x{n_sources}: source {s} tile {t} has {px:?}, \
                                     its surface {want:?}"
                                );
                            }
                        }
                    }
                }
                // Two tiles per source, each through NVIDIA's (here: the stand-in's) transform,
                // one call per buffer (nvmm-batch=true).
                assert_eq!(standin().transforms() - transforms, 2 * n_sources as i32);
                assert_eq!(standin().transform_calls() - calls, 2);
                Stats::of(&e).assert_adds_up();
                stop(&e, h);
                assert_nothing_held(live);
            }
        }
    });
}

/// R and G grow with x and y, B names the surface: a tile shows where it was cut from.
fn gradient(i: u32) -> impl Fn(u32, u32) -> [u8; 3] {
    move |x, y| [(x * 2 + 20) as u8, (y * 3 + 20) as u8, (60 + 40 * i) as u8]
}

/// The system-memory path's tile of `region` of entry `i`, from a packed copy of its pixels.
fn system_tile(batch: &Batch, i: u32, region: PixelRect) -> Vec<u8> {
    let format = if batch.format == NV12 {
        gst_video::VideoFormat::Nv12
    } else {
        gst_video::VideoFormat::Rgba
    };
    let info = gst_video::VideoInfo::builder(format, batch.width, batch.height)
        .build()
        .unwrap();
    let buf = gst::Buffer::from_mut_slice(batch.system_copy(i));
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buf.as_ref(), &info).unwrap();
    let mut out = vec![0u8; (TILE * TILE * 3) as usize];
    Sampler::new()
        .sample(&frame, region, TILE, TILE, &mut out)
        .unwrap();
    out
}

#[test]
fn nvmm_tiles_match_the_system_memory_path_at_the_crop_position_and_size() {
    let _g = serial();
    with_watchdog(Duration::from_secs(120), || {
        // Even and odd crops; the odd one is read at its even rounding (NVIDIA's transform
        // wants even crops), so it is compared with the system path at that rounding.
        let cases = [
            ((8.0, 6.0, 48.0, 32.0), false),
            ((11.0, 7.0, 21.0, 15.0), true),
            ((0.0, 0.0, SW as f32, SH as f32), false),
        ];
        for (format, fmt, max_diff, max_mean) in
            [("RGBA", RGBA, 2i32, 1.0f64), ("NV12", NV12, 16, 3.0)]
        {
            for (rect, odd) in cases {
                let (e, bus, scorer) = nvmm_element(&[]);
                let mut h = harness(&e, format);
                let mut kept = Vec::new();
                for n in 1..=2u64 {
                    let batch = Batch::new(4, 4, SW, SH, fmt);
                    for i in 0..4 {
                        batch.paint(i, gradient(i));
                    }
                    // pitch ≠ width × bytes per pixel in every plane.
                    let bpp = if fmt == NV12 { 1 } else { 4 };
                    assert_ne!(batch.plane(2, 0).pitch, (SW * bpp) as usize);
                    // The reference tile is cut from this same frame, before it is pushed.
                    let region = PixelRect {
                        x: rect.0 as u32,
                        y: rect.1 as u32,
                        width: rect.2 as u32,
                        height: rect.3 as u32,
                    };
                    let read = even_crop(region, SW, SH);
                    assert_eq!(read != region, odd);
                    kept.push(system_tile(&batch, 2, read));
                    let frames = metas(n, &[0, 1, 2, 3], rect);
                    push(&mut h, n, batch, &frames);
                }
                wait_verdicts(&bus, 4);
                let clips = scorer.clips.lock().unwrap().clone();
                let clip = clips.iter().find(|c| c.source.source_id == 2).unwrap();
                for (t, want) in kept.iter().enumerate() {
                    let got = clip.tile(t);
                    let diffs: Vec<i32> = got
                        .iter()
                        .zip(want)
                        .map(|(a, b)| (*a as i32 - *b as i32).abs())
                        .collect();
                    let worst = *diffs.iter().max().unwrap();
                    let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
                    assert!(
                        worst <= max_diff && mean <= max_mean,
                        "{format} crop {rect:?}: NVMM tile differs from the system path by up \
                         to {worst} (mean {mean:.2})"
                    );
                    // And it is the surface of source 2 at that place: B = 60 + 40 × 2, R at
                    // the tile's top-left ≈ the crop's left edge.
                    let b = got[2] as i32;
                    assert!((b - 140).abs() <= max_diff, "{format}: blue {b}");
                    let r0 = got[0] as i32;
                    let left = 20 + 2 * even_crop(clip.region, SW, SH).x as i32;
                    assert!(
                        (r0 - left).abs() <= 4 + max_diff,
                        "{format}: red {r0} at the left edge, want ≈{left}"
                    );
                }
                Stats::of(&e).assert_adds_up();
                stop(&e, h);
            }
        }
    });
}

/// Makes the surface batch of one case.
type MakeBatch = Box<dyn Fn() -> Batch>;

/// One frame meta at `batch_id` on a buffer of `make()`; returns its clip's verdict.
fn one_bad_batch(format: &str, make: impl Fn() -> Batch, batch_id: u32) -> (Verdict, gst::Element) {
    one_bad_buffer(format, || make().into_buffer(33), batch_id)
}

/// As [`one_bad_batch`], for a buffer made whole by `make()`.
fn one_bad_buffer(
    format: &str,
    make: impl Fn() -> gst::Buffer,
    batch_id: u32,
) -> (Verdict, gst::Element) {
    let (e, bus, scorer) = nvmm_element(&[]);
    let mut h = harness(&e, format);
    // One buffer: with cooldown=0 every further one would trigger (and fail) again.
    push_buffer(
        &mut h,
        make(),
        &metas(1, &[batch_id], (8.0, 8.0, 32.0, 32.0)),
    );
    let v = wait_verdicts(&bus, 1).remove(0);
    assert!(
        scorer.clips.lock().unwrap().is_empty(),
        "no clip reached the scorer"
    );
    Stats::of(&e).assert_adds_up();
    stop(&e, h);
    (v, e)
}

#[test]
fn unreadable_surfaces_end_their_clip_with_a_reason_and_the_video_flows() {
    let _g = serial();
    with_watchdog(Duration::from_secs(120), || {
        let live = standin().live_surfaces();
        let cases: Vec<(&str, MakeBatch, u32, &str)> = vec![
            (
                "RGBA",
                Box::new(|| Batch::new(4, 2, SW, SH, RGBA)),
                3,
                "frame batch_id 3 is beyond the NvBufSurface's numFilled=2 (batchSize=4)",
            ),
            (
                "RGBA",
                Box::new(|| Batch::new(1, 1, SW, SH, RGBA).mangle_header(|h| h[24..32].fill(0))),
                0,
                "the NvBufSurface has a null surfaceList",
            ),
            (
                "NV12",
                Box::new(|| {
                    let b = Batch::new(2, 2, SW, SH, NV12);
                    b.set_layout(1, 1);
                    b
                }),
                1,
                "surface 1 is block-linear (layout=1)",
            ),
            (
                "RGBA",
                Box::new(|| Batch::new(1, 1, SW, SH, GRAY8)),
                0,
                "surface 0 has colour format 1 (GRAY8)",
            ),
            (
                "RGBA",
                Box::new(|| Batch::new(1, 1, SW, SH, RGBA).mangle_header(|h| h.truncate(64))),
                0,
                "the NVMM buffer's memory is 64 bytes, not an NvBufSurface of the loaded \
                 libnvbufsurface.so (72 bytes with its 416-byte surfaceList entries)",
            ),
        ];
        for (format, make, id, words) in cases {
            let (v, _e) = one_bad_batch(format, make, id);
            assert_eq!(v.status, Status::Error, "{v:?}");
            assert!(v.reason.contains(words), "{words:?} not in {:?}", v.reason);
        }
        assert_nothing_held(live);
    });
}

/// Makes the whole buffer of one case.
type MakeBuffer = Box<dyn Fn() -> gst::Buffer>;

/// Sets the `u32` at `offset` of a mangled header.
fn set_u32(h: &mut [u8], offset: usize, v: u32) {
    h[offset..offset + 4].copy_from_slice(&v.to_ne_bytes());
}

/// Issue 19, item 3: nothing is read as an `NvBufSurface` before the buffer's memory is known
/// to be NVIDIA's and its header's fields are within bounds. A system-memory buffer under NVMM
/// caps, of either header size, is refused with its allocator named; a header with an unknown
/// `memType`, a `batchSize` of 0 or of garbage, more filled entries than its batch, or a
/// misaligned `surfaceList` is refused with the value named. The clip ends `error`, the video
/// flows, stats add up and nothing is held.
#[test]
fn memory_that_is_not_a_sound_nvidia_surface_is_refused_with_what_was_found() {
    let _g = serial();
    with_watchdog(Duration::from_secs(120), || {
        let live = standin().live_surfaces();
        let mangled = |f: fn(&mut Vec<u8>)| -> MakeBuffer {
            Box::new(move || {
                Batch::new(2, 1, SW, SH, RGBA)
                    .mangle_header(f)
                    .into_buffer(33)
            })
        };
        let cases: Vec<(MakeBuffer, &[&str])> = vec![
            (
                // A well-formed 8.0+ header, but in system memory.
                Box::new(|| Batch::new(1, 1, SW, SH, RGBA).into_system_buffer(33)),
                &[
                    "the NVMM buffer's memory (72 bytes) comes from allocator",
                    "of memory type 'RustGlobalAllocatorMemory', not from one of NVIDIA's NVMM \
                     allocators (memory types nvds, V4l2Memory, nvfilter, nvarguscam)",
                    "memory:NVMM caps",
                ],
            ),
            (
                // 64 bytes (the size of a 7.x header) of system memory.
                Box::new(|| gst::Buffer::from_slice(vec![0u8; 64])),
                &["memory (64 bytes)", "'RustGlobalAllocatorMemory'"],
            ),
            (
                Box::new(|| {
                    let mut b = Batch::new(1, 1, SW, SH, RGBA).into_buffer(33);
                    b.get_mut()
                        .unwrap()
                        .append_memory(gst::Memory::from_slice(vec![0u8; 8]));
                    b
                }),
                &["the NVMM buffer holds 2 memories, not one"],
            ),
            (
                mangled(|h| set_u32(h, 16, 7)),
                &["the NvBufSurface's memType is 7, not an NvBufSurfaceMemType"],
            ),
            (
                mangled(|h| set_u32(h, 16, 0xdead_beef)),
                &["memType is 3735928559"],
            ),
            (
                mangled(|h| set_u32(h, 4, 0)),
                &["the NvBufSurface's batchSize is 0, not 1 to 4096"],
            ),
            (
                mangled(|h| set_u32(h, 4, 0x7fff_ffff)),
                &["batchSize is 2147483647, not 1 to 4096"],
            ),
            (
                mangled(|h| set_u32(h, 8, 5)),
                &["numFilled=5 is more than its batchSize=2"],
            ),
            (
                mangled(|h| {
                    let list = u64::from_ne_bytes(h[24..32].try_into().unwrap()) + 4;
                    h[24..32].copy_from_slice(&list.to_ne_bytes());
                }),
                &["surfaceList", "is not 8-byte aligned"],
            ),
        ];
        for (make, words) in cases {
            let (v, _e) = one_bad_buffer("RGBA", make, 0);
            assert_eq!(v.status, Status::Error, "{v:?}");
            for w in words {
                assert!(v.reason.contains(w), "{w:?} not in {:?}", v.reason);
            }
        }
        assert_nothing_held(live);
    });
}

#[test]
fn nvmm_caps_are_accepted_on_both_pads() {
    init();
    let f = gst::ElementFactory::find("iguardverify").unwrap();
    for dir in [gst::PadDirection::Sink, gst::PadDirection::Src] {
        let t = f
            .static_pad_templates()
            .into_iter()
            .find(|t| t.direction() == dir)
            .unwrap();
        for format in ["NV12", "RGBA"] {
            assert!(
                t.caps().can_intersect(&nvmm_caps(format, 1920, 1080)),
                "{dir:?} refuses NVMM {format}"
            );
        }
    }
}

/// Run by [`the_leaks_tracer_finds_no_object_alive_with_nvmm_buffers`] in a process of its own
/// with the leaks tracer on: NVMM batches of four sources through the element, then
/// `gst_deinit`, where the tracer lists what is still alive.
#[test]
#[ignore = "run by the_leaks_tracer_finds_no_object_alive_with_nvmm_buffers"]
fn nvmm_run_under_the_leaks_tracer() {
    {
        let (e, bus, _scorer) = nvmm_element(&[]);
        let mut h = harness(&e, "NV12");
        for n in 1..=4u64 {
            let batch = Batch::new(4, 4, SW, SH, NV12);
            for i in 0..4 {
                batch.paint(i, gradient(i));
            }
            push(
                &mut h,
                n,
                batch,
                &metas(n, &[0, 1, 2, 3], (8.0, 6.0, 48.0, 32.0)),
            );
        }
        wait_verdicts(&bus, 8);
        stop(&e, h);
        e.set_bus(None::<&gst::Bus>);
    }
    assert_eq!(standin().maps_held(), 0);
    // SAFETY: every GStreamer object of this process is gone; nothing runs after this.
    unsafe { gst::deinit() };
}

#[test]
fn the_leaks_tracer_finds_no_object_alive_with_nvmm_buffers() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "nvmm_run_under_the_leaks_tracer",
            "--ignored",
            "--test-threads=1",
        ])
        .env("GST_TRACERS", "leaks")
        .env("GST_DEBUG", "GST_TRACER:7")
        .env("GST_DEBUG_NO_COLOR", "1")
        .output()
        .expect("run this test binary again");
    let log = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{log}");
    assert!(stdout.contains("1 passed"), "{stdout}");
    assert!(log.contains("leaks"), "the leaks tracer did not run: {log}");
    let alive: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("object-alive, type-name=(string)") && !l.contains("%s"))
        .collect();
    assert!(
        alive.is_empty(),
        "{} objects alive at exit:\n{}",
        alive.len(),
        alive.join("\n")
    );
}

/// The stand-in refuses what NVIDIA's libraries refuse (or crash on), so the element tests that
/// pass through it are not passing by leniency: device memory does not map, a transform needs
/// session parameters on its thread, a whole batch into a batch-1 destination is refused, and
/// a single-frame view whose list is off the 416-byte entry stride (a reader using 384) too.
#[test]
fn the_stand_in_refuses_what_nvidia_refuses() {
    let _g = serial();
    let s = standin();
    let src = Batch::new(4, 4, SW, SH, RGBA);
    let dst = Batch::with_memory(1, 1, TILE, TILE, RGBA, 3);
    unsafe {
        assert_eq!((s.map)(src.ptr(), 0, 0, 0), -1, "CUDA_DEVICE memory maps");
        assert_eq!(
            (s.map)(dst.ptr(), 0, 0, 0),
            0,
            "CUDA_UNIFIED memory does not map"
        );
    }
    let mut rect = [0u8; 48];
    rect[8..12].copy_from_slice(&16u32.to_ne_bytes());
    rect[12..16].copy_from_slice(&16u32.to_ne_bytes());
    let mut params = [0u8; 64];
    params[0..4].copy_from_slice(&3u32.to_ne_bytes()); // CROP_SRC | CROP_DST
    params[16..24].copy_from_slice(&(rect.as_ptr() as usize as u64).to_ne_bytes());
    params[24..32].copy_from_slice(&(rect.as_ptr() as usize as u64).to_ne_bytes());
    let (src_ptr, dst_ptr, params_ptr) = (
        src.ptr() as usize,
        dst.ptr() as usize,
        params.as_mut_ptr() as usize,
    );
    // A thread that never set session parameters.
    let code = std::thread::spawn(move || unsafe {
        (standin().transform)(src_ptr as _, dst_ptr as _, params_ptr as _)
    })
    .join()
    .unwrap();
    assert_eq!(code, -2, "a transform without a session on its thread");
    let mut config = [0u8; 48];
    unsafe {
        assert_eq!((s.set_session)(config.as_mut_ptr().cast()), 0);
        assert_eq!(
            (s.transform)(src.ptr(), dst.ptr(), params.as_mut_ptr().cast()),
            -3,
            "a batch of 4 into a batch-1 destination"
        );
        let mut good = src.view(src.entry(2));
        assert_eq!(
            (s.transform)(
                good.as_mut_ptr().cast(),
                dst.ptr(),
                params.as_mut_ptr().cast()
            ),
            0,
            "a single-frame view of entry 2"
        );
        let mut off = src.view(src.entry(0).add(2 * 384));
        assert_eq!(
            (s.transform)(
                off.as_mut_ptr().cast(),
                dst.ptr(),
                params.as_mut_ptr().cast()
            ),
            -3,
            "a view at the 384-byte stride"
        );
    }
}
