// SPDX-License-Identifier: MIT OR Apache-2.0
//! Property tests over the plain-logic parts that take untrusted input: clip assembly, box
//! geometry and the two detection readers. `IGUARD_LONG=1` (`make test-long`) runs 32 times as
//! many cases.
//!
//! What each property proves:
//! - clip assembly, over arbitrary frames (odd labels, NaN / infinite / negative confidences,
//!   NaN / infinite / huge boxes, frame sizes from 0×0 to 2³²−1 changing between frames, several
//!   sources, failing tile copies, EOS and flush mid-clip, settings changed while running):
//!   nothing panics; every clip id that starts ends exactly once (finished, failed, completed at
//!   EOS or abandoned); a finished clip has exactly `temporal-size` tiles of the right size, in
//!   sampling order, with the labels of their frames; every crop handed to the tile copier is
//!   non-empty and inside the current frame; only a usable trigger starts a clip, and a usable
//!   trigger on an idle source does; a source does not re-trigger within `cooldown` frames;
//! - `Rect::to_pixels` returns exactly the boxes that overlap the frame, clamped and rounded
//!   outwards by less than a pixel; `Bounds::union` is the exact bounding box (commutative,
//!   associative, idempotent); `Bounds::widen` keeps the centre, scales the size and contains
//!   the original;
//! - the ROI reader turns any set of ROI metas (any u32 rect, any label, a confidence of any
//!   numeric type, NaN, a string or none) into one frame with one detection per meta, as written;
//! - the DeepStream reader returns, for any stand-in batch (any ids, timestamps, NaN boxes, null
//!   list entries, labels of any bytes), exactly the frames and objects written, and counts what
//!   it skipped.

mod standin;

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::Once;

use gstiguard::clip::{Clip, ClipAssembler, ClipConfig, CropMode, LabelSeen};
use gstiguard::detections::deepstream::{ClassLabels, DeepStreamLayout, DeepStreamReader};
use gstiguard::detections::roi::RoiReader;
use gstiguard::detections::{Detection, DetectionReader, FrameDetections, SourceFrame};
use gstiguard::geometry::{Bounds, PixelRect, Rect};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use standin::{Batch, Release, UNTRACKED};

fn long() -> bool {
    std::env::var_os("IGUARD_LONG").is_some_and(|v| v != "0")
}

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| gst::init().unwrap());
}

/// Runs `test` on `cases` inputs from `strategy` (32 times as many in long mode); a failure
/// panics with the smallest failing input proptest found. Prints how many cases passed.
fn check<S>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    let cases = if long() { cases * 32 } else { cases };
    // No regression files: a failure prints its minimal input, which belongs in a unit test.
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::with_cases(cases)
    });
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{name}: {e}");
    }
    println!("proptest {name}: {cases} cases passed");
}

// ---------------------------------------------------------------------------------------------
// Inputs

/// Any f32, weighted towards values near a small frame, with the nonsense detectors send.
fn odd_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        8 => -64.0f32..400.0,
        2 => select(vec![
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            f32::MIN,
            1e30,
            -1e30,
            0.0,
            -0.0,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            1.0,
        ]),
        1 => any::<f32>(),
    ]
}

/// Any f64 confidence, weighted towards [0, 1].
fn odd_confidence() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => 0.0f64..=1.0,
        2 => select(vec![
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.5,
            1.5,
            0.5,
            0.0,
            -0.0,
            1.0,
            f64::MAX,
            f64::MIN_POSITIVE,
        ]),
        1 => any::<f64>(),
    ]
}

const LABELS: &[&str] = &[
    "person",
    "weapon",
    "gun",
    "car",
    "",
    "Person",
    "weapon ",
    "weap\u{1}on\u{7f}",
    "ñandú 🐦",
    "\u{202e}nosrep",
    "person\0",
];

fn detection() -> impl Strategy<Value = Detection> {
    let odd = (
        select(LABELS),
        odd_confidence(),
        (odd_f32(), odd_f32(), odd_f32(), odd_f32()),
    )
        .prop_map(|(label, confidence, (x, y, width, height))| {
            (label, confidence, x, y, width, height)
        });
    // A third are sensible triggers, so clips start often enough to exercise their life.
    let good = (0.5f64..=1.0, 0u16..200, 0u16..150, 1u16..100, 1u16..100).prop_map(
        |(confidence, x, y, w, h)| ("person", confidence, x as f32, y as f32, w as f32, h as f32),
    );
    (
        prop_oneof![2 => odd, 1 => good],
        any::<i32>(),
        any::<Option<u64>>(),
    )
        .prop_map(
            |((label, confidence, x, y, width, height), class_id, object_id)| Detection {
                class_id,
                label: label.to_string(),
                confidence,
                rect: Rect {
                    x,
                    y,
                    width,
                    height,
                },
                object_id,
            },
        )
}

fn frame_size() -> impl Strategy<Value = (u32, u32)> {
    prop_oneof![
        2 => Just((1, 1)),
        8 => (1u32..=320, 1u32..=240),
        2 => (1u32..=8192, 1u32..=8192),
        1 => select(vec![
            (0, 240),
            (320, 0),
            (0, 0),
            (u32::MAX, 1),
            (1, u32::MAX),
            (65536, 65536),
        ]),
    ]
}

