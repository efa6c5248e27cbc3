// SPDX-License-Identifier: MIT OR Apache-2.0
//! Worker threads and the deadline supervisor.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::queue::JobQueue;
use super::{Answer, CAT, Outcome, PoolConfig, PoolStats, Reporter, Ticket, elapsed_ms, lock};
use crate::clip::Clip;
use crate::scorer::{Cancel, Score, Scorer};
use crate::verdict::Status;

struct Job {
    ticket: Ticket,
    clip: Clip,
    enqueued: Instant,
}

/// A batch being scored. Its tickets are taken by whoever ends it first: the worker with the
/// result, the supervisor at the deadline, or a flush/stop.
struct InFlight {
    tickets: Vec<Option<(Ticket, Instant)>>,
    /// The batch's clips, shared with the worker scoring them, so a request the deadline ends
    /// still gets its snapshot.
    clips: Vec<Arc<Clip>>,
    started: Instant,
    deadline: Instant,
    cancel: Cancel,
    /// The supervisor gave up on this batch's worker and replaced it.
    abandoned: bool,
}

#[derive(Default)]
struct State {
    queue: Option<JobQueue<Job>>,
    /// Running batches by id; only the worker running one removes it.
    in_flight: HashMap<u64, InFlight>,
    next_batch: u64,
    next_worker: u64,
    /// Worker threads alive, stuck ones included.
    threads: usize,
    /// Workers serving requests (not stuck).
    serving: usize,
    stuck: usize,
    restarts: u64,
    /// Adaptive: idle workers asked to end.
    retire: usize,
    /// Adaptive: since when every worker is busy with clips waiting / some worker is idle.
    busy_since: Option<Instant>,
    idle_since: Option<Instant>,
    shutdown: bool,
    supervisor: Option<thread::JoinHandle<()>>,
    /// Worker threads not joined yet, by worker number.
    workers: HashMap<u64, thread::JoinHandle<()>>,
    /// Workers whose thread has passed its last statement of ours: the supervisor joins them
    /// (a respawn or an adaptive retirement ends a thread; shutdown is not the only end).
    exited: Vec<u64>,
}

pub(super) struct Shared {
    state: Mutex<State>,
    /// Workers wait here for jobs.
    work: Condvar,
    /// The supervisor waits here for deadlines; shutdown waits here for threads to end.
    changed: Condvar,
    pub(super) scorer: Arc<dyn Scorer>,
    pub(super) config: PoolConfig,
}

/// How often the supervisor reconsiders the worker count in adaptive mode (shorter in unit
/// tests, which run hundreds of grow/retire cycles).
const ADAPT_TICK: Duration = Duration::from_millis(if cfg!(test) { 10 } else { 100 });

/// Threads abandoned in a scorer that ignores cancellation are not replaced past this many,
/// so a scorer that hangs forever cannot make the pool spawn without bound.
pub(super) fn max_stuck(config: &PoolConfig) -> usize {
    (2 * config.max_workers).max(4)
}

/// Decrements the thread count when a worker thread ends, however it ends, and hands its
/// number to the supervisor to be joined.
struct ThreadGuard(Arc<Shared>, u64);

impl Drop for ThreadGuard {
    fn drop(&mut self) {
        let mut st = lock(&self.0.state);
        st.threads -= 1;
        st.exited.push(self.1);
        drop(st);
        self.0.changed.notify_all();
    }
}

