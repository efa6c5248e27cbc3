// SPDX-License-Identifier: MIT OR Apache-2.0
//! GObject glue of `iguardreplay`: properties, caps, and `transform_ip` wiring the parsed file
//! to ROI metas. The file format lives in [`super::parser`].
//!
//! Locks: `settings` and `state` are never held at the same time.

use std::path::Path;
use std::sync::{LazyLock, Mutex, MutexGuard};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use super::parser::{self, ClassLabels, Detections, ParseError};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "iguardreplay",
        gst::DebugColorFlags::empty(),
        Some("iGuard recorded detections replay"),
    )
});

const DEFAULT_CLASS_LABELS: &str = "1=person,2=weapon";
const DEFAULT_FRAME_OFFSET: i64 = 0;

/// Name of the param structure attached to each ROI meta, and its fields (what
/// `crate::detections::roi` reads back).
const PARAM_NAME: &str = "detection";
const FIELD_CONFIDENCE: &str = "confidence";
const FIELD_LABEL_ID: &str = "label_id";
const FIELD_OBJECT_ID: &str = "object_id";

#[derive(Debug, Clone)]
struct Settings {
    location: Option<String>,
    class_labels: String,
    frame_offset: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            location: None,
            class_labels: DEFAULT_CLASS_LABELS.to_string(),
            frame_offset: DEFAULT_FRAME_OFFSET,
        }
    }
}

/// Runtime data, created in `start()` and dropped in `stop()`.
struct State {
    detections: Detections,
    labels: ClassLabels,
    /// Width and height from the negotiated caps.
    frame_size: Option<(u32, u32)>,
    /// Buffers seen since `start()`; the current buffer is number `buffers` (1-based).
    buffers: u64,
}

#[derive(Default)]
pub struct IGuardReplay {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

impl IGuardReplay {
    fn settings(&self) -> MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn state(&self) -> MutexGuard<'_, Option<State>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[glib::object_subclass]
impl ObjectSubclass for IGuardReplay {
    const NAME: &'static str = "GstIGuardReplay";
    type Type = super::IGuardReplay;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for IGuardReplay {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("location")
                    .nick("Location")
                    .blurb(
                        "Path of the detections file: MOTChallenge CSV, one detection a line \
                         (frame,id,left,top,width,height,conf[,class]), frames 1-based, id -1 \
                         for untracked; read when the element starts",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("class-labels")
                    .nick("Class labels")
                    .blurb(
                        "Comma-separated id=label pairs naming the file's class ids; the label \
                         becomes the ROI type. Unmapped classes are labelled class-<id>",
                    )
                    .default_value(Some(DEFAULT_CLASS_LABELS))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt64::builder("frame-offset")
                    .nick("Frame offset")
                    .blurb(
                        "Added to the buffer count (1 = first buffer since the element \
                         started; not reset by flushing seeks) to get the file's frame number; \
                         frames below 1 get no detections",
                    )
                    .default_value(DEFAULT_FRAME_OFFSET)
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = self.settings();
        match pspec.name() {
            "location" => {
                let location = value
                    .get::<Option<String>>()
                    .expect("type checked upstream");
                gst::info!(CAT, imp = self, "location set to {location:?}");
                settings.location = location;
            }
            "class-labels" => {
                let labels = value
                    .get::<Option<String>>()
                    .expect("type checked upstream");
                settings.class_labels = labels.unwrap_or_default();
            }
            "frame-offset" => {
                settings.frame_offset = value.get().expect("type checked upstream");
            }
            _ => unimplemented!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = self.settings();
        match pspec.name() {
            "location" => settings.location.to_value(),
            "class-labels" => settings.class_labels.to_value(),
            "frame-offset" => settings.frame_offset.to_value(),
            _ => unimplemented!(),
        }
    }
}

impl GstObjectImpl for IGuardReplay {}

impl ElementImpl for IGuardReplay {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "iGuard detections replay",
                "Filter/Analyzer/Video",
                "Attaches recorded detections from a MOTChallenge-style file to frames as \
                 region-of-interest metas, by frame number",
                "iguardverify developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::new_empty_simple("video/x-raw");
            crate::src_sink_templates(&caps)
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for IGuardReplay {
    // Metas are added to every buffer, so it must be writable: never passthrough.
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings().clone();

        let Some(location) = settings.location.filter(|l| !l.is_empty()) else {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                ("No detections file: set the 'location' property to a MOTChallenge CSV file")
            ));
        };
        let labels = ClassLabels::parse(&settings.class_labels)
            .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("{}", e)))?;
        let detections = parser::parse_file(Path::new(&location)).map_err(|e| match e {
            ParseError::Read { .. } => gst::error_msg!(gst::ResourceError::OpenRead, ("{}", e)),
            ParseError::Line { .. } => gst::error_msg!(
                gst::StreamError::Format,
                ("Malformed detections file: {}", e)
            ),
        })?;

        match detections.frame_range() {
            Some((first, last)) => gst::info!(
                CAT,
                imp = self,
                "{location}: {} detections on {} frames ({first}..={last}), labels {labels}",
                detections.len(),
                detections.frame_count(),
            ),
            None => gst::warning!(CAT, imp = self, "{location} holds no detections"),
        }

        *self.state() = Some(State {
            detections,
            labels,
            frame_size: None,
            buffers: 0,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state() = None;
        gst::debug!(CAT, imp = self, "stopped");
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "Cannot read video info from caps {incaps}"))?;
        match self.state().as_mut() {
            Some(state) => state.frame_size = Some((info.width(), info.height())),
            None => {
                return Err(gst::loggable_error!(
                    CAT,
                    "Caps set before the element started"
                ));
            }
        }
        gst::debug!(
            CAT,
            imp = self,
            "frame size {}x{}",
            info.width(),
            info.height()
        );
        self.parent_set_caps(incaps, outcaps)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let frame_offset = self.settings().frame_offset;

        let mut state = self.state();
        let Some(state) = state.as_mut() else {
            gst::element_imp_error!(
                self,
                gst::CoreError::Failed,
                ("Buffer arrived before the element started")
            );
            return Err(gst::FlowError::Error);
        };
        let Some((width, height)) = state.frame_size else {
            return Err(gst::FlowError::NotNegotiated);
        };

        state.buffers += 1;
        let frame = (state.buffers as i64).saturating_add(frame_offset);
        if frame < 1 {
            return Ok(gst::FlowSuccess::Ok);
        }
        let frame = frame as u64;

        for det in state.detections.frame(frame) {
            let Some(px) = det.pixel_box(width, height) else {
                gst::debug!(
                    CAT,
                    imp = self,
                    "frame {frame}: box ({}, {}, {}x{}) is empty or outside the {width}x{height} \
                     frame, skipped",
                    det.left,
                    det.top,
                    det.width,
                    det.height,
                );
                continue;
            };
            let label = state.labels.label(det.class_id);
            let mut params = gst::Structure::builder(PARAM_NAME)
                .field(FIELD_CONFIDENCE, det.confidence)
                .field(FIELD_LABEL_ID, det.class_id);
            if let Some(id) = det.object_id {
                params = params.field(FIELD_OBJECT_ID, id);
            }
            let mut meta = gst_video::VideoRegionOfInterestMeta::add(
                buf,
                &label,
                (px.x, px.y, px.width, px.height),
            );
            meta.add_param(params.build());
        }
        gst::trace!(
            CAT,
            imp = self,
            "buffer {} = frame {frame}: {} detections",
            state.buffers,
            state.detections.frame(frame).len()
        );
        Ok(gst::FlowSuccess::Ok)
    }
}
