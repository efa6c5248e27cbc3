// SPDX-License-Identifier: MIT OR Apache-2.0
//! Helpers of the DeepStream element tests, shared by the binary that uses NVIDIA's real
//! library (`deepstream_element_nvidia.rs`) and the one that uses the stand-in
//! (`deepstream_element.rs`). Each binary names its batch builder `builder` (`nvidia::compat`
//! or `standin`), which gives `Batch` and `Frame` the same methods.
#![allow(dead_code)]

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::builder::{Batch, Frame};
use crate::common::*;
use gst::prelude::*;
use gstiguard::clip::Clip;
use gstiguard::meta;
use gstiguard::scorer::fallback::FallbackScorer;
use gstiguard::scorer::{Cancel, Score, ScoreError, Scorer};
use gstiguard::verdict::Verdict;

pub const MS: u64 = 1_000_000;
/// Where the red box is in every frame (`common::frame`), in frame pixels.
pub const BOX: (f32, f32, f32, f32) = (100.0, 60.0, 64.0, 80.0);
/// A box the element can crop, away from the red one.
pub const OTHER_BOX: (f32, f32, f32, f32) = (10.0, 10.0, 40.0, 40.0);

/// Class ids of the detector in these tests.
pub const PERSON: i32 = 0;
pub const BAG: i32 = 1;
pub const WEAPON: i32 = 2;
pub const CLASS_LABELS: &str = "0=person,1=bag,2=weapon";

/// The three cameras: source id and the (different) `nvstreammux` pad each came through.
pub const SOURCES: [(u32, u32); 3] = [(0, 4), (1, 7), (2, 9)];

/// The PTS DeepStream keeps for `source`'s frame `n` (`buf_pts`): each camera has a clock of
/// its own, unlike the batch buffer's PTS (`n` × 33 ms).
pub fn buf_pts(source: u32, n: u64) -> u64 {
    (source as u64 + 1) * 10_000 * MS + n * 33 * MS
}

pub fn pad_of(source: u32) -> u32 {
    SOURCES.iter().find(|(s, _)| *s == source).unwrap().1
}

/// A scorer that records every clip, then holds it until the test opens the gate (or the pool
/// cancels the call), then scores it with the label-based fallback (weapon labels: `weapon`).
#[derive(Default)]
pub struct GatedRecorder {
    clips: Mutex<Vec<Clip>>,
    open: Mutex<bool>,
    cv: Condvar,
}

impl GatedRecorder {
    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }

    pub fn clips(&self) -> Vec<Clip> {
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

/// Buffer `n` (PTS n × 33 ms) carrying `batch`.
pub fn batched(n: u64, batch: Batch) -> gst::Buffer {
    let mut b = frame((100, 60, 64, 80), n * 33);
    batch.attach(b.get_mut().unwrap());
    b
}

/// Pushes buffer `n` with `batch`, checks it came out unchanged, and returns it.
pub fn push(h: &mut gst_check::Harness, n: u64, batch: Batch) -> gst::Buffer {
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
pub fn batch_of(n: u64, order: &[u32], objects: impl Fn(u32, Frame) -> Frame) -> Batch {
    let mut b = Batch::new();
    for &s in order {
        b = b.frame(s, pad_of(s), n as i32, buf_pts(s, n), |f| objects(s, f));
    }
    b
}

/// Verdicts attached to `buffer`, checking there is at most one per source.
pub fn attached(buffer: &gst::Buffer) -> Vec<Verdict> {
    let v = meta::read_all(buffer);
    let mut sources: Vec<u32> = v.iter().map(|v| v.source_id).collect();
    sources.sort();
    sources.dedup();
    assert_eq!(sources.len(), v.len(), "one verdict per source per buffer");
    v
}

/// Pops verdict messages until `n` have arrived.
pub fn wait_bus_verdicts(bus: &gst::Bus, n: usize) -> Vec<Verdict> {
    let mut all = Vec::new();
    wait_for("verdicts on the bus", Duration::from_secs(20), || {
        all.extend(bus_verdicts(bus));
        all.len() >= n
    });
    assert_eq!(all.len(), n, "{all:?}");
    all
}

pub fn element_with(
    props: &[(&str, &dyn ToValue)],
) -> (gst::Element, gst::Bus, Arc<GatedRecorder>) {
    let (e, bus) = element(props);
    let scorer = Arc::new(GatedRecorder::default());
    set_scorer(&e, scorer.clone());
    (e, bus, scorer)
}
