// SPDX-License-Identifier: MIT OR Apache-2.0
//! The collect step of `iguardverify`, on the streaming thread: this buffer's detections go to
//! the clip assembler, each clip it opens gets a request (a [`Ticket`]), and each clip it
//! finishes goes to the pool (or, labels only, is scored here). Owns the streaming-thread
//! [`State`]; knows nothing of properties, pads or delivery (`delivery.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use gst::subclass::prelude::*;

use super::delivery::Running;
use super::imp::{CAT, IGuardVerify};
use super::settings::{RunLayers, Settings};
use crate::clip::{ClipAssembler, Collected, SampledTile};
use crate::deepstream::DeepStreamLayout;
use crate::detections::{DetectionReader, FrameDetections};
use crate::frames::{FrameSource, Pixels};
use crate::pool::{Answers, Done, Outcome, RequestInfo, Ticket};
use crate::scorer::Scorer;
use crate::scorer::fallback::FallbackScorer;
use crate::sources::{Admission, SourceLimit};
use crate::sync::lock;
use crate::verdict::Status;

/// Streaming-thread data, created in `start()` and dropped in `stop()`.
pub(super) struct State {
    pub(super) running: Running,
    pub(super) info: Option<gst_video::VideoInfo>,
    pub(super) reader: Box<dyn DetectionReader>,
    pub(super) assembler: ClipAssembler,
    /// Where tiles come from: system memory or NVMM surfaces (chosen in `set_caps`).
    pub(super) frame_source: FrameSource,
    /// NVMM caps without NVIDIA's surface libraries (fallback-on-error=true): no tiles are
    /// read and clips are scored from their labels on the streaming thread.
    pub(super) labels_only: Option<FallbackScorer>,
    /// The caps are NVMM (each frame meta's tiles come from its own surface).
    pub(super) nvmm: bool,
    /// Tickets of clips being collected, by request id.
    pub(super) collecting: HashMap<u64, Ticket>,
    pub(super) frames: Vec<FrameDetections>,
    pub(super) sources: SourceLimit,
    /// What this run layers over the application's settings, and the result.
    pub(super) layers: RunLayers,
    pub(super) run: Settings,
    pub(super) settings_generation: u64,
    /// The scorer reads pixels (the label-based fallback does not: no tiles are sampled).
    pub(super) needs_pixels: bool,
    /// A batch of several frames in one system-memory buffer was reported once.
    pub(super) warned_batched: bool,
    /// Where DeepStream verdict metas go (the object layout, `unique-id`).
    pub(super) ds_layout: DeepStreamLayout,
    /// Writing DeepStream verdict metas failed once and was reported.
    pub(super) warned_ds_meta: bool,
    /// A batched NVMM transform failed once and was reported (the rest are counted).
    pub(super) warned_batch: bool,
    /// Scratch for the source ids of a buffer's frames.
    pub(super) source_ids: Vec<u32>,
    pub(super) last_stats: Instant,
}

impl IGuardVerify {
    /// Answers a request that never reached the pool.
    pub(super) fn end_unsubmitted(ticket: Ticket, status: Status, reason: &str) {
        ticket.finish(Outcome::unscored(status, reason));
    }

    /// Hands a finished clip to the pool. Requests answered at once (labels only, refused or
    /// evicted by the pool) go to `later`, delivered once `state` is released. With `wait`
    /// (`async=false`), returns the signal of the clip's verdict, to be waited for with no lock
    /// held; a flush or stop answers it (the pool's gate), so the wait ends with them.
    pub(super) fn submit(
        &self,
        state: &mut State,
        collected: Collected,
        wait: bool,
        later: &mut Answers,
    ) -> Option<Arc<Done>> {
        let id = collected.clip.request_id;
        let Some(mut ticket) = state.collecting.remove(&id) else {
            gst::warning!(CAT, imp = self, "clip {id} has no request");
            return None;
        };
        *ticket.info_mut() = request_info(&collected, state.running.pool().scorer_name());
        let clip = collected.clip;
        gst::debug!(
            CAT,
            imp = self,
            "clip {} of source {} ready ({} tiles, region {:?})",
            clip.request_id,
            clip.source.source_id,
            clip.real_frames,
            clip.region
        );
        if let Some(fallback) = &state.labels_only {
            // Microseconds: the label-based score needs no worker. A guess from labels is
            // never `verified`/`rejected` (those promise a model looked at the pixels): it is
            // `fallback`, with `positive` saying which side of the threshold it fell.
            let outcome = match fallback.score(&[&clip], &crate::scorer::Cancel::new()) {
                Ok(scores) if scores.len() == 1 => Outcome {
                    status: Status::Fallback,
                    score: scores[0].score,
                    label: scores[0].label.clone(),
                    reason: "labels only: NVIDIA's surface libraries are not available".into(),
                    queue_ms: 0.0,
                    processing_ms: 0.0,
                    // Scored on the streaming thread: no JPEG is encoded here.
                    snapshot: None,
                },
                _ => Outcome::unscored(Status::Error, "the label-based fallback failed"),
            };
            later.answer(ticket, outcome);
            return None;
        }
        let done = wait.then(|| ticket.done_signal());
        if let Some(answered) = state.running.pool().submit(ticket, clip) {
            later.push(answered);
        }
        done
    }

