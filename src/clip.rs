// SPDX-License-Identifier: MIT OR Apache-2.0
//! Clip assembly: idle → (trigger) → collecting `temporal-size` tiles → clip.
//!
//! Two ways to cut clips (`clip-per`):
//! - **source**: one clip at a time per source; its crop is the union of the triggering boxes
//!   of the trigger frame, widened by the margin, and stays fixed for the clip.
//! - **object**: one clip per tracked object, up to `max-clips-per-source` at once. On every
//!   sampled frame the crop is the object's current box, widened by the margin, made to the
//!   tile's aspect ratio, smoothed over frames and kept inside the frame. Ids come from the
//!   detector (DeepStream `object_id`, the ROI `detection` param `object_id`) or from the
//!   built-in association ([`crate::tracks`]), as `tracking` says. A clip whose object is missing
//!   for `track-timeout` frames ends: completed by repeating its last tile when it has at least
//!   `min-frames` real tiles, dropped otherwise. The cooldown is per object.
//!
//! Zones (`zones`, `trigger-zones`, `ignore-zones`, a [`Rule`]): a detection triggers only while
//! the bottom centre of its box stands where the rule allows; each object (per source with
//! `clip-per=source`, each clip) remembers the zones it entered, and its clips carry them.
//!
//! The assembler never touches pixels itself: the caller passes a `sample` closure that fills a
//! tile from the current frame, so this module is plain logic with its own tests.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::detections::{Detection, SourceFrame};
use crate::geometry::{Bounds, PixelRect, Rect};
use crate::tracks::{self, Memory, Tracker};
use crate::zones::{Rule, foot_point};

/// What part of the frame a clip covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CropMode {
    /// The union of the triggering boxes (or the object's box), widened by the margin.
    #[default]
    Roi,
    /// The whole frame.
    Full,
}

/// What one clip is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClipPer {
    /// One clip at a time per source, over the union of the triggering boxes.
    #[default]
    Source,
    /// One clip per tracked object, following its box.
    Object,
}

/// Where object ids come from with [`ClipPer::Object`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tracking {
    /// The detector's id when a detection has one, the built-in association otherwise.
    #[default]
    Auto,
    /// Only the detector's ids; detections without one start no clip.
    Ids,
    /// The built-in association always; the detector's ids are ignored.
    Builtin,
}

/// The labels that start a clip by default: people, and the weapon labels.
pub const DEFAULT_TRIGGER_LABELS: &[&str] =
    &["person", "weapon", "gun", "pistol", "rifle", "knife"];

#[derive(Debug, Clone, PartialEq)]
pub struct ClipConfig {
    pub trigger_labels: Vec<String>,
    pub min_confidence: f64,
    pub temporal_size: u32,
    pub frame_interval: u32,
    pub roi_margin: f32,
    pub crop: CropMode,
    pub tile_width: u32,
    pub tile_height: u32,
    /// Frames after a clip completes during which its source (or, per object, its object) does
    /// not trigger again.
    pub cooldown: u32,
}

impl Default for ClipConfig {
    fn default() -> Self {
        ClipConfig {
            trigger_labels: DEFAULT_TRIGGER_LABELS
                .iter()
                .map(|l| l.to_string())
                .collect(),
            min_confidence: 0.5,
            temporal_size: 16,
            frame_interval: 1,
            roi_margin: 0.15,
            crop: CropMode::Roi,
            tile_width: 224,
            tile_height: 224,
            cooldown: 30,
        }
    }
}

/// How clips relate to objects. Kept apart from [`ClipConfig`] so code that only knows
/// per-source clips keeps building them as before.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackConfig {
    pub clip_per: ClipPer,
    pub tracking: Tracking,
    /// Clips collecting at once per source (per object mode); a trigger beyond it is dropped.
    pub max_clips_per_source: u32,
    /// Frames an object may be missing before its clip ends (and the built-in association
    /// forgets it).
    pub track_timeout: u32,
    /// Real tiles a clip needs when its object is lost to be completed instead of dropped.
    pub min_frames: u32,
}

impl Default for TrackConfig {
    fn default() -> Self {
        TrackConfig {
            clip_per: ClipPer::Source,
            tracking: Tracking::Auto,
            max_clips_per_source: 8,
            track_timeout: 15,
            min_frames: 8,
        }
    }
}

/// Bounds on the assembler's work per frame and per buffer, and on its memory, whatever the
/// detector's metadata says (a circular DeepStream object list, a detector without NMS, a
/// hostile batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Trigger-label detections per source and frame that object clips and the built-in
    /// association consider, most confident first (`clip-per=object`); the rest are counted.
    pub max_detections: u32,
    /// Clips collecting at once over all sources; a trigger beyond it is answered `dropped`.
    pub max_clips: u32,
    /// Tiles sampled per buffer over all its frames; past it, clips still due on that buffer
    /// and new triggers are answered `dropped`.
    pub max_tiles_per_buffer: u32,
}

pub const DEFAULT_MAX_DETECTIONS: u32 = 64;
pub const DEFAULT_MAX_CLIPS: u32 = 64;
pub const DEFAULT_MAX_TILES_PER_BUFFER: u32 = 64;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_detections: DEFAULT_MAX_DETECTIONS,
            max_clips: DEFAULT_MAX_CLIPS,
            max_tiles_per_buffer: DEFAULT_MAX_TILES_PER_BUFFER,
        }
    }
}

/// Distinct labels kept per tile (the most confident): the labels of a tile cost a bounded
/// amount of work and memory however many detections a frame has.
pub const MAX_LABELS_PER_TILE: usize = 16;

/// A label seen on a sampled frame, with the best confidence it had there.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelSeen {
    pub label: String,
    pub confidence: f64,
}

/// A finished clip: `frames` RGB tiles of `width`×`height`, plus what the detector saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    pub request_id: u64,
    pub source: SourceFrame,
    pub width: u32,
    pub height: u32,
    /// Tiles in the clip (always `temporal-size`; see `real_frames`).
    pub frames: u32,
    /// Tiles sampled from real frames; fewer than `frames` only for a clip cut short by EOS
    /// or by its object being lost, whose last tile was repeated to fill it.
    pub real_frames: u32,
    /// `frames × height × width × 3` bytes, RGB, frame-major.
    pub pixels: Vec<u8>,
    /// Per tile, the labels the detector reported on that frame (per object: the object's own
    /// and those of detections centred inside its crop).
    pub frame_labels: Vec<Vec<LabelSeen>>,
    /// The crop, in pixels of the frame that triggered the clip.
    pub region: PixelRect,
    pub trigger_label: String,
    pub trigger_confidence: f64,
    pub start_pts: Option<u64>,
    pub end_pts: Option<u64>,
}

impl Clip {
    pub fn tile_bytes(&self) -> usize {
        self.width as usize * self.height as usize * 3
    }

    /// The RGB bytes of tile `i`.
    pub fn tile(&self, i: usize) -> &[u8] {
        let n = self.tile_bytes();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Fills the clip up to `temporal_size` tiles by repeating its last real one.
    fn complete(&mut self, temporal_size: u32) {
        if self.frames == 0 {
            return;
        }
        let tile = self.tile_bytes();
        let last = self.frames as usize - 1;
        self.pixels.resize(tile * temporal_size as usize, 0);
        for i in self.frames as usize..temporal_size as usize {
            self.pixels
                .copy_within(last * tile..(last + 1) * tile, i * tile);
            let labels = self.frame_labels[last].clone();
            self.frame_labels.push(labels);
        }
        self.frames = self.frames.max(temporal_size);
    }
}

/// A clip with what it was about: the object it followed and its crop on each sampled frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Collected {
    pub clip: Clip,
    /// The object's id (`None` for `clip-per=source`).
    pub object_id: Option<u64>,
    /// The crop of each real tile, in pixels of the frame it was cut from.
    pub crops: Vec<PixelRect>,
    /// Per real tile, the object's own box on that frame (clamped to it); `None` where the
    /// object was missing, and always for `clip-per=source`.
    pub boxes: Vec<Option<PixelRect>>,
    /// The zones its object entered up to the clip's end, in order of entry (`clip-per=source`:
    /// those its triggering detections stood in during the clip).
    pub zones: Vec<String>,
}

impl Collected {
    /// The crop on the last sampled frame.
    pub fn last_crop(&self) -> Option<PixelRect> {
        self.crops.last().copied().or(Some(self.clip.region))
    }
}

impl std::ops::Deref for Collected {
    type Target = Clip;
    fn deref(&self) -> &Clip {
        &self.clip
    }
}

/// What happened to a source on one frame.
#[derive(Debug, Default)]
pub struct FrameEvents {
    /// Clips started on this frame (their ids).
    pub started: Vec<u64>,
    /// Clips completed on this frame.
    pub finished: Vec<Collected>,
    /// Clips abandoned because sampling failed (id and why).
    pub failed: Vec<(u64, String)>,
    /// Requests answered `dropped` and why: a trigger beyond `max-clips-per-source` (a clip
    /// with no tiles), or a clip whose object was lost before `min-frames` tiles.
    pub dropped: Vec<(Collected, String)>,
    /// Ids the built-in tracker gave detections that carried none (`clip-per=object`): the
    /// detection's index in the frame, and the object id its verdicts will name.
    pub assigned: Vec<(usize, u64)>,
    /// What each clip started on this frame is about (as `started`, in the same order).
    pub opened: Vec<Opened>,
    /// Objects lost on this frame: unseen for `track-timeout` frames (`clip-per=object`).
    pub lost: Vec<u64>,
}

/// A clip that started: its request, its object and where the object stood.
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    pub request_id: u64,
    /// `None` for `clip-per=source`.
    pub object_id: Option<u64>,
    pub trigger_label: String,
    pub start_pts: Option<u64>,
    /// The object's box on the trigger frame (`clip-per=source`: the union of the triggering
    /// boxes), in frame pixels.
    pub bbox: Option<PixelRect>,
}

/// What happened to a source on one frame, for `clip-per=source` (at most one of each).
#[derive(Debug, Default)]
pub struct FrameOutcome {
    /// A clip started on this frame (its id).
    pub started: Option<u64>,
    /// A clip completed on this frame.
    pub finished: Option<Clip>,
    /// A clip was abandoned because sampling failed (its id and why).
    pub failed: Option<(u64, String)>,
}

