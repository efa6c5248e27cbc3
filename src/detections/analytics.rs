// SPDX-License-Identifier: MIT OR Apache-2.0
//! The GstAnalytics reader (GStreamer 1.24 and later): the object-detection mtds of a buffer's
//! `GstAnalyticsRelationMeta`, read next to its ROI metas.
//!
//! Each od mtd becomes a [`Detection`]: label = its object type's quark, confidence = its
//! location confidence, box = its location (pixels), object id = the tracking id of the tracking
//! mtd related to it, if any; class id -1. Odd mtds are handled as the DeepStream reader's odd
//! boxes are, so one broken producer cannot stop the stream: a confidence outside [0, 1] is
//! clamped; a NaN confidence, or a box with no area (width or height zero or negative), is
//! skipped and counted ([`AnalyticsReader::skipped`]), as are tracking mtds related to no od
//! mtd. Mtds of other types are left alone.
//!
//! A box that an ROI meta of the same buffer already gives (same label, same rectangle) is
//! counted once: the ROI meta's detection stays (its place matters to
//! [`super::roi::write_object_ids`]) and takes the mtd's tracking id when it has none.
//!
//! Where the analytics library is missing (GStreamer before 1.24), the reader reads nothing.

use super::Detection;
use crate::analytics::{self, Analytics, LoadError, OdRecord, Scan};
use crate::geometry::Rect;

/// Why an od mtd did not become a detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Its confidence is NaN.
    NoConfidence,
    /// Its width or height is zero or negative.
    NoArea,
}

/// Converts one od mtd into a detection (object id from `tracking_id`), or says why not.
pub fn detection_from_od(od: &OdRecord, tracking_id: Option<u64>) -> Result<Detection, Skip> {
    if od.confidence.is_nan() {
        return Err(Skip::NoConfidence);
    }
    if od.w <= 0 || od.h <= 0 {
        return Err(Skip::NoArea);
    }
    Ok(Detection {
        class_id: -1,
        label: od.label.clone(),
        confidence: f64::from(od.confidence.clamp(0.0, 1.0)),
        rect: Rect {
            x: od.x as f32,
            y: od.y as f32,
            width: od.w as f32,
            height: od.h as f32,
        },
        object_id: tracking_id,
    })
}

/// Writes the object ids the element's tracker gave (`assigned`: `(index in detections, id)`)
/// to the buffer's od mtds as tracking mtds ([`analytics::add_tracking_ids`]), so a verdict on
/// an object that came as an untracked od mtd (`ssdobjectdetector`'s) is written next to that
/// mtd too. Nothing where the analytics library or meta is missing. Returns how many were added.
pub fn write_tracking_ids(
    buffer: &mut gst::BufferRef,
    detections: &[Detection],
    assigned: &[(usize, u64)],
) -> usize {
    let Ok(lib) = analytics::library() else {
        return 0;
    };
    if assigned.is_empty() || analytics::meta_api().is_none() {
        return 0;
    }
    let objects: Vec<analytics::Followed> = assigned
        .iter()
        .filter_map(|&(i, object_id)| {
            let d = detections.get(i)?;
            let r = &d.rect;
            Some(analytics::Followed {
                label: &d.label,
                rect: [r.x as i32, r.y as i32, r.width as i32, r.height as i32],
                object_id,
            })
        })
        .collect();
    let pts = buffer.pts();
    analytics::add_tracking_ids(lib, buffer, &objects, pts, &mut Scan::default())
}

