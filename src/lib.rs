// SPDX-License-Identifier: MIT OR Apache-2.0
#![allow(clippy::non_send_fields_in_send_ty, unused_doc_comments)]

//! # iguard
//!
//! Stage-2 verification for security-camera analytics. A first-stage detector (DeepStream
//! `nvinfer`, or anything that attaches `GstVideoRegionOfInterestMeta`) flags frames with a person
//! or a weapon; `iguardverify` collects a short clip of that camera from copied, downscaled tiles,
//! verifies it on an internal worker pool and reports a verdict as a bus message and as an
//! `IGuardVerificationMeta` on a later buffer of the same source, without ever stalling the video.
//! `iguardreplay` attaches recorded detections from a file, for demos, tests and offline replays.
//! `iguardpublish` sends every verdict to a JSON Lines event log and MQTT.
//! `iguardoverlay` draws the detections and the verdicts held on the objects they are about.

use gst::glib;

pub mod analytics;
pub mod clip;
pub mod config;
pub mod deepstream;
pub mod detections;
pub mod frames;
pub mod geometry;
pub mod iguardoverlay;
pub mod iguardpublish;
pub mod iguardreplay;
pub mod iguardverify;
pub mod incident;
pub mod instance;
pub mod labels;
pub mod mailbox;
pub mod meta;
pub mod pool;
pub mod publish;
pub mod sampler;
pub mod scorer;
pub mod snapshot;
pub mod sources;
mod sync;
pub mod tracks;
pub mod verdict;
pub mod zones;

/// The `src` and `sink` pad templates of a one-in, one-out element whose pads take `caps`.
pub(crate) fn src_sink_templates(caps: &gst::Caps) -> Vec<gst::PadTemplate> {
    [
        ("src", gst::PadDirection::Src),
        ("sink", gst::PadDirection::Sink),
    ]
    .into_iter()
    .map(|(name, direction)| {
        gst::PadTemplate::new(name, direction, gst::PadPresence::Always, caps)
            .expect("a pad template of fixed name and presence")
    })
    .collect()
}

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    meta::register();
    iguardverify::register(plugin)?;
    iguardreplay::register(plugin)?;
    iguardpublish::register(plugin)?;
    iguardoverlay::register(plugin)?;
    Ok(())
}

// The license is one of GStreamer's known names: "MIT/X11" stands for the MIT half of our
// "MIT OR Apache-2.0". The origin should be a URL; the project has no public repository yet, so
// it is the project's name (set Cargo.toml `repository` and use it here once there is one).
gst::plugin_define!(
    iguard,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    "iguardverify",
    env!("BUILD_REL_DATE")
);
