// SPDX-License-Identifier: MIT OR Apache-2.0
//! `clip-per=object`: one clip per tracked object, its crop following the object's box.

use super::crop::{CROP_SMOOTHING, centre_inside, crop_target, fit_frame, foot};
use super::*;

#[derive(Debug)]
pub(super) struct ObjectClip {
    pub(super) key: Key,
    pub(super) clip: Clip,
    pub(super) crops: Vec<PixelRect>,
    pub(super) boxes: Vec<Option<PixelRect>>,
    /// The timestamp of each real tile.
    pub(super) tile_pts: Vec<Option<u64>>,
    pub(super) since_trigger: u64,
    /// Frames in a row the object was not seen.
    pub(super) missing: u32,
    /// The smoothed crop target, in pixels of a `dims` frame (may reach outside it).
    pub(super) smoothed: Bounds,
    pub(super) dims: (u32, u32),
}

/// The per-object state of one source.
#[derive(Debug)]
pub(super) struct Objects {
    pub(super) frame: u64,
    pub(super) tracker: Tracker,
    pub(super) clips: Vec<ObjectClip>,
    /// Per object, the last frame of its cooldown.
    pub(super) quiet_until: HashMap<Key, u64>,
    /// Objects answered `dropped` for `max-clips-per-source`: not answered again until a clip
    /// of the source ends (or they leave), so a crowd does not make a verdict per frame.
    pub(super) refused: HashSet<Key>,
    /// Where each object was last seen and the zones it entered; its loss is reported once.
    pub(super) memory: Memory<Key>,
}

/// A detection that may belong to an object's clip.
#[derive(Debug, Clone, Copy)]
pub(super) struct Candidate {
    pub(super) key: Key,
    pub(super) index: usize,
    pub(super) bounds: Bounds,
    pub(super) confidence: f64,
}

