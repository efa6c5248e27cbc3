// SPDX-License-Identifier: MIT OR Apache-2.0
//! `iguardverify` fed DeepStream batch metas (built by the stand-in in `standin/mod.rs`, since
//! DeepStream cannot be installed here) through a Harness, the way buffers arrive after
//! `nvinfer ! nvvideoconvert ! video/x-raw,format=RGBA`.
//!
//! What each test proves: three sources interleaved in one batch give clips only for the
//! triggered ones, each clip and verdict naming its own `source_id` / `pad_index` and carrying
//! its own frames' `buf_pts`; a verdict is attached to the next buffer that carries its source
//! (not to a buffer without it), at most one per source per buffer, in request order; with
//! `deepstream-version` and no `class-labels` the element triggers on the `obj_label`
//! DeepStream wrote, at the right offset for the release (and `class-labels` wins over it);
//! garbage metas (wrong `meta_type`, null pointers, empty and circular lists, undersized metas,
//! nonsense boxes) never crash, never start a clip, and the video flows unchanged; a bad
//! `deepstream-version` fails the start naming it; NVMM caps are refused at negotiation. Every
//! test that submits work checks that the stats add up.

mod common;
mod standin;

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::*;
use gst::prelude::*;
use gstiguard::clip::Clip;
use gstiguard::meta;
use gstiguard::scorer::fallback::FallbackScorer;
use gstiguard::scorer::{Cancel, Score, ScoreError, Scorer};
use gstiguard::verdict::{Status, Verdict};
use standin::{Batch, Frame, Release};

const MS: u64 = 1_000_000;
/// Where the red box is in every frame (`common::frame`), in frame pixels.
const BOX: (f32, f32, f32, f32) = (100.0, 60.0, 64.0, 80.0);
/// A box the element can crop, away from the red one.
const OTHER_BOX: (f32, f32, f32, f32) = (10.0, 10.0, 40.0, 40.0);

/// Class ids of the detector in these tests.
const PERSON: i32 = 0;
const BAG: i32 = 1;
const WEAPON: i32 = 2;
const CLASS_LABELS: &str = "0=person,1=bag,2=weapon";

/// The three cameras: source id and the (different) `nvstreammux` pad each came through.
const SOURCES: [(u32, u32); 3] = [(0, 4), (1, 7), (2, 9)];

/// The PTS DeepStream keeps for `source`'s frame `n` (`buf_pts`): each camera has a clock of
/// its own, unlike the batch buffer's PTS (`n` × 33 ms).
fn buf_pts(source: u32, n: u64) -> u64 {
    (source as u64 + 1) * 10_000 * MS + n * 33 * MS
}

fn pad_of(source: u32) -> u32 {
    SOURCES.iter().find(|(s, _)| *s == source).unwrap().1
}

/// A scorer that records every clip, then holds it until the test opens the gate (or the pool
/// cancels the call), then scores it with the label-based fallback (weapon labels: `weapon`).
#[derive(Default)]
struct GatedRecorder {
    clips: Mutex<Vec<Clip>>,
    open: Mutex<bool>,
    cv: Condvar,
}

impl GatedRecorder {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }

    fn clips(&self) -> Vec<Clip> {
        let mut c = self.clips.lock().unwrap().clone();
        c.sort_by_key(|c| c.request_id);
        c
    }
}

impl Scorer for GatedRecorder {
    fn name(&self) -> &str {
        "gated-recorder"
    }
    fn is_model(&self) -> bool {
        false
    }
    fn score(&self, clips: &[&Clip], cancel: &Cancel) -> Result<Vec<Score>, ScoreError> {
        self.clips
            .lock()
            .unwrap()
            .extend(clips.iter().map(|c| (*c).clone()));
        let mut open = self.open.lock().unwrap();
        while !*open {
            if cancel.is_cancelled() {
                return Err(ScoreError::Cancelled);
            }
            open = self
                .cv
                .wait_timeout(open, Duration::from_millis(5))
                .unwrap()
                .0;
        }
        drop(open);
        FallbackScorer::new(vec!["weapon".into()]).score(clips, cancel)
    }
}

