// SPDX-License-Identifier: MIT OR Apache-2.0
//! The one record every verification request ends in.

use std::fmt;
use std::sync::Arc;

use crate::geometry::PixelRect;

/// The JPEG bytes of one verdict's snapshot, shared (a verdict is cloned for the bus message,
/// the meta and the downstream event). The verdict owns this type so that it needs nothing of
/// the encoder (`snapshot`), which is built on clips.
pub type Jpeg = Arc<Vec<u8>>;

/// How a request ended. Every request ends in exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// A model scored the clip at or above the threshold.
    Verified,
    /// A model scored the clip below the threshold.
    Rejected,
    /// No model was available: the label-based fallback scored the clip.
    Fallback,
    /// Scoring did not finish before `worker-timeout`.
    Timeout,
    /// Never scored: the queue overflowed, or the element was flushed or stopped.
    Dropped,
    /// Scoring failed (the scorer returned an error or panicked).
    Error,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Verified,
        Status::Rejected,
        Status::Fallback,
        Status::Timeout,
        Status::Dropped,
        Status::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Verified => "verified",
            Status::Rejected => "rejected",
            Status::Fallback => "fallback",
            Status::Timeout => "timeout",
            Status::Dropped => "dropped",
            Status::Error => "error",
        }
    }

    /// Whether the clip was scored at all (so `score` means something).
    pub fn is_scored(self) -> bool {
        matches!(self, Status::Verified | Status::Rejected | Status::Fallback)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one verification request, as posted on the bus and attached as meta.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub request_id: u64,
    pub source_id: u32,
    pub pad_index: u32,
    pub status: Status,
    /// The verification score in [0, 1]; `NaN` when the clip was never scored.
    pub score: f64,
    pub threshold: f64,
    /// The class the scorer named (e.g. the top model class, or the weapon label the fallback
    /// saw most); empty when unscored.
    pub label: String,
    pub trigger_label: String,
    pub trigger_confidence: f64,
    pub clip_start_pts: Option<u64>,
    pub clip_end_pts: Option<u64>,
    pub frames: u32,
    pub queue_ms: f64,
    pub processing_ms: f64,
    /// Which scorer produced the score (`fallback`, `onnx`, ...); for unscored verdicts the
    /// scorer that would have run.
    pub scorer: String,
    /// Why a request was dropped, timed out or failed; empty otherwise.
    pub reason: String,
    /// The tracked object the clip followed; `None` for `clip-per=source` (and requests that
    /// ended before they knew).
    pub object_id: Option<u64>,
    /// The crop on the clip's last sampled frame, in frame pixels.
    pub crop: Option<PixelRect>,
    /// The clip's tiles as a JPEG contact sheet (`snapshot=true`), encoded by the worker.
    pub snapshot: Option<Jpeg>,
    /// The zones the clip's object entered up to the clip's end, in order of entry (with
    /// `clip-per=source`, those its triggering detections stood in); empty when none.
    pub zones: Vec<String>,
}

impl Verdict {
    /// Whether the score reached the threshold (false for unscored verdicts).
    pub fn is_positive(&self) -> bool {
        self.status.is_scored() && self.score >= self.threshold
    }
}
