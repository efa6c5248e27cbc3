// SPDX-License-Identifier: MIT OR Apache-2.0
//! Incident keeping for `iguardverify`: one [`Incident`] per tracked object (per source with
//! `clip-per=source`), from its first clip to its end, and the delivery of its changes.
//!
//! - A clip that starts opens its object's incident (`new`) or joins the open one.
//! - Each verdict of one of its clips updates it (`update`), or makes it an alert (`alert`)
//!   when it is the `alert-after`-th verified clip; a `fallback` label guess never counts.
//! - It ends (`end`, once, the last change) when its object is lost (`track-timeout`), at its
//!   source's per-stream EOS, or after `incident-timeout` of buffer time without a new clip,
//!   but only once every clip of it has its verdict; at EOS, flush and stop every incident ends
//!   (by then every request was answered), so nothing is held after a stop.
//!
//! Each change goes out twice: as an `iguard-incident` custom downstream event through the
//! element's outbox (pushed by the streaming thread before the next buffer, or by the courier
//! when none comes), and as an element message of the same structure through a [`Poster`],
//! which posts with no lock held and in the order the changes were made. Both carry the
//! element's run id and name and the time of the change ([`wire::stamp`]), as its verdict
//! events do, so a publisher never takes one run's incident 1 for another's.
//!
//! Locks: the keeper's own (taken under `state` by the streaming thread, alone by the workers
//! delivering verdicts) → the outbox, the courier's signal, the poster's queue and the counts
//! (leaves). Nothing is posted while the keeper's lock is held.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gst::prelude::*;

use super::courier;
use crate::clip::{ClipAssembler, FrameEvents};
use crate::detections::SourceFrame;
use crate::geometry::PixelRect;
use crate::incident::{Change, EndReason, Incident, PixelBox, State};
use crate::publish::wire;
use crate::sync::lock;
use crate::verdict::Verdict;

/// How incidents are kept (`incidents`, `alert-after`, `incident-timeout`, `clip-per`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub enabled: bool,
    /// Verified clips that make an incident an alert (at least 1).
    pub alert_after: u32,
    /// Buffer time (ns) without a new clip that ends an incident; 0: never.
    pub timeout_ns: u64,
    /// `clip-per=source`: one incident per source's period of activity.
    pub per_source: bool,
}

/// The incident figures of `stats`: `opened = alerted + dismissed + open`, where `alerted`
/// counts every incident that became an alert (open or ended), `dismissed` those that ended
/// without one, and `open` those open and not (yet) an alert.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub opened: u64,
    pub alerted: u64,
    pub dismissed: u64,
    pub open: u64,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn pixel_box(r: PixelRect) -> PixelBox {
    PixelBox {
        x: r.x,
        y: r.y,
        width: r.width,
        height: r.height,
    }
}

/// One incident and what its keeping needs.
#[derive(Debug)]
struct Entry {
    incident: Incident,
    /// Its requests still without a verdict.
    pending: u32,
    /// Why it ends, once decided: it ends when `pending` reaches 0.
    ending: Option<EndReason>,
    /// Buffer time of its latest clip (start, or end as its verdict gives it).
    active_pts: Option<u64>,
    /// How many of its object's remembered zones were copied into it.
    zones_copied: usize,
}

/// Object identity of an incident: its source and its object (`None` with
/// `clip-per=source`).
type Key = (u32, Option<u64>);

/// The incidents of one element's run. See the module's documentation.
pub struct Keeper {
    config: Config,
    next_id: u64,
    entries: HashMap<u64, Entry>,
    /// The incident new clips of an object join (absent once its end is decided).
    current: HashMap<Key, u64>,
    /// Which incident each request belongs to, until its verdict.
    requests: HashMap<u64, u64>,
    outbox: Arc<Mutex<wire::Outbox>>,
    courier: Arc<courier::Signal>,
    poster: Arc<Poster>,
    counts: Arc<Mutex<Counts>>,
    /// Working space of `frame`, kept so frames allocate nothing.
    ended: Vec<u64>,
    /// Where the changes come from: the element's run (its verdicts' run id) and name.
    origin: Origin,
}

/// The element's run id and name, stamped on every change ([`wire::stamp`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub run_id: String,
    pub element: String,
}

impl Keeper {
    pub fn new(
        config: Config,
        origin: Origin,
        outbox: Arc<Mutex<wire::Outbox>>,
        courier: Arc<courier::Signal>,
        poster: Arc<Poster>,
    ) -> Keeper {
        Keeper {
            config,
            next_id: 1,
            entries: HashMap::new(),
            current: HashMap::new(),
            requests: HashMap::new(),
            outbox,
            courier,
            poster,
            counts: Arc::default(),
            ended: Vec::new(),
            origin,
        }
    }

