// SPDX-License-Identifier: MIT OR Apache-2.0
//! The verification pool: a bounded priority queue, named worker threads, a deadline per
//! request enforced by a supervisor thread, panic recovery with respawn, and the accounting that
//! makes every request end in exactly one verdict.
//!
//! Lock order: `Shared::state` (pool) before `Reporter::counters`. Verdicts are delivered with
//! no pool lock held: callers collect finished [`Ticket`]s and finish them after unlocking.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant};

use crate::clip::Clip;
use crate::scorer::Scorer;
use crate::sync::lock;
use crate::verdict::{Status, Verdict};

pub mod queue;
mod worker;

pub use queue::Priority;

/// The pool's own debug category (`GST_DEBUG=iguardpool:4`): its threads have no element to
/// log against, and a pool may serve several elements.
static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "iguardpool",
        gst::DebugColorFlags::empty(),
        Some("iguard verification pool"),
    )
});

/// Counts of one element's requests. `submitted = verified + rejected + fallback + timed_out +
/// dropped + failed + pending` holds at every snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    pub submitted: u64,
    pub verified: u64,
    pub rejected: u64,
    pub fallback: u64,
    pub timed_out: u64,
    pub dropped: u64,
    pub failed: u64,
    processing_ms_sum: f64,
    /// Verdicts counted whose delivery (message, meta queue) has not returned yet.
    delivering: u64,
}

impl Counters {
    /// Requests scored (verified + rejected + fallback).
    pub fn completed(&self) -> u64 {
        self.verified + self.rejected + self.fallback
    }

    pub fn finished(&self) -> u64 {
        self.completed() + self.timed_out + self.dropped + self.failed
    }

    pub fn pending(&self) -> u64 {
        self.submitted - self.finished()
    }

    pub fn avg_processing_ms(&self) -> f64 {
        match self.completed() {
            0 => 0.0,
            n => self.processing_ms_sum / n as f64,
        }
    }

    fn count(&mut self, v: &Verdict) {
        match v.status {
            Status::Verified => self.verified += 1,
            Status::Rejected => self.rejected += 1,
            Status::Fallback => self.fallback += 1,
            Status::Timeout => self.timed_out += 1,
            Status::Dropped => self.dropped += 1,
            Status::Error => self.failed += 1,
        }
        if v.status.is_scored() {
            self.processing_ms_sum += v.processing_ms;
        }
    }
}

type Deliver = Box<dyn Fn(&Verdict) + Send + Sync>;

/// One element's side of the accounting: hands out request ids, counts verdicts and delivers
/// them (bus message, meta queue). Several elements may share a pool; each has its reporter.
pub struct Reporter {
    counters: Mutex<Counters>,
    idle: Condvar,
    threshold: AtomicU64,
    next_id: AtomicU64,
    deliver: Deliver,
    /// While set, requests submitted to a pool are answered `dropped` with this reason instead
    /// of queued (a flush or a stop is under way).
    gate: Mutex<Option<String>>,
    /// How this element's snapshots are made; `None` when it makes none.
    snapshot: Mutex<Option<crate::snapshot::SnapshotConfig>>,
    snapshot_counters: crate::snapshot::SnapshotCounters,
}

