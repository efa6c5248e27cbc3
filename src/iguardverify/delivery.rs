// SPDX-License-Identifier: MIT OR Apache-2.0
//! Verdict delivery of `iguardverify`: where a verdict goes once the pool answers it (the bus
//! message, the mailbox for the next buffer of its source, the `iguard-verdict` event for
//! `iguardpublish`, its incident's change), and on the streaming thread, attaching the
//! mailbox's verdicts to buffers (`IGuardVerificationMeta`, DeepStream metadata, GstAnalytics
//! classification mtds) and pushing the events waiting. Owns [`Running`], what delivery and the
//! `stats` property share; knows nothing of clips or properties.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::collect::State;
use super::courier::{self, Courier};
use super::imp::{CAT, IGuardVerify};
use super::incidents::{self, Keeper, Poster};
use super::settings::Settings;
use super::stats::{ClipStats, Stats, TransformStats};
use crate::analytics;
use crate::clip::ClipCounters;
use crate::deepstream::tiles::TransformCounters;
use crate::deepstream::verdict_meta::{AttachError, Target, attach_verdict};
use crate::detections::FrameDetections;
use crate::detections::deepstream::carries_batch_meta;
use crate::incident::EndReason;
use crate::instance::Instance;
use crate::mailbox::VerdictMailbox;
use crate::meta;
use crate::pool::{Pool, Reporter};
use crate::publish::wire;
use crate::sync::lock;
use crate::verdict::{Status, Verdict};

/// How long a verdict event waits for a buffer to go out before; past it the courier pushes
/// it (a live source that stalled sends no buffer).
const EVENT_MAX_WAIT: Duration = Duration::from_millis(200);

/// What verdict delivery and the `stats` property need; cheap to clone out of its lock.
#[derive(Clone)]
pub(super) struct Running {
    pub(super) reporter: Arc<Reporter>,
    pub(super) instance: Arc<Instance>,
    pub(super) mailbox: Arc<Mutex<VerdictMailbox>>,
    /// Verdicts for `iguardpublish`, pushed downstream as `iguard-verdict` events by the
    /// streaming thread (before each buffer, and before EOS after the drain), or by the courier
    /// when no buffer came for `EVENT_MAX_WAIT`.
    pub(super) outbox: Arc<Mutex<wire::Outbox>>,
    pub(super) courier: Arc<courier::Signal>,
    pub(super) sources_refused: Arc<AtomicU64>,
    pub(super) clips: Arc<ClipCounters>,
    /// NVIDIA's transform on NVMM input: calls, tiles, batched calls that failed.
    pub(super) transforms: Arc<TransformCounters>,
    pub(super) incidents: Arc<Mutex<Keeper>>,
    pub(super) incident_counts: Arc<Mutex<incidents::Counts>>,
    pub(super) poster: Arc<Poster>,
}

impl Running {
    pub(super) fn pool(&self) -> &Pool {
        &self.instance.pool
    }

    pub(super) fn stats(&self) -> Stats {
        let (results_waiting, results_overflowed) = {
            let m = lock(&self.mailbox);
            (m.waiting() as u32, m.overflowed())
        };
        let config = self.pool().config();
        Stats {
            counters: self.reporter.counters(),
            pool: self.pool().stats(),
            max_workers: config.max_workers as u32,
            queue_size: config.queue_size as u32,
            results_waiting,
            results_overflowed,
            publish_overflowed: lock(&self.outbox).overflowed,
            sources_refused: self.sources_refused.load(Ordering::Relaxed),
            snapshots_encoded: self.reporter.snapshot_counters().encoded(),
            snapshots_skipped: self.reporter.snapshot_counters().skipped(),
            scorer: self.pool().scorer_name().to_string(),
            pool_name: config.name.clone(),
            model_instance_id: self.instance.id.clone().unwrap_or_default(),
            instance_users: self.instance.users() as u32,
            clips: ClipStats::of(&self.clips),
            transforms: TransformStats::of(&self.transforms),
            incidents: *lock(&self.incident_counts),
        }
    }

    /// Posts the incident changes waiting, with no lock held.
    pub(super) fn post_incidents(&self, element: &super::IGuardVerify) {
        self.poster.post_all(element.upcast_ref());
    }

    /// Ends every incident (EOS, flush, stop) and posts the changes.
    pub(super) fn end_incidents(&self, element: &super::IGuardVerify, reason: EndReason) {
        lock(&self.incidents).end_all(reason);
        self.post_incidents(element);
    }
}

