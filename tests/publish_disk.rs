// SPDX-License-Identifier: MIT OR Apache-2.0
//! `iguardpublish` on a full disk: the event log, the MQTT spool folder and `snapshot-dir` all on
//! a small tmpfs that fills during a live run, then gets room again. The video never stalls,
//! each output warns once per outage naming its path and the error, the counts add up, no line
//! is torn, and writing resumes by itself.
//!
//! The tmpfs is mounted in a mount namespace of its own (`unshare --user --map-root-user
//! --mount`, which needs no root): the test runs itself again inside it (this binary, `--exact`
//! the test's name, with [`INNER`] set), so the mount is gone when that process ends, whatever
//! happens. Where user namespaces are off, root mounts it directly (and unmounts it on the way
//! out, a failing test included); with neither, the test fails and says why.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gst::prelude::*;
use serde_json::Value;

use common::publish::{Run, run_pipeline_with, tmpdir, u};
use common::with_watchdog;

/// Set in the re-run inside the namespace: the folder to mount the tmpfs on.
const INNER: &str = "IGUARD_TEST_TMPFS";
/// The inner run's exit status when it could not mount (the namespace is no use).
const NO_MOUNT: i32 = 77;

/// Unmounts when dropped, a failing test included.
struct Mounted(PathBuf);

/// Removes the (empty) mount point when dropped, a failing test included.
struct MountPoint(PathBuf);

impl Drop for MountPoint {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount_tmpfs(at: &Path, size_kb: u32) -> Result<Mounted, String> {
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o"])
        .arg(format!("size={size_kb}k,mode=0700"))
        .arg("iguard-test")
        .arg(at)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if out.status.success() {
        Ok(Mounted(at.to_path_buf()))
    } else {
        Err(format!(
            "mount -t tmpfs on {}: {}",
            at.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Runs `body` with a fresh tmpfs of `size_kb` KiB mounted on a folder. `name` is the calling
/// test's name, run again inside a namespace.
fn with_tmpfs(name: &str, size_kb: u32, body: impl FnOnce(&Path)) {
    if let Ok(at) = std::env::var(INNER) {
        let at = PathBuf::from(at);
        let _mounted = match mount_tmpfs(&at, size_kb) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(NO_MOUNT);
            }
        };
        body(&at);
        return;
    }
    let point = MountPoint(tmpdir("tmpfs"));
    let at = point.0.clone();
    let namespace = run_in_namespace(name, &at);
    match namespace {
        Ok(()) => {}
        Err(why) if is_root() => {
            // No user namespaces here: root can mount in place.
            let mounted = mount_tmpfs(&at, size_kb).unwrap_or_else(|e| {
                panic!("cannot mount a tmpfs: in a namespace: {why}; as root: {e}")
            });
            body(&at);
            drop(mounted);
        }
        Err(why) => panic!(
            "cannot mount a tmpfs for the full-disk test: {why}; and not root, so no plain \
             mount either (allow unprivileged user namespaces, or run as root)"
        ),
    }
}

/// Runs this binary's test `name` again under `unshare`, with [`INNER`] = `at`. `Err` when no
/// namespace could be had (the caller may mount otherwise); a failure of the test itself
/// panics here with its output.
fn run_in_namespace(name: &str, at: &Path) -> Result<(), String> {
    let exe = std::env::current_exe().unwrap();
    let mut child = match Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "--"])
        .arg(&exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(INNER, at)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return Err(format!("cannot run unshare: {e}")),
    };
    let mut readers = Vec::new();
    for mut pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        readers.push(std::thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        }));
    }
    // The inner test has watchdogs of its own; this one catches a hang outside them.
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let texts: Vec<String> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    let (stdout, stderr) = (&texts[0], &texts[1]);
    print!("{stdout}");
    let _ = std::io::stdout().flush();
    let Some(status) = status else {
        panic!("watchdog: the test inside the namespace did not end within 300 s\n{stderr}");
    };
    if status.code() == Some(NO_MOUNT) {
        return Err(format!(
            "mount inside the namespace failed: {}",
            stderr.trim()
        ));
    }
    if status.code() == Some(1) && stderr.contains("unshare") {
        return Err(stderr.trim().to_string());
    }
    assert!(
        status.success(),
        "the test inside the namespace failed ({status}):\n{stderr}"
    );
    // It ran (a filter that matched nothing would pass too).
    assert!(
        stdout.contains("1 passed"),
        "the test did not run inside the namespace:\n{stdout}\n{stderr}"
    );
    Ok(())
}

