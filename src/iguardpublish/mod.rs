// SPDX-License-Identifier: MIT OR Apache-2.0
//! `iguardpublish`: sends every verdict and incident change of the `iguardverify` elements
//! upstream to where users look: a JSON Lines event log (`file-path`, rotated by
//! `max-bytes`/`max-files`), MQTT (`mqtt-url`) and a webhook (`webhook-url`), as
//! `iguard.verdict/1` and `iguard.incident/1` events (see [`crate::publish::schema`] and
//! [`crate::publish::incidents`]).
//!
//! A passthrough filter on any caps: buffers go through untouched and are never waited on.
//! Verdicts arrive as `iguard-verdict` serialized events (one per verdict, including those
//! finished at EOS), incidents as `iguard-incident` ones (one per change); the verification
//! metas on buffers are not read, so nothing is published
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

/// Which events the webhook gets (`webhook-events` property).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstIGuardPublishWebhookEvents")]
pub enum WebhookEvents {
    #[default]
    #[enum_value(name = "Verdicts and every incident change", nick = "all")]
    All = 0,
    #[enum_value(name = "Verdicts only", nick = "verdicts")]
    Verdicts = 1,
    #[enum_value(name = "Every incident change, no verdicts", nick = "incidents")]
    Incidents = 2,
    #[enum_value(
        name = "Only incidents becoming alerts: one POST per alerting incident",
        nick = "alerts"
    )]
    Alerts = 3,
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
