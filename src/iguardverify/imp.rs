// SPDX-License-Identifier: MIT OR Apache-2.0
//! GObject glue of `iguardverify`: the element's state, the vfuncs (start, stop, caps, events,
//! the transform) and the order of the steps. The steps live beside what they drive: the
//! collect step (detections → clips → requests) in `collect.rs`, verdict delivery (messages,
//! mailbox, events, metadata on buffers) in `delivery.rs`, incidents in `incidents.rs`, the
//! properties in `properties.rs` and `settings.rs`; the logic in `clip`, `sampler`, `pool`,
//! `scorer::factory`, `detections`, `mailbox` and `meta`.
//!
//! Locks, in the order they may be taken: `state` (streaming thread) → `settings` →
//! `effective`; `running` alone; the pool's and reporter's own locks → the mailbox / the
//! outbox (leaves). `settings` is only held to copy values out. Verdicts are delivered (message posted, mailbox filled)
//! without `state` or `running`, and nothing is posted while one of our locks is held, so an
//! application may read any property, or flush the pipeline, from a bus sync handler: requests
//! the streaming thread answers itself (dropped, failed, labels-only, evicted from a full queue)
//! are collected in an `Answers` under `state` and delivered after it is released. Incidents
//! (`incidents.rs`) are kept under their own lock, taken after `state`; their messages are
//! posted by a `Poster`, never under a lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use super::collect::State;
use super::courier::Courier;
use super::delivery::Running;
use super::settings::*;
use super::stats::Stats;
use crate::clip::ClipAssembler;
use crate::deepstream::events::stream_eos_source;
use crate::detections::deepstream::carries_batch_meta;
use crate::detections::{AutoReader, roi};
use crate::frames::{self, FrameSource};
use crate::incident::EndReason;
use crate::instance::{self};
use crate::pool::{Answers, Done, Outcome, Pool};
use crate::scorer::Scorer;
use crate::scorer::factory::{self, Problem};
use crate::scorer::fallback::FallbackScorer;
use crate::sources::SourceLimit;
use crate::sync::lock;
use crate::verdict::Status;

pub(super) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "iguardverify",
        gst::DebugColorFlags::empty(),
        Some("iGuard Stage-2 verification"),
    )
});

/// How long `stop()` waits for worker threads to end once every request is answered.
const STOP_JOIN_WAIT: Duration = Duration::from_secs(2);
/// How long a flush waits for verdicts a worker was already delivering when it began, so that
/// none of them is attached after the seek.
const FLUSH_SETTLE_WAIT: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct IGuardVerify {
    /// The properties as the application set them.
    settings: Mutex<Settings>,
    /// The settings in force for the current (or last) run: `effective-settings`.
    effective: Mutex<Option<Settings>>,
    state: Mutex<Option<State>>,
    running: Mutex<Option<Running>>,
    /// The last run's figures, kept readable after stop.
    last_stats: Mutex<Option<gst::Structure>>,
    custom_scorer: Mutex<Option<Arc<dyn Scorer>>>,
    /// Pushes verdict events no buffer came to carry; started in `start()`, ended in `stop()`.
    courier: Mutex<Option<Courier>>,
}

#[glib::object_subclass]
impl ObjectSubclass for IGuardVerify {
    const NAME: &'static str = "GstIGuardVerify";
    type Type = super::IGuardVerify;
    type ParentType = gst_base::BaseTransform;
}

impl IGuardVerify {
    pub(super) fn set_scorer(&self, scorer: Option<Arc<dyn Scorer>>) {
        *lock(&self.custom_scorer) = scorer;
    }

    fn running(&self) -> Option<Running> {
        lock(&self.running).clone()
    }

    fn stats_structure(&self) -> gst::Structure {
        if let Some(r) = self.running() {
            return r.stats().to_structure();
        }
        if let Some(s) = lock(&self.last_stats).clone() {
            return s;
        }
        let (max_workers, queue_size) = {
            let s = lock(&self.settings);
            (s.max_workers, s.queue_size)
        };
        Stats {
            max_workers,
            queue_size,
            ..Default::default()
        }
        .to_structure()
    }

