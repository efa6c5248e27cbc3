// SPDX-License-Identifier: MIT OR Apache-2.0
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::clip::Clip;
use crate::detections::SourceFrame;
use crate::geometry::PixelRect;
use crate::scorer::faults::{Fault, FaultScorer, Gate};

fn clip(confidence: f64) -> Clip {
    Clip {
        request_id: 0,
        source: SourceFrame::default(),
        width: 1,
        height: 1,
        frames: 1,
        real_frames: 1,
        pixels: vec![0; 3],
        frame_labels: crate::clip::FrameLabels::empty(1),
        region: PixelRect::full(1, 1),
        trigger_label: "person".into(),
        trigger_confidence: confidence,
        start_pts: None,
        end_pts: None,
    }
}

struct Rig {
    reporter: Arc<Reporter>,
    verdicts: Arc<Mutex<Vec<Verdict>>>,
    pool: Pool,
}

impl Rig {
    fn new(config: PoolConfig, scorer: Arc<dyn Scorer>) -> Rig {
        let verdicts = Arc::new(Mutex::new(Vec::new()));
        let v = verdicts.clone();
        let reporter = Reporter::new(0.5, move |verdict| v.lock().unwrap().push(verdict.clone()));
        Rig {
            reporter,
            verdicts,
            pool: Pool::new(config, scorer).unwrap(),
        }
    }

    fn submit(&self, confidence: f64) -> u64 {
        let mut c = clip(confidence);
        let ticket = self
            .reporter
            .open(RequestInfo::from_clip(&c, self.pool.scorer_name()));
        c.request_id = ticket.id();
        let id = ticket.id();
        if let Some(answer) = self.pool.submit(ticket, c) {
            answer.finish();
        }
        id
    }

    fn statuses(&self) -> Vec<(u64, Status)> {
        let mut v: Vec<_> = self
            .verdicts
            .lock()
            .unwrap()
            .iter()
            .map(|v| (v.request_id, v.status))
            .collect();
        v.sort();
        v
    }

    fn wait_until(&self, what: &str, f: impl Fn(&Rig) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The accounting invariant, with nothing pending and one verdict per request.
    fn assert_settled(&self) {
        let c = self.reporter.counters();
        assert_eq!(c.pending(), 0, "{c:?}");
        assert_eq!(c.submitted, c.finished(), "{c:?}");
        let v = self.verdicts.lock().unwrap();
        assert_eq!(v.len() as u64, c.submitted);
        let mut ids: Vec<u64> = v.iter().map(|v| v.request_id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), v.len(), "a request was answered twice");
    }
}

fn config(workers: usize, queue: usize) -> PoolConfig {
    PoolConfig {
        name: "t".into(),
        max_workers: workers,
        queue_size: queue,
        timeout: Duration::from_secs(10),
        ..Default::default()
    }
}

#[test]
fn every_request_gets_one_verdict() {
    let rig = Rig::new(config(2, 50), Arc::new(FaultScorer::new(|_| Fault::None)));
    for _ in 0..40 {
        rig.submit(0.9);
    }
    assert!(rig.reporter.wait_idle(Duration::from_secs(10)));
    rig.assert_settled();
    assert_eq!(rig.reporter.counters().fallback, 40);
}

#[test]
fn snapshots_come_with_scored_and_failed_verdicts_when_asked() {
    let rig = Rig::new(
        config(1, 50),
        Arc::new(FaultScorer::new(|n| {
            if n == 2 { Fault::Fail } else { Fault::None }
        })),
    );
    rig.submit(0.9);
    assert!(rig.reporter.wait_idle(Duration::from_secs(10)));
    rig.reporter
        .set_snapshot(Some(crate::snapshot::SnapshotConfig::default()));
    rig.submit(0.9);
    rig.submit(0.9);
    assert!(rig.reporter.wait_idle(Duration::from_secs(10)));
    rig.assert_settled();
    let v = rig.verdicts.lock().unwrap();
    let got: Vec<(Status, bool)> = v.iter().map(|v| (v.status, v.snapshot.is_some())).collect();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], (Status::Fallback, false), "not asked yet");
    assert!(got[1..].contains(&(Status::Error, true)), "{got:?}");
    assert!(got[1..].contains(&(Status::Fallback, true)), "{got:?}");
    assert_eq!(rig.reporter.snapshot_counters().encoded(), 2);
}

