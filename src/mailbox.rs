// SPDX-License-Identifier: MIT OR Apache-2.0
//! Verdicts waiting for the next buffer of their source, where the element attaches them as
//! meta. Bounded in total: past `capacity` the oldest verdict of the busiest source gives way
//! (it was posted on the bus already) and is counted. A source whose stream ended keeps no
//! verdicts: no buffer of it will come to carry them.

use std::collections::{BTreeMap, HashSet, VecDeque};

use crate::verdict::Verdict;

#[derive(Debug, Default)]
pub struct VerdictMailbox {
    by_source: BTreeMap<u32, VecDeque<Verdict>>,
    waiting: usize,
    capacity: usize,
    overflowed: u64,
    /// Sources whose stream ended: their verdicts are not kept (bounded, see `CLOSED_MAX`).
    closed: HashSet<u32>,
}

/// Ended sources remembered at most. Past it one is forgotten, which only lets its late
/// verdicts wait again, within `capacity`.
const CLOSED_MAX: usize = 4096;

impl VerdictMailbox {
    /// A mailbox holding at most `capacity` verdicts; 0 keeps none (bus only).
    pub fn new(capacity: usize) -> Self {
        VerdictMailbox {
            capacity,
            ..Default::default()
        }
    }

    pub fn push(&mut self, v: Verdict) {
        if self.closed.contains(&v.source_id) {
            // Posted on the bus and sent downstream already; no buffer of it is coming.
            return;
        }
        if self.capacity == 0 {
            self.overflowed += 1;
            return;
        }
        if self.waiting >= self.capacity
            && let Some(q) = self.by_source.values_mut().max_by_key(|q| q.len())
            && q.pop_front().is_some()
        {
            self.waiting -= 1;
            self.overflowed += 1;
        }
        self.by_source.entry(v.source_id).or_default().push_back(v);
        self.waiting += 1;
    }

    /// The oldest verdict waiting for `source`. Asked on a buffer of `source`, so an ended
    /// source that shows up again (the camera came back, or another took its id) is open again.
    pub fn pop(&mut self, source: u32) -> Option<Verdict> {
        if !self.closed.is_empty() {
            self.closed.remove(&source);
        }
        let q = self.by_source.get_mut(&source)?;
        let v = q.pop_front()?;
        if q.is_empty() {
            // Sources come and go: keep no empty queue behind.
            self.by_source.remove(&source);
        }
        self.waiting -= 1;
        Some(v)
    }

    /// Forgets what waits for `source` and keeps nothing that comes for it until it shows up
    /// again ([`VerdictMailbox::pop`]): its stream ended.
    pub fn close_source(&mut self, source: u32) {
        if let Some(q) = self.by_source.remove(&source) {
            self.waiting -= q.len();
        }
        if self.closed.len() >= CLOSED_MAX
            && let Some(&any) = self.closed.iter().next()
        {
            self.closed.remove(&any);
        }
        self.closed.insert(source);
    }

    /// Forgets every waiting verdict (a flush: they belong before the seek).
    pub fn clear(&mut self) {
        self.by_source.clear();
        self.closed.clear();
        self.waiting = 0;
    }

    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// Verdicts that gave way to newer ones, or found no room, since the start.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(source: u32, id: u64) -> Verdict {
        Verdict {
            request_id: id,
            source_id: source,
            pad_index: 0,
            status: crate::verdict::Status::Verified,
            score: 1.0,
            threshold: 0.5,
            label: String::new(),
            trigger_label: "person".into(),
            trigger_confidence: 0.9,
            clip_start_pts: None,
            clip_end_pts: None,
            frames: 16,
            queue_ms: 0.0,
            processing_ms: 0.0,
            scorer: "test".into(),
            reason: String::new(),
            object_id: None,
            crop: None,
            snapshot: None,
            zones: Vec::new(),
        }
    }

    #[test]
    fn per_source_in_order() {
        let mut m = VerdictMailbox::new(10);
        m.push(v(1, 1));
        m.push(v(2, 2));
        m.push(v(1, 3));
        assert_eq!(m.waiting(), 3);
        assert_eq!(m.pop(1).unwrap().request_id, 1);
        assert_eq!(m.pop(1).unwrap().request_id, 3);
        assert!(m.pop(1).is_none());
        assert!(m.pop(7).is_none());
        assert_eq!(m.pop(2).unwrap().request_id, 2);
        assert_eq!((m.waiting(), m.overflowed()), (0, 0));
    }

    #[test]
    fn full_drops_the_oldest_of_the_busiest_source() {
        let mut m = VerdictMailbox::new(3);
        m.push(v(1, 1));
        m.push(v(1, 2));
        m.push(v(2, 3));
        m.push(v(2, 4));
        assert_eq!((m.waiting(), m.overflowed()), (3, 1));
        assert_eq!(m.pop(1).unwrap().request_id, 2, "1 gave way");
        assert_eq!(m.pop(2).unwrap().request_id, 3);
    }

    #[test]
    fn an_ended_source_keeps_nothing_until_it_shows_up_again() {
        let mut m = VerdictMailbox::new(10);
        m.push(v(1, 1));
        m.push(v(2, 2));
        m.push(v(1, 3));
        m.close_source(1);
        assert_eq!(m.waiting(), 1, "source 1's verdicts are gone");
        m.push(v(1, 4));
        assert_eq!(
            m.waiting(),
            1,
            "a late verdict of the ended source is not kept"
        );
        assert_eq!(m.overflowed(), 0, "nothing gave way");
        assert_eq!(m.pop(2).unwrap().request_id, 2);
        // A buffer of source 1 again: it is open.
        assert!(m.pop(1).is_none());
        m.push(v(1, 5));
        assert_eq!(m.pop(1).unwrap().request_id, 5);
        // Thousands of cameras that came and went leave no queue and a bounded set behind.
        for s in 0..20_000 {
            m.push(v(s, 10));
            m.close_source(s);
        }
        assert_eq!(m.waiting(), 0);
        assert!(m.by_source.is_empty());
        assert!(m.closed.len() <= CLOSED_MAX);
    }

    #[test]
    fn capacity_zero_keeps_nothing_and_clear_empties() {
        let mut m = VerdictMailbox::new(0);
        m.push(v(1, 1));
        assert_eq!((m.waiting(), m.overflowed()), (0, 1));
        let mut m = VerdictMailbox::new(5);
        m.push(v(1, 1));
        m.clear();
        assert_eq!(m.waiting(), 0);
        assert!(m.pop(1).is_none());
    }
}
