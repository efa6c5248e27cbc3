// SPDX-License-Identifier: MIT OR Apache-2.0
//! GObject glue of `iguardoverlay`: properties, caps, the allocation query that decides between
//! attaching and blending, and `transform_ip` wiring the metas to [`super::scene`] and the
//! shapes to [`super::render`] (overlay rectangles, or fills and labels blended into the frame).
//!
//! Locks: `settings` and `state` are never held at the same time; no lock is held while
//! querying downstream.

use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use super::held::Holds;
use super::incidents::Incidents;
use super::layout::Alignment;
use super::render::{Renderer, Target};
use super::scene::{Colours, Frame, Style};
use super::text::{Argb, DEFAULT_FONT_FILE, Font};
use super::zones::ZoneStyle;
use crate::detections::analytics::AnalyticsReader;
use crate::detections::roi::detection_from_roi;
use crate::incident::Incident;
use crate::zones::Zones;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "iguardoverlay",
        gst::DebugColorFlags::empty(),
        Some("iGuard detections and verdicts overlay"),
    )
});

const DEFAULT_HOLD: f64 = 3.0;
const MAX_HOLD: f64 = 3600.0;
const DEFAULT_FONT_SIZE: f64 = 14.0;
const DEFAULT_LINE_WIDTH: u32 = 2;
const DEFAULT_SHOW_STATS: bool = false;
const DEFAULT_BOX_COLOR: u32 = 0xFF00_C8FF;
const DEFAULT_VERIFIED_COLOR: u32 = 0xFFFF_2020;
const DEFAULT_REJECTED_COLOR: u32 = 0xFF20_D020;
const DEFAULT_UNSCORED_COLOR: u32 = 0xFFFF_C000;
const DEFAULT_TEXT_COLOR: u32 = 0xFF00_0000;
const DEFAULT_DRAW_ZONES: bool = true;
const DEFAULT_ZONE_COLOR: u32 = 0xC0FF_FFFF;
/// Zone outline pieces kept rendered (zones do not move: every piece is used every frame).
const MAX_ZONE_PIECES: usize = 4096;
const MAX_ZONE_BYTES: usize = 32 << 20;

#[derive(Debug, Clone)]
struct Settings {
    hold: f64,
    font_file: String,
    font_size: f64,
    line_width: u32,
    show_stats: bool,
    box_color: u32,
    verified_color: u32,
    rejected_color: u32,
    unscored_color: u32,
    text_color: u32,
    /// The `zones` text as set; parsed at set time (a warning) and at start (an error).
    zones: String,
    draw_zones: bool,
    zone_color: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            hold: DEFAULT_HOLD,
            font_file: DEFAULT_FONT_FILE.to_string(),
            font_size: DEFAULT_FONT_SIZE,
            line_width: DEFAULT_LINE_WIDTH,
            show_stats: DEFAULT_SHOW_STATS,
            box_color: DEFAULT_BOX_COLOR,
            verified_color: DEFAULT_VERIFIED_COLOR,
            rejected_color: DEFAULT_REJECTED_COLOR,
            unscored_color: DEFAULT_UNSCORED_COLOR,
            text_color: DEFAULT_TEXT_COLOR,
            zones: String::new(),
            draw_zones: DEFAULT_DRAW_ZONES,
            zone_color: DEFAULT_ZONE_COLOR,
        }
    }
}

impl Settings {
    fn style(&self) -> Style {
        Style {
            line_width: self.line_width,
            colours: Colours {
                pending: Argb(self.box_color),
                verified: Argb(self.verified_color),
                rejected: Argb(self.rejected_color),
                unscored: Argb(self.unscored_color),
                text: Argb(self.text_color),
            },
            show_stats: self.show_stats,
        }
    }

    fn hold_ns(&self) -> u64 {
        (self.hold * 1e9).round() as u64
    }

    fn zone_style(&self) -> Option<ZoneStyle> {
        self.draw_zones.then(|| ZoneStyle {
            // Thin: half a box outline.
            width: (self.line_width as f32 / 2.0).max(1.0),
            colour: Argb(self.zone_color),
            text: Argb(self.text_color),
        })
    }
}

