// SPDX-License-Identifier: MIT OR Apache-2.0
//! The incidents `iguardoverlay` draws: each `iguard-incident` event (see
//! [`crate::incident`]) updates the incident's state, held on its object by object id as
//! verdicts are ([`super::held::Holds`]), or per source for incidents without an object
//! (`clip-per=source`). An open incident stays drawn while it is open; once it ends, for
//! `hold` nanoseconds of running time from the buffer that followed its end, as a verdict
//! does from the buffer that carried it.
//!
//! Events arrive before the buffers they precede: [`Incidents::queue`] keeps them (bounded)
//! and [`Incidents::observe`] counts them at the running time of the next buffer.

use std::collections::{BTreeMap, VecDeque};

use super::scene::Colours;
use super::text::Argb;
use crate::geometry::PixelRect;
use crate::incident::{Incident, State};

/// Bounds on what is held and waiting, whatever the event rate.
const MAX_HELD: usize = 4096;
const MAX_QUEUED: usize = 4096;

/// An incident being drawn, reduced to what is drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldIncident {
    pub incident_id: u64,
    pub source_id: u32,
    pub object_id: Option<u64>,
    pub state: State,
    pub open: bool,
    /// NaN when no clip was scored.
    pub best_score: f64,
    pub last_box: Option<PixelRect>,
    /// Running time (ns) of the buffer after its latest change.
    pub since: u64,
}

impl HeldIncident {
    fn new(i: &Incident, now: u64) -> HeldIncident {
        HeldIncident {
            incident_id: i.incident_id,
            source_id: i.source_id,
            object_id: i.object_id,
            state: i.state,
            open: i.is_open(),
            best_score: i.best_score,
            last_box: i.last_box.map(|b| PixelRect {
                x: b.x,
                y: b.y,
                width: b.width,
                height: b.height,
            }),
            since: now,
        }
    }

    /// `incident 12 ALERT 0.93`, `incident 4 pending`, `incident 5 dismissed 0.12`.
    pub fn text(&self) -> String {
        let state = match self.state {
            State::Alert => "ALERT",
            State::Pending => "pending",
            State::Dismissed => "dismissed",
        };
        if self.best_score.is_finite() {
            format!(
                "incident {} {state} {:.2}",
                self.incident_id, self.best_score
            )
        } else {
            format!("incident {} {state}", self.incident_id)
        }
    }

    /// An alert in the verified colour, a dismissed incident in the rejected one; a pending
    /// one keeps `otherwise` (its latest verdict's colour, or the box colour).
    pub fn colour(&self, c: &Colours, otherwise: Argb) -> Argb {
        match self.state {
            State::Alert => c.verified,
            State::Dismissed => c.rejected,
            State::Pending => otherwise,
        }
    }

    fn live(&self, now: u64, hold: u64) -> bool {
        if self.open {
            return true;
        }
        // A clock that went backwards (a new segment, a loop) ends the hold as well.
        now >= self.since && (now - self.since < hold || now == self.since)
    }
}

/// The incidents held, and the changes waiting for the next buffer.
#[derive(Debug, Default)]
pub struct Incidents {
    tracked: BTreeMap<u64, HeldIncident>,
    /// Incidents without an object, by source.
    per_source: BTreeMap<u32, HeldIncident>,
    queued: VecDeque<Incident>,
}