fn harness(e: &gst::Element) -> gst_check::Harness {
    let mut h = gst_check::Harness::with_element(e, Some("sink"), Some("src"));
    h.set_src_caps(caps());
    h
}

/// Buffer `n` (PTS n × 33 ms) carrying `batch`.
fn batched(n: u64, batch: Batch) -> gst::Buffer {
    let mut b = frame((100, 60, 64, 80), n * 33);
    batch.attach(b.get_mut().unwrap());
    b
}

/// Pushes buffer `n` with `batch`, checks it came out unchanged, and returns it.
fn push(h: &mut gst_check::Harness, n: u64, batch: Batch) -> gst::Buffer {
    let input = batched(n, batch);
    let pixels = input.map_readable().unwrap().to_vec();
    h.push(input).expect("push");
    let out = h.pull().expect("the buffer came out");
    assert_eq!(out.pts(), Some(gst::ClockTime::from_mseconds(n * 33)));
    assert!(
        out.map_readable().unwrap().as_slice() == pixels.as_slice(),
        "the video passes unchanged"
    );
    out
}

/// A batch with a frame meta of each source in `order`, whose objects `objects` gives.
fn batch_of(n: u64, order: &[u32], objects: impl Fn(u32, Frame) -> Frame) -> Batch {
    let mut b = Batch::new();
    for &s in order {
        b = b.frame(s, pad_of(s), n as i32, buf_pts(s, n), |f| objects(s, f));
    }
    b
}

/// Verdicts attached to `buffer`, checking there is at most one per source.
fn attached(buffer: &gst::Buffer) -> Vec<Verdict> {
    let v = meta::read_all(buffer);
    let mut sources: Vec<u32> = v.iter().map(|v| v.source_id).collect();
    sources.sort();
    sources.dedup();
    assert_eq!(sources.len(), v.len(), "one verdict per source per buffer");
    v
}

/// Pops verdict messages until `n` have arrived.
fn wait_bus_verdicts(bus: &gst::Bus, n: usize) -> Vec<Verdict> {
    let mut all = Vec::new();
    wait_for("verdicts on the bus", Duration::from_secs(20), || {
        all.extend(bus_verdicts(bus));
        all.len() >= n
    });
    assert_eq!(all.len(), n, "{all:?}");
    all
}

fn element_with(props: &[(&str, &dyn ToValue)]) -> (gst::Element, gst::Bus, Arc<GatedRecorder>) {
    let (e, bus) = element(props);
    let scorer = Arc::new(GatedRecorder::default());
    set_scorer(&e, scorer.clone());
    (e, bus, scorer)
}

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
fn deepstream_version_reads_obj_label_when_class_labels_is_unset() {
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
    let msg = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Error])
        .expect("an error message");
    let gst::MessageView::Error(err) = msg.view() else {
        unreachable!()
    };
    let text = err.error().to_string();
    assert!(
        text.contains("deepstream-version") && text.contains("4.0"),
        "{text}"
    );
    e.set_state(gst::State::Null).unwrap();
}

#[test]
fn garbage_metas_never_crash_never_start_a_clip_and_the_video_flows() {
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

/// What `nvvideoconvert ! video/x-raw(memory:NVMM),format=RGBA ! iguardverify` gives: NVMM
/// caps are not accepted, since the element reads system memory.
#[test]
fn nvmm_caps_are_refused() {
    let (e, bus) = element(&[]);
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_src_caps_str("video/x-raw(memory:NVMM),format=RGBA,width=320,height=240,framerate=30/1");
    let r = h.push(gst::Buffer::with_size((W * H * 4) as usize).unwrap());
    assert_eq!(r, Err(gst::FlowError::NotNegotiated));
    // Refused at the accept-caps check, with a warning saying what to do (gst-launch refuses to
    // link such caps outright: see tests/pipelines.rs).
    let warnings: Vec<String> =
        std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Warning]))
            .filter_map(|m| match m.view() {
                gst::MessageView::Warning(w) => Some(w.error().to_string()),
                _ => None,
            })
            .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("NVMM") && w.contains("nvvideoconvert ! video/x-raw,format=RGBA")),
        "{warnings:?}"
    );
}
