// SPDX-License-Identifier: MIT OR Apache-2.0
//! `iguardverify` fed DeepStream batch metas built by the stand-in (`standin/mod.rs`) through a
//! Harness, kept only for what NVIDIA's real 9.0 library cannot give here: the object layout of
//! DeepStream 5.x–8.x (`standin_ds5_to_8_*`) and malformed metas (`standin_garbage_*`). The
//! element on NVIDIA-made metas (three interleaved sources, verdicts attached per source) is
//! tested in `deepstream_element_nvidia.rs`.
//!
//! What each test proves: with `deepstream-version` and no `class-labels` the element triggers
//! on the `obj_label` DeepStream wrote, at the right offset for the release (and `class-labels`
//! wins over it); garbage metas (wrong `meta_type`, null pointers, empty and circular lists,
//! undersized metas, nonsense boxes) never crash, never start a clip, and the video flows
//! unchanged; a bad `deepstream-version` fails the start naming it (NVMM input: tests/nvmm.rs).
//! Every test that submits work checks that the stats add up.

mod common;
mod ds_element;
mod standin;

use standin as builder;

use std::time::Duration;

use common::*;
use ds_element::*;
use gst::prelude::*;
use standin::{Batch, Frame, Release};

/// Runs one person-labelled object through an element with `props` and returns the clips'
/// trigger labels.
fn triggers_with(props: &[(&str, &dyn ToValue)], release: Release, label: &str) -> Vec<String> {
    let mut all: Vec<(&str, &dyn ToValue)> = vec![
        ("temporal-size", &1u32),
        ("cooldown", &0u32),
        ("input-width", &8u32),
        ("input-height", &8u32),
    ];
    all.extend_from_slice(props);
    let (e, _bus, scorer) = element_with(&all);
    scorer.open();
    let mut h = harness(&e);
    let b = Batch::new()
        .release(release)
        .frame(3, 1, 1, buf_pts(3, 1), |f| f.object(5, 0.9, BOX, label));
    push(&mut h, 1, b);
    h.push_event(gst::event::Eos::new());
    let s = Stats::of(&e);
    s.assert_adds_up();
    assert_eq!(s.u("pending"), 0);
    scorer
        .clips()
        .into_iter()
        .map(|c| c.trigger_label)
        .collect()
}

#[test]
fn standin_ds5_to_8_deepstream_version_reads_obj_label_when_class_labels_is_unset() {
    let person = || vec!["person".to_string()];
    assert_eq!(
        triggers_with(&[("deepstream-version", &"6.4")], Release::Ds8, "person"),
        person(),
        "DeepStream 6.4 keeps obj_label at byte 336"
    );
    assert_eq!(
        triggers_with(&[("deepstream-version", &"7.1")], Release::Ds8, "person"),
        person()
    );
    assert_eq!(
        triggers_with(&[("deepstream-version", &"9.0")], Release::Ds9, "person"),
        person(),
        "DeepStream 9 keeps it at byte 344"
    );
    assert!(
        triggers_with(&[], Release::Ds8, "person").is_empty(),
        "without deepstream-version obj_label is never read: the label is class-5"
    );
    assert!(
        triggers_with(&[("deepstream-version", &"9.0")], Release::Ds8, "person").is_empty(),
        "the wrong release finds no label"
    );
    assert!(
        triggers_with(
            &[("deepstream-version", &"6.4"), ("class-labels", &"5=bag")],
            Release::Ds8,
            "person"
        )
        .is_empty(),
        "class-labels wins over obj_label"
    );
    assert_eq!(
        triggers_with(&[("class-labels", &"5=weapon")], Release::Ds8, "person"),
        vec!["weapon".to_string()],
        "class-labels alone"
    );
}

#[test]
fn a_bad_deepstream_version_fails_the_state_change_naming_it() {
    let (e, bus) = element(&[("deepstream-version", &"4.0")]);
    assert!(e.set_state(gst::State::Paused).is_err());
    let text = error_text(&bus, Duration::from_secs(5));
    assert!(
        text.contains("deepstream-version") && text.contains("4.0"),
        "{text}"
    );
    e.set_state(gst::State::Null).unwrap();
}