    /// Keeps the frames of admitted sources; returns the sources newly refused.
    pub(super) fn admit_sources(state: &mut State, frames: &mut Vec<FrameDetections>) -> Vec<u32> {
        let mut refused = Vec::new();
        frames.retain(|f| match state.sources.admit(f.source.source_id) {
            Admission::Admitted => true,
            Admission::RefusedNew => {
                refused.push(f.source.source_id);
                false
            }
            Admission::Refused => false,
        });
        state
            .running
            .sources_refused
            .store(state.sources.refused(), Ordering::Relaxed);
        refused
    }

    /// Feeds this buffer's frames to the clip assembler; returns the clips it finished.
    pub(super) fn collect(
        &self,
        state: &mut State,
        buf: &gst::BufferRef,
        info: &gst_video::VideoInfo,
        frames: &[FrameDetections],
        later: &mut Answers,
    ) -> (Vec<Collected>, Vec<(usize, u64)>) {
        let pts = buf.pts().map(|t| t.nseconds());
        let (width, height) = (info.width(), info.height());
        let State {
            assembler,
            frame_source,
            collecting,
            running,
            needs_pixels,
            labels_only,
            run,
            warned_batch,
            source_ids,
            ..
        } = state;
        // Labels-only (NVMM without NVIDIA's surface libraries): no tiles to read.
        let read_pixels = *needs_pixels && labels_only.is_none();
        // NVMM: one transform call for every tile of the buffer, cut after its last frame
        // (`fill_deferred`). A buffer carrying a source twice is read a tile at a time: its
        // second frame may end a clip (completed by repeating its last tile) whose tile the
        // first frame asked for.
        let batch = run.nvmm_batch
            && read_pixels
            && frame_source.is_nvmm()
            && distinct_sources(frames, source_ids);
        let (tile_width, tile_height) = (
            assembler.config().tile_width,
            assembler.config().tile_height,
        );
        let mut finished = Vec::new();
        let mut assigned = Vec::new();
        assembler.begin_buffer();
        let mut pixels = frame_source.pixels(buf, info, batch);
        for fd in frames {
            let outcome = assembler.push(
                fd.source,
                &fd.detections,
                width,
                height,
                fd.source.pts.or(pts),
                &mut || {
                    let t = running.reporter.open(RequestInfo {
                        source_id: fd.source.source_id,
                        pad_index: fd.source.pad_index,
                        scorer: running.pool().scorer_name().to_string(),
                        ..Default::default()
                    });
                    let id = t.id();
                    collecting.insert(id, t);
                    id
                },
                &mut |region, tile| {
                    if !read_pixels {
                        return Ok(());
                    }
                    pixels.tile(fd.source.batch_index, region, tile_width, tile_height, tile)
                },
            );
            lock(&running.incidents).frame(&fd.source, fd.source.pts.or(pts), &outcome, assembler);
            // A clip's verdict names its object from the start (also when it is abandoned).
            for o in &outcome.opened {
                if let Some(t) = collecting.get_mut(&o.request_id) {
                    let info = t.info_mut();
                    info.object_id = o.object_id;
                    info.trigger_label.clone_from(&o.trigger_label);
                    info.start_pts = o.start_pts;
                }
            }
            for (c, reason) in outcome.dropped {
                gst::debug!(CAT, imp = self, "clip {} dropped: {reason}", c.request_id);
                if let Some(mut t) = collecting.remove(&c.request_id) {
                    *t.info_mut() = request_info(&c, running.pool().scorer_name());
                    later.answer(t, Outcome::unscored(Status::Dropped, reason));
                }
            }
            for (id, reason) in outcome.failed {
                self.answer_abandoned(collecting, later, id, &reason);
            }
            for id in outcome.started {
                gst::debug!(
                    CAT,
                    imp = self,
                    "source {} triggered clip {id}",
                    fd.source.source_id
                );
            }
            finished.extend(outcome.finished);
            // Only a buffer of one frame's ROI metas gets its ids written back.
            if frames.len() == 1 {
                assigned = outcome.assigned;
            }
        }
        if batch && (pixels.deferred() > 0 || !assembler.sampled().is_empty()) {
            let mut out = Deferred {
                assembler,
                finished: &mut finished,
                collecting,
                later,
                warned: warned_batch,
            };
            self.fill_deferred(&mut pixels, &mut out);
        }
        (finished, assigned)
    }