impl Running {
    /// Sets up delivery for one run of `element` with `run`'s settings: the mailbox, the outbox
    /// and its courier thread, the incidents, and the reporter that routes every verdict.
    /// Fails when the courier's thread cannot start (the caller releases `instance`).
    pub(super) fn start(
        element: &super::IGuardVerify,
        run: &Settings,
        instance: Arc<Instance>,
        clips: Arc<ClipCounters>,
    ) -> std::io::Result<(Running, Courier)> {
        let mailbox = Arc::new(Mutex::new(VerdictMailbox::new(
            run.result_queue_size as usize,
        )));
        let outbox = Arc::new(Mutex::new(wire::Outbox::new(wire::OUTBOX_CAPACITY)));
        let weak = element.downgrade();
        let courier = Courier::start(
            "iguard-courier".into(),
            EVENT_MAX_WAIT,
            courier::delivery(weak.clone(), outbox.clone()),
        )?;
        let signal = courier.signal();
        let poster = Arc::new(Poster::default());
        // One run id per start, on the verdicts and the incidents alike.
        let (run_id, name) = (wire::run_id(), element.name().to_string());
        let keeper = Arc::new(Mutex::new(Keeper::new(
            run.incident_config(),
            incidents::Origin {
                run_id: run_id.clone(),
                element: name.clone(),
            },
            outbox.clone(),
            signal.clone(),
            poster.clone(),
        )));
        let incident_counts = lock(&keeper).counts();
        let (mb, out, sig) = (mailbox.clone(), outbox.clone(), signal.clone());
        let (kp, po) = (keeper.clone(), poster.clone());
        let reporter = Reporter::new(run.threshold, move |v: &Verdict| {
            // The bus first: an application that sees a verdict as meta on a buffer has had
            // its message already (the streaming thread reads the mailbox at any moment).
            let obj = weak.upgrade();
            if let Some(obj) = &obj {
                gst::log!(CAT, obj = obj, "verdict {:?}", v);
                let s = meta::to_structure(meta::MESSAGE_NAME, v);
                let _ = obj.post_message(gst::message::Element::builder(s).src(obj).build());
            }
            lock(&mb).push(v.clone());
            lock(&out).push(wire::verdict_event(v, &run_id, &name));
            sig.queued();
            let Some(obj) = obj else { return };
            // After the verdict's own message and event: its incident's change follows them.
            lock(&kp).verdict(v);
            po.post_all(obj.upcast_ref());
        });
        reporter.set_snapshot(run.snapshot_config());
        let running = Running {
            incidents: keeper,
            incident_counts,
            poster,
            clips,
            reporter,
            instance,
            mailbox,
            outbox,
            courier: signal,
            sources_refused: Arc::new(AtomicU64::new(0)),
            transforms: Arc::default(),
        };
        Ok((running, courier))
    }
}

impl IGuardVerify {
    /// Attaches at most one waiting verdict per source `frames` carries to `buf`, as
    /// `IGuardVerificationMeta` and, on a DeepStream batch, as DeepStream metadata. Returns the
    /// first DeepStream failure worth telling the user, once a run.
    pub(super) fn attach_verdicts(
        &self,
        state: &mut State,
        buf: &mut gst::BufferRef,
        frames: &[FrameDetections],
    ) -> Option<String> {
        let attach: Vec<Verdict> = {
            let mut mailbox = lock(&state.running.mailbox);
            frames
                .iter()
                .filter_map(|f| mailbox.pop(f.source.source_id))
                .collect()
        };
        let deepstream = !attach.is_empty() && carries_batch_meta(buf);
        let mut ds_error = None;
        for v in &attach {
            if let Err(e) = meta::add(buf, v) {
                gst::warning!(
                    CAT,
                    imp = self,
                    "cannot attach verdict {}: {e}",
                    v.request_id
                );
            }
            if deepstream {
                ds_error = ds_error.or(self.attach_deepstream(state, buf, v));
            }
            self.attach_analytics(buf, v);
        }
        ds_error
    }

    /// Writes `v` as a classification mtd related to its object's od mtd, when the object came
    /// as one (GStreamer 1.24 and later; see [`crate::analytics::attach_verdict`]).
    fn attach_analytics(&self, buf: &mut gst::BufferRef, v: &Verdict) {
        let Ok(lib) = analytics::library() else {
            return;
        };
        if v.object_id.is_none() || analytics::meta_api().is_none() {
            return;
        }
        match analytics::attach_verdict(lib, buf, v, &mut analytics::Scan::default()) {
            Ok(a) => gst::log!(
                CAT,
                imp = self,
                "verdict {} as classification mtd {} of od mtd {}",
                v.request_id,
                a.cls,
                a.od
            ),
            Err(e) => gst::log!(
                CAT,
                imp = self,
                "verdict {} not as an analytics mtd: {e}",
                v.request_id
            ),
        }
    }

    /// Writes `v` as DeepStream metadata (classifier meta on the tracked object, IGUARD.VERDICT
    /// user meta on its frame). Returns the first failure worth telling the user, once a run.
    pub(super) fn attach_deepstream(
        &self,
        state: &mut State,
        buf: &mut gst::BufferRef,
        v: &Verdict,
    ) -> Option<String> {
        let scored = matches!(v.status, Status::Verified | Status::Rejected);
        let target = Target {
            object_id: v.object_id,
            class_id: scored
                .then(|| state.running.pool().class_index(&v.label))
                .flatten(),
            unique_id: state.run.unique_id as i32,
            layout: state.ds_layout,
        };
        match attach_verdict(buf, v, &target) {
            Ok(a) => {
                gst::log!(
                    CAT,
                    imp = self,
                    "verdict {} as DeepStream meta: {a:?}",
                    v.request_id
                );
                None
            }
            Err(AttachError::SourceNotInBatch(_)) => None,
            // Not NVIDIA's batch meta (a stand-in, another producer): not ours to change.
            Err(e @ AttachError::ForeignBatchMeta(_)) => {
                gst::debug!(CAT, imp = self, "verdict {}: {e}", v.request_id);
                None
            }
            Err(e) => {
                gst::debug!(
                    CAT,
                    imp = self,
                    "verdict {} not as DeepStream meta: {e}",
                    v.request_id
                );
                (!std::mem::replace(&mut state.warned_ds_meta, true)).then(|| e.to_string())
            }
        }
    }

    /// Pushes the verdicts waiting for `iguardpublish` downstream, oldest first, with no lock
    /// held (downstream may block or query).
    pub(super) fn push_verdict_events(&self, running: &Running) {
        // Before taking: a verdict queued in between starts the courier's clock again.
        running.courier.taken();
        let events = lock(&running.outbox).take();
        let pad = gst_base::prelude::BaseTransformExtManual::src_pad(&*self.obj()).clone();
        for ev in events {
            let _ = pad.push_event(ev);
        }
    }
}
