// SPDX-License-Identifier: MIT OR Apache-2.0
//! Bounded work and memory whatever the metadata says (issue 19, item 1), through the real
//! element: 20,000 overlapping person boxes on every frame, a circular DeepStream object list,
//! and one batch of many cameras each full of people.
//!
//! The heap is measured, not the RSS: this binary counts the bytes its Rust allocator holds
//! (live and the most at once), so the figures are exact and free of the page cache's noise.
//! The tests share the counter, so they run one at a time (`SERIAL`).

mod common;
mod standin;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Allocations made by this thread (the one pushing, where `transform_ip` runs).
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_allocation() {
    // `try_with`: a thread being torn down has no thread-locals left.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every call goes to the system allocator unchanged; only the counts are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed)
                    + (new_size - layout.size());
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

static SERIAL: Mutex<()> = Mutex::new(());

/// Pushes `buf` and pulls it back; returns how far the heap rose above its level before.
fn push_measured(h: &mut gst_check::Harness, buf: gst::Buffer) -> usize {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    h.push(buf).expect("push");
    h.pull().expect("pull");
    PEAK.load(Ordering::Relaxed).saturating_sub(before)
}

/// The most the heap may rise while one frame goes through. A frame of 20,000 boxes is read
/// into about 2 MB of detections; what the bound guards against is the association pairing
/// every track with every box (256 × 20,000 pairs: over 120 MB a frame).
const FRAME_HEAP_BOUND: usize = 32 << 20;

/// A frame with `n` person boxes, all overlapping around the frame's centre, without ids,
/// confidences spread over 0.5–1.0.
fn crowded_frame(n: u32, pts_ms: u64) -> gst::Buffer {
    let mut buf = frame((0, 0, 1, 1), pts_ms);
    let b = buf.get_mut().unwrap();
    for i in 0..n {
        let (x, y) = (100 + i % 17, 60 + i % 13);
        let mut m = gst_video::VideoRegionOfInterestMeta::add(b, "person", (x, y, 40, 80));
        m.add_param(
            gst::Structure::builder("detection")
                .field("confidence", 0.5 + (i % 1000) as f64 / 2000.0)
                .build(),
        );
    }
    buf
}

#[test]
fn twenty_thousand_overlapping_boxes_a_frame_keep_memory_flat_and_end_every_request_once() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    with_watchdog(Duration::from_secs(300), || {
        const BOXES: u32 = 20_000;
        const FRAMES: u64 = 12;
        // Default bounds; small tiles so the clips themselves weigh little.
        let (e, bus) = element(&[
            ("temporal-size", &4u32),
            ("input-width", &16u32),
            ("input-height", &16u32),
            ("cooldown", &0u32),
        ]);
        set_scorer(&e, Arc::new(Recorder::default()));
        let mut h = harness(&e);
        let frames: Vec<gst::Buffer> = (0..FRAMES).map(|i| crowded_frame(BOXES, i * 33)).collect();
        let mut rises = Vec::new();
        let mut live_after = Vec::new();
        for buf in frames {
            rises.push(push_measured(&mut h, buf));
            live_after.push(LIVE.load(Ordering::Relaxed));
        }
        let worst = rises.iter().copied().max().unwrap();
        assert!(
            worst < FRAME_HEAP_BOUND,
            "a frame of {BOXES} boxes raised the heap by {} MiB (bound {} MiB): {rises:?}",
            worst >> 20,
            FRAME_HEAP_BOUND >> 20
        );
        // Flat: from the 3rd frame on, nothing builds up from frame to frame.
        let (early, late) = (live_after[2], live_after[FRAMES as usize - 1]);
        assert!(
            late <= early + (1 << 20),
            "the heap grew from {early} to {late} bytes over {} frames",
            FRAMES - 3
        );
        let (v, s) = {
            h.push_event(gst::event::Eos::new());
            (bus_verdicts(&bus), Stats::of(&e))
        };
        s.assert_adds_up();
        assert_eq!(v.len() as u64, s.u("submitted"), "one verdict per request");
        assert_eq!(s.u("pending"), 0);
        // The element says what it left out, and what it kept is bounded.
        assert_eq!(
            s.u("detections-capped"),
            FRAMES * (BOXES as u64 - 64),
            "{}",
            s.0
        );
        assert!(s.u("tracks") <= 256, "{}", s.0);
        assert!(s.u("clips-most-collecting") <= 8, "{}", s.0);
        assert!(s.u("submitted") > 0, "the crowd triggers clips: {}", s.0);
    });
}