#[test]
fn a_timed_out_request_shows_the_clip_the_scorer_was_stuck_on() {
    // A 2x1 tile, left red and right blue, so the sheet can be told from a blank one.
    let two_colours = || Clip {
        width: 2,
        pixels: vec![255, 0, 0, 0, 0, 255],
        ..clip(0.9)
    };
    let scorer = Arc::new(FaultScorer::new(|_| {
        Fault::Hang(Duration::from_millis(600))
    }));
    let rig = Rig::new(
        PoolConfig {
            timeout: Duration::from_millis(100),
            ..config(1, 10)
        },
        scorer,
    );
    rig.reporter
        .set_snapshot(Some(crate::snapshot::SnapshotConfig::default()));
    let mut c = two_colours();
    let ticket = rig
        .reporter
        .open(RequestInfo::from_clip(&c, rig.pool.scorer_name()));
    c.request_id = ticket.id();
    assert!(rig.pool.submit(ticket, c).is_none(), "queued");
    rig.wait_until("the timeout", |r| r.reporter.counters().timed_out == 1);
    let v = rig.verdicts.lock().unwrap().clone();
    assert_eq!(v[0].status, Status::Timeout);
    let jpeg = v[0]
        .snapshot
        .clone()
        .expect("a timeout verdict carries its snapshot");
    let want = crate::snapshot::encode(&two_colours(), &Default::default()).unwrap();
    assert_eq!(*jpeg, want, "not the stuck clip's sheet");
    assert_eq!(rig.reporter.snapshot_counters().encoded(), 1);
    // Encoded by the supervisor, not a streaming thread (nor the stuck worker).
    let threads = crate::snapshot::encoder_threads();
    assert!(
        threads.iter().any(|t| t.starts_with("iguard-s")),
        "{threads:?}"
    );
    rig.assert_settled();
}

/// The request a full queue evicts comes back answered but undelivered: the element finishes it
/// once its own lock is released (a delivery posts a message, and a bus sync handler may call
/// back into the element).
#[test]
fn an_evicted_request_is_delivered_only_when_its_caller_finishes_it() {
    let gate = Arc::new(Gate::default());
    let scorer = Arc::new(FaultScorer::new(|_| Fault::None).with_gate(gate.clone()));
    let rig = Rig::new(config(1, 1), scorer.clone());
    rig.submit(0.5);
    rig.wait_until("the worker to take the first clip", |r| {
        r.pool.stats().workers_active == 1
    });
    let submit = |rig: &Rig| {
        let t = rig.reporter.open(RequestInfo::default());
        (t.id(), rig.pool.submit(t, clip(0.5)))
    };
    let (queued, none) = submit(&rig);
    assert!(none.is_none(), "room in the queue");
    let (_, evicted) = submit(&rig);
    let evicted = evicted.expect("the queue was full");
    assert_eq!(evicted.id(), queued, "FIFO: the oldest waiting leaves");
    assert!(rig.verdicts.lock().unwrap().is_empty(), "not delivered yet");
    assert_eq!(rig.reporter.counters().pending(), 3);
    let mut later = Answers::default();
    later.push(evicted);
    assert_eq!(later.len(), 1);
    later.finish();
    assert_eq!(rig.statuses(), [(queued, Status::Dropped)]);
    // An Answers dropped unfinished (an early return) still delivers, with its real outcome.
    rig.reporter.set_gate(Some("flushing"));
    let (refused, answer) = submit(&rig);
    {
        let mut later = Answers::default();
        later.push(answer.expect("the gate is closed"));
    }
    let v = rig.verdicts.lock().unwrap().clone();
    assert_eq!(
        (v[1].request_id, v[1].status, v[1].reason.as_str()),
        (refused, Status::Dropped, "flushing")
    );
    rig.reporter.set_gate(None);
    gate.open();
    assert!(rig.reporter.wait_idle(Duration::from_secs(10)));
    rig.assert_settled();
}

