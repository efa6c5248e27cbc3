// SPDX-License-Identifier: MIT OR Apache-2.0
//! The spool of a network output: every event waits here until the receiver acknowledged it
//! (an MQTT PUBACK), oldest first.
//!
//! Memory always; with a folder, every event is also appended to the current segment
//! (`seg-<n>.jsonl`, append-only JSON Lines). A segment is deleted once all its events are
//! acknowledged or dropped; on a clean close what is left is written to one fresh segment and
//! the older ones are deleted, so the next start replays exactly the unacknowledged events
//! (after a crash, a partly acknowledged segment is replayed whole: consumers drop duplicates
//! by `event_id`). The bound (`max_bytes`, the stored lines' size) drops the oldest events not
//! in flight, counts them, and remembers a gap to report.
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

#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// Bound on the stored events' size (memory, and the folder).
    pub max_bytes: u64,
    pub dir: Option<PathBuf>,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    event: Event,
    replay: bool,
    sent: bool,
    bytes: u64,
    segment: Option<u64>,
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
        Ok(*id)
    }

    /// Stops appending to the current segment; deletes it if nothing in it is pending.
    fn finish_current(&mut self) {
        if let Some((id, _, _)) = self.current.take()
            && self.pending.get(&id).copied().unwrap_or(0) == 0
        {
            self.pending.remove(&id);
            let _ = std::fs::remove_file(segment_path(&self.dir, id));
        }
    }

    fn release(&mut self, id: u64) {
        let Some(n) = self.pending.get_mut(&id) else {
            return;
        };
        *n = n.saturating_sub(1);
        if *n == 0 && self.current.as_ref().map(|c| c.0) != Some(id) {
            self.pending.remove(&id);
            let _ = std::fs::remove_file(segment_path(&self.dir, id));
        }
    }
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
    /// Failed writes to the folder (those events are kept in memory only).
    pub disk_errors: u64,
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
            disk_failing: false,
            down: false,
            disk: None,
        };
        let mut problems = Vec::new();
        let Some(dir) = &config.dir else {
            return (spool, problems);
        };
        let loaded = (|| -> std::io::Result<Disk> {
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
            };
            for id in ids {
                let text = std::fs::read_to_string(segment_path(dir, id))?;
                let mut bad = 0;
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    match Event::from_json(line) {
                        Ok(event) => {
                            *disk.pending.entry(id).or_default() += 1;
                            spool.insert(event, true, Some(id), line.len() as u64 + 1);
                        }
                        Err(_) => bad += 1,
                    }
                }
                if bad > 0 {
                    problems.push(format!(
                        "{}: {bad} unreadable lines skipped",
                        segment_path(dir, id).display()
                    ));
                }
                if disk.pending.get(&id).copied().unwrap_or(0) == 0 {
                    disk.pending.remove(&id);
                    let _ = std::fs::remove_file(segment_path(dir, id));
                }
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

    fn insert(&mut self, event: Event, replay: bool, segment: Option<u64>, bytes: u64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += bytes;
        self.entries.push_back(Entry {
            seq,
            event,
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
        let bytes = line.len() as u64 + 1;
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
        let replay = self.down;
        self.insert(event, replay, segment, bytes);
        self.enforce_bound();
        result
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
            let Some(i) = self.entries.iter().position(|e| !e.sent && !e.event.gap) else {
                break;
            };
            let e = self.remove_at(i);
            self.dropped += 1;
            let t = e.event.unix_us;
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
        let bytes = event.stored().len() as u64 + 1;
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
            event,
            replay: false,
            sent: false,
            bytes,
            segment: None,
        });
    }

    /// The oldest event not yet sent, now marked in flight.
    pub fn next_unsent(&mut self) -> Option<Outgoing> {
        let e = self.entries.iter_mut().find(|e| !e.sent)?;
        e.sent = true;
        Some(Outgoing {
            seq: e.seq,
            event: e.event.clone(),
            replay: e.replay,
        })
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
            let old = Disk::segments(&dir)?;
            let id = old
                .last()
                .map_or(disk.next_id, |l| (l + 1).max(disk.next_id));
            let kept = self.entries.iter().filter(|e| !e.event.gap).count();
            if kept > 0 {
                let path = tmp.insert(dir.join(format!(".seg-{id:010}.tmp")));
                let mut f = File::create(&*path)?;
                let mut text = String::new();
                for e in self.entries.iter().filter(|e| !e.event.gap) {
                    text.push_str(&e.event.stored());
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
                .filter(|e| !e.event.gap && e.segment.is_none())
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
        let one = event(1).stored().len() as u64 + 1;
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
