// SPDX-License-Identifier: MIT OR Apache-2.0
//! The built-in association of id-less detections across frames: a small IoU tracker.
//!
//! Each track remembers its last box and a velocity (the mean motion per frame of its box). On
//! a frame, every track's box is moved by its velocity for the frames since it was last seen,
//! and detections are matched to these predicted boxes greedily by IoU, best pair first, only
//! within one label. A detection left over starts a new track; a track unseen for `timeout`
//! frames is forgotten on that frame, the frame [`Memory`] reports its object lost, so a lost
//! object seen again gets a new id. The prediction is what keeps two people who cross apart: at
//! the crossing their boxes overlap, but each predicted box lies on its own side.
//!
//! Greedy matching (not Hungarian) is enough for the few boxes of a camera frame and costs
//! O(tracks × detections). The number of tracks is capped here, and the detections by the
//! caller (the assembler keeps the `max-detections` most confident), so a detector spraying
//! boxes cannot make a frame expensive: at most [`MAX_TRACKS`] × `max-detections` pairs.

use std::collections::HashMap;
use std::hash::Hash;

use crate::geometry::{Bounds, PixelRect};

/// Tracks kept per source at most; detections beyond it stay unmatched and get no id.
pub const MAX_TRACKS: usize = 256;

/// The least IoU between a predicted box and a detection for them to match.
/// 0.2 rather than the usual 0.3: a HOG-style detector changes a person's box scale from frame
/// to frame (48×96 to 94×188 on vtest.avi), which alone costs a third of the IoU.
pub const DEFAULT_MIN_IOU: f64 = 0.2;

/// How much of a newly observed motion enters the velocity (the rest is the old velocity).
const VELOCITY_GAIN: f64 = 0.5;

/// The intersection over union of two boxes; 0 for empty or non-finite ones.
pub fn iou(a: &Bounds, b: &Bounds) -> f64 {
    let w = a.x1.min(b.x1) - a.x0.max(b.x0);
    let h = a.y1.min(b.y1) - a.y0.max(b.y0);
    if !(w > 0.0 && h > 0.0) {
        return 0.0;
    }
    let inter = w * h;
    let area = |r: &Bounds| (r.x1 - r.x0).max(0.0) * (r.y1 - r.y0).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 && union.is_finite() {
        inter / union
    } else {
        0.0
    }
}

#[derive(Debug, Clone)]
struct Track {
    id: u64,
    label: String,
    bounds: Bounds,
    /// Motion of the box per frame: (dx, dy) of its centre.
    velocity: (f64, f64),
    /// Frames since the track was last matched (0: matched on the last frame).
    missed: u32,
}

impl Track {
    fn predicted(&self) -> Bounds {
        let n = (self.missed + 1) as f64;
        let (dx, dy) = (self.velocity.0 * n, self.velocity.1 * n);
        Bounds {
            x0: self.bounds.x0 + dx,
            y0: self.bounds.y0 + dy,
            x1: self.bounds.x1 + dx,
            y1: self.bounds.y1 + dy,
        }
    }

    fn update(&mut self, b: Bounds) {
        let gap = (self.missed + 1) as f64;
        let centre = |r: &Bounds| ((r.x0 + r.x1) / 2.0, (r.y0 + r.y1) / 2.0);
        let (ox, oy) = centre(&self.bounds);
        let (nx, ny) = centre(&b);
        let seen = ((nx - ox) / gap, (ny - oy) / gap);
        self.velocity = (
            self.velocity.0 + VELOCITY_GAIN * (seen.0 - self.velocity.0),
            self.velocity.1 + VELOCITY_GAIN * (seen.1 - self.velocity.1),
        );
        self.bounds = b;
        self.missed = 0;
    }
}

/// Associates the detections of one source across its frames.
#[derive(Debug, Clone)]
pub struct Tracker {
    tracks: Vec<Track>,
    next_id: u64,
    timeout: u32,
    min_iou: f64,
    /// Per-frame working space, kept so a steady stream of frames allocates nothing.
    predicted: Vec<Bounds>,
    pairs: Vec<(f64, usize, usize)>,
    matched: Vec<bool>,
}

impl Tracker {
    /// A tracker forgetting a track after `timeout` frames (at least 1) without a match.
    pub fn new(timeout: u32, min_iou: f64) -> Self {
        Tracker {
            tracks: Vec::new(),
            next_id: 1,
            timeout,
            min_iou,
            predicted: Vec::new(),
            pairs: Vec::new(),
            matched: Vec::new(),
        }
    }

