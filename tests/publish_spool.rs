// SPDX-License-Identifier: MIT OR Apache-2.0
//! The spool of `iguardpublish`'s network outputs, as a crash leaves it and as memory sees it:
//! a writer killed with SIGKILL in the middle of its appends, then a restart that replays every
//! event it never saw acknowledged; and the spool's bound against the bytes it really holds
//! (a counting allocator, per thread, so other tests running alongside do not count).
//!
//! The writer is this test binary run again (`--ignored --exact spool_writer`, with [`WRITER`]
//! set to the folder), so it is a real process that the kernel kills at a random point.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gstiguard::publish::schema::{Event, Origin};
use gstiguard::publish::spool::{Spool, SpoolConfig};
use serde_json::{Map, Value, json};

/// Counts the bytes each thread has allocated and not freed.
struct Counting;

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

fn count(delta: i64) {
    let _ = LIVE.try_with(|l| l.set(l.get() + delta));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as i64);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as i64));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as i64);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as i64 - layout.size() as i64);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> i64 {
    LIVE.with(Cell::get)
}

/// Set in the writer's process: the spool folder.
const WRITER: &str = "IGUARD_TEST_SPOOL_WRITER";
/// Set in the writer's process: the first request id it writes.
const FIRST_ID: &str = "IGUARD_TEST_SPOOL_FIRST_ID";

/// A verdict event like those the element publishes; `note` makes it as large as wanted.
fn event(id: u64, note: &str) -> Event {
    let v = json!({
        "request_id": id, "source_id": 2, "source_name": "caméra-entrée", "pad_index": 0,
        "status": if id.is_multiple_of(2) { "verified" } else { "rejected" },
        "score": 0.91, "threshold": 0.7, "positive": id.is_multiple_of(2), "label": "weapon",
        "trigger_label": "person",
        "trigger_confidence": 0.8, "clip_start_pts": 1_000_000_000u64, "clip_end_pts": null,
        "frames": 16, "queue_ms": 1.5, "processing_ms": 12.25, "scorer": "onnx", "reason": "",
        "object_id": 7, "box_x": 0.1, "box_y": 0.2, "box_width": 0.3, "box_height": 0.4,
        "note": note,
    });
    let fields: Map<String, Value> = v.as_object().unwrap().clone();
    let origin = Origin {
        run_id: "0badc0de".into(),
        element: "verify0".into(),
        publisher: "publish0".into(),
        unix_us: 1_764_581_400_000_000 + id as i64,
    };
    Event::from_fields(fields, &origin).unwrap()
}

fn request_id(e: &Event) -> u64 {
    e.body()["request_id"].as_u64().unwrap()
}

/// Every event a spool holds, by request id (sending none of them).
fn held(s: &mut Spool) -> Vec<u64> {
    let mut ids = Vec::new();
    while let Some(o) = s.next_unsent() {
        ids.push(request_id(&o.event));
    }
    s.rewind();
    ids
}

/// The writer: appends large events whose text is mostly two-byte characters (so a write
/// cut short very likely ends mid-character), acknowledges every third, ends a batch every
/// 8 events, and prints `<id> <acked>` once each is done, until it is killed.
#[test]
#[ignore = "the writer of a_writer_killed_mid_append_loses_no_unacknowledged_event, run in \
            a child process"]
fn spool_writer() {
    let dir = PathBuf::from(std::env::var(WRITER).expect("run by the SIGKILL test"));
    let first: u64 = std::env::var(FIRST_ID).unwrap().parse().unwrap();
    let (mut s, problems) = Spool::open(&SpoolConfig {
        max_bytes: 1 << 40,
        dir: Some(dir),
    });
    assert!(s.has_disk(), "{problems:?}");
    // What a previous writer left stays unacknowledged: take it out of the way.
    while s.next_unsent().is_some() {}
    let note = "é".repeat(96 * 1024);
    let mut out = std::io::stdout().lock();
    for id in first.. {
        s.push(event(id, &note)).unwrap();
        let o = s.next_unsent().unwrap();
        assert_eq!(request_id(&o.event), id);
        let acked = id.is_multiple_of(3);
        if acked {
            assert!(s.ack(o.seq));
        }
        if id.is_multiple_of(8) {
            s.sync().unwrap();
        }
        writeln!(out, "{id} {acked}").unwrap();
        out.flush().unwrap();
    }
}