    /// The figures, shared: readable without the keeper's lock.
    pub fn counts(&self) -> Arc<Mutex<Counts>> {
        self.counts.clone()
    }

    /// One frame of `source` went through the assembler with `events`: clips that started open
    /// or join incidents, objects seen update theirs (box, zones), lost objects end theirs, and
    /// incidents quiet for `incident-timeout` end.
    pub fn frame(
        &mut self,
        source: &SourceFrame,
        pts: Option<u64>,
        events: &FrameEvents,
        assembler: &ClipAssembler,
    ) {
        if !self.config.enabled {
            return;
        }
        for o in &events.opened {
            let key = (source.source_id, o.object_id);
            let id = match self.current.get(&key) {
                Some(&id) => id,
                None => {
                    let id = self.next_id;
                    self.next_id += 1;
                    let incident = Incident::open(
                        id,
                        source.source_id,
                        source.pad_index,
                        o.object_id,
                        &o.trigger_label,
                        o.start_pts,
                        now_us(),
                    );
                    self.entries.insert(
                        id,
                        Entry {
                            incident,
                            pending: 0,
                            ending: None,
                            active_pts: None,
                            zones_copied: 0,
                        },
                    );
                    self.current.insert(key, id);
                    let mut c = lock(&self.counts);
                    c.opened += 1;
                    c.open += 1;
                    id
                }
            };
            self.requests.insert(o.request_id, id);
            let Some(e) = self.entries.get_mut(&id) else {
                continue;
            };
            e.pending += 1;
            e.incident.clips += 1;
            e.active_pts = o.start_pts.or(e.active_pts);
            if let Some(b) = o.bbox {
                e.incident.last_box = Some(pixel_box(b));
            }
            if e.incident.clips == 1 {
                self.copy_zones(id, assembler);
                self.send(id, Change::New);
            }
        }
        let timeout = self.config.timeout_ns;
        for (&id, e) in &mut self.entries {
            if e.incident.source_id != source.source_id || e.ending.is_some() {
                continue;
            }
            if let Some(object) = e.incident.object_id
                && let Some(seen) = assembler.object(source.source_id, object)
            {
                if let Some(b) = seen.bbox {
                    e.incident.last_box = Some(pixel_box(b));
                }
                for &z in &seen.zones[e.zones_copied.min(seen.zones.len())..] {
                    e.incident.enter_zone(assembler.zones().name(z));
                }
                e.zones_copied = seen.zones.len();
            }
            let quiet = match (pts, e.active_pts) {
                (Some(now), Some(active)) => now.saturating_sub(active),
                _ => 0,
            };
            if timeout > 0 && e.pending == 0 && quiet >= timeout {
                e.ending = Some(EndReason::Timeout);
                self.current
                    .remove(&(e.incident.source_id, e.incident.object_id));
                self.ended.push(id);
            }
        }
        for &object in &events.lost {
            if let Some(id) = self.current.remove(&(source.source_id, Some(object)))
                && let Some(e) = self.entries.get_mut(&id)
            {
                e.ending.get_or_insert(EndReason::Lost);
                if e.pending == 0 {
                    self.ended.push(id);
                }
            }
        }
        let mut ended = std::mem::take(&mut self.ended);
        for id in ended.drain(..) {
            self.finish(id);
        }
        self.ended = ended;
    }

    /// The verdict of one of an incident's clips: counted, then `update` (or `alert`), then
    /// `end` when its end was decided and this was its last pending clip.
    pub fn verdict(&mut self, v: &Verdict) {
        let Some(id) = self.requests.remove(&v.request_id) else {
            return;
        };
        let alert_after = self.config.alert_after;
        let per_source = self.config.per_source;
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        e.pending = e.pending.saturating_sub(1);
        let verified = e.incident.count_verdict(v);
        for z in &v.zones {
            e.incident.enter_zone(z);
        }
        if per_source && let Some(crop) = v.crop {
            e.incident.last_box = Some(pixel_box(crop));
        }
        if let Some(end) = v.clip_end_pts {
            e.active_pts = Some(e.active_pts.map_or(end, |a| a.max(end)));
        }
        let change = if verified
            && e.incident.state == State::Pending
            && e.incident.clips_verified >= alert_after
        {
            e.incident.state = State::Alert;
            let mut c = lock(&self.counts);
            c.open = c.open.saturating_sub(1);
            c.alerted += 1;
            Change::Alert
        } else {
            Change::Update
        };
        let ends = e.ending.is_some() && e.pending == 0;
        self.send(id, change);
        if ends {
            self.finish(id);
        }
    }

