// SPDX-License-Identifier: MIT OR Apache-2.0
//! `iguardpublish`: sends every verdict of the `iguardverify` elements upstream to where users
//! look: a JSON Lines event log (`file-path`, rotated by `max-bytes`/`max-files`) and MQTT
//! (`mqtt-url`), as `iguard.verdict/1` events (see [`crate::publish::schema`]).
//!
//! A passthrough filter on any caps: buffers go through untouched and are never waited on.
//! Verdicts arrive as `iguard-verdict` serialized events (one per verdict, including those
//! finished at EOS); the verification metas on buffers are not read, so nothing is published
//! twice. The streaming thread only queues each event; files and the network are handled on
//! the element's own threads. An output that fails posts a warning and an
//! `iguard-publish-state` element message (`sink`, `state` = `down`/`up`/`degraded`,
//! `reason`), never an error; MQTT events wait in the spool (memory, plus `spool-dir`) until
//! the broker acknowledges them. At EOS the element waits up to `flush-timeout` for the
//! outputs, then lets EOS through; what is left stays in the spool folder for the next start.
//!
//! ```text
//! gst-launch-1.0 videotestsrc num-buffers=300 ! video/x-raw,width=320,height=240 \
//!     ! iguardreplay location=tests/data/demo-detections.txt ! iguardverify model-type=fallback \
//!     ! iguardpublish file-path=/tmp/verdicts.jsonl mqtt-url=mqtt://127.0.0.1:1883 ! fakesink
//! ```

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct IGuardPublish(ObjectSubclass<imp::IGuardPublish>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

/// The element message posted when an output goes down or comes back.
pub const STATE_MESSAGE: &str = "iguard-publish-state";

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "iguardpublish",
        gst::Rank::NONE,
        IGuardPublish::static_type(),
    )
}
