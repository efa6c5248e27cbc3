// SPDX-License-Identifier: MIT OR Apache-2.0
//! The portable reader: `GstVideoRegionOfInterestMeta`.
//!
//! Label = the ROI type; confidence = the `confidence` field of a `detection` param structure
//! (the convention DL Streamer and gst-plugins-rs analytics elements use), 1.0 when absent;
//! class id = its `label_id` field, object id = its `object_id` field (or, failing that, its
//! `id` field) when present.

use gst::glib;
use gst::glib::translate::IntoGlib;

use super::{Detection, DetectionReader, FrameDetections, SourceFrame};
use crate::geometry::Rect;

#[derive(Debug, Default)]
pub struct RoiReader;

/// The last buffers' detections, given back by [`Spare::recycle`], for [`RoiReader::read_with`]
/// to write the next buffer's over: their label `String`s keep their capacity, so a steady
/// stream of detections allocates nothing per detection.
#[derive(Debug, Default)]
pub struct Spare {
    detections: Vec<Detection>,
    /// Emptied detection lists, for the next frames.
    lists: Vec<Vec<Detection>>,
}

/// Spare detections (and list capacity) kept at most, so one crowded buffer does not hold its
/// memory for good.
const MAX_SPARE: usize = 1024;

impl Spare {
    /// Empties `frames`, keeping their storage.
    pub fn recycle(&mut self, frames: &mut Vec<FrameDetections>) {
        for mut f in frames.drain(..) {
            let room = MAX_SPARE.saturating_sub(self.detections.len());
            self.detections.extend(f.detections.drain(..).take(room));
            if self.lists.len() < 4 && f.detections.capacity() <= MAX_SPARE {
                self.lists.push(f.detections);
            }
        }
    }
}

/// The `detection` param's fields this reader looks at, as quarks made once. A field looked up
/// by name takes GLib's global quark lock (and each failed typed `get` builds an error naming
/// the field); by quark it is a scan of the structure's few fields. With 20,000 boxes a frame
/// the name lookups were a quarter of the streaming thread's time.
struct FieldQuarks {
    confidence: glib::Quark,
    label_id: glib::Quark,
    object_id: glib::Quark,
    id: glib::Quark,
}

fn field_quarks() -> &'static FieldQuarks {
    static QUARKS: std::sync::OnceLock<FieldQuarks> = std::sync::OnceLock::new();
    QUARKS.get_or_init(|| FieldQuarks {
        confidence: glib::Quark::from_str("confidence"),
        label_id: glib::Quark::from_str("label_id"),
        object_id: glib::Quark::from_str("object_id"),
        id: glib::Quark::from_str("id"),
    })
}

/// The number in field `field` of `s`, whatever its numeric type; `None` when there is no such
/// field or it holds no number.
fn number(s: &gst::StructureRef, field: glib::Quark) -> Option<f64> {
    // SAFETY: `s` is a valid structure borrowed for this call; the value returned is owned by
    // it and only read while `s` is borrowed. A null return means no such field.
    let v = unsafe {
        let v = gst::ffi::gst_structure_id_get_value(s.as_ptr(), field.into_glib());
        if v.is_null() {
            return None;
        }
        &*(v as *const glib::Value)
    };
    if let Ok(v) = v.get::<f64>() {
        return Some(v);
    }
    if let Ok(v) = v.get::<f32>() {
        return Some(v as f64);
    }
    if let Ok(v) = v.get::<i32>() {
        return Some(v as f64);
    }
    if let Ok(v) = v.get::<u32>() {
        return Some(v as f64);
    }
    if let Ok(v) = v.get::<i64>() {
        return Some(v as f64);
    }
    if let Ok(v) = v.get::<u64>() {
        return Some(v as f64);
    }
    None
}

/// Converts one ROI meta into a detection.
pub fn detection_from_roi(meta: &gst_video::VideoRegionOfInterestMeta) -> Detection {
    let mut d = Detection {
        class_id: -1,
        label: String::new(),
        confidence: 1.0,
        rect: Rect::default(),
        object_id: None,
    };
    fill_from_roi(&mut d, meta);
    d
}

