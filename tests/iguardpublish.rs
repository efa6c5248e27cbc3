// SPDX-License-Identifier: MIT OR Apache-2.0
//! `iguardpublish` in real pipelines: the JSON Lines log, and MQTT through a real broker
//! (Debian's mosquitto, started by the tests on a loopback port): every verdict once, topics,
//! retain flags, the will, a broker outage, the spool bound, bad outputs.

mod broker;
mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gst::prelude::*;
use serde_json::Value;

use broker::hook::Hook;
use broker::{Broker, Received, Subscriber};
use common::publish::{
    Run, Slow, assert_once, detections, lines, now_ms, parse_openmetrics, publisher, request_ids,
    run_pipeline, run_watched, tmpdir, u,
};
use common::{StopOnDrop, error_text, expect_eos, init, with_watchdog};

#[test]
fn the_event_log_has_every_verdict_once_including_those_finished_at_eos() {
    let dir = tmpdir("file");
    let log = dir.join("events.jsonl");
    let run = run_watched(
        &dir,
        Duration::from_secs(120),
        120,
        false,
        15,
        &format!("file-path={}", log.display()),
    );
    let events = lines(&log);
    assert!(run.verdicts.len() >= 25, "{} verdicts", run.verdicts.len());
    assert_once("log", &request_ids(&events), &run.verdicts);
    // Most verdicts found no buffer to ride on (result-queue-size=1), and some were finished
    // after the last buffer, by the EOS drain: both reached the log.
    assert!(
        u(&run.verifier, "results-overflowed") > 0,
        "{}",
        run.verifier
    );
    let after_last = events
        .iter()
        .filter(|e| e["unix_ms"].as_i64().unwrap() > run.last_buffer_ms)
        .count();
    assert!(
        after_last > 0,
        "no verdict was finished after the last buffer"
    );
    for e in &events {
        assert_eq!(e["schema"], "iguard.verdict/1");
        assert_eq!(e["element"], "v");
        assert_eq!(e["publisher"], "p");
        assert_eq!(e["replayed"], false);
        assert!(
            e["event_id"]
                .as_str()
                .unwrap()
                .ends_with(&format!("-{}", e["request_id"]))
        );
    }
    assert_eq!(u(&run.publisher, "received"), run.verdicts.len() as u64);
    assert_eq!(u(&run.publisher, "file-written"), run.verdicts.len() as u64);
    assert!(run.warnings.is_empty(), "{:?}", run.warnings);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_event_log_rotates_by_size() {
    let dir = tmpdir("rotate");
    let log = dir.join("events.jsonl");
    let run = run_watched(
        &dir,
        Duration::from_secs(120),
        120,
        false,
        1,
        &format!("file-path={} max-bytes=4000 max-files=100", log.display()),
    );
    let mut all = Vec::new();
    let mut files = 0;
    for n in (1..=100).rev() {
        let p = PathBuf::from(format!("{}.{n}", log.display()));
        if p.exists() {
            files += 1;
            assert!(std::fs::metadata(&p).unwrap().len() <= 4000);
            all.extend(lines(&p));
        }
    }
    all.extend(lines(&log));
    assert!(files >= 2, "{files} rotated files");
    let ids = request_ids(&all);
    assert_once("rotated logs", &ids, &run.verdicts);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "oldest file first");
    std::fs::remove_dir_all(dir).unwrap();
}

/// The messages on `topic`.
fn on<'a>(msgs: &'a [Received], topic: &str) -> Vec<&'a Received> {
    msgs.iter().filter(|m| m.topic == topic).collect()
}

fn ids_on(msgs: &[Received], topic: &str) -> Vec<u64> {
    on(msgs, topic)
        .iter()
        .filter_map(|m| m.json()["request_id"].as_u64())
        .collect()
}

#[test]
fn mqtt_gets_every_verdict_once_on_the_right_topics() {
    if !broker::installed() {
        panic!("mosquitto is missing: run `make mqtt-deps`");
    }
    let dir = tmpdir("mqtt");
    let broker = Broker::start("topics");
    let sub = Subscriber::start(broker.port, "sub-topics", "t/#", false);
    let url = broker.url();
    let run = run_watched(
        &dir,
        Duration::from_secs(120),
        120,
        false,
        15,
        &format!("mqtt-url={url} topic-prefix=t stats-interval=100"),
    );
    let n = run.verdicts.len();
    assert!(n >= 25);
    // EOS waited for every PUBACK, so all are at the broker.
    assert_eq!(
        u(&run.publisher, "mqtt-delivered"),
        n as u64,
        "{}",
        run.publisher
    );
    assert_eq!(u(&run.publisher, "spool-events"), 0);
    sub.wait("every verdict", Duration::from_secs(30), |m| {
        ids_on(m, "t/verdicts").len() >= n
    });
    std::thread::sleep(Duration::from_millis(300));
    let msgs = sub.messages();
    assert_once("t/verdicts", &ids_on(&msgs, "t/verdicts"), &run.verdicts);
    // Verified ones, and only those, on the alert topic.
    let verified: Vec<u64> = on(&msgs, "t/verdicts")
        .iter()
        .map(|m| m.json())
        .filter(|e| e["status"] == "verified")
        .map(|e| e["request_id"].as_u64().unwrap())
        .collect();
    assert!(!verified.is_empty() && verified.len() < n);
    assert_once("t/0/verified", &ids_on(&msgs, "t/0/verified"), &verified);
    assert_once("t/0/last", &ids_on(&msgs, "t/0/last"), &run.verdicts);
    // In order: one source, one connection.
    let order = ids_on(&msgs, "t/verdicts");
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    assert!(
        on(&msgs, "t/available")
            .iter()
            .any(|m| m.text() == "online")
    );
    assert!(!on(&msgs, "t/stats").is_empty(), "no stats published");
    assert!(
        on(&msgs, "t/stats")[0].json()["received"].is_u64(),
        "{}",
        on(&msgs, "t/stats")[0].text()
    );
    for m in on(&msgs, "t/verdicts") {
        assert_eq!(m.json()["replayed"], false);
    }

    // A newcomer gets the retained ones: the last verdict, and that the publisher left.
    let late = Subscriber::start(broker.port, "sub-late", "t/#", false);
    late.wait("retained messages", Duration::from_secs(10), |m| {
        !on(m, "t/0/last").is_empty() && !on(m, "t/available").is_empty()
    });
    std::thread::sleep(Duration::from_millis(200));
    let m = late.messages();
    let last = on(&m, "t/0/last");
    assert_eq!(last.len(), 1);
    assert!(last[0].retain);
    assert_eq!(
        last[0].json()["request_id"].as_u64(),
        run.verdicts.iter().max().copied()
    );
    let avail = on(&m, "t/available");
    assert!(avail[0].retain);
    assert_eq!(avail[0].text(), "offline", "a stopped publisher says so");
    assert!(on(&m, "t/verdicts").is_empty(), "verdicts are not retained");
    assert!(run.warnings.is_empty(), "{:?}", run.warnings);
    std::fs::remove_dir_all(dir).unwrap();
}

