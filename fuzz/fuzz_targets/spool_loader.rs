// SPDX-License-Identifier: MIT OR Apache-2.0
//! Fuzzes what `iguardpublish` reads back from its spool folder after a crash or a power cut:
//! segments of any bytes (torn lines, garbage, half-written UTF-8).
//!
//! The input is split at each `0x00` byte into up to four segments, written to a fresh folder
//! (under /dev/shm when it exists), and the folder is opened as a spool. Beyond "never panics":
//! the folder stays in use, the spool holds exactly the events [`read_segment`] finds and
//! counts the other lines as skipped, every event it holds renders as JSON and reads back as
//! the same event, and after a clean close the next start finds the same events, in the same
//! order (gap reports aside: a clean close keeps only verdicts), with nothing skipped.

#![no_main]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use gstiguard::publish::schema::Event;
use gstiguard::publish::spool::{Spool, SpoolConfig, read_segment};
use libfuzzer_sys::fuzz_target;

static RUN: AtomicU64 = AtomicU64::new(0);

fn folder() -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!(
        "iguard-fuzz-spool-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Every event the spool holds (none sent): event id, and whether it is a gap report.
fn held(s: &mut Spool) -> Vec<(String, bool)> {
    let mut ids = Vec::new();
    while let Some(o) = s.next_unsent() {
        // What is sent is JSON that reads back as the same event.
        let text = o.event.render(o.replay, 0);
        let again = Event::from_json(&text)
            .unwrap_or_else(|e| panic!("a held event does not read back ({e}): {text}"));
        assert_eq!(again.event_id, o.event.event_id);
        assert_eq!(again.gap, o.event.gap);
        ids.push((o.event.event_id, o.event.gap));
    }
    s.rewind();
    ids
}

fuzz_target!(|data: &[u8]| {
    let segments: Vec<&[u8]> = data.split(|b| *b == 0).take(4).collect();
    let dir = folder();
    std::fs::create_dir_all(&dir).unwrap();
    let (mut want_events, mut want_skipped) = (Vec::new(), 0);
    for (i, bytes) in segments.iter().enumerate() {
        std::fs::write(dir.join(format!("seg-{:010}.jsonl", i + 1)), bytes).unwrap();
        let (events, bad) = read_segment(bytes);
        want_events.extend(events.into_iter().map(|(_, e)| (e.event_id, e.gap)));
        want_skipped += bad;
    }
    let config = SpoolConfig {
        // Large enough to hold any input: the bound is not what is tested here.
        max_bytes: 1 << 40,
        dir: Some(dir.clone()),
    };
    let (mut s, problems) = Spool::open(&config);
    assert!(s.has_disk(), "the folder was given up: {problems:?}");
    assert_eq!(s.skipped, want_skipped);
    assert_eq!(problems.len(), usize::from(want_skipped > 0), "{problems:?}");
    let ids = held(&mut s);
    assert_eq!(ids, want_events);
    s.close().unwrap();
    let (mut s, problems) = Spool::open(&config);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(s.skipped, 0);
    // Gap reports are about this run's drops: a clean close keeps only verdicts.
    let verdicts: Vec<_> = ids.into_iter().filter(|(_, gap)| !gap).collect();
    assert_eq!(held(&mut s), verdicts);
    s.close().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
});
