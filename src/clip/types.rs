// SPDX-License-Identifier: MIT OR Apache-2.0
//! What clip assembly hands out and how it is set: the configs, the clip, the per-frame
//! outcome and the counters. Plain data: no pixels are touched here.

use std::ops::Index;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crate::detections::SourceFrame;
use crate::geometry::PixelRect;

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

/// A label seen on a sampled frame, with the best confidence it had there. The name is shared
/// with the tiles before it that saw the same label, so a tile does not copy it again.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelSeen {
    pub label: Arc<str>,
    pub confidence: f64,
}

/// Per tile, the labels seen on its frame, stored flat: a clip's tiles share one list, so
/// sampling a tile allocates nothing once the clip has room (issue 24: the per-tile `Vec` and
/// label copy were two allocations a tile on the streaming thread).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FrameLabels {
    labels: Vec<LabelSeen>,
    /// Where each tile's labels end in `labels`.
    ends: Vec<u32>,
}

impl FrameLabels {
    /// Room for `tiles` tiles of a couple of labels each.
    pub fn with_capacity(tiles: usize) -> Self {
        FrameLabels {
            labels: Vec::with_capacity(tiles * 2),
            ends: Vec::with_capacity(tiles),
        }
    }

    /// `tiles` tiles that saw no label.
    pub fn empty(tiles: usize) -> Self {
        FrameLabels {
            labels: Vec::new(),
            ends: vec![0; tiles],
        }
    }

    /// Tiles so far.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The labels of tile `i`.
    pub fn get(&self, i: usize) -> Option<&[LabelSeen]> {
        let end = *self.ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        Some(&self.labels[start..end])
    }

    /// Each tile's labels, in tile order.
    pub fn iter(&self) -> impl Iterator<Item = &[LabelSeen]> {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// Adds a tile whose labels are `labels`.
    pub fn push_tile(&mut self, labels: impl IntoIterator<Item = LabelSeen>) {
        self.labels.extend(labels);
        self.end_tile();
    }

    /// Adds a tile with the labels of the last one (a clip filled up by repeating it).
    pub fn repeat_last(&mut self) {
        let Some(last) = self.len().checked_sub(1) else {
            return;
        };
        let start = if last == 0 {
            0
        } else {
            self.ends[last - 1] as usize
        };
        let end = self.ends[last] as usize;
        self.labels.extend_from_within(start..end);
        self.end_tile();
    }

    /// Keeps the first `tiles` tiles.
    pub fn truncate(&mut self, tiles: usize) {
        self.ends.truncate(tiles);
        self.labels
            .truncate(self.ends.last().map_or(0, |&e| e as usize));
    }

    /// The labels of the tile being built (after the last finished one): `labels_of` fills
    /// them in place.
    pub(super) fn open_tile(&mut self) -> (&mut Vec<LabelSeen>, usize) {
        let start = self.ends.last().map_or(0, |&e| e as usize);
        (&mut self.labels, start)
    }

    /// The name `label` already has in the last finished tile, to share instead of copying.
    pub(super) fn known(&self, label: &str) -> Option<Arc<str>> {
        let last = self.len().checked_sub(1)?;
        self.get(last)?
            .iter()
            .find(|l| &*l.label == label)
            .map(|l| l.label.clone())
    }

    /// Ends the tile being built.
    pub(super) fn end_tile(&mut self) {
        self.ends.push(self.labels.len() as u32);
    }
}

impl Index<usize> for FrameLabels {
    type Output = [LabelSeen];
    fn index(&self, i: usize) -> &[LabelSeen] {
        self.get(i)
            .unwrap_or_else(|| panic!("tile {i} of a clip of {} tiles", self.len()))
    }
}

impl FromIterator<Vec<LabelSeen>> for FrameLabels {
    fn from_iter<I: IntoIterator<Item = Vec<LabelSeen>>>(tiles: I) -> Self {
        let mut out = FrameLabels::default();
        for t in tiles {
            out.push_tile(t);
        }
        out
    }
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
    pub frame_labels: FrameLabels,
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

    /// The RGB bytes of tile `i` to fill, `None` past the clip's tiles.
    pub fn tile_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        let n = self.tile_bytes();
        self.pixels.get_mut(i * n..(i + 1) * n)
    }

    /// Fills the clip up to `temporal_size` tiles by repeating its last real one.
    pub(super) fn complete(&mut self, temporal_size: u32) {
        if self.frames == 0 {
            return;
        }
        let tile = self.tile_bytes();
        let last = self.frames as usize - 1;
        self.pixels.resize(tile * temporal_size as usize, 0);
        for i in self.frames as usize..temporal_size as usize {
            self.pixels
                .copy_within(last * tile..(last + 1) * tile, i * tile);
            self.frame_labels.repeat_last();
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