/// The clip's snapshot when its element asked for one: encoded on the worker that scored it
/// (or the supervisor, for a request it timed out), so no streaming thread ever pays for a
/// JPEG.
fn snapshot_of(ticket: &Ticket, clip: &Clip) -> Option<crate::snapshot::Snapshot> {
    let reporter = ticket.reporter()?;
    let config = reporter.snapshot_config()?;
    match crate::snapshot::make(clip, &config, reporter.snapshot_counters()) {
        Ok(s) => Some(s),
        Err(e) => {
            gst::debug!(CAT, "request {}: no snapshot: {e}", ticket.id());
            None
        }
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl Shared {
    pub(super) fn start(
        config: PoolConfig,
        scorer: Arc<dyn Scorer>,
    ) -> Result<Arc<Shared>, String> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: Some(JobQueue::new(config.queue_size, config.priority)),
                ..Default::default()
            }),
            work: Condvar::new(),
            changed: Condvar::new(),
            scorer,
            config,
        });
        {
            let mut st = lock(&shared.state);
            let sup = shared.clone();
            let handle = thread::Builder::new()
                .name(format!("iguard-s{}", shared.config.name))
                .spawn(move || sup.supervise())
                .map_err(|e| format!("cannot start the supervisor thread: {e}"))?;
            st.supervisor = Some(handle);
            let initial = if shared.config.adaptive {
                1
            } else {
                shared.config.max_workers.max(1)
            };
            for _ in 0..initial {
                shared.spawn_worker(&mut st)?;
            }
        }
        Ok(shared)
    }

    fn spawn_worker(self: &Arc<Self>, st: &mut State) -> Result<(), String> {
        st.next_worker += 1;
        let id = st.next_worker;
        let me = self.clone();
        let nice = self.config.nice;
        let handle = thread::Builder::new()
            .name(format!("iguard-w{}-{}", self.config.name, id))
            .spawn(move || {
                lower_priority(nice);
                let guard = ThreadGuard(me.clone(), id);
                me.work_loop();
                drop(guard);
            })
            .map_err(|e| format!("cannot start a worker thread: {e}"))?;
        st.threads += 1;
        st.serving += 1;
        // The thread's guard takes the lock we hold, so the handle is in before it can exit.
        st.workers.insert(id, handle);
        Ok(())
    }

    pub(super) fn submit(&self, ticket: Ticket, clip: Clip) -> Option<Answer> {
        let priority = clip.trigger_confidence;
        let job = Job {
            ticket,
            clip,
            enqueued: Instant::now(),
        };
        let mut st = lock(&self.state);
        // Checked under the pool's lock: a flush or stop closes the gate before it takes the
        // queue, so nothing submitted after that reaches a worker.
        let refused = match job.ticket.reporter().and_then(|r| r.gate()) {
            Some(reason) => Some(reason),
            None if st.shutdown => Some("stopped".to_string()),
            None => None,
        };
        let evicted = match st.queue.as_mut() {
            Some(q) if refused.is_none() => q.push(job, priority),
            _ => Some(job),
        };
        drop(st);
        self.work.notify_one();
        // Not finished here: the caller may hold a lock of its own (see `Answer`).
        evicted.map(|job| {
            let reason = refused.unwrap_or_else(|| "queue full".into());
            Answer::new(job.ticket, Outcome::unscored(Status::Dropped, reason))
        })
    }

    /// Takes the next batch, or `None` when the worker should end.
    fn next_batch(&self) -> Option<(u64, Vec<Arc<Clip>>, Cancel)> {
        let mut st = lock(&self.state);
        loop {
            if st.shutdown {
                st.serving -= 1;
                return None;
            }
            if st.queue.as_ref().is_some_and(|q| !q.is_empty()) {
                break;
            }
            if st.retire > 0 {
                st.retire -= 1;
                st.serving -= 1;
                return None;
            }
            st = self.work.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        let max = self
            .config
            .batch_size
            .max(1)
            .min(self.scorer.max_batch().max(1));
        let mut jobs = Vec::with_capacity(max);
        let mut more = false;
        if let Some(q) = st.queue.as_mut() {
            while jobs.len() < max {
                match q.pop() {
                    Some(j) => jobs.push(j),
                    None => break,
                }
            }
            more = !q.is_empty();
        }
        st.next_batch += 1;
        let id = st.next_batch;
        let started = Instant::now();
        let cancel = Cancel::new();
        let (tickets, clips): (Vec<_>, Vec<_>) = jobs
            .into_iter()
            .map(|j| (Some((j.ticket, j.enqueued)), Arc::new(j.clip)))
            .unzip();
        st.in_flight.insert(
            id,
            InFlight {
                tickets,
                clips: clips.clone(),
                started,
                deadline: started + self.config.timeout,
                cancel: cancel.clone(),
                abandoned: false,
            },
        );
        drop(st);
        if more {
            self.work.notify_one();
        }
        self.changed.notify_all();
        Some((id, clips, cancel))
    }

    fn work_loop(self: &Arc<Self>) {
        while let Some((id, clips, cancel)) = self.next_batch() {
            let refs: Vec<&Clip> = clips.iter().map(|c| &**c).collect();
            let result = catch_unwind(AssertUnwindSafe(|| self.scorer.score(&refs, &cancel)));
            let ended = Instant::now();
            drop(refs);

            let mut st = lock(&self.state);
            // Nothing else removes a batch: a flush, a stop or the deadline only take its
            // tickets (and the deadline marks it abandoned), and ids are never reused.
            let batch = st
                .in_flight
                .remove(&id)
                .expect("a running batch is removed only by its worker");
            let panicked = result.is_err();
            let mut exit = false;
            if batch.abandoned {
                // Replaced after the deadline: rejoin only if there is room.
                st.stuck -= 1;
                if st.shutdown || st.serving >= self.config.max_workers {
                    exit = true;
                } else {
                    st.serving += 1;
                }
            } else if panicked {
                // Respawn a fresh thread: the panic may have left this one's stack in a state
                // nobody should trust.
                st.restarts += 1;
                st.serving -= 1;
                exit = true;
                if !st.shutdown
                    && let Err(e) = self.spawn_worker(&mut st)
                {
                    gst::warning!(CAT, "pool {}: {e}", self.config.name);
                }
            }
            drop(st);
            self.changed.notify_all();

            let outcome = |i: usize| -> Outcome {
                let processing_ms = elapsed_ms(batch.started, ended);
                let fail = |status: Status, reason: String| Outcome {
                    processing_ms,
                    ..Outcome::unscored(status, reason)
                };
                match &result {
                    Err(p) => fail(
                        Status::Error,
                        format!("scorer panicked: {}", panic_message(&**p)),
                    ),
                    Ok(Err(crate::scorer::ScoreError::Cancelled)) => {
                        fail(Status::Dropped, "cancelled".into())
                    }
                    Ok(Err(e)) => fail(Status::Error, format!("scorer failed: {e}")),
                    Ok(Ok(scores)) if scores.len() != clips.len() => fail(
                        Status::Error,
                        format!(
                            "scorer returned {} scores for {} clips",
                            scores.len(),
                            clips.len()
                        ),
                    ),
                    Ok(Ok(scores)) => {
                        let Score { score, label } = &scores[i];
                        if !(0.0..=1.0).contains(score) {
                            return fail(
                                Status::Error,
                                format!("scorer returned score {score}, outside [0, 1]"),
                            );
                        }
                        let status = if self.scorer.is_model() {
                            Status::Verified
                        } else {
                            Status::Fallback
                        };
                        Outcome {
                            status,
                            score: *score,
                            label: label.clone(),
                            reason: String::new(),
                            queue_ms: 0.0,
                            processing_ms,
                            snapshot: None,
                        }
                    }
                }
            };
            for (i, slot) in batch.tickets.into_iter().enumerate() {
                if let Some((ticket, enqueued)) = slot {
                    let mut o = outcome(i);
                    o.queue_ms = elapsed_ms(enqueued, batch.started);
                    // A failed clip shows what the scorer choked on; a cancelled one
                    // (flush, stop) is of no interest to anyone.
                    if o.status != Status::Dropped {
                        o.snapshot = snapshot_of(&ticket, &clips[i]);
                    }
                    ticket.finish(o);
                }
            }
            if exit {
                return;
            }
        }
    }

    fn supervise(self: &Arc<Self>) {
        let mut st = lock(&self.state);
        loop {
            if st.shutdown {
                return;
            }
            if !st.exited.is_empty() {
                let ids = std::mem::take(&mut st.exited);
                let ended: Vec<_> = ids.iter().filter_map(|id| st.workers.remove(id)).collect();
                drop(st);
                // Each has left our code; the join only waits for the thread to be gone.
                for h in ended {
                    let _ = h.join();
                }
                st = lock(&self.state);
                continue;
            }
            let now = Instant::now();
            let mut expired = Vec::new();
            let mut next: Option<Instant> = None;
            // Batches a flush took every ticket from are included: their call still holds a
            // worker, and a call that ignores cancellation must be abandoned like any other.
            for (id, b) in st.in_flight.iter() {
                if b.abandoned {
                    continue;
                }
                if b.deadline <= now {
                    expired.push(*id);
                } else {
                    next = Some(next.map_or(b.deadline, |n| n.min(b.deadline)));
                }
            }
            if self.config.adaptive {
                self.adapt(&mut st, now);
            }
            if expired.is_empty() {
                let mut wait = next.map_or(Duration::from_secs(1), |n| n - now);
                if self.config.adaptive {
                    wait = wait.min(ADAPT_TICK);
                }
                st = self
                    .changed
                    .wait_timeout(st, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                continue;
            }
            let mut answered = Vec::new();
            for id in expired {
                let Some(b) = st.in_flight.get_mut(&id) else {
                    continue;
                };
                b.abandoned = true;
                let started = b.started;
                answered.push((
                    std::mem::take(&mut b.tickets),
                    b.clips.clone(),
                    started,
                    b.cancel.clone(),
                ));
                st.serving -= 1;
                st.stuck += 1;
                if st.stuck <= max_stuck(&self.config) {
                    st.restarts += 1;
                    if let Err(e) = self.spawn_worker(&mut st) {
                        gst::warning!(CAT, "pool {}: {e}", self.config.name);
                    }
                }
            }
            drop(st);
            let now = Instant::now();
            for (tickets, clips, started, cancel) in answered {
                cancel.cancel();
                for (i, slot) in tickets.into_iter().enumerate() {
                    let Some((ticket, enqueued)) = slot else {
                        continue;
                    };
                    let reason = format!(
                        "not scored within worker-timeout ({:.3} s)",
                        self.config.timeout.as_secs_f64()
                    );
                    // The clip the scorer is stuck on is what a user wants to see; encoding
                    // it here (milliseconds) only delays the next deadline check.
                    let snapshot = clips.get(i).and_then(|c| snapshot_of(&ticket, c));
                    ticket.finish(Outcome {
                        queue_ms: elapsed_ms(enqueued, started),
                        processing_ms: elapsed_ms(started, now),
                        snapshot,
                        ..Outcome::unscored(Status::Timeout, reason)
                    });
                }
            }
            st = lock(&self.state);
        }
    }

    /// Adaptive sizing, on the supervisor's tick: one more worker when all are busy and clips
    /// have waited `grow_after`; one fewer when one has idled `shrink_after`.
    fn adapt(self: &Arc<Self>, st: &mut State, now: Instant) {
        let active = st.in_flight.values().filter(|b| !b.abandoned).count();
        let waiting = st.queue.as_ref().is_some_and(|q| !q.is_empty());
        if waiting && active >= st.serving {
            let since = *st.busy_since.get_or_insert(now);
            if now - since >= self.config.grow_after && st.serving < self.config.max_workers {
                if let Err(e) = self.spawn_worker(st) {
                    gst::warning!(CAT, "pool {}: {e}", self.config.name);
                }
                st.busy_since = None;
            }
        } else {
            st.busy_since = None;
        }
        if !waiting && active + st.retire < st.serving && st.serving - st.retire > 1 {
            let since = *st.idle_since.get_or_insert(now);
            if now - since >= self.config.shrink_after {
                st.retire += 1;
                st.idle_since = None;
                self.work.notify_all();
            }
        } else {
            st.idle_since = None;
        }
    }

    /// Takes queued and running requests (of `reporter`, or all) and answers them `dropped`.
    pub(super) fn cancel_where(&self, reporter: Option<&Arc<Reporter>>, reason: &str) {
        let mine = |t: &Ticket| match reporter {
            None => true,
            Some(r) => t.reporter().is_some_and(|tr| Arc::ptr_eq(tr, r)),
        };
        let mut tickets = Vec::new();
        let mut cancels = Vec::new();
        let mut st = lock(&self.state);
        if let Some(q) = st.queue.as_mut() {
            tickets.extend(
                q.take_where(|j| mine(&j.ticket))
                    .into_iter()
                    .map(|j| j.ticket),
            );
        }
        for b in st.in_flight.values_mut() {
            let mut took = false;
            for slot in b.tickets.iter_mut() {
                if slot.as_ref().is_some_and(|(t, _)| mine(t)) {
                    tickets.extend(slot.take().map(|(t, _)| t));
                    took = true;
                }
            }
            if took && b.tickets.iter().all(Option::is_none) {
                cancels.push(b.cancel.clone());
            }
        }
        drop(st);
        for c in cancels {
            c.cancel();
        }
        for t in tickets {
            t.finish(Outcome::unscored(Status::Dropped, reason));
        }
    }

    /// Thread handles not joined yet, the supervisor's included.
    #[cfg(test)]
    pub(super) fn thread_handles(&self) -> usize {
        let st = lock(&self.state);
        st.workers.len() + usize::from(st.supervisor.is_some())
    }

    pub(super) fn stats(&self) -> PoolStats {
        let st = lock(&self.state);
        PoolStats {
            workers_active: st
                .in_flight
                .values()
                .filter(|b| !b.abandoned && b.tickets.iter().any(Option::is_some))
                .count(),
            workers: st.serving,
            workers_stuck: st.stuck,
            worker_restarts: st.restarts,
            queue_depth: st.queue.as_ref().map_or(0, |q| q.len()),
        }
    }

    pub(super) fn shutdown(&self, reason: &str, wait: Duration) -> usize {
        {
            let mut st = lock(&self.state);
            if st.shutdown && st.supervisor.is_none() && st.workers.is_empty() {
                return st.threads;
            }
            st.shutdown = true;
        }
        self.work.notify_all();
        self.changed.notify_all();
        self.cancel_where(None, reason);

        let deadline = Instant::now() + wait;
        let mut st = lock(&self.state);
        // The supervisor is not counted in `threads`; it ends at the shutdown flag.
        while st.threads > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let supervisor = st.supervisor.take();
        let workers = std::mem::take(&mut st.workers);
        let exited = std::mem::take(&mut st.exited);
        let left = st.threads;
        drop(st);
        // The supervisor ends at the shutdown flag.
        if let Some(h) = supervisor {
            let _ = h.join();
        }
        for (id, h) in workers {
            // A worker past its last statement (all of them when left == 0) joins at once.
            // The others are stuck in the scorer: they are detached, end on their own and
            // discard their results.
            if left == 0 || exited.contains(&id) || h.is_finished() {
                let _ = h.join();
            }
        }
        left
    }
}

/// Gives the calling thread the nice value `nice` (on Linux a thread's own; raising it needs
/// no privilege). Threads it starts inherit it. Elsewhere, and when it fails, the thread keeps
/// its priority: a scheduling preference, not a correctness matter.
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    if nice != 0 {
        // SAFETY: gettid and setpriority only read their arguments; with PRIO_PROCESS and a
        // thread id, setpriority changes that one thread.
        unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}