#[test]
fn a_full_queue_drops_the_oldest_and_never_blocks() {
    let gate = Arc::new(Gate::default());
    let scorer = Arc::new(FaultScorer::new(|_| Fault::None).with_gate(gate.clone()));
    let rig = Rig::new(config(1, 3), scorer.clone());
    let first = rig.submit(0.5);
    rig.wait_until("the worker to take the first clip", |r| {
        r.pool.stats().workers_active == 1
    });
    let queued: Vec<u64> = (0..10).map(|_| rig.submit(0.5)).collect();
    let dropped: Vec<u64> = rig
        .statuses()
        .into_iter()
        .filter(|(_, s)| *s == Status::Dropped)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(dropped, queued[..7].to_vec(), "the oldest leave first");
    assert_eq!(rig.pool.stats().queue_depth, 3);
    gate.open();
    assert!(rig.reporter.wait_idle(Duration::from_secs(10)));
    let mut served = vec![first];
    served.extend(&queued[7..]);
    assert_eq!(*scorer.served.lock().unwrap(), served);
    rig.assert_settled();
    let v = rig.verdicts.lock().unwrap();
    assert!(
        v.iter()
            .filter(|v| v.status == Status::Dropped)
            .all(|v| v.reason == "queue full")
    );
}

#[test]
fn confidence_priority_serves_the_highest_and_drops_the_lowest() {
    let gate = Arc::new(Gate::default());
    let scorer = Arc::new(FaultScorer::new(|_| Fault::None).with_gate(gate.clone()));
    let rig = Rig::new(
        PoolConfig {
            priority: Priority::Confidence,
            ..config(1, 3)
        },
        scorer.clone(),
    );
    let first = rig.submit(0.1);
    rig.wait_until("the worker to take the first clip", |r| {
        r.pool.stats().workers_active == 1
    });
    let ids: Vec<u64> = [0.6, 0.9, 0.2, 0.8, 0.3, 0.95]
        .iter()
        .map(|c| rig.submit(*c))
        .collect();
    let dropped: Vec<u64> = rig.statuses().into_iter().map(|(id, _)| id).collect();
    // Queue of 3: 0.2 leaves when 0.8 arrives, 0.3 is itself the lowest, 0.6 leaves for 0.95.
    assert_eq!(dropped, vec![ids[0], ids[2], ids[4]]);
    gate.open();
    assert!(rig.reporter.wait_idle(Duration::from_secs(10)));
    assert_eq!(
        *scorer.served.lock().unwrap(),
        vec![first, ids[5], ids[1], ids[3]]
    );
    rig.assert_settled();
}

#[test]
fn a_request_past_its_deadline_times_out_and_the_pool_keeps_serving() {
    // The first call hangs past the deadline ignoring cancellation; later calls are fine.
    let scorer = Arc::new(FaultScorer::new(|n| {
        if n == 1 {
            Fault::Hang(Duration::from_millis(800))
        } else {
            Fault::None
        }
    }));
    let rig = Rig::new(
        PoolConfig {
            timeout: Duration::from_millis(100),
            ..config(1, 10)
        },
        scorer,
    );
    let hung = rig.submit(0.9);
    rig.wait_until("the timeout", |r| r.reporter.counters().timed_out == 1);
    let later = rig.submit(0.9);
    rig.wait_until("the next verdict", |r| r.reporter.counters().fallback == 1);
    assert_eq!(
        rig.statuses(),
        vec![(hung, Status::Timeout), (later, Status::Fallback)]
    );
    let stats = rig.pool.stats();
    assert_eq!(stats.worker_restarts, 1);
    assert_eq!(stats.workers, 1);
    let v = rig.verdicts.lock().unwrap().clone();
    assert!(v[0].reason.contains("worker-timeout"), "{}", v[0].reason);
    assert!(v[0].processing_ms >= 100.0);
    rig.assert_settled();
    // The stuck thread comes back, finds its replacement and ends.
    rig.wait_until("the stuck thread to end", |r| {
        r.pool.stats().workers_stuck == 0
    });
    assert_eq!(rig.pool.shutdown("stopped", Duration::from_secs(2)), 0);
}