    fn post_stats(&self, running: &Running) {
        let s = running.stats().to_structure();
        let obj = self.obj();
        let _ = obj.post_message(gst::message::Element::builder(s).src(&*obj).build());
    }

    fn setting_names() -> impl Iterator<Item = &'static str> {
        Self::properties()
            .iter()
            .map(|p| p.name())
            .filter(|n| !matches!(*n, "stats" | "effective-settings"))
    }

    fn warn(&self, problem: Problem, message: &str) {
        match problem {
            Problem::Model => {
                gst::element_imp_warning!(self, gst::LibraryError::Init, ("{}", message))
            }
            Problem::Server => {
                gst::element_imp_warning!(self, gst::ResourceError::OpenRead, ("{}", message))
            }
        }
    }

    /// Copies the properties that may change while playing into the streaming state.
    fn refresh_settings(&self, state: &mut State) {
        let run = {
            let settings = lock(&self.settings);
            if settings.generation == state.settings_generation {
                return;
            }
            state.settings_generation = settings.generation;
            settings.layered(&state.layers)
        };
        state.assembler.set_config(run.clip_config());
        state.assembler.set_track_config(run.track_config());
        state.assembler.set_limits(run.clip_limits());
        state.running.reporter.set_threshold(run.threshold);
        *lock(&self.effective) = Some(run.clone());
        state.run = run;
    }

    /// EOS: completes partial clips, waits for every pending verdict (bounded by
    /// `worker-timeout` without progress), then answers what is left `dropped`. A stop on the
    /// way (the gate closes) ends the wait at once.
    fn drain(&self) {
        let mut later = Answers::default();
        let (running, timeout) = {
            let mut guard = lock(&self.state);
            let Some(state) = guard.as_mut() else { return };
            for clip in state.assembler.finish_partial() {
                // Partial clips are always submitted asynchronously: we wait for all below.
                let _ = self.submit(state, clip, false, &mut later);
            }
            (state.running.clone(), state.run.worker_timeout())
        };
        later.finish();
        if !running.reporter.wait_idle(timeout + Duration::from_secs(1))
            && running.reporter.gate().is_none()
        {
            gst::warning!(
                CAT,
                imp = self,
                "EOS: verification made no progress; dropping the rest"
            );
            running
                .pool()
                .cancel_for(&running.reporter, "eos: verification stalled");
        }
        running.end_incidents(&self.obj(), EndReason::Eos);
        // Every change on the bus before the EOS goes on.
        running
            .poster
            .flush(self.obj().upcast_ref(), FLUSH_SETTLE_WAIT);
        self.post_stats(&running);
    }

    /// DeepStream's per-stream EOS (serialized: on the streaming thread): one camera of the batch
    /// ended. Its clips end as at EOS (partial ones completed and submitted, without waiting:
    /// the other cameras go on), its slot is given back to `max-sources`, and its verdicts stop
    /// waiting for a buffer of it.
    fn end_source(&self, source: u32) {
        let mut later = Answers::default();
        let (running, ended, released) = {
            let mut guard = lock(&self.state);
            let Some(state) = guard.as_mut() else { return };
            let clips = state.assembler.finish_source(source);
            let ended = clips.len();
            for clip in clips {
                let _ = self.submit(state, clip, false, &mut later);
            }
            (state.running.clone(), ended, state.sources.release(source))
        };
        later.finish();
        lock(&running.incidents).end_source(source);
        running.post_incidents(&self.obj());
        lock(&running.mailbox).close_source(source);
        gst::debug!(
            CAT,
            imp = self,
            "stream of source {source} ended: {ended} clips submitted, slot released: {released}"
        );
        self.push_verdict_events(&running);
    }

    /// FlushStart (not serialized: the streaming thread may be busy): nothing submitted from
    /// now on reaches a worker, and what is queued or running is answered `dropped`.
    fn flush_start(&self) {
        if let Some(r) = self.running() {
            r.reporter.set_gate(Some("flushing"));
            r.pool().cancel_for(&r.reporter, "flushing");
        }
    }

    /// FlushStop: answers the clips being collected, waits for verdicts in delivery, forgets
    /// the waiting ones (they belong before the seek) and opens the pool again.
    fn flush_stop(&self) {
        let mut later = Answers::default();
        let running = {
            let mut guard = lock(&self.state);
            let Some(state) = guard.as_mut() else { return };
            for id in state.assembler.abandon_all() {
                if let Some(t) = state.collecting.remove(&id) {
                    later.answer(t, Outcome::unscored(Status::Dropped, "flushing"));
                }
            }
            state.sources.clear();
            state.running.clone()
        };
        // Delivered with no lock held; then the mailbox forgets them with the rest.
        later.finish();
        if !running.reporter.wait_settled(FLUSH_SETTLE_WAIT) {
            gst::warning!(CAT, imp = self, "flush: a verdict was still in delivery");
        }
        running.end_incidents(&self.obj(), EndReason::Flush);
        lock(&running.mailbox).clear();
        running.reporter.set_gate(None);
    }
}

