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
