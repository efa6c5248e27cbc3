// SPDX-License-Identifier: MIT OR Apache-2.0
//! One `NvBufSurfTransform` call per NVMM buffer (issue 24, item 3), against the per-tile
//! reference, through the CPU STAND-IN of NVIDIA's surface libraries (`nvmm_standin/`; not
//! NVIDIA's code) with batch metas made by NVIDIA's real `libnvds_meta.so` (`nvidia/mod.rs`).
//!
//! Covered: the reader alone cuts the same tiles bit for bit either way, a buffer's tiles in
//! one call (several when the budget is smaller), and refuses a bad tile when it is asked for;
//! the element with `nvmm-batch=true` and `false` on the same buffers (4 sources × 4 tracked
//! objects, RGBA and NV12) gives the same clips bit for bit with 1 call per buffer instead of
//! 16; a failed batched call falls back to one call per tile (same tiles, counted), and when
//! those fail too the clips end with an `error` verdict naming the call while the video flows;
//! a buffer carrying one source twice is read a tile at a time. The tests run one at a time
//! (`SERIAL`): they count the stand-in's calls and inject its failures.

mod common;
mod nvidia;
mod nvmm_standin;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use gst::prelude::*;
use gstiguard::clip::Clip;
use gstiguard::deepstream::surface::surface_lib;
use gstiguard::deepstream::tiles::{TileReader, TransformCounters};
use gstiguard::geometry::PixelRect;
use gstiguard::verdict::Status;
use nvmm_standin::*;

static SERIAL: Mutex<()> = Mutex::new(());

const SW: u32 = 192;
const SH: u32 = 128;
const TILE: u32 = 24;
const SOURCES: u32 = 4;
const OBJECTS: u32 = 4;

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every channel moves with x and y, differently per surface: a tile cut one pixel off or from
/// another surface differs.
fn paint(batch: &Batch) {
    for i in 0..SOURCES {
        batch.paint(i, move |x, y| {
            [
                (x * 3 + y + 17 * i) as u8,
                (y * 5 + x / 2 + 40 * i) as u8,
                (x ^ y).wrapping_mul(7 + i) as u8,
            ]
        });
    }
}

/// A region of every size class: whole frame, odd, tiny, at the edges.
fn regions() -> Vec<(u32, PixelRect)> {
    let r = |x, y, width, height| PixelRect {
        x,
        y,
        width,
        height,
    };
    vec![
        (0, r(0, 0, SW, SH)),
        (1, r(11, 7, 21, 15)),
        (2, r(2, 2, 2, 2)),
        (3, r(SW - 41, SH - 33, 41, 33)),
        (1, r(100, 3, 60, 90)),
        (0, r(5, 60, 31, 31)),
        (2, r(150, 90, 42, 38)),
        (3, r(64, 32, 64, 64)),
        (1, r(1, 1, 190, 126)),
        (2, r(80, 40, 17, 80)),
    ]
}

/// The deferred tiles, cut in calls of at most `budget` tiles, each into its own vector.
///
/// # Safety
/// `header` is a live stand-in surface's header, the one the tiles were deferred from.
unsafe fn cut(
    reader: &mut TileReader,
    header: &[u8],
    budget: u32,
) -> Result<Vec<Vec<u8>>, gstiguard::deepstream::surface::SurfaceError> {
    let mut tiles = vec![vec![0u8; (TILE * TILE * 3) as usize]; reader.deferred().len()];
    // SAFETY: the caller's contract.
    unsafe {
        reader.cut_deferred(header, TILE, TILE, budget, &mut |i, write| {
            write(&mut tiles[i])
        })
    }?;
    Ok(tiles)
}