/// Fills the file system of `dir` with `path` until `leave` bytes or less are free.
fn fill(path: &Path, leave: u64) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0xa5u8; 4096];
    let mut n = 0u64;
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(k) => n += k as u64,
            Err(e) => {
                assert_eq!(
                    e.raw_os_error(),
                    Some(28),
                    "filling {}: {e}",
                    path.display()
                );
                break;
            }
        }
    }
    let keep = n.saturating_sub(leave);
    f.set_len(keep).unwrap();
    keep
}

/// The states of `sink` in order, as (state, reason).
fn states_of<'a>(run: &'a Run, sink: &str) -> Vec<(&'a str, &'a str)> {
    run.states
        .iter()
        .filter(|(s, ..)| s == sink)
        .map(|(_, st, r)| (st.as_str(), r.as_str()))
        .collect()
}

/// One warning per outage: a failure state (`bad`) is never followed by another before an
/// `up`, each names `path` and the full disk, and the last state is `up` (it works again).
/// Returns the number of outages.
fn check_outages(run: &Run, sink: &str, bad: &str, path: &Path) -> usize {
    let states = states_of(run, sink);
    let path = path.display().to_string();
    let mut outages = 0;
    let mut down = false;
    for (st, reason) in &states {
        if *st == bad {
            assert!(!down, "{sink}: a second warning in one outage: {states:?}");
            assert!(
                reason.contains(&path) && reason.contains("No space left on device"),
                "{sink}: {reason}"
            );
            outages += 1;
            down = true;
        } else if *st == "up" {
            assert!(down, "{sink}: up without an outage: {states:?}");
            down = false;
        }
    }
    assert!(outages >= 1, "{sink}: no outage reported: {states:?}");
    assert_eq!(
        states.last().map(|s| s.0),
        Some("up"),
        "{sink}: never worked again: {states:?}"
    );
    // The same warnings on the bus, one per outage.
    let warned = run
        .warnings
        .iter()
        .filter(|w| w.contains(&path) && w.contains("No space left on device"))
        .count();
    assert_eq!(warned, outages, "{sink}: {:?}", run.warnings);
    outages
}

/// Figures read from the publisher when the filler was deleted.
#[derive(Debug, Default, Clone, Copy)]
struct AtFree {
    file_written: u64,
    snapshots_written: u64,
    received: u64,
}