/// Counts of the assembler, readable from any thread (the `stats` property).
#[derive(Debug, Default)]
pub struct ClipCounters {
    /// Clips collecting now, over all sources.
    pub collecting: AtomicU64,
    /// The most clips collecting at once since start.
    pub most_collecting: AtomicU64,
    /// Bytes the collecting clips may hold when full (clips × temporal-size × tile bytes).
    pub collecting_bytes: AtomicU64,
    /// Triggers answered `dropped` because `max-clips-per-source` clips were collecting.
    pub overflowed: AtomicU64,
    /// Clips whose object was lost, completed by repeating their last tile.
    pub lost_completed: AtomicU64,
    /// Clips whose object was lost before `min-frames` tiles, dropped.
    pub lost_dropped: AtomicU64,
    /// Trigger-label detections left out of a frame's candidates by `max-detections`.
    pub detections_capped: AtomicU64,
    /// Triggers answered `dropped` because `max-clips` clips were collecting.
    pub over_max_clips: AtomicU64,
    /// Clips and triggers answered `dropped` because their buffer had sampled
    /// `max-tiles-per-buffer` tiles.
    pub over_tile_budget: AtomicU64,
    /// Tracks the built-in association follows now, over all sources.
    pub tracks: AtomicU64,
}

/// The crop region in fractions of the frame, so it stays put across a resolution change.
#[derive(Debug, Clone, Copy)]
struct Region {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

impl Region {
    fn from_pixels(p: PixelRect, width: u32, height: u32) -> Region {
        let (w, h) = (width as f64, height as f64);
        Region {
            x0: p.x as f64 / w,
            y0: p.y as f64 / h,
            x1: (p.x + p.width) as f64 / w,
            y1: (p.y + p.height) as f64 / h,
        }
    }

    fn to_pixels(self, width: u32, height: u32) -> Option<PixelRect> {
        let (w, h) = (width as f64, height as f64);
        Rect {
            x: (self.x0 * w) as f32,
            y: (self.y0 * h) as f32,
            width: ((self.x1 - self.x0) * w) as f32,
            height: ((self.y1 - self.y0) * h) as f32,
        }
        .to_pixels(width, height)
    }
}

#[derive(Debug)]
struct Collecting {
    clip: Clip,
    region: Region,
    crops: Vec<PixelRect>,
    /// Frames seen since the trigger, the trigger frame being 0.
    since_trigger: u64,
    /// Zones its triggering detections stood in, in order of entry.
    zones: Vec<usize>,
}

#[derive(Debug)]
enum Phase {
    Idle,
    Collecting(Box<Collecting>),
    Cooldown { remaining: u32 },
}

/// An object's identity within its source: the detector's id, or the built-in association's
/// (kept apart so the two never collide).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Given(u64),
    Builtin(u64),
}

impl Key {
    fn id(self) -> u64 {
        match self {
            Key::Given(id) | Key::Builtin(id) => id,
        }
    }
}

/// How much of a new target box enters the smoothed crop on each frame the object is seen.
const CROP_SMOOTHING: f64 = 0.5;

#[derive(Debug)]
struct ObjectClip {
    key: Key,
    clip: Clip,
    crops: Vec<PixelRect>,
    boxes: Vec<Option<PixelRect>>,
    /// The timestamp of each real tile.
    tile_pts: Vec<Option<u64>>,
    since_trigger: u64,
    /// Frames in a row the object was not seen.
    missing: u32,
    /// The smoothed crop target, in pixels of a `dims` frame (may reach outside it).
    smoothed: Bounds,
    dims: (u32, u32),
}

/// The per-object state of one source.
#[derive(Debug)]
struct Objects {
    frame: u64,
    tracker: Tracker,
    clips: Vec<ObjectClip>,
    /// Per object, the last frame of its cooldown.
    quiet_until: HashMap<Key, u64>,
    /// Objects answered `dropped` for `max-clips-per-source`: not answered again until a clip
    /// of the source ends (or they leave), so a crowd does not make a verdict per frame.
    refused: HashSet<Key>,
    /// Where each object was last seen and the zones it entered; its loss is reported once.
    memory: Memory<Key>,
}

/// A detection that may belong to an object's clip.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    key: Key,
    index: usize,
    bounds: Bounds,
    confidence: f64,
}

/// Fills one tile from a region of the current frame.
pub type SampleFn<'a> = dyn FnMut(PixelRect, &mut [u8]) -> Result<(), String> + 'a;

/// Per-frame working space of the object path, kept so frames allocate nothing.
#[derive(Debug, Default)]
struct Scratch {
    /// Indices of the frame's eligible detections (then of the kept ones).
    eligible: Vec<usize>,
    /// Indices of the kept detections the built-in association follows.
    untracked: Vec<usize>,
    ids: Vec<Option<u64>>,
    cands: Vec<Candidate>,
    lost: Vec<Key>,
}

/// Clip assembly for every source of one element.
#[derive(Debug)]
pub struct ClipAssembler {
    config: ClipConfig,
    tracks: TrackConfig,
    limits: Limits,
    sources: HashMap<u32, Phase>,
    objects: HashMap<u32, Objects>,
    counters: Arc<ClipCounters>,
    /// Tiles the current buffer may still sample.
    tiles_left: u32,
    /// The caller marks buffers ([`ClipAssembler::begin_buffer`]); otherwise each push is one.
    marks_buffers: bool,
    /// Sources (`clip-per=source`) whose trigger was answered `dropped` for `max-clips`: not
    /// answered again until a clip ends, so a refused camera does not make a verdict a frame.
    refused_sources: HashSet<u32>,
    scratch: Scratch,
    /// Where detections may trigger, and the zones objects enter.
    zones: Rule,
}

fn labels_of<'a>(detections: impl IntoIterator<Item = &'a Detection>) -> Vec<LabelSeen> {
    let mut seen: Vec<LabelSeen> = Vec::new();
    for d in detections {
        if !d.confidence.is_finite() {
            continue;
        }
        if let Some(s) = seen.iter_mut().find(|s| s.label == d.label) {
            s.confidence = s.confidence.max(d.confidence);
            continue;
        }
        let entry = LabelSeen {
            label: d.label.clone(),
            confidence: d.confidence,
        };
        if seen.len() < MAX_LABELS_PER_TILE {
            seen.push(entry);
        } else if let Some(least) = seen
            .iter_mut()
            .min_by(|a, b| a.confidence.total_cmp(&b.confidence))
            .filter(|l| l.confidence < d.confidence)
        {
            *least = entry;
        }
    }
    seen
}

/// Why a clip was answered `dropped` for its buffer's tile budget.
fn tile_budget_reason(limits: &Limits, source: u32) -> String {
    format!(
        "max-tiles-per-buffer={} tiles were already sampled from this buffer (source {source})",
        limits.max_tiles_per_buffer
    )
}

/// Why a trigger was answered `dropped` for `max-clips`.
fn max_clips_reason(limits: &Limits, source: u32) -> String {
    format!(
        "max-clips={} clips are collecting over all sources (source {source})",
        limits.max_clips
    )
}

/// `b` clamped to a `width`×`height` frame (so huge boxes stay finite through what follows).
fn clamp_to_frame(b: &Bounds, width: u32, height: u32) -> Bounds {
    let (w, h) = (width as f64, height as f64);
    Bounds {
        x0: b.x0.clamp(0.0, w),
        y0: b.y0.clamp(0.0, h),
        x1: b.x1.clamp(0.0, w),
        y1: b.y1.clamp(0.0, h),
    }
}

/// The crop an object's box asks for: clamped to the frame, widened by the margin, grown to
/// the tile's aspect ratio around its centre.
fn crop_target(b: &Bounds, margin: f32, aspect: f64, width: u32, height: u32) -> Bounds {
    let t = clamp_to_frame(b, width, height).widen(margin.clamp(0.0, 10.0));
    let (cx, cy) = ((t.x0 + t.x1) / 2.0, (t.y0 + t.y1) / 2.0);
    let (mut w, mut h) = ((t.x1 - t.x0).max(1.0), (t.y1 - t.y0).max(1.0));
    if w / h < aspect {
        w = h * aspect;
    } else {
        h = w / aspect;
    }
    Bounds {
        x0: cx - w / 2.0,
        y0: cy - h / 2.0,
        x1: cx + w / 2.0,
        y1: cy + h / 2.0,
    }
}

/// `b` made to fit the frame: shrunk (keeping its aspect ratio) when larger, then moved inside.
fn fit_frame(b: &Bounds, width: u32, height: u32) -> Option<PixelRect> {
    let (fw, fh) = (width as f64, height as f64);
    let (mut w, mut h) = (b.x1 - b.x0, b.y1 - b.y0);
    if !(w > 0.0 && h > 0.0) {
        return None;
    }
    if w > fw {
        h *= fw / w;
        w = fw;
    }
    if h > fh {
        w *= fh / h;
        h = fh;
    }
    let (cx, cy) = ((b.x0 + b.x1) / 2.0, (b.y0 + b.y1) / 2.0);
    let x0 = (cx - w / 2.0).clamp(0.0, fw - w);
    let y0 = (cy - h / 2.0).clamp(0.0, fh - h);
    Bounds {
        x0,
        y0,
        x1: x0 + w,
        y1: y0 + h,
    }
    .to_pixels(width, height)
}

/// Where the object of box `b` stands, normalised by the frame's size.
fn foot(b: &Bounds, width: u32, height: u32) -> Option<(f64, f64)> {
    foot_point(b.x0, b.y0, b.x1 - b.x0, b.y1 - b.y0, width, height)
}

fn centre_inside(d: &Detection, crop: &PixelRect) -> bool {
    let b = Bounds::of(&d.rect);
    let (cx, cy) = ((b.x0 + b.x1) / 2.0, (b.y0 + b.y1) / 2.0);
    cx >= crop.x as f64
        && cx <= (crop.x + crop.width) as f64
        && cy >= crop.y as f64
        && cy <= (crop.y + crop.height) as f64
}

impl ObjectClip {
    fn observe(&mut self, b: &Bounds, config: &ClipConfig, width: u32, height: u32) {
        if self.dims != (width, height) {
            let (sx, sy) = (
                width as f64 / self.dims.0.max(1) as f64,
                height as f64 / self.dims.1.max(1) as f64,
            );
            let s = &mut self.smoothed;
            *s = Bounds {
                x0: s.x0 * sx,
                y0: s.y0 * sy,
                x1: s.x1 * sx,
                y1: s.y1 * sy,
            };
            self.dims = (width, height);
        }
        let aspect = config.tile_width as f64 / config.tile_height.max(1) as f64;
        let t = crop_target(b, config.roi_margin, aspect, width, height);
        let s = &mut self.smoothed;
        let mix = |old: f64, new: f64| old + CROP_SMOOTHING * (new - old);
        *s = Bounds {
            x0: mix(s.x0, t.x0),
            y0: mix(s.y0, t.y0),
            x1: mix(s.x1, t.x1),
            y1: mix(s.y1, t.y1),
        };
    }

    fn crop(&self, config: &ClipConfig, width: u32, height: u32) -> Option<PixelRect> {
        match config.crop {
            CropMode::Full => (width > 0 && height > 0).then(|| PixelRect::full(width, height)),
            CropMode::Roi => {
                let (sx, sy) = (
                    width as f64 / self.dims.0.max(1) as f64,
                    height as f64 / self.dims.1.max(1) as f64,
                );
                let s = &self.smoothed;
                fit_frame(
                    &Bounds {
                        x0: s.x0 * sx,
                        y0: s.y0 * sy,
                        x1: s.x1 * sx,
                        y1: s.y1 * sy,
                    },
                    width,
                    height,
                )
            }
        }
    }