/// The `zones` text parsed; the error names the zone and what is wrong.
fn parse_zones(text: &str) -> Result<Zones, String> {
    Zones::parse(text).map_err(|e| {
        format!("zones {text:?} is not valid: {e} (write name:x,y x,y x,y; ... with x and y from 0 to 1)")
    })
}

/// Runtime data, created in `start()` and dropped in `stop()`.
struct State {
    font: Arc<Font>,
    info: Option<gst_video::VideoInfo>,
    align: Alignment,
    holds: Holds,
    incidents: Incidents,
    zones: Zones,
    /// Zone outline pieces, kept apart from the labels' cache so neither evicts the other.
    zone_renderer: Renderer,
    /// Whether downstream renders `GstVideoOverlayCompositionMeta` (then it is attached).
    attach: bool,
    /// Ask downstream again before the next buffer (new caps, a reconfigure event).
    query_pending: bool,
    /// Running time of the previous buffer, for buffers without a timestamp.
    last_time: Option<u64>,
    /// Label pixels kept across frames (bounded, least recently used out first).
    renderer: Renderer,
    /// Object-detection mtds, drawn next to ROI metas (GStreamer 1.24 and later).
    analytics: AnalyticsReader,
}

#[derive(Default)]
pub struct IGuardOverlay {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

impl IGuardOverlay {
    fn settings(&self) -> MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn state(&self) -> MutexGuard<'_, Option<State>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks downstream whether it renders overlay composition metas itself.
    fn downstream_takes_composition(&self) -> bool {
        let src = self.obj().src_pad().clone();
        let Some(caps) = src.current_caps() else {
            return false;
        };
        let mut query = gst::query::Allocation::new(Some(&caps), false);
        if !src.peer_query(&mut query) {
            gst::debug!(CAT, imp = self, "allocation query not answered: blending");
            return false;
        }
        query
            .find_allocation_meta::<gst_video::VideoOverlayCompositionMeta>()
            .is_some()
    }

