// SPDX-License-Identifier: MIT OR Apache-2.0
//! `iguardoverlay`: draws each detection's box, label and object id, and the verdicts of
//! `iguardverify` on the objects they are about, on system-memory video.
//!
//! Boxes come from the buffer's `GstVideoRegionOfInterestMeta` (the label is the ROI type, the
//! object id the `object_id` field of its `detection` param) and, on GStreamer 1.24 and later,
//! from the object-detection mtds of its `GstAnalyticsRelationMeta` (an upstream detector's,
//! such as `ssdobjectdetector`'s: the label is the object type, the object id the tracking id of
//! the tracking mtd related to it, which `iguardverify` writes for the objects its tracker
//! follows; a box that an ROI meta already gives is drawn once; read as `iguardverify` reads
//! them, [`crate::detections::analytics`]). Verdicts come from the
//! `IGuardVerificationMeta` that `iguardverify` attaches to a later buffer; each is held on its
//! object, by `object-id`, for `hold` seconds of running time (so it follows the object as it
//! moves). Verdicts about no object (`clip-per=source`, untracked detections) colour the boxes
//! inside the verdict's crop. See [`scene`] for the rules.
//!
//! The drawing is a `GstVideoOverlayComposition`: attached to the buffer as
//! `GstVideoOverlayCompositionMeta` when downstream says in the allocation query that it
//! renders that meta (a compositor or GL sink draws it, the frame stays untouched), blended
//! into the frame otherwise. Buffers are changed in place and pushed on at once; every meta
//! passes through.
//!
//! ```text
//! gst-launch-1.0 filesrc location=vtest.avi ! decodebin ! videoconvert \
//!     ! iguardreplay location=vtest-hog.txt ! iguardverify model-path=models/verifier.onnx \
//!     ! iguardoverlay hold=3 show-stats=true ! videoconvert ! autovideosink
//! ```

use gst::glib;
use gst::prelude::*;

pub mod blend;
pub mod cache;
pub mod held;
mod imp;
pub mod incidents;
pub mod layout;
pub mod render;
pub mod scene;
pub mod text;
pub mod zones;

glib::wrapper! {
    pub struct IGuardOverlay(ObjectSubclass<imp::IGuardOverlay>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "iguardoverlay",
        gst::Rank::NONE,
        IGuardOverlay::static_type(),
    )
}
