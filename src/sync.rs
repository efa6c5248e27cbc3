// SPDX-License-Identifier: MIT OR Apache-2.0
//! Small locking helpers shared by the pool, the snapshots and the publisher. A leaf: it knows
//! nothing of the rest of the crate, so any module may use it without closing a circle.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking the data back from a poisoned lock: a panic while holding one of our locks
/// leaves plain counters and queues behind, and the thread that panicked has already been
/// accounted for, so keep going.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