    /// The buffer's running time; a buffer without a timestamp takes the previous one's plus
    /// its duration (or the frame duration of the caps).
    fn running_time(&self, buf: &gst::BufferRef, state: &State) -> u64 {
        let segment = self.obj().segment();
        let from_pts = segment
            .downcast_ref::<gst::ClockTime>()
            .and_then(|s| s.to_running_time(buf.pts()))
            .map(|t| t.nseconds());
        if let Some(t) = from_pts {
            return t;
        }
        let frame = buf.duration().map(|d| d.nseconds()).or_else(|| {
            let fps = state.info.as_ref()?.fps();
            (fps.numer() > 0 && fps.denom() > 0).then(|| {
                gst::ClockTime::SECOND
                    .nseconds()
                    .mul_div_floor(fps.denom() as u64, fps.numer() as u64)
                    .unwrap_or(0)
            })
        });
        match state.last_time {
            Some(t) => t.saturating_add(frame.unwrap_or(0)),
            None => 0,
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for IGuardOverlay {
    const NAME: &'static str = "GstIGuardOverlay";
    type Type = super::IGuardOverlay;
    type ParentType = gst_base::BaseTransform;
}

fn color_spec(name: &str, nick: &str, what: &str, default: u32) -> glib::ParamSpec {
    glib::ParamSpecUInt::builder(name)
        .nick(nick)
        .blurb(&format!(
            "Colour of {what}, as 0xAARRGGBB (alpha 0xFF = opaque); labels use it as background"
        ))
        .default_value(default)
        .mutable_playing()
        .build()
}

impl ObjectImpl for IGuardOverlay {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecDouble::builder("hold")
                    .nick("Hold")
                    .blurb(
                        "Seconds of running time a verdict stays drawn on its object after the \
                         buffer that carried it; 0 = only on that buffer",
                    )
                    .minimum(0.0)
                    .maximum(MAX_HOLD)
                    .default_value(DEFAULT_HOLD)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("font-file")
                    .nick("Font file")
                    .blurb(
                        "TrueType/OpenType font for labels, read when the element starts \
                         (Debian package fonts-dejavu-core provides the default)",
                    )
                    .default_value(Some(DEFAULT_FONT_FILE))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("font-size")
                    .nick("Font size")
                    .blurb("Label text size, in frame pixels per em (about the height of a line)")
                    .minimum(4.0)
                    .maximum(256.0)
                    .default_value(DEFAULT_FONT_SIZE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("line-width")
                    .nick("Line width")
                    .blurb(
                        "Box outline thickness, in pixels, drawn inside the box (rounded up to \
                         whole chroma samples for subsampled formats)",
                    )
                    .minimum(1)
                    .maximum(64)
                    .default_value(DEFAULT_LINE_WIDTH)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("show-stats")
                    .nick("Show stats")
                    .blurb(
                        "Draw one line per source at the top left: verdicts seen, verified, \
                         rejected and unscored",
                    )
                    .default_value(DEFAULT_SHOW_STATS)
                    .mutable_playing()
                    .build(),
                color_spec(
                    "box-color",
                    "Box colour",
                    "a detection without a held verdict",
                    DEFAULT_BOX_COLOR,
                ),
                color_spec(
                    "verified-color",
                    "Verified colour",
                    "an object verified (or a positive fallback verdict)",
                    DEFAULT_VERIFIED_COLOR,
                ),
                color_spec(
                    "rejected-color",
                    "Rejected colour",
                    "an object rejected (or a negative fallback verdict)",
                    DEFAULT_REJECTED_COLOR,
                ),
                color_spec(
                    "unscored-color",
                    "Unscored colour",
                    "an object whose clip timed out, was dropped or failed",
                    DEFAULT_UNSCORED_COLOR,
                ),
                glib::ParamSpecUInt::builder("text-color")
                    .nick("Text colour")
                    .blurb("Colour of label text, as 0xAARRGGBB")
                    .default_value(DEFAULT_TEXT_COLOR)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("zones")
                    .nick("Zones")
                    .blurb(
                        "Zones to draw, as iguardverify's zones property takes them: \
                         name:x,y x,y x,y; name2:... with x and y from 0 to 1 of the frame's \
                         width and height (a malformed zone fails the start, naming it); \
                         empty = none",
                    )
                    .default_value(Some(""))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("draw-zones")
                    .nick("Draw zones")
                    .blurb("Draw the zones' outlines and names (when zones is set)")
                    .default_value(DEFAULT_DRAW_ZONES)
                    .mutable_playing()
                    .build(),
                color_spec(
                    "zone-color",
                    "Zone colour",
                    "zone outlines",
                    DEFAULT_ZONE_COLOR,
                ),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings();
        match pspec.name() {
            "hold" => s.hold = value.get().expect("type checked upstream"),
            "font-file" => {
                s.font_file = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_default()
            }
            "font-size" => s.font_size = value.get().expect("type checked upstream"),
            "line-width" => s.line_width = value.get().expect("type checked upstream"),
            "show-stats" => s.show_stats = value.get().expect("type checked upstream"),
            "box-color" => s.box_color = value.get().expect("type checked upstream"),
            "verified-color" => s.verified_color = value.get().expect("type checked upstream"),
            "rejected-color" => s.rejected_color = value.get().expect("type checked upstream"),
            "unscored-color" => s.unscored_color = value.get().expect("type checked upstream"),
            "text-color" => s.text_color = value.get().expect("type checked upstream"),
            "zones" => {
                let text = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_default();
                // Told now; the start refuses it.
                if let Err(e) = parse_zones(&text) {
                    gst::warning!(CAT, imp = self, "{e}");
                }
                s.zones = text;
            }
            "draw-zones" => s.draw_zones = value.get().expect("type checked upstream"),
            "zone-color" => s.zone_color = value.get().expect("type checked upstream"),
            _ => unimplemented!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings();
        match pspec.name() {
            "hold" => s.hold.to_value(),
            "font-file" => s.font_file.to_value(),
            "font-size" => s.font_size.to_value(),
            "line-width" => s.line_width.to_value(),
            "show-stats" => s.show_stats.to_value(),
            "box-color" => s.box_color.to_value(),
            "verified-color" => s.verified_color.to_value(),
            "rejected-color" => s.rejected_color.to_value(),
            "unscored-color" => s.unscored_color.to_value(),
            "text-color" => s.text_color.to_value(),
            "zones" => s.zones.to_value(),
            "draw-zones" => s.draw_zones.to_value(),
            "zone-color" => s.zone_color.to_value(),
            _ => unimplemented!(),
        }
    }
}

impl GstObjectImpl for IGuardOverlay {}

impl ElementImpl for IGuardOverlay {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "iGuard overlay",
                "Filter/Editor/Video",
                "Draws detection boxes with their ids, and iguardverify's verdicts held on the \
                 objects they are about, as an overlay composition (attached or blended)",
                "iguardverify developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(super::blend::FORMATS.iter().copied())
                .build();
            crate::src_sink_templates(&caps)
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for IGuardOverlay {
    // Frames are drawn on (or get a meta) in place: never passthrough.
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let (font_file, zones) = {
            let s = self.settings();
            (s.font_file.clone(), s.zones.clone())
        };
        let zones = parse_zones(&zones)
            .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("{}", e)))?;
        let font = Font::load(Path::new(&font_file))
            .map_err(|e| gst::error_msg!(gst::ResourceError::NotFound, ("{}", e)))?;
        gst::info!(CAT, imp = self, "labels in {}", font.path().display());
        *self.state() = Some(State {
            font: Arc::new(font),
            info: None,
            align: Alignment::NONE,
            holds: Holds::default(),
            incidents: Incidents::default(),
            zones,
            zone_renderer: Renderer::new(MAX_ZONE_PIECES, MAX_ZONE_BYTES),
            attach: false,
            query_pending: true,
            last_time: None,
            renderer: Renderer::default(),
            analytics: AnalyticsReader::new(),
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
        let finfo = info.format_info();
        // Chroma planes sample every 2^sub pixels: shapes cover whole samples.
        let sub = |s: &[u32]| 1u32 << s.iter().copied().max().unwrap_or(0).min(4);
        let align = Alignment {
            x: sub(finfo.w_sub()),
            y: sub(finfo.h_sub()),
        };
        gst::debug!(
            CAT,
            imp = self,
            "{} {}x{}, shapes aligned to {}x{}",
            info.format().to_str(),
            info.width(),
            info.height(),
            align.x,
            align.y
        );
        match self.state().as_mut() {
            Some(state) => {
                state.info = Some(info);
                state.align = align;
                state.query_pending = true;
            }
            None => {
                return Err(gst::loggable_error!(
                    CAT,
                    "Caps set before the element started"
                ));
            }
        }
        self.parent_set_caps(incaps, outcaps)
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        if let Some(s) = crate::incident::event_structure(&event) {
            match Incident::from_structure(s) {
                // Counted at the next buffer's running time.
                Ok((_, incident)) => {
                    if let Some(state) = self.state().as_mut() {
                        state.incidents.queue(incident);
                    }
                }
                Err(e) => gst::warning!(CAT, imp = self, "an incident event is not valid: {e}"),
            }
        } else if let gst::EventView::FlushStop(_) = event.view()
            && let Some(state) = self.state().as_mut()
        {
            state.holds.clear();
            state.incidents.clear();
            state.last_time = None;
        }
        self.parent_sink_event(event)
    }

    fn src_event(&self, event: gst::Event) -> bool {
        // Downstream changed (a new sink, a new branch): ask again whether it renders the meta.
        if let gst::EventView::Reconfigure(_) = event.view()
            && let Some(state) = self.state().as_mut()
        {
            state.query_pending = true;
        }
        self.parent_src_event(event)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (style, hold, font_px, zone_style) = {
            let s = self.settings();
            (s.style(), s.hold_ns(), s.font_size as f32, s.zone_style())
        };

        let query_pending = match self.state().as_mut() {
            Some(state) => std::mem::take(&mut state.query_pending),
            None => {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Failed,
                    ("Buffer arrived before the element started")
                );
                return Err(gst::FlowError::Error);
            }
        };
        let attach = query_pending.then(|| self.downstream_takes_composition());

        let mut detections: Vec<_> = buf
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .map(|m| detection_from_roi(&m))
            .collect();
        let verdicts = crate::meta::read_all(buf);

        let mut guard = self.state();
        let Some(state) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        // Od mtds too (an upstream detector's, e.g. ssdobjectdetector's), a box an ROI meta
        // already gives counted once; their tracking mtds' ids match verdicts to them.
        let from_roi = detections.len();
        state.analytics.read_into(buf, from_roi, &mut detections);
        if let Some(attach) = attach {
            if attach != state.attach {
                gst::info!(
                    CAT,
                    imp = self,
                    "{}",
                    if attach {
                        "downstream renders overlay composition metas: attaching"
                    } else {
                        "downstream does not render overlay composition metas: blending"
                    }
                );
            }
            state.attach = attach;
        }
        let Some(info) = state.info.clone() else {
            return Err(gst::FlowError::NotNegotiated);
        };
        let now = self.running_time(buf, state);
        state.last_time = Some(now);
        state.holds.observe(now, &verdicts);
        state.holds.expire(now, hold);
        state.incidents.observe(now);
        state.incidents.expire(now, hold);
        let zone_style = zone_style.filter(|_| !state.zones.is_empty());
        if detections.is_empty()
            && state.holds.held() == 0
            && state.incidents.held() == 0
            && zone_style.is_none()
            && !style.show_stats
        {
            return Ok(gst::FlowSuccess::Ok);
        }

        let font = state.font.clone();
        let measure = |text: &str| font.measure(text, font_px);
        // Zones first: under the boxes and labels.
        let zone_shapes = match &zone_style {
            Some(z) => super::zones::shapes(
                &state.zones,
                info.width(),
                info.height(),
                state.align,
                z,
                &measure,
            ),
            None => Vec::new(),
        };
        let (strokes, mut shapes): (Vec<_>, Vec<_>) = zone_shapes
            .into_iter()
            .partition(|s| matches!(s, super::scene::Shape::Stroke { .. }));
        shapes.extend(
            Frame {
                width: info.width(),
                height: info.height(),
                align: state.align,
                style: &style,
                measure: &measure,
            }
            .layout_with(&detections, &state.holds, &state.incidents),
        );
        if shapes.is_empty() && strokes.is_empty() {
            return Ok(gst::FlowSuccess::Ok);
        }

        let attach = state.attach;
        let target = if attach {
            Target::Attach
        } else if info.format_info().is_rgb() {
            Target::Rgb
        } else {
            Target::Yuv
        };
        let cannot_render = |e: glib::BoolError| {
            gst::error!(CAT, imp = self, "cannot make overlay pixels: {e}");
            gst::FlowError::Error
        };
        if attach {
            let mut rects = state
                .zone_renderer
                .rectangles(strokes, &font, font_px)
                .map_err(cannot_render)?;
            rects.extend(
                state
                    .renderer
                    .rectangles(shapes, &font, font_px)
                    .map_err(cannot_render)?,
            );
            drop(guard);
            // Add to what upstream already attached rather than replacing it.
            if let Some(mut existing) = buf.meta_mut::<gst_video::VideoOverlayCompositionMeta>() {
                let mut composition = existing.overlay_owned();
                {
                    let c = composition.make_mut();
                    for r in &rects {
                        c.add_rectangle(r);
                    }
                }
                existing.set_overlay(&composition);
            } else {
                let composition =
                    gst_video::VideoOverlayComposition::new(rects.iter()).map_err(|e| {
                        gst::error!(CAT, imp = self, "cannot make a composition: {e}");
                        gst::FlowError::Error
                    })?;
                gst_video::VideoOverlayCompositionMeta::add(buf, &composition);
            }
            return Ok(gst::FlowSuccess::Ok);
        }

        let mut drawn = state
            .zone_renderer
            .drawn(strokes, &font, font_px, target)
            .map_err(cannot_render)?;
        drawn.extend(
            state
                .renderer
                .drawn(shapes, &font, font_px, target)
                .map_err(cannot_render)?,
        );
        drop(guard);
        let mut frame =
            gst_video::VideoFrameRef::from_buffer_ref_writable(buf, &info).map_err(|_| {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Failed,
                    (
                        "Cannot map a {} buffer of {} bytes for writing",
                        info.format().to_str(),
                        info.size()
                    )
                );
                gst::FlowError::Error
            })?;
        super::render::paint(&drawn, &mut frame).map_err(|e| {
            gst::element_imp_error!(self, gst::CoreError::Failed, ("Cannot draw: {}", e));
            gst::FlowError::Error
        })?;
        Ok(gst::FlowSuccess::Ok)
    }
}