#[test]
fn standin_garbage_metas_never_crash_never_start_a_clip_and_the_video_flows() {
    with_watchdog(Duration::from_secs(120), || {
        let (e, bus, scorer) = element_with(&[
            ("class-labels", &CLASS_LABELS),
            ("deepstream-version", &"7.1"),
            ("trigger-labels", &"person"),
            ("temporal-size", &1u32),
            ("cooldown", &0u32),
            ("input-width", &8u32),
            ("input-height", &8u32),
        ]);
        scorer.open();
        let mut h = harness(&e);
        let person = |f: Frame| f.object(PERSON, 0.9, BOX, "person");
        let garbage: Vec<(&str, Batch)> = vec![
            (
                "another meta type (4096)",
                Batch::new().meta_type(4096).frame(0, 0, 1, 0, person),
            ),
            (
                "another meta type (4098)",
                Batch::new().meta_type(4098).frame(0, 0, 1, 0, person),
            ),
            (
                "a null meta_data",
                Batch::new().null_meta_data().frame(0, 0, 1, 0, person),
            ),
            ("an empty frame list", Batch::new()),
            (
                "an empty object list",
                Batch::new().frame(0, 0, 1, 0, |f| f),
            ),
            (
                "null frames and objects",
                Batch::new()
                    .null_frame()
                    .frame(1, 1, 1, 0, |f| f.null_object().null_object())
                    .null_frame(),
            ),
            (
                "circular lists of harmless objects",
                Batch::new()
                    .frame(0, 0, 1, 0, |f| {
                        f.object(BAG, 0.9, BOX, "bag")
                            .object(BAG, 0.9, OTHER_BOX, "bag")
                            .circular()
                    })
                    .frame(1, 1, 1, 0, |f| f.object(BAG, 0.9, BOX, "bag"))
                    .circular(),
            ),
            (
                "people in boxes that cannot be cropped",
                Batch::new().frame(0, 0, 1, 0, |f| {
                    f.object(PERSON, 0.9, (f32::NAN, 10.0, 20.0, 20.0), "")
                        .object(PERSON, 0.9, (10.0, 10.0, f32::INFINITY, 20.0), "")
                        .object(PERSON, 0.9, (10.0, 10.0, -20.0, 20.0), "")
                        .object(PERSON, 0.9, (10.0, 10.0, 0.0, 0.0), "")
                        .object(PERSON, 0.9, (1000.0, 900.0, 20.0, 20.0), "")
                }),
            ),
            (
                "a person at NaN confidence",
                Batch::new().frame(0, 0, 1, 0, |f| f.object(PERSON, f32::NAN, BOX, "")),
            ),
            (
                "an unterminated obj_label on an unlabelled class",
                Batch::new().frame(0, 0, 1, 0, |f| {
                    f.object(9, 0.9, BOX, "").raw_label(&[b'p'; 128])
                }),
            ),
        ];
        let mut n = 0;
        for (what, batch) in garbage {
            n += 1;
            let out = push(&mut h, n, batch);
            assert!(attached(&out).is_empty(), "{what}");
            assert_eq!(Stats::of(&e).u("submitted"), 0, "{what} started a clip");
        }
        // An undersized meta of DeepStream's API, alone and beside a good batch.
        n += 1;
        let mut b = frame((100, 60, 64, 80), n * 33);
        standin::attach_undersized(b.get_mut().unwrap());
        h.push(b).unwrap();
        assert!(h.pull().is_ok());
        assert_eq!(Stats::of(&e).u("submitted"), 0);
        assert!(scorer.clips().is_empty());

        // The element still works: a real person starts a clip.
        n += 1;
        let mut b = batched(n, Batch::new().frame(0, 6, 1, buf_pts(0, n), person));
        standin::attach_undersized(b.get_mut().unwrap());
        h.push(b).unwrap();
        assert!(h.pull().is_ok());
        h.push_event(gst::event::Eos::new());
        let clips = scorer.clips();
        assert_eq!(clips.len(), 1);
        assert_eq!(
            (clips[0].source.source_id, clips[0].source.pad_index),
            (0, 6)
        );
        assert_eq!(bus_verdicts(&bus).len(), 1);
        let s = Stats::of(&e);
        s.assert_adds_up();
        assert_eq!((s.u("submitted"), s.u("pending")), (1, 0));
    });
}

#[test]
fn without_a_batch_meta_the_roi_reader_serves_the_same_element() {
    // A DeepStream-configured element still verifies a plain stream with ROI metas.
    let (e, _bus, scorer) = element_with(&[
        ("class-labels", &CLASS_LABELS),
        ("deepstream-version", &"7.1"),
        ("temporal-size", &1u32),
        ("input-width", &8u32),
        ("input-height", &8u32),
    ]);
    scorer.open();
    let mut h = harness(&e);
    let mut b = frame((100, 60, 64, 80), 0);
    add_detection(&mut b, "person", 0.9, (100, 60, 64, 80));
    h.push(b).unwrap();
    assert!(h.pull().is_ok());
    h.push_event(gst::event::Eos::new());
    let clips = scorer.clips();
    assert_eq!(clips.len(), 1);
    assert_eq!(
        (clips[0].source.source_id, clips[0].source.pad_index),
        (0, 0)
    );
    Stats::of(&e).assert_adds_up();
}
