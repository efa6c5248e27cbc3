// SPDX-License-Identifier: MIT OR Apache-2.0
//! Model instances: a scorer and its worker pool, shared by every element that names the same
//! `model-instance-id` (as DL Streamer calls it), so 16 cameras with 16 elements load the model
//! once and share one set of workers. Without an id, each element has its own instance.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use crate::pool::{Pool, PoolConfig};
use crate::scorer::factory::ScorerSpec;
use crate::sync::lock;

pub use crate::scorer::factory::Dims;

pub struct Instance {
    /// The shared id, if any.
    pub id: Option<String>,
    pub pool: Pool,
    /// What was asked for when it was made, to name what a later element asks differently.
    pub key: Key,
    /// Clip dims the model fixes: frames, height, width.
    pub dims: Dims,
    users: AtomicUsize,
}

/// Everything that makes an instance what it is: the scorer and the pool settings.
#[derive(Debug, Clone)]
pub struct Key {
    pub scorer: ScorerSpec,
    pub pool: PoolConfig,
}

impl Key {
    /// What `other` asks differently, as `"name: ours vs theirs"` in property names: the
    /// scorer's settings, then those only the pool has.
    pub fn differences(&self, other: &Key) -> Vec<String> {
        let (a, b) = (&self.pool, &other.pool);
        let pool_only = [
            (
                "queue-size",
                a.queue_size.to_string(),
                b.queue_size.to_string(),
            ),
            (
                "priority",
                format!("{:?}", a.priority),
                format!("{:?}", b.priority),
            ),
            (
                "adaptive-workers",
                a.adaptive.to_string(),
                b.adaptive.to_string(),
            ),
            ("worker-nice", a.nice.to_string(), b.nice.to_string()),
        ];
        let mut d = self.scorer.differences(&other.scorer);
        d.extend(
            pool_only
                .into_iter()
                .filter(|(_, a, b)| a != b)
                .map(|(name, a, b)| format!("{name}: {a} vs {b}")),
        );
        d
    }
}

/// What `acquire` needs to create an instance.
pub struct Spec {
    pub pool: Pool,
    pub dims: Dims,
}

impl Instance {
    pub fn users(&self) -> usize {
        self.users.load(Ordering::SeqCst)
    }
}

/// One shared id. Its lock is held while the instance is made, so two elements starting at
/// once load the model once, while elements of other ids start and stop freely.
#[derive(Default)]
struct Slot {
    instance: Mutex<Weak<Instance>>,
}

/// The registry of shared ids. Held only to find or drop a slot, never while a model loads.
static SHARED: LazyLock<Mutex<HashMap<String, Arc<Slot>>>> = LazyLock::new(Default::default);

/// Joins the instance named `id` (creating it with `make` when nobody holds it), or makes a
/// private one. Returns the instance and whether it already existed; a joiner compares its
/// `key` with the instance's own.
pub fn acquire<E>(
    id: Option<&str>,
    key: Key,
    make: impl FnOnce() -> Result<Spec, E>,
) -> Result<(Arc<Instance>, bool), E> {
    let new = |id: Option<&str>, key: Key, spec: Spec| Instance {
        id: id.map(String::from),
        pool: spec.pool,
        key,
        dims: spec.dims,
        users: AtomicUsize::new(1),
    };
    let Some(id) = id.filter(|i| !i.is_empty()) else {
        return Ok((Arc::new(new(None, key, make()?)), false));
    };
    let slot = lock(&SHARED).entry(id.to_string()).or_default().clone();
    let mut held = lock(&slot.instance);
    if let Some(inst) = held.upgrade() {
        inst.users.fetch_add(1, Ordering::SeqCst);
        return Ok((inst, true));
    }
    let inst = Arc::new(new(Some(id), key, make()?));
    *held = Arc::downgrade(&inst);
    Ok((inst, false))
}

