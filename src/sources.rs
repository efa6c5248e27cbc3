// SPDX-License-Identifier: MIT OR Apache-2.0
//! The sources (cameras) an element follows, bounded. Source ids come from metadata, and a
//! corrupt or hostile batch meta could name thousands: past the bound a new source is refused
//! (its detections are not followed) and counted, never let in silently. A source whose
//! stream ended (DeepStream's per-stream EOS) gives its slot back, so cameras that come and go
//! never lock out new ones.

use std::collections::HashSet;

#[derive(Debug)]
pub struct SourceLimit {
    admitted: HashSet<u32>,
    refused: HashSet<u32>,
    max: usize,
    /// Distinct sources refused (past the remembered ones, each refusal of an id not
    /// remembered counts again).
    refused_count: u64,
}

/// What [`SourceLimit::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// Refused, and seen refused for the first time: worth a word to the user.
    RefusedNew,
    Refused,
}

/// Refused ids remembered at most, so that the count stays distinct without the set itself
/// growing without bound.
const REFUSED_REMEMBERED: usize = 4096;

impl SourceLimit {
    pub fn new(max: usize) -> Self {
        SourceLimit {
            admitted: HashSet::new(),
            refused: HashSet::new(),
            max,
            refused_count: 0,
        }
    }

    pub fn admit(&mut self, source: u32) -> Admission {
        if self.admitted.contains(&source) {
            return Admission::Admitted;
        }
        if self.admitted.len() < self.max {
            self.admitted.insert(source);
            // Refused while the slots were taken; let in now that one is free.
            self.refused.remove(&source);
            return Admission::Admitted;
        }
        if self.refused.contains(&source) {
            return Admission::Refused;
        }
        if self.refused.len() < REFUSED_REMEMBERED {
            self.refused.insert(source);
        }
        self.refused_count += 1;
        Admission::RefusedNew
    }

    pub fn refused(&self) -> u64 {
        self.refused_count
    }

    /// Gives `source`'s slot back (its stream ended); returns whether it held one.
    pub fn release(&mut self, source: u32) -> bool {
        self.refused.remove(&source);
        self.admitted.remove(&source)
    }

    /// Sources holding a slot.
    pub fn admitted(&self) -> usize {
        self.admitted.len()
    }

    /// Forgets every source (a flush or a new stream).
    pub fn clear(&mut self) {
        self.admitted.clear();
        self.refused.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_to_the_bound_then_refused_once_each() {
        let mut s = SourceLimit::new(2);
        assert_eq!(s.admit(7), Admission::Admitted);
        assert_eq!(s.admit(9), Admission::Admitted);
        assert_eq!(s.admit(7), Admission::Admitted);
        assert_eq!(s.admit(3), Admission::RefusedNew);
        assert_eq!(s.admit(3), Admission::Refused);
        assert_eq!(s.admit(4), Admission::RefusedNew);
        assert_eq!(s.refused(), 2);
        s.clear();
        assert_eq!(s.admit(3), Admission::Admitted);
        assert_eq!(s.refused(), 2, "the count is since the start");
    }

    #[test]
    fn a_released_slot_lets_the_next_source_in() {
        let mut s = SourceLimit::new(2);
        // Cameras come and go, one after another, far past the bound.
        for id in 0..1000 {
            assert_eq!(s.admit(id), Admission::Admitted, "source {id}");
            assert_eq!(
                s.admit(id + 100_000),
                Admission::Admitted,
                "source {id} and another"
            );
            assert!(s.release(id));
            assert!(s.release(id + 100_000));
        }
        assert_eq!((s.refused(), s.admitted()), (0, 0));
        assert!(!s.release(5), "not admitted: nothing to give back");
        // A source refused while the slots were taken gets in once one is free.
        s.admit(1);
        s.admit(2);
        assert_eq!(s.admit(3), Admission::RefusedNew);
        s.release(1);
        assert_eq!(s.admit(3), Admission::Admitted);
        assert_eq!(s.admit(4), Admission::RefusedNew, "full again");
    }

    #[test]
    fn a_flood_of_ids_keeps_memory_bounded() {
        let mut s = SourceLimit::new(4);
        for id in 0..100_000 {
            s.admit(id);
        }
        assert_eq!(s.refused(), 100_000 - 4);
        assert!(s.refused.len() <= REFUSED_REMEMBERED);
        assert_eq!(s.admitted.len(), 4);
    }
}
