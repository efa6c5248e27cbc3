// SPDX-License-Identifier: MIT OR Apache-2.0
//! Scorers turn clips into verification scores. One trait, several implementations: the
//! label-based [`fallback::FallbackScorer`] here, ONNX Runtime and remote servers next to it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::clip::Clip;

pub mod factory;
pub mod fallback;
#[cfg(any(test, feature = "testing"))]
pub mod faults;
pub mod model_io;
pub mod onnx;
pub mod spec;
pub mod triton;

/// One clip's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// The verification score, in [0, 1].
    pub score: f64,
    /// The class behind the score (top class, or the label the heuristic saw); may be empty.
    pub label: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Failed(String),
}

/// Verifies batches of clips. Implementations are shared by every worker of a pool (and by
/// every element sharing a model), so they take `&self` and do their own locking.
pub trait Scorer: Send + Sync {
    /// Short name reported in verdicts and stats (`fallback`, `onnx`, ...).
    fn name(&self) -> &str;

    /// Whether scores come from a model. Verdicts of model scorers are `verified`/`rejected`;
    /// those of a heuristic stand-in are `fallback`.
    fn is_model(&self) -> bool;

    /// Whether the scorer reads the clips' pixels. One that does not (it scores from the
    /// labels the detector saw) lets the element skip sampling tiles.
    fn needs_pixels(&self) -> bool {
        true
    }

    /// The most clips one [`Scorer::score`] call takes.
    fn max_batch(&self) -> usize {
        1
    }

    /// The model's class index behind a [`Score::label`] it returned, for consumers that
    /// want a number (DeepStream's `result_class_id`); `None` for a heuristic.
    fn class_index(&self, _label: &str) -> Option<u32> {
        None
    }

    /// Scores `clips`, one result per clip in the same order. Long-running implementations
    /// should give up when `cancel` fires (the pool fires it at the deadline).
    fn score(&self, clips: &[&Clip], cancel: &Cancel) -> Result<Vec<Score>, ScoreError>;
}

type Hook = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct CancelInner {
    cancelled: AtomicBool,
    hooks: Mutex<Vec<Hook>>,
}

/// A cancellation signal for one scoring call. Scorers either poll [`Cancel::is_cancelled`] or
/// register a hook (e.g. ONNX Runtime's terminate) with [`Cancel::on_cancel`].
#[derive(Clone, Default)]
pub struct Cancel(Arc<CancelInner>);

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::Acquire)
    }

    /// Runs `hook` when the call is cancelled, or now if it already is.
    pub fn on_cancel(&self, hook: impl FnOnce() + Send + 'static) {
        let mut hooks = self.0.hooks.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_cancelled() {
            drop(hooks);
            hook();
        } else {
            hooks.push(Box::new(hook));
        }
    }

    pub fn cancel(&self) {
        let hooks = {
            let mut hooks = self.0.hooks.lock().unwrap_or_else(|e| e.into_inner());
            if self.0.cancelled.swap(true, Ordering::AcqRel) {
                return;
            }
            std::mem::take(&mut *hooks)
        };
        for hook in hooks {
            hook();
        }
    }
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancel")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Model;

    impl Scorer for Model {
        fn name(&self) -> &str {
            "model"
        }
        fn is_model(&self) -> bool {
            true
        }
        fn score(&self, _: &[&Clip], _: &Cancel) -> Result<Vec<Score>, ScoreError> {
            Ok(vec![])
        }
    }

    #[test]
    fn scorers_need_pixels_unless_they_say_otherwise() {
        assert!(Model.needs_pixels());
        assert_eq!(Model.max_batch(), 1);
        let fallback: &dyn Scorer = &fallback::FallbackScorer::new(vec![]);
        assert!(!fallback.needs_pixels());
    }

    #[test]
    fn hooks_run_once_and_late_hooks_run_at_once() {
        let c = Cancel::new();
        let n = Arc::new(AtomicUsize::new(0));
        let n2 = n.clone();
        c.on_cancel(move || {
            n2.fetch_add(1, Ordering::SeqCst);
        });
        assert!(!c.is_cancelled());
        c.cancel();
        c.cancel();
        assert!(c.is_cancelled());
        assert_eq!(n.load(Ordering::SeqCst), 1);
        let n3 = n.clone();
        c.on_cancel(move || {
            n3.fetch_add(10, Ordering::SeqCst);
        });
        assert_eq!(n.load(Ordering::SeqCst), 11);
    }
}