/// Appends the detections of `scan` to `out`, after its first `from_roi` entries (the ROI
/// metas' detections): a detection equal in label and box to one of those is not appended, and
/// gives that one its object id when it has none. Returns how many mtds were skipped (odd od
/// mtds, tracking mtds related to nothing).
pub fn append_detections(scan: &Scan, from_roi: usize, out: &mut Vec<Detection>) -> u64 {
    let mut skipped = scan
        .tracks
        .iter()
        .filter(|t| !scan.links.iter().any(|(_, l)| *l == t.id))
        .count() as u64;
    for od in &scan.ods {
        let d = match detection_from_od(od, scan.tracking_id(od.id)) {
            Ok(d) => d,
            Err(_) => {
                skipped += 1;
                continue;
            }
        };
        let roi = out
            .iter_mut()
            .take(from_roi)
            .find(|r| r.label == d.label && r.rect == d.rect);
        match roi {
            Some(r) => {
                if r.object_id.is_none() {
                    r.object_id = d.object_id;
                }
            }
            None => out.push(d),
        }
    }
    skipped
}

/// Reads od mtds into the detections of a buffer's frame.
#[derive(Debug)]
pub struct AnalyticsReader {
    library: Option<&'static Analytics>,
    scan: Scan,
    skipped: u64,
}

impl Default for AnalyticsReader {
    fn default() -> Self {
        Self::new()
    }
}

impl AnalyticsReader {
    /// A reader with the process's analytics library, when it has one.
    pub fn new() -> Self {
        AnalyticsReader {
            library: analytics::library().ok(),
            scan: Scan::default(),
            skipped: 0,
        }
    }

    /// A reader that never reads (as where the library is missing).
    pub fn without_library() -> Self {
        AnalyticsReader {
            library: None,
            scan: Scan::default(),
            skipped: 0,
        }
    }