/// Leaves the instance; the last user shuts its pool down, waiting up to `wait` for the worker
/// threads. Returns how many threads were left behind (stuck in a scorer). A private instance
/// touches no registry lock.
pub fn release(inst: &Arc<Instance>, wait: Duration) -> usize {
    let Some(id) = &inst.id else {
        if inst.users.fetch_sub(1, Ordering::SeqCst) != 1 {
            return 0;
        }
        return inst.pool.shutdown("stopped", wait);
    };
    let slot = lock(&SHARED).get(id).cloned();
    {
        // Under the slot's lock, so that nobody joins between the last user leaving and the
        // pool shutting down.
        let held = slot.as_ref().map(|s| lock(&s.instance));
        if inst.users.fetch_sub(1, Ordering::SeqCst) != 1 {
            return 0;
        }
        if let Some(mut held) = held
            && held.as_ptr() == Arc::as_ptr(inst)
        {
            *held = Weak::new();
        }
    }
    {
        let mut shared = lock(&SHARED);
        if let Some(s) = shared.get(id)
            && slot.as_ref().is_some_and(|mine| Arc::ptr_eq(s, mine))
            && lock(&s.instance).upgrade().is_none()
        {
            shared.remove(id);
        }
    }
    inst.pool.shutdown("stopped", wait)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scorer::fallback::FallbackScorer;

    fn key() -> Key {
        Key {
            scorer: ScorerSpec::default(),
            pool: PoolConfig::default(),
        }
    }

    fn make(loads: &AtomicUsize) -> Result<Spec, String> {
        loads.fetch_add(1, Ordering::SeqCst);
        let pool = Pool::new(
            PoolConfig {
                name: "inst".into(),
                max_workers: 1,
                ..Default::default()
            },
            Arc::new(FallbackScorer::new(vec![])),
        )?;
        Ok(Spec {
            pool,
            dims: [None; 3],
        })
    }

    #[test]
    fn one_id_one_load_and_the_last_user_shuts_down() {
        let loads = AtomicUsize::new(0);
        let (a, a_shared) = acquire(Some("cam-group"), key(), || make(&loads)).unwrap();
        let (b, b_shared) = acquire(Some("cam-group"), key(), || make(&loads)).unwrap();
        assert!(!a_shared && b_shared);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!((loads.load(Ordering::SeqCst), a.users()), (1, 2));
        release(&a, Duration::from_secs(1));
        assert_eq!(b.pool.stats().workers, 1, "still serving the other user");
        release(&b, Duration::from_secs(1));
        assert_eq!(b.pool.stats().workers, 0);
        // A new start loads again.
        let (c, c_shared) = acquire(Some("cam-group"), key(), || make(&loads)).unwrap();
        assert!(!c_shared);
        assert_eq!(loads.load(Ordering::SeqCst), 2);
        release(&c, Duration::from_secs(1));
    }

    #[test]
    fn no_id_is_private() {
        let loads = AtomicUsize::new(0);
        let (a, _) = acquire(None, key(), || make(&loads)).unwrap();
        let (b, _) = acquire(Some(""), key(), || make(&loads)).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(loads.load(Ordering::SeqCst), 2);
        release(&a, Duration::from_secs(1));
        release(&b, Duration::from_secs(1));
    }

    #[test]
    fn a_failed_load_leaves_nothing_behind() {
        let r = acquire::<String>(Some("broken"), key(), || Err("no".into()));
        assert!(r.is_err());
        let loads = AtomicUsize::new(0);
        let (a, shared) = acquire(Some("broken"), key(), || make(&loads)).unwrap();
        assert!(!shared);
        release(&a, Duration::from_secs(1));
    }

    #[test]
    fn a_load_under_one_id_does_not_hold_up_others() {
        let loads = AtomicUsize::new(0);
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let slow = std::thread::spawn(move || {
            let loads = AtomicUsize::new(0);
            let (i, _) = acquire(Some("slow-id"), key(), || {
                started_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                make(&loads)
            })
            .unwrap();
            release(&i, Duration::from_secs(1));
        });
        started_rx.recv().unwrap();
        // While "slow-id" loads: another id starts and stops, and so does a private one.
        let (a, _) = acquire(Some("other-id"), key(), || make(&loads)).unwrap();
        release(&a, Duration::from_secs(1));
        let (p, _) = acquire(None, key(), || make(&loads)).unwrap();
        release(&p, Duration::from_secs(1));
        assert_eq!(loads.load(Ordering::SeqCst), 2);
        go_tx.send(()).unwrap();
        slow.join().unwrap();
    }

    #[test]
    fn differences_name_each_setting() {
        let a = key();
        let mut b = key();
        b.scorer.worker_timeout = Duration::from_secs(60);
        b.pool.queue_size = 7;
        b.scorer.mean = "0".into();
        let d = a.differences(&b);
        assert_eq!(
            d,
            [
                "mean: \"127.5\" vs \"0\"",
                "worker-timeout: 10 vs 60",
                "queue-size: 50 vs 7"
            ]
        );
        assert!(a.differences(&key()).is_empty());
    }
}
