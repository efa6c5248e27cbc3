// SPDX-License-Identifier: MIT OR Apache-2.0
//! Detections read from a buffer's metadata into plain values.
//!
//! A reader turns whatever the first-stage detector attached into one [`FrameDetections`] per
//! source frame carried by the buffer: one for a plain stream, one per frame meta for a
//! DeepStream batch. Nothing downstream of the readers knows where detections came from.

use crate::geometry::Rect;

pub mod analytics;
pub mod deepstream;
pub mod roi;

/// One detected object, as the detector reported it (the box is not validated here).
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub class_id: i32,
    pub label: String,
    pub confidence: f64,
    pub rect: Rect,
    /// The tracker's id, when there is one.
    pub object_id: Option<u64>,
}

/// Which source a frame in the buffer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SourceFrame {
    /// The camera: 0 for a plain stream, `source_id` in a DeepStream batch.
    pub source_id: u32,
    /// The muxer sink pad the frame came through (equal to the source for a plain stream).
    pub pad_index: u32,
    /// The frame's place in a batched buffer (0 for a plain stream).
    pub batch_index: u32,
    /// The frame's number in its source, when the reader knows it (DeepStream `frame_num`).
    pub frame_num: Option<u64>,
    /// The frame's own timestamp in nanoseconds, when it differs from the buffer's (each frame
    /// of a DeepStream batch keeps its source's `buf_pts`).
    pub pts: Option<u64>,
}

/// The detections of one source frame carried by a buffer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FrameDetections {
    pub source: SourceFrame,
    pub detections: Vec<Detection>,
}

/// Reads detections from a buffer. Readers never fail: metadata they cannot make sense of is
/// skipped (and may be logged), since a broken detector must not take the pipeline down.
pub trait DetectionReader: Send {
    /// Appends one entry per source frame in `buffer` to `out`. A reader for a plain stream
    /// always appends exactly one entry (possibly without detections), so every frame counts
    /// towards clip collection.
    fn read(&mut self, buffer: &gst::BufferRef, out: &mut Vec<FrameDetections>);

    /// Empties `frames` (the last buffer's, done with) before the next [`read`]; a reader may
    /// keep their storage, so that steady frames allocate nothing.
    ///
    /// [`read`]: DetectionReader::read
    fn recycle(&mut self, frames: &mut Vec<FrameDetections>) {
        frames.clear();
    }
}

/// Reads DeepStream batch metas when a buffer carries one, ROI metas and GstAnalytics od mtds
/// otherwise, so one element serves every kind of pipeline without configuration.
pub struct AutoReader {
    pub roi: roi::RoiReader,
    /// The ROI path's detections, kept from buffer to buffer.
    pub spare: roi::Spare,
    pub deepstream: deepstream::DeepStreamReader,
    /// Od mtds, after the ROI metas of the same buffer (GStreamer 1.24 and later).
    pub analytics: analytics::AnalyticsReader,
}

impl DetectionReader for AutoReader {
    fn recycle(&mut self, frames: &mut Vec<FrameDetections>) {
        self.spare.recycle(frames);
    }

    fn read(&mut self, buffer: &gst::BufferRef, out: &mut Vec<FrameDetections>) {
        if deepstream::carries_batch_meta(buffer) {
            self.deepstream.read(buffer, out);
        } else {
            let first = out.len();
            self.roi.read_with(buffer, out, &mut self.spare);
            if let Some(frame) = out.get_mut(first) {
                let from_roi = frame.detections.len();
                self.analytics
                    .read_into(buffer, from_roi, &mut frame.detections);
            }
        }
    }
}