    /// Cuts the tiles sampled after the object was last seen: once it is lost, they most
    /// likely show where it was, not it.
    fn trim_to_last_seen(&mut self) {
        let keep = self
            .boxes
            .iter()
            .rposition(Option::is_some)
            .map_or(0, |i| i + 1);
        if keep == self.boxes.len() {
            return;
        }
        let tile = self.clip.tile_bytes();
        self.clip.pixels.truncate(keep * tile);
        self.clip.frame_labels.truncate(keep);
        self.crops.truncate(keep);
        self.boxes.truncate(keep);
        self.clip.frames = keep as u32;
        self.clip.real_frames = keep as u32;
        self.clip.end_pts = self.tile_pts.get(keep.wrapping_sub(1)).copied().flatten();
        self.tile_pts.truncate(keep);
    }

    fn collected(self) -> Collected {
        Collected {
            clip: self.clip,
            object_id: Some(self.key.id()),
            crops: self.crops,
            boxes: self.boxes,
            zones: Vec::new(),
        }
    }
}

impl ClipAssembler {
    /// An assembler cutting one clip at a time per source (`clip-per=source`).
    pub fn new(config: ClipConfig) -> Self {
        Self::with_tracks(config, TrackConfig::default())
    }

    pub fn with_tracks(config: ClipConfig, tracks: TrackConfig) -> Self {
        let limits = Limits::default();
        ClipAssembler {
            config,
            tracks,
            limits,
            sources: HashMap::new(),
            objects: HashMap::new(),
            counters: Arc::default(),
            tiles_left: limits.max_tiles_per_buffer,
            marks_buffers: false,
            refused_sources: HashSet::new(),
            scratch: Scratch::default(),
            zones: Rule::default(),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Takes new bounds, at once (a lower `max-clips` refuses triggers until enough clips
    /// have ended; clips already collecting go on).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Takes the zones and where objects may trigger, at once. Zones are known by their
    /// index: objects remember those they entered by it, so give the same zones in the same
    /// order while running (the element changes them only at a start).
    pub fn set_zones(&mut self, zones: Rule) {
        self.zones = zones;
    }

    pub fn zones(&self) -> &Rule {
        &self.zones
    }

    /// The names of the zones of `indices`.
    fn zone_names(&self, indices: &[usize]) -> Vec<String> {
        indices
            .iter()
            .map(|&i| self.zones.name(i).to_string())
            .collect()
    }

    /// An object's clip as collected, with the zones its object entered.
    fn with_zones(zones: &Rule, memory: &Memory<Key>, clip: ObjectClip) -> Collected {
        let zones = memory
            .get(&clip.key)
            .map(|s| s.zones.iter().map(|&i| zones.name(i).to_string()).collect())
            .unwrap_or_default();
        Collected {
            zones,
            ..clip.collected()
        }
    }

    /// What `source` remembers of object `object_id` (`clip-per=object`): where it was last
    /// seen and the zones it entered (indices; [`Rule::name`] names them).
    pub fn object(&self, source: u32, object_id: u64) -> Option<&tracks::Seen> {
        let o = self.objects.get(&source)?;
        o.memory
            .get(&Key::Given(object_id))
            .or_else(|| o.memory.get(&Key::Builtin(object_id)))
    }

    /// Starts a buffer: its frames share one `max-tiles-per-buffer` budget. A caller that
    /// never calls this gets one budget per [`ClipAssembler::push`].
    pub fn begin_buffer(&mut self) {
        self.marks_buffers = true;
        self.tiles_left = self.limits.max_tiles_per_buffer;
    }

    pub fn config(&self) -> &ClipConfig {
        &self.config
    }

    pub fn track_config(&self) -> &TrackConfig {
        &self.tracks
    }

    /// The counters, shared: they stay readable without the assembler.
    pub fn counters(&self) -> Arc<ClipCounters> {
        self.counters.clone()
    }

    /// Takes new settings while running. The clip shape (`temporal_size`, tile size) stays
    /// as it was: clips being collected were allocated for it.
    pub fn set_config(&mut self, config: ClipConfig) {
        self.config = ClipConfig {
            temporal_size: self.config.temporal_size,
            tile_width: self.config.tile_width,
            tile_height: self.config.tile_height,
            ..config
        };
    }

    /// Takes new object settings while running; `clip-per` and `tracking` stay as they were
    /// (the clips and tracks being followed were made under them).
    pub fn set_track_config(&mut self, tracks: TrackConfig) {
        self.tracks = TrackConfig {
            clip_per: self.tracks.clip_per,
            tracking: self.tracks.tracking,
            ..tracks
        };
        for o in self.objects.values_mut() {
            o.tracker.set_timeout(self.tracks.track_timeout);
        }
    }

    /// Clips being collected, over all sources.
    pub fn collecting(&self) -> usize {
        self.sources
            .values()
            .filter(|p| matches!(p, Phase::Collecting(_)))
            .count()
            + self.objects.values().map(|o| o.clips.len()).sum::<usize>()
    }

    fn update_counters(&self) {
        let n = self.collecting() as u64;
        let c = &self.counters;
        c.collecting.store(n, Ordering::Relaxed);
        c.most_collecting.fetch_max(n, Ordering::Relaxed);
        let clip_bytes = self.config.temporal_size as u64
            * self.config.tile_width as u64
            * self.config.tile_height as u64
            * 3;
        c.collecting_bytes
            .store(n.saturating_mul(clip_bytes), Ordering::Relaxed);
        let tracks: usize = self.objects.values().map(|o| o.tracker.len()).sum();
        c.tracks.store(tracks as u64, Ordering::Relaxed);
    }

    /// The triggering detections of a frame: wanted label, confident enough, a usable box.
    fn trigger<'a>(
        &self,
        detections: &'a [Detection],
        width: u32,
        height: u32,
    ) -> Option<(Bounds, &'a Detection)> {
        let mut union: Option<Bounds> = None;
        let mut best: Option<&Detection> = None;
        for d in detections {
            if !self.confident(d) || !self.config.trigger_labels.contains(&d.label) {
                continue;
            }
            if d.rect.to_pixels(width, height).is_none() {
                continue;
            }
            let b = Bounds::of(&d.rect);
            if !self.zones.allows(foot(&b, width, height)) {
                continue;
            }
            union = Some(union.map_or(b, |u| u.union(&b)));
            if best.is_none_or(|b| d.confidence > b.confidence) {
                best = Some(d);
            }
        }
        Some((union?, best?))
    }

    fn confident(&self, d: &Detection) -> bool {
        // A NaN confidence compares as nothing, so it never triggers.
        d.confidence
            .partial_cmp(&self.config.min_confidence)
            .is_some_and(|o| o.is_ge())
    }

    fn empty_clip(
        &self,
        id: u64,
        source: SourceFrame,
        region: PixelRect,
        best: &Detection,
        pts: Option<u64>,
    ) -> Clip {
        let c = &self.config;
        let tile = c.tile_width as usize * c.tile_height as usize * 3;
        Clip {
            request_id: id,
            source,
            width: c.tile_width,
            height: c.tile_height,
            frames: 0,
            real_frames: 0,
            // Grown a tile at a time as frames are sampled: the trigger frame does not
            // pay for zeroing the whole clip, and untouched pages stay unmapped.
            pixels: Vec::with_capacity(tile * c.temporal_size as usize),
            frame_labels: Vec::with_capacity(c.temporal_size as usize),
            region,
            trigger_label: best.label.clone(),
            trigger_confidence: best.confidence,
            start_pts: pts,
            end_pts: pts,
        }
    }

    /// Feeds one frame of `source` (`clip-per=source` only: at most one clip starts, ends or
    /// fails per frame). See [`ClipAssembler::push`].
    #[allow(clippy::too_many_arguments)]
    pub fn push_frame(
        &mut self,
        source: SourceFrame,
        detections: &[Detection],
        width: u32,
        height: u32,
        pts: Option<u64>,
        next_id: &mut dyn FnMut() -> u64,
        sample: &mut SampleFn<'_>,
    ) -> FrameOutcome {
        debug_assert_eq!(self.tracks.clip_per, ClipPer::Source);
        let e = self.push(source, detections, width, height, pts, next_id, sample);
        FrameOutcome {
            started: e.started.first().copied(),
            finished: e.finished.into_iter().next().map(|c| c.clip),
            failed: e.failed.into_iter().next(),
        }
    }

    /// Feeds one frame of `source`. `next_id` is called for the id of each new request (a
    /// clip, or a trigger answered `dropped`); `sample` fills a tile
    /// (`tile_width*tile_height*3` bytes) from a region of the current frame.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        source: SourceFrame,
        detections: &[Detection],
        width: u32,
        height: u32,
        pts: Option<u64>,
        next_id: &mut dyn FnMut() -> u64,
        sample: &mut SampleFn<'_>,
    ) -> FrameEvents {
        if !self.marks_buffers {
            self.tiles_left = self.limits.max_tiles_per_buffer;
        }
        let events = match self.tracks.clip_per {
            ClipPer::Source => {
                self.push_source(source, detections, width, height, pts, next_id, sample)
            }
            ClipPer::Object => {
                self.push_objects(source, detections, width, height, pts, next_id, sample)
            }
        };
        self.update_counters();
        events
    }

    #[allow(clippy::too_many_arguments)]
    fn push_source(
        &mut self,
        source: SourceFrame,
        detections: &[Detection],
        width: u32,
        height: u32,
        pts: Option<u64>,
        next_id: &mut dyn FnMut() -> u64,
        sample: &mut SampleFn<'_>,
    ) -> FrameEvents {
        let mut events = FrameEvents::default();
        let idle = match self.sources.get_mut(&source.source_id) {
            Some(Phase::Cooldown { remaining }) => {
                if *remaining > 1 {
                    *remaining -= 1;
                } else {
                    self.sources.insert(source.source_id, Phase::Idle);
                }
                return events;
            }
            Some(Phase::Collecting(_)) => false,
            Some(Phase::Idle) | None => true,
        };
        if idle {
            let Some((rect, best)) = self.trigger(detections, width, height) else {
                return events;
            };
            let pixels = match self.config.crop {
                CropMode::Full => PixelRect::full(width, height),
                CropMode::Roi => {
                    match rect.widen(self.config.roi_margin).to_pixels(width, height) {
                        Some(p) => p,
                        None => return events,
                    }
                }
            };
            if self.collecting() >= self.limits.max_clips as usize {
                if self.refused_sources.insert(source.source_id) {
                    self.counters.over_max_clips.fetch_add(1, Ordering::Relaxed);
                    let clip = self.empty_clip(next_id(), source, pixels, best, pts);
                    events.dropped.push((
                        Collected {
                            clip,
                            object_id: None,
                            crops: vec![pixels],
                            boxes: vec![None],
                            zones: Vec::new(),
                        },
                        max_clips_reason(&self.limits, source.source_id),
                    ));
                }
                return events;
            }
            // The trigger frame samples at once: without a tile left, the trigger waits for
            // the next buffer (counted; no request is opened).
            if self.tiles_left == 0 {
                self.counters
                    .over_tile_budget
                    .fetch_add(1, Ordering::Relaxed);
                return events;
            }
            let id = next_id();
            events.started.push(id);
            events.opened.push(Opened {
                request_id: id,
                object_id: None,
                trigger_label: best.label.clone(),
                start_pts: pts,
                bbox: rect.to_pixels(width, height),
            });
            let clip = self.empty_clip(id, source, pixels, best, pts);
            let region = Region::from_pixels(pixels, width, height);
            self.sources.insert(
                source.source_id,
                Phase::Collecting(Box::new(Collecting {
                    clip,
                    region,
                    crops: Vec::with_capacity(self.config.temporal_size as usize),
                    since_trigger: 0,
                    zones: Vec::new(),
                })),
            );
        }
        let Some(phase) = self.sources.get_mut(&source.source_id) else {
            return events;
        };
        let Phase::Collecting(c) = phase else {
            return events;
        };
        if !idle {
            c.since_trigger += 1;
        }
        if !self.zones.zones.is_empty() {
            for d in detections {
                if !self.config.trigger_labels.contains(&d.label)
                    || !d
                        .confidence
                        .partial_cmp(&self.config.min_confidence)
                        .is_some_and(|o| o.is_ge())
                {
                    continue;
                }
                for z in self
                    .zones
                    .holding(foot(&Bounds::of(&d.rect), width, height))
                {
                    if !c.zones.contains(&z) {
                        c.zones.push(z);
                    }
                }
            }
        }
        if c.since_trigger % self.config.frame_interval.max(1) as u64 != 0 {
            return events;
        }
        if self.tiles_left == 0 {
            let Phase::Collecting(c) = std::mem::replace(phase, Phase::Idle) else {
                unreachable!()
            };
            self.counters
                .over_tile_budget
                .fetch_add(1, Ordering::Relaxed);
            self.refused_sources.clear();
            let zones = self.zone_names(&c.zones);
            events.dropped.push((
                Collected {
                    clip: c.clip,
                    object_id: None,
                    boxes: vec![None; c.crops.len()],
                    crops: c.crops,
                    zones,
                },
                tile_budget_reason(&self.limits, source.source_id),
            ));
            return events;
        }
        self.tiles_left -= 1;
        let tile = c.clip.tile_bytes();
        let i = c.clip.frames as usize;
        c.clip.pixels.resize((i + 1) * tile, 0);
        let region = c.region.to_pixels(width, height);
        let result = match region {
            Some(region) => sample(region, &mut c.clip.pixels[i * tile..]),
            None => Err(format!(
                "the crop region does not fit a {width}x{height} frame"
            )),
        };
        if let Err(e) = result {
            events.failed.push((c.clip.request_id, e));
            *phase = Phase::Idle;
            self.refused_sources.clear();
            return events;
        }
        c.crops.extend(region);
        c.clip.frames += 1;
        c.clip.real_frames += 1;
        c.clip.frame_labels.push(labels_of(detections));
        c.clip.end_pts = pts.or(c.clip.end_pts);
        if c.clip.frames >= self.config.temporal_size {
            let Phase::Collecting(c) = std::mem::replace(phase, Phase::Idle) else {
                unreachable!()
            };
            let zones = c
                .zones
                .iter()
                .map(|&i| self.zones.name(i).to_string())
                .collect();
            events.finished.push(Collected {
                clip: c.clip,
                object_id: None,
                boxes: vec![None; c.crops.len()],
                crops: c.crops,
                zones,
            });
            self.refused_sources.clear();
            if self.config.cooldown > 0 {
                *phase = Phase::Cooldown {
                    remaining: self.config.cooldown,
                };
            }
        }
        events
    }

    /// The detections of a frame that can belong to an object's clip (a trigger label, a
    /// usable box, a finite confidence, an id where `tracking=ids`): at most `limit` of them,
    /// the most confident, with their object keys, most confident first and one per object,
    /// into `s.cands`. Returns how many eligible detections the limit left out.
    #[allow(clippy::too_many_arguments)]
    fn candidates(
        config: &ClipConfig,
        tracking: Tracking,
        limit: usize,
        tracker: &mut Tracker,
        detections: &[Detection],
        width: u32,
        height: u32,
        s: &mut Scratch,
    ) -> usize {
        s.eligible.clear();
        s.eligible.extend(
            detections
                .iter()
                .enumerate()
                .filter(|(_, d)| {
                    d.confidence.is_finite()
                        && !(tracking == Tracking::Ids && d.object_id.is_none())
                        && config.trigger_labels.contains(&d.label)
                        && d.rect.to_pixels(width, height).is_some()
                })
                .map(|(i, _)| i),
        );
        let capped = s.eligible.len().saturating_sub(limit);
        if capped > 0 {
            // The `limit` most confident in O(n), then back in frame order, so that the
            // association sees them as it would have without the cap.
            if limit > 0 {
                s.eligible.select_nth_unstable_by(limit - 1, |a, b| {
                    detections[*b]
                        .confidence
                        .total_cmp(&detections[*a].confidence)
                        .then(a.cmp(b))
                });
            }
            s.eligible.truncate(limit);
            s.eligible.sort_unstable();
        }
        s.cands.clear();
        s.untracked.clear();
        for &index in &s.eligible {
            let d = &detections[index];
            match (tracking, d.object_id) {
                (Tracking::Auto | Tracking::Ids, Some(id)) => s.cands.push(Candidate {
                    key: Key::Given(id),
                    index,
                    bounds: Bounds::of(&d.rect),
                    confidence: d.confidence,
                }),
                _ => s.untracked.push(index),
            }
        }
        // Fed every frame, with or without detections, so unseen tracks age.
        let untracked = &s.untracked;
        tracker.update_with(
            untracked.len(),
            |k| {
                let d = &detections[untracked[k]];
                (d.label.as_str(), Bounds::of(&d.rect))
            },
            &mut s.ids,
        );
        for (&index, id) in s.untracked.iter().zip(&s.ids) {
            if let Some(id) = *id {
                s.cands.push(Candidate {
                    key: Key::Builtin(id),
                    index,
                    bounds: Bounds::of(&detections[index].rect),
                    confidence: detections[index].confidence,
                });
            }
        }
        // (confidence, index) is unique: the unstable sort repeats across runs.
        s.cands.sort_unstable_by(|a, b| {
            b.confidence
                .total_cmp(&a.confidence)
                .then(a.index.cmp(&b.index))
        });
        // One per object, its most confident detection: at most `limit` candidates, so a scan
        // of those kept instead of a set.
        let mut kept = 0;
        for i in 0..s.cands.len() {
            let c = s.cands[i];
            if !s.cands[..kept].iter().any(|k| k.key == c.key) {
                s.cands[kept] = c;
                kept += 1;
            }
        }
        s.cands.truncate(kept);
        capped
    }

    #[allow(clippy::too_many_arguments)]
    fn push_objects(
        &mut self,
        source: SourceFrame,
        detections: &[Detection],
        width: u32,
        height: u32,
        pts: Option<u64>,
        next_id: &mut dyn FnMut() -> u64,
        sample: &mut SampleFn<'_>,
    ) -> FrameEvents {
        let mut events = FrameEvents::default();
        let timeout = self.tracks.track_timeout;
        let mut o = self
            .objects
            .remove(&source.source_id)
            .unwrap_or_else(|| Objects {
                frame: 0,
                tracker: Tracker::new(timeout, tracks::DEFAULT_MIN_IOU),
                clips: Vec::new(),
                quiet_until: HashMap::new(),
                refused: HashSet::new(),
                memory: Memory::default(),
            });
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut tiles_left = self.tiles_left;
        // Clips of the other sources (this one's are out of the map while it is fed).
        let others = self.collecting();
        o.frame += 1;
        let frame = o.frame;
        o.quiet_until.retain(|_, until| *until >= frame);
        let config = &self.config;
        let capped = Self::candidates(
            config,
            self.tracks.tracking,
            self.limits.max_detections as usize,
            &mut o.tracker,
            detections,
            width,
            height,
            &mut scratch,
        );
        if capped > 0 {
            self.counters
                .detections_capped
                .fetch_add(capped as u64, Ordering::Relaxed);
        }
        let cands = &scratch.cands;
        o.refused.retain(|k| cands.iter().any(|c| c.key == *k));
        for c in cands {
            let bbox = detections[c.index].rect.to_pixels(width, height);
            let stands = self.zones.holding(foot(&c.bounds, width, height));
            o.memory.see(c.key, frame, bbox, stands);
        }
        events.assigned = cands
            .iter()
            .filter(|c| matches!(c.key, Key::Builtin(_)) && detections[c.index].object_id.is_none())
            .map(|c| (c.index, c.key.id()))
            .collect();

        // Follow: every collecting clip looks for its object.
        for clip in &mut o.clips {
            clip.since_trigger += 1;
            match cands.iter().find(|c| c.key == clip.key) {
                Some(c) => {
                    clip.missing = 0;
                    clip.observe(&c.bounds, config, width, height);
                }
                None => clip.missing = clip.missing.saturating_add(1),
            }
        }

        // Lost objects end their clips before triggers, so their slots are free again.
        let mut i = 0;
        while i < o.clips.len() {
            if o.clips[i].missing >= timeout.max(1) {
                let clip = o.clips.remove(i);
                self.end_lost(&mut o, clip, frame, &mut events);
            } else {
                i += 1;
            }
        }

        // Triggers: objects without a clip, out of cooldown, confident enough. A new clip
        // samples its first tile on this frame: it opens only while the buffer's budget has a
        // tile for it after the clips already due.
        let interval = config.frame_interval.max(1) as u64;
        let due = o
            .clips
            .iter()
            .filter(|c| c.since_trigger.is_multiple_of(interval))
            .count();
        let aspect = config.tile_width as f64 / config.tile_height.max(1) as f64;
        for c in cands {
            if !self.confident(&detections[c.index])
                || !self.zones.allows(foot(&c.bounds, width, height))
                || o.clips.iter().any(|k| k.key == c.key)
                || o.quiet_until.contains_key(&c.key)
                || o.refused.contains(&c.key)
            {
                continue;
            }
            let target = crop_target(&c.bounds, config.roi_margin, aspect, width, height);
            let region = match config.crop {
                CropMode::Full => Some(PixelRect::full(width, height)),
                CropMode::Roi => fit_frame(&target, width, height),
            };
            let Some(region) = region else { continue };
            let d = &detections[c.index];
            // The bounds on clips first: a refusal is answered once. The tile budget after:
            // a trigger it stops waits for the next buffer (counted; no request is opened).
            let over_clips = o.clips.len() >= self.tracks.max_clips_per_source as usize
                || others + o.clips.len() >= self.limits.max_clips as usize;
            if !over_clips && tiles_left as usize <= due + events.started.len() {
                self.counters
                    .over_tile_budget
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let refusal = if o.clips.len() >= self.tracks.max_clips_per_source as usize {
                self.counters.overflowed.fetch_add(1, Ordering::Relaxed);
                Some(format!(
                    "max-clips-per-source={} clips of source {} are collecting",
                    self.tracks.max_clips_per_source, source.source_id
                ))
            } else if others + o.clips.len() >= self.limits.max_clips as usize {
                self.counters.over_max_clips.fetch_add(1, Ordering::Relaxed);
                Some(max_clips_reason(&self.limits, source.source_id))
            } else {
                None
            };
            let id = next_id();
            let clip = self.empty_clip(id, source, region, d, pts);
            if let Some(reason) = refusal {
                o.refused.insert(c.key);
                events.dropped.push((
                    Collected {
                        clip,
                        object_id: Some(c.key.id()),
                        crops: vec![region],
                        boxes: vec![Bounds::of(&d.rect).to_pixels(width, height)],
                        zones: Vec::new(),
                    },
                    reason,
                ));
                continue;
            }
            events.started.push(id);
            events.opened.push(Opened {
                request_id: id,
                object_id: Some(c.key.id()),
                trigger_label: d.label.clone(),
                start_pts: pts,
                bbox: d.rect.to_pixels(width, height),
            });
            o.clips.push(ObjectClip {
                key: c.key,
                clip,
                crops: Vec::with_capacity(config.temporal_size as usize),
                boxes: Vec::with_capacity(config.temporal_size as usize),
                tile_pts: Vec::with_capacity(config.temporal_size as usize),
                since_trigger: 0,
                missing: 0,
                smoothed: target,
                dims: (width, height),
            });
        }

        // Sample every clip due on this frame, oldest first, while the buffer has tiles.
        let mut i = 0;
        while i < o.clips.len() {
            let clip = &mut o.clips[i];
            if !clip.since_trigger.is_multiple_of(interval) {
                i += 1;
                continue;
            }
            if tiles_left == 0 {
                let clip = o.clips.remove(i);
                self.counters
                    .over_tile_budget
                    .fetch_add(1, Ordering::Relaxed);
                o.refused.clear();
                events.dropped.push((
                    Self::with_zones(&self.zones, &o.memory, clip),
                    tile_budget_reason(&self.limits, source.source_id),
                ));
                continue;
            }
            tiles_left -= 1;
            let tile = clip.clip.tile_bytes();
            let n = clip.clip.frames as usize;
            clip.clip.pixels.resize((n + 1) * tile, 0);
            let result = match clip.crop(config, width, height) {
                Some(crop) => sample(crop, &mut clip.clip.pixels[n * tile..]).map(|()| crop),
                None => Err(format!("the crop does not fit a {width}x{height} frame")),
            };
            let crop = match result {
                Ok(crop) => crop,
                Err(e) => {
                    events.failed.push((clip.clip.request_id, e));
                    o.clips.remove(i);
                    o.refused.clear();
                    continue;
                }
            };
            let own = cands.iter().find(|c| c.key == clip.key).map(|c| c.index);
            let labels = labels_of(
                detections
                    .iter()
                    .enumerate()
                    .filter(|(j, d)| Some(*j) == own || centre_inside(d, &crop))
                    .map(|(_, d)| d),
            );
            clip.crops.push(crop);
            clip.boxes
                .push(own.and_then(|j| detections[j].rect.to_pixels(width, height)));
            clip.clip.frames += 1;
            clip.clip.real_frames += 1;
            clip.clip.frame_labels.push(labels);
            clip.clip.end_pts = pts.or(clip.clip.end_pts);
            clip.tile_pts.push(clip.clip.end_pts);
            if clip.clip.frames >= config.temporal_size {
                let done = o.clips.remove(i);
                if config.cooldown > 0 {
                    o.quiet_until
                        .insert(done.key, frame + config.cooldown as u64);
                }
                o.refused.clear();
                events
                    .finished
                    .push(Self::with_zones(&self.zones, &o.memory, done));
                continue;
            }
            i += 1;
        }
        // Objects unseen for `track-timeout` frames are lost, once (after their clips ended
        // above, which took the zones they entered).
        scratch.lost.clear();
        o.memory.forget_unseen(frame, timeout, &mut scratch.lost);
        events.lost.extend(scratch.lost.iter().map(|k| k.id()));
        self.tiles_left = tiles_left;
        self.scratch = scratch;
        self.objects.insert(source.source_id, o);
        events
    }

    /// Ends a clip whose object was lost: completed when it has `min-frames` real tiles,
    /// dropped otherwise. The object's cooldown starts either way.
    fn end_lost(
        &self,
        o: &mut Objects,
        mut clip: ObjectClip,
        frame: u64,
        events: &mut FrameEvents,
    ) {
        if self.config.cooldown > 0 {
            o.quiet_until
                .insert(clip.key, frame + self.config.cooldown as u64);
        }
        o.refused.clear();
        clip.trim_to_last_seen();
        let min = self.tracks.min_frames.max(1);
        if clip.clip.real_frames >= min {
            clip.clip.complete(self.config.temporal_size);
            self.counters.lost_completed.fetch_add(1, Ordering::Relaxed);
            events
                .finished
                .push(Self::with_zones(&self.zones, &o.memory, clip));
        } else {
            self.counters.lost_dropped.fetch_add(1, Ordering::Relaxed);
            let reason = format!(
                "object {} lost for track-timeout={} frames and seen on {} of {} tiles \
                 (min-frames={})",
                clip.key.id(),
                self.tracks.track_timeout,
                clip.clip.real_frames,
                self.config.temporal_size,
                min
            );
            events
                .dropped
                .push((Self::with_zones(&self.zones, &o.memory, clip), reason));
        }
    }

    /// Ends every clip being collected, for EOS: clips with at least one real tile are
    /// completed by repeating their last tile.
    pub fn finish_partial(&mut self) -> Vec<Collected> {
        let mut out = Vec::new();
        for phase in self.sources.values_mut() {
            if let Phase::Collecting(_) = phase {
                let Phase::Collecting(c) = std::mem::replace(phase, Phase::Idle) else {
                    unreachable!()
                };
                let mut clip = c.clip;
                clip.complete(self.config.temporal_size);
                out.push(Collected {
                    clip,
                    object_id: None,
                    boxes: vec![None; c.crops.len()],
                    crops: c.crops,
                    zones: c.zones.iter().map(|&i| self.zones.name(i).into()).collect(),
                });
            }
        }
        for o in self.objects.values_mut() {
            for mut c in o.clips.drain(..) {
                c.clip.complete(self.config.temporal_size);
                out.push(Self::with_zones(&self.zones, &o.memory, c));
            }
        }
        out.sort_by_key(|c| c.clip.request_id);
        self.refused_sources.clear();
        self.update_counters();
        out
    }

    /// Ends the clips of one source whose stream ended (DeepStream's per-stream EOS) as
    /// [`ClipAssembler::finish_partial`] ends all at EOS, and forgets the source (its tracks
    /// and cooldowns): a camera that comes back, or another given its id, starts afresh.
    pub fn finish_source(&mut self, source_id: u32) -> Vec<Collected> {
        let mut out = Vec::new();
        if let Some(Phase::Collecting(c)) = self.sources.remove(&source_id) {
            let mut clip = c.clip;
            clip.complete(self.config.temporal_size);
            out.push(Collected {
                clip,
                object_id: None,
                boxes: vec![None; c.crops.len()],
                crops: c.crops,
                zones: self.zone_names(&c.zones),
            });
        }
        if let Some(objects) = self.objects.remove(&source_id) {
            for mut c in objects.clips {
                c.clip.complete(self.config.temporal_size);
                out.push(Self::with_zones(&self.zones, &objects.memory, c));
            }
        }
        out.sort_by_key(|c| c.clip.request_id);
        self.update_counters();
        out
    }

    /// Abandons every clip being collected (flush, stop), returning their ids. Tracks and
    /// cooldowns are forgotten too, but not the built-in ids already given.
    pub fn abandon_all(&mut self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .sources
            .values()
            .filter_map(|p| match p {
                Phase::Collecting(c) => Some(c.clip.request_id),
                _ => None,
            })
            .chain(
                self.objects
                    .values()
                    .flat_map(|o| o.clips.iter().map(|c| c.clip.request_id)),
            )
            .collect();
        ids.sort_unstable();
        self.sources.clear();
        self.refused_sources.clear();
        // Each source keeps its tracker, emptied: its ids go on counting up, so an id names
        // one object for the whole run (in events and ROI metas) across seeks.
        for o in self.objects.values_mut() {
            o.clips.clear();
            o.quiet_until.clear();
            o.memory.clear();
            o.refused.clear();
            o.tracker.clear();
        }
        self.update_counters();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(label: &str, conf: f64, x: f32, y: f32, w: f32, h: f32) -> Detection {
        Detection {
            class_id: 0,
            label: label.into(),
            confidence: conf,
            rect: Rect {
                x,
                y,
                width: w,
                height: h,
            },
            object_id: None,
        }
    }

    fn config() -> ClipConfig {
        ClipConfig {
            temporal_size: 4,
            tile_width: 2,
            tile_height: 2,
            cooldown: 0,
            roi_margin: 0.0,
            ..Default::default()
        }
    }

    /// Runs frames through an assembler; tiles are filled with the frame number.
    struct Run {
        a: ClipAssembler,
        frame: u64,
        next: u64,
        regions: Vec<PixelRect>,
    }

    impl Run {
        fn new(c: ClipConfig) -> Self {
            Run {
                a: ClipAssembler::new(c),
                frame: 0,
                next: 1,
                regions: vec![],
            }
        }

        fn push_source(&mut self, source: u32, dets: &[Detection]) -> FrameOutcome {
            self.frame += 1;
            let frame = self.frame;
            let next = &mut self.next;
            let regions = &mut self.regions;
            let src = SourceFrame {
                source_id: source,
                ..Default::default()
            };
            self.a.push_frame(
                src,
                dets,
                100,
                50,
                Some(frame * 10),
                &mut || {
                    *next += 1;
                    *next - 1
                },
                &mut |r, tile| {
                    regions.push(r);
                    tile.fill(frame as u8);
                    Ok(())
                },
            )
        }

        fn push(&mut self, dets: &[Detection]) -> FrameOutcome {
            self.push_source(0, dets)
        }
    }

    #[test]
    fn a_trigger_gives_one_clip_of_temporal_size_from_the_union_crop() {
        let mut r = Run::new(config());
        assert!(r.push(&[]).started.is_none());
        let o = r.push(&[
            det("person", 0.9, 10.0, 10.0, 10.0, 10.0),
            det("weapon", 0.6, 30.0, 5.0, 5.0, 5.0),
        ]);
        assert_eq!(o.started, Some(1));
        assert!(r.push(&[]).finished.is_none());
        assert!(r.push(&[]).finished.is_none());
        let clip = r.push(&[]).finished.expect("a clip after 4 frames");
        assert_eq!(clip.frames, 4);
        assert_eq!(clip.pixels.len(), 4 * 2 * 2 * 3);
        assert_eq!(
            clip.region,
            PixelRect {
                x: 10,
                y: 5,
                width: 25,
                height: 15
            }
        );
        assert!(r.regions.iter().all(|p| *p == clip.region));
        assert_eq!(clip.trigger_label, "person");
        assert_eq!(clip.trigger_confidence, 0.9);
        assert_eq!((clip.start_pts, clip.end_pts), (Some(20), Some(50)));
        assert_eq!(clip.tile(0)[0], 2);
        assert_eq!(clip.tile(3)[0], 5);
        assert_eq!(clip.frame_labels[0].len(), 2);
        assert!(clip.frame_labels[1].is_empty());
        // No cooldown: the next trigger starts a new clip at once.
        assert_eq!(
            r.push(&[det("weapon", 0.9, 0.0, 0.0, 5.0, 5.0)]).started,
            Some(2)
        );
    }

    #[test]
    fn no_trigger_no_clip() {
        let mut r = Run::new(config());
        for _ in 0..20 {
            let o = r.push(&[
                det("car", 0.99, 0.0, 0.0, 10.0, 10.0),
                det("person", 0.2, 0.0, 0.0, 10.0, 10.0),
                det("person", f64::NAN, 0.0, 0.0, 10.0, 10.0),
                det("person", 0.9, f32::NAN, 0.0, 10.0, 10.0),
                det("person", 0.9, 500.0, 0.0, 10.0, 10.0),
            ]);
            assert!(o.started.is_none() && o.finished.is_none());
        }
        assert!(r.regions.is_empty());
    }

    #[test]
    fn frame_interval_samples_every_nth_frame() {
        let mut r = Run::new(ClipConfig {
            frame_interval: 3,
            ..config()
        });
        let p = det("person", 0.9, 0.0, 0.0, 10.0, 10.0);
        r.push(std::slice::from_ref(&p));
        let mut finished = None;
        for _ in 0..9 {
            if let Some(c) = r.push(&[]).finished {
                finished = Some((r.frame, c));
            }
        }
        let (at, clip) = finished.unwrap();
        // Frames 1, 4, 7, 10 are sampled.
        assert_eq!(at, 10);
        let firsts: Vec<u8> = (0..4).map(|i| clip.tile(i)[0]).collect();
        assert_eq!(firsts, vec![1, 4, 7, 10]);
    }

    #[test]
    fn cooldown_blocks_retriggers_for_that_many_frames() {
        let mut r = Run::new(ClipConfig {
            cooldown: 5,
            ..config()
        });
        let p = det("person", 0.9, 0.0, 0.0, 10.0, 10.0);
        let mut starts = vec![];
        for _ in 0..20 {
            if r.push(std::slice::from_ref(&p)).started.is_some() {
                starts.push(r.frame);
            }
        }
        // Clip 1..4, cooldown 5..9, clip 10..13, cooldown 14..18, clip from 19.
        assert_eq!(starts, vec![1, 10, 19]);
    }

    #[test]
    fn sources_are_independent() {
        let mut r = Run::new(config());
        let p = det("person", 0.9, 0.0, 0.0, 10.0, 10.0);
        assert!(r.push_source(0, std::slice::from_ref(&p)).started.is_some());
        assert!(r.push_source(1, &[]).started.is_none());
        for _ in 0..3 {
            r.push_source(1, &[]);
        }
        assert_eq!(r.a.collecting(), 1);
        for _ in 0..2 {
            r.push_source(0, &[]);
        }
        let c = r.push_source(0, &[]).finished.unwrap();
        assert_eq!(c.source.source_id, 0);
    }

    #[test]
    fn full_crop_ignores_the_box() {
        let mut r = Run::new(ClipConfig {
            crop: CropMode::Full,
            ..config()
        });
        r.push(&[det("person", 0.9, 10.0, 10.0, 5.0, 5.0)]);
        assert_eq!(r.regions[0], PixelRect::full(100, 50));
    }

    #[test]
    fn eos_completes_partial_clips_by_repeating_the_last_tile() {
        let mut r = Run::new(config());
        r.push(&[det("person", 0.9, 0.0, 0.0, 10.0, 10.0)]);
        r.push(&[]);
        let clips = r.a.finish_partial();
        assert_eq!(clips.len(), 1);
        let c = &clips[0];
        assert_eq!((c.frames, c.real_frames), (4, 2));
        assert_eq!(c.frame_labels.len(), 4);
        assert_eq!(c.tile(3), c.tile(1));
        assert!(r.a.finish_partial().is_empty());
    }

    #[test]
    fn abandon_and_sampling_failures() {
        let mut r = Run::new(config());
        r.push(&[det("person", 0.9, 0.0, 0.0, 10.0, 10.0)]);
        assert_eq!(r.a.abandon_all(), vec![1]);
        assert_eq!(r.a.collecting(), 0);

        let mut a = ClipAssembler::new(config());
        let o = a.push_frame(
            SourceFrame::default(),
            &[det("person", 0.9, 0.0, 0.0, 10.0, 10.0)],
            100,
            50,
            None,
            &mut || 7,
            &mut |_, _| Err("boom".into()),
        );
        assert_eq!(o.started, Some(7));
        assert_eq!(o.failed, Some((7, "boom".into())));
        assert_eq!(a.collecting(), 0);
    }

    #[test]
    fn region_follows_a_resolution_change() {
        let mut a = ClipAssembler::new(config());
        let mut regions = vec![];
        let d = [det("person", 0.9, 50.0, 25.0, 50.0, 25.0)];
        for (w, h) in [(100, 50), (200, 100)] {
            a.push_frame(
                SourceFrame::default(),
                &d,
                w,
                h,
                None,
                &mut || 1,
                &mut |r, _| {
                    regions.push(r);
                    Ok(())
                },
            );
        }
        assert_eq!(
            regions[0],
            PixelRect {
                x: 50,
                y: 25,
                width: 50,
                height: 25
            }
        );
        assert_eq!(
            regions[1],
            PixelRect {
                x: 100,
                y: 50,
                width: 100,
                height: 50
            }
        );
    }
}

#[cfg(test)]
mod object_tests {
    use super::*;

    const W: u32 = 640;
    const H: u32 = 480;

    fn person(id: Option<u64>, x: f32, y: f32) -> Detection {
        Detection {
            class_id: 0,
            label: "person".into(),
            confidence: 0.9,
            rect: Rect {
                x,
                y,
                width: 40.0,
                height: 80.0,
            },
            object_id: id,
        }
    }

    fn config() -> ClipConfig {
        ClipConfig {
            temporal_size: 4,
            tile_width: 4,
            tile_height: 4,
            cooldown: 0,
            roi_margin: 0.0,
            ..Default::default()
        }
    }

    fn tracks() -> TrackConfig {
        TrackConfig {
            clip_per: ClipPer::Object,
            tracking: Tracking::Auto,
            max_clips_per_source: 8,
            track_timeout: 3,
            min_frames: 2,
        }
    }

    /// Runs frames through an object-mode assembler; records every crop sampled.
    struct Run {
        a: ClipAssembler,
        frame: u64,
        next: u64,
        crops: Vec<PixelRect>,
        finished: Vec<Collected>,
        dropped: Vec<(Collected, String)>,
        started: Vec<u64>,
    }

    impl Run {
        fn new(c: ClipConfig, t: TrackConfig) -> Self {
            Run {
                a: ClipAssembler::with_tracks(c, t),
                frame: 0,
                next: 1,
                crops: vec![],
                finished: vec![],
                dropped: vec![],
                started: vec![],
            }
        }

        fn push(&mut self, dets: &[Detection]) -> Vec<u64> {
            self.frame += 1;
            let frame = self.frame;
            let next = &mut self.next;
            let crops = &mut self.crops;
            let e = self.a.push(
                SourceFrame::default(),
                dets,
                W,
                H,
                Some(frame),
                &mut || {
                    *next += 1;
                    *next - 1
                },
                &mut |r, tile| {
                    crops.push(r);
                    tile.fill(frame as u8);
                    Ok(())
                },
            );
            assert!(e.failed.is_empty(), "{:?}", e.failed);
            self.finished.extend(e.finished);
            self.dropped.extend(e.dropped);
            self.started.extend(e.started.iter().copied());
            e.started
        }
    }

    fn centre(r: &PixelRect) -> (f64, f64) {
        (
            r.x as f64 + r.width as f64 / 2.0,
            r.y as f64 + r.height as f64 / 2.0,
        )
    }

    #[test]
    fn two_crossing_objects_get_a_clip_each_whose_crop_follows_its_box() {
        for ids in [true, false] {
            // 10 px a frame each, crossing at frame 5 (B 10 px lower).
            let mut r = Run::new(
                ClipConfig {
                    temporal_size: 8,
                    ..config()
                },
                tracks(),
            );
            for i in 0..8 {
                let ax = 100.0 + 10.0 * i as f32;
                let bx = 200.0 - 10.0 * i as f32;
                r.push(&[
                    person(ids.then_some(7), ax, 100.0),
                    person(ids.then_some(9), bx, 110.0),
                ]);
            }
            assert_eq!(r.finished.len(), 2, "ids={ids}");
            let mut by_object: Vec<&Collected> = r.finished.iter().collect();
            by_object.sort_by_key(|c| c.object_id);
            if ids {
                assert_eq!(by_object[0].object_id, Some(7));
                assert_eq!(by_object[1].object_id, Some(9));
            }
            assert_ne!(by_object[0].object_id, by_object[1].object_id);
            for c in &r.finished {
                // The object's own box stays inside its crop on every tile.
                for (crop, b) in c.crops.iter().zip(&c.boxes) {
                    let b = b.expect("seen on every frame");
                    assert!(
                        b.x >= crop.x
                            && b.y >= crop.y
                            && b.x + b.width <= crop.x + crop.width
                            && b.y + b.height <= crop.y + crop.height,
                        "{b:?} outside {crop:?}"
                    );
                }
                assert_eq!(c.crops.len(), 8);
                assert_eq!((c.frames, c.real_frames), (8, 8));
                // Square tiles: square crops, as tall as the 80 px box.
                for crop in &c.crops {
                    assert!(crop.width.abs_diff(crop.height) <= 1, "{crop:?}");
                    assert!((80..=82).contains(&crop.height), "{crop:?}");
                }
            }
            // Which clip is A: the one that started on the left.
            let (a, b) = if centre(&r.finished[0].crops[0]).0 < centre(&r.finished[1].crops[0]).0 {
                (&r.finished[0], &r.finished[1])
            } else {
                (&r.finished[1], &r.finished[0])
            };
            let ax: Vec<f64> = a.crops.iter().map(|c| centre(c).0).collect();
            let bx: Vec<f64> = b.crops.iter().map(|c| centre(c).0).collect();
            assert!(ax.windows(2).all(|w| w[1] > w[0]), "A moves right: {ax:?}");
            assert!(bx.windows(2).all(|w| w[1] < w[0]), "B moves left: {bx:?}");
            // Smoothed: the crop lags the box but is on its way (half the step each frame).
            assert!((ax[1] - 125.0).abs() <= 1.0, "{ax:?}");
            assert_eq!(a.last_crop(), a.crops.last().copied());
        }
    }

    #[test]
    fn a_jittery_box_shakes_the_crop_less() {
        let mut r = Run::new(
            ClipConfig {
                temporal_size: 16,
                ..config()
            },
            tracks(),
        );
        for i in 0..16 {
            let jitter = if i % 2 == 0 { 8.0 } else { -8.0 };
            r.push(&[person(Some(1), 300.0 + jitter, 200.0)]);
        }
        let xs: Vec<i64> = r.finished[0].crops[4..]
            .iter()
            .map(|c| c.x as i64)
            .collect();
        let spread = xs.iter().max().unwrap() - xs.iter().min().unwrap();
        assert!(spread < 16, "box moves 16 px, crop {spread}: {xs:?}");
    }

    #[test]
    fn crops_are_clamped_inside_the_frame_keeping_their_shape() {
        let mut r = Run::new(config(), tracks());
        r.push(&[person(Some(1), -20.0, 430.0)]);
        let c = r.crops[0];
        assert!(c.x + c.width <= W && c.y + c.height <= H, "{c:?}");
        assert_eq!(c.width, c.height);
        // A box larger than the frame: the crop is the frame's height, square.
        let mut r = Run::new(config(), tracks());
        let mut d = person(Some(1), 0.0, 0.0);
        d.rect.width = 600.0;
        d.rect.height = 2000.0;
        r.push(&[d]);
        assert_eq!(r.crops[0].height, H);
        assert!(r.crops[0].width.abs_diff(H) <= 1);
    }

    #[test]
    fn builtin_tracking_ignores_ids_and_ids_needs_them() {
        let mut r = Run::new(
            config(),
            TrackConfig {
                tracking: Tracking::Builtin,
                ..tracks()
            },
        );
        // The detector's id changes every frame; the boxes stay: one object.
        for i in 0..4 {
            r.push(&[person(Some(100 + i), 100.0, 100.0)]);
        }
        assert_eq!(r.finished.len(), 1);
        assert_eq!(r.finished[0].object_id, Some(1));

        let mut r = Run::new(
            config(),
            TrackConfig {
                tracking: Tracking::Ids,
                ..tracks()
            },
        );
        for _ in 0..4 {
            r.push(&[person(None, 100.0, 100.0), person(Some(3), 300.0, 100.0)]);
        }
        assert_eq!(r.finished.len(), 1);
        assert_eq!(r.finished[0].object_id, Some(3));
    }

    #[test]
    fn a_trigger_beyond_max_clips_is_dropped_once_and_counted() {
        let mut r = Run::new(
            config(),
            TrackConfig {
                max_clips_per_source: 2,
                ..tracks()
            },
        );
        let crowd = |n: u64| -> Vec<Detection> {
            (0..n)
                .map(|i| person(Some(i + 1), 60.0 * i as f32 + 10.0, 100.0))
                .collect()
        };
        assert_eq!(r.push(&crowd(3)).len(), 2);
        assert_eq!(r.dropped.len(), 1);
        assert_eq!(r.a.collecting(), 2);
        let (d, reason) = &r.dropped[0];
        assert_eq!(d.object_id, Some(3));
        assert_eq!(d.real_frames, 0);
        assert!(reason.contains("max-clips-per-source=2"), "{reason}");
        // Still refused, but not answered again while the two collect.
        r.push(&crowd(3));
        r.push(&crowd(3));
        assert_eq!(r.dropped.len(), 1);
        let c = r.a.counters();
        assert_eq!(c.overflowed.load(Ordering::Relaxed), 1);
        assert_eq!(c.most_collecting.load(Ordering::Relaxed), 2);
        assert_eq!(
            c.collecting_bytes.load(Ordering::Relaxed),
            2 * 4 * 4 * 4 * 3
        );
        // The two complete; the third object gets its clip on the next frame.
        r.push(&crowd(3));
        assert_eq!(r.finished.len(), 2);
        let started = r.push(&crowd(3));
        assert_eq!(started.len(), 2, "object 3 and one of the others");
        assert!(
            r.dropped.len() == 2,
            "the fourth answered: {:?}",
            r.dropped.len()
        );
    }

    #[test]
    fn a_lost_object_ends_its_clip_completed_or_dropped_by_min_frames() {
        let c = ClipConfig {
            temporal_size: 8,
            ..config()
        };
        // Three tiles with the object, then gone: the clip keeps sampling its last crop
        // through the gap and ends on the third frame without it (track-timeout 3); the two
        // tiles of the gap are cut and it is completed from its 3 tiles (min-frames 2).
        let mut r = Run::new(c.clone(), tracks());
        for _ in 0..3 {
            r.push(&[person(Some(1), 100.0, 100.0)]);
        }
        r.push(&[]);
        r.push(&[]);
        assert!(r.finished.is_empty(), "missing 2 < track-timeout 3");
        r.push(&[]);
        assert_eq!(r.finished.len(), 1);
        let f = &r.finished[0];
        assert_eq!((f.frames, f.real_frames), (8, 3));
        assert_eq!(f.tile(7), f.tile(2));
        assert_eq!(f.tile(2)[0], 3);
        assert_eq!(f.crops.len(), 3);
        assert_eq!((f.start_pts, f.end_pts), (Some(1), Some(3)));
        assert_eq!(r.a.counters().lost_completed.load(Ordering::Relaxed), 1);

        // One tile with the object (and two of the gap, cut), min-frames 2: dropped.
        let mut r = Run::new(c, tracks());
        r.push(&[person(Some(1), 100.0, 100.0)]);
        for _ in 0..3 {
            r.push(&[]);
        }
        assert!(r.finished.is_empty());
        assert_eq!(r.dropped.len(), 1);
        assert!(r.dropped[0].1.contains("lost"), "{}", r.dropped[0].1);
        assert_eq!(r.dropped[0].0.real_frames, 1);
        assert_eq!(r.a.collecting(), 0);
        assert_eq!(r.a.counters().lost_dropped.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_cooldown_is_per_object() {
        let mut r = Run::new(
            ClipConfig {
                cooldown: 5,
                ..config()
            },
            tracks(),
        );
        for f in 1..=14u64 {
            let mut dets = vec![person(Some(1), 100.0, 100.0)];
            if f >= 6 {
                dets.push(person(Some(2), 400.0, 100.0));
            }
            r.push(&dets);
        }
        // (object, first frame) of each clip; pts are frame numbers here.
        let mut starts: Vec<(u64, u64)> = r
            .finished
            .iter()
            .map(|c| (c.object_id.unwrap(), c.start_pts.unwrap()))
            .collect();
        starts.sort();
        // Object 1: 1..4, cooldown 5..9, 10..13. Object 2 starts on frame 6, while object 1
        // cools down, and cools down itself from frame 10 to 14.
        assert_eq!(starts, vec![(1, 1), (1, 10), (2, 6)]);
        assert_eq!(r.a.collecting(), 0);
    }

    #[test]
    fn the_fallback_sees_only_this_objects_labels() {
        let mut r = Run::new(config(), tracks());
        let gun_near = Detection {
            label: "gun".into(),
            rect: Rect {
                x: 110.0,
                y: 130.0,
                width: 10.0,
                height: 10.0,
            },
            confidence: 0.4,
            object_id: None,
            class_id: 2,
        };
        let knife_far = Detection {
            label: "knife".into(),
            rect: Rect {
                x: 500.0,
                y: 400.0,
                width: 10.0,
                height: 10.0,
            },
            confidence: 0.3,
            object_id: None,
            class_id: 3,
        };
        for _ in 0..4 {
            r.push(&[
                person(Some(1), 100.0, 100.0),
                gun_near.clone(),
                knife_far.clone(),
            ]);
        }
        assert_eq!(r.finished.len(), 1, "weak weapons start nothing");
        let labels: Vec<&str> = r.finished[0].frame_labels[0]
            .iter()
            .map(|l| l.label.as_str())
            .collect();
        assert_eq!(labels, vec!["person", "gun"]);
    }

    #[test]
    fn a_gun_triggers_with_the_default_labels() {
        let mut r = Run::new(config(), tracks());
        let mut gun = person(None, 100.0, 100.0);
        gun.label = "gun".into();
        assert_eq!(r.push(&[gun.clone()]).len(), 1);
        let mut r = Run::new(config(), TrackConfig::default());
        assert_eq!(r.push(&[gun]).len(), 1, "per source too");
    }

    #[test]
    fn eos_and_flush_reach_object_clips() {
        let mut r = Run::new(config(), tracks());
        r.push(&[person(Some(1), 100.0, 100.0), person(Some(2), 300.0, 100.0)]);
        let done = r.a.finish_partial();
        assert_eq!(done.len(), 2);
        assert!(done.iter().all(|c| c.frames == 4 && c.real_frames == 1));
        assert_eq!(r.a.collecting(), 0);
        r.push(&[person(Some(1), 100.0, 100.0)]);
        assert_eq!(r.a.abandon_all().len(), 1);
        assert_eq!(r.a.counters().collecting.load(Ordering::Relaxed), 0);
    }

    /// Feeds one frame of `source` to `a`; returns the events and the tiles it sampled.
    fn push_to(
        a: &mut ClipAssembler,
        source: u32,
        dets: &[Detection],
        next: &mut u64,
    ) -> (FrameEvents, usize) {
        let mut tiles = 0;
        let e = a.push(
            SourceFrame {
                source_id: source,
                ..Default::default()
            },
            dets,
            W,
            H,
            None,
            &mut || {
                *next += 1;
                *next - 1
            },
            &mut |_, _| {
                tiles += 1;
                Ok(())
            },
        );
        (e, tiles)
    }

    #[test]
    fn only_the_most_confident_detections_are_followed_and_the_rest_counted() {
        let mut a = ClipAssembler::with_tracks(config(), tracks());
        a.set_limits(Limits {
            max_detections: 3,
            ..Limits::default()
        });
        let mut next = 1;
        // Five people far apart, no ids; the two least confident are left out.
        let dets: Vec<Detection> = [0.6, 0.95, 0.7, 0.9, 0.8]
            .iter()
            .enumerate()
            .map(|(i, &c)| Detection {
                confidence: c,
                ..person(None, 10.0 + 100.0 * i as f32, 100.0)
            })
            .collect();
        let (e, _) = push_to(&mut a, 0, &dets, &mut next);
        let mut followed: Vec<usize> = e.assigned.iter().map(|(i, _)| *i).collect();
        followed.sort();
        assert_eq!(followed, [1, 3, 4]);
        assert_eq!(e.started.len(), 3);
        assert_eq!(a.counters().detections_capped.load(Ordering::Relaxed), 2);
        assert_eq!(a.counters().tracks.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn twenty_thousand_boxes_are_cut_to_max_detections_before_the_association() {
        let mut a = ClipAssembler::with_tracks(config(), tracks());
        let mut next = 1;
        let dets: Vec<Detection> = (0..20_000)
            .map(|i| Detection {
                confidence: 0.5 + (i % 1000) as f64 / 2000.0,
                ..person(None, 100.0 + (i % 17) as f32, 100.0 + (i % 13) as f32)
            })
            .collect();
        for frame in 1..=5u64 {
            let (e, _) = push_to(&mut a, 0, &dets, &mut next);
            assert!(e.assigned.len() <= DEFAULT_MAX_DETECTIONS as usize);
            let c = a.counters();
            assert_eq!(
                c.detections_capped.load(Ordering::Relaxed),
                frame * (20_000 - DEFAULT_MAX_DETECTIONS as u64)
            );
            assert!(c.tracks.load(Ordering::Relaxed) <= tracks::MAX_TRACKS as u64);
            assert!(a.collecting() <= 8);
        }
    }

    #[test]
    fn max_clips_holds_over_all_sources_and_refuses_once() {
        let mut a = ClipAssembler::with_tracks(config(), tracks());
        a.set_limits(Limits {
            max_clips: 5,
            ..Limits::default()
        });
        let mut next = 1;
        let two = [person(Some(1), 10.0, 10.0), person(Some(2), 300.0, 10.0)];
        let mut dropped = 0;
        for _ in 0..2 {
            for source in 0..4 {
                let (e, _) = push_to(&mut a, source, &two, &mut next);
                dropped += e.dropped.len();
                assert!(e.dropped.iter().all(|(_, r)| r.contains("max-clips=5")));
                assert!(a.collecting() <= 5);
            }
        }
        assert_eq!(a.collecting(), 5);
        // Sources 2 and 3 have 3 refused people: answered once, not once a frame.
        assert_eq!(dropped, 3);
        assert_eq!(a.counters().over_max_clips.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_buffer_samples_at_most_its_tile_budget() {
        let mut a = ClipAssembler::with_tracks(config(), tracks());
        a.set_limits(Limits {
            max_tiles_per_buffer: 5,
            ..Limits::default()
        });
        let mut next = 1;
        let three = [
            person(Some(1), 10.0, 10.0),
            person(Some(2), 200.0, 10.0),
            person(Some(3), 400.0, 10.0),
        ];
        // One buffer carrying source 0 twice and source 1 (a hostile batch).
        a.begin_buffer();
        let mut tiles = 0;
        let mut events = vec![];
        for source in [0, 1, 0] {
            let (e, t) = push_to(&mut a, source, &three, &mut next);
            tiles += t;
            events.push(e);
        }
        assert_eq!(tiles, 5);
        // Source 0 opens 3 clips (3 tiles), source 1 opens 2 (the last trigger waits), and
        // the repeated source 0 finds the budget spent: its 3 clips are dropped.
        assert_eq!(events[0].started.len(), 3);
        assert_eq!(events[1].started.len(), 2);
        assert_eq!(events[2].dropped.len(), 3);
        assert!(
            events[2]
                .dropped
                .iter()
                .all(|(_, r)| r.contains("max-tiles-per-buffer=5"))
        );
        assert_eq!(a.counters().over_tile_budget.load(Ordering::Relaxed), 4);
        // The next buffer has a fresh budget: source 1's third person opens its clip.
        a.begin_buffer();
        let (e, t) = push_to(&mut a, 1, &three, &mut next);
        assert_eq!((e.started.len(), t), (1, 3));
    }

    #[test]
    fn a_tile_keeps_the_most_confident_labels_up_to_its_bound() {
        let mut dets = vec![];
        for i in 0..40 {
            let mut d = person(None, 0.0, 0.0);
            d.label = format!("junk{i}");
            d.confidence = 0.1 + i as f64 / 100.0;
            dets.push(d);
        }
        let mut gun = person(None, 0.0, 0.0);
        gun.label = "gun".into();
        gun.confidence = 0.99;
        dets.insert(0, gun);
        let labels = labels_of(&dets);
        assert_eq!(labels.len(), MAX_LABELS_PER_TILE);
        assert!(labels.iter().any(|l| l.label == "gun"));
        assert!(
            labels
                .iter()
                .all(|l| l.confidence >= 0.1 + 25.0 / 100.0 - 1e-9)
        );
    }

    #[test]
    fn a_flush_does_not_give_a_builtin_id_again() {
        let mut r = Run::new(config(), tracks());
        let mut object_ids = vec![];
        for _ in 0..3 {
            r.push(&[person(None, 100.0, 100.0), person(None, 300.0, 100.0)]);
            r.a.abandon_all();
            // The same two people after the seek: new tracks, so new ids.
            r.push(&[person(None, 100.0, 100.0), person(None, 300.0, 100.0)]);
            object_ids.extend(r.a.finish_partial().iter().map(|c| c.object_id.unwrap()));
            r.a.abandon_all();
        }
        assert_eq!(object_ids, [3, 4, 7, 8, 11, 12]);
    }
}

/// Random frames through the per-object assembler: every request it opens ends exactly once,
/// the bounds hold and every crop lies inside its frame, whatever the boxes.
#[cfg(test)]
mod object_random_tests {
    use super::*;
    use std::collections::BTreeMap;

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            // xorshift64*
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
        fn coord(&mut self, size: u32) -> f32 {
            match self.below(20) {
                0 => f32::NAN,
                1 => -1e30,
                2 => f32::MAX,
                3 => -(self.below(50) as f32),
                _ => self.below(size as u64 + 20) as f32,
            }
        }
    }

    #[test]
    fn every_request_ends_once_and_bounds_hold() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut kinds: BTreeMap<&'static str, usize> = BTreeMap::new();
        let mut refusals = 0;
        for case in 0..300 {
            let max = 1 + rng.below(4) as u32;
            let temporal = 1 + rng.below(6) as u32;
            let config = ClipConfig {
                temporal_size: temporal,
                frame_interval: 1 + rng.below(3) as u32,
                tile_width: 1 + rng.below(4) as u32,
                tile_height: 1 + rng.below(4) as u32,
                cooldown: rng.below(5) as u32,
                roi_margin: rng.below(3) as f32 * 0.25,
                crop: if rng.below(5) == 0 {
                    CropMode::Full
                } else {
                    CropMode::Roi
                },
                ..Default::default()
            };
            let tracks = TrackConfig {
                clip_per: ClipPer::Object,
                tracking: [Tracking::Auto, Tracking::Ids, Tracking::Builtin][rng.below(3) as usize],
                max_clips_per_source: max,
                track_timeout: 1 + rng.below(4) as u32,
                min_frames: 1 + rng.below(4) as u32,
            };
            let mut a = ClipAssembler::with_tracks(config.clone(), tracks);
            // Request id → how it ended.
            let mut open: BTreeMap<u64, &'static str> = BTreeMap::new();
            let mut ended: BTreeMap<u64, &'static str> = BTreeMap::new();
            let mut next = 1u64;
            let mut end = |id: u64, how: &'static str, open: &mut BTreeMap<u64, &'static str>| {
                assert!(
                    open.remove(&id).is_some(),
                    "case {case}: {id} ended ({how}) but was not open"
                );
                assert!(
                    ended.insert(id, how).is_none(),
                    "case {case}: {id} ended twice"
                );
            };
            for _ in 0..60 {
                let source = rng.below(2) as u32;
                let (w, h) = if rng.below(30) == 0 { (0, 0) } else { (64, 48) };
                let n = rng.below(6);
                let dets: Vec<Detection> = (0..n)
                    .map(|_| Detection {
                        class_id: 0,
                        label: ["person", "gun", "car"][rng.below(3) as usize].into(),
                        confidence: [0.9, 0.6, 0.2, f64::NAN][rng.below(4) as usize],
                        rect: Rect {
                            x: rng.coord(w),
                            y: rng.coord(h),
                            width: rng.coord(w),
                            height: rng.coord(h),
                        },
                        object_id: (rng.below(2) == 0).then(|| rng.below(5)),
                    })
                    .collect();
                let mut issued = Vec::new();
                let e = a.push(
                    SourceFrame {
                        source_id: source,
                        ..Default::default()
                    },
                    &dets,
                    w,
                    h,
                    None,
                    &mut || {
                        issued.push(next);
                        next += 1;
                        next - 1
                    },
                    &mut |r, tile| {
                        assert!(
                            r.width > 0
                                && r.height > 0
                                && r.x + r.width <= w
                                && r.y + r.height <= h
                        );
                        tile.fill(1);
                        Ok(())
                    },
                );
                // Each new request is a clip started or a trigger refused for max-clips.
                let refused = e.dropped.iter().filter(|(c, _)| c.real_frames == 0).count();
                refusals += refused;
                assert_eq!(issued.len(), e.started.len() + refused, "case {case}");
                assert!(e.started.iter().all(|id| issued.contains(id)));
                for id in issued {
                    open.insert(id, "open");
                }
                for c in &e.finished {
                    assert_eq!(c.frames, temporal);
                    assert_eq!(c.pixels.len(), c.frames as usize * c.tile_bytes());
                    assert_eq!(c.crops.len(), c.real_frames as usize);
                    assert_eq!(c.boxes.len(), c.crops.len());
                    end(c.request_id, "finished", &mut open);
                }
                for (c, _) in &e.dropped {
                    end(c.request_id, "dropped", &mut open);
                }
                for (id, _) in &e.failed {
                    end(*id, "failed", &mut open);
                }
                for o in a.objects.values() {
                    assert!(o.clips.len() <= max as usize);
                }
                assert_eq!(a.collecting(), open.len(), "case {case}");
            }
            if rng.below(2) == 0 {
                for c in a.finish_partial() {
                    assert_eq!(c.frames, temporal);
                    end(c.request_id, "eos", &mut open);
                }
            } else {
                for id in a.abandon_all() {
                    end(id, "abandoned", &mut open);
                }
            }
            assert!(open.is_empty(), "case {case}: left open {open:?}");
            for how in ended.values() {
                *kinds.entry(how).or_default() += 1;
            }
            assert_eq!(a.counters().collecting.load(Ordering::Relaxed), 0);
        }
        // The inputs reach every ending.
        for how in ["finished", "dropped", "eos", "abandoned", "failed"] {
            assert!(
                kinds.get(how).is_some_and(|n| *n > 0),
                "never {how}: {kinds:?}"
            );
        }
        assert!(refusals > 0, "max-clips never refused a trigger");
    }
}
