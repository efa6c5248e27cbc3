// SPDX-License-Identifier: MIT OR Apache-2.0
//! Real footage: OpenCV's `vtest.avi` (pedestrians seen from an elevated camera, 768×576,
//! 10 fps, 795 frames) with person detections from OpenCV's HOG detector, both made by
//! `make footage` (footage.mk) under `.cache/footage/`. With `clip-per=object`, clips are per
//! person, several collect at once, each crop stays on its person over every sampled frame and
//! is far smaller than the frame, and the stats add up. The assertions are about behaviour, not
//! counts that depend on the detector. The figures are printed (run with `--nocapture`) beside
//! those of `clip-per=source`.
//!
//! Without the files the tests fail, naming `make footage`; set `IGUARD_FOOTAGE=skip` to skip
//! them instead.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use common::footage::footage;
use common::*;
use gstiguard::clip::{ClipAssembler, ClipConfig, ClipPer, Collected, TrackConfig, Tracking};
use gstiguard::detections::{Detection, SourceFrame};
use gstiguard::geometry::{PixelRect, Rect};
use gstiguard::verdict::Verdict;

const FRAME_W: u32 = 768;
const FRAME_H: u32 = 576;

/// The HOG detections by frame (1-based): boxes in pixels and confidence.
fn read_hog(path: &PathBuf) -> BTreeMap<u64, Vec<(PixelRect, f64)>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out: BTreeMap<u64, Vec<(PixelRect, f64)>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let f: Vec<f64> = line.split(',').map(|v| v.trim().parse().unwrap()).collect();
        let r = PixelRect {
            x: f[2] as u32,
            y: f[3] as u32,
            width: f[4] as u32,
            height: f[5] as u32,
        };
        out.entry(f[0] as u64).or_default().push((r, f[6]));
    }
    out
}

fn area(r: &PixelRect) -> f64 {
    r.width as f64 * r.height as f64
}