    /// `source`'s stream ended: its incidents end once their clips (completed and submitted
    /// just before) have their verdicts.
    pub fn end_source(&mut self, source: u32) {
        self.current.retain(|k, _| k.0 != source);
        let mut ended = std::mem::take(&mut self.ended);
        for (&id, e) in &mut self.entries {
            if e.incident.source_id == source {
                e.ending.get_or_insert(EndReason::SourceEos);
                if e.pending == 0 {
                    ended.push(id);
                }
            }
        }
        for id in ended.drain(..) {
            self.finish(id);
        }
        self.ended = ended;
    }

    /// Ends every incident now, for `reason` (EOS, flush, stop): every request was answered
    /// by then, or will not be counted.
    pub fn end_all(&mut self, reason: EndReason) {
        self.current.clear();
        self.requests.clear();
        let mut ids: Vec<u64> = self.entries.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(e) = self.entries.get_mut(&id) {
                e.ending.get_or_insert(reason);
            }
            self.finish(id);
        }
    }

    fn copy_zones(&mut self, id: u64, assembler: &ClipAssembler) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        let Some(object) = e.incident.object_id else {
            return;
        };
        if let Some(seen) = assembler.object(e.incident.source_id, object) {
            for &z in &seen.zones {
                e.incident.enter_zone(assembler.zones().name(z));
            }
            e.zones_copied = seen.zones.len();
        }
    }

    /// Ends incident `id` with its decided reason and sends `end`.
    fn finish(&mut self, id: u64) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        let reason = e.ending.unwrap_or(EndReason::Stop);
        e.incident.end(reason, now_us());
        if e.incident.state == State::Dismissed {
            let mut c = lock(&self.counts);
            c.open = c.open.saturating_sub(1);
            c.dismissed += 1;
        }
        self.send(id, Change::End);
        if let Some(e) = self.entries.remove(&id) {
            let key = (e.incident.source_id, e.incident.object_id);
            if self.current.get(&key) == Some(&id) {
                self.current.remove(&key);
            }
        }
    }

    /// Sends `change` of incident `id`: the event into the outbox, the message to the poster.
    fn send(&mut self, id: u64, change: Change) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        e.incident.revision += 1;
        let mut s = e.incident.to_structure(change);
        // The times the incident records for its start and end are those of the changes.
        let at = match change {
            Change::New => e.incident.start_unix_us,
            Change::End => e.incident.end_unix_us,
            Change::Update | Change::Alert => now_us(),
        };
        wire::stamp(&mut s, &self.origin.run_id, &self.origin.element, at);
        lock(&self.outbox).push(gst::event::CustomDownstream::new(s.clone()));
        self.courier.queued();
        self.poster.enqueue(s);
    }
}

#[derive(Debug, Default)]
struct PostQueue {
    messages: VecDeque<gst::Structure>,
    /// A thread is posting: it posts what is queued, in order, until none is left.
    posting: bool,
}

/// Posts element messages in the order they were queued, with no lock held while posting:
/// whoever finds nobody posting posts everything queued, others only queue. So a message is
/// never posted under a lock (a bus sync handler may call back into the element, even flush
/// it: its own messages are then queued and posted by the outer loop).
#[derive(Debug, Default)]
pub struct Poster {
    queue: Mutex<PostQueue>,
    idle: Condvar,
}

impl Poster {
    pub fn enqueue(&self, s: gst::Structure) {
        lock(&self.queue).messages.push_back(s);
    }

    /// Posts what is queued as `element`'s messages, unless another thread already is.
    pub fn post_all(&self, element: &gst::Element) {
        let mut q = lock(&self.queue);
        if q.posting {
            return;
        }
        q.posting = true;
        loop {
            let Some(s) = q.messages.pop_front() else {
                q.posting = false;
                self.idle.notify_all();
                return;
            };
            drop(q);
            let msg = gst::message::Element::builder(s).src(element).build();
            let _ = element.post_message(msg);
            q = lock(&self.queue);
        }
    }

    /// Posts what is queued and waits, at most `wait`, until another thread posting has
    /// posted all: before EOS goes on, every change made before it is on the bus.
    pub fn flush(&self, element: &gst::Element, wait: Duration) {
        self.post_all(element);
        let deadline = Instant::now() + wait;
        let mut q = lock(&self.queue);
        while q.posting || !q.messages.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            q = self
                .idle
                .wait_timeout(q, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}
