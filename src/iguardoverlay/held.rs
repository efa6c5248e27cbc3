// SPDX-License-Identifier: MIT OR Apache-2.0
//! The verdicts `iguardoverlay` holds on objects: each for `hold` from the buffer that carried
//! it, bounded whatever the verdict rate, and the per-source counts behind the stats line.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::layout::centre_inside;
use crate::geometry::PixelRect;
use crate::verdict::{Status, Verdict};

/// A verdict being held, reduced to what is drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub request_id: u64,
    pub source_id: u32,
    pub status: Status,
    pub score: f64,
    pub positive: bool,
    pub label: String,
    pub object_id: Option<u64>,
    pub crop: Option<PixelRect>,
    /// Running time (ns) of the buffer that carried it.
    pub since: u64,
}

impl Held {
    pub(super) fn new(v: &Verdict, now: u64) -> Held {
        Held {
            request_id: v.request_id,
            source_id: v.source_id,
            status: v.status,
            score: v.score,
            positive: v.is_positive(),
            label: v.label.clone(),
            object_id: v.object_id,
            crop: v.crop,
            since: now,
        }
    }

    /// `verified person 0.91`, `rejected 0.12`, `dropped`.
    pub fn text(&self) -> String {
        if !self.status.is_scored() {
            return self.status.as_str().to_string();
        }
        if self.label.is_empty() {
            format!("{} {:.2}", self.status, self.score)
        } else {
            format!("{} {} {:.2}", self.status, self.label, self.score)
        }
    }

    fn live(&self, now: u64, hold: u64) -> bool {
        // A clock that went backwards (a new segment, a loop) ends the hold as well.
        now >= self.since && (now - self.since < hold || now == self.since)
    }
}

/// Verdicts seen per source, for the stats line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceStats {
    pub verdicts: u64,
    /// Scored at or above the threshold.
    pub verified: u64,
    /// Scored below the threshold.
    pub rejected: u64,
    /// Never scored (timeout, dropped, error).
    pub unscored: u64,
}

/// Bounds on what is held, whatever `hold` and the verdict rate are.
pub(super) const MAX_TRACKED: usize = 4096;
pub(super) const MAX_UNTRACKED: usize = 64;
pub(super) const MAX_RECENT_IDS: usize = 4096;

/// The verdicts held on objects, and the counts behind the stats line.
#[derive(Debug, Default)]
pub struct Holds {
    tracked: HashMap<u64, Held>,
    /// Oldest first.
    untracked: VecDeque<Held>,
    stats: BTreeMap<u32, SourceStats>,
    /// Request ids already counted, so a verdict copied onto two buffers counts once.
    recent: VecDeque<u64>,
}

impl Holds {
    /// Takes the verdicts carried by the buffer at running time `now`. A newer verdict on an
    /// object replaces the older one.
    pub fn observe(&mut self, now: u64, verdicts: &[Verdict]) {
        for v in verdicts {
            if self.recent.contains(&v.request_id) {
                continue;
            }
            if self.recent.len() == MAX_RECENT_IDS {
                self.recent.pop_front();
            }
            self.recent.push_back(v.request_id);

            let stats = self.stats.entry(v.source_id).or_default();
            stats.verdicts += 1;
            if !v.status.is_scored() {
                stats.unscored += 1;
            } else if v.is_positive() {
                stats.verified += 1;
            } else {
                stats.rejected += 1;
            }

            let held = Held::new(v, now);
            match v.object_id {
                Some(id) => {
                    if self.tracked.len() >= MAX_TRACKED && !self.tracked.contains_key(&id) {
                        let oldest = self
                            .tracked
                            .iter()
                            .min_by_key(|(_, h)| h.since)
                            .map(|(k, _)| *k);
                        if let Some(k) = oldest {
                            self.tracked.remove(&k);
                        }
                    }
                    self.tracked.insert(id, held);
                }
                None => {
                    if self.untracked.len() == MAX_UNTRACKED {
                        self.untracked.pop_front();
                    }
                    self.untracked.push_back(held);
                }
            }
        }
    }

    /// Drops the verdicts whose hold has ended at `now`.
    pub fn expire(&mut self, now: u64, hold: u64) {
        self.tracked.retain(|_, h| h.live(now, hold));
        self.untracked.retain(|h| h.live(now, hold));
    }

    /// Forgets the held verdicts (a flush); the counts stay.
    pub fn clear(&mut self) {
        self.tracked.clear();
        self.untracked.clear();
    }

    pub fn tracked(&self, object_id: u64) -> Option<&Held> {
        self.tracked.get(&object_id)
    }

    /// The newest untracked verdict whose crop contains the centre of `rect`.
    pub fn untracked_over(&self, rect: &PixelRect) -> Option<&Held> {
        self.untracked
            .iter()
            .rev()
            .find(|h| h.crop.is_some_and(|c| centre_inside(rect, &c)))
    }

    /// The newest tracked verdict that no detection of this frame names (`present`: the ids
    /// the detections carry) whose crop contains the centre of `rect`. `iguardverify` writes
    /// its built-in ids back to the ROI metas, but a box may still lack the id (an overlay
    /// before the verifier, or a frame where the box's track was not followed); the crop (which
    /// follows the object) still says whom the verdict is about.
    pub fn orphan_over(&self, rect: &PixelRect, present: &[u64]) -> Option<&Held> {
        self.tracked
            .iter()
            .filter(|(id, h)| {
                !present.contains(id) && h.crop.is_some_and(|c| centre_inside(rect, &c))
            })
            .max_by_key(|(_, h)| h.since)
            .map(|(_, h)| h)
    }

    pub fn untracked(&self) -> impl Iterator<Item = &Held> {
        self.untracked.iter()
    }

    pub fn held(&self) -> usize {
        self.tracked.len() + self.untracked.len()
    }

    pub fn stats(&self) -> &BTreeMap<u32, SourceStats> {
        &self.stats
    }
}