#[test]
fn the_reader_cuts_the_same_tiles_in_one_call_as_in_one_call_each() {
    let _g = serial();
    standin();
    let lib = surface_lib().expect("the stand-in opens");
    for format in [RGBA, NV12] {
        let batch = Batch::new(SOURCES, SOURCES, SW, SH, format);
        paint(&batch);
        let header = batch.header().to_vec();
        let counters = Arc::new(TransformCounters::default());
        let mut reader = TileReader::new(lib, counters.clone());
        let n = (TILE * TILE * 3) as usize;
        let mut single = Vec::new();
        for &(index, region) in &regions() {
            let mut out = vec![0u8; n];
            // SAFETY: the stand-in surface's header, alive with `batch`.
            unsafe { reader.read_tile(&header, index, region, TILE, TILE, &mut out) }.unwrap();
            single.push(out);
        }
        let calls0 = standin().transform_calls();
        reader.begin_buffer();
        for &(index, region) in &regions() {
            // SAFETY: as above.
            unsafe { reader.defer(&header, index, region) }.unwrap();
        }
        // SAFETY: as above.
        let batched = unsafe { cut(&mut reader, &header, 64) }.unwrap();
        assert_eq!(
            standin().transform_calls() - calls0,
            1,
            "one call for the buffer"
        );
        for (i, want) in single.iter().enumerate() {
            assert!(batched[i] == *want, "format {format}: tile {i} differs");
        }
        // A budget of 3 tiles a call: ten tiles in four calls, the same tiles.
        let calls0 = standin().transform_calls();
        // SAFETY: as above.
        let batched = unsafe { cut(&mut reader, &header, 3) }.unwrap();
        assert_eq!(standin().transform_calls() - calls0, 4);
        assert_eq!(batched, single);
        let c = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(c(&counters.calls), 10 + 1 + 4);
        assert_eq!(c(&counters.tiles), 30);
        assert_eq!(c(&counters.batch_failures), 0);

        // A tile that cannot be read is refused when it is asked for; nothing is kept.
        reader.begin_buffer();
        let e = unsafe { reader.defer(&header, SOURCES, regions()[0].1) }.unwrap_err();
        assert!(e.to_string().contains("batch_id 4 is beyond"), "{e}");
        assert!(reader.deferred().is_empty());

        // A failed batched call keeps nothing and is counted.
        for &(index, region) in &regions() {
            unsafe { reader.defer(&header, index, region) }.unwrap();
        }
        standin().fail_next(1, 0);
        let e = unsafe { cut(&mut reader, &header, 64) }.unwrap_err();
        standin().fail_next(0, 0);
        let e = e.to_string();
        assert!(
            e.contains("NvBufSurfTransform failed (-2) cutting 10 tiles of 4 frame(s) in one call"),
            "{e}"
        );
        assert_eq!(c(&counters.batch_failures), 1);
    }
    assert_eq!(standin().maps_held(), 0, "a tile surface was left mapped");
}

fn element_for(
    batch: bool,
    extra: &[(&str, &dyn ToValue)],
) -> (gst::Element, gst::Bus, Arc<Recorder>) {
    // Before the element looks for the surface libraries (it keeps what it found).
    standin();
    let mut props: Vec<(&str, &dyn ToValue)> = vec![
        ("class-labels", &"0=person"),
        ("trigger-labels", &"person"),
        ("temporal-size", &2u32),
        ("cooldown", &0u32),
        ("input-width", &TILE),
        ("input-height", &TILE),
        ("roi-margin", &0.0f32),
        ("clip-per", &"object"),
        ("tracking", &"ids"),
        ("max-clips-per-source", &OBJECTS),
        ("nvmm-batch", &batch),
    ];
    props.extend_from_slice(extra);
    let (e, bus) = element(&props);
    let scorer = Arc::new(Recorder::default());
    set_scorer(&e, scorer.clone());
    (e, bus, scorer)
}