fn clip_config() -> impl Strategy<Value = ClipConfig> {
    let triggers = select(vec![
        vec!["person", "weapon"],
        vec!["person"],
        vec!["weapon", "ñandú 🐦"],
        vec![""],
        vec![],
    ]);
    let min_confidence = prop_oneof![
        4 => 0.0f64..=1.0,
        1 => select(vec![0.0, 0.5, 1.0, f64::NAN, -1.0]),
    ];
    let margin = prop_oneof![
        6 => 0.0f32..=10.0,
        2 => select(vec![0.0, 0.15, 10.0]),
        1 => select(vec![-0.25, -1.0, f32::NAN, f32::INFINITY, 1e30]),
    ];
    (
        triggers,
        min_confidence,
        1u32..=8,
        0u32..=4,
        margin,
        select(vec![CropMode::Roi, CropMode::Full]),
        (1u32..=4, 1u32..=4),
        0u32..=6,
    )
        .prop_map(
            |(
                triggers,
                min_confidence,
                temporal_size,
                frame_interval,
                roi_margin,
                crop,
                (tw, th),
                cooldown,
            )| {
                ClipConfig {
                    trigger_labels: triggers.into_iter().map(String::from).collect(),
                    min_confidence,
                    temporal_size,
                    frame_interval,
                    roi_margin,
                    crop,
                    tile_width: tw,
                    tile_height: th,
                    cooldown,
                }
            },
        )
}

#[derive(Debug, Clone)]
enum Step {
    Frame {
        source: u32,
        size: (u32, u32),
        detections: Vec<Detection>,
        pts: Option<u64>,
        /// The tile copy fails (as a sampler does on a frame it cannot map).
        fail: bool,
    },
    /// EOS: clips being collected are completed.
    FinishPartial,
    /// Flush or stop: clips being collected are abandoned.
    AbandonAll,
    /// Properties changed while running.
    Reconfigure(ClipConfig),
}

fn step() -> impl Strategy<Value = Step> {
    let frame = (
        0u32..3,
        frame_size(),
        proptest::collection::vec(detection(), 0..5),
        any::<Option<u64>>(),
        proptest::bool::weighted(0.05),
    )
        .prop_map(|(source, size, detections, pts, fail)| Step::Frame {
            source,
            size,
            detections,
            pts,
            fail,
        });
    prop_oneof![
        60 => frame,
        1 => Just(Step::FinishPartial),
        1 => Just(Step::AbandonAll),
        2 => clip_config().prop_map(Step::Reconfigure),
    ]
}

// ---------------------------------------------------------------------------------------------
// Clip assembly

/// A clip being collected, as the test expects it.
struct Open {
    id: u64,
    /// The source frame (counted per source) that triggered it.
    trigger_frame: u64,
    trigger_size: (u32, u32),
    region: PixelRect,
    /// The marker byte each sampled tile was filled with, and the labels of its frame.
    tiles: Vec<u8>,
    labels: Vec<Vec<LabelSeen>>,
}

#[derive(Default)]
struct SourceModel {
    /// Frames pushed for this source so far.
    frames: u64,
    open: Option<Open>,
    /// The source may trigger only on frames after this one.
    quiet_until: u64,
}

/// What the assembler must report on a frame: labels once, each at its best finite confidence.
fn labels_on(detections: &[Detection]) -> Vec<LabelSeen> {
    let mut out: Vec<LabelSeen> = Vec::new();
    for d in detections.iter().filter(|d| d.confidence.is_finite()) {
        match out.iter_mut().find(|l| *l.label == *d.label) {
            Some(l) if d.confidence > l.confidence => l.confidence = d.confidence,
            Some(_) => {}
            None => out.push(LabelSeen {
                label: d.label.as_str().into(),
                confidence: d.confidence,
            }),
        }
    }
    out
}

fn inside(r: PixelRect, (w, h): (u32, u32)) -> bool {
    r.width > 0
        && r.height > 0
        && r.x as u64 + r.width as u64 <= w as u64
        && r.y as u64 + r.height as u64 <= h as u64
}

struct Ledger {
    issued: BTreeSet<u64>,
    ended: HashMap<u64, &'static str>,
}

impl Ledger {
    fn end(&mut self, id: u64, how: &'static str) -> Result<(), TestCaseError> {
        prop_assert!(
            self.issued.contains(&id),
            "{how} clip {id} was never started"
        );
        if let Some(before) = self.ended.insert(id, how) {
            return Err(TestCaseError::fail(format!(
                "clip {id} ended twice: {before}, then {how}"
            )));
        }
        Ok(())
    }
}

/// A completed clip has the shape the config asks for and the tiles that were sampled for it,
/// the last one repeated when EOS cut it short.
fn check_clip(clip: &Clip, open: &Open, config: &ClipConfig) -> Result<(), TestCaseError> {
    let t = config.temporal_size as usize;
    let tile = config.tile_width as usize * config.tile_height as usize * 3;
    prop_assert_eq!(clip.request_id, open.id);
    prop_assert_eq!(clip.frames, config.temporal_size);
    prop_assert_eq!(clip.real_frames as usize, open.tiles.len());
    prop_assert!(clip.real_frames >= 1 && clip.real_frames <= clip.frames);
    prop_assert_eq!(
        (clip.width, clip.height),
        (config.tile_width, config.tile_height)
    );
    prop_assert_eq!(clip.tile_bytes(), tile);
    prop_assert_eq!(clip.pixels.len(), t * tile);
    prop_assert_eq!(clip.frame_labels.len(), t);
    prop_assert_eq!(clip.region, open.region);
    let last = open.tiles.len() - 1;
    for i in 0..t {
        let want = open.tiles[i.min(last)];
        prop_assert!(
            clip.tile(i).iter().all(|b| *b == want),
            "tile {} of clip {} is not the tile sampled for it",
            i,
            clip.request_id
        );
        prop_assert_eq!(&clip.frame_labels[i], &open.labels[i.min(last)]);
    }
    Ok(())
}