impl ObjectClip {
    pub(super) fn observe(&mut self, b: &Bounds, config: &ClipConfig, width: u32, height: u32) {
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

    pub(super) fn crop(&self, config: &ClipConfig, width: u32, height: u32) -> Option<PixelRect> {
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
    pub(super) fn trim_to_last_seen(&mut self) {
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

    pub(super) fn collected(self) -> Collected {
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
    pub(super) fn push_objects(
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
            self.sampled.push(SampledTile {
                source: source.source_id,
                request_id: clip.clip.request_id,
                index: n as u32,
            });
            let own = cands.iter().find(|c| c.key == clip.key).map(|c| c.index);
            push_labels(
                &mut clip.clip.frame_labels,
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
    pub(super) fn end_lost(
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
        /// (frame, object id) of every object reported lost.
        lost: Vec<(u64, u64)>,
        /// (frame, object id) of every clip opened.
        opened: Vec<(u64, Option<u64>)>,
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
                lost: vec![],
                opened: vec![],
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
            self.lost.extend(e.lost.iter().map(|&id| (frame, id)));
            self.opened
                .extend(e.opened.iter().map(|o| (frame, o.object_id)));
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
    fn an_object_reported_lost_comes_back_under_a_new_builtin_id() {
        // track-timeout 3. Unseen for 2 frames: not lost, the same id, the same clip. Unseen
        // for 3: lost (its clip ends) on the frame the association forgets it, so the object
        // seen again at the same place is a new one with a new id and a new clip.
        let c = ClipConfig {
            temporal_size: 32,
            ..config()
        };
        let mut r = Run::new(c, tracks());
        let here = || [person(None, 100.0, 100.0)];
        for _ in 0..3 {
            r.push(&here());
        }
        assert_eq!(r.opened, [(1, Some(1))]);
        r.push(&[]);
        r.push(&[]);
        r.push(&here());
        assert!(r.lost.is_empty(), "unseen for 2 frames of 3: {:?}", r.lost);
        assert_eq!(r.a.collecting(), 1, "the same clip goes on");
        assert!(r.finished.is_empty() && r.dropped.is_empty());
        for _ in 0..3 {
            r.push(&[]);
        }
        assert_eq!(r.lost, [(9, 1)], "unseen for 3 frames of 3");
        assert_eq!(r.finished.len(), 1, "the clip ended with the loss");
        assert_eq!(r.finished[0].object_id, Some(1));
        r.push(&here());
        assert_eq!(
            r.opened,
            [(1, Some(1)), (10, Some(2))],
            "a new id, not 1 again"
        );
        assert_eq!(r.lost, [(9, 1)]);
        for _ in 0..3 {
            r.push(&[]);
        }
        assert_eq!(r.lost, [(9, 1), (13, 2)]);
    }

    #[test]
    fn a_detector_id_reported_lost_and_seen_again_is_followed_again() {
        // The detector's id is its own to give: seen again after being reported lost it opens
        // a new clip under the same id (a new incident of the same object id), and its next
        // loss is reported again. Within the timeout it is the same clip.
        let c = ClipConfig {
            temporal_size: 32,
            ..config()
        };
        let mut r = Run::new(c, tracks());
        let here = || [person(Some(7), 100.0, 100.0)];
        r.push(&here());
        r.push(&[]);
        r.push(&[]);
        r.push(&here());
        assert!(r.lost.is_empty());
        assert_eq!(r.opened, [(1, Some(7))]);
        for _ in 0..3 {
            r.push(&[]);
        }
        assert_eq!(r.lost, [(7, 7)]);
        assert_eq!(r.finished.len(), 1);
        r.push(&here());
        assert_eq!(r.opened, [(1, Some(7)), (8, Some(7))]);
        for _ in 0..3 {
            r.push(&[]);
        }
        assert_eq!(r.lost, [(7, 7), (11, 7)]);
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
            .map(|l| &*l.label)
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
        let mut tiles = FrameLabels::default();
        push_labels(&mut tiles, &dets);
        let labels = &tiles[0];
        assert_eq!(labels.len(), MAX_LABELS_PER_TILE);
        assert!(labels.iter().any(|l| &*l.label == "gun"));
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

    /// A caller that fills tiles later (NVMM, one transform call per buffer) finds each tile
    /// the buffer sampled, writes it in place, and can still abandon a clip whose tile failed.
    #[test]
    fn the_tiles_a_buffer_sampled_are_listed_for_a_caller_that_fills_them_later() {
        let mut r = Run::new(config(), tracks());
        r.a.begin_buffer();
        r.push(&[person(Some(7), 100.0, 100.0), person(Some(9), 300.0, 100.0)]);
        r.push(&[person(Some(7), 104.0, 100.0), person(Some(9), 304.0, 100.0)]);
        let sampled = r.a.sampled().to_vec();
        let ids = r.started.clone();
        assert_eq!(ids.len(), 2);
        let want: Vec<(u64, u32)> = vec![(ids[0], 0), (ids[1], 0), (ids[0], 1), (ids[1], 1)];
        let got: Vec<(u64, u32)> = sampled.iter().map(|t| (t.request_id, t.index)).collect();
        assert_eq!(got, want);
        for t in &sampled {
            let tile = r.a.tile_mut(*t).expect("collecting");
            assert_eq!(tile.len(), 4 * 4 * 3);
            tile.fill(200 + t.index as u8);
        }
        // A new buffer starts a new list.
        r.a.begin_buffer();
        assert!(r.a.sampled().is_empty());
        // The second clip's tile could not be read after all: it is abandoned, the first goes on.
        assert!(r.a.fail_clip(sampled[1].source, ids[1]));
        assert!(!r.a.fail_clip(sampled[1].source, ids[1]), "abandoned once");
        assert!(r.a.tile_mut(sampled[1]).is_none());
        assert_eq!(r.a.collecting(), 1);
        r.push(&[person(Some(7), 108.0, 100.0)]);
        r.push(&[person(Some(7), 112.0, 100.0)]);
        let clip = &r
            .finished
            .iter()
            .find(|c| c.clip.request_id == ids[0])
            .unwrap()
            .clip;
        assert!(clip.tile(0).iter().all(|&v| v == 200));
        assert!(clip.tile(1).iter().all(|&v| v == 201));
        // Object 9 comes back: a new clip (its refusal memory was cleared with the failure).
        let started = r.push(&[person(Some(9), 300.0, 100.0)]);
        assert_eq!(started.len(), 1);
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
