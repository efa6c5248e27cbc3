// SPDX-License-Identifier: MIT OR Apache-2.0
//! Sources that go away, and a source that stalls, fed through a Harness with batch metas made
//! by NVIDIA's own DeepStream 9.0 library (`nvidia/mod.rs`) and per-stream EOS events made by
//! NVIDIA's own `gst_nvevent_new_stream_eos` (`libnvdsgst_helper.so`, the function
//! `nvstreammux` calls when one of its sink pads gets EOS).
//!
//! What each test proves: a per-stream EOS ends that source's clips at once (partial ones
//! completed and scored, as at EOS) while the other sources go on, and gives its slot back, so a
//! source refused at `max-sources` gets in; far more than 256 cameras coming and going one after
//! another are all followed, none refused, each clip answered; the verdict events of a source
//! that stops sending buffers still reach `iguardpublish`'s side of the pad within a bounded
//! time, and exactly once. It fails, never skips, without NVIDIA's libraries.

mod common;
mod ds_element;
mod nvidia;

use nvidia::compat as builder;

use std::sync::OnceLock;
use std::time::Duration;

use builder::Batch;
use common::*;
use ds_element::*;
use gst::glib::translate::from_glib_full;
use gst::prelude::*;
use gstiguard::publish::wire;
use gstiguard::verdict::Status;

type NewStreamEos = unsafe extern "C" fn(u32) -> *mut gst::ffi::GstEvent;

/// NVIDIA's per-stream EOS for `source`, made by `gst_nvevent_new_stream_eos`.
fn stream_eos(source: u32) -> gst::Event {
    static LIB: OnceLock<(libloading::Library, NewStreamEos)> = OnceLock::new();
    let (_, new) = LIB.get_or_init(|| {
        init();
        let dir = std::env::var("IGUARD_DEEPSTREAM_LIB_DIR").unwrap_or_else(|_| {
            panic!(
                "IGUARD_DEEPSTREAM_LIB_DIR is not set: run `make deepstream-libs` and export \
                 IGUARD_DEEPSTREAM_LIB_DIR=$PWD/.deepstream/nvidia/deepstream_videodecode/_libs"
            )
        });
        let path = std::path::Path::new(&dir).join("libnvdsgst_helper.so");
        // SAFETY: NVIDIA's helper library; its initialisers only register GLib types.
        let lib = unsafe { libloading::Library::new(&path) }
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
        // SAFETY: the signature of gst-nvevent.h: GstEvent *(guint source_id).
        let new = unsafe {
            *lib.get::<NewStreamEos>(b"gst_nvevent_new_stream_eos")
                .unwrap()
        };
        (lib, new)
    });
    // SAFETY: the function returns a new event (full ownership).
    unsafe { from_glib_full(new(source)) }
}

fn person(f: builder::Frame) -> builder::Frame {
    f.object(PERSON, 0.9, BOX, "")
}

/// Buffer `n` with one frame meta per source in `sources`, each seeing a person.
fn push_people(h: &mut gst_check::Harness, n: u64, sources: &[u32]) {
    let mut b = Batch::new();
    for &s in sources {
        b = b.frame(s, s, n as i32, n * 33 * MS, person);
    }
    push(h, n, b);
}

fn sources_of(scorer: &GatedRecorder) -> Vec<u32> {
    scorer.clips().iter().map(|c| c.source.source_id).collect()
}

#[test]
fn a_stream_eos_ends_that_sources_clips_and_gives_its_slot_back() {
    with_watchdog(Duration::from_secs(60), || {
        let (e, _bus, scorer) = element_with(&[
            ("class-labels", &CLASS_LABELS),
            ("trigger-labels", &"person"),
            ("temporal-size", &4u32),
            ("cooldown", &0u32),
            ("input-width", &8u32),
            ("input-height", &8u32),
            ("max-sources", &2u32),
        ]);
        scorer.open();
        let mut h = harness(&e);
        // Sources 0 and 1 take the two slots; source 2 is refused.
        push_people(&mut h, 1, &[0, 1, 2]);
        push_people(&mut h, 2, &[0, 1, 2]);
        assert_eq!(Stats::of(&e).u("sources-refused"), 1);
        assert!(scorer.clips().is_empty(), "clips of 4 frames, 2 seen");

        // Camera 0 goes away: its clip ends now, completed from its 2 real frames.
        h.push_event(stream_eos(0));
        wait_for("source 0's clip", Duration::from_secs(10), || {
            !scorer.clips().is_empty()
        });
        let clips = scorer.clips();
        assert_eq!(sources_of(&scorer), [0], "only source 0's clip ended");
        assert_eq!((clips[0].real_frames, clips[0].frames), (2, 4));
        assert_eq!(
            Stats::of(&e).u("submitted"),
            2,
            "source 1's clip still collects"
        );

        // Its slot is free: source 2 is followed from its next frame on.
        push_people(&mut h, 3, &[1, 2]);
        push_people(&mut h, 4, &[1, 2]);
        h.push_event(gst::event::Eos::new());
        let mut sources = sources_of(&scorer);
        sources.sort();
        assert_eq!(sources, [0, 1, 2]);
        let s = Stats::of(&e);
        s.assert_adds_up();
        assert_eq!(
            s.u("sources-refused"),
            1,
            "source 2 was refused once, then let in"
        );
        assert_eq!(s.u("pending"), 0);
    });
}