/// Whether a detection can start a clip on a `size` frame: a wanted label, confident enough, a
/// box that covers part of the frame.
fn usable(d: &Detection, config: &ClipConfig, (w, h): (u32, u32)) -> bool {
    config.trigger_labels.contains(&d.label)
        && d.confidence >= config.min_confidence
        && d.rect.to_pixels(w, h).is_some()
}

fn run_assembler(initial: ClipConfig, steps: Vec<Step>) -> Result<(), TestCaseError> {
    // The clip shape is fixed at creation; later configs change only the rest.
    let shape = (
        initial.temporal_size,
        initial.tile_width,
        initial.tile_height,
    );
    let mut config = initial.clone();
    let mut a = ClipAssembler::new(initial);
    let mut sources: HashMap<u32, SourceModel> = HashMap::new();
    let mut next = 1u64;
    let mut ledger = Ledger {
        issued: BTreeSet::new(),
        ended: HashMap::new(),
    };

    for (index, step) in steps.into_iter().enumerate() {
        match step {
            Step::Reconfigure(c) => {
                config = ClipConfig {
                    temporal_size: shape.0,
                    tile_width: shape.1,
                    tile_height: shape.2,
                    ..c.clone()
                };
                a.set_config(c);
                // Compared as text: NaN settings are equal there.
                prop_assert_eq!(format!("{:?}", a.config()), format!("{config:?}"));
            }
            Step::FinishPartial => {
                let clips = a.finish_partial();
                let mut ids: Vec<u64> = Vec::new();
                for clip in &clips {
                    let source = sources.get_mut(&clip.source.source_id);
                    let open = source.and_then(|s| s.open.take());
                    let Some(open) = open else {
                        return Err(TestCaseError::fail(format!(
                            "EOS completed clip {} of source {}, which had none open",
                            clip.request_id, clip.source.source_id
                        )));
                    };
                    check_clip(clip, &open, &config)?;
                    ledger.end(clip.request_id, "completed at EOS")?;
                    ids.push(clip.request_id);
                }
                prop_assert!(ids.windows(2).all(|w| w[0] < w[1]), "sorted by id");
                let left: Vec<u64> = sources
                    .values()
                    .filter_map(|s| s.open.as_ref().map(|o| o.id))
                    .collect();
                prop_assert!(left.is_empty(), "EOS left clips {:?} open", left);
            }
            Step::AbandonAll => {
                let ids = a.abandon_all();
                let mut expected: Vec<u64> = sources
                    .values_mut()
                    .filter_map(|s| s.open.take().map(|o| o.id))
                    .collect();
                expected.sort_unstable();
                prop_assert_eq!(&ids, &expected);
                for id in ids {
                    ledger.end(id, "abandoned")?;
                }
                // A flush forgets cooldowns too.
                for s in sources.values_mut() {
                    s.quiet_until = 0;
                }
            }
            Step::Frame {
                source,
                size,
                detections,
                pts,
                fail,
            } => {
                let s = sources.entry(source).or_default();
                s.frames += 1;
                let frame = s.frames;
                let idle = s.open.is_none();
                let quiet = frame <= s.quiet_until;
                let marker = (index % 250) as u8 + 1;
                let tile_bytes = config.tile_width as usize * config.tile_height as usize * 3;

                let mut issued = Vec::new();
                let mut sampled: Vec<PixelRect> = Vec::new();
                let mut bad_tile_len = None;
                let outcome = a.push_frame(
                    SourceFrame {
                        source_id: source,
                        ..Default::default()
                    },
                    &detections,
                    size.0,
                    size.1,
                    pts,
                    &mut || {
                        issued.push(next);
                        next += 1;
                        next - 1
                    },
                    &mut |region, tile| {
                        sampled.push(region);
                        if tile.len() != tile_bytes {
                            bad_tile_len = Some(tile.len());
                        }
                        if fail {
                            return Err("injected copy failure".into());
                        }
                        tile.fill(marker);
                        Ok(())
                    },
                );
                prop_assert_eq!(bad_tile_len, None, "tile buffer of the wrong size");
                prop_assert!(sampled.len() <= 1, "one tile per frame at most");
                for r in &sampled {
                    prop_assert!(
                        inside(*r, size),
                        "crop {:?} is empty or outside the {:?} frame",
                        r,
                        size
                    );
                }

                // Starting: only from an idle, non-cooling source, only on a usable trigger, and
                // always on one.
                let usable_now: Vec<&Detection> = detections
                    .iter()
                    .filter(|d| usable(d, &config, size))
                    .collect();
                prop_assert_eq!(issued.len(), outcome.started.iter().count());
                if let Some(id) = outcome.started {
                    prop_assert_eq!(id, issued[0]);
                    prop_assert!(
                        idle,
                        "source {} started a clip while collecting one",
                        source
                    );
                    prop_assert!(
                        !quiet,
                        "source {} started a clip on frame {}, within its cooldown (until {})",
                        source,
                        frame,
                        s.quiet_until
                    );
                    prop_assert!(!usable_now.is_empty(), "started without a usable trigger");
                    ledger.issued.insert(id);
                    let region = match config.crop {
                        CropMode::Full => PixelRect::full(size.0, size.1),
                        CropMode::Roi => {
                            let first = Bounds::of(&usable_now[0].rect);
                            let union = usable_now[1..]
                                .iter()
                                .fold(first, |u, d| u.union(&Bounds::of(&d.rect)));
                            match union.widen(config.roi_margin).to_pixels(size.0, size.1) {
                                Some(r) => r,
                                None => {
                                    return Err(TestCaseError::fail(
                                        "started with a crop that fits no frame",
                                    ));
                                }
                            }
                        }
                    };
                    s.open = Some(Open {
                        id,
                        trigger_frame: frame,
                        trigger_size: size,
                        region,
                        tiles: Vec::new(),
                        labels: Vec::new(),
                    });
                } else if idle && !quiet && !usable_now.is_empty() {
                    let sane_margin = (0.0..=10.0).contains(&config.roi_margin);
                    let modest = usable_now.iter().all(|d| {
                        [d.rect.x, d.rect.y, d.rect.width, d.rect.height]
                            .iter()
                            .all(|v| v.abs() <= 1e6)
                    });
                    prop_assert!(
                        config.crop == CropMode::Roi && !(sane_margin && modest),
                        "source {} ignored a usable trigger on frame {}",
                        source,
                        frame
                    );
                }

                // Sampling: every frame-interval-th frame of a clip, the trigger frame first.
                let Some(open) = s.open.as_mut() else {
                    prop_assert!(sampled.is_empty(), "sampled without a clip");
                    prop_assert!(outcome.finished.is_none() && outcome.failed.is_none());
                    continue;
                };
                let due = (frame - open.trigger_frame)
                    .is_multiple_of(config.frame_interval.max(1) as u64);
                let empty_frame = size.0 == 0 || size.1 == 0;
                prop_assert_eq!(sampled.len(), usize::from(due && !empty_frame));
                if let Some(r) = sampled.first()
                    && size == open.trigger_size
                    && size.0 <= 1 << 20
                    && size.1 <= 1 << 20
                {
                    prop_assert_eq!(*r, open.region, "the crop is fixed for the whole clip");
                }
                if let Some((id, _)) = &outcome.failed {
                    prop_assert_eq!(*id, open.id);
                    prop_assert!(due && (fail || empty_frame), "failed for no reason");
                    prop_assert!(outcome.finished.is_none());
                    ledger.end(*id, "failed")?;
                    s.open = None;
                    continue;
                }
                prop_assert!(
                    !(due && (fail || empty_frame)),
                    "a failed copy went unreported"
                );
                if due {
                    open.tiles.push(marker);
                    open.labels.push(labels_on(&detections));
                }
                match &outcome.finished {
                    Some(clip) => {
                        prop_assert_eq!(open.tiles.len(), shape.0 as usize);
                        prop_assert_eq!(clip.source.source_id, source);
                        prop_assert_eq!(clip.real_frames, clip.frames);
                        check_clip(clip, open, &config)?;
                        ledger.end(clip.request_id, "finished")?;
                        s.open = None;
                        s.quiet_until = frame + config.cooldown as u64;
                    }
                    None => prop_assert!(open.tiles.len() < shape.0 as usize, "a full clip"),
                }
            }
        }
        let open = sources.values().filter(|s| s.open.is_some()).count();
        prop_assert_eq!(a.collecting(), open);
    }

    // EOS at the end: whatever is left is completed, and then every clip has ended once.
    for clip in a.finish_partial() {
        let open = sources
            .get_mut(&clip.source.source_id)
            .and_then(|s| s.open.take())
            .ok_or_else(|| TestCaseError::fail("EOS completed a clip that was not open"))?;
        check_clip(&clip, &open, &config)?;
        ledger.end(clip.request_id, "completed at EOS")?;
    }
    let ended: BTreeSet<u64> = ledger.ended.keys().copied().collect();
    prop_assert_eq!(
        &ended,
        &ledger.issued,
        "every started clip ends exactly once"
    );
    Ok(())
}