impl Reporter {
    pub fn new(threshold: f64, deliver: impl Fn(&Verdict) + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Reporter {
            counters: Mutex::new(Counters::default()),
            idle: Condvar::new(),
            threshold: AtomicU64::new(threshold.to_bits()),
            next_id: AtomicU64::new(1),
            deliver: Box::new(deliver),
            gate: Mutex::new(None),
            snapshot: Mutex::new(None),
            snapshot_counters: Default::default(),
        })
    }

    /// Turns snapshots on (`Some`) or off for requests scored from now on.
    pub fn set_snapshot(&self, config: Option<crate::snapshot::SnapshotConfig>) {
        *lock(&self.snapshot) = config;
    }

    pub fn snapshot_config(&self) -> Option<crate::snapshot::SnapshotConfig> {
        *lock(&self.snapshot)
    }

    pub fn snapshot_counters(&self) -> &crate::snapshot::SnapshotCounters {
        &self.snapshot_counters
    }

    pub fn set_threshold(&self, t: f64) {
        self.threshold.store(t.to_bits(), Ordering::Relaxed);
    }

    pub fn threshold(&self) -> f64 {
        f64::from_bits(self.threshold.load(Ordering::Relaxed))
    }

    pub fn counters(&self) -> Counters {
        lock(&self.counters).clone()
    }

    /// Closes (`Some(reason)`) or opens (`None`) the way to the workers: while closed, a
    /// request handed to a pool is answered `dropped` with `reason` at once, and
    /// [`Reporter::wait_idle`] returns. The pool checks the gate under its own lock, so a
    /// request submitted after `cancel_for` cannot slip into the queue.
    pub fn set_gate(&self, reason: Option<&str>) {
        *lock(&self.gate) = reason.map(String::from);
        // Taken so that a thread in `wait_idle` is either before its check or waiting.
        let _c = lock(&self.counters);
        self.idle.notify_all();
    }

    /// Why the way to the workers is closed, if it is.
    pub fn gate(&self) -> Option<String> {
        lock(&self.gate).clone()
    }

    /// Opens a request: it counts as submitted and pending until its ticket is finished.
    pub fn open(self: &Arc<Self>, info: RequestInfo) -> Ticket {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.counters).submitted += 1;
        Ticket {
            id,
            info,
            reporter: Some(self.clone()),
            done: None,
        }
    }

    /// Waits until nothing is pending. Gives up when no request finished for `stall` (each
    /// running request has a deadline, so progress only stops when workers are stuck), or at
    /// once when the gate is closed (a stop does not wait for verdicts). Returns whether
    /// everything finished.
    pub fn wait_idle(&self, stall: Duration) -> bool {
        self.wait_until_idle(stall, true)
    }

    /// Like [`Reporter::wait_idle`], whatever the gate: for a flush, which closed the gate and
    /// answered every request it could reach, to wait for verdicts a worker was delivering.
    pub fn wait_settled(&self, stall: Duration) -> bool {
        self.wait_until_idle(stall, false)
    }

    fn wait_until_idle(&self, stall: Duration, stop_at_gate: bool) -> bool {
        let mut c = lock(&self.counters);
        let mut finished = c.finished();
        let mut deadline = Instant::now() + stall;
        while c.pending() > 0 || c.delivering > 0 {
            if stop_at_gate && lock(&self.gate).is_some() {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            c = self
                .idle
                .wait_timeout(c, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            if c.finished() != finished {
                finished = c.finished();
                deadline = Instant::now() + stall;
            }
        }
        true
    }

    fn finish(&self, v: Verdict) {
        {
            let mut c = lock(&self.counters);
            c.count(&v);
            c.delivering += 1;
        }
        (self.deliver)(&v);
        lock(&self.counters).delivering -= 1;
        self.idle.notify_all();
    }
}

/// What a request is about, for its verdict.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    pub source_id: u32,
    pub pad_index: u32,
    pub trigger_label: String,
    pub trigger_confidence: f64,
    pub start_pts: Option<u64>,
    pub end_pts: Option<u64>,
    pub frames: u32,
    /// The scorer that will (or would) score it.
    pub scorer: String,
    /// The object the clip followed (`clip-per=object`).
    pub object_id: Option<u64>,
    /// The crop on the clip's last sampled frame, in frame pixels.
    pub crop: Option<crate::geometry::PixelRect>,
    /// The zones the clip's object entered.
    pub zones: Vec<String>,
}

impl RequestInfo {
    pub fn from_clip(clip: &Clip, scorer: &str) -> Self {
        RequestInfo {
            source_id: clip.source.source_id,
            pad_index: clip.source.pad_index,
            trigger_label: clip.trigger_label.clone(),
            trigger_confidence: clip.trigger_confidence,
            start_pts: clip.start_pts,
            end_pts: clip.end_pts,
            frames: clip.real_frames,
            scorer: scorer.to_string(),
            object_id: None,
            crop: Some(clip.region),
            zones: Vec::new(),
        }
    }
}

/// How a request ended, short of the fields its ticket knows.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    pub score: f64,
    pub label: String,
    pub reason: String,
    pub queue_ms: f64,
    pub processing_ms: f64,
    /// The clip's snapshot, when the element asked for one and it was made.
    pub snapshot: Option<crate::snapshot::Snapshot>,
}

impl Outcome {
    pub fn unscored(status: Status, reason: impl Into<String>) -> Self {
        Outcome {
            status,
            score: f64::NAN,
            label: String::new(),
            reason: reason.into(),
            queue_ms: 0.0,
            processing_ms: 0.0,
            snapshot: None,
        }
    }
}