/// Frame metas of buffer `n`: every source with `OBJECTS` tracked people that move a little.
fn frames(n: u64) -> Vec<nvidia::Frame> {
    (0..SOURCES)
        .map(|s| {
            let mut f = nvidia::Frame::new(s, s, (s + 1) % SOURCES)
                .at(n as i32, n * 33_000_000)
                .size(SW, SH);
            for k in 0..OBJECTS {
                let x = (k * 45 + 3 + n as u32 * 3 + s) as f32;
                let y = (k * 17 + 5 + n as u32) as f32;
                f = f.object(nvidia::Object::new(0, 0.9, [x, y, 31.0, 47.0], "").id(k as u64 + 1));
            }
            f
        })
        .collect()
}

fn push(h: &mut gst_check::Harness, buffer: gst::Buffer, frames: &[nvidia::Frame]) {
    let mut b = buffer;
    nvidia::attach(b.get_mut().unwrap(), frames);
    h.push(b).expect("push");
    h.pull().expect("the buffer came out");
}

fn painted(format: u32) -> Batch {
    let b = Batch::new(SOURCES, SOURCES, SW, SH, format);
    paint(&b);
    b
}

/// Runs two buffers through an element; returns its clips (sorted by source and crop), its
/// verdicts, the stand-in's successful calls and the element's stats.
fn run(
    format: (&str, u32),
    batch: bool,
    before: &dyn Fn(u64),
) -> (Vec<Clip>, Vec<gstiguard::verdict::Verdict>, i32, Stats) {
    let (e, bus, scorer) = element_for(batch, &[]);
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_src_caps(nvmm_caps(format.0, SW, SH));
    let calls0 = standin().transform_calls();
    for n in 1..=2u64 {
        before(n);
        push(&mut h, painted(format.1).into_buffer(n * 33), &frames(n));
    }
    let calls = standin().transform_calls() - calls0;
    let mut verdicts = Vec::new();
    let want = (SOURCES * OBJECTS) as usize;
    wait_for("verdicts", Duration::from_secs(20), || {
        verdicts.extend(bus_verdicts(&bus));
        verdicts.len() >= want
    });
    let stats = Stats::of(&e);
    drop(h);
    let _ = e.set_state(gst::State::Null);
    let mut clips = scorer.clips.lock().unwrap().clone();
    clips.sort_by_key(|c| (c.source.source_id, c.region.x, c.region.y));
    (clips, verdicts, calls, stats)
}

fn assert_same_clips(format: &str, a: &[Clip], b: &[Clip]) {
    assert_eq!(a.len(), b.len(), "{format}");
    for (x, y) in a.iter().zip(b) {
        assert_eq!(
            (x.source.source_id, x.region, x.real_frames),
            (y.source.source_id, y.region, y.real_frames)
        );
        assert!(
            x.pixels == y.pixels,
            "{format}: source {} crop {:?}: the batched clip's pixels differ",
            x.source.source_id,
            x.region
        );
    }
}

#[test]
fn one_call_per_buffer_gives_the_clips_of_one_call_per_tile_bit_for_bit() {
    let _g = serial();
    with_watchdog(Duration::from_secs(120), || {
        let live = standin().live_surfaces();
        for format in [("RGBA", RGBA), ("NV12", NV12)] {
            let (single, _, single_calls, single_stats) = run(format, false, &|_| {});
            let (batched, verdicts, batched_calls, batched_stats) = run(format, true, &|_| {});
            let tiles = 2 * (SOURCES * OBJECTS) as i32;
            assert_eq!(single.len(), (SOURCES * OBJECTS) as usize);
            assert!(
                verdicts.iter().all(|v| v.status != Status::Error),
                "{verdicts:?}"
            );
            // 4 sources × 4 objects: 16 tiles a buffer, in 1 call instead of 16.
            assert_eq!(single_calls, tiles, "{}", format.0);
            assert_eq!(batched_calls, 2, "{}", format.0);
            assert_eq!(single_stats.u("nvmm-transform-calls"), tiles as u64);
            assert_eq!(batched_stats.u("nvmm-transform-calls"), 2);
            for s in [&single_stats, &batched_stats] {
                assert_eq!(s.u("nvmm-tiles"), tiles as u64);
                assert_eq!(s.u("nvmm-batch-failures"), 0);
                s.assert_adds_up();
            }
            assert_same_clips(format.0, &single, &batched);
            // And the tiles are pictures: no clip is left black, no two clips alike.
            for c in &batched {
                for t in 0..2 {
                    assert!(c.tile(t).iter().any(|&v| v != 0), "an empty tile");
                }
            }
            for (i, a) in batched.iter().enumerate() {
                assert!(batched[i + 1..].iter().all(|b| b.pixels != a.pixels));
            }
        }
        wait_for("surfaces released", Duration::from_secs(5), || {
            standin().live_surfaces() == live
        });
        assert_eq!(standin().maps_held(), 0);
    });
}

