// SPDX-License-Identifier: MIT OR Apache-2.0
//! The spool of a network output: every event waits here until the receiver acknowledged it
//! (an MQTT PUBACK), oldest first.
//!
//! Memory always; with a folder, every event is also appended to the current segment
//! (`seg-<n>.jsonl`, append-only JSON Lines). A segment is deleted once all its events are
//! acknowledged or dropped; on a clean close what is left is written to one fresh segment and
//! the older ones are deleted, so the next start replays exactly the unacknowledged events
//! (after a crash, a partly acknowledged segment is replayed whole: consumers drop duplicates
//! by `event_id`). The bound (`max_bytes`) counts what the spool holds: each event is kept as
//! its stored line (parsed again only when it is sent) plus its entry. Past the bound the
//! oldest events not in flight are dropped, counted, and a gap is remembered to report.
//!
//! Loading reads bytes, not text: a line that is not valid UTF-8 or not an event (a write torn
//! by a crash or a power cut, a garbage file) is skipped and counted in `skipped`, and the
//! rest of the folder is replayed.
//!
//! Durability: appends are `fdatasync`ed per batch: when the output thread has nothing more
//! queued ([`Spool::sync`]), and at least every [`SYNC_EVERY`] appends; the folder itself is
//! synced with them once a segment was created or deleted, and at a clean close after the
//! rename. So a process crash loses nothing that reached [`Spool::push`] (the kernel has it);
//! a power cut loses at most the last batch not yet synced (a torn last line is skipped), and
//! may bring back a deleted segment, whose events are then sent again (duplicates, not losses).
//!
//! When the folder fails (a full disk), the event stays in memory only, under the same bound,
//! and the half-written line is cut off the segment; each later event tries the folder again,
//! so spooling to disk resumes by itself once there is room. What only memory holds is written
//! out at a clean close like the rest.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::schema::Event;

/// Appends between two syncs of the segment, at most, while events keep coming.
pub const SYNC_EVERY: u32 = 64;

#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// Bound on what the spool holds: each event's stored line and its entry.
    pub max_bytes: u64,
    pub dir: Option<PathBuf>,
}

/// One event, held as its stored line: a line is a fraction of the size of its parsed
/// `serde_json::Map`, and the bound then counts what is really held.
#[derive(Debug)]
struct Entry {
    seq: u64,
    line: Box<str>,
    gap: bool,
    unix_us: i64,
    replay: bool,
    sent: bool,
    bytes: u64,
    segment: Option<u64>,
}

/// What an event of `line` holds in the spool, in bytes: the line and its entry.
pub fn held_bytes(line: &str) -> u64 {
    (line.len() + std::mem::size_of::<Entry>()) as u64
}

/// Events the bound dropped since the last gap was reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub dropped: u64,
    /// When the oldest and the newest dropped verdicts were produced (µs since the epoch).
    pub first_us: i64,
    pub last_us: i64,
}

/// An event taken for sending.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub seq: u64,
    pub event: Event,
    pub replay: bool,
}

struct Disk {
    dir: PathBuf,
    /// The segment being appended to: id, file, size.
    current: Option<(u64, File, u64)>,
    /// Events not yet acknowledged or dropped, per segment.
    pending: BTreeMap<u64, usize>,
    next_id: u64,
    segment_bytes: u64,
    /// Appends to the current segment since its last sync.
    unsynced: u32,
    /// A segment was created or deleted since the folder's last sync.
    dir_dirty: bool,
    /// Segments that could not be read at loading: left as they are, for the next start.
    unreadable: Vec<u64>,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("seg-{id:010}.jsonl"))
}

fn segment_id(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?
        .strip_suffix(".jsonl")?
        .parse()
        .ok()
}