#[test]
fn clip_assembly_keeps_its_promises_on_any_input() {
    check(
        "clip assembly",
        256,
        (clip_config(), proptest::collection::vec(step(), 1..120)),
        |(config, steps)| run_assembler(config, steps),
    );
}

/// Found by the property above (before its oracle learned to skip boxes beyond ±1e6): a finite
/// box that covers part of the frame but is so large that widening it by `roi-margin` (or its
/// union with another box) overflowed f32 became infinite and never triggered. Minimal input
/// proptest found: a `weapon` box (0, 0, 137.3 × f32::MAX) on a 1×202 frame with `roi-margin`
/// 0.75. Fixed: boxes are clamped to the frame before they are united and widened.
#[test]
fn a_huge_box_that_covers_the_frame_triggers() {
    let mut a = ClipAssembler::new(ClipConfig {
        temporal_size: 1,
        tile_width: 1,
        tile_height: 1,
        ..Default::default()
    });
    for (margin, boxes) in [
        // Widening overflows.
        (0.15, vec![(0.0, 0.0, 137.3, f32::MAX)]),
        // The union overflows, without any margin.
        (
            0.0,
            vec![(-3e38, 0.0, 3.0e38 + 1e37, 10.0), (0.0, 0.0, 3e38, 10.0)],
        ),
    ] {
        a.set_config(ClipConfig {
            roi_margin: margin,
            cooldown: 0,
            ..a.config().clone()
        });
        let detections: Vec<Detection> = boxes
            .into_iter()
            .map(|(x, y, width, height)| Detection {
                class_id: 0,
                label: "weapon".into(),
                confidence: 0.9,
                rect: Rect {
                    x,
                    y,
                    width,
                    height,
                },
                object_id: None,
            })
            .collect();
        for d in &detections {
            assert!(
                d.rect.to_pixels(202, 202).is_some(),
                "{d:?} covers the frame"
            );
        }
        let o = a.push_frame(
            SourceFrame::default(),
            &detections,
            202,
            202,
            None,
            &mut || 1,
            &mut |_, _| Ok(()),
        );
        assert_eq!(o.started, Some(1), "{detections:?} with margin {margin}");
    }
}

