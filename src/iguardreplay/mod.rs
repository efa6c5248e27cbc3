// SPDX-License-Identifier: MIT OR Apache-2.0
//! `iguardreplay`: attaches recorded detections from a MOTChallenge-style file to video frames
//! as `GstVideoRegionOfInterestMeta`, so `iguardverify` can run without a detector (demos,
//! tests, offline replays).
//!
//! Buffers are counted from 1 since the element started (PAUSED); the count goes on across
//! flushing seeks, so a replay matches the file only when played from the start. Each
//! detection of the current frame becomes one ROI meta whose type is the class label and which
//! carries a `detection` param structure with `confidence` (f64), `label_id` (i32, the class id)
//! and, for tracked detections, `object_id` (i32).
//!
//! ```text
//! gst-launch-1.0 videotestsrc num-buffers=60 ! video/x-raw,width=320,height=240 \
//!     ! iguardreplay location=tests/data/demo-detections.txt ! fakesink
//! ```

use gst::glib;
use gst::prelude::*;

mod imp;
pub mod parser;

glib::wrapper! {
    pub struct IGuardReplay(ObjectSubclass<imp::IGuardReplay>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "iguardreplay",
        gst::Rank::NONE,
        IGuardReplay::static_type(),
    )
}