/// A request answered where no verdict may be delivered yet: its caller holds a lock (the
/// element's `state`), and delivering posts a bus message whose sync handler may call back into
/// the element (read a property, flush the pipeline). The caller finishes it once that lock is
/// released.
#[derive(Debug)]
#[must_use = "an answer is delivered only by finish(), once no lock is held"]
pub struct Answer {
    ticket: Ticket,
    outcome: Outcome,
}

impl Answer {
    pub fn new(ticket: Ticket, outcome: Outcome) -> Self {
        Answer { ticket, outcome }
    }

    pub fn id(&self) -> u64 {
        self.ticket.id
    }

    pub fn finish(self) {
        self.ticket.finish(self.outcome);
    }
}

/// Answers collected under a lock and delivered after it, in the order they were given (see
/// [`Answer`]). Dropping it delivers what is left, so an early return loses none: declare it
/// before the guard of the lock, so the guard goes first.
#[derive(Debug, Default)]
pub struct Answers(Vec<Answer>);

impl Answers {
    pub fn push(&mut self, answer: Answer) {
        self.0.push(answer);
    }

    /// Answers `ticket` with `outcome`, later.
    pub fn answer(&mut self, ticket: Ticket, outcome: Outcome) {
        self.0.push(Answer::new(ticket, outcome));
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Delivers every answer, oldest first.
    pub fn finish(mut self) {
        self.deliver();
    }

    fn deliver(&mut self) {
        for a in self.0.drain(..) {
            a.finish();
        }
    }
}

impl Drop for Answers {
    fn drop(&mut self) {
        self.deliver();
    }
}

/// Signals the end of one request to a thread waiting for it (`async=false`).
#[derive(Default)]
pub struct Done {
    done: Mutex<bool>,
    cv: Condvar,
}

impl Done {
    /// Waits at most `timeout`; returns whether the request ended.
    pub fn wait(&self, timeout: Duration) -> bool {
        let g = lock(&self.done);
        let (g, _) = self
            .cv
            .wait_timeout_while(g, timeout, |d| !*d)
            .unwrap_or_else(|e| e.into_inner());
        *g
    }
}

/// The one handle of a pending request. Finishing it consumes it; a ticket dropped unfinished
/// (a bug, or a thread that died) still ends its request, as `error`.
pub struct Ticket {
    id: u64,
    info: RequestInfo,
    reporter: Option<Arc<Reporter>>,
    done: Option<Arc<Done>>,
}

impl Ticket {
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn info_mut(&mut self) -> &mut RequestInfo {
        &mut self.info
    }

    pub(crate) fn reporter(&self) -> Option<&Arc<Reporter>> {
        self.reporter.as_ref()
    }

    /// Returns a signal raised when this request ends.
    pub fn done_signal(&mut self) -> Arc<Done> {
        self.done.get_or_insert_with(Default::default).clone()
    }

    pub fn finish(mut self, o: Outcome) {
        self.finish_inner(o);
    }

    fn finish_inner(&mut self, o: Outcome) {
        let Some(reporter) = self.reporter.take() else {
            return;
        };
        let status = match o.status {
            Status::Verified | Status::Rejected if o.score >= reporter.threshold() => {
                Status::Verified
            }
            Status::Verified | Status::Rejected => Status::Rejected,
            s => s,
        };
        let info = std::mem::take(&mut self.info);
        reporter.finish(Verdict {
            request_id: self.id,
            source_id: info.source_id,
            pad_index: info.pad_index,
            status,
            score: if status.is_scored() {
                o.score
            } else {
                f64::NAN
            },
            threshold: reporter.threshold(),
            label: o.label,
            trigger_label: info.trigger_label,
            trigger_confidence: info.trigger_confidence,
            clip_start_pts: info.start_pts,
            clip_end_pts: info.end_pts,
            frames: info.frames,
            queue_ms: o.queue_ms,
            processing_ms: o.processing_ms,
            scorer: info.scorer,
            reason: o.reason,
            object_id: info.object_id,
            crop: info.crop,
            snapshot: o.snapshot,
            zones: info.zones,
        });
        if let Some(done) = self.done.take() {
            *lock(&done.done) = true;
            done.cv.notify_all();
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.reporter.is_some() {
            self.finish_inner(Outcome::unscored(
                Status::Error,
                "request lost (internal error)",
            ));
        }
    }
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("id", &self.id)
            .field("info", &self.info)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Distinguishes thread names of several pools (`iguard-w<name>-<n>`); keep it short.
    pub name: String,
    pub max_workers: usize,
    pub queue_size: usize,
    pub priority: Priority,
    pub timeout: Duration,
    pub batch_size: usize,
    /// Run between 1 and `max_workers` workers: grow while the queue stays deep, shrink when
    /// workers stay idle.
    pub adaptive: bool,
    /// Adaptive: how long every worker must be busy with clips still waiting before one is
    /// added, and how long one must be idle before it is retired.
    pub grow_after: Duration,
    pub shrink_after: Duration,
    /// The nice value of the worker threads (0 = unchanged; higher = lower priority), so
    /// inference yields the CPU to the streaming threads.
    pub nice: i32,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            name: "0".into(),
            max_workers: 2,
            queue_size: 50,
            priority: Priority::Fifo,
            timeout: Duration::from_secs(10),
            batch_size: 1,
            adaptive: false,
            grow_after: Duration::from_millis(500),
            shrink_after: Duration::from_secs(5),
            nice: 0,
        }
    }
}