// ---------------------------------------------------------------------------------------------
// Geometry

fn any_rect() -> impl Strategy<Value = Rect> {
    (odd_f32(), odd_f32(), odd_f32(), odd_f32()).prop_map(|(x, y, width, height)| Rect {
        x,
        y,
        width,
        height,
    })
}

/// A valid box on a quarter-pixel grid: every sum and product the properties form is exact.
fn grid_rect() -> impl Strategy<Value = Rect> {
    (-4000i32..4000, -4000i32..4000, 1i32..4000, 1i32..4000).prop_map(|(x, y, w, h)| Rect {
        x: x as f32 / 4.0,
        y: y as f32 / 4.0,
        width: w as f32 / 4.0,
        height: h as f32 / 4.0,
    })
}

fn contains(outer: PixelRect, inner: PixelRect) -> bool {
    outer.x <= inner.x
        && outer.y <= inner.y
        && outer.x + outer.width >= inner.x + inner.width
        && outer.y + outer.height >= inner.y + inner.height
}

/// One axis of `to_pixels`: the span `[start, start + size)` against `[0, limit)`.
fn axis_ok(start: f32, size: f32, limit: u32, p0: u32, plen: u32) -> Result<(), TestCaseError> {
    let (a, b, lim) = (start as f64, start as f64 + size as f64, limit as f64);
    let (p0, p1) = (p0 as f64, p0 as f64 + plen as f64);
    prop_assert!(p1 <= lim && plen > 0);
    // Covers the clamped span, rounded outwards by less than a pixel.
    prop_assert!(p0 <= a.max(0.0) && p0 + 1.0 > a.max(0.0), "left edge");
    prop_assert!(p1 >= b.min(lim) && p1 - 1.0 < b.min(lim), "right edge");
    Ok(())
}

#[test]
fn to_pixels_is_the_clamped_box_exactly_when_it_overlaps_the_frame() {
    check(
        "Rect::to_pixels",
        2048,
        (any_rect(), frame_size()),
        |(r, (w, h))| {
            let overlaps = |start: f32, size: f32, limit: u32| {
                (start as f64) < limit as f64 && start as f64 + size as f64 > 0.0
            };
            let expected = r.is_valid()
                && w > 0
                && h > 0
                && overlaps(r.x, r.width, w)
                && overlaps(r.y, r.height, h);
            // A size below f64 resolution at its position vanishes in `start + size`: such a
            // sliver on a pixel boundary may be dropped (found at 2.7e-25 px tall at y = 1).
            let sliver = |start: f32, size: f32| start as f64 + size as f64 == start as f64;
            let p = r.to_pixels(w, h);
            if !(sliver(r.x, r.width) || sliver(r.y, r.height)) {
                prop_assert_eq!(p.is_some(), expected, "{:?} on {}x{}: {:?}", r, w, h, p);
            } else {
                prop_assert!(expected || p.is_none(), "{:?} on {}x{}: {:?}", r, w, h, p);
            }
            if let Some(p) = p {
                prop_assert!(inside(p, (w, h)));
                axis_ok(r.x, r.width, w, p.x, p.width)?;
                axis_ok(r.y, r.height, h, p.y, p.height)?;
                // A whole-pixel box converts to itself.
                if w < 1 << 24 && h < 1 << 24 {
                    let back = Rect {
                        x: p.x as f32,
                        y: p.y as f32,
                        width: p.width as f32,
                        height: p.height as f32,
                    };
                    prop_assert_eq!(back.to_pixels(w, h), Some(p));
                }
            }
            Ok(())
        },
    );
}