fn plugin_dir() -> PathBuf {
    // The cdylib cargo builds beside the test binary's deps folder.
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

#[test]
fn the_will_says_offline_when_the_publisher_dies() {
    let broker = Broker::start("will");
    let sub = Subscriber::start(broker.port, "sub-will", "w/available", false);
    let registry = std::env::temp_dir().join(format!("iguard-will-{}.bin", broker.port));
    let launch_log = broker.dir.join("gst-launch.log");
    let mut child = std::process::Command::new("gst-launch-1.0")
        .args([
            "-q",
            "videotestsrc",
            "is-live=true",
            "!",
            "iguardpublish",
            &format!("mqtt-url={}", broker.url()),
            "topic-prefix=w",
            "keep-alive=1",
            "!",
            "fakesink",
        ])
        .env("GST_PLUGIN_PATH", plugin_dir())
        .env("GST_REGISTRY", &registry)
        .env("GST_DEBUG", "iguardpublish:4")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&launch_log).unwrap())
        .spawn()
        .expect("gst-launch-1.0");
    let online = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        sub.wait("online", Duration::from_secs(60), |m| {
            m.iter().any(|m| m.text() == "online")
        })
    }));
    // No goodbye: the broker notices the dead connection and sends the will.
    let _ = child.kill();
    let exit = child.wait();
    if online.is_err() {
        panic!(
            "no \"online\" in 60 s; gst-launch-1.0 {exit:?}, its log:\n{}\nthe broker's log:\n{}",
            std::fs::read_to_string(&launch_log).unwrap_or_default(),
            broker.log()
        );
    }
    sub.wait("the will", Duration::from_secs(30), |m| {
        m.iter().any(|m| m.text() == "offline")
    });
    let _ = std::fs::remove_file(&registry);
    let late = Subscriber::start(broker.port, "sub-will-late", "w/available", false);
    late.wait("retained will", Duration::from_secs(10), |m| !m.is_empty());
    let m = late.messages();
    assert_eq!(m[0].text(), "offline");
    assert!(m[0].retain);
}

/// What a subscriber saw of one run with an outage, checked and summed up.
struct Outage {
    produced: usize,
    delivered: usize,
    replayed: usize,
    /// Second copies of events that were in flight when the broker went (QoS 1 is at least
    /// once both ways): sent again by the publisher, whose PUBACK never came, or delivered
    /// again by the broker (DUP) to the subscriber, whose PUBACK it never got.
    resent: usize,
    redelivered: usize,
    /// What arrived on `o/verdicts`, each event_id once (the first copy).
    events: Vec<Value>,
}

/// Verdicts on `o/verdicts` so far, each request once.
fn distinct_verdicts(m: &[Received]) -> usize {
    let events: Vec<Value> = on(m, "o/verdicts").iter().map(|m| m.json()).collect();
    request_ids(&events)
        .into_iter()
        .collect::<HashSet<_>>()
        .len()
}

/// Checks what arrived on `o/verdicts` after an outage: by event_id, every event once, except
/// that an event in flight when the broker went may arrive a second time, marked replayed
/// (consumers drop it by event_id); in order per source.
fn check_outage_run(run: &Run, msgs: &[Received], expect_gap: bool) -> Outage {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut events = Vec::new();
    let (mut resent, mut redelivered) = (0, 0);
    for m in on(msgs, "o/verdicts") {
        let e = m.json();
        let id = e["event_id"].as_str().unwrap().to_string();
        let n = seen.entry(id.clone()).or_default();
        *n += 1;
        if *n == 1 {
            events.push(e);
        } else if m.dup {
            redelivered += 1;
        } else {
            resent += 1;
            assert_eq!(e["replayed"], true, "a second copy is a replay: {e}");
        }
        assert!(*n <= 3, "{id} arrived {n} times");
    }
    assert!(
        resent + redelivered <= 2 * gstiguard::publish::mqtt::WINDOW,
        "{resent} resent, {redelivered} redelivered: more than were in flight"
    );
    // In order per source.
    let mut by_source: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for e in events.iter().filter(|e| e["schema"] == "iguard.verdict/1") {
        by_source
            .entry(e["source"].as_str().unwrap().into())
            .or_default()
            .push(e["request_id"].as_u64().unwrap());
    }
    for (s, v) in &by_source {
        assert!(
            v.windows(2).all(|w| w[0] < w[1]),
            "source {s} out of order: {v:?}"
        );
    }
    let gaps: Vec<&Value> = events
        .iter()
        .filter(|e| e["schema"] == "iguard.gap/1")
        .collect();
    if !expect_gap {
        assert!(gaps.is_empty(), "{gaps:?}");
    }
    let replayed = events
        .iter()
        .filter(|e| e["schema"] == "iguard.verdict/1" && e["replayed"] == true)
        .count();
    Outage {
        produced: run.verdicts.len(),
        delivered: request_ids(&events).len(),
        replayed,
        resent,
        redelivered,
        events,
    }
}

