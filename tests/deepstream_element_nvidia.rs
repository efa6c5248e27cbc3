// SPDX-License-Identifier: MIT OR Apache-2.0
//! `iguardverify` fed batch metas made by NVIDIA's own DeepStream 9.0 library (`nvidia/mod.rs`)
//! through a Harness, the way buffers arrive after `nvinfer ! nvvideoconvert !
//! video/x-raw,format=RGBA`: three sources interleaved in one batch give clips only for the
//! triggered ones, each clip and verdict naming its own `source_id` / `pad_index` and carrying
//! its own frames' `buf_pts`; a verdict is attached to the next buffer that carries its source
//! (not to a buffer without it), at most one per source per buffer, in request order. Every
//! test checks that the stats add up. It fails, never skips, without NVIDIA's library.

mod common;
mod ds_element;
mod nvidia;

use nvidia::compat as builder;

use std::time::Duration;

use builder::Frame;
use common::*;
use ds_element::*;
use gstiguard::verdict::Status;

#[test]
fn three_interleaved_sources_give_clips_and_verdicts_for_the_triggered_ones_only() {
    with_watchdog(Duration::from_secs(60), || {
        let (e, bus, scorer) = element_with(&[
            ("class-labels", &CLASS_LABELS),
            ("trigger-labels", &"person,weapon"),
            ("temporal-size", &3u32),
            ("cooldown", &0u32),
            ("input-width", &16u32),
            ("input-height", &16u32),
            ("roi-margin", &0.0f32),
        ]);
        let mut h = harness(&e);

        // Source 0: a person on frame 2. Source 1: a bag on every frame and a person below
        // min-confidence: never triggers. Source 2: a weapon on frames 3-5. The order of the
        // frame metas in the batch changes from buffer to buffer.
        let objects = |n: u64| {
            move |s: u32, f: Frame| match s {
                0 if n == 2 => f
                    .object(PERSON, 0.9, BOX, "")
                    .object(BAG, 0.8, OTHER_BOX, ""),
                0 => f.object(BAG, 0.8, OTHER_BOX, ""),
                1 => f
                    .object(BAG, 0.95, BOX, "")
                    .object(PERSON, 0.3, OTHER_BOX, ""),
                2 if (3..=5).contains(&n) => f.object(WEAPON, 0.8, BOX, ""),
                _ => f,
            }
        };
        let orders: [&[u32]; 3] = [&[2, 0, 1], &[0, 1, 2], &[1, 2, 0]];
        for n in 1..=6u64 {
            let out = push(&mut h, n, batch_of(n, orders[n as usize % 3], objects(n)));
            assert!(attached(&out).is_empty(), "no verdict exists yet");
        }
        wait_for("both clips at the scorer", Duration::from_secs(10), || {
            scorer.clips().len() == 2
        });

        // The clips: one per triggered source, with that source's identity and clock.
        let clips = scorer.clips();
        let summary: Vec<_> = clips
            .iter()
            .map(|c| {
                (
                    c.source.source_id,
                    c.source.pad_index,
                    c.trigger_label.as_str(),
                    c.start_pts,
                    c.end_pts,
                    c.real_frames,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (0, 4, "person", Some(buf_pts(0, 2)), Some(buf_pts(0, 4)), 3),
                (2, 9, "weapon", Some(buf_pts(2, 3)), Some(buf_pts(2, 5)), 3),
            ]
        );
        let s = Stats::of(&e);
        s.assert_adds_up();
        assert_eq!((s.u("submitted"), s.u("pending")), (2, 2));

        // The verdicts, on the bus as soon as they exist.
        scorer.open();
        let mut on_bus = wait_bus_verdicts(&bus, 2);
        on_bus.sort_by_key(|v| v.source_id);
        let fields: Vec<_> = on_bus
            .iter()
            .map(|v| {
                (
                    v.source_id,
                    v.pad_index,
                    v.status,
                    v.trigger_label.as_str(),
                    v.clip_start_pts,
                    v.clip_end_pts,
                    v.frames,
                )
            })
            .collect();
        assert_eq!(
            fields,
            [
                (
                    0,
                    4,
                    Status::Fallback,
                    "person",
                    Some(buf_pts(0, 2)),
                    Some(buf_pts(0, 4)),
                    3
                ),
                (
                    2,
                    9,
                    Status::Fallback,
                    "weapon",
                    Some(buf_pts(2, 3)),
                    Some(buf_pts(2, 5)),
                    3
                ),
            ]
        );
        assert_eq!(on_bus[0].score, 0.0, "no weapon on source 0");
        assert!((on_bus[1].score - 0.8).abs() < 1e-6, "{:?}", on_bus[1]);
        assert_eq!(on_bus[1].label, "weapon");

        // Attached to the next buffer that carries the source, and only to it.
        let out = push(&mut h, 7, batch_of(7, &[1, 0], |_, f| f));
        assert_eq!(attached(&out), [on_bus[0].clone()], "source 0, not 2");
        let out = push(&mut h, 8, batch_of(8, &[1], |_, f| f));
        assert!(attached(&out).is_empty(), "source 1 has no verdict");
        let out = push(&mut h, 9, batch_of(9, &[0, 1, 2], |_, f| f));
        assert_eq!(
            attached(&out),
            [on_bus[1].clone()],
            "source 2, now it comes"
        );
        let out = push(&mut h, 10, batch_of(10, &[0, 1, 2], |_, f| f));
        assert!(attached(&out).is_empty(), "each verdict is attached once");

        h.push_event(gst::event::Eos::new());
        assert!(bus_verdicts(&bus).is_empty(), "no other verdict");
        let s = Stats::of(&e);
        s.assert_adds_up();
        assert_eq!(
            (s.u("submitted"), s.u("fallback"), s.u("pending")),
            (2, 2, 0)
        );
    });
}

#[test]
fn waiting_verdicts_are_attached_one_per_source_per_buffer_in_order() {
    with_watchdog(Duration::from_secs(60), || {
        let (e, bus, scorer) = element_with(&[
            ("class-labels", &CLASS_LABELS),
            ("temporal-size", &1u32),
            ("cooldown", &0u32),
            ("input-width", &8u32),
            ("input-height", &8u32),
            // One worker, so verdicts complete (and queue for attachment) in request order.
            ("max-workers", &1u32),
        ]);
        let mut h = harness(&e);
        // Three clips each for sources 0 and 2 (one per frame), none for source 1.
        for n in 1..=3 {
            let b = batch_of(n, &[0, 1, 2], |s, f| match s {
                1 => f.object(BAG, 0.9, BOX, ""),
                _ => f.object(PERSON, 0.9, BOX, ""),
            });
            assert!(attached(&push(&mut h, n, b)).is_empty());
        }
        scorer.open();
        let on_bus = wait_bus_verdicts(&bus, 6);
        let ids = |source: u32| -> Vec<u64> {
            on_bus
                .iter()
                .filter(|v| v.source_id == source)
                .map(|v| v.request_id)
                .collect()
        };
        // Request ids follow the frame metas' order: source 0 then source 2 on each frame.
        let (ids0, ids2) = (ids(0), ids(2));
        assert_eq!(
            (ids0.as_slice(), ids2.as_slice()),
            ([1, 3, 5].as_slice(), [2, 4, 6].as_slice())
        );

        for (i, n) in (4..=6).enumerate() {
            let got: Vec<(u32, u32, u64)> =
                attached(&push(&mut h, n, batch_of(n, &[2, 1, 0], |_, f| f)))
                    .iter()
                    .map(|v| (v.source_id, v.pad_index, v.request_id))
                    .collect();
            let mut got_sorted = got.clone();
            got_sorted.sort();
            assert_eq!(
                got_sorted,
                [(0, 4, ids0[i]), (2, 9, ids2[i])],
                "buffer {n}: the oldest waiting verdict of each source"
            );
        }
        assert!(attached(&push(&mut h, 7, batch_of(7, &[0, 1, 2], |_, f| f))).is_empty());
        h.push_event(gst::event::Eos::new());
        let s = Stats::of(&e);
        s.assert_adds_up();
        assert_eq!((s.u("submitted"), s.u("pending")), (6, 0));
    });
}