impl ObjectImpl for IGuardVerify {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(super::properties::list);
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if pspec.flags().contains(gst::PARAM_FLAG_MUTABLE_READY) && self.running().is_some() {
            gst::warning!(
                CAT,
                imp = self,
                "{} takes effect at the next start (READY to PAUSED), not while running",
                pspec.name()
            );
        }
        let name = pspec.name();
        let mut s = lock(&self.settings);
        s.set(name, value);
        if let Some(known) = Self::setting_names().find(|n| *n == name) {
            s.mark_explicit(known);
        }
        let zones = matches!(name, "zones" | "trigger-zones" | "ignore-zones")
            .then(|| s.zone_warning())
            .flatten();
        drop(s);
        if let Some(problem) = zones {
            gst::element_imp_warning!(
                self,
                gst::LibraryError::Settings,
                ("{}; the element will not start until it is fixed", problem)
            );
        }
        gst::debug!(CAT, imp = self, "{} set to {:?}", name, value);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "stats" => self.stats_structure().to_value(),
            "effective-settings" => {
                let effective = lock(&self.effective).clone();
                effective
                    .unwrap_or_else(|| lock(&self.settings).clone())
                    .to_structure(Self::setting_names())
                    .to_value()
            }
            name => lock(&self.settings)
                .get(name)
                .map(Into::into)
                .unwrap_or_else(|| pspec.default_value().clone()),
        }
    }
}

impl GstObjectImpl for IGuardVerify {}

impl ElementImpl for IGuardVerify {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "iGuard verification",
                "Filter/Analyzer/Video",
                "Verifies first-stage detections (person, weapon) with a clip-level action model \
                 on a worker pool, without stalling the video; reports verdicts as bus messages \
                 and IGuardVerificationMeta",
                "iguardverify developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            use gst_video::VideoFormat::*;
            let mut caps = gst_video::VideoCapsBuilder::new()
                .format_list([
                    Rgba, Bgra, Rgbx, Bgrx, Argb, Abgr, Xrgb, Xbgr, Rgb, Bgr, Nv12, I420,
                ])
                .build();
            // NVMM batches (NvBufSurface) as nvstreammux / nvinfer / nvvideoconvert give them;
            // the pixels stay where they are and only tiles are read (`frames`).
            caps.merge(
                gst_video::VideoCapsBuilder::new()
                    .features([frames::NVMM_FEATURE])
                    .format_list([Nv12, Rgba, Bgra, Rgbx, Bgrx])
                    .build(),
            );
            crate::src_sink_templates(&caps)
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        // Before the base class takes the stream lock: the streaming thread may be waiting for
        // a verdict (async=false) or in the EOS drain. Closing the gate and answering our
        // requests ends both waits, so stopping never waits for a scorer.
        if transition == gst::StateChange::PausedToReady
            && let Some(r) = self.running()
        {
            r.reporter.set_gate(Some("stopped"));
            r.pool().cancel_for(&r.reporter, "stopped");
        }
        self.parent_change_state(transition)
    }
}