    pub fn set_timeout(&mut self, timeout: u32) {
        self.timeout = timeout;
    }

    /// Tracks alive (unseen for fewer than `timeout` frames).
    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    /// Feeds one frame: `(label, box)` per detection. Returns the track id of each detection,
    /// in the same order; `None` for a non-finite box or one beyond [`MAX_TRACKS`].
    pub fn update(&mut self, detections: &[(&str, Bounds)]) -> Vec<Option<u64>> {
        let mut ids = Vec::new();
        self.update_with(detections.len(), |d| detections[d], &mut ids);
        ids
    }

    /// [`Tracker::update`] for `n` detections given by `detection(i)`, the ids written to
    /// `ids` (cleared first): with the caller's buffers, a frame allocates nothing. The work is
    /// O(tracks × n): the caller bounds `n` (the assembler's `max-detections`).
    pub fn update_with<'a>(
        &mut self,
        n: usize,
        detection: impl Fn(usize) -> (&'a str, Bounds),
        ids: &mut Vec<Option<u64>>,
    ) {
        let finite = |b: &Bounds| [b.x0, b.y0, b.x1, b.y1].iter().all(|v| v.is_finite());
        self.predicted.clear();
        self.predicted
            .extend(self.tracks.iter().map(Track::predicted));
        self.pairs.clear();
        for (t, p) in self.predicted.iter().enumerate() {
            for d in 0..n {
                let (label, b) = detection(d);
                if label != self.tracks[t].label || !finite(&b) {
                    continue;
                }
                let v = iou(p, &b);
                if v >= self.min_iou {
                    self.pairs.push((v, t, d));
                }
            }
        }
        // Best pair first; ties in the order of tracks then detections, so runs repeat. The
        // order is total (each (t, d) is unique): an unstable sort gives the same result
        // without a stable sort's buffer.
        self.pairs
            .sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        ids.clear();
        ids.resize(n, None);
        self.matched.clear();
        self.matched.resize(self.tracks.len(), false);
        for &(_, t, d) in &self.pairs {
            if self.matched[t] || ids[d].is_some() {
                continue;
            }
            self.matched[t] = true;
            self.tracks[t].update(detection(d).1);
            ids[d] = Some(self.tracks[t].id);
        }
        for (t, m) in self.matched.iter().enumerate() {
            if !m {
                self.tracks[t].missed = self.tracks[t].missed.saturating_add(1);
            }
        }
        // The boundary of [`Memory::forget_unseen`]: forgotten on the frame its object is
        // reported lost, never matched again after it (`track-timeout` 1: a track lives only
        // from one frame to the next).
        let timeout = self.timeout.max(1);
        self.tracks.retain(|t| t.missed < timeout);
        for (d, id) in ids.iter_mut().enumerate() {
            let (label, b) = detection(d);
            if id.is_some() || !finite(&b) || self.tracks.len() >= MAX_TRACKS {
                continue;
            }
            let new = self.next_id;
            self.next_id += 1;
            self.tracks.push(Track {
                id: new,
                label: label.to_string(),
                bounds: b,
                velocity: (0.0, 0.0),
                missed: 0,
            });
            *id = Some(new);
        }
    }

    /// Forgets every track (flush); ids keep counting up so an old id never returns.
    pub fn clear(&mut self) {
        self.tracks.clear();
    }
}

/// What a source remembers of one object: when it was last seen, where, and the zones it
/// entered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    /// The source's frame number it was last seen on.
    pub last_frame: u64,
    /// Its box on that frame, in frame pixels.
    pub bbox: Option<PixelRect>,
    /// Indices of the zones it entered (stood in), in order of entry, each once.
    pub zones: Vec<usize>,
}

/// The objects of one source the element follows, by key, so that an object's zones outlive
/// its clips and its loss is noticed once (`track-timeout` frames unseen). At most
/// [`MAX_TRACKS`] objects: one beyond them is not remembered (it enters no zone).
#[derive(Debug, Clone)]
pub struct Memory<K> {
    objects: HashMap<K, Seen>,
}

