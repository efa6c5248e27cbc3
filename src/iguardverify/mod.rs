// SPDX-License-Identifier: MIT OR Apache-2.0
//! `iguardverify`: Stage-2 verification of first-stage detections.
//!
//! An in-place transform on system-memory video. For every buffer it reads the detections,
//! advances each source's clip (a trigger starts a clip of `temporal-size` copied, downscaled
//! RGB tiles), hands finished clips to an internal worker pool without waiting for it, and
//! attaches finished verdicts to the next buffer of the same source as `IGuardVerificationMeta`.
//! Every verdict is also posted at once as an `iguard-verification` element message.
//!
//! ```text
//! gst-launch-1.0 -m videotestsrc num-buffers=60 ! video/x-raw,width=320,height=240 \
//!     ! iguardreplay location=tests/data/demo-detections.txt ! iguardverify ! fakesink
//! ```

use std::sync::Arc;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use crate::scorer::Scorer;

mod imp;

glib::wrapper! {
    pub struct IGuardVerify(ObjectSubclass<imp::IGuardVerify>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Which part of the frame a clip covers (`crop` property).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstIGuardCrop")]
pub enum Crop {
    #[default]
    #[enum_value(
        name = "Union of the triggering boxes, widened by roi-margin",
        nick = "roi"
    )]
    Roi = 0,
    #[enum_value(name = "The whole frame", nick = "full")]
    Full = 1,
}

/// Queue order and overflow policy (`priority` property).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstIGuardPriority")]
pub enum Priority {
    #[default]
    #[enum_value(
        name = "First in, first served; the oldest request is dropped when full",
        nick = "fifo"
    )]
    Fifo = 0,
    #[enum_value(
        name = "Highest trigger confidence served first; the lowest is dropped when full",
        nick = "confidence"
    )]
    Confidence = 1,
}

impl IGuardVerify {
    /// Makes the element score clips with `scorer` (from its next start on) instead of the one
    /// its properties choose. For applications embedding their own model, and for tests.
    pub fn set_scorer(&self, scorer: Option<Arc<dyn Scorer>>) {
        self.imp().set_scorer(scorer);
    }
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    Crop::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    Priority::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(
        Some(plugin),
        "iguardverify",
        gst::Rank::NONE,
        IGuardVerify::static_type(),
    )
}