#[test]
fn a_full_disk_warns_once_per_output_loses_no_line_and_writing_resumes() {
    const NAME: &str = "a_full_disk_warns_once_per_output_loses_no_line_and_writing_resumes";
    with_tmpfs(NAME, 1024, |disk| {
        let work = tmpdir("full-disk");
        let (log, spool, shots, filler) = (
            disk.join("events.jsonl"),
            disk.join("spool"),
            disk.join("snapshots"),
            disk.join("filler"),
        );
        // About 40 KiB free: a snapshot takes a 4 KiB page, an event about 1 KiB in the log
        // and as much in the spool, so the disk is full after a handful of verdicts.
        let filled = fill(&filler, 40 * 1024);
        assert!(filled > 512 * 1024, "the tmpfs is {filled} bytes");
        // Nobody listens there: every event stays in the spool (and its folder).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let props = format!(
            "file-path={} spool-dir={} snapshot-dir={} mqtt-url=mqtt://127.0.0.1:{port} \
             flush-timeout=300 reconnect-delay=50 reconnect-max-delay=200",
            log.display(),
            spool.display(),
            shots.display()
        );
        let (run, at_free) = with_watchdog(Duration::from_secs(120), {
            let (work, filler) = (work.clone(), filler.clone());
            move || {
                let mut at_free: Option<AtFree> = None;
                // 10 s of live video, a clip every 4 frames: about 75 verdicts.
                let run =
                    run_pipeline_with(&work, 300, true, 5, "snapshot=true", &props, |t, p| {
                        let s = p.property::<gst::Structure>("stats");
                        // Room again once every output has failed a few times.
                        if at_free.is_none()
                            && u(&s, "file-failed") >= 3
                            && u(&s, "snapshots-failed") >= 3
                            && u(&s, "spool-disk-errors") >= 3
                        {
                            std::fs::remove_file(&filler).unwrap();
                            at_free = Some(AtFree {
                                file_written: u(&s, "file-written"),
                                snapshots_written: u(&s, "snapshots-written"),
                                received: u(&s, "received"),
                            });
                        }
                        at_free.is_none() && t < Duration::from_secs(60)
                    });
                (run, at_free)
            }
        });
        let at_free = at_free.expect("every output failed on the full disk");
        let p = &run.publisher;
        let n = run.verdicts.len() as u64;
        println!(
            "full disk: {n} verdicts; at the free: {at_free:?}; stats {p}; max gap {:?}",
            run.max_gap
        );
        assert!(
            at_free.received + 10 < n,
            "the run ended too soon after the free: {at_free:?}, {n} verdicts"
        );
        // Nothing blocked: buffers kept flowing, far below any stall.
        assert!(
            run.max_gap < Duration::from_secs(3),
            "video stalled for {:?}",
            run.max_gap
        );
        assert_eq!(u(p, "received"), n, "{p}");
        assert_eq!(u(p, "queue-dropped"), 0, "{p}");

        // The log: each event written or counted failed; every line whole; writing resumed,
        // up to the last verdict.
        let written = u(p, "file-written");
        assert_eq!(written + u(p, "file-failed"), n, "{p}");
        assert!(written > at_free.file_written, "{p}");
        let text = std::fs::read_to_string(&log).unwrap();
        let events: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a torn line: {e}: {l:?}")))
            .collect();
        assert!(text.ends_with('\n'));
        assert_eq!(events.len() as u64, written);
        let logged: Vec<u64> = events
            .iter()
            .map(|e| e["request_id"].as_u64().unwrap())
            .collect();
        assert_eq!(
            logged.iter().collect::<HashSet<_>>().len(),
            logged.len(),
            "a line twice"
        );
        assert!(logged.iter().all(|id| run.verdicts.contains(id)));
        let last = run.verdicts.iter().max().unwrap();
        assert!(
            logged.contains(last),
            "the last verdict, {last}, is not logged"
        );

        // snapshot-dir: each verdict's snapshot written or counted failed; a file for each
        // written one, no temporary left behind; those the log names are there.
        let encoded = u(&run.verifier, "snapshots-encoded");
        assert_eq!(encoded, n, "{}", run.verifier);
        let shots_written = u(p, "snapshots-written");
        assert_eq!(shots_written + u(p, "snapshots-failed"), encoded, "{p}");
        assert!(shots_written > at_free.snapshots_written, "{p}");
        let mut names: Vec<String> = std::fs::read_dir(&shots)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert!(
            names
                .iter()
                .all(|f| f.ends_with(".jpg") && !f.starts_with('.')),
            "{names:?}"
        );
        assert_eq!(names.len() as u64, shots_written);
        for e in &events {
            if let Some(f) = e["snapshot"]["file"].as_str() {
                assert!(names.iter().any(|n| n == f), "{f} is missing");
            }
        }

        // The spool: the broker never answered, so every event is still spooled (none
        // dropped); those the full disk kept out of the folder were held in memory, and the
        // stop wrote them all to one segment for the next start.
        assert_eq!(u(p, "spool-events"), n, "{p}");
        assert_eq!(u(p, "spool-dropped"), 0, "{p}");
        assert!(u(p, "spool-disk-errors") >= 3, "{p}");
        // (`spool-disk` reads false after the stop closed the folder; the `up` state below
        // says the spool went back to it.)
        let segments: Vec<PathBuf> = std::fs::read_dir(&spool)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(segments.len(), 1, "{segments:?}");
        let saved: Vec<u64> = std::fs::read_to_string(&segments[0])
            .unwrap()
            .lines()
            .map(|l| {
                let e: Value = serde_json::from_str(l).unwrap();
                e["request_id"].as_u64().unwrap()
            })
            .collect();
        let mut want = run.verdicts.clone();
        want.sort_unstable();
        let mut got = saved.clone();
        got.sort_unstable();
        assert_eq!(got, want, "the saved spool");

        // One warning per output per outage, naming its path and the error; up again after.
        let outages = [
            check_outages(&run, "file", "down", &log),
            check_outages(&run, "snapshot-dir", "down", &shots),
            check_outages(&run, "spool", "degraded", &spool),
        ];
        println!("outages (file, snapshot-dir, spool): {outages:?}");
        // No error, no other warning than these and the unreachable broker.
        for w in &run.warnings {
            assert!(
                w.contains("No space left on device") || w.contains("mqtt"),
                "unexpected warning: {w}"
            );
        }
        std::fs::remove_dir_all(work).unwrap();
    });
}