#[test]
fn a_circular_deepstream_object_list_keeps_memory_flat() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    with_watchdog(Duration::from_secs(300), || {
        use standin::{Batch, Frame};
        const FRAMES: u64 = 6;
        let (e, bus) = element(&[
            ("class-labels", &"0=person"),
            ("temporal-size", &4u32),
            ("input-width", &16u32),
            ("input-height", &16u32),
        ]);
        set_scorer(&e, Arc::new(Recorder::default()));
        let mut h = harness(&e);
        let mut rises = Vec::new();
        for i in 0..FRAMES {
            // Two untracked people in a list that loops: the reader stops at its limit of
            // 65,536 objects, every one a copy of these two.
            let batch = Batch::new().frame(0, 0, i as i32, i * 33_000_000, |f: Frame| {
                f.object(0, 0.9, (100.0, 60.0, 40.0, 80.0), "")
                    .object(0, 0.8, (104.0, 62.0, 40.0, 80.0), "")
                    .circular()
            });
            let mut buf = frame((0, 0, 1, 1), i * 33);
            let _attached = batch.attach(buf.get_mut().unwrap());
            rises.push(push_measured(&mut h, buf));
        }
        let worst = rises.iter().copied().max().unwrap();
        assert!(
            worst < FRAME_HEAP_BOUND,
            "a circular object list raised the heap by {} MiB: {rises:?}",
            worst >> 20
        );
        h.push_event(gst::event::Eos::new());
        let s = Stats::of(&e);
        s.assert_adds_up();
        assert_eq!(bus_verdicts(&bus).len() as u64, s.u("submitted"));
        assert!(
            s.u("detections-capped") >= FRAMES * (65_536 - 64),
            "{}",
            s.0
        );
        assert!(s.u("tracks") <= 256, "{}", s.0);
    });
}

#[test]
fn one_batch_of_many_crowded_cameras_opens_at_most_max_clips() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    with_watchdog(Duration::from_secs(300), || {
        use standin::{Batch, Frame};
        const CAMERAS: u32 = 64;
        const PEOPLE: u64 = 16;
        let (e, bus) = element(&[
            ("class-labels", &"0=person"),
            ("temporal-size", &4u32),
            ("input-width", &16u32),
            ("input-height", &16u32),
            ("cooldown", &1000u32),
        ]);
        set_scorer(&e, Arc::new(Recorder::default()));
        let mut h = harness(&e);
        for n in 0..2u64 {
            let mut batch = Batch::new();
            for cam in 0..CAMERAS {
                batch = batch.frame(cam, cam, n as i32, n * 33_000_000, |mut f: Frame| {
                    for p in 0..PEOPLE {
                        let x = 10.0 + 18.0 * p as f32;
                        f = f.object(0, 0.9, (x, 60.0, 16.0, 40.0), "").id(p + 1);
                    }
                    f
                });
            }
            let mut buf = frame((0, 0, 1, 1), n * 33);
            let _attached = batch.attach(buf.get_mut().unwrap());
            h.push(buf).expect("push");
            h.pull().expect("pull");
            let s = Stats::of(&e);
            // 64 cameras × 8 clips each would be 512 clips from one buffer.
            assert!(s.u("clips-collecting") <= 64, "buffer {n}: {}", s.0);
        }
        h.push_event(gst::event::Eos::new());
        let s = Stats::of(&e);
        s.assert_adds_up();
        assert_eq!(bus_verdicts(&bus).len() as u64, s.u("submitted"));
        assert_eq!(s.u("clips-most-collecting"), 64, "{}", s.0);
        let tile_bytes = 16 * 16 * 3 * 4;
        assert!(s.u("clips-collecting-bytes") <= 64 * tile_bytes, "{}", s.0);
        // Each refused person is answered once, not once a frame.
        assert_eq!(
            s.u("clips-over-max"),
            (CAMERAS as u64 - 8) * PEOPLE,
            "8 cameras fill max-clips=64: everyone on the other cameras is refused: {}",
            s.0
        );
        assert_eq!(s.u("clips-overflowed"), 8 * (PEOPLE - 8), "{}", s.0);
        assert_eq!(s.u("completed") + s.u("dropped"), s.u("submitted"));
    });
}

/// Item 12 of issue 19: with nothing to trigger a clip, a frame costs the streaming thread no
/// allocation (Rust's heap; GLib's metas are upstream's), whether it carries no detections or
/// boxes of other labels. Counted, not timed.
#[test]
fn frames_without_a_trigger_allocate_nothing_on_the_streaming_thread() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    with_watchdog(Duration::from_secs(120), || {
        let (e, _bus) = element(&[("stats-interval", &0u32)]);
        set_scorer(&e, Arc::new(Recorder::default()));
        let mut h = harness(&e);
        let cars = |n: u64| {
            let mut buf = frame((0, 0, 1, 1), n * 33);
            for i in 0..4u32 {
                add_detection(&mut buf, "car", 0.9, (10 + 60 * i, 100, 40, 30));
            }
            buf
        };
        let frames: Vec<gst::Buffer> = (0..40)
            .map(|n| {
                if n < 20 {
                    frame((0, 0, 1, 1), n * 33)
                } else {
                    cars(n)
                }
            })
            .collect();
        let mut counts = Vec::new();
        for (n, buf) in frames.into_iter().enumerate() {
            let before = ALLOCATIONS.with(|c| c.get());
            h.push(buf).expect("push");
            let after = ALLOCATIONS.with(|c| c.get());
            drop(h.pull().expect("pull"));
            // The first frames of each kind warm the element's buffers up.
            if n % 20 >= 5 {
                counts.push(after - before);
            }
        }
        assert!(
            counts.iter().all(|&c| c == 0),
            "allocations per frame (15 empty frames, then 15 with 4 cars): {counts:?}"
        );
    });
}
