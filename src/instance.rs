// SPDX-License-Identifier: MIT OR Apache-2.0
//! Model instances: a scorer and its worker pool, shared by every element that names the same
//! `model-instance-id` (as DL Streamer calls it), so 16 cameras with 16 elements load the model
//! once and share one set of workers. Without an id, each element has its own instance.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use crate::pool::{Pool, lock};

pub struct Instance {
    /// The shared id, if any.
    pub id: Option<String>,
    pub pool: Pool,
    /// What was loaded (model path and type), to spot elements that ask for something else.
    pub model: String,
    /// Clip dims the model fixes: frames, height, width.
    pub dims: Dims,
    users: AtomicUsize,
}

/// Frames, height and width a model fixes (`None` where it leaves them free).
pub type Dims = [Option<u32>; 3];

/// What `acquire` needs to create an instance.
pub struct Spec {
    pub pool: Pool,
    pub model: String,
    pub dims: Dims,
}

impl Instance {
    pub fn users(&self) -> usize {
        self.users.load(Ordering::SeqCst)
    }
}

static SHARED: LazyLock<Mutex<HashMap<String, Weak<Instance>>>> = LazyLock::new(Default::default);

/// Joins the instance named `id` (creating it with `make` when nobody holds it), or makes a
/// private one. Returns the instance and whether it already existed. The registry lock is held
/// while `make` runs, so two elements starting at once load the model once.
pub fn acquire<E>(
    id: Option<&str>,
    make: impl FnOnce() -> Result<Spec, E>,
) -> Result<(Arc<Instance>, bool), E> {
    let new = |id: Option<&str>, spec: Spec| Instance {
        id: id.map(String::from),
        pool: spec.pool,
        model: spec.model,
        dims: spec.dims,
        users: AtomicUsize::new(1),
    };
    let Some(id) = id.filter(|i| !i.is_empty()) else {
        return Ok((Arc::new(new(None, make()?)), false));
    };
    let mut shared = lock(&SHARED);
    if let Some(inst) = shared.get(id).and_then(Weak::upgrade) {
        inst.users.fetch_add(1, Ordering::SeqCst);
        return Ok((inst, true));
    }
    let inst = Arc::new(new(Some(id), make()?));
    shared.insert(id.to_string(), Arc::downgrade(&inst));
    Ok((inst, false))
}

/// Leaves the instance; the last user shuts its pool down, waiting up to `wait` for the worker
/// threads. Returns how many threads were left behind (stuck in a scorer).
pub fn release(inst: &Arc<Instance>, wait: Duration) -> usize {
    let mut shared = lock(&SHARED);
    if inst.users.fetch_sub(1, Ordering::SeqCst) != 1 {
        return 0;
    }
    if let Some(id) = &inst.id
        && shared
            .get(id)
            .is_some_and(|w| w.as_ptr() == Arc::as_ptr(inst))
    {
        shared.remove(id);
    }
    drop(shared);
    inst.pool.shutdown("stopped", wait)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::PoolConfig;
    use crate::scorer::fallback::FallbackScorer;

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
            model: "m".into(),
            dims: [None; 3],
        })
    }

    #[test]
    fn one_id_one_load_and_the_last_user_shuts_down() {
        let loads = AtomicUsize::new(0);
        let (a, a_shared) = acquire(Some("cam-group"), || make(&loads)).unwrap();
        let (b, b_shared) = acquire(Some("cam-group"), || make(&loads)).unwrap();
        assert!(!a_shared && b_shared);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!((loads.load(Ordering::SeqCst), a.users()), (1, 2));
        release(&a, Duration::from_secs(1));
        assert_eq!(b.pool.stats().workers, 1, "still serving the other user");
        release(&b, Duration::from_secs(1));
        assert_eq!(b.pool.stats().workers, 0);
        // A new start loads again.
        let (c, c_shared) = acquire(Some("cam-group"), || make(&loads)).unwrap();
        assert!(!c_shared);
        assert_eq!(loads.load(Ordering::SeqCst), 2);
        release(&c, Duration::from_secs(1));
    }

    #[test]
    fn no_id_is_private() {
        let loads = AtomicUsize::new(0);
        let (a, _) = acquire(None, || make(&loads)).unwrap();
        let (b, _) = acquire(Some(""), || make(&loads)).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(loads.load(Ordering::SeqCst), 2);
        release(&a, Duration::from_secs(1));
        release(&b, Duration::from_secs(1));
    }

    #[test]
    fn a_failed_load_leaves_nothing_behind() {
        let r = acquire::<String>(Some("broken"), || Err("no".into()));
        assert!(r.is_err());
        let loads = AtomicUsize::new(0);
        let (a, shared) = acquire(Some("broken"), || make(&loads)).unwrap();
        assert!(!shared);
        release(&a, Duration::from_secs(1));
    }
}