/// Runs the writer until it reported `n` events, then kills it with SIGKILL. Returns what it
/// reported: id → acknowledged.
fn write_then_kill(dir: &Path, first: u64, n: usize) -> BTreeMap<u64, bool> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "spool_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WRITER, dir)
        .env(FIRST_ID, first.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the test binary runs again");
    let mut reported = BTreeMap::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // libtest's own lines ("running 1 test") are not reports; its "test spool_writer ... "
    // starts the first one.
    let report = |line: &str| {
        let mut parts = line.rsplit(' ');
        match (
            parts.next().map(str::parse::<bool>),
            parts.next().map(str::parse::<u64>),
        ) {
            (Some(Ok(acked)), Some(Ok(id))) => Some((id, acked)),
            _ => None,
        }
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while reported.len() < n {
        assert!(Instant::now() < deadline, "the writer is too slow");
        let Some(Ok(line)) = lines.next() else {
            let status = child.wait().unwrap();
            panic!("the writer ended by itself ({status}) after {reported:?}");
        };
        reported.extend(report(&line));
    }
    // SIGKILL, while it is busy with the next events: after a random part of the time a few
    // take, so the kill lands anywhere in them (in the write itself only now and then: a
    // torn line is what the unit tests of the spool make on purpose).
    let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let nanos = clock.unwrap().subsec_nanos() as u64;
    std::thread::sleep(Duration::from_micros(nanos % 3000));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "{status}");
    // What it reported before it died, still in the pipe.
    for line in lines.map_while(Result::ok) {
        reported.extend(report(&line));
    }
    reported
}

#[test]
fn a_writer_killed_mid_append_loses_no_unacknowledged_event() {
    let dir = std::env::temp_dir().join(format!("iguard-spool-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut reported = BTreeMap::new();
    let mut skipped = Vec::new();
    // Five writers one after the other on the same folder: each starts from what the last
    // one's crash left (a torn line included), then is killed in turn.
    for (round, n) in [(1u64, 41usize), (2, 29), (3, 35), (4, 23), (5, 31)] {
        let got = write_then_kill(&dir, round * 100_000, n);
        reported.extend(got);
        let (mut s, problems) = Spool::open(&SpoolConfig {
            max_bytes: 1 << 40,
            dir: Some(dir.clone()),
        });
        assert!(s.has_disk(), "{problems:?}");
        let ids = held(&mut s);
        // Every event the writers reported and did not see acknowledged is there, once.
        let set: HashSet<u64> = ids.iter().copied().collect();
        assert_eq!(set.len(), ids.len(), "an event twice: {ids:?}");
        let missing: Vec<u64> = reported
            .iter()
            .filter(|(id, acked)| !**acked && !set.contains(id))
            .map(|(id, _)| *id)
            .collect();
        assert!(missing.is_empty(), "round {round}: lost {missing:?}");
        // Nothing that was never written: at most the one each writer was busy with.
        let unknown: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| !reported.contains_key(id))
            .collect();
        assert!(unknown.len() <= round as usize, "{unknown:?}");
        // A torn line is skipped (at most one per killed writer), and said once.
        assert!(s.skipped <= round, "{} skipped", s.skipped);
        assert!(problems.len() <= 1, "{problems:?}");
        skipped.push(s.skipped);
        // This restart replays them, marked so.
        let o = s.next_unsent().unwrap();
        assert!(o.replay);
        // Closing (not killing) this reader must not change what the next writer finds:
        // it is dropped here without close(), as a crash would.
    }
    println!("torn lines skipped at each restart: {skipped:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_spool_bound_holds_what_it_says_in_memory() {
    let max_bytes: u64 = 2 << 20;
    // Warm what is allocated once per thread or process (formatting, the clock).
    drop(event(1, "").stored());
    let before = live();
    let (mut s, _) = Spool::open(&SpoolConfig {
        max_bytes,
        dir: None,
    });
    for id in 1..=20_000 {
        s.push(event(id, "")).unwrap();
    }
    let held = live() - before;
    assert!(s.dropped > 0, "the bound was reached");
    assert!(s.bytes() <= max_bytes);
    println!(
        "{} events held, counted {} bytes, allocated {held} bytes",
        s.len(),
        s.bytes()
    );
    // The bound counts what is held: the allocations may exceed it only by the queue's
    // spare capacity (a fraction), not by the parsed events' size (several times it).
    assert!(
        held as u64 <= max_bytes + max_bytes / 4,
        "the spool holds {held} bytes under a bound of {max_bytes}"
    );
    drop(s);
}
