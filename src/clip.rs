// SPDX-License-Identifier: MIT OR Apache-2.0
//! Per-source clip assembly: idle → (trigger) → collecting `temporal-size` tiles → clip.
//!
//! The assembler never touches pixels itself: the caller passes a `sample` closure that fills a
//! tile from the current frame, so this module is plain logic with its own tests.

use std::collections::HashMap;

use crate::detections::{Detection, SourceFrame};
use crate::geometry::{Bounds, PixelRect, Rect};

/// What part of the frame a clip covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CropMode {
    /// The union of the triggering boxes, widened by the margin.
    #[default]
    Roi,
    /// The whole frame.
    Full,
}

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
    /// Frames after a clip completes during which a source does not trigger again.
    pub cooldown: u32,
}

impl Default for ClipConfig {
    fn default() -> Self {
        ClipConfig {
            trigger_labels: vec!["person".into(), "weapon".into()],
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
    /// Tiles sampled from real frames; fewer than `frames` only for a clip cut short by EOS,
    /// whose last tile was repeated to fill it.
    pub real_frames: u32,
    /// `frames × height × width × 3` bytes, RGB, frame-major.
    pub pixels: Vec<u8>,
    /// Per tile, the labels the detector reported on that frame.
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
}

/// What happened to a source on one frame.
#[derive(Debug, Default)]
pub struct FrameOutcome {
    /// A clip started on this frame (its id).
    pub started: Option<u64>,
    /// A clip completed on this frame.
    pub finished: Option<Clip>,
    /// A clip was abandoned because sampling failed (its id and why).
    pub failed: Option<(u64, String)>,
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
    /// Frames seen since the trigger, the trigger frame being 0.
    since_trigger: u64,
}

#[derive(Debug)]
enum Phase {
    Idle,
    Collecting(Box<Collecting>),
    Cooldown { remaining: u32 },
}

/// Fills one tile from a region of the current frame.
pub type SampleFn<'a> = dyn FnMut(PixelRect, &mut [u8]) -> Result<(), String> + 'a;

/// Clip assembly for every source of one element.
#[derive(Debug)]
pub struct ClipAssembler {
    config: ClipConfig,
    sources: HashMap<u32, Phase>,
}

fn labels_of(detections: &[Detection]) -> Vec<LabelSeen> {
    let mut seen: Vec<LabelSeen> = Vec::new();
    for d in detections {
        if !d.confidence.is_finite() {
            continue;
        }
        match seen.iter_mut().find(|s| s.label == d.label) {
            Some(s) => s.confidence = s.confidence.max(d.confidence),
            None => seen.push(LabelSeen {
                label: d.label.clone(),
                confidence: d.confidence,
            }),
        }
    }
    seen
}

impl ClipAssembler {
    pub fn new(config: ClipConfig) -> Self {
        ClipAssembler {
            config,
            sources: HashMap::new(),
        }
    }

    pub fn config(&self) -> &ClipConfig {
        &self.config
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

    /// Sources with a clip being collected.
    pub fn collecting(&self) -> usize {
        self.sources
            .values()
            .filter(|p| matches!(p, Phase::Collecting(_)))
            .count()
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
            let wanted = self.config.trigger_labels.contains(&d.label);
            // A NaN confidence compares as nothing, so it never triggers.
            let confident = d
                .confidence
                .partial_cmp(&self.config.min_confidence)
                .is_some_and(|o| o.is_ge());
            if !wanted || !confident {
                continue;
            }
            if d.rect.to_pixels(width, height).is_none() {
                continue;
            }
            let b = Bounds::of(&d.rect);
            union = Some(union.map_or(b, |u| u.union(&b)));
            if best.is_none_or(|b| d.confidence > b.confidence) {
                best = Some(d);
            }
        }
        Some((union?, best?))
    }

    /// Feeds one frame of `source`. `next_id` is called for the id of a new clip; `sample`
    /// fills a tile (`tile_width*tile_height*3` bytes) from `region` of the current frame.
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
        let mut outcome = FrameOutcome::default();
        let idle = match self.sources.get_mut(&source.source_id) {
            Some(Phase::Cooldown { remaining }) => {
                if *remaining > 1 {
                    *remaining -= 1;
                } else {
                    self.sources.insert(source.source_id, Phase::Idle);
                }
                return outcome;
            }
            Some(Phase::Collecting(_)) => false,
            Some(Phase::Idle) | None => true,
        };
        let trigger = if idle {
            self.trigger(detections, width, height)
        } else {
            None
        };
        let phase = self.sources.entry(source.source_id).or_insert(Phase::Idle);

        if idle {
            let Some((rect, best)) = trigger else {
                return outcome;
            };
            let pixels = match self.config.crop {
                CropMode::Full => PixelRect::full(width, height),
                CropMode::Roi => {
                    match rect.widen(self.config.roi_margin).to_pixels(width, height) {
                        Some(p) => p,
                        None => return outcome,
                    }
                }
            };
            let c = &self.config;
            let id = next_id();
            outcome.started = Some(id);
            let tile = c.tile_width as usize * c.tile_height as usize * 3;
            let clip = Clip {
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
                region: pixels,
                trigger_label: best.label.clone(),
                trigger_confidence: best.confidence,
                start_pts: pts,
                end_pts: pts,
            };
            let region = Region::from_pixels(pixels, width, height);
            *phase = Phase::Collecting(Box::new(Collecting {
                clip,
                region,
                since_trigger: 0,
            }));
        } else if let Phase::Collecting(c) = phase {
            c.since_trigger += 1;
        }

        let Phase::Collecting(c) = phase else {
            return outcome;
        };
        if c.since_trigger % self.config.frame_interval.max(1) as u64 != 0 {
            return outcome;
        }
        let tile = c.clip.tile_bytes();
        let i = c.clip.frames as usize;
        c.clip.pixels.resize((i + 1) * tile, 0);
        let result = match c.region.to_pixels(width, height) {
            Some(region) => sample(region, &mut c.clip.pixels[i * tile..]),
            None => Err(format!(
                "the crop region does not fit a {width}x{height} frame"
            )),
        };
        if let Err(e) = result {
            outcome.failed = Some((c.clip.request_id, e));
            *phase = Phase::Idle;
            return outcome;
        }
        c.clip.frames += 1;
        c.clip.real_frames += 1;
        c.clip.frame_labels.push(labels_of(detections));
        c.clip.end_pts = pts.or(c.clip.end_pts);
        if c.clip.frames >= self.config.temporal_size {
            let Phase::Collecting(c) = std::mem::replace(phase, Phase::Idle) else {
                unreachable!()
            };
            outcome.finished = Some(c.clip);
            if self.config.cooldown > 0 {
                *phase = Phase::Cooldown {
                    remaining: self.config.cooldown,
                };
            }
        }
        outcome
    }

    /// Ends every clip being collected, for EOS: clips with at least one real tile are
    /// completed by repeating their last tile.
    pub fn finish_partial(&mut self) -> Vec<Clip> {
        let mut out = Vec::new();
        for phase in self.sources.values_mut() {
            if let Phase::Collecting(_) = phase {
                let Phase::Collecting(c) = std::mem::replace(phase, Phase::Idle) else {
                    unreachable!()
                };
                let mut clip = c.clip;
                // A collecting clip always has its trigger tile.
                let tile = clip.tile_bytes();
                let last = clip.frames as usize - 1;
                clip.pixels
                    .resize(tile * self.config.temporal_size as usize, 0);
                for i in clip.frames as usize..self.config.temporal_size as usize {
                    clip.pixels
                        .copy_within(last * tile..(last + 1) * tile, i * tile);
                    let labels = clip.frame_labels[last].clone();
                    clip.frame_labels.push(labels);
                }
                clip.frames = self.config.temporal_size;
                out.push(clip);
            }
        }
        out.sort_by_key(|c| c.request_id);
        out
    }

    /// Abandons every clip being collected (flush, stop), returning their ids.
    pub fn abandon_all(&mut self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .sources
            .values()
            .filter_map(|p| match p {
                Phase::Collecting(c) => Some(c.clip.request_id),
                _ => None,
            })
            .collect();
        ids.sort_unstable();
        self.sources.clear();
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
