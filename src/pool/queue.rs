// SPDX-License-Identifier: MIT OR Apache-2.0
//! The bounded request queue. Pushing never blocks: when full, one item leaves by policy.

use std::collections::VecDeque;

/// Which request is served first and which leaves when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Priority {
    /// First in, first served; the oldest leaves when full.
    #[default]
    Fifo,
    /// Highest trigger confidence served first; the lowest leaves when full (the newcomer
    /// itself when it is the lowest). Ties go by age.
    Confidence,
}

struct Entry<T> {
    item: T,
    priority: f64,
    seq: u64,
}

pub struct JobQueue<T> {
    entries: VecDeque<Entry<T>>,
    capacity: usize,
    policy: Priority,
    seq: u64,
}

impl<T> JobQueue<T> {
    pub fn new(capacity: usize, policy: Priority) -> Self {
        let capacity = capacity.max(1);
        JobQueue {
            entries: VecDeque::with_capacity(capacity),
            capacity,
            policy,
            seq: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Adds `item`; returns the item that had to leave when the queue was full (possibly
    /// `item` itself). A NaN priority counts as the lowest.
    pub fn push(&mut self, item: T, priority: f64) -> Option<T> {
        let priority = if priority.is_nan() {
            f64::NEG_INFINITY
        } else {
            priority
        };
        self.seq += 1;
        let entry = Entry {
            item,
            priority,
            seq: self.seq,
        };
        let mut evicted = None;
        if self.entries.len() >= self.capacity {
            match self.policy {
                Priority::Fifo => evicted = self.entries.pop_front().map(|e| e.item),
                Priority::Confidence => {
                    let lowest = self.lowest();
                    // Entries are in arrival order, so the newcomer loses a tie.
                    if lowest.is_none_or(|i| entry.priority <= self.entries[i].priority) {
                        return Some(entry.item);
                    }
                    evicted = lowest.and_then(|i| self.entries.remove(i)).map(|e| e.item);
                }
            }
        }
        self.entries.push_back(entry);
        evicted
    }

    /// The index of the entry that leaves first: lowest priority, oldest among equals.
    fn lowest(&self) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, e) in self.entries.iter().enumerate() {
            if best.is_none_or(|b| e.priority < self.entries[b].priority) {
                best = Some(i);
            }
        }
        best
    }

    /// Takes the next item to serve.
    pub fn pop(&mut self) -> Option<T> {
        let index = match self.policy {
            Priority::Fifo => 0,
            Priority::Confidence => {
                let mut best: Option<usize> = None;
                for (i, e) in self.entries.iter().enumerate() {
                    if best.is_none_or(|b| {
                        let b = &self.entries[b];
                        e.priority > b.priority || (e.priority == b.priority && e.seq < b.seq)
                    }) {
                        best = Some(i);
                    }
                }
                best?
            }
        };
        self.entries.remove(index).map(|e| e.item)
    }

    /// Removes and returns every item for which `pred` holds, in arrival order.
    pub fn take_where(&mut self, mut pred: impl FnMut(&T) -> bool) -> Vec<T> {
        let mut taken = Vec::new();
        let mut kept = VecDeque::with_capacity(self.entries.len());
        for e in self.entries.drain(..) {
            if pred(&e.item) {
                taken.push(e.item);
            } else {
                kept.push_back(e);
            }
        }
        self.entries = kept;
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_serves_in_order_and_drops_the_oldest() {
        let mut q = JobQueue::new(3, Priority::Fifo);
        for i in 0..3 {
            assert_eq!(q.push(i, 0.0), None);
        }
        assert_eq!(q.push(3, 0.0), Some(0));
        assert_eq!(q.len(), 3);
        assert_eq!(
            (q.pop(), q.pop(), q.pop(), q.pop()),
            (Some(1), Some(2), Some(3), None)
        );
    }

    #[test]
    fn confidence_serves_the_highest_and_drops_the_lowest() {
        let mut q = JobQueue::new(3, Priority::Confidence);
        q.push("a", 0.5);
        q.push("b", 0.9);
        q.push("c", 0.7);
        assert_eq!(q.push("d", 0.6), Some("a"));
        assert_eq!(
            q.push("e", 0.1),
            Some("e"),
            "the lowest newcomer itself leaves"
        );
        assert_eq!(
            q.push("f", 0.6),
            Some("f"),
            "equal priority: the newcomer loses"
        );
        assert_eq!(q.push("g", f64::NAN), Some("g"));
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, vec!["b", "c", "d"]);
    }

    #[test]
    fn equal_confidence_is_served_oldest_first() {
        let mut q = JobQueue::new(5, Priority::Confidence);
        for s in ["x", "y", "z"] {
            q.push(s, 0.5);
        }
        assert_eq!(q.pop(), Some("x"));
        assert_eq!(q.pop(), Some("y"));
    }

    #[test]
    fn take_where_keeps_the_rest_in_order() {
        let mut q = JobQueue::new(10, Priority::Fifo);
        for i in 0..6 {
            q.push(i, 0.0);
        }
        assert_eq!(q.take_where(|i| i % 2 == 0), vec![0, 2, 4]);
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.len(), 2);
        assert_eq!(JobQueue::<u8>::new(0, Priority::Fifo).capacity(), 1);
    }
}