/// The share of `b` inside `crop`.
fn coverage(crop: &PixelRect, b: &PixelRect) -> f64 {
    let w = (crop.x + crop.width).min(b.x + b.width) as f64 - crop.x.max(b.x) as f64;
    let h = (crop.y + crop.height).min(b.y + b.height) as f64 - crop.y.max(b.y) as f64;
    if w <= 0.0 || h <= 0.0 {
        return 0.0;
    }
    w * h / area(b)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

struct Figures {
    clips: usize,
    objects: usize,
    most_collecting: u64,
    median_share: f64,
}

impl Figures {
    fn print(&self, what: &str) {
        eprintln!(
            "vtest.avi, {what}: {} clips, {} distinct objects, at most {} collecting at once, \
             median crop {:.1} % of the frame",
            self.clips,
            self.objects,
            self.most_collecting,
            100.0 * self.median_share
        );
    }
}

/// The assembler alone over the recorded detections (no pixels): every clip with every crop,
/// and the requests it answered `dropped`.
fn assemble(per: ClipPer) -> (Vec<Collected>, Vec<Collected>, Figures) {
    let (_, dets) = footage().unwrap();
    let hog = read_hog(&dets);
    let mut a = ClipAssembler::with_tracks(
        ClipConfig::default(),
        // The element's defaults, so the element test can compare its verdicts with these.
        TrackConfig {
            clip_per: per,
            tracking: Tracking::Auto,
            max_clips_per_source: 8,
            track_timeout: 15,
            min_frames: 8,
        },
    );
    let mut next = 0u64;
    let mut clips = Vec::new();
    let mut dropped = Vec::new();
    for frame in 1..=795u64 {
        let detections: Vec<Detection> = hog
            .get(&frame)
            .into_iter()
            .flatten()
            .map(|(r, conf)| Detection {
                class_id: 1,
                label: "person".into(),
                confidence: *conf,
                rect: Rect {
                    x: r.x as f32,
                    y: r.y as f32,
                    width: r.width as f32,
                    height: r.height as f32,
                },
                object_id: None,
            })
            .collect();
        let e = a.push(
            SourceFrame::default(),
            &detections,
            FRAME_W,
            FRAME_H,
            Some(frame),
            &mut || {
                next += 1;
                next
            },
            &mut |_, _| Ok(()),
        );
        assert!(e.failed.is_empty(), "{:?}", e.failed);
        clips.extend(e.finished);
        dropped.extend(e.dropped.into_iter().map(|(c, _)| c));
    }
    clips.extend(a.finish_partial());
    let shares: Vec<f64> = clips
        .iter()
        .flat_map(|c| c.crops.iter().map(|r| area(r) / (FRAME_W * FRAME_H) as f64))
        .collect();
    let figures = Figures {
        clips: clips.len() + dropped.len(),
        objects: clips
            .iter()
            .chain(&dropped)
            .map(|c| c.object_id)
            .collect::<BTreeSet<_>>()
            .len(),
        most_collecting: a
            .counters()
            .most_collecting
            .load(std::sync::atomic::Ordering::Relaxed),
        median_share: median(shares),
    };
    (clips, dropped, figures)
}

#[test]
fn per_object_crops_stay_on_their_person_on_every_sampled_frame() {
    if footage().is_none() {
        return;
    }
    let (clips, _, f) = assemble(ClipPer::Object);
    f.print("assembler, clip-per=object");
    let (_, _, s) = assemble(ClipPer::Source);
    s.print("assembler, clip-per=source");
    assert!(f.objects >= 4, "clips for several people: {}", f.objects);
    assert!(f.most_collecting >= 2, "several clips at once");
    assert!(
        f.median_share < 0.1,
        "crops far smaller than the frame: {}",
        f.median_share
    );
    assert!(
        f.median_share < s.median_share / 2.0,
        "per person, not the crowd: {} vs {}",
        f.median_share,
        s.median_share
    );
    let mut checked = 0;
    let mut worst: f64 = 0.0;
    for c in &clips {
        assert!(c.object_id.is_some());
        assert_eq!(c.crops.len(), c.boxes.len());
        for (crop, b) in c.crops.iter().zip(&c.boxes) {
            let Some(b) = b else { continue };
            // The person's box is (nearly) inside the crop, and the crop is not much more than
            // the box made square with its margin (3.4 times its area): the detector's box
            // scale jumps up to 2× between frames and the smoothed crop follows over a few.
            assert!(
                coverage(crop, b) >= 0.8,
                "clip {} of object {:?}: crop {crop:?} leaves its person {b:?}",
                c.request_id,
                c.object_id
            );
            assert!(
                area(crop) <= 10.0 * area(b),
                "clip {}: crop {crop:?} is far larger than its person {b:?}",
                c.request_id
            );
            worst = worst.max(area(crop) / area(b));
            checked += 1;
        }
    }
    eprintln!(
        "{checked} crops checked against their person's box; the largest is {worst:.1}× its area"
    );
    assert!(checked > 100, "only {checked} crops had their person's box");
}

/// Runs the footage through the element and returns its verdicts and stats.
fn run_element(props: &str) -> (Vec<Verdict>, Stats) {
    let (video, dets) = footage().unwrap();
    init();
    let desc = format!(
        "filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=RGBA \
         ! iguardreplay location={} class-labels=1=person ! iguardverify name=v {props} \
         ! fakesink sync=false",
        video.display(),
        dets.display()
    );
    run_to_eos(&desc, Duration::from_secs(300), |_| {})
}

fn element_figures(v: &[Verdict], stats: &Stats) -> Figures {
    Figures {
        clips: v.len(),
        objects: v.iter().map(|v| v.object_id).collect::<BTreeSet<_>>().len(),
        most_collecting: stats.u("clips-most-collecting"),
        median_share: median(
            v.iter()
                .filter_map(|v| v.crop)
                .map(|c| area(&c) / (FRAME_W * FRAME_H) as f64)
                .collect(),
        ),
    }
}

#[test]
fn the_element_on_vtest_makes_clips_per_person() {
    if footage().is_none() {
        return;
    }
    with_watchdog(Duration::from_secs(600), || {
        let (v, stats) = run_element("");
        stats.assert_adds_up();
        let f = element_figures(&v, &stats);
        f.print("element, clip-per=object (defaults, fallback scorer)");
        eprintln!(
            "  of which {} scored, {} dropped ({} beyond max-clips-per-source, {} lost before \
             min-frames); {} lost tracks completed",
            stats.u("completed"),
            stats.u("dropped"),
            stats.u("clips-overflowed"),
            stats.u("clips-lost-dropped"),
            stats.u("clips-lost-completed")
        );
        let (vs, ss) = run_element("clip-per=source");
        ss.assert_adds_up();
        let s = element_figures(&vs, &ss);
        s.print("element, clip-per=source");

        assert_eq!(stats.u("pending"), 0, "{}", stats.0);
        assert_eq!(
            stats.u("submitted"),
            v.len() as u64,
            "a verdict per request"
        );
        assert!(v.iter().all(|v| v.object_id.is_some() && v.crop.is_some()));
        assert!(f.objects >= 4, "clips for several people: {}", f.objects);
        assert!(f.most_collecting >= 2, "several clips at once: {}", stats.0);
        assert!(
            stats.u("clips-most-collecting") <= 8,
            "max-clips-per-source"
        );
        assert!(f.median_share < 0.1, "crops far smaller than the frame");
        assert!(
            f.median_share < s.median_share / 2.0,
            "per person, not the crowd"
        );
        assert!(vs.iter().all(|v| v.object_id.is_none()));
        // The element, decoding the real video, cuts the clips the assembler cuts from the same
        // detections, whose every crop the test above checks against its person's box: the
        // same objects, tiles and last crops.
        let (clips, dropped, _) = assemble(ClipPer::Object);
        type Key = (Option<u64>, u32, Option<(u32, u32, u32, u32)>);
        let plain = |c: Option<PixelRect>| c.map(|c| (c.x, c.y, c.width, c.height));
        let mut want: Vec<Key> = clips
            .iter()
            .chain(&dropped)
            .map(|c| (c.object_id, c.real_frames, plain(c.last_crop())))
            .collect();
        let mut got: Vec<Key> = v
            .iter()
            .map(|v| (v.object_id, v.frames, plain(v.crop)))
            .collect();
        want.sort();
        got.sort();
        assert_eq!(got, want);
    });
}