/// Holds `held` under `key` unless a newer incident is held there; past the bound the one
/// changed longest ago goes.
fn keep<K: Ord + Copy>(map: &mut BTreeMap<K, HeldIncident>, key: K, held: HeldIncident) {
    match map.get(&key) {
        Some(old) if old.incident_id > held.incident_id => return,
        Some(_) => {}
        None if map.len() >= MAX_HELD => {
            let oldest = map.iter().min_by_key(|(_, h)| h.since).map(|(k, _)| *k);
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
        None => {}
    }
    map.insert(key, held);
}

impl Incidents {
    /// Keeps a change until the next buffer; past the bound the oldest waiting goes.
    pub fn queue(&mut self, incident: Incident) {
        if self.queued.len() >= MAX_QUEUED {
            self.queued.pop_front();
        }
        self.queued.push_back(incident);
    }

    /// Counts the waiting changes at running time `now`. A newer incident on an object (or a
    /// source) replaces the older one; a late change of an older incident is ignored.
    pub fn observe(&mut self, now: u64) {
        while let Some(i) = self.queued.pop_front() {
            let held = HeldIncident::new(&i, now);
            match i.object_id {
                Some(id) => keep(&mut self.tracked, id, held),
                None => keep(&mut self.per_source, i.source_id, held),
            }
        }
    }

    /// Drops the ended incidents whose hold has passed at `now`.
    pub fn expire(&mut self, now: u64, hold: u64) {
        self.tracked.retain(|_, h| h.live(now, hold));
        self.per_source.retain(|_, h| h.live(now, hold));
    }

    /// Forgets everything held and waiting (a flush: every incident upstream ends with it).
    pub fn clear(&mut self) {
        self.tracked.clear();
        self.per_source.clear();
        self.queued.clear();
    }

    pub fn on_object(&self, object_id: u64) -> Option<&HeldIncident> {
        self.tracked.get(&object_id)
    }

    /// The newest incident of an object no detection of this frame names (`present`) whose
    /// latest box holds the centre of `rect`: the detections carry no ids (see
    /// [`super::held::Holds::orphan_over`]).
    pub fn orphan_over(&self, rect: &PixelRect, present: &[u64]) -> Option<&HeldIncident> {
        self.tracked
            .iter()
            .filter(|(id, h)| {
                !present.contains(id)
                    && h.last_box
                        .is_some_and(|b| super::layout::centre_inside(rect, &b))
            })
            .max_by_key(|(_, h)| h.since)
            .map(|(_, h)| h)
    }

    /// Incidents without an object, by source.
    pub fn per_source(&self) -> impl Iterator<Item = &HeldIncident> {
        self.per_source.values()
    }

    pub fn held(&self) -> usize {
        self.tracked.len() + self.per_source.len()
    }

    pub fn waiting(&self) -> usize {
        self.queued.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::EndReason;

    const S: u64 = 1_000_000_000;

    fn incident(id: u64, object: Option<u64>, state: State) -> Incident {
        let mut i = Incident::open(id, 0, 0, object, "person", None, 0);
        i.state = state;
        i
    }

    #[test]
    fn an_open_incident_stays_and_an_ended_one_is_held_for_hold() {
        let mut inc = Incidents::default();
        inc.queue(incident(1, Some(7), State::Pending));
        assert_eq!(
            (inc.held(), inc.waiting()),
            (0, 1),
            "counted at the next buffer"
        );
        inc.observe(S);
        inc.expire(100 * S, S);
        assert_eq!(
            inc.on_object(7).unwrap().state,
            State::Pending,
            "open: held"
        );
        let mut i = incident(1, Some(7), State::Alert);
        i.best_score = 0.93;
        inc.queue(i.clone());
        inc.observe(101 * S);
        assert_eq!(inc.on_object(7).unwrap().text(), "incident 1 ALERT 0.93");
        i.end(EndReason::Lost, 0);
        inc.queue(i);
        inc.observe(102 * S);
        inc.expire(102 * S + S - 1, S);
        assert!(inc.on_object(7).is_some(), "ended: still within its hold");
        inc.expire(103 * S, S);
        assert!(inc.on_object(7).is_none(), "ended and its hold passed");
    }

    #[test]
    fn an_older_incidents_change_does_not_replace_a_newer_one_and_a_flush_forgets() {
        let mut inc = Incidents::default();
        inc.queue(incident(5, Some(7), State::Pending));
        inc.queue({
            let mut i = incident(4, Some(7), State::Pending);
            i.end(EndReason::Lost, 0);
            i
        });
        let mut per_source = incident(9, None, State::Pending);
        per_source.source_id = 2;
        inc.queue(per_source);
        inc.observe(S);
        assert_eq!(inc.on_object(7).unwrap().incident_id, 5);
        assert_eq!(inc.per_source().next().unwrap().source_id, 2);
        let dismissed = {
            let mut i = incident(6, None, State::Pending);
            i.end(EndReason::Eos, 0);
            i
        };
        assert_eq!(dismissed.state, State::Dismissed);
        let h = HeldIncident::new(&dismissed, 0);
        assert_eq!(h.text(), "incident 6 dismissed");
        inc.queue(incident(5, Some(7), State::Alert));
        inc.clear();
        assert_eq!((inc.held(), inc.waiting()), (0, 0));
    }

    #[test]
    fn what_is_held_and_waiting_stays_bounded() {
        let mut inc = Incidents::default();
        for id in 0..(MAX_QUEUED as u64 + 10) {
            inc.queue(incident(id, Some(id), State::Pending));
        }
        assert_eq!(inc.waiting(), MAX_QUEUED);
        inc.observe(S);
        for id in 0..(MAX_HELD as u64 + 10) {
            inc.queue(incident(100_000 + id, Some(100_000 + id), State::Pending));
            inc.observe(2 * S + id);
        }
        assert_eq!(inc.held(), MAX_HELD);
    }
}