    /// Why this process has no analytics library, if it has none.
    pub fn missing() -> Option<&'static LoadError> {
        analytics::library().err()
    }

    /// Whether the library was found (GStreamer 1.24 or later).
    pub fn available(&self) -> bool {
        self.library.is_some()
    }

    /// Mtds skipped so far: odd od mtds, tracking mtds related to nothing, mtds past
    /// [`analytics::MAX_MTDS_PER_BUFFER`] and those the library would not read.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Appends `buffer`'s od mtds to `detections`, whose first `from_roi` entries came from
    /// ROI metas (see [`append_detections`]).
    pub fn read_into(
        &mut self,
        buffer: &gst::BufferRef,
        from_roi: usize,
        detections: &mut Vec<Detection>,
    ) {
        let Some(lib) = self.library else { return };
        // No type, no meta: nothing in this process has made one yet.
        if analytics::meta_api().is_none() {
            return;
        }
        if analytics::scan(lib, buffer, &mut self.scan) {
            self.skipped += self.scan.unread + append_detections(&self.scan, from_roi, detections);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::TrackRecord;

    fn od(id: u32, label: &str, (x, y, w, h): (i32, i32, i32, i32), confidence: f32) -> OdRecord {
        OdRecord {
            id,
            label: label.into(),
            x,
            y,
            w,
            h,
            confidence,
        }
    }

    fn track(id: u32, tracking_id: u64) -> TrackRecord {
        TrackRecord {
            id,
            tracking_id,
            lost: false,
        }
    }

    fn rect(x: f32, y: f32, width: f32, height: f32) -> Rect {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    #[test]
    fn an_od_mtd_becomes_a_detection_with_its_tracking_id() {
        let d = detection_from_od(&od(0, "person", (10, 20, 30, 40), 0.75), Some(9)).unwrap();
        assert_eq!(
            d,
            Detection {
                class_id: -1,
                label: "person".into(),
                confidence: 0.75,
                rect: rect(10.0, 20.0, 30.0, 40.0),
                object_id: Some(9),
            }
        );
        // Boxes partly outside the frame are kept: the clip logic clamps them.
        let d = detection_from_od(&od(0, "person", (-5, -5, 30, 40), 0.5), None).unwrap();
        assert_eq!(d.rect, rect(-5.0, -5.0, 30.0, 40.0));
    }

    #[test]
    fn odd_confidences_are_clamped_and_nan_or_empty_boxes_skipped() {
        let conf = |c: f32| detection_from_od(&od(0, "p", (0, 0, 5, 5), c), None);
        assert_eq!(conf(1.7).unwrap().confidence, 1.0);
        assert_eq!(conf(-0.2).unwrap().confidence, 0.0);
        assert_eq!(conf(f32::INFINITY).unwrap().confidence, 1.0);
        assert_eq!(conf(f32::NAN), Err(Skip::NoConfidence));
        for (w, h) in [(0, 5), (5, 0), (-3, 5), (5, -1)] {
            assert_eq!(
                detection_from_od(&od(0, "p", (0, 0, w, h), 0.9), None),
                Err(Skip::NoArea),
                "{w}x{h}"
            );
        }
    }

    #[test]
    fn detections_follow_the_roi_ones_and_skips_are_counted() {
        let scan = Scan {
            ods: vec![
                od(0, "person", (0, 0, 10, 10), 0.9),
                od(1, "person", (5, 5, 10, 10), f32::NAN),
                od(2, "weapon", (1, 1, 4, 4), 0.6),
                od(4, "person", (9, 9, -1, 10), 0.9),
            ],
            tracks: vec![track(3, 77), track(5, 88)],
            // Track 5 is related to nothing.
            links: vec![(0, 3)],
            ..Scan::default()
        };
        let roi = Detection {
            class_id: -1,
            label: "car".into(),
            confidence: 1.0,
            rect: rect(50.0, 50.0, 5.0, 5.0),
            object_id: None,
        };
        let mut out = vec![roi.clone()];
        let skipped = append_detections(&scan, 1, &mut out);
        assert_eq!(
            skipped, 3,
            "a NaN confidence, a negative width, a lone track"
        );
        assert_eq!(out.len(), 3);
        assert_eq!(out[0], roi);
        assert_eq!(
            (out[1].label.as_str(), out[1].object_id),
            ("person", Some(77))
        );
        assert_eq!((out[2].label.as_str(), out[2].object_id), ("weapon", None));
    }

    #[test]
    fn a_box_an_roi_meta_gives_too_counts_once_and_lends_its_id() {
        let scan = Scan {
            ods: vec![
                od(0, "person", (10, 20, 30, 40), 0.9),
                // Same box, other label: another object.
                od(1, "weapon", (10, 20, 30, 40), 0.8),
                // Same label, box one pixel off: another object.
                od(2, "person", (11, 20, 30, 40), 0.7),
            ],
            tracks: vec![track(3, 5)],
            links: vec![(0, 3)],
            ..Scan::default()
        };
        let roi = |id| Detection {
            class_id: 2,
            label: "person".into(),
            confidence: 0.6,
            rect: rect(10.0, 20.0, 30.0, 40.0),
            object_id: id,
        };
        let mut out = vec![roi(None)];
        assert_eq!(append_detections(&scan, 1, &mut out), 0);
        assert_eq!(out.len(), 3, "{out:?}");
        // The ROI meta's detection stays as it was, with the mtd's tracking id.
        assert_eq!(out[0], roi(Some(5)));
        assert_eq!(out[1].label, "weapon");
        assert_eq!(out[2].rect.x, 11.0);

        // An ROI meta with an id of its own keeps it.
        let mut out = vec![roi(Some(1))];
        append_detections(&scan, 1, &mut out);
        assert_eq!(out[0].object_id, Some(1));

        // Two mtds with one box: only ROI detections are matched, mtds are all kept.
        let twice = Scan {
            ods: vec![
                od(0, "person", (0, 0, 5, 5), 0.9),
                od(1, "person", (0, 0, 5, 5), 0.9),
            ],
            ..Scan::default()
        };
        let mut out = Vec::new();
        append_detections(&twice, 0, &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn a_reader_without_the_library_reads_nothing() {
        gst::init().unwrap();
        let mut r = AnalyticsReader::without_library();
        let mut out = Vec::new();
        r.read_into(&gst::Buffer::new(), 0, &mut out);
        assert!(out.is_empty());
        assert_eq!(r.skipped(), 0);
        assert!(!r.available());
    }
}