impl BaseTransformImpl for IGuardVerify {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings_error = |e: String| gst::error_msg!(gst::LibraryError::Settings, ("{}", e));
        let user = lock(&self.settings).clone();
        let layered = user.read_layers().map_err(settings_error)?;
        for w in &layered.warnings {
            gst::element_imp_warning!(self, gst::LibraryError::Settings, ("{}", w));
        }
        let mut layers = layered.layers;
        let run = user.layered(&layers);
        let reader: AutoReader = run.reader().map_err(settings_error)?;
        if let Some(e) = crate::analytics::library().err() {
            // Said once per process: before GStreamer 1.24 this is the normal case.
            static TOLD: AtomicBool = AtomicBool::new(false);
            if !TOLD.swap(true, Ordering::Relaxed) {
                gst::debug!(CAT, imp = self, "{e}");
            }
        }
        let ds_layout = run.deepstream_layout().map_err(settings_error)?;

        let key = instance::Key {
            scorer: run.scorer_spec(),
            pool: run.pool_config(POOL_SEQ.fetch_add(1, Ordering::Relaxed).to_string()),
        };
        let custom = lock(&self.custom_scorer).clone();
        let mut warnings = Vec::new();
        let (instance, shared) =
            instance::acquire(run.model_instance_id.as_deref(), key.clone(), || {
                let built = match custom {
                    Some(scorer) => factory::Built {
                        scorer,
                        dims: [None; 3],
                        warnings: Vec::new(),
                        description: "the application's scorer".into(),
                    },
                    None => factory::build(&key.scorer).map_err(|e| match e.problem {
                        Problem::Model => {
                            gst::error_msg!(gst::LibraryError::Init, ("{}", e.message))
                        }
                        Problem::Server => {
                            gst::error_msg!(gst::ResourceError::OpenRead, ("{}", e.message))
                        }
                    })?,
                };
                gst::info!(CAT, imp = self, "scorer: {}", built.description);
                warnings = built.warnings;
                let pool = Pool::new(key.pool.clone(), built.scorer).map_err(|e| {
                    gst::error_msg!(
                        gst::ResourceError::Failed,
                        ("Cannot start the worker pool: {}", e)
                    )
                })?;
                Ok::<_, gst::ErrorMessage>(instance::Spec {
                    pool,
                    dims: built.dims,
                })
            })?;
        // Posted now, with no lock held (a bus sync handler may read properties).
        for w in &warnings {
            self.warn(w.problem, &w.message);
        }
        if shared {
            let differences = instance.key.differences(&key);
            if !differences.is_empty() {
                gst::element_imp_warning!(
                    self,
                    gst::LibraryError::Settings,
                    (
                        "model-instance-id={:?} is shared: the instance keeps the settings it \
                         was started with, and this element's differ ({}): they are ignored",
                        instance.id.as_deref().unwrap_or(""),
                        differences.join("; ")
                    )
                );
            }
        }
        let (requested, explicit) = run.requested_shape();
        let checked = factory::clip_shape(requested, explicit, instance.dims).and_then(|shape| {
            layers.shape = Some(shape);
            let run = user.layered(&layers);
            run.validate().map(|()| run)
        });
        let run = match checked {
            Ok(run) => run,
            Err(e) => {
                instance::release(&instance, STOP_JOIN_WAIT);
                return Err(settings_error(e));
            }
        };