#[test]
fn union_is_the_exact_bounding_box() {
    check(
        "Bounds::union",
        1024,
        (grid_rect(), grid_rect(), grid_rect(), frame_size()),
        |(ra, rb, rc, (w, h))| {
            let (a, b, c) = (Bounds::of(&ra), Bounds::of(&rb), Bounds::of(&rc));
            let u = a.union(&b);
            prop_assert_eq!(u.x0, a.x0.min(b.x0));
            prop_assert_eq!(u.y0, a.y0.min(b.y0));
            prop_assert_eq!(u.x1, a.x1.max(b.x1));
            prop_assert_eq!(u.y1, a.y1.max(b.y1));
            prop_assert_eq!(u, b.union(&a));
            prop_assert_eq!(a.union(&a), a);
            prop_assert_eq!(u.union(&c), a.union(&b.union(&c)));
            prop_assert!(u.x1 > u.x0 && u.y1 > u.y0);
            for part in [a, b] {
                if let Some(p) = part.to_pixels(w, h) {
                    let q = u.to_pixels(w, h);
                    prop_assert!(q.is_some_and(|q| contains(q, p)), "{:?} ⊄ {:?}", p, q);
                }
            }
            Ok(())
        },
    );
}

#[test]
fn widen_keeps_the_centre_and_scales_the_size() {
    check(
        "Bounds::widen",
        1024,
        (grid_rect(), 0u32..=80, frame_size()),
        |(rect, eighths, (w, h))| {
            let r = Bounds::of(&rect);
            let m = eighths as f32 / 8.0;
            let g = r.widen(m);
            let scale = 1.0 + 2.0 * m as f64;
            prop_assert_eq!(g.x1 - g.x0, (r.x1 - r.x0) * scale);
            prop_assert_eq!(g.y1 - g.y0, (r.y1 - r.y0) * scale);
            prop_assert_eq!(g.x0 + g.x1, r.x0 + r.x1, "centre x");
            prop_assert_eq!(g.y0 + g.y1, r.y0 + r.y1, "centre y");
            if let Some(p) = r.to_pixels(w, h) {
                prop_assert!(g.to_pixels(w, h).is_some_and(|q| contains(q, p)));
            }
            prop_assert_eq!(r.widen(0.0), r);
            // Half the size off each side, or more, leaves nothing.
            prop_assert_eq!(r.widen(-0.5 - m).to_pixels(w, h), None);
            Ok(())
        },
    );
}

