// SPDX-License-Identifier: MIT OR Apache-2.0
//! `clip-per=source`: one clip at a time per source, cut from the union of the triggering
//! boxes, with its phase (idle, collecting, cooldown).

use super::crop::Region;
use super::*;

#[derive(Debug)]
pub(super) struct Collecting {
    pub(super) clip: Clip,
    pub(super) region: Region,
    pub(super) crops: Vec<PixelRect>,
    /// Frames seen since the trigger, the trigger frame being 0.
    pub(super) since_trigger: u64,
    /// Zones its triggering detections stood in, in order of entry.
    pub(super) zones: Vec<usize>,
}

#[derive(Debug)]
pub(super) enum Phase {
    Idle,
    Collecting(Box<Collecting>),
    Cooldown { remaining: u32 },
}

impl ClipAssembler {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn push_source(
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
        self.sampled.push(SampledTile {
            source: source.source_id,
            request_id: c.clip.request_id,
            index: i as u32,
        });
        c.crops.extend(region);
        c.clip.frames += 1;
        c.clip.real_frames += 1;
        push_labels(&mut c.clip.frame_labels, detections);
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
    fn a_source_clip_lists_its_sampled_tiles_and_can_be_abandoned_after() {
        let mut r = Run::new(config());
        // No buffer marks: each push is a buffer of its own.
        let id = r
            .push(&[det("person", 0.9, 10.0, 10.0, 10.0, 10.0)])
            .started
            .unwrap();
        let t = SampledTile {
            source: 0,
            request_id: id,
            index: 0,
        };
        assert_eq!(r.a.sampled(), [t]);
        r.a.tile_mut(t).unwrap().fill(77);
        r.push(&[]);
        let t1 = SampledTile { index: 1, ..t };
        assert_eq!(r.a.sampled(), [t1]);
        assert!(r.a.fail_clip(0, id));
        assert_eq!(r.a.collecting(), 0);
        assert!(r.a.tile_mut(t1).is_none());
        assert!(!r.a.fail_clip(0, id));
        // The source is idle again: the next trigger opens a clip.
        assert!(
            r.push(&[det("person", 0.9, 10.0, 10.0, 10.0, 10.0)])
                .started
                .is_some()
        );
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