        let mut assembler = ClipAssembler::with_tracks(run.clip_config(), run.track_config());
        assembler.set_limits(run.clip_limits());
        // Checked with the other settings above.
        assembler.set_zones(run.zone_rule().unwrap_or_default());
        let (running, courier) =
            match Running::start(&self.obj(), &run, instance.clone(), assembler.counters()) {
                Ok(started) => started,
                Err(e) => {
                    instance::release(&instance, STOP_JOIN_WAIT);
                    return Err(gst::error_msg!(
                        gst::ResourceError::Failed,
                        ("Cannot start the verdict event thread: {}", e)
                    ));
                }
            };
        gst::info!(
            CAT,
            imp = self,
            "started: scorer {}, {} workers, queue {}",
            running.pool().scorer_name(),
            running.pool().config().max_workers,
            running.pool().config().queue_size
        );
        *lock(&self.effective) = Some(run.clone());
        *lock(&self.state) = Some(State {
            needs_pixels: running.pool().needs_pixels(),
            running: running.clone(),
            info: None,
            reader: Box::new(reader),
            assembler,
            frame_source: FrameSource::system(),
            labels_only: None,
            nvmm: false,
            collecting: HashMap::new(),
            frames: Vec::new(),
            sources: SourceLimit::new(run.max_sources as usize),
            layers,
            settings_generation: user.generation,
            run,
            warned_batched: false,
            ds_layout,
            warned_ds_meta: false,
            warned_batch: false,
            source_ids: Vec::new(),
            last_stats: Instant::now(),
        });
        *lock(&self.running) = Some(running);
        *lock(&self.courier) = Some(courier);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        // The pads are inactive by now: a delivery in progress ends at once.
        let courier = lock(&self.courier).take();
        if let Some(c) = courier
            && !c.stop(STOP_JOIN_WAIT)
        {
            gst::warning!(CAT, imp = self, "the verdict event thread did not end");
        }
        let state = lock(&self.state).take();
        let Some(mut state) = state else {
            return Ok(());
        };
        for (_, ticket) in state.collecting.drain() {
            Self::end_unsubmitted(ticket, Status::Dropped, "stopped");
        }
        let running = state.running.clone();
        drop(state);
        // Other elements may share the pool: answer only ours, then leave it.
        running.reporter.set_gate(Some("stopped"));
        running.pool().cancel_for(&running.reporter, "stopped");
        running.end_incidents(&self.obj(), EndReason::Stop);
        let left = instance::release(&running.instance, STOP_JOIN_WAIT);
        if left > 0 {
            gst::warning!(
                CAT,
                imp = self,
                "{left} worker threads are stuck in the scorer and were left behind; their \
                 requests were answered"
            );
        }
        *lock(&self.last_stats) = Some(running.stats().to_structure());
        *lock(&self.running) = None;
        gst::info!(
            CAT,
            imp = self,
            "stopped: {:?}",
            running.reporter.counters()
        );
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "Cannot parse caps {}", incaps))?;
        gst::debug!(CAT, imp = self, "caps {}", incaps);
        let nvmm = frames::is_nvmm(incaps);
        let mut guard = lock(&self.state);
        let Some(state) = guard.as_mut() else {
            return Ok(());
        };
        state.info = Some(info);
        state.nvmm = nvmm;
        // The label-based scorer reads no tiles: NVMM then needs no NVIDIA library.
        if !nvmm || !state.needs_pixels {
            if state.frame_source.is_nvmm() {
                state.frame_source = FrameSource::system();
            }
            state.labels_only = None;
            return Ok(());
        }
        // Opened (or found missing and reported) at the first NVMM caps of the run.
        if state.frame_source.is_nvmm() || state.labels_only.is_some() {
            return Ok(());
        }
        let fallback_on_error = state.run.fallback_on_error;
        let weapon_labels = state.run.scorer_spec().weapon_labels;
        let problem = match FrameSource::nvmm(state.running.transforms.clone()) {
            Ok(source) => {
                state.frame_source = source;
                state.labels_only = None;
                None
            }
            Err(e) => {
                if fallback_on_error {
                    state.labels_only = Some(FallbackScorer::new(weapon_labels));
                }
                Some(e)
            }
        };
        drop(guard);
        match problem {
            None => Ok(()),
            Some(e) if fallback_on_error => {
                gst::element_imp_warning!(
                    self,
                    gst::LibraryError::Init,
                    (
                        "Cannot read NVMM frames: {}; the video passes and clips are scored \
                         from their labels only (fallback-on-error=true), as `fallback` verdicts",
                        e
                    )
                );
                Ok(())
            }
            Some(e) => {
                gst::element_imp_error!(
                    self,
                    gst::LibraryError::Init,
                    ("Cannot read NVMM frames: {}", e),
                    ["fallback-on-error=false"]
                );
                Err(gst::loggable_error!(CAT, "NVMM frames unreadable: {}", e))
            }
        }
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        if let Some(source) = stream_eos_source(&event) {
            self.end_source(source);
        }
        match event.view() {
            gst::EventView::FlushStart(_) => self.flush_start(),
            gst::EventView::FlushStop(_) => self.flush_stop(),
            gst::EventView::Eos(_) => {
                self.drain();
                if let Some(r) = self.running() {
                    self.push_verdict_events(&r);
                }
            }
            _ => (),
        }
        self.parent_sink_event(event)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        // Requests this thread answers itself, delivered once `state` is released (declared
        // before the guard, so an early return drops the guard first).
        let mut later = Answers::default();
        let mut guard = lock(&self.state);
        let Some(state) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        let Some(info) = state.info.clone() else {
            drop(guard);
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("No caps were set before the first buffer")
            );
            return Err(gst::FlowError::NotNegotiated);
        };
        self.refresh_settings(state);

        let mut frames = std::mem::take(&mut state.frames);
        state.reader.recycle(&mut frames);
        if state.run.enabled {
            state.reader.read(buf, &mut frames);
        }
        let refused_before = state.sources.refused();
        let refused = Self::admit_sources(state, &mut frames);
        // One warning per run names the first refused source; the rest are counted.
        let warn_refused = refused.first().copied().filter(|_| refused_before == 0);
        if frames.len() > 1 && !state.warned_batched && !state.nvmm {
            state.warned_batched = true;
            gst::warning!(
                CAT,
                imp = self,
                "{} frames (sources) in one system-memory buffer: every source's tiles are cut \
                 from the one image this buffer holds. For batched DeepStream pipelines, put \
                 nvstreamdemux (or batch-size=1) before nvvideoconvert and this element",
                frames.len()
            );
        }
        let (finished, assigned) = self.collect(state, buf, &info, &frames, &mut later);
        // Only the ROI-meta path (system memory, no DeepStream batch) has metas to write to.
        if !assigned.is_empty() && !state.nvmm && !carries_batch_meta(buf) {
            roi::write_object_ids(buf, &assigned);
            // And to od mtds that came untracked, as tracking mtds (GStreamer 1.24 and later).
            if let Some(fd) = frames.first() {
                crate::detections::analytics::write_tracking_ids(buf, &fd.detections, &assigned);
            }
        }
        let wait = !state.run.async_;
        let waits: Vec<Arc<Done>> = finished
            .into_iter()
            .filter_map(|clip| self.submit(state, clip, wait, &mut later))
            .collect();
        if !waits.is_empty() {
            // async=false: wait for this buffer's verdicts with no lock held (their delivery
            // posts messages), then attach them below.
            let limit = state.run.worker_timeout() + Duration::from_secs(1);
            drop(guard);
            std::mem::take(&mut later).finish();
            // The pool enforces the deadline; the margin only covers scheduling.
            if !waits.iter().all(|done| done.wait(limit)) {
                gst::warning!(
                    CAT,
                    imp = self,
                    "no verdict within worker-timeout (async=false)"
                );
            }
            guard = lock(&self.state);
        }
        // Taken again after an async=false wait (the streaming thread holds the stream lock,
        // so only a flush from a bus sync handler on this thread can have run meanwhile).
        let Some(state) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };

        let ds_error = self.attach_verdicts(state, buf, &frames);
        state.frames = frames;

        let post = match state.run.stats_interval() {
            Some(i) if state.last_stats.elapsed() >= i => {
                state.last_stats = Instant::now();
                Some(state.running.clone())
            }
            _ => None,
        };
        let max_sources = state.run.max_sources;
        let running = state.running.clone();
        drop(guard);
        later.finish();
        running.post_incidents(&self.obj());
        self.push_verdict_events(&running);
        if let Some(e) = ds_error {
            gst::element_imp_warning!(
                self,
                gst::LibraryError::Failed,
                ("Cannot write verdicts as DeepStream metadata: {}", e),
                ["the verdicts still go out as IGuardVerificationMeta and bus messages"]
            );
        }
        if let Some(source) = warn_refused {
            gst::element_imp_warning!(
                self,
                gst::StreamError::Demux,
                (
                    "source {} is beyond max-sources={}: its detections are not followed",
                    source,
                    max_sources
                ),
                ["further ones are counted in stats (sources-refused)"]
            );
        }
        if let Some(r) = post {
            self.post_stats(&r);
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

static POOL_SEQ: AtomicU64 = AtomicU64::new(1);