#[test]
fn hundreds_of_cameras_coming_and_going_are_all_followed() {
    with_watchdog(Duration::from_secs(120), || {
        let (e, bus, scorer) = element_with(&[
            ("class-labels", &CLASS_LABELS),
            ("trigger-labels", &"person"),
            ("temporal-size", &2u32),
            ("cooldown", &0u32),
            ("input-width", &8u32),
            ("input-height", &8u32),
            // Room for every clip: this test is about sources, not about the queue's policy.
            ("queue-size", &1000u32),
        ]);
        assert_eq!(e.property::<u32>("max-sources"), 256);
        scorer.open();
        let mut h = harness(&e);
        // 600 cameras, 8 at a time: each is seen on one buffer, then its stream ends.
        const CAMERAS: u32 = 600;
        let mut n = 0;
        for group in (0..CAMERAS).collect::<Vec<_>>().chunks(8) {
            n += 1;
            push_people(&mut h, n, group);
            for &s in group {
                h.push_event(stream_eos(s));
            }
        }
        h.push_event(gst::event::Eos::new());
        let s = Stats::of(&e);
        s.assert_adds_up();
        assert_eq!(s.u("sources-refused"), 0, "{}", s.0);
        assert_eq!(s.u("submitted"), CAMERAS as u64);
        assert_eq!(s.u("pending"), 0);
        let mut sources = sources_of(&scorer);
        sources.sort();
        assert_eq!(
            sources,
            (0..CAMERAS).collect::<Vec<_>>(),
            "one clip per camera"
        );
        assert!(scorer.clips().iter().all(|c| c.real_frames == 1));
        let mut verdicts = bus_verdicts(&bus);
        verdicts.sort_by_key(|v| v.source_id);
        assert_eq!(
            verdicts.iter().map(|v| v.source_id).collect::<Vec<_>>(),
            (0..CAMERAS).collect::<Vec<_>>(),
            "one verdict per camera"
        );
        assert!(verdicts.iter().all(|v| v.status == Status::Fallback));
    });
}

/// The `iguard-verdict` events that reached the harness's sink so far, by request id.
fn verdict_events(h: &mut gst_check::Harness) -> Vec<u64> {
    std::iter::from_fn(|| h.try_pull_event())
        .filter_map(|ev| wire::verdict_structure(&ev).map(|s| s.get::<u64>("request-id").unwrap()))
        .collect()
}

#[test]
fn a_stalled_source_still_gets_its_verdict_events_out() {
    with_watchdog(Duration::from_secs(60), || {
        let (e, _bus, scorer) = element_with(&[
            ("trigger-labels", &"person"),
            ("temporal-size", &2u32),
            ("cooldown", &0u32),
            ("input-width", &8u32),
            ("input-height", &8u32),
        ]);
        let mut h = harness(&e);
        for n in 0..2u64 {
            let mut b = frame((100, 60, 64, 80), n * 33);
            add_detection(&mut b, "person", 0.9, (100, 60, 64, 80));
            h.push(b).unwrap();
            h.pull().unwrap();
        }
        // The clip is at the scorer, which holds it; the source sends nothing more.
        wait_for("the clip at the scorer", Duration::from_secs(10), || {
            scorer.clips().len() == 1
        });
        assert!(verdict_events(&mut h).is_empty(), "no verdict yet");
        scorer.open();
        // No buffer comes to carry the verdict: it goes out on its own, within a bounded time.
        let mut events = Vec::new();
        wait_for("the verdict event", Duration::from_secs(10), || {
            events.extend(verdict_events(&mut h));
            !events.is_empty()
        });
        let id = scorer.clips()[0].request_id;
        assert_eq!(events, [id]);
        // The source comes back, then ends: the verdict is not sent twice.
        let mut b = frame((100, 60, 64, 80), 3 * 33);
        add_detection(&mut b, "bag", 0.9, (100, 60, 64, 80));
        h.push(b).unwrap();
        h.pull().unwrap();
        h.push_event(gst::event::Eos::new());
        events.extend(verdict_events(&mut h));
        assert_eq!(events, [id], "exactly once");
        let s = Stats::of(&e);
        s.assert_adds_up();
        assert_eq!(s.u("pending"), 0);
    });
}
