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
//!
//! Its rooms: `types`, what it hands out and how it is set (configs, clips, counters); this
//! file the assembler and what both ways share (triggers, budgets, EOS and flush); `source`
//! the per-source phase; `objects` the per-object clips; `crop` the crop geometry. It knows
//! nothing of GStreamer, pixels or the pool.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::detections::{Detection, SourceFrame};
use crate::geometry::{Bounds, PixelRect, Rect};
use crate::tracks::{self, Memory, Tracker};
use crate::zones::{Rule, foot_point};

mod crop;
mod objects;
mod source;
mod types;

pub use types::{
    Clip, ClipConfig, ClipCounters, ClipPer, Collected, CropMode, DEFAULT_MAX_CLIPS,
    DEFAULT_MAX_DETECTIONS, DEFAULT_MAX_TILES_PER_BUFFER, DEFAULT_TRIGGER_LABELS, FrameEvents,
    FrameLabels, FrameOutcome, LabelSeen, Limits, MAX_LABELS_PER_TILE, Opened, TrackConfig,
    Tracking,
};

use crop::foot;
use objects::{Candidate, ObjectClip, Objects};
use source::Phase;

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

/// Fills one tile from a region of the current frame.
pub type SampleFn<'a> = dyn FnMut(PixelRect, &mut [u8]) -> Result<(), String> + 'a;

/// A tile `sample` said it filled: tile `index` of clip `request_id` of `source`. The
/// assembler lists them per buffer ([`ClipAssembler::sampled`]) so that a caller which defers
/// the pixels (NVMM: every tile of a buffer cut by one transform call after its last frame)
/// can put each where it belongs ([`ClipAssembler::tile_mut`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampledTile {
    pub source: u32,
    pub request_id: u64,
    pub index: u32,
}

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
    /// The tiles sampled since the buffer began, in the order `sample` filled them.
    sampled: Vec<SampledTile>,
}

/// Adds a tile to `out` with the labels of `detections`: each once, at its best finite
/// confidence, the `MAX_LABELS_PER_TILE` most confident kept. A name the last tile saw is shared,
/// not copied, so a tile allocates nothing once the clip has room.
fn push_labels<'a>(out: &mut FrameLabels, detections: impl IntoIterator<Item = &'a Detection>) {
    for d in detections {
        if !d.confidence.is_finite() {
            continue;
        }
        let (labels, start) = out.open_tile();
        let seen = &mut labels[start..];
        if let Some(s) = seen.iter_mut().find(|s| *s.label == *d.label) {
            s.confidence = s.confidence.max(d.confidence);
            continue;
        }
        if seen.len() >= MAX_LABELS_PER_TILE {
            let least = seen
                .iter_mut()
                .min_by(|a, b| a.confidence.total_cmp(&b.confidence))
                .filter(|l| l.confidence < d.confidence);
            let Some(least) = least else { continue };
            least.confidence = d.confidence;
            least.label = Arc::from(d.label.as_str());
            continue;
        }
        let label = out
            .known(&d.label)
            .unwrap_or_else(|| Arc::from(d.label.as_str()));
        let (labels, _) = out.open_tile();
        labels.push(LabelSeen {
            label,
            confidence: d.confidence,
        });
    }
    out.end_tile();
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
            sampled: Vec::new(),
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
        self.sampled.clear();
    }

    /// The tiles `sample` filled since the buffer began ([`ClipAssembler::begin_buffer`], or
    /// the last push for a caller that does not mark buffers), in order.
    pub fn sampled(&self) -> &[SampledTile] {
        &self.sampled
    }

    /// The bytes of tile `t` of a clip still collecting, `None` when the clip is no longer
    /// here (it finished, was dropped or abandoned).
    pub fn tile_mut(&mut self, t: SampledTile) -> Option<&mut [u8]> {
        let clip = match self.sources.get_mut(&t.source) {
            Some(Phase::Collecting(c)) if c.clip.request_id == t.request_id => &mut c.clip,
            _ => {
                &mut self
                    .objects
                    .get_mut(&t.source)?
                    .clips
                    .iter_mut()
                    .find(|c| c.clip.request_id == t.request_id)?
                    .clip
            }
        };
        clip.tile_mut(t.index as usize)
    }

    /// Abandons clip `request_id` of `source` as a failed sample does (its pixels could not
    /// be read after all); false when it is not collecting.
    pub fn fail_clip(&mut self, source: u32, request_id: u64) -> bool {
        let per_source = matches!(self.sources.get(&source),
            Some(Phase::Collecting(c)) if c.clip.request_id == request_id);
        let found = if per_source {
            self.sources.insert(source, Phase::Idle);
            self.refused_sources.clear();
            true
        } else {
            let o = self.objects.get_mut(&source);
            match o.and_then(|o| {
                let i = o
                    .clips
                    .iter()
                    .position(|c| c.clip.request_id == request_id)?;
                Some((o, i))
            }) {
                Some((o, i)) => {
                    o.clips.remove(i);
                    o.refused.clear();
                    true
                }
                None => false,
            }
        };
        if found {
            self.update_counters();
        }
        found
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
            frame_labels: FrameLabels::with_capacity(c.temporal_size as usize),
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
            self.sampled.clear();
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