#[test]
fn a_failed_batched_call_falls_back_to_one_call_per_tile_then_to_error_verdicts() {
    let _g = serial();
    with_watchdog(Duration::from_secs(120), || {
        let format = ("NV12", NV12);
        let (reference, _, _, _) = run(format, false, &|_| {});
        // The first buffer's batched call fails: its 16 tiles are cut one call each.
        let (clips, verdicts, calls, stats) = run(format, true, &|n| {
            standin().fail_next(if n == 1 { 1 } else { 0 }, 0)
        });
        assert!(
            verdicts.iter().all(|v| v.status != Status::Error),
            "{verdicts:?}"
        );
        assert_eq!(calls, 16 + 1);
        assert_eq!(stats.u("nvmm-batch-failures"), 1);
        assert_eq!(stats.u("nvmm-transform-calls"), 1 + 16 + 1);
        assert_eq!(stats.u("nvmm-tiles"), 32);
        assert_same_clips(format.0, &reference, &clips);

        // The per-tile calls fail too: every clip ends with an error naming the call, and the
        // buffers still flow (each push above pulled its buffer back).
        let (clips, verdicts, _, stats) = run(format, true, &|n| {
            standin().fail_next(if n == 1 { 1 } else { 0 }, if n == 1 { 1000 } else { 0 })
        });
        standin().fail_next(0, 0);
        assert!(clips.is_empty(), "{} clips scored", clips.len());
        assert_eq!(verdicts.len(), (SOURCES * OBJECTS) as usize);
        for v in &verdicts {
            assert_eq!(v.status, Status::Error, "{v:?}");
            assert!(
                v.reason
                    .starts_with("sampling failed: NvBufSurfTransform failed (-2) cropping"),
                "{}",
                v.reason
            );
        }
        assert_eq!(stats.u("nvmm-batch-failures"), 1);
        stats.assert_adds_up();
    });
}

#[test]
fn a_buffer_carrying_one_source_twice_is_read_a_tile_at_a_time() {
    let _g = serial();
    with_watchdog(Duration::from_secs(60), || {
        let (e, _bus, _scorer) = element_for(true, &[("temporal-size", &4u32)]);
        let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
        h.set_src_caps(nvmm_caps("RGBA", SW, SH));
        let calls0 = standin().transform_calls();
        // Source 0 at batch ids 0 and 1, two objects each.
        let f = |b: u32| {
            nvidia::Frame::new(0, 0, b)
                .at(b as i32, b as u64 * 33_000_000)
                .size(SW, SH)
                .object(nvidia::Object::new(0, 0.9, [10.0, 10.0, 30.0, 40.0], "").id(1))
                .object(nvidia::Object::new(0, 0.9, [100.0, 50.0, 30.0, 40.0], "").id(2))
        };
        let b = Batch::new(2, 2, SW, SH, RGBA);
        push(&mut h, b.into_buffer(33), &[f(0), f(1)]);
        let calls = standin().transform_calls() - calls0;
        let stats = Stats::of(&e);
        assert_eq!(calls, 4, "two frames × two objects, one call each");
        assert_eq!(stats.u("nvmm-tiles"), 4);
        assert_eq!(stats.u("nvmm-transform-calls"), 4);
        drop(h);
        let _ = e.set_state(gst::State::Null);
    });
}
