// SPDX-License-Identifier: MIT OR Apache-2.0
//! Scorers that misbehave on purpose, for tests, benchmarks and fault drills: they hold clips
//! until released, take a fixed time, panic, hang past any deadline or return nonsense. Each
//! wraps the real fallback scorer for the clips it lets through.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::fallback::FallbackScorer;
use super::{Cancel, Score, ScoreError, Scorer};
use crate::clip::Clip;

/// What to do on a call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Score normally.
    None,
    /// Panic.
    Panic,
    /// Sleep this long, ignoring cancellation (a stuck native call).
    Hang(Duration),
    /// Return NaN.
    Nan,
    /// Return this (possibly out-of-range) score.
    Fixed(f64),
    /// Return an error.
    Fail,
}

/// A gate that holds every call until opened.
#[derive(Default)]
pub struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }

    pub fn close(&self) {
        *self.open.lock().unwrap() = false;
    }

    /// Waits until open or cancelled; returns whether it opened.
    fn pass(&self, cancel: &Cancel) -> bool {
        let mut open = self.open.lock().unwrap();
        while !*open {
            if cancel.is_cancelled() {
                return false;
            }
            open = self
                .cv
                .wait_timeout(open, Duration::from_millis(5))
                .unwrap()
                .0;
        }
        true
    }
}

type Plan = Box<dyn Fn(u64) -> Fault + Send + Sync>;

/// A configurable misbehaving scorer. Calls are numbered from 1.
pub struct FaultScorer {
    inner: FallbackScorer,
    plan: Plan,
    delay: Duration,
    gate: Option<Arc<Gate>>,
    model: bool,
    calls: AtomicU64,
    /// Request ids of clips in the order they were scored.
    pub served: Mutex<Vec<u64>>,
}

impl FaultScorer {
    pub fn new(plan: impl Fn(u64) -> Fault + Send + Sync + 'static) -> Self {
        FaultScorer {
            inner: FallbackScorer::new(vec!["weapon".into()]),
            plan: Box::new(plan),
            delay: Duration::ZERO,
            gate: None,
            model: false,
            calls: AtomicU64::new(0),
            served: Mutex::new(Vec::new()),
        }
    }

    /// Every call takes `delay` (cancellable, like a well-behaved model run).
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Every call waits at `gate` first (cancellable).
    pub fn with_gate(mut self, gate: Arc<Gate>) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Reports itself as a model, so verdicts are `verified`/`rejected`.
    pub fn as_model(mut self) -> Self {
        self.model = true;
        self
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Scorer for FaultScorer {
    fn name(&self) -> &str {
        if self.model { "test-model" } else { "fallback" }
    }

    fn is_model(&self) -> bool {
        self.model
    }

    fn max_batch(&self) -> usize {
        usize::MAX
    }

    fn score(&self, clips: &[&Clip], cancel: &Cancel) -> Result<Vec<Score>, ScoreError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(g) = &self.gate
            && !g.pass(cancel)
        {
            return Err(ScoreError::Cancelled);
        }
        let until = Instant::now() + self.delay;
        while Instant::now() < until {
            if cancel.is_cancelled() {
                return Err(ScoreError::Cancelled);
            }
            std::thread::sleep((until - Instant::now()).min(Duration::from_millis(2)));
        }
        self.served
            .lock()
            .unwrap()
            .extend(clips.iter().map(|c| c.request_id));
        let fixed = |score: f64| {
            Ok(clips
                .iter()
                .map(|_| Score {
                    score,
                    label: "x".into(),
                })
                .collect())
        };
        match (self.plan)(n) {
            Fault::None => self.inner.score(clips, cancel),
            Fault::Panic => panic!("injected panic on call {n}"),
            Fault::Hang(d) => {
                std::thread::sleep(d);
                self.inner.score(clips, cancel)
            }
            Fault::Nan => fixed(f64::NAN),
            Fault::Fixed(s) => fixed(s),
            Fault::Fail => Err(ScoreError::Failed(format!("injected failure on call {n}"))),
        }
    }
}