    /// Cuts the tiles this buffer deferred (NVMM, `nvmm-batch=true`) with one transform call
    /// and puts each in its clip: one still collecting, or one this buffer finished (a clip
    /// dropped meanwhile needs none). When that call fails (counted in `nvmm-batch-failures`;
    /// the first failure of a run is a warning), each tile is cut with a call of its own; a clip
    /// whose tile still cannot be read is abandoned with the reason, as a failed sample is.
    fn fill_deferred(&self, pixels: &mut Pixels<'_>, out: &mut Deferred<'_>) {
        let assembler = &mut *out.assembler;
        let (tw, th) = (
            assembler.config().tile_width,
            assembler.config().tile_height,
        );
        let budget = assembler.limits().max_tiles_per_buffer;
        let (n, sampled) = (pixels.deferred(), assembler.sampled().len());
        let mut failed: Vec<(SampledTile, String)> = Vec::new();
        if n != sampled {
            // Every tile the assembler was told was filled was deferred, in order: a
            // mismatch would put tiles in the wrong clips, so none is kept.
            let e = format!("{n} NVMM tiles were deferred for {sampled} sampled tiles");
            gst::error!(CAT, imp = self, "{e}");
            failed.extend(assembler.sampled().iter().map(|&t| (t, e.clone())));
        } else {
            let finished = &mut *out.finished;
            let batched = pixels.cut_deferred(tw, th, budget, &mut |i, write| {
                let Some(&t) = assembler.sampled().get(i) else {
                    return Ok(());
                };
                match tile_of(assembler, finished, t) {
                    Some(dest) => write(dest),
                    None => Ok(()),
                }
            });
            if let Err(e) = &batched {
                if !std::mem::replace(out.warned, true) {
                    gst::warning!(
                        CAT,
                        imp = self,
                        "one NvBufSurfTransform call for this buffer's {n} tiles failed: {e}; \
                         they are cut one call each (later failures are counted in stats, \
                         nvmm-batch-failures)"
                    );
                } else {
                    gst::debug!(CAT, imp = self, "batched transform of {n} tiles: {e}");
                }
                for i in 0..n {
                    let t = assembler.sampled()[i];
                    let Some(dest) = tile_of(assembler, finished, t) else {
                        continue;
                    };
                    if let Err(e) = pixels.cut_one(i, tw, th, dest) {
                        failed.push((t, e));
                    }
                }
            }
        }
        for (t, e) in failed {
            match out
                .finished
                .iter()
                .position(|c| c.clip.request_id == t.request_id)
            {
                Some(j) => {
                    out.finished.remove(j);
                }
                None => {
                    out.assembler.fail_clip(t.source, t.request_id);
                }
            }
            self.answer_abandoned(out.collecting, out.later, t.request_id, &e);
        }
    }

    /// Clip `id` was abandoned because its pixels could not be read: its request ends `error`.
    fn answer_abandoned(
        &self,
        collecting: &mut HashMap<u64, Ticket>,
        later: &mut Answers,
        id: u64,
        reason: &str,
    ) {
        gst::warning!(CAT, imp = self, "clip {id} abandoned: {reason}");
        if let Some(t) = collecting.remove(&id) {
            let reason = format!("sampling failed: {reason}");
            later.answer(t, Outcome::unscored(Status::Error, reason));
        }
    }
}

/// Where the tiles of a buffer go once cut, and how a failure is answered.
struct Deferred<'a> {
    assembler: &'a mut ClipAssembler,
    finished: &'a mut Vec<Collected>,
    collecting: &'a mut HashMap<u64, Ticket>,
    later: &'a mut Answers,
    warned: &'a mut bool,
}

/// Where tile `t` goes: its clip still collecting, or one this buffer finished; `None` for a
/// clip gone meanwhile (dropped or abandoned), which needs no tile.
fn tile_of<'a>(
    assembler: &'a mut ClipAssembler,
    finished: &'a mut [Collected],
    t: SampledTile,
) -> Option<&'a mut [u8]> {
    match assembler.tile_mut(t) {
        Some(dest) => Some(dest),
        None => finished
            .iter_mut()
            .find(|c| c.clip.request_id == t.request_id)
            .and_then(|c| c.clip.tile_mut(t.index as usize)),
    }
}

/// Whether every frame of a buffer is of another source (`ids`: scratch, kept between
/// buffers).
fn distinct_sources(frames: &[FrameDetections], ids: &mut Vec<u32>) -> bool {
    ids.clear();
    ids.extend(frames.iter().map(|f| f.source.source_id));
    ids.sort_unstable();
    ids.windows(2).all(|w| w[0] != w[1])
}

/// What the verdict of a collected clip says about it: whom (the object) and where (the crop).
fn request_info(c: &Collected, scorer: &str) -> RequestInfo {
    RequestInfo {
        object_id: c.object_id,
        crop: c.last_crop(),
        zones: c.zones.clone(),
        ..RequestInfo::from_clip(&c.clip, scorer)
    }
}