impl Disk {
    fn segments(dir: &Path) -> std::io::Result<Vec<u64>> {
        let mut ids: Vec<u64> = std::fs::read_dir(dir)?
            .filter_map(|e| segment_id(e.ok()?.file_name().to_str()?))
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    fn append(&mut self, line: &str) -> std::io::Result<u64> {
        let len = line.len() as u64 + 1;
        if self
            .current
            .as_ref()
            .is_some_and(|(_, _, size)| *size > 0 && size + len > self.segment_bytes)
        {
            self.finish_current();
        }
        if self.current.is_none() {
            let id = self.next_id;
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(segment_path(&self.dir, id))?;
            self.next_id += 1;
            self.current = Some((id, f, 0));
            self.dir_dirty = true;
        }
        let (id, f, size) = self.current.as_mut().expect("opened above");
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        if let Err(e) = f.write_all(&buf) {
            // A full disk keeps what fit: cut it off, or the next line would be glued to it
            // and both be unreadable at the next start. If even that fails, the segment is
            // left (its torn last line is skipped at loading) and the next one starts clean.
            if f.set_len(*size).is_err() {
                self.current = None;
            }
            return Err(e);
        }
        *size += len;
        *self.pending.entry(*id).or_default() += 1;
        self.unsynced += 1;
        Ok(*id)
    }

    /// Makes the appends so far and the folder's entries durable.
    fn sync(&mut self) -> std::io::Result<()> {
        if self.unsynced > 0 {
            if let Some((_, f, _)) = &self.current {
                f.sync_data()?;
            }
            self.unsynced = 0;
        }
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    fn remove_segment(&mut self, id: u64) {
        self.pending.remove(&id);
        let _ = std::fs::remove_file(segment_path(&self.dir, id));
        self.dir_dirty = true;
    }

    /// Stops appending to the current segment; deletes it if nothing in it is pending.
    fn finish_current(&mut self) {
        if self.unsynced > 0 {
            // Its last batch is made durable before the next segment takes the appends (an
            // error here shows at the next sync of the folder or write).
            if let Some((_, f, _)) = &self.current {
                let _ = f.sync_data();
            }
            self.unsynced = 0;
        }
        if let Some((id, _, _)) = self.current.take()
            && self.pending.get(&id).copied().unwrap_or(0) == 0
        {
            self.remove_segment(id);
        }
    }

    fn release(&mut self, id: u64) {
        let Some(n) = self.pending.get_mut(&id) else {
            return;
        };
        *n = n.saturating_sub(1);
        if *n == 0 && self.current.as_ref().map(|c| c.0) != Some(id) {
            self.remove_segment(id);
        }
    }
}

/// `fsync` of a folder: its entries (files created, renamed, deleted) survive a power cut.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The events of one segment's bytes (each with its line), and how many lines were not events
/// (not UTF-8, not JSON, not an event: a torn write or garbage).
pub fn read_segment(bytes: &[u8]) -> (Vec<(Box<str>, Event)>, u64) {
    let mut events = Vec::new();
    let mut bad = 0;
    for raw in bytes.split(|b| *b == b'\n') {
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match std::str::from_utf8(raw)
            .map_err(|e| e.to_string())
            .and_then(|l| Ok((l, Event::from_json(l)?)))
        {
            Ok((line, event)) => events.push((line.trim().into(), event)),
            Err(_) => bad += 1,
        }
    }
    (events, bad)
}

/// The first seq; below it, room for gap reports put at the front.
const FIRST_SEQ: u64 = 1 << 32;

pub struct Spool {
    entries: VecDeque<Entry>,
    bytes: u64,
    max_bytes: u64,
    next_seq: u64,
    gap: Option<Gap>,
    /// Events the bound dropped, in all.
    pub dropped: u64,
    /// Failed writes or syncs of the folder (events not written are kept in memory only).
    pub disk_errors: u64,
    /// Lines of the folder that were not events when it was loaded (a torn write, garbage):
    /// skipped, the rest replayed.
    pub skipped: u64,
    /// The last write to the folder failed: warned once, until one works again.
    disk_failing: bool,
    /// Whether the receiver is known to be down (a connection failed and none succeeded
    /// since): events pushed meanwhile are sent late, as replays.
    pub down: bool,
    disk: Option<Disk>,
}

impl Spool {
    /// Opens the spool, loading a previous run's events from the folder. Problems with the
    /// folder are returned as messages; the spool then works in memory.
    pub fn open(config: &SpoolConfig) -> (Spool, Vec<String>) {
        let mut spool = Spool {
            entries: VecDeque::new(),
            bytes: 0,
            max_bytes: config.max_bytes,
            next_seq: FIRST_SEQ,
            gap: None,
            dropped: 0,
            disk_errors: 0,
            skipped: 0,
            disk_failing: false,
            down: false,
            disk: None,
        };
        let mut problems = Vec::new();
        let Some(dir) = &config.dir else {
            return (spool, problems);
        };
        let loaded = (|| -> std::io::Result<Disk> {
            let problems = &mut problems;
            std::fs::create_dir_all(dir)?;
            // Fail now, not at the first event, when the folder is not writable.
            let probe = dir.join(".iguard-probe");
            File::create(&probe)?;
            std::fs::remove_file(&probe)?;
            let ids = Disk::segments(dir)?;
            let mut disk = Disk {
                dir: dir.clone(),
                current: None,
                pending: BTreeMap::new(),
                next_id: ids.last().map_or(1, |l| l + 1),
                segment_bytes: (config.max_bytes / 8).clamp(64 * 1024, 16 * 1024 * 1024),
                unsynced: 0,
                dir_dirty: false,
                unreadable: Vec::new(),
            };
            let mut torn = Vec::new();
            for id in ids {
                let path = segment_path(dir, id);
                let bytes = match std::fs::read(&path) {
                    Ok(b) => b,
                    Err(e) => {
                        // Left in place (it may be readable at the next start); the others
                        // are replayed.
                        problems.push(format!(
                            "cannot read {} ({e}): left for the next start",
                            path.display()
                        ));
                        disk.unreadable.push(id);
                        continue;
                    }
                };
                let (events, bad) = read_segment(&bytes);
                for (line, event) in events {
                    *disk.pending.entry(id).or_default() += 1;
                    spool.insert_line(line, &event, true, Some(id));
                }
                if bad > 0 {
                    spool.skipped += bad;
                    torn.push(format!("seg-{id:010}.jsonl: {bad}"));
                }
                if disk.pending.get(&id).copied().unwrap_or(0) == 0 {
                    disk.remove_segment(id);
                }
            }
            if !torn.is_empty() {
                problems.push(format!(
                    "spool folder {}: {} lines that are not events (a write torn by a crash, \
                     or garbage) were skipped ({}); the other events are replayed",
                    dir.display(),
                    spool.skipped,
                    torn.join(", ")
                ));
            }
            Ok(disk)
        })();
        match loaded {
            Ok(disk) => spool.disk = Some(disk),
            Err(e) => {
                spool.disk_errors += 1;
                problems.push(format!(
                    "spool folder {} is not usable ({e}); spooling in memory only",
                    dir.display()
                ));
            }
        }
        spool.enforce_bound();
        (spool, problems)
    }

    fn insert_line(&mut self, line: Box<str>, event: &Event, replay: bool, segment: Option<u64>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let bytes = held_bytes(&line);
        self.bytes += bytes;
        self.entries.push_back(Entry {
            seq,
            line,
            gap: event.gap,
            unix_us: event.unix_us,
            replay,
            sent: false,
            bytes,
            segment,
        });
    }

    /// Adds an event. When the folder fails the event is kept in memory only; the error (the
    /// first failure of an outage only, so one warning per outage) names the folder. `Ok(Some)`
    /// says the folder works again after such an outage.
    pub fn push(&mut self, event: Event) -> Result<Option<String>, String> {
        let line = event.stored();
        let mut result = Ok(None);
        let segment = match self.disk.as_mut().map(|d| (d.append(&line), d.dir.clone())) {
            Some((Ok(id), dir)) => {
                if self.disk_failing {
                    self.disk_failing = false;
                    result = Ok(Some(format!("spooling to {} again", dir.display())));
                }
                Some(id)
            }
            Some((Err(e), dir)) => {
                self.disk_errors += 1;
                if !self.disk_failing {
                    self.disk_failing = true;
                    result = Err(format!(
                        "cannot write to spool folder {} ({e}); keeping events in memory until \
                         it works again",
                        dir.display()
                    ));
                }
                None
            }
            None => None,
        };
        if self.disk.as_ref().is_some_and(|d| d.unsynced >= SYNC_EVERY)
            && let Err(e) = self.sync()
        {
            result = Err(e);
        }
        let replay = self.down;
        self.insert_line(line.into_boxed_str(), &event, replay, segment);
        self.enforce_bound();
        result
    }

    /// Makes what was appended so far durable (the end of a batch). An error (the first of
    /// an outage only, like [`Spool::push`]'s) names the folder.
    pub fn sync(&mut self) -> Result<(), String> {
        let Some(d) = self.disk.as_mut() else {
            return Ok(());
        };
        match d.sync() {
            Ok(()) => Ok(()),
            Err(e) => {
                self.disk_errors += 1;
                if self.disk_failing {
                    return Ok(());
                }
                self.disk_failing = true;
                Err(format!(
                    "cannot sync spool folder {} ({e}); events may not survive a power cut",
                    d.dir.display()
                ))
            }
        }
    }

    fn remove_at(&mut self, i: usize) -> Entry {
        let e = self.entries.remove(i).expect("index in range");
        self.bytes -= e.bytes;
        if let (Some(d), Some(id)) = (self.disk.as_mut(), e.segment) {
            d.release(id);
        }
        e
    }

    /// Drops the oldest events not in flight until the bound holds.
    fn enforce_bound(&mut self) {
        while self.bytes > self.max_bytes {
            // Gap reports stay: they are what tells of the drops.
            let Some(i) = self.entries.iter().position(|e| !e.sent && !e.gap) else {
                break;
            };
            let e = self.remove_at(i);
            self.dropped += 1;
            let t = e.unix_us;
            self.gap = Some(match self.gap {
                None => Gap {
                    dropped: 1,
                    first_us: t,
                    last_us: t,
                },
                Some(g) => Gap {
                    dropped: g.dropped + 1,
                    first_us: g.first_us.min(t),
                    last_us: g.last_us.max(t),
                },
            });
        }
    }

    /// Puts an event at the front (a gap report, sent before what follows it).
    pub fn push_front(&mut self, event: Event) {
        let line = event.stored().into_boxed_str();
        let bytes = held_bytes(&line);
        // Seqs start high, so there is room below the front.
        let seq = match self.entries.front() {
            Some(f) => f.seq - 1,
            None => {
                self.next_seq += 1;
                self.next_seq - 1
            }
        };
        self.bytes += bytes;
        self.entries.push_front(Entry {
            seq,
            line,
            gap: event.gap,
            unix_us: event.unix_us,
            replay: false,
            sent: false,
            bytes,
            segment: None,
        });
    }

    /// The oldest event not yet sent, now marked in flight.
    pub fn next_unsent(&mut self) -> Option<Outgoing> {
        loop {
            let i = self.entries.iter().position(|e| !e.sent)?;
            let e = &mut self.entries[i];
            match Event::from_json(&e.line) {
                Ok(event) => {
                    e.sent = true;
                    return Some(Outgoing {
                        seq: e.seq,
                        event,
                        replay: e.replay,
                    });
                }
                // Every line was an event when it came in; should one not read back, it is
                // skipped like a torn line rather than block the spool.
                Err(_) => {
                    self.remove_at(i);
                    self.skipped += 1;
                }
            }
        }
    }

    /// The receiver acknowledged `seq`: it leaves the spool. Unknown seqs (dropped) are ignored.
    pub fn ack(&mut self, seq: u64) -> bool {
        let i = self.entries.partition_point(|e| e.seq < seq);
        if self.entries.get(i).is_some_and(|e| e.seq == seq) {
            self.remove_at(i);
            true
        } else {
            false
        }
    }

    /// The connection went: every event in flight is sent again, and all are replays now.
    pub fn rewind(&mut self) {
        for e in self.entries.iter_mut() {
            e.sent = false;
            e.replay = true;
        }
    }

    /// The gap to report, if events were dropped since the last report.
    pub fn take_gap(&mut self) -> Option<Gap> {
        self.gap.take()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn in_flight(&self) -> usize {
        self.entries.iter().filter(|e| e.sent).count()
    }

    /// Whether events are being written to the folder (it is set, usable, and the last write
    /// worked).
    pub fn has_disk(&self) -> bool {
        self.disk.is_some() && !self.disk_failing
    }

    /// Shutdown: what is left goes into one fresh segment for the next start; the older
    /// segments are deleted. Returns how many events were kept on disk.
    pub fn close(&mut self) -> Result<usize, String> {
        let Some(mut disk) = self.disk.take() else {
            return Ok(0);
        };
        disk.current = None;
        let dir = disk.dir.clone();
        let mut tmp = None;
        let result = (|| -> std::io::Result<usize> {
            let mut old = Disk::segments(&dir)?;
            old.retain(|o| !disk.unreadable.contains(o));
            let id = old
                .last()
                .map_or(disk.next_id, |l| (l + 1).max(disk.next_id));
            let kept = self.entries.iter().filter(|e| !e.gap).count();
            if kept > 0 {
                let path = tmp.insert(dir.join(format!(".seg-{id:010}.tmp")));
                let mut f = File::create(&*path)?;
                let mut text = String::new();
                for e in self.entries.iter().filter(|e| !e.gap) {
                    text.push_str(&e.line);
                    text.push('\n');
                }
                f.write_all(text.as_bytes())?;
                f.sync_all()?;
                std::fs::rename(&*path, segment_path(&dir, id))?;
                tmp = None;
            }
            for o in old {
                std::fs::remove_file(segment_path(&dir, o))?;
            }
            sync_dir(&dir)?;
            Ok(kept)
        })();
        result.map_err(|e| {
            // A full disk: give back what the temporary file took; the older segments stay,
            // with every event that reached them.
            if let Some(t) = tmp {
                let _ = std::fs::remove_file(t);
            }
            let memory_only = self
                .entries
                .iter()
                .filter(|e| !e.gap && e.segment.is_none())
                .count();
            format!(
                "cannot save the spool in {} ({e}): {memory_only} events held only in memory \
                 are lost; those in the older segments are sent at the next start",
                dir.display()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::schema::tests::{fields, origin};

    fn event(id: u64) -> Event {
        let mut o = origin();
        o.unix_us += id as i64;
        Event::from_fields(fields(id, (id % 2) as u32, "verified"), &o).unwrap()
    }

    fn tmpdir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "iguard-spool-{name}-{}-{}",
            std::process::id(),
            crate::publish::schema::now_us()
        ))
    }

    fn ids(s: &mut Spool) -> Vec<String> {
        let mut v = Vec::new();
        while let Some(o) = s.next_unsent() {
            v.push(o.event.event_id);
        }
        s.rewind();
        v
    }

    #[test]
    fn sends_oldest_first_and_forgets_only_on_ack() {
        let (mut s, p) = Spool::open(&SpoolConfig {
            max_bytes: 1 << 20,
            dir: None,
        });
        assert!(p.is_empty());
        for i in 1..=3 {
            s.push(event(i)).unwrap();
        }
        let a = s.next_unsent().unwrap();
        let b = s.next_unsent().unwrap();
        assert_eq!(a.event.event_id, "00c0ffee-1");
        assert!(!a.replay);
        assert_eq!(s.in_flight(), 2);
        assert!(s.ack(b.seq));
        assert!(!s.ack(b.seq), "a second ack changes nothing");
        // The connection drops before a's ack: a is sent again, as a replay, before 3.
        s.rewind();
        let again = s.next_unsent().unwrap();
        assert_eq!(again.event.event_id, "00c0ffee-1");
        assert!(again.replay);
        assert_eq!(s.next_unsent().unwrap().event.event_id, "00c0ffee-3");
        assert!(s.next_unsent().is_none());
    }

    #[test]
    fn the_bound_drops_the_oldest_not_in_flight_and_reports_a_gap() {
        let one = held_bytes(&event(1).stored());
        let (mut s, _) = Spool::open(&SpoolConfig {
            max_bytes: one * 3 + one / 2,
            dir: None,
        });
        s.down = true;
        s.push(event(1)).unwrap();
        let first = s.next_unsent().unwrap(); // in flight: never dropped
        for i in 2..=6 {
            s.push(event(i)).unwrap();
        }
        assert_eq!(s.dropped, 3);
        assert_eq!(s.len(), 3);
        assert!(s.bytes() <= one * 3 + one / 2);
        let g = s.take_gap().unwrap();
        assert_eq!(g.dropped, 3);
        assert_eq!(g.first_us, event(2).unix_us);
        assert_eq!(g.last_us, event(4).unix_us);
        assert!(s.take_gap().is_none());
        assert!(s.ack(first.seq));
        assert_eq!(ids(&mut s), ["00c0ffee-5", "00c0ffee-6"]);
        assert!(s.next_unsent().unwrap().replay, "pushed while disconnected");
    }

    #[test]
    fn a_gap_event_goes_first() {
        let (mut s, _) = Spool::open(&SpoolConfig {
            max_bytes: 1 << 20,
            dir: None,
        });
        s.push(event(1)).unwrap();
        s.push_front(Event::gap("g".into(), 2, 0, 0, "p", 0));
        s.push(event(2)).unwrap();
        assert_eq!(ids(&mut s), ["g", "00c0ffee-1", "00c0ffee-2"]);
    }

    #[test]
    fn the_folder_keeps_unacked_events_for_the_next_start() {
        let dir = tmpdir("disk");
        let config = SpoolConfig {
            max_bytes: 1 << 20,
            dir: Some(dir.clone()),
        };
        {
            let (mut s, p) = Spool::open(&config);
            assert!(p.is_empty(), "{p:?}");
            assert!(s.has_disk());
            for i in 1..=5 {
                s.push(event(i)).unwrap();
            }
            let a = s.next_unsent().unwrap();
            let b = s.next_unsent().unwrap();
            s.ack(a.seq);
            s.ack(b.seq);
            assert_eq!(s.close().unwrap(), 3);
        }
        let segs = Disk::segments(&dir).unwrap();
        assert_eq!(segs.len(), 1, "one fresh segment");
        let (mut s, p) = Spool::open(&config);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(s.len(), 3);
        let first = s.next_unsent().unwrap();
        assert!(first.replay, "from a previous run");
        assert_eq!(first.event.event_id, "00c0ffee-3");
        s.rewind();
        // Everything acknowledged: nothing left for a third start.
        while let Some(o) = s.next_unsent() {
            s.ack(o.seq);
        }
        assert_eq!(s.close().unwrap(), 0);
        let (s, _) = Spool::open(&config);
        assert!(s.is_empty());
        assert!(Disk::segments(&dir).unwrap().is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn acked_segments_are_deleted_as_they_fill() {
        let dir = tmpdir("segments");
        let (mut s, _) = Spool::open(&SpoolConfig {
            max_bytes: 64 * 1024 * 8,
            dir: Some(dir.clone()),
        });
        let n = 64 * 1024 / event(1).stored().len() + 10;
        for i in 0..n as u64 * 3 {
            s.push(event(i + 1)).unwrap();
            let o = s.next_unsent().unwrap();
            s.ack(o.seq);
        }
        assert!(s.is_empty());
        assert!(
            Disk::segments(&dir).unwrap().len() <= 1,
            "only the current segment remains"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_full_disk_keeps_events_in_memory_warns_once_and_resumes_when_there_is_room() {
        let dir = tmpdir("full");
        let config = SpoolConfig {
            max_bytes: 1 << 20,
            dir: Some(dir.clone()),
        };
        let (mut s, p) = Spool::open(&config);
        assert!(p.is_empty(), "{p:?}");
        // The next two segments are /dev/full, which answers every write with ENOSPC.
        for id in [1, 2] {
            std::os::unix::fs::symlink("/dev/full", segment_path(&dir, id)).unwrap();
        }
        let e = s.push(event(1)).unwrap_err();
        assert!(e.contains(&dir.display().to_string()), "{e}");
        assert!(e.contains("No space left on device"), "{e}");
        assert!(!s.has_disk());
        assert_eq!(s.push(event(2)), Ok(None), "one warning per outage");
        let back = s.push(event(3)).unwrap().expect("the folder works again");
        assert!(back.contains(&dir.display().to_string()), "{back}");
        assert!(s.has_disk());
        assert_eq!((s.disk_errors, s.len()), (2, 3), "nothing lost");
        // The clean close writes every event, those only in memory included.
        assert_eq!(s.close().unwrap(), 3);
        let (mut s, p) = Spool::open(&config);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(ids(&mut s), ["00c0ffee-1", "00c0ffee-2", "00c0ffee-3"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// An event whose source name is multi-byte text, so a torn line can end mid-character.
    fn accented(id: u64) -> Event {
        let mut f = fields(id, 0, "verified");
        f.insert("source_name".into(), "caméra-entrée-ü".into());
        let mut o = origin();
        o.unix_us += id as i64;
        Event::from_fields(f, &o).unwrap()
    }

    fn write_segment(dir: &Path, id: u64, bytes: &[u8]) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(segment_path(dir, id), bytes).unwrap();
    }

    fn lines_of(events: impl IntoIterator<Item = Event>) -> Vec<u8> {
        let mut b = Vec::new();
        for e in events {
            b.extend_from_slice(e.stored().as_bytes());
            b.push(b'\n');
        }
        b
    }

    #[test]
    fn a_torn_multibyte_character_at_a_segments_end_is_skipped_and_the_rest_replayed() {
        let dir = tmpdir("torn");
        let mut bytes = lines_of((1..=3).map(accented));
        // The fourth line stops after the first byte of its first 'é' (a write cut short).
        let fourth = accented(4).stored();
        let cut = fourth.find('é').unwrap() + 1;
        bytes.extend_from_slice(&fourth.as_bytes()[..cut]);
        write_segment(&dir, 1, &bytes);
        let config = SpoolConfig {
            max_bytes: 1 << 20,
            dir: Some(dir.clone()),
        };
        let (mut s, p) = Spool::open(&config);
        assert!(s.has_disk(), "the folder is still used: {p:?}");
        assert_eq!(s.skipped, 1);
        assert_eq!(p.len(), 1, "one warning: {p:?}");
        assert!(
            p[0].contains(&dir.display().to_string()) && p[0].contains("1 lines"),
            "{p:?}"
        );
        let o = s.next_unsent().unwrap();
        assert!(o.replay);
        assert_eq!(o.event.source, "caméra-entrée-ü");
        s.rewind();
        assert_eq!(ids(&mut s), ["00c0ffee-1", "00c0ffee-2", "00c0ffee-3"]);
        // New events go to a new segment, never glued to the torn line.
        s.push(accented(5)).unwrap();
        assert_eq!(s.close().unwrap(), 4);
        let (mut s, p) = Spool::open(&config);
        assert!(p.is_empty(), "the clean close left no torn line: {p:?}");
        assert_eq!(s.skipped, 0);
        assert_eq!(
            ids(&mut s),
            ["00c0ffee-1", "00c0ffee-2", "00c0ffee-3", "00c0ffee-5"]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_garbage_segment_between_good_ones_is_skipped_and_deleted() {
        let dir = tmpdir("garbage");
        write_segment(&dir, 1, &lines_of([event(1), event(2)]));
        let mut garbage =
            b"\xff\xfe\x00binary\n{\"schema\":\"iguard.verdict/1\"}\n{not json\n".to_vec();
        garbage.extend((0..200u8).map(|i| i.wrapping_mul(37)));
        write_segment(&dir, 2, &garbage);
        write_segment(&dir, 3, &lines_of([event(3)]));
        let (mut s, p) = Spool::open(&SpoolConfig {
            max_bytes: 1 << 20,
            dir: Some(dir.clone()),
        });
        assert!(s.has_disk(), "{p:?}");
        assert_eq!(p.len(), 1, "one warning: {p:?}");
        assert!(p[0].contains("seg-0000000002.jsonl"), "{p:?}");
        assert!(s.skipped >= 4, "{}", s.skipped);
        assert_eq!(ids(&mut s), ["00c0ffee-1", "00c0ffee-2", "00c0ffee-3"]);
        assert_eq!(
            Disk::segments(&dir).unwrap(),
            [1, 3],
            "the segment with no event left is deleted"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_bound_counts_the_held_line_and_entry() {
        let e = event(1);
        let (mut s, _) = Spool::open(&SpoolConfig {
            max_bytes: 1 << 20,
            dir: None,
        });
        s.push(e.clone()).unwrap();
        assert_eq!(s.bytes(), held_bytes(&e.stored()));
        assert!(s.bytes() > e.stored().len() as u64);
        // What goes out is the event that came in.
        let o = s.next_unsent().unwrap();
        assert_eq!((o.event.body(), &o.event.event_id), (e.body(), &e.event_id));
    }

    #[test]
    fn an_unusable_folder_falls_back_to_memory() {
        let (mut s, p) = Spool::open(&SpoolConfig {
            max_bytes: 1 << 20,
            dir: Some("/proc/iguard-cannot-exist".into()),
        });
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("/proc/iguard-cannot-exist"), "{p:?}");
        assert!(!s.has_disk());
        assert_eq!(s.disk_errors, 1);
        s.push(event(1)).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s.close().unwrap(), 0);
    }
}