#[test]
fn union_widen_and_to_pixels_never_panic_or_leave_the_frame() {
    check(
        "Bounds chain",
        2048,
        (any_rect(), any_rect(), any::<f32>(), frame_size()),
        |(ra, rb, m, (w, h))| {
            let (a, b) = (Bounds::of(&ra), Bounds::of(&rb));
            for r in [a.union(&b), a.widen(m), a.union(&b).widen(m)] {
                if let Some(p) = r.to_pixels(w, h) {
                    prop_assert!(inside(p, (w, h)), "{:?} -> {:?} on {}x{}", r, p, w, h);
                }
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// The ROI reader

/// The `confidence` field of an ROI meta's `detection` parameters.
#[derive(Debug, Clone)]
enum Confidence {
    F64(f64),
    F32(f32),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    Text(String),
    /// A `detection` structure without the field.
    Missing,
    /// No `detection` structure at all.
    NoParams,
}

impl Confidence {
    fn expected(&self) -> f64 {
        match self {
            Confidence::F64(v) => *v,
            Confidence::F32(v) => *v as f64,
            Confidence::I32(v) => *v as f64,
            Confidence::U32(v) => *v as f64,
            Confidence::I64(v) => *v as f64,
            Confidence::U64(v) => *v as f64,
            Confidence::Text(_) | Confidence::Missing | Confidence::NoParams => 1.0,
        }
    }
}

#[derive(Debug, Clone)]
struct RoiSpec {
    label: String,
    rect: (u32, u32, u32, u32),
    confidence: Confidence,
    label_id: Option<i32>,
    object_id: Option<i32>,
}

fn roi_spec() -> impl Strategy<Value = RoiSpec> {
    let confidence = prop_oneof![
        odd_confidence().prop_map(Confidence::F64),
        any::<f32>().prop_map(Confidence::F32),
        any::<i32>().prop_map(Confidence::I32),
        any::<u32>().prop_map(Confidence::U32),
        any::<i64>().prop_map(Confidence::I64),
        any::<u64>().prop_map(Confidence::U64),
        "[a-z0-9.]{0,6}".prop_map(Confidence::Text),
        Just(Confidence::Missing),
        Just(Confidence::NoParams),
    ];
    (
        // Any text but NUL, which a C string (the ROI type is a GQuark) cannot hold.
        "[^\\x00]{0,16}",
        any::<(u32, u32, u32, u32)>(),
        confidence,
        any::<Option<i32>>(),
        any::<Option<i32>>(),
    )
        .prop_map(|(label, rect, confidence, label_id, object_id)| RoiSpec {
            label,
            rect,
            confidence,
            label_id,
            object_id,
        })
}

/// Equal, with NaN equal to NaN.
fn same(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

fn same_f32(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn the_roi_reader_reads_any_roi_metas_as_written() {
    init();
    check(
        "ROI reader",
        256,
        proptest::collection::vec(roi_spec(), 0..24),
        |specs| {
            let mut buf = gst::Buffer::new();
            {
                let b = buf.get_mut().unwrap();
                for s in &specs {
                    let mut m = gst_video::VideoRegionOfInterestMeta::add(b, &s.label, s.rect);
                    if matches!(s.confidence, Confidence::NoParams) {
                        continue;
                    }
                    let mut p = gst::Structure::builder("detection");
                    p = match &s.confidence {
                        Confidence::F64(v) => p.field("confidence", *v),
                        Confidence::F32(v) => p.field("confidence", *v),
                        Confidence::I32(v) => p.field("confidence", *v),
                        Confidence::U32(v) => p.field("confidence", *v),
                        Confidence::I64(v) => p.field("confidence", *v),
                        Confidence::U64(v) => p.field("confidence", *v),
                        Confidence::Text(v) => p.field("confidence", v.as_str()),
                        Confidence::Missing | Confidence::NoParams => p,
                    };
                    if let Some(v) = s.label_id {
                        p = p.field("label_id", v);
                    }
                    if let Some(v) = s.object_id {
                        p = p.field("object_id", v);
                    }
                    m.add_param(p.build());
                }
            }
            let mut out = Vec::new();
            RoiReader.read(&buf, &mut out);
            prop_assert_eq!(out.len(), 1, "one frame per buffer");
            prop_assert_eq!(out[0].source, SourceFrame::default());
            let found = &out[0].detections;
            prop_assert_eq!(found.len(), specs.len(), "one detection per meta");
            // The buffer lists its metas in some order: match them up by content.
            let mut unmatched: Vec<&Detection> = found.iter().collect();
            for s in &specs {
                let params = !matches!(s.confidence, Confidence::NoParams);
                let want = Detection {
                    class_id: s.label_id.filter(|_| params).unwrap_or(-1),
                    label: s.label.clone(),
                    confidence: s.confidence.expected(),
                    rect: Rect {
                        x: s.rect.0 as f32,
                        y: s.rect.1 as f32,
                        width: s.rect.2 as f32,
                        height: s.rect.3 as f32,
                    },
                    object_id: s.object_id.filter(|v| params && *v >= 0).map(|v| v as u64),
                };
                let at = unmatched.iter().position(|d| {
                    d.class_id == want.class_id
                        && d.label == want.label
                        && same(d.confidence, want.confidence)
                        && d.rect == want.rect
                        && d.object_id == want.object_id
                });
                match at {
                    Some(i) => {
                        unmatched.swap_remove(i);
                    }
                    None => {
                        return Err(TestCaseError::fail(format!(
                            "no detection read as {want:?}; read {found:?}"
                        )));
                    }
                }
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// The DeepStream reader

#[derive(Debug, Clone)]
enum LabelBytes {
    /// Written NUL-terminated (cut to 127 bytes).
    Text(String),
    /// Written as they are (up to 128 bytes, terminated or not).
    Raw(Vec<u8>),
}

#[derive(Debug, Clone)]
struct ObjectSpec {
    class_id: i32,
    confidence: f32,
    rect: (f32, f32, f32, f32),
    object_id: u64,
    label: LabelBytes,
}

#[derive(Debug, Clone)]
struct FrameSpec {
    source_id: u32,
    pad_index: u32,
    frame_num: i32,
    pts: u64,
    /// `None`: a list node with null data.
    objects: Vec<Option<ObjectSpec>>,
}

#[derive(Debug, Clone)]
struct BatchSpec {
    frames: Vec<Option<FrameSpec>>,
    layout: DeepStreamLayout,
    release: Release,
    labels: String,
    /// Extra metas the reader must skip: another DeepStream meta type, a batch with null data,
    /// an undersized meta, ROI metas.
    other_type: bool,
    null_data: bool,
    undersized: bool,
    rois: u32,
}

fn object_spec() -> impl Strategy<Value = ObjectSpec> {
    let label = prop_oneof![
        "[^\\x00]{0,48}".prop_map(LabelBytes::Text),
        proptest::collection::vec(any::<u8>(), 0..=128).prop_map(LabelBytes::Raw),
    ];
    (
        prop_oneof![0i32..5, any::<i32>()],
        odd_f32(),
        (odd_f32(), odd_f32(), odd_f32(), odd_f32()),
        prop_oneof![Just(UNTRACKED), any::<u64>()],
        label,
    )
        .prop_map(
            |(class_id, confidence, rect, object_id, label)| ObjectSpec {
                class_id,
                confidence,
                rect,
                object_id,
                label,
            },
        )
}

fn batch_spec() -> impl Strategy<Value = BatchSpec> {
    let frame = (
        any::<u32>(),
        any::<u32>(),
        any::<i32>(),
        prop_oneof![Just(u64::MAX), any::<u64>()],
        proptest::collection::vec(proptest::option::weighted(0.9, object_spec()), 0..8),
    )
        .prop_map(
            |(source_id, pad_index, frame_num, pts, objects)| FrameSpec {
                source_id,
                pad_index,
                frame_num,
                pts,
                objects,
            },
        );
    (
        proptest::collection::vec(proptest::option::weighted(0.9, frame), 0..6),
        select(vec![
            (DeepStreamLayout::V5toV8, Release::Ds8),
            (DeepStreamLayout::V9, Release::Ds9),
            (DeepStreamLayout::Unknown, Release::Ds8),
            (DeepStreamLayout::Unknown, Release::Ds9),
        ]),
        select(vec![
            "",
            "0=person",
            "0=person,2=weapon,-1=none",
            "person;bag;weapon",
        ]),
        any::<(bool, bool, bool)>(),
        0u32..3,
    )
        .prop_map(
            |(frames, (layout, release), labels, (other_type, null_data, undersized), rois)| {
                BatchSpec {
                    frames,
                    layout,
                    release,
                    labels: labels.to_string(),
                    other_type,
                    null_data,
                    undersized,
                    rois,
                }
            },
        )
}

/// The `obj_label` the reader should find in the 128-byte array the stand-in wrote.
fn obj_label(label: &LabelBytes) -> Option<String> {
    let mut array = match label {
        LabelBytes::Text(s) => {
            let mut b = s.as_bytes().to_vec();
            b.truncate(127);
            b.push(0);
            b
        }
        LabelBytes::Raw(b) => b.clone(),
    };
    array.resize(128, 0);
    let end = array.iter().position(|b| *b == 0)?;
    String::from_utf8(array[..end].to_vec())
        .ok()
        .filter(|s| !s.is_empty())
}

#[test]
fn the_deepstream_reader_reads_any_standin_batch_as_written() {
    init();
    standin::register();
    check("DeepStream reader", 256, batch_spec(), |spec| {
        let mut batch = Batch::new().release(spec.release);
        for f in &spec.frames {
            let Some(f) = f else {
                batch = batch.null_frame();
                continue;
            };
            batch = batch.frame(f.source_id, f.pad_index, f.frame_num, f.pts, |mut fr| {
                for o in &f.objects {
                    let Some(o) = o else {
                        fr = fr.null_object();
                        continue;
                    };
                    fr = fr
                        .object(o.class_id, o.confidence, o.rect, "")
                        .id(o.object_id);
                    fr = match &o.label {
                        LabelBytes::Text(s) => {
                            let mut b = s.as_bytes().to_vec();
                            b.truncate(127);
                            b.push(0);
                            fr.raw_label(&b)
                        }
                        LabelBytes::Raw(b) => fr.raw_label(b),
                    };
                }
                fr
            });
        }
        let mut buf = gst::Buffer::new();
        {
            let b = buf.get_mut().unwrap();
            for i in 0..spec.rois {
                gst_video::VideoRegionOfInterestMeta::add(b, "person", (i, i, 10, 10));
            }
            if spec.other_type {
                Batch::new()
                    .meta_type(4096 + 7)
                    .frame(1, 1, 1, 1, |f| f.object(0, 1.0, (0.0, 0.0, 1.0, 1.0), "x"))
                    .attach(b);
            }
            if spec.null_data {
                Batch::new().null_meta_data().attach(b);
            }
            if spec.undersized {
                standin::attach_undersized(b);
            }
            batch.attach(b);
        }

        let class_labels = ClassLabels::parse(&spec.labels).unwrap();
        let mut reader = DeepStreamReader::new(spec.layout, class_labels.clone());
        let mut out = Vec::new();
        reader.read(&buf, &mut out);

        let mut expected = Vec::new();
        let mut skipped = spec.null_data as u64 + spec.undersized as u64;
        for (batch_index, f) in spec.frames.iter().enumerate() {
            let Some(f) = f else {
                skipped += 1;
                continue;
            };
            let mut detections = Vec::new();
            for o in &f.objects {
                let Some(o) = o else {
                    skipped += 1;
                    continue;
                };
                let label = class_labels
                    .get(o.class_id)
                    .map(String::from)
                    .or_else(|| {
                        (spec.layout != DeepStreamLayout::Unknown)
                            .then(|| obj_label(&o.label))
                            .flatten()
                    })
                    .unwrap_or_else(|| format!("class-{}", o.class_id));
                detections.push(Detection {
                    class_id: o.class_id,
                    label,
                    confidence: o.confidence as f64,
                    rect: Rect {
                        x: o.rect.0,
                        y: o.rect.1,
                        width: o.rect.2,
                        height: o.rect.3,
                    },
                    object_id: (o.object_id != UNTRACKED).then_some(o.object_id),
                });
            }
            expected.push(FrameDetections {
                source: SourceFrame {
                    source_id: f.source_id,
                    pad_index: f.pad_index,
                    batch_index: batch_index as u32,
                    frame_num: u64::try_from(f.frame_num).ok(),
                    pts: (f.pts != u64::MAX).then_some(f.pts),
                },
                detections,
            });
        }

        prop_assert_eq!(out.len(), expected.len(), "one entry per frame meta");
        for (got, want) in out.iter().zip(&expected) {
            prop_assert_eq!(got.source, want.source);
            prop_assert_eq!(got.detections.len(), want.detections.len());
            for (g, w) in got.detections.iter().zip(&want.detections) {
                let r = (g.rect, w.rect);
                prop_assert!(
                    g.class_id == w.class_id
                        && g.label == w.label
                        && same(g.confidence, w.confidence)
                        && same_f32(r.0.x, r.1.x)
                        && same_f32(r.0.y, r.1.y)
                        && same_f32(r.0.width, r.1.width)
                        && same_f32(r.0.height, r.1.height)
                        && g.object_id == w.object_id,
                    "read {:?}, wrote {:?}",
                    g,
                    w
                );
            }
        }
        prop_assert_eq!(reader.skipped(), skipped, "null entries and unusable metas");
        Ok(())
    });
}
