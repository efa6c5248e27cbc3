// SPDX-License-Identifier: MIT OR Apache-2.0
//! The sources (cameras) an element follows, bounded. Source ids come from metadata, and a
//! corrupt or hostile batch meta could name thousands: past the bound a new source is refused
//! (its detections are not followed) and counted, never let in silently.

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