impl<K> Default for Memory<K> {
    fn default() -> Self {
        Memory {
            objects: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Copy> Memory<K> {
    /// Records that `key` was seen on `frame` at `bbox`, standing in the zones `zones`.
    /// Allocates only for a new object or a zone it had not entered.
    pub fn see(
        &mut self,
        key: K,
        frame: u64,
        bbox: Option<PixelRect>,
        zones: impl Iterator<Item = usize>,
    ) {
        if !self.objects.contains_key(&key) && self.objects.len() >= MAX_TRACKS {
            return;
        }
        let seen = self.objects.entry(key).or_default();
        seen.last_frame = frame;
        seen.bbox = bbox;
        for z in zones {
            if !seen.zones.contains(&z) {
                seen.zones.push(z);
            }
        }
    }

    pub fn get(&self, key: &K) -> Option<&Seen> {
        self.objects.get(key)
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Forgets the objects unseen for `timeout` frames (at least 1) as of `frame`, adding
    /// their keys to `lost`: the frame a [`Tracker`] with that timeout forgets their track.
    pub fn forget_unseen(&mut self, frame: u64, timeout: u32, lost: &mut Vec<K>) {
        let timeout = u64::from(timeout.max(1));
        self.objects.retain(|k, s| {
            let keep = frame.saturating_sub(s.last_frame) < timeout;
            if !keep {
                lost.push(*k);
            }
            keep
        });
    }

    /// Forgets every object (a flush), without reporting them lost.
    pub fn clear(&mut self) {
        self.objects.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x: f64, y: f64, w: f64, h: f64) -> Bounds {
        Bounds {
            x0: x,
            y0: y,
            x1: x + w,
            y1: y + h,
        }
    }

    #[test]
    fn iou_of_known_boxes() {
        assert_eq!(iou(&b(0.0, 0.0, 10.0, 10.0), &b(0.0, 0.0, 10.0, 10.0)), 1.0);
        assert_eq!(
            iou(&b(0.0, 0.0, 10.0, 10.0), &b(20.0, 0.0, 10.0, 10.0)),
            0.0
        );
        // Half overlapping: 50 / 150.
        let v = iou(&b(0.0, 0.0, 10.0, 10.0), &b(5.0, 0.0, 10.0, 10.0));
        assert!((v - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(
            iou(&b(0.0, 0.0, f64::NAN, 1.0), &b(0.0, 0.0, 1.0, 1.0)),
            0.0
        );
    }

    #[test]
    fn ids_are_kept_through_small_gaps_and_forgotten_after_the_timeout() {
        let mut t = Tracker::new(3, DEFAULT_MIN_IOU);
        let first = t.update(&[("person", b(0.0, 0.0, 20.0, 40.0))]);
        assert_eq!(first, vec![Some(1)]);
        // Moving 2 px a frame, missing on two frames (a gap within the timeout).
        let mut ids = vec![];
        for i in 1..=8 {
            let dets = if i == 3 || i == 4 {
                vec![]
            } else {
                vec![("person", b(2.0 * i as f64, 0.0, 20.0, 40.0))]
            };
            ids.extend(t.update(&dets).into_iter().flatten());
        }
        assert!(ids.iter().all(|&i| i == 1), "{ids:?}");
        // Gone for the timeout (3 frames): the same place gives a new id.
        for _ in 0..3 {
            t.update(&[]);
        }
        assert!(t.is_empty());
        assert_eq!(
            t.update(&[("person", b(16.0, 0.0, 20.0, 40.0))]),
            vec![Some(2)]
        );
    }

    #[test]
    fn a_track_is_dropped_on_the_frame_memory_reports_its_object_lost() {
        // The two sides of one boundary: unseen for `timeout` frames is lost (Memory) and
        // forgotten (Tracker) on the same frame; unseen for one frame fewer is neither, so an
        // object reported lost can never come back under its old id.
        for timeout in [1u32, 3, 15] {
            for gap in [timeout - 1, timeout] {
                let mut t = Tracker::new(timeout, DEFAULT_MIN_IOU);
                let mut m: Memory<u64> = Memory::default();
                let mut lost = vec![];
                let here = [("person", b(0.0, 0.0, 20.0, 40.0))];
                let mut frame = 1;
                let id = t.update(&here)[0].unwrap();
                m.see(id, frame, None, std::iter::empty());
                for _ in 0..gap {
                    frame += 1;
                    assert_eq!(t.update(&[]), vec![]);
                    m.forget_unseen(frame, timeout, &mut lost);
                }
                let reported = lost.contains(&id);
                assert_eq!(reported, gap == timeout, "timeout {timeout}, gap {gap}");
                assert_eq!(t.is_empty(), reported, "timeout {timeout}, gap {gap}");
                let again = t.update(&here)[0].unwrap();
                if reported {
                    assert_ne!(again, id, "lost, then matched again: timeout {timeout}");
                } else {
                    assert_eq!(again, id, "timeout {timeout}, gap {gap}");
                }
            }
        }
    }

    #[test]
    fn new_objects_get_new_ids_and_labels_never_mix() {
        let mut t = Tracker::new(5, DEFAULT_MIN_IOU);
        let ids = t.update(&[
            ("person", b(0.0, 0.0, 20.0, 40.0)),
            ("person", b(100.0, 0.0, 20.0, 40.0)),
        ]);
        assert_eq!(ids, vec![Some(1), Some(2)]);
        let ids = t.update(&[
            ("person", b(101.0, 0.0, 20.0, 40.0)),
            ("gun", b(0.0, 0.0, 20.0, 40.0)),
            ("person", b(1.0, 0.0, 20.0, 40.0)),
            ("person", b(50.0, 50.0, 20.0, 40.0)),
        ]);
        assert_eq!(ids, vec![Some(2), Some(3), Some(1), Some(4)]);
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn two_crossing_objects_keep_their_ids() {
        // A walks right, B walks left, 6 px a frame each, B a little lower (4 px); they pass
        // through each other (IoU 0.82 at the crossing) and each must keep its id.
        let mut t = Tracker::new(5, DEFAULT_MIN_IOU);
        let (mut a_ids, mut b_ids) = (vec![], vec![]);
        for i in 0..30 {
            let ax = 10.0 + 6.0 * i as f64;
            let bx = 190.0 - 6.0 * i as f64;
            // Alternate the order so neither always comes first.
            let (ia, ib) = if i % 2 == 0 {
                let ids = t.update(&[
                    ("person", b(ax, 0.0, 20.0, 40.0)),
                    ("person", b(bx, 4.0, 20.0, 40.0)),
                ]);
                (ids[0], ids[1])
            } else {
                let ids = t.update(&[
                    ("person", b(bx, 4.0, 20.0, 40.0)),
                    ("person", b(ax, 0.0, 20.0, 40.0)),
                ]);
                (ids[1], ids[0])
            };
            a_ids.push(ia.unwrap());
            b_ids.push(ib.unwrap());
        }
        assert!(a_ids.iter().all(|&i| i == a_ids[0]), "A: {a_ids:?}");
        assert!(b_ids.iter().all(|&i| i == b_ids[0]), "B: {b_ids:?}");
        assert_ne!(a_ids[0], b_ids[0]);
    }

    #[test]
    fn memory_keeps_zones_in_order_of_entry_and_reports_a_loss_once() {
        let mut m: Memory<u64> = Memory::default();
        m.see(7, 1, None, [2usize].into_iter());
        m.see(7, 2, None, [0usize, 2].into_iter());
        m.see(8, 2, None, std::iter::empty());
        assert_eq!(m.get(&7).unwrap().zones, vec![2, 0]);
        let mut lost = vec![];
        m.forget_unseen(4, 3, &mut lost);
        assert!(lost.is_empty(), "unseen for 2 frames of 3");
        m.see(8, 5, None, std::iter::empty());
        m.forget_unseen(5, 3, &mut lost);
        assert_eq!(lost, vec![7]);
        m.forget_unseen(6, 3, &mut lost);
        assert_eq!(lost, vec![7], "once");
        assert_eq!(m.len(), 1);
        for k in 100..100 + MAX_TRACKS as u64 {
            m.see(k, 6, None, std::iter::empty());
        }
        assert_eq!(m.len(), MAX_TRACKS, "bounded");
    }

    #[test]
    fn bad_boxes_get_no_id_and_the_track_count_is_bounded() {
        let mut t = Tracker::new(2, DEFAULT_MIN_IOU);
        let ids = t.update(&[("person", b(f64::NAN, 0.0, 1.0, 1.0))]);
        assert_eq!(ids, vec![None]);
        let many: Vec<(&str, Bounds)> = (0..MAX_TRACKS + 10)
            .map(|i| ("person", b(i as f64 * 100.0, 0.0, 10.0, 10.0)))
            .collect();
        let ids = t.update(&many);
        assert_eq!(ids.iter().filter(|i| i.is_some()).count(), MAX_TRACKS);
        assert_eq!(t.len(), MAX_TRACKS);
    }
}