/// [`detection_from_roi`] into an existing detection, reusing its label's storage.
fn fill_from_roi(d: &mut Detection, meta: &gst_video::VideoRegionOfInterestMeta) {
    let (x, y, w, h) = meta.rect();
    let params = meta.param("detection");
    let q = field_quarks();
    let confidence = params.and_then(|p| number(p, q.confidence)).unwrap_or(1.0);
    let class_id = params
        .and_then(|p| number(p, q.label_id))
        .filter(|v| v.is_finite() && *v >= i32::MIN as f64 && *v <= i32::MAX as f64)
        .map(|v| v as i32)
        .unwrap_or(-1);
    let object_id = params
        .and_then(|p| number(p, q.object_id).or_else(|| number(p, q.id)))
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v as u64);
    d.class_id = class_id;
    d.label.clear();
    d.label.push_str(meta.roi_type());
    d.confidence = confidence;
    d.rect = Rect {
        x: x as f32,
        y: y as f32,
        width: w as f32,
        height: h as f32,
    };
    d.object_id = object_id;
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

impl RoiReader {
    /// [`DetectionReader::read`], reusing `spare`'s storage.
    pub fn read_with(
        &self,
        buffer: &gst::BufferRef,
        out: &mut Vec<FrameDetections>,
        spare: &mut Spare,
    ) {
        let mut detections = spare.lists.pop().unwrap_or_default();
        for m in buffer.iter_meta::<gst_video::VideoRegionOfInterestMeta>() {
            match spare.detections.pop() {
                Some(mut d) => {
                    fill_from_roi(&mut d, &m);
                    detections.push(d);
                }
                None => detections.push(detection_from_roi(&m)),
            }
        }
        out.push(FrameDetections {
            source: SourceFrame::default(),
            detections,
        });
    }
}

impl DetectionReader for RoiReader {
    fn read(&mut self, buffer: &gst::BufferRef, out: &mut Vec<FrameDetections>) {
        self.read_with(buffer, out, &mut Spare::default());
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
    fn every_numeric_type_is_read_and_a_field_of_another_type_is_not() {
        gst::init().unwrap();
        let mut buf = gst::Buffer::new();
        {
            let b = buf.get_mut().unwrap();
            for p in [
                gst::Structure::builder("detection")
                    .field("confidence", 0.5f32)
                    .field("label_id", 4u32)
                    .field("object_id", 5i64)
                    .build(),
                gst::Structure::builder("detection")
                    .field("confidence", "high")
                    .field("label_id", 2.0f64)
                    .field("object_id", "seven")
                    .field("id", 6u32)
                    .build(),
                gst::Structure::builder("other")
                    .field("confidence", 0.1f64)
                    .build(),
            ] {
                let mut m = gst_video::VideoRegionOfInterestMeta::add(b, "person", (0, 0, 4, 4));
                m.add_param(p);
            }
        }
        let mut out = Vec::new();
        RoiReader.read(&buf, &mut out);
        let got: Vec<(f64, i32, Option<u64>)> = out[0]
            .detections
            .iter()
            .map(|d| (d.confidence, d.class_id, d.object_id))
            .collect();
        assert_eq!(
            got,
            [(0.5, 4, Some(5)), (1.0, 2, Some(6)), (1.0, -1, None)],
            "f32/u32/i64 read; a string confidence is 1.0, a string object_id falls back to \
             `id`; a param not named `detection` is not read"
        );
    }

    #[test]
    fn recycled_detections_are_overwritten_whole() {
        gst::init().unwrap();
        let buffer = |metas: &[(&str, f64)]| {
            let mut buf = gst::Buffer::new();
            let b = buf.get_mut().unwrap();
            for (i, (label, conf)) in metas.iter().enumerate() {
                let mut m =
                    gst_video::VideoRegionOfInterestMeta::add(b, label, (i as u32, 0, 5, 5));
                m.add_param(
                    gst::Structure::builder("detection")
                        .field("confidence", *conf)
                        .field("object_id", 7u64)
                        .build(),
                );
            }
            gst_video::VideoRegionOfInterestMeta::add(b, "car", (9, 9, 1, 1));
            buf
        };
        let mut spare = Spare::default();
        let mut out = Vec::new();
        RoiReader.read_with(
            &buffer(&[("weapon", 0.8), ("person", 0.6)]),
            &mut out,
            &mut spare,
        );
        spare.recycle(&mut out);
        assert!(out.is_empty());
        let next = buffer(&[("person-with-a-long-label", 0.3)]);
        RoiReader.read_with(&next, &mut out, &mut spare);
        // The same as a fresh read: nothing of the last buffer's detections is left.
        let mut fresh = Vec::new();
        RoiReader.read(&next, &mut fresh);
        assert_eq!(out, fresh);
        assert_eq!(out[0].detections[1].object_id, None);
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