#[test]
fn a_broker_outage_loses_nothing_and_never_stalls_the_video() {
    let dir = tmpdir("outage");
    let mut broker = Broker::start("outage");
    let port = broker.port;
    let sub = Subscriber::start(port, "sub-outage", "o/#", true);
    let url = broker.url();
    let spool = dir.join("spool");
    // 24 s of live video; the broker is down from 4 s to 15 s (11 s).
    let (down_at, up_at) = (Duration::from_secs(4), Duration::from_secs(15));
    let mut state = 0;
    let mut outage_window: Option<(Instant, Instant)> = None;
    let mut down_since = Instant::now();
    let (mut down_ms, mut up_ms) = (0i64, 0i64);
    let run = run_pipeline(
        &dir,
        24 * 30,
        true,
        5,
        &format!(
            "mqtt-url={url} topic-prefix=o spool-dir={} reconnect-delay=200 \
             reconnect-max-delay=2000 keep-alive=2 flush-timeout=20000",
            spool.display()
        ),
        |t| {
            if state == 0 && t >= down_at {
                broker.stop();
                down_since = Instant::now();
                down_ms = now_ms();
                state = 1;
            } else if state == 1 && t >= up_at {
                broker.resume();
                outage_window = Some((down_since, Instant::now()));
                up_ms = now_ms();
                state = 2;
            }
            state < 2
        },
    );
    let (down, up) = outage_window.expect("the outage happened");
    let p = &run.publisher;
    let n = run.verdicts.len();
    sub.wait(
        "every verdict after the outage",
        Duration::from_secs(60),
        |m| distinct_verdicts(m) >= n,
    );
    std::thread::sleep(Duration::from_millis(500));
    let msgs = sub.messages();
    let o = check_outage_run(&run, &msgs, false);
    let events = &o.events;
    assert_once("after the outage", &request_ids(events), &run.verdicts);
    // Events produced while the broker was down arrived marked replayed.
    let during: Vec<&Value> = events
        .iter()
        .filter(|e| {
            let t = e["unix_ms"].as_i64().unwrap();
            t > down_ms + 500 && t < up_ms - 500
        })
        .collect();
    assert!(!during.is_empty(), "no verdict fell in the outage");
    for e in &during {
        assert_eq!(e["replayed"], true, "{e}");
    }
    assert_eq!(o.delivered, o.produced);
    assert_eq!(u(p, "spool-dropped"), 0, "{p}");
    assert_eq!(u(p, "mqtt-delivered"), n as u64, "{p}");
    assert!(u(p, "mqtt-replayed") >= during.len() as u64, "{p}");
    assert!(u(p, "mqtt-disconnects") >= 1, "{p}");
    // The outage posted a warning and state messages (down, then up), not an error.
    assert!(
        run.states
            .iter()
            .any(|(s, st, _)| s == "mqtt" && st == "down"),
        "{:?}",
        run.states
    );
    assert!(
        run.states
            .iter()
            .any(|(s, st, _)| s == "mqtt" && st == "up")
    );
    assert!(!run.warnings.is_empty());
    // Buffers kept flowing: a stall detector, with a bound far above any frame time.
    assert!(
        run.max_gap < Duration::from_secs(3),
        "video stalled for {:?}",
        run.max_gap
    );

    // Of that latency, the part before the MQTT thread sent the event (age_ms at sending):
    // iguardverify pushes verdicts with its next buffer.
    let mut ages: Vec<i64> = events
        .iter()
        .filter(|e| e["replayed"] == false)
        .filter_map(|e| e["age_ms"].as_i64())
        .collect();
    ages.sort_unstable();
    let age = |p: f64| {
        ages.get(((ages.len().max(1) - 1) as f64 * p) as usize)
            .copied()
    };
    println!(
        "outage {:.1} s: events produced {}, delivered {}, replayed {}, dropped {}; largest \
         buffer delay through iguardpublish {:.3} ms, largest gap between buffers {:.1} ms; \
         verdict→PUBACK latency (live events) p50 {:.2} ms, p99 {:.2} ms; verdict→sent p50 \
         {:?} ms, p99 {:?} ms; second copies of events in flight at the cut: {} resent by \
         iguardpublish, {} redelivered by the broker (both dropped by event_id)",
        (up - down).as_secs_f64(),
        o.produced,
        o.delivered,
        o.replayed,
        u(p, "spool-dropped"),
        run.max_delay.as_secs_f64() * 1000.0,
        run.max_gap.as_secs_f64() * 1000.0,
        p.get::<f64>("latency-p50-ms").unwrap(),
        p.get::<f64>("latency-p99-ms").unwrap(),
        age(0.5),
        age(0.99),
        o.resent,
        o.redelivered,
    );
    drop(sub);
    drop(broker);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_spool_smaller_than_the_outage_drops_exactly_what_it_counts_and_says_so() {
    let dir = tmpdir("bound");
    let mut broker = Broker::start("bound");
    let sub = Subscriber::start(broker.port, "sub-bound", "o/#", true);
    let url = broker.url();
    let mut state = 0;
    // About 4 events fit (one is ~700 bytes); the outage produces ~25.
    let run = run_pipeline(
        &dir,
        12 * 30,
        true,
        5,
        &format!(
            "mqtt-url={url} topic-prefix=o spool-max-bytes=3000 reconnect-delay=200 \
             reconnect-max-delay=1000 keep-alive=2 flush-timeout=20000"
        ),
        |t| {
            if state == 0 && t >= Duration::from_secs(3) {
                broker.stop();
                state = 1;
            } else if state == 1 && t >= Duration::from_secs(8) {
                broker.resume();
                state = 2;
            }
            state < 2
        },
    );
    let p = &run.publisher;
    let dropped = u(p, "spool-dropped");
    assert!(dropped > 0, "the bound was never hit: {p}");
    let n = run.verdicts.len() as u64;
    sub.wait("the survivors", Duration::from_secs(60), |m| {
        distinct_verdicts(m) as u64 >= n - dropped
    });
    std::thread::sleep(Duration::from_millis(500));
    let msgs = sub.messages();
    let o = check_outage_run(&run, &msgs, true);
    assert_eq!(
        o.produced as u64 - o.delivered as u64,
        dropped,
        "missing = counted"
    );
    assert_eq!(u(p, "mqtt-delivered") - u(p, "gaps"), n - dropped, "{p}");
    let gaps: Vec<&Value> = o
        .events
        .iter()
        .filter(|e| e["schema"] == "iguard.gap/1")
        .collect();
    let told: u64 = gaps.iter().map(|g| g["dropped"].as_u64().unwrap()).sum();
    assert_eq!(told, dropped, "the gap events say how many: {gaps:?}");
    for g in &gaps {
        assert!(
            g["first_dropped_time"].as_str().unwrap() <= g["last_dropped_time"].as_str().unwrap()
        );
    }
    drop(sub);
    drop(broker);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_unreachable_broker_and_a_bad_spool_folder_warn_and_never_block() {
    let dir = tmpdir("bad");
    // A folder whose parent is a file: it can never be created.
    std::fs::write(dir.join("file"), "x").unwrap();
    let spool = dir.join("file").join("spool");
    let port = broker::free_port();
    let run = run_watched(
        &dir,
        Duration::from_secs(120),
        90,
        false,
        1,
        &format!(
            "mqtt-url=mqtt://127.0.0.1:{port} spool-dir={} flush-timeout=500 \
                     reconnect-delay=50 reconnect-max-delay=200",
            spool.display()
        ),
    );
    let p = &run.publisher;
    let n = run.verdicts.len() as u64;
    assert!(n > 0);
    assert_eq!(u(p, "received"), n);
    assert_eq!(u(p, "mqtt-delivered"), 0);
    assert_eq!(u(p, "spool-events") + u(p, "spool-dropped"), n, "{p}");
    assert!(!p.get::<bool>("spool-disk").unwrap());
    assert_eq!(u(p, "spool-disk-errors"), 1);
    assert!(
        run.states
            .iter()
            .any(|(s, st, r)| s == "spool" && st == "degraded" && r.contains("file/spool")),
        "{:?}",
        run.states
    );
    assert!(
        run.states
            .iter()
            .any(|(s, st, r)| s == "mqtt" && st == "down" && r.contains(&port.to_string())),
        "{:?}",
        run.states
    );
    assert!(run.warnings.len() >= 2, "{:?}", run.warnings);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn what_the_broker_never_acknowledged_is_sent_at_the_next_start() {
    let dir = tmpdir("restart");
    let spool = dir.join("spool");
    let port = broker::free_port();
    // First run: nobody listens; the events stay in the spool folder.
    let first = run_watched(
        &dir,
        Duration::from_secs(120),
        60,
        false,
        1,
        &format!(
            "mqtt-url=mqtt://127.0.0.1:{port} topic-prefix=r spool-dir={} \
                     flush-timeout=200",
            spool.display()
        ),
    );
    let n = first.verdicts.len() as u64;
    assert!(n > 0);
    assert_eq!(u(&first.publisher, "spool-events"), n);
    // Second run: the broker is up; the first run's events arrive, replayed, before this
    // run's own. They are older than max-alert-age: nobody is woken for them.
    let mut broker = Broker::start("restart");
    broker.stop();
    broker.port = port;
    broker.resume();
    let sub = Subscriber::start(port, "sub-restart", "r/#", false);
    std::thread::sleep(Duration::from_millis(2500));
    let second = run_watched(
        &dir,
        Duration::from_secs(120),
        60,
        false,
        1,
        &format!(
            "mqtt-url=mqtt://127.0.0.1:{port} topic-prefix=r spool-dir={} \
                     flush-timeout=20000 max-alert-age=1",
            spool.display()
        ),
    );
    let m = second.verdicts.len() as u64;
    sub.wait("both runs", Duration::from_secs(30), |msgs| {
        on(msgs, "r/verdicts").len() as u64 >= n + m
    });
    std::thread::sleep(Duration::from_millis(300));
    let msgs = sub.messages();
    let events: Vec<Value> = on(&msgs, "r/verdicts").iter().map(|m| m.json()).collect();
    assert_eq!(events.len() as u64, n + m);
    let (old, new) = events.split_at(n as usize);
    assert!(old.iter().all(|e| e["replayed"] == true));
    assert_once("first run", &request_ids(old), &first.verdicts);
    assert_once("second run", &request_ids(new), &second.verdicts);
    let runs: HashSet<&str> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().split('-').next().unwrap())
        .collect();
    assert_eq!(runs.len(), 2, "each run has its own event ids");
    let verified = |evs: &[Value]| -> Vec<u64> {
        evs.iter()
            .filter(|e| e["status"] == "verified")
            .map(|e| e["request_id"].as_u64().unwrap())
            .collect()
    };
    let alerts: Vec<String> = on(&msgs, "r/0/verified")
        .iter()
        .map(|m| m.json()["event_id"].as_str().unwrap().to_string())
        .collect();
    assert!(!verified(old).is_empty());
    for e in old {
        assert!(
            !alerts.contains(&e["event_id"].as_str().unwrap().to_string()),
            "a stale replay woke somebody: {e}"
        );
    }
    assert!(!verified(new).is_empty());
    assert!(
        new.iter()
            .any(|e| alerts.contains(&e["event_id"].as_str().unwrap().to_string())),
        "fresh verified events still alert"
    );
    assert_eq!(u(&second.publisher, "spool-events"), 0);
    std::fs::remove_dir_all(dir).unwrap();
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a certificate it signs for localhost.
fn certificates(dir: &Path) {
    for ca in ["ca", "other-ca"] {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=iguard test {ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
            ],
        );
    }
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(dir.join("san.txt"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.txt",
            "-out",
            "server.pem",
        ],
    );
}

#[test]
fn mqtts_needs_the_right_ca_and_a_wrong_one_only_warns() {
    let dir = tmpdir("tls");
    certificates(&dir);
    let tls_port = broker::free_port();
    let certs = dir.clone();
    let _broker = Broker::start_with("tls", move |_| {
        format!(
            "listener {tls_port} 127.0.0.1\ncafile {0}/ca.pem\ncertfile {0}/server.pem\n\
             keyfile {0}/server.key\n",
            certs.display()
        )
    });
    let run_with = |ca: &str, flush_ms: u32| {
        let props = format!(
            "mqtt-url=mqtts://localhost:{tls_port} tls-ca-file={} \
             flush-timeout={flush_ms} reconnect-delay=50 reconnect-max-delay=200",
            dir.join(ca).display()
        );
        run_watched(&dir, Duration::from_secs(120), 60, false, 1, &props)
    };
    let good = run_with("ca.pem", 20_000);
    let n = good.verdicts.len() as u64;
    assert!(n > 0);
    assert_eq!(
        u(&good.publisher, "mqtt-delivered"),
        n,
        "{}",
        good.publisher
    );
    assert!(good.warnings.is_empty(), "{:?}", good.warnings);

    let bad = run_with("other-ca.pem", 500);
    let p = &bad.publisher;
    assert_eq!(u(p, "mqtt-delivered"), 0);
    assert_eq!(u(p, "received"), bad.verdicts.len() as u64);
    assert_eq!(
        u(p, "spool-events") + u(p, "spool-dropped"),
        bad.verdicts.len() as u64
    );
    let down: Vec<_> = bad
        .states
        .iter()
        .filter(|(s, st, _)| s == "mqtt" && st == "down")
        .collect();
    assert_eq!(down.len(), 1, "one warning per outage: {:?}", bad.states);
    println!("wrong CA: {}", down[0].2);
    assert!(
        down[0].2.to_lowercase().contains("certificate")
            || down[0].2.to_lowercase().contains("tls"),
        "{}",
        down[0].2
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn qos_0_and_2_deliver_every_verdict_too() {
    let broker = Broker::start("qos");
    for qos in [0u32, 2] {
        let dir = tmpdir(&format!("qos{qos}"));
        let sub = Subscriber::start(broker.port, &format!("sub-qos{qos}"), "q/verdicts", false);
        let url = broker.url();
        let run = run_watched(
            &dir,
            Duration::from_secs(120),
            60,
            false,
            1,
            &format!("mqtt-url={url} topic-prefix=q mqtt-qos={qos} flush-timeout=20000"),
        );
        let n = run.verdicts.len();
        assert!(n > 0);
        assert_eq!(u(&run.publisher, "mqtt-delivered"), n as u64, "qos {qos}");
        assert_eq!(u(&run.publisher, "spool-events"), 0, "qos {qos}");
        sub.wait("every verdict", Duration::from_secs(30), |m| m.len() >= n);
        std::thread::sleep(Duration::from_millis(200));
        let ids: Vec<u64> = sub
            .messages()
            .iter()
            .filter_map(|m| m.json()["request_id"].as_u64())
            .collect();
        assert_once(&format!("qos {qos}"), &ids, &run.verdicts);
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// An `iguard-verdict` event as `iguardverify` sends it downstream, with a snapshot of
/// `jpeg_bytes` bytes (none for 0).
fn verdict_event(request_id: u64, source_id: u32, jpeg_bytes: usize) -> gst::Event {
    let mut s = gst::Structure::builder("iguard-verdict")
        .field("request-id", request_id)
        .field("source-id", source_id)
        .field("status", "verified")
        .field("run-id", "5eed")
        .field("element", "v")
        .build();
    if jpeg_bytes > 0 {
        let jpeg: Vec<u8> = (0..jpeg_bytes).map(|i| (i * 7 % 251) as u8).collect();
        s.set("snapshot", gst::Buffer::from_mut_slice(jpeg));
    }
    gst::event::CustomDownstream::new(s)
}

/// Sends `events` through an `iguardpublish <props>` in a harness to EOS; returns its `stats`
/// and the warnings it posted.
fn publish_events(props: &str, events: Vec<gst::Event>) -> (gst::Structure, Vec<String>) {
    let (mut h, e, bus) = publisher(props);
    for ev in events {
        assert!(h.push_event(ev));
    }
    // EOS waits (up to flush-timeout) for the broker's acknowledgements.
    assert!(h.push_event(gst::event::Eos::new()));
    let stats = e.property::<gst::Structure>("stats");
    drop(h);
    let warnings = std::iter::from_fn(|| bus.pop())
        .filter_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some(w.error().to_string()),
            _ => None,
        })
        .collect();
    (stats, warnings)
}

#[test]
fn a_large_snapshot_keeps_the_mqtt_session_and_one_over_the_brokers_limit_is_left_off() {
    init();
    // A 1.5 MiB snapshot, under iguardverify's default snapshot-max-bytes (2 MiB): the
    // default bound makes room for it, and the session carries it.
    let big = 1_500_000;
    let broker = Broker::start("big-snapshot");
    let sub = Subscriber::start(broker.port, "sub-big", "big/#", false);
    let props = format!(
        "mqtt-url={} topic-prefix=big flush-timeout=30000",
        broker.url()
    );
    let (s, warnings) = publish_events(
        &props,
        vec![verdict_event(1, 1, big), verdict_event(2, 1, 0)],
    );
    sub.wait(
        "the snapshot and both events",
        Duration::from_secs(30),
        |m| on(m, "big/1/snapshot").len() == 1 && ids_on(m, "big/verdicts").len() == 2,
    );
    let msgs = sub.messages();
    let snap = on(&msgs, "big/1/snapshot")[0];
    assert_eq!(snap.payload.len(), big);
    assert!(
        snap.payload
            .iter()
            .enumerate()
            .all(|(i, b)| *b == (i * 7 % 251) as u8)
    );
    assert_eq!(ids_on(&msgs, "big/verdicts"), [1, 2]);
    assert_eq!(u(&s, "mqtt-delivered"), 2, "{s}");
    assert_eq!(u(&s, "mqtt-disconnects"), 0, "the session survived: {s}");
    assert_eq!(u(&s, "mqtt-connects"), 1, "{s}");
    assert_eq!(u(&s, "mqtt-snapshots-skipped"), 0, "{s}");
    assert!(warnings.is_empty(), "{warnings:?}");
    drop(sub);
    drop(broker);

    // A broker that takes at most 1 MiB (mosquitto disconnects a client that sends more),
    // and the element told so: the large snapshot is left off, its event still goes, a
    // smaller snapshot of another source goes, and the session never drops.
    let broker = Broker::start_with("small-broker", |_| "max_packet_size 1048576\n".into());
    let sub = Subscriber::start(broker.port, "sub-small", "small/#", false);
    let props = format!(
        "mqtt-url={} topic-prefix=small mqtt-max-packet-bytes=1048576 flush-timeout=30000",
        broker.url()
    );
    let (s, warnings) = publish_events(
        &props,
        vec![verdict_event(1, 1, big), verdict_event(2, 2, 4096)],
    );
    sub.wait(
        "both events and the small snapshot",
        Duration::from_secs(30),
        |m| on(m, "small/2/snapshot").len() == 1 && ids_on(m, "small/verdicts").len() == 2,
    );
    let msgs = sub.messages();
    assert!(on(&msgs, "small/1/snapshot").is_empty());
    assert_eq!(on(&msgs, "small/2/snapshot")[0].payload.len(), 4096);
    // The event still says what the snapshot was.
    let first = &on(&msgs, "small/verdicts")[0].json();
    assert_eq!(first["snapshot"]["bytes"], big as u64, "{first}");
    assert_eq!(u(&s, "mqtt-snapshots-skipped"), 1, "{s}");
    assert_eq!(u(&s, "mqtt-too-large"), 0, "{s}");
    assert_eq!(u(&s, "mqtt-disconnects"), 0, "{s}");
    assert_eq!(u(&s, "mqtt-delivered"), 2, "{s}");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("mqtt-max-packet-bytes") && warnings[0].contains("1048576"),
        "{warnings:?}"
    );
}

#[test]
fn the_webhook_gets_every_verdict_once_in_order_through_5xx_and_drops_4xx() {
    let dir = tmpdir("webhook");
    let secret = "s3cr\u{e9}t-key";
    // 500 for 2 s after the first POST, then 422 to every 5th request id, 200 to the rest.
    let hook = Hook::start(&dir, secret, 2.0, 5);
    let props = format!(
        "webhook-url=http://127.0.0.1:{}/hooks/iguard?x=1 webhook-secret=\"{secret}\" \
         reconnect-delay=50 reconnect-max-delay=300 flush-timeout=60000",
        hook.port
    );
    let run = run_watched(&dir, Duration::from_secs(180), 120, false, 15, &props);
    let answers = hook.answers();
    let problems: Vec<_> = answers.iter().filter(|a| a["problem"] != "").collect();
    assert!(problems.is_empty(), "{problems:?}");
    assert!(
        answers.iter().any(|a| a["code"] == 500),
        "never answered 500"
    );
    let verdicts = |code: i64| -> Vec<u64> {
        answers
            .iter()
            .filter(|a| a["code"] == code && a["schema"] == "iguard.verdict/1")
            .map(|a| a["request_id"].as_u64().unwrap())
            .collect()
    };
    let (ok, refused) = (verdicts(200), verdicts(422));
    assert!(run.verdicts.len() >= 25, "{} verdicts", run.verdicts.len());
    // Exactly once: accepted or refused, never both, never twice, none missing.
    let both: Vec<u64> = ok.iter().chain(&refused).copied().collect();
    assert_once("webhook", &both, &run.verdicts);
    // In order: the spool sends one at a time, oldest first.
    let want: Vec<u64> = run
        .verdicts
        .iter()
        .copied()
        .filter(|id| id % 5 != 0)
        .collect();
    assert_eq!(ok, want, "accepted out of order");
    assert!(refused.iter().all(|id| id % 5 == 0), "{refused:?}");
    // What waited out the 500s was sent late, marked so.
    let replayed = answers
        .iter()
        .filter(|a| a["code"] == 200 && a["replayed"] == true)
        .count();
    assert!(replayed > 0, "nothing marked replayed");
    let s = &run.publisher;
    assert_eq!(u(s, "webhook-delivered"), ok.len() as u64, "{s}");
    assert_eq!(u(s, "webhook-rejected"), refused.len() as u64, "{s}");
    assert_eq!(u(s, "webhook-replayed"), replayed as u64, "{s}");
    let fails = answers.iter().filter(|a| a["code"] == 500).count() as u64;
    assert_eq!(u(s, "webhook-retries"), fails, "{s}");
    assert_eq!(u(s, "webhook-spool-events"), 0, "{s}");
    assert_eq!(u(s, "webhook-spool-dropped"), 0, "{s}");
    assert!(s.get::<bool>("webhook-connected").unwrap(), "{s}");
    // One down (not one per retry), then up; the 422 is one warning, counted.
    let states: Vec<&str> = run
        .states
        .iter()
        .filter(|(sink, ..)| sink == "webhook")
        .map(|(_, st, _)| st.as_str())
        .collect();
    assert_eq!(
        states.iter().filter(|s| **s == "down").count(),
        1,
        "{states:?}"
    );
    assert!(states.contains(&"up"), "{states:?}");
    assert!(
        run.warnings.iter().any(|w| w.contains("answered 422")),
        "{:?}",
        run.warnings
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_webhook_that_says_slow_down_loses_nothing_and_waits_its_retry_after() {
    let dir = tmpdir("webhook-slow-down");
    // 429 with Retry-After in seconds, 408 with an HTTP date, then 401 and 403, then 200.
    let hook = Hook::start_scripted(&dir, "k", 0.0, 0, &[], "429/s2,408/d3,401,403");
    let props = format!(
        "webhook-url=http://127.0.0.1:{}/ webhook-secret=k reconnect-delay=20 \
         reconnect-max-delay=100 flush-timeout=60000",
        hook.port
    );
    let run = run_watched(&dir, Duration::from_secs(180), 60, false, 5, &props);
    let answers = hook.answers();
    let codes: Vec<i64> = answers
        .iter()
        .map(|a| a["code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes[..5], [429, 408, 401, 403, 200], "{codes:?}");
    // The same event, kept through all four, and sent again only after each Retry-After
    // (the back-off alone would be at most 100 ms).
    assert!(
        answers[..5]
            .iter()
            .all(|a| a["event_id"] == answers[0]["event_id"]),
        "{answers:?}"
    );
    let t = |i: usize| answers[i]["t"].as_f64().unwrap();
    assert!(
        t(1) - t(0) >= 1.9,
        "Retry-After: 2 not honoured: {}",
        t(1) - t(0)
    );
    assert!(
        t(2) - t(1) >= 1.9,
        "Retry-After: <date 3 s ahead> not honoured: {}",
        t(2) - t(1)
    );
    let ok: Vec<u64> = answers
        .iter()
        .filter(|a| a["code"] == 200 && a["schema"] == "iguard.verdict/1")
        .map(|a| a["request_id"].as_u64().unwrap())
        .collect();
    assert!(!run.verdicts.is_empty());
    assert_once("webhook after 429/408/401/403", &ok, &run.verdicts);
    let s = &run.publisher;
    assert_eq!(u(s, "webhook-rejected"), 0, "{s}");
    assert_eq!(u(s, "webhook-retries"), 4, "{s}");
    assert_eq!(u(s, "webhook-delivered"), run.verdicts.len() as u64, "{s}");
    let states: Vec<&(String, String, String)> = run
        .states
        .iter()
        .filter(|(sink, ..)| sink == "webhook")
        .collect();
    let downs: Vec<_> = states.iter().filter(|(_, st, _)| st == "down").collect();
    assert_eq!(downs.len(), 1, "one warning per outage: {states:?}");
    assert!(
        downs[0].2.contains("answered 429") && downs[0].2.contains("Retry-After 2 s"),
        "{}",
        downs[0].2
    );
    assert!(states.iter().any(|(_, st, _)| st == "up"), "{states:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_wrong_webhook_secret_keeps_every_event_until_it_is_fixed_and_an_unreachable_webhook_never_blocks()
 {
    let dir = tmpdir("webhook-bad");
    let spool = dir.join("spool");
    let hook = Hook::start(&dir, "right", 0.0, 0);
    let props = |secret: &str, log: &str, flush_ms: u32| {
        format!(
            "webhook-url=http://127.0.0.1:{}/ webhook-secret={secret} spool-dir={} \
             file-path={} reconnect-delay=20 reconnect-max-delay=100 flush-timeout={flush_ms}",
            hook.port,
            spool.display(),
            dir.join(log).display()
        )
    };
    // A secret the receiver does not take (rotated on one side only): an outage, not a
    // refusal of the events. Every one is kept, and one warning says what to check.
    let run = run_watched(
        &dir,
        Duration::from_secs(120),
        60,
        false,
        5,
        &props("wrong", "a", 500),
    );
    let answers = hook.answers();
    assert!(!answers.is_empty());
    assert!(answers.iter().all(|a| a["code"] == 401), "{answers:?}");
    let s = &run.publisher;
    assert_eq!(u(s, "webhook-rejected"), 0, "{s}");
    assert_eq!(u(s, "webhook-delivered"), 0, "{s}");
    assert_eq!(
        u(s, "webhook-spool-events"),
        run.verdicts.len() as u64,
        "{s}"
    );
    assert!(u(s, "webhook-retries") >= 1, "{s}");
    let downs: Vec<_> = run
        .states
        .iter()
        .filter(|(sink, st, _)| sink == "webhook" && st == "down")
        .collect();
    assert_eq!(downs.len(), 1, "{:?}", run.states);
    assert!(
        downs[0].2.contains("answered 401") && downs[0].2.contains("webhook-secret"),
        "{}",
        downs[0].2
    );
    // The secret is fixed: the next start sends what the first kept, then its own.
    let first: Vec<String> = lines(&dir.join("a"))
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    let before = answers.len();
    let run2 = run_watched(
        &dir,
        Duration::from_secs(120),
        60,
        false,
        5,
        &props("right", "b", 30_000),
    );
    let second: Vec<String> = lines(&dir.join("b"))
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    let ok: Vec<String> = hook.answers()[before..]
        .iter()
        .filter(|a| a["code"] == 200)
        .map(|a| a["event_id"].as_str().unwrap().to_string())
        .collect();
    let mut want: Vec<String> = first.iter().chain(&second).cloned().collect();
    want.sort();
    let mut got = ok.clone();
    got.sort();
    assert_eq!(got, want, "every event of both runs, once");
    let s = &run2.publisher;
    assert_eq!(u(s, "webhook-replayed"), first.len() as u64, "{s}");
    assert_eq!(u(s, "webhook-spool-events"), 0, "{s}");
    drop(hook);

    // Nobody listens: the video still reaches EOS (flush-timeout bounds the wait), a warning
    // and a down state say so, and every event is still in the spool.
    let port = broker::free_port();
    let props = format!("webhook-url=http://127.0.0.1:{port}/ flush-timeout=300");
    let run = run_watched(&dir, Duration::from_secs(120), 60, false, 5, &props);
    let s = &run.publisher;
    assert_eq!(u(s, "received"), run.verdicts.len() as u64, "{s}");
    assert_eq!(u(s, "webhook-delivered"), 0, "{s}");
    assert_eq!(
        u(s, "webhook-spool-events"),
        run.verdicts.len() as u64,
        "{s}"
    );
    assert!(u(s, "webhook-retries") >= 1, "{s}");
    assert!(
        run.states
            .iter()
            .any(|(sink, st, _)| sink == "webhook" && st == "down"),
        "{:?}",
        run.states
    );
    assert!(
        run.warnings.iter().any(|w| w.contains("webhook")),
        "{:?}",
        run.warnings
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_https_webhook_checks_the_certificate_and_a_wrong_ca_only_warns() {
    let dir = tmpdir("webhook-tls");
    certificates(&dir);
    let hook = Hook::start_with(
        &dir,
        "k",
        0.0,
        0,
        &[&dir.join("server.pem"), &dir.join("server.key")],
    );
    let run_with = |ca: &str, flush_ms: u32| {
        let props = format!(
            "webhook-url=https://localhost:{}/in webhook-secret=k tls-ca-file={} \
             flush-timeout={flush_ms} reconnect-delay=50 reconnect-max-delay=200",
            hook.port,
            dir.join(ca).display()
        );
        run_watched(&dir, Duration::from_secs(120), 60, false, 5, &props)
    };
    let good = run_with("ca.pem", 30_000);
    let answers = hook.answers();
    let problems: Vec<_> = answers.iter().filter(|a| a["problem"] != "").collect();
    assert!(problems.is_empty(), "{problems:?}");
    let ok: Vec<u64> = answers
        .iter()
        .filter(|a| a["code"] == 200 && a["schema"] == "iguard.verdict/1")
        .map(|a| a["request_id"].as_u64().unwrap())
        .collect();
    assert!(!good.verdicts.is_empty());
    assert_once("https webhook", &ok, &good.verdicts);
    let s = &good.publisher;
    assert_eq!(u(s, "webhook-delivered"), good.verdicts.len() as u64, "{s}");
    assert_eq!(u(s, "webhook-retries"), 0, "{s}");
    assert!(good.warnings.is_empty(), "{:?}", good.warnings);

    // A CA that did not sign the server's certificate: no event is sent, one warning names
    // the certificate problem, everything stays in the spool, and the video still ends.
    let before = answers.len();
    let bad = run_with("other-ca.pem", 500);
    assert_eq!(
        hook.answers().len(),
        before,
        "an event went to an unverified server"
    );
    let s = &bad.publisher;
    assert_eq!(u(s, "webhook-delivered"), 0, "{s}");
    assert_eq!(
        u(s, "webhook-spool-events") + u(s, "webhook-spool-dropped"),
        bad.verdicts.len() as u64,
        "{s}"
    );
    let down: Vec<_> = bad
        .states
        .iter()
        .filter(|(sink, st, _)| sink == "webhook" && st == "down")
        .collect();
    assert_eq!(down.len(), 1, "one warning per outage: {:?}", bad.states);
    println!("wrong CA: {}", down[0].2);
    assert!(
        down[0].2.contains("TLS handshake with localhost") && down[0].2.contains("certificate"),
        "{}",
        down[0].2
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn metrics_are_served_as_openmetrics_and_equal_stats() {
    init();
    let dir = tmpdir("metrics");
    let det = detections(&dir, 120);
    let port = broker::free_port();
    let hook = Hook::start(&dir, "k", 0.0, 4);
    let desc = format!(
        "videotestsrc num-buffers=120 ! video/x-raw,format=RGBA,width=320,height=240 \
         ! iguardreplay location={} \
         ! iguardverify name=mv cooldown=0 temporal-size=4 input-width=32 input-height=32 \
           max-workers=1 queue-size=1000 model-type=fallback incidents=false \
         ! iguardpublish name=mp metrics-address={port} file-path={} \
           webhook-url=http://127.0.0.1:{}/ webhook-secret=k ! fakesink",
        det.display(),
        dir.join("events.jsonl").display(),
        hook.port
    );
    let pipeline = gst::parse::launch(&desc).unwrap();
    let guard = StopOnDrop(pipeline.clone());
    let bin = pipeline.downcast_ref::<gst::Bin>().unwrap();
    let v = bin.by_name("mv").unwrap();
    common::set_scorer(&v, Slow::new(5));
    let p = bin.by_name("mp").unwrap();
    let (verifier, publisher, text) = with_watchdog(Duration::from_secs(120), {
        let pipeline = pipeline.clone();
        move || {
            pipeline.set_state(gst::State::Playing).unwrap();
            let bus = pipeline.bus().unwrap();
            expect_eos(&bus, Duration::from_secs(100));
            // After EOS (flushed): the figures hold still while we scrape.
            let out = std::process::Command::new("curl")
                .args([
                    "-sf",
                    "-D",
                    "-",
                    &format!("http://127.0.0.1:{port}/metrics"),
                ])
                .output()
                .expect("curl runs");
            assert!(out.status.success(), "curl: {out:?}");
            let text = String::from_utf8(out.stdout).unwrap();
            let (v, p) = (
                v.property::<gst::Structure>("stats"),
                p.property::<gst::Structure>("stats"),
            );
            (v, p, text)
        }
    });
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains("application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    let series = parse_openmetrics(body);
    let value = |name: &str, want: &[(&str, &str)]| -> f64 {
        series
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && l.get("publisher").map(String::as_str) == Some("mp")
                    && want
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(v))
            })
            .map(|(.., v)| v)
            .sum()
    };
    // The verifier's own counts, by status, through the verdicts the publisher saw.
    for status in ["verified", "rejected"] {
        assert_eq!(
            value(
                "iguard_verdicts_total",
                &[("element", "mv"), ("status", status)]
            ) as u64,
            u(&verifier, status),
            "{status}: {body}\n{verifier}"
        );
    }
    assert!(u(&verifier, "verified") > 0 && u(&verifier, "rejected") > 0);
    // One processing-time observation per verdict.
    let completed = u(&verifier, "verified") + u(&verifier, "rejected");
    assert_eq!(
        value("iguard_processing_seconds_count", &[("element", "mv")]) as u64,
        completed,
        "{body}"
    );
    let inf = series.iter().find(|(n, l, _)| {
        n == "iguard_processing_seconds_bucket"
            && l.get("le").map(String::as_str) == Some("+Inf")
            && l["publisher"] == "mp"
    });
    assert_eq!(inf.map(|s| s.2 as u64), Some(completed), "{body}");
    let checks = [
        ("iguard_publish_received_total", vec![], "received"),
        (
            "iguard_publish_queue_dropped_total",
            vec![],
            "queue-dropped",
        ),
        (
            "iguard_publish_results_total",
            vec![("output", "file"), ("result", "written")],
            "file-written",
        ),
        (
            "iguard_publish_results_total",
            vec![("output", "webhook"), ("result", "delivered")],
            "webhook-delivered",
        ),
        (
            "iguard_publish_results_total",
            vec![("output", "webhook"), ("result", "rejected")],
            "webhook-rejected",
        ),
        (
            "iguard_spool_events",
            vec![("output", "webhook")],
            "webhook-spool-events",
        ),
    ];
    for (name, labels, field) in checks {
        assert_eq!(
            value(name, &labels) as u64,
            u(&publisher, field),
            "{name} {labels:?}: {body}\n{publisher}"
        );
    }
    assert!(u(&publisher, "webhook-rejected") > 0, "{publisher}");
    assert_eq!(
        value("iguard_sink_connected", &[("output", "webhook")]),
        1.0
    );
    // Other paths are not found; the address is loopback only.
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}/other"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
    drop(guard);
    drop(hook);
    std::fs::remove_dir_all(dir).unwrap();
}

/// The body of `GET /metrics` at `addr`, scraped with curl.
fn scrape(addr: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sf", &format!("http://{addr}/metrics")])
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "curl {addr}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

type Series = Vec<(String, BTreeMap<String, String>, f64)>;

/// The series of the publishers in `names`, sorted (other tests' publishers run alongside).
fn series_of(body: &str, names: &[&str]) -> Series {
    let mut s: Series = parse_openmetrics(body)
        .into_iter()
        .filter(|(_, l, _)| {
            l.get("publisher")
                .is_some_and(|p| names.contains(&p.as_str()))
        })
        .collect();
    s.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    s
}

/// The value of `name` with `labels` (all of them matching), or None when there is no such
/// series.
fn value_of(series: &Series, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> = series
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(.., v)| *v)
        .collect();
    (!found.is_empty()).then(|| found.iter().sum())
}

/// A publisher's and its verifier's series equal their `stats`.
fn assert_series_equal_stats(
    series: &Series,
    publisher: &str,
    p: &gst::Structure,
    verifier: &str,
    v: &gst::Structure,
) {
    let pv = |name: &str, more: &[(&str, &str)]| {
        let mut l = vec![("publisher", publisher)];
        l.extend_from_slice(more);
        value_of(series, name, &l).unwrap_or_else(|| panic!("no {name} {l:?}: {series:?}"))
    };
    for status in ["verified", "rejected"] {
        assert_eq!(
            pv(
                "iguard_verdicts_total",
                &[("element", verifier), ("status", status)]
            ) as u64,
            u(v, status),
            "{publisher}/{verifier} {status}: {v}"
        );
    }
    assert_eq!(
        pv("iguard_publish_received_total", &[]) as u64,
        u(p, "received"),
        "{publisher}: {p}"
    );
    assert_eq!(
        pv("iguard_publish_queue_dropped_total", &[]) as u64,
        u(p, "queue-dropped"),
        "{publisher}: {p}"
    );
    if p.get::<u64>("file-written").unwrap() > 0 {
        assert_eq!(
            pv(
                "iguard_publish_results_total",
                &[("output", "file"), ("result", "written")]
            ) as u64,
            u(p, "file-written"),
            "{publisher}: {p}"
        );
    }
    for (metric, field) in [
        ("iguard_queue_depth", "queue-depth"),
        ("iguard_workers", "workers"),
        ("iguard_workers_active", "workers-active"),
    ] {
        assert_eq!(
            pv(metric, &[("element", verifier)]) as u32,
            v.get::<u32>(field).unwrap(),
            "{publisher}/{verifier} {metric}: {v}"
        );
    }
}

/// `videotestsrc ! iguardreplay ! iguardverify name=<verifier>`, a clip every few frames;
/// verdicts only (`incidents=false`): these tests count verdicts, tests/publish_incidents.rs
/// covers incidents.
fn verifying_source(det: &Path, frames: u32, verifier: &str) -> String {
    format!(
        "videotestsrc num-buffers={frames} \
         ! video/x-raw,format=RGBA,width=320,height=240,framerate=30/1 \
         ! iguardreplay location={} \
         ! iguardverify name={verifier} cooldown=0 temporal-size=4 input-width=32 \
           input-height=32 max-workers=2 queue-size=1000 model-type=fallback incidents=false",
        det.display()
    )
}

/// Plays `p` to EOS, failing on an error; returns its warnings.
fn play_to_eos(p: &gst::Element) -> Vec<String> {
    p.set_state(gst::State::Playing).unwrap();
    let mut warnings = Vec::new();
    for msg in p
        .bus()
        .unwrap()
        .iter_timed(gst::ClockTime::from_seconds(100))
    {
        match msg.view() {
            gst::MessageView::Eos(_) => return warnings,
            gst::MessageView::Error(e) => panic!("{e:?}"),
            gst::MessageView::Warning(w) => {
                warnings.push(format!("{} {}", w.error(), w.debug().unwrap_or_default()))
            }
            _ => (),
        }
    }
    panic!("no EOS within 100 s");
}

#[test]
fn two_publishers_of_one_name_get_distinct_labels_and_freeing_one_keeps_the_other() {
    init();
    let dir = tmpdir("metrics-dup");
    let det = detections(&dir, 120);
    let port = broker::free_port();
    let addr = format!("127.0.0.1:{port}");
    let launch = |frames: u32, verifier: &str, extra: &str| {
        gst::parse::launch(&format!(
            "{} ! iguardpublish name=dup {extra} ! fakesink",
            verifying_source(&det, frames, verifier)
        ))
        .unwrap()
    };
    let x = launch(120, "dvx", &format!("metrics-address={port}"));
    let y = launch(60, "dvy", &format!("metrics-address={port}"));
    let (guard_x, guard_y) = (StopOnDrop(x.clone()), StopOnDrop(y.clone()));
    let by_name =
        |p: &gst::Element, n: &str| p.downcast_ref::<gst::Bin>().unwrap().by_name(n).unwrap();
    common::set_scorer(&by_name(&x, "dvx"), Slow::new(3));
    common::set_scorer(&by_name(&y, "dvy"), Slow::new(3));
    let (wx, wy) = with_watchdog(Duration::from_secs(120), {
        let (x, y) = (x.clone(), y.clone());
        move || (play_to_eos(&x), play_to_eos(&y))
    });
    assert!(wx.is_empty(), "{wx:?}");
    assert!(
        wy.iter().any(|w| w.contains("publisher=\"dup#2\"")),
        "{wy:?}"
    );
    let stats = |p: &gst::Element, n: &str| by_name(p, n).property::<gst::Structure>("stats");
    let names = ["dup", "dup#2"];
    let series = series_of(&scrape(&addr), &names);
    let (vx, vy) = (stats(&x, "dvx"), stats(&y, "dvy"));
    assert_ne!(u(&vx, "completed"), u(&vy, "completed"), "tell them apart");
    assert_series_equal_stats(&series, "dup", &stats(&x, "dup"), "dvx", &vx);
    assert_series_equal_stats(&series, "dup#2", &stats(&y, "dup"), "dvy", &vy);
    // Freeing the second takes out its series only (keyed by element, not by name).
    drop(guard_y);
    drop(y);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let series = series_of(&scrape(&addr), &names);
        if !series.iter().any(|(_, l, _)| l["publisher"] == "dup#2") {
            assert_series_equal_stats(&series, "dup", &stats(&x, "dup"), "dvx", &vx);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a freed publisher's series stayed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(guard_x);
    drop(x);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn metrics_show_every_publisher_and_verifier_in_the_process_until_the_element_is_freed() {
    init();
    let dir = tmpdir("metrics-many");
    let det = detections(&dir, 120);
    let (port, port2) = (broker::free_port(), broker::free_port());
    let (addr, addr2) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{port2}"));
    let source = |frames: u32, verifier: &str| verifying_source(&det, frames, verifier);
    // Two pipelines, one address: `mpa` after `mva`; `mpb` after `mvb`, then `mpc` (a different
    // address) after `mpb`, so it sees `mvb`'s verdicts too.
    let a = gst::parse::launch(&format!(
        "{} ! iguardpublish name=mpa metrics-address={port} file-path={} ! fakesink",
        source(120, "mva"),
        dir.join("a.jsonl").display()
    ))
    .unwrap();
    let b = gst::parse::launch(&format!(
        "{} ! iguardpublish name=mpb metrics-address={port} file-path={} \
         ! iguardpublish name=mpc metrics-address={addr2} ! fakesink",
        source(60, "mvb"),
        dir.join("b.jsonl").display()
    ))
    .unwrap();
    let (guard_a, guard_b) = (StopOnDrop(a.clone()), StopOnDrop(b.clone()));
    let by_name = |p: &gst::Element, n: &str| {
        p.downcast_ref::<gst::Bin>()
            .unwrap()
            .by_name(n)
            .unwrap_or_else(|| panic!("no {n}"))
    };
    common::set_scorer(&by_name(&a, "mva"), Slow::new(3));
    common::set_scorer(&by_name(&b, "mvb"), Slow::new(3));
    with_watchdog(Duration::from_secs(120), {
        let (a, b) = (a.clone(), b.clone());
        move || {
            for p in [&a, &b] {
                p.set_state(gst::State::Playing).unwrap();
            }
            for p in [&a, &b] {
                expect_eos(&p.bus().unwrap(), Duration::from_secs(100));
            }
        }
    });
    let stats = |p: &gst::Element, n: &str| by_name(p, n).property::<gst::Structure>("stats");
    let names = ["mpa", "mpb", "mpc"];
    // After EOS (flushed) the figures hold still: one scrape shows all three publishers and
    // both verifiers, each equal to its own element's stats.
    let body = scrape(&addr);
    assert!(body.ends_with("# EOF\n"), "{body}");
    let series = series_of(&body, &names);
    let (va, vb) = (stats(&a, "mva"), stats(&b, "mvb"));
    assert_ne!(u(&va, "completed"), u(&vb, "completed"), "tell them apart");
    assert_series_equal_stats(&series, "mpa", &stats(&a, "mpa"), "mva", &va);
    assert_series_equal_stats(&series, "mpb", &stats(&b, "mpb"), "mvb", &vb);
    assert_series_equal_stats(&series, "mpc", &stats(&b, "mpc"), "mvb", &vb);
    // Each publisher sees only the verifiers upstream of it.
    for (p, other) in [("mpa", "mvb"), ("mpb", "mva"), ("mpc", "mva")] {
        assert!(
            !series.iter().any(|(_, l, _)| l["publisher"] == p
                && l.get("element").map(String::as_str) == Some(other)),
            "{p} shows {other}: {series:?}"
        );
    }
    // The other address serves the same process-wide registry.
    assert_eq!(
        series_of(&scrape(&addr2), &names),
        series,
        "{addr2} differs"
    );
    // An address already taken fails the start, naming it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let c = gst::parse::launch(&format!(
        "videotestsrc num-buffers=1 ! iguardpublish name=mpd metrics-address={taken_addr} \
         ! fakesink"
    ))
    .unwrap();
    let guard_c = StopOnDrop(c.clone());
    assert!(c.set_state(gst::State::Paused).is_err());
    let text = error_text(&c.bus().unwrap(), Duration::from_secs(10));
    assert!(text.contains(&taken_addr), "{text}");
    drop(guard_c);
    drop(c);
    drop(taken);

    // A stopped pipeline: its publisher's series stay (the last run, as `stats` shows it),
    // and its verifier's gauges are read from the verifier as it is now.
    a.set_state(gst::State::Null).unwrap();
    let series = series_of(&scrape(&addr), &names);
    assert_series_equal_stats(&series, "mpa", &stats(&a, "mpa"), "mva", &stats(&a, "mva"));
    assert_series_equal_stats(&series, "mpb", &stats(&b, "mpb"), "mvb", &vb);
    // Freed: its series go; the other pipeline's stay.
    drop(guard_a);
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let series = series_of(&scrape(&addr), &names);
        let left: Vec<_> = series
            .iter()
            .filter(|(_, l, _)| l["publisher"] == "mpa")
            .collect();
        if left.is_empty() {
            assert_series_equal_stats(&series, "mpb", &stats(&b, "mpb"), "mvb", &vb);
            assert_series_equal_stats(&series, "mpc", &stats(&b, "mpc"), "mvb", &vb);
            assert!(
                !series
                    .iter()
                    .any(|(_, l, _)| l.get("element").map(String::as_str) == Some("mva")),
                "{series:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a freed publisher's series stayed: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(guard_b);
    drop(b);
    std::fs::remove_dir_all(dir).unwrap();
}
