// SPDX-License-Identifier: MIT OR Apache-2.0
//! The portable reader: `GstVideoRegionOfInterestMeta`.
//!
//! Label = the ROI type; confidence = the `confidence` field of a `detection` param structure
//! (the convention DL Streamer and gst-plugins-rs analytics elements use), 1.0 when absent;
//! class id = its `label_id` field, object id = its `object_id` field (or, failing that, its
//! `id` field) when present.

use super::{Detection, DetectionReader, FrameDetections, SourceFrame};
use crate::geometry::Rect;

#[derive(Debug, Default)]
pub struct RoiReader;

fn number(s: &gst::StructureRef, field: &str) -> Option<f64> {
    if let Ok(v) = s.get::<f64>(field) {
        return Some(v);
    }
    if let Ok(v) = s.get::<f32>(field) {
        return Some(v as f64);
    }
    if let Ok(v) = s.get::<i32>(field) {
        return Some(v as f64);
    }
    if let Ok(v) = s.get::<u32>(field) {
        return Some(v as f64);
    }
    if let Ok(v) = s.get::<i64>(field) {
        return Some(v as f64);
    }
    if let Ok(v) = s.get::<u64>(field) {
        return Some(v as f64);
    }
    None
}

/// Converts one ROI meta into a detection.
pub fn detection_from_roi(meta: &gst_video::VideoRegionOfInterestMeta) -> Detection {
    let (x, y, w, h) = meta.rect();
    let params = meta.param("detection");
    let confidence = params.and_then(|p| number(p, "confidence")).unwrap_or(1.0);
    let class_id = params
        .and_then(|p| number(p, "label_id"))
        .filter(|v| v.is_finite() && *v >= i32::MIN as f64 && *v <= i32::MAX as f64)
        .map(|v| v as i32)
        .unwrap_or(-1);
    let object_id = params
        .and_then(|p| number(p, "object_id").or_else(|| number(p, "id")))
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v as u64);
    Detection {
        class_id,
        label: meta.roi_type().to_string(),
        confidence,
        rect: Rect {
            x: x as f32,
            y: y as f32,
            width: w as f32,
            height: h as f32,
        },
        object_id,
    }
}

/// Writes the object ids the element's tracker gave (`(index, id)`: the detection's place among
/// the buffer's ROI metas, in the order [`RoiReader`] reads them) into each meta's `detection`
/// param as `object_id` (guint64), adding the param where there is none, so downstream elements
/// and applications can tell which box a verdict's `object-id` names. A meta that already has an
/// `object_id` keeps it.
pub fn write_object_ids(buffer: &mut gst::BufferRef, assigned: &[(usize, u64)]) {
    if assigned.is_empty() {
        return;
    }
    for (index, mut meta) in buffer
        .iter_meta_mut::<gst_video::VideoRegionOfInterestMeta>()
        .enumerate()
    {
        let Some(&(_, id)) = assigned.iter().find(|(i, _)| *i == index) else {
            continue;
        };
        if meta.param("detection").is_none() {
            meta.add_param(
                gst::Structure::builder("detection")
                    .field("object_id", id)
                    .build(),
            );
            continue;
        }
        // SAFETY: the meta is on a buffer we hold mutably, and the structure it returns is
        // owned by the meta's param list, alive and unshared while we set one field.
        let detection = unsafe {
            let p = gst_video::ffi::gst_video_region_of_interest_meta_get_param(
                meta.as_mut_ptr(),
                c"detection".as_ptr(),
            );
            (!p.is_null()).then(|| gst::StructureRef::from_glib_borrow_mut(p))
        };
        if let Some(d) = detection
            && !d.has_field("object_id")
        {
            d.set("object_id", id);
        }
    }
}

impl DetectionReader for RoiReader {
    fn read(&mut self, buffer: &gst::BufferRef, out: &mut Vec<FrameDetections>) {
        let detections = buffer
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .map(|m| detection_from_roi(&m))
            .collect();
        out.push(FrameDetections {
            source: SourceFrame::default(),
            detections,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_written_where_none_was_and_read_back() {
        gst::init().unwrap();
        let mut buf = gst::Buffer::new();
        {
            let b = buf.get_mut().unwrap();
            let mut m = gst_video::VideoRegionOfInterestMeta::add(b, "person", (0, 0, 10, 10));
            m.add_param(
                gst::Structure::builder("detection")
                    .field("confidence", 0.75f64)
                    .build(),
            );
            let mut m = gst_video::VideoRegionOfInterestMeta::add(b, "person", (5, 5, 10, 10));
            m.add_param(
                gst::Structure::builder("detection")
                    .field("object_id", 9i32)
                    .build(),
            );
            gst_video::VideoRegionOfInterestMeta::add(b, "person", (9, 9, 10, 10));
            gst_video::VideoRegionOfInterestMeta::add(b, "car", (1, 1, 2, 2));
            write_object_ids(b, &[(0, 100), (1, 101), (2, 102)]);
        }
        let mut out = Vec::new();
        RoiReader.read(&buf, &mut out);
        let got: Vec<(Option<u64>, f64)> = out[0]
            .detections
            .iter()
            .map(|d| (d.object_id, d.confidence))
            .collect();
        // Written, kept (an upstream id), added (no param), and untouched (not assigned).
        assert_eq!(
            got,
            [
                (Some(100), 0.75),
                (Some(9), 1.0),
                (Some(102), 1.0),
                (None, 1.0)
            ]
        );
    }

    #[test]
    fn reads_label_confidence_and_ids() {
        gst::init().unwrap();
        let mut buf = gst::Buffer::new();
        {
            let b = buf.get_mut().unwrap();
            let mut m = gst_video::VideoRegionOfInterestMeta::add(b, "weapon", (10, 20, 30, 40));
            m.add_param(
                gst::Structure::builder("detection")
                    .field("confidence", 0.8f64)
                    .field("label_id", 3i32)
                    .field("object_id", 7i32)
                    .build(),
            );
            gst_video::VideoRegionOfInterestMeta::add(b, "person", (0, 0, 5, 5));
            let mut m = gst_video::VideoRegionOfInterestMeta::add(b, "person", (1, 1, 5, 5));
            m.add_param(
                gst::Structure::builder("detection")
                    .field("id", 12u64)
                    .build(),
            );
        }
        let mut out = Vec::new();
        RoiReader.read(&buf, &mut out);
        assert_eq!(out.len(), 1);
        let d = &out[0].detections;
        assert_eq!(d.len(), 3);
        assert_eq!(
            d[2].object_id,
            Some(12),
            "`id` when there is no `object_id`"
        );
        assert_eq!(d[0].label, "weapon");
        assert_eq!(d[0].confidence, 0.8);
        assert_eq!(d[0].class_id, 3);
        assert_eq!(d[0].object_id, Some(7));
        assert_eq!(
            d[0].rect,
            Rect {
                x: 10.0,
                y: 20.0,
                width: 30.0,
                height: 40.0
            }
        );
        assert_eq!(d[1].label, "person");
        assert_eq!(d[1].confidence, 1.0);
        assert_eq!(d[1].class_id, -1);
        assert_eq!(d[1].object_id, None);
    }

    #[test]
    fn a_buffer_without_metas_is_one_empty_frame() {
        gst::init().unwrap();
        let buf = gst::Buffer::new();
        let mut out = Vec::new();
        RoiReader.read(&buf, &mut out);
        assert_eq!(out, vec![FrameDetections::default()]);
    }
}