#[test]
fn a_cancellable_scorer_is_stopped_at_the_deadline() {
    let scorer = Arc::new(FaultScorer::new(|_| Fault::None).with_delay(Duration::from_secs(30)));
    let rig = Rig::new(
        PoolConfig {
            timeout: Duration::from_millis(50),
            ..config(1, 10)
        },
        scorer,
    );
    rig.submit(0.9);
    rig.wait_until("the timeout", |r| r.reporter.counters().timed_out == 1);
    // Cancelled, the run returns at once and the thread goes back to waiting or ends.
    rig.wait_until("the stuck thread to return", |r| {
        r.pool.stats().workers_stuck == 0
    });
    rig.assert_settled();
}

#[test]
fn a_panicking_scorer_answers_error_and_the_worker_is_respawned() {
    let scorer = Arc::new(FaultScorer::new(|n| {
        if n % 3 == 0 {
            Fault::Panic
        } else {
            Fault::None
        }
    }));
    let rig = Rig::new(config(2, 50), scorer);
    for _ in 0..30 {
        rig.submit(0.9);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(rig.reporter.wait_idle(Duration::from_secs(10)));
    rig.assert_settled();
    let c = rig.reporter.counters();
    assert_eq!(c.failed + c.fallback, 30);
    assert!(c.failed >= 1);
    let stats = rig.pool.stats();
    assert_eq!(stats.worker_restarts, c.failed);
    assert_eq!(stats.workers, 2);
    let v = rig.verdicts.lock().unwrap();
    let err = v.iter().find(|v| v.status == Status::Error).unwrap();
    assert!(err.reason.contains("injected panic"), "{}", err.reason);
}

#[test]
fn nonsense_scores_are_errors() {
    for fault in [
        Fault::Nan,
        Fault::Fixed(1.5),
        Fault::Fixed(-0.1),
        Fault::Fail,
    ] {
        let rig = Rig::new(config(1, 5), Arc::new(FaultScorer::new(move |_| fault)));
        rig.submit(0.9);
        assert!(rig.reporter.wait_idle(Duration::from_secs(10)));
        rig.assert_settled();
        assert_eq!(rig.statuses()[0].1, Status::Error, "{fault:?}");
    }
}

#[test]
fn model_scores_are_judged_against_the_threshold() {
    let rig = Rig::new(
        config(1, 5),
        Arc::new(FaultScorer::new(|n| Fault::Fixed(if n == 1 { 0.5 } else { 0.49 })).as_model()),
    );
    rig.submit(0.9);
    assert!(rig.reporter.wait_idle(Duration::from_secs(10)));
    rig.submit(0.9);
    assert!(rig.reporter.wait_idle(Duration::from_secs(10)));
    let s: Vec<Status> = rig.statuses().into_iter().map(|(_, s)| s).collect();
    assert_eq!(s, vec![Status::Verified, Status::Rejected]);
}

#[test]
fn shutdown_answers_queued_and_running_requests_and_ends_every_thread() {
    let gate = Arc::new(Gate::default());
    let scorer = Arc::new(FaultScorer::new(|_| Fault::None).with_gate(gate));
    let rig = Rig::new(
        PoolConfig {
            name: "sd".into(),
            ..config(2, 10)
        },
        scorer,
    );
    for _ in 0..6 {
        rig.submit(0.9);
    }
    rig.wait_until("both workers busy", |r| r.pool.stats().workers_active == 2);
    assert_eq!(thread_names("iguard-wsd-").len(), 2);
    assert_eq!(rig.pool.shutdown("stopped", Duration::from_secs(5)), 0);
    rig.assert_settled();
    assert_eq!(rig.reporter.counters().dropped, 6);
    assert!(thread_names("iguard-wsd-").is_empty());
    assert!(thread_names("iguard-ssd").is_empty());
    // Submitting after shutdown still answers.
    rig.submit(0.9);
    rig.assert_settled();
}

#[test]
fn cancel_for_one_reporter_leaves_the_others_alone() {
    let gate = Arc::new(Gate::default());
    let scorer = Arc::new(FaultScorer::new(|_| Fault::None).with_gate(gate.clone()));
    let rig = Rig::new(config(1, 10), scorer);
    let other_verdicts = Arc::new(Mutex::new(0));
    let ov = other_verdicts.clone();
    let other = Reporter::new(0.5, move |_| *ov.lock().unwrap() += 1);
    rig.submit(0.9);
    rig.wait_until("the worker busy", |r| r.pool.stats().workers_active == 1);
    rig.submit(0.9);
    let t = other.open(RequestInfo::default());
    assert!(rig.pool.submit(t, clip(0.9)).is_none(), "queued");
    rig.pool.cancel_for(&rig.reporter, "flushing");
    rig.assert_settled();
    assert_eq!(rig.reporter.counters().dropped, 2);
    assert_eq!(other.counters().pending(), 1);
    gate.open();
    assert!(other.wait_idle(Duration::from_secs(10)));
    assert_eq!(*other_verdicts.lock().unwrap(), 1);
}

#[test]
fn a_dropped_ticket_still_ends_its_request() {
    let verdicts = Arc::new(Mutex::new(Vec::new()));
    let v = verdicts.clone();
    let r = Reporter::new(0.5, move |x| v.lock().unwrap().push(x.status));
    drop(r.open(RequestInfo::default()));
    assert_eq!(*verdicts.lock().unwrap(), vec![Status::Error]);
    assert_eq!(r.counters().pending(), 0);
}

#[test]
fn counters_stay_consistent_under_concurrent_workers() {
    let rig = Rig::new(
        config(4, 1000),
        Arc::new(FaultScorer::new(|n| match n % 5 {
            0 => Fault::Fail,
            _ => Fault::None,
        })),
    );
    let submitters: Vec<_> = (0..4)
        .map(|_| {
            let reporter = rig.reporter.clone();
            let pool_submit = |r: &Arc<Reporter>| r.open(RequestInfo::default());
            let tickets: Vec<Ticket> = (0..200).map(|_| pool_submit(&reporter)).collect();
            tickets
        })
        .collect();
    std::thread::scope(|s| {
        for tickets in submitters {
            let pool = &rig.pool;
            s.spawn(move || {
                for t in tickets {
                    if let Some(answer) = pool.submit(t, clip(0.5)) {
                        answer.finish();
                    }
                }
            });
        }
    });
    assert!(rig.reporter.wait_idle(Duration::from_secs(20)));
    rig.assert_settled();
    let c = rig.reporter.counters();
    assert_eq!(c.submitted, 800);
    assert_eq!(c.fallback + c.failed + c.dropped, 800);
}

#[test]
fn adaptive_pools_grow_under_load_and_shrink_when_idle() {
    let gate = Arc::new(Gate::default());
    let scorer = Arc::new(FaultScorer::new(|_| Fault::None).with_gate(gate.clone()));
    let rig = Rig::new(
        PoolConfig {
            name: "ad".into(),
            adaptive: true,
            grow_after: Duration::from_millis(50),
            shrink_after: Duration::from_millis(300),
            ..config(3, 20)
        },
        scorer,
    );
    assert_eq!(
        rig.pool.stats().workers,
        1,
        "adaptive pools start with one worker"
    );
    for _ in 0..10 {
        rig.submit(0.9);
    }
    rig.wait_until("three workers", |r| r.pool.stats().workers == 3);
    rig.wait_until("three busy", |r| r.pool.stats().workers_active == 3);
    assert_eq!(
        thread_names("iguard-wad-").len(),
        3,
        "never more than max-workers"
    );
    gate.open();
    assert!(rig.reporter.wait_idle(Duration::from_secs(10)));
    rig.wait_until("back to one worker", |r| r.pool.stats().workers == 1);
    rig.wait_until("retired threads ended", |_| {
        thread_names("iguard-wad-").len() == 1
    });
    rig.assert_settled();
    // And it grows again.
    gate.close();
    for _ in 0..4 {
        rig.submit(0.9);
    }
    rig.wait_until("growing again", |r| r.pool.stats().workers >= 2);
    gate.open();
    assert!(rig.reporter.wait_idle(Duration::from_secs(10)));
    rig.assert_settled();
}

#[cfg(target_os = "linux")]
#[test]
fn workers_run_at_the_configured_nice_value() {
    let gate = Arc::new(Gate::default());
    let scorer = Arc::new(FaultScorer::new(|_| Fault::None).with_gate(gate.clone()));
    let rig = Rig::new(
        PoolConfig {
            name: "nc".into(),
            nice: 7,
            ..config(2, 10)
        },
        scorer,
    );
    rig.submit(0.9);
    rig.submit(0.9);
    rig.wait_until("both workers busy", |r| r.pool.stats().workers_active == 2);
    assert_eq!(thread_nice("iguard-wnc-"), vec![7, 7]);
    // The supervisor keeps the priority of the thread that made the pool (not 0 when the
    // tests themselves run under `nice`).
    // SAFETY: getpriority only reads its arguments; PRIO_PROCESS with a thread id reads that
    // one thread's nice value.
    let own = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
    // A new thread names itself once it runs: on a loaded machine the supervisor can still
    // carry its parent's name for a moment (seen once in CI inside the Debian 13 root).
    let deadline = Instant::now() + Duration::from_secs(5);
    while thread_nice("iguard-snc").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(thread_nice("iguard-snc"), vec![own]);
    gate.open();
    assert!(rig.reporter.wait_idle(Duration::from_secs(10)));
    rig.assert_settled();
}

/// Hundreds of threads that end (after a panic here) must not leave their handles behind:
/// exited threads are joined as they go, not only at shutdown.
#[test]
fn hundreds_of_respawns_leave_threads_and_handles_flat() {
    let scorer = Arc::new(FaultScorer::new(|_| Fault::Panic));
    let rig = Rig::new(
        PoolConfig {
            name: "rs".into(),
            ..config(2, 400)
        },
        scorer,
    );
    for _ in 0..300 {
        rig.submit(0.9);
    }
    assert!(rig.reporter.wait_idle(Duration::from_secs(30)));
    rig.assert_settled();
    assert_eq!(rig.reporter.counters().failed, 300);
    assert_eq!(rig.pool.stats().worker_restarts, 300);
    assert_eq!(rig.pool.stats().workers, 2);
    // Two workers and the supervisor: one handle each, one thread each.
    rig.wait_until("the exited threads to be joined", |r| {
        r.pool.thread_handles() == 3
    });
    // A joined thread can stay in /proc/self/task for a moment on a loaded machine.
    rig.wait_until("the exited threads to leave the task list", |_| {
        thread_names("iguard-wrs-").len() == 2
    });
    assert_eq!(thread_names("iguard-srs").len(), 1);
}

#[test]
fn hundreds_of_grow_and_retire_cycles_leave_threads_and_handles_flat() {
    let gate = Arc::new(Gate::default());
    let scorer = Arc::new(FaultScorer::new(|_| Fault::None).with_gate(gate.clone()));
    let rig = Rig::new(
        PoolConfig {
            name: "cy".into(),
            adaptive: true,
            grow_after: Duration::from_millis(1),
            shrink_after: Duration::from_millis(1),
            ..config(2, 20)
        },
        scorer,
    );
    let mut most_handles = 0;
    for cycle in 0..200 {
        gate.close();
        rig.submit(0.9);
        rig.submit(0.9);
        rig.wait_until("a second worker", |r| r.pool.stats().workers_active == 2);
        gate.open();
        rig.wait_until("the retirement", |r| {
            r.reporter.counters().pending() == 0 && r.pool.stats().workers == 1
        });
        rig.wait_until("the retired thread to end", |_| {
            thread_names("iguard-wcy-").len() == 1
        });
        most_handles = most_handles.max(rig.pool.thread_handles());
        assert!(
            rig.pool.stats().worker_restarts == 0,
            "cycle {cycle}: a retirement is not a restart"
        );
    }
    rig.assert_settled();
    rig.wait_until("the retired threads to be joined", |r| {
        r.pool.thread_handles() == 2
    });
    // At most the live ones and one that is ending.
    assert!(most_handles <= 4, "up to {most_handles} handles at once");
}

/// A scorer stuck in a call that ignores cancellation (a hung native call) for clips labelled
/// `hang`, until released; other clips score 0.9 at once.
#[derive(Default)]
struct Stubborn {
    entered: std::sync::atomic::AtomicUsize,
    released: Mutex<bool>,
    cv: std::sync::Condvar,
}

impl Stubborn {
    fn entered(&self) -> usize {
        self.entered.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn release(&self, released: bool) {
        *self.released.lock().unwrap() = released;
        self.cv.notify_all();
    }
}

impl Scorer for Stubborn {
    fn name(&self) -> &str {
        "stubborn"
    }

    fn is_model(&self) -> bool {
        true
    }

    fn score(
        &self,
        clips: &[&Clip],
        _cancel: &crate::scorer::Cancel,
    ) -> Result<Vec<crate::scorer::Score>, crate::scorer::ScoreError> {
        if clips.iter().any(|c| c.trigger_label == "hang") {
            self.entered
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut released = self.released.lock().unwrap();
            while !*released {
                released = self.cv.wait(released).unwrap();
            }
        }
        Ok(clips
            .iter()
            .map(|_| crate::scorer::Score {
                score: 0.9,
                label: "x".into(),
            })
            .collect())
    }
}

/// A flush takes the tickets of running batches; their scorer calls still get the deadline, so
/// a call that ignores cancellation is abandoned and replaced instead of holding its worker.
#[test]
fn flushed_batches_still_get_their_deadline() {
    let scorer = Arc::new(Stubborn::default());
    let rig = Rig::new(
        PoolConfig {
            name: "fl".into(),
            timeout: Duration::from_millis(100),
            ..config(2, 20)
        },
        scorer.clone(),
    );
    let stuck_bound = worker::max_stuck(rig.pool.config());
    let mut hung = 0;
    for round in 0..3 {
        // More hung-then-flushed calls than there are workers.
        for _ in 0..stuck_bound {
            let mut c = clip(0.9);
            c.trigger_label = "hang".into();
            let ticket = rig
                .reporter
                .open(RequestInfo::from_clip(&c, rig.pool.scorer_name()));
            rig.pool.submit(ticket, c);
            hung += 1;
            rig.wait_until("a worker to take the clip", |_| scorer.entered() == hung);
            rig.pool.cancel_for(&rig.reporter, "flushing");
        }
        // New requests are still served.
        for _ in 0..5 {
            rig.submit(0.9);
        }
        assert!(
            rig.reporter.wait_idle(Duration::from_secs(10)),
            "round {round}: {:?}",
            rig.pool.stats()
        );
        let stats = rig.pool.stats();
        assert_eq!(stats.workers, 2, "round {round}: {stats:?}");
        assert!(
            stats.workers_stuck <= stuck_bound,
            "round {round}: {stats:?}"
        );
        rig.assert_settled();
        let c = rig.reporter.counters();
        assert_eq!(c.dropped, hung as u64, "{c:?}");
        assert_eq!(c.verified, 5 * (round + 1), "{c:?}");
        // The hung calls return: their results are discarded, the threads end or rejoin.
        scorer.release(true);
        rig.wait_until("the stuck threads to return", |r| {
            r.pool.stats().workers_stuck == 0
        });
        scorer.release(false);
        assert_eq!(rig.pool.stats().workers, 2);
    }
    rig.assert_settled();
}