/// A snapshot of the pool's own figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolStats {
    /// Workers running a request now.
    pub workers_active: usize,
    /// Workers serving (running or waiting for work).
    pub workers: usize,
    /// Threads abandoned past a deadline and not returned yet.
    pub workers_stuck: usize,
    /// Workers replaced after a panic or a timeout.
    pub worker_restarts: u64,
    pub queue_depth: usize,
}

/// The worker pool. Dropping it shuts it down (see [`Pool::shutdown`]).
pub struct Pool {
    shared: Arc<worker::Shared>,
}

impl Pool {
    pub fn new(config: PoolConfig, scorer: Arc<dyn Scorer>) -> Result<Pool, String> {
        Ok(Pool {
            shared: worker::Shared::start(config, scorer)?,
        })
    }

    pub fn scorer_name(&self) -> &str {
        self.shared.scorer.name()
    }

    /// The model's class index behind a verdict's label (see [`Scorer::class_index`]).
    pub fn class_index(&self, label: &str) -> Option<u32> {
        self.shared.scorer.class_index(label)
    }

    /// Whether this pool's scorer reads the clips' pixels (see [`Scorer::needs_pixels`]).
    pub fn needs_pixels(&self) -> bool {
        self.shared.scorer.needs_pixels()
    }

    pub fn config(&self) -> &PoolConfig {
        &self.shared.config
    }

    /// Queues a clip for verification. Never waits for a worker: when the queue is full one
    /// request leaves by policy, and when the way is closed (a flush, a stop) this one does.
    /// That request is returned answered `dropped` but not delivered: the caller finishes it
    /// once it holds no lock of its own (see [`Answer`]).
    pub fn submit(&self, ticket: Ticket, clip: Clip) -> Option<Answer> {
        self.shared.submit(ticket, clip)
    }

    /// Answers `dropped` (with `reason`) every queued and running request of `reporter`;
    /// running ones are cancelled.
    pub fn cancel_for(&self, reporter: &Arc<Reporter>, reason: &str) {
        self.shared.cancel_where(Some(reporter), reason);
    }

    pub fn stats(&self) -> PoolStats {
        self.shared.stats()
    }

    /// Thread handles not joined yet, the supervisor's included.
    #[cfg(test)]
    fn thread_handles(&self) -> usize {
        self.shared.thread_handles()
    }

    /// Answers every request `dropped` (with `reason`), stops the workers and waits up to
    /// `wait` for their threads to end. Threads stuck in a scorer that ignores cancellation are
    /// left behind (their results are discarded); returns how many.
    pub fn shutdown(&self, reason: &str, wait: Duration) -> usize {
        self.shared.shutdown(reason, wait)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.shutdown("stopped", Duration::from_secs(1));
    }
}

/// Names of the threads of this process whose name starts with `prefix` (Linux; empty
/// elsewhere). For tests (the `testing` feature): they check which threads are left.
#[cfg(any(test, feature = "testing"))]
pub fn thread_names(prefix: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return vec![];
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .map(|s| s.trim_end().to_string())
        .filter(|s| s.starts_with(prefix))
        .collect()
}

/// The nice value of each thread of this process whose name starts with `prefix` (Linux:
/// field 19 of `/proc/self/task/<tid>/stat`, counted after the parenthesised name). For tests
/// (the `testing` feature).
#[cfg(any(test, feature = "testing"))]
pub fn thread_nice(prefix: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return vec![];
    };
    dir.filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.starts_with(prefix))
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| {
            let after = stat.get(stat.rfind(')')? + 2..)?;
            after.split(' ').nth(16)?.parse().ok()
        })
        .collect()
}

pub(crate) fn elapsed_ms(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests;
