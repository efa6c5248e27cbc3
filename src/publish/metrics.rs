// SPDX-License-Identifier: MIT OR Apache-2.0
//! Prometheus metrics of every `iguardpublish` in the process: one process-wide registry
//! (`prometheus-client`), filled at scrape time from each element's figures — the same
//! [`Stats`](super::Stats) the `stats` property shows, so the two cannot disagree — and
//! served in OpenMetrics text at `/metrics` by one small thread per address, which hands each
//! connection to a thread of its own (at most [`MAX_CONNECTIONS`] at once; more are closed at
//! once). Each request has [`REQUEST_DEADLINE`] in all to arrive and be answered, so a client
//! that sends one byte every few seconds is cut off and never holds a scrape back.
//!
//! An element's figures stay in the registry until the element is freed (like `stats`,
//! which shows the last run after a stop), so the last run can still be scraped.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::{Shared, lock};

/// One publisher in the registry: its figures, how its upstream verifiers are read, and its
/// `publisher` label (the element name, or `name#2`, `name#3`, ... while another live
/// publisher in the process has that name: two pipelines may both call one `pub`, and
/// identical label sets would make the scrape invalid).
struct Entry {
    shared: Arc<Shared>,
    label: String,
    upstream: Option<Arc<Upstream>>,
}

/// The publishers in the process, by instance key (one per element, for its lifetime).
static PUBLISHERS: LazyLock<Mutex<BTreeMap<u64, Entry>>> = LazyLock::new(Default::default);
static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

/// A key for a new element, unique in the process.
pub fn next_key() -> u64 {
    NEXT_KEY.fetch_add(1, Ordering::Relaxed)
}
/// A verifying element's pool, read at scrape time.
#[derive(Debug, Clone, PartialEq)]
pub struct Verifier {
    pub element: String,
    pub queue_depth: u64,
    pub workers: u64,
    pub workers_active: u64,
}

/// Reads the `iguardverify` elements upstream of a publisher (their `stats`).
pub type Upstream = Box<dyn Fn() -> Vec<Verifier> + Send + Sync>;

/// Addresses served, so a second element with the same `metrics-address` shares the server.
static SERVERS: LazyLock<Mutex<HashMap<SocketAddr, ()>>> = LazyLock::new(Default::default);

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The time a request has, in all, to arrive and be answered.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// Connections served at once per address; more are closed at once.
pub const MAX_CONNECTIONS: usize = 8;

/// Adds (or replaces, at a restart) an element's figures; returns the `publisher` label its
/// series carry.
pub fn register(key: u64, shared: Arc<Shared>) -> String {
    let mut all = lock(&PUBLISHERS);
    let taken = |label: &str| all.iter().any(|(k, e)| *k != key && e.label == label);
    let label = match all.get(&key) {
        // A restart under the same name keeps its label.
        Some(e) if e.shared.name == shared.name => e.label.clone(),
        _ => {
            let mut label = shared.name.clone();
            let mut n = 2;
            while taken(&label) {
                label = format!("{}#{n}", shared.name);
                n += 1;
            }
            label
        }
    };
    let upstream = all.remove(&key).and_then(|e| e.upstream);
    all.insert(
        key,
        Entry {
            shared,
            label: label.clone(),
            upstream,
        },
    );
    label
}

/// Removes an element's figures (the element is being freed).
pub fn unregister(key: u64) {
    lock(&PUBLISHERS).remove(&key);
}

/// Sets how a registered publisher's upstream verifiers are read.
pub fn register_upstream(key: u64, upstream: Upstream) {
    if let Some(e) = lock(&PUBLISHERS).get_mut(&key) {
        e.upstream = Some(Arc::new(upstream));
    }
}

/// `PORT` alone is `127.0.0.1:PORT` (loopback: metrics are not published to the network
/// unless asked); otherwise `host:port` as given (`0.0.0.0:9464` for every interface).
pub fn parse_address(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(port) = s.parse::<u16>() {
        if port == 0 {
            return Err(format!("metrics-address {s:?} is not valid: the port is 0"));
        }
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse::<SocketAddr>().map_err(|e| {
        format!("metrics-address {s:?} is not valid ({e}): give PORT or HOST:PORT, e.g. 9464")
    })
}

/// 1 ms to about 16 s, doubling.
pub fn processing_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

#[derive(Debug)]
struct Publishers;

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One metric family: name, help, type and its samples.
fn family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    counter: bool,
    samples: &[(Labels, u64)],
) -> Result<(), std::fmt::Error> {
    if samples.is_empty() {
        return Ok(());
    }
    let kind = if counter {
        MetricType::Counter
    } else {
        MetricType::Gauge
    };
    let mut m = encoder.encode_descriptor(name, help, None, kind)?;
    for (l, v) in samples {
        let e = m.encode_family(l)?;
        if counter {
            ConstCounter::new(*v).encode(e)?;
        } else {
            ConstGauge::new(*v as i64).encode(e)?;
        }
    }
    Ok(())
}

impl Collector for Publishers {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (publishers, upstream): (Vec<_>, Vec<_>) = lock(&PUBLISHERS)
            .values()
            .map(|e| {
                (
                    (e.label.clone(), e.shared.clone()),
                    (e.label.clone(), e.upstream.clone()),
                )
            })
            .unzip();
        let mut verdicts = Vec::new();
        let mut incidents = Vec::new();
        let mut duplicates = Vec::new();
        let mut results = Vec::new();
        let mut spool = Vec::new();
        let mut connected = Vec::new();
        let mut received = Vec::new();
        let mut processing = Vec::new();
        let (mut depth, mut workers, mut active) = (Vec::new(), Vec::new(), Vec::new());
        // Called without our locks: it reads GObject properties.
        for (p, read) in &upstream {
            let Some(read) = read else { continue };
            for v in read() {
                let l = labels(&[("publisher", p), ("element", &v.element)]);
                depth.push((l.clone(), v.queue_depth));
                workers.push((l.clone(), v.workers));
                active.push((l, v.workers_active));
            }
        }
        let mut dropped = Vec::new();
        for (p, sh) in &publishers {
            let p = p.as_str();
            for ((element, source, status), n) in lock(&sh.verdicts).iter() {
                verdicts.push((
                    labels(&[
                        ("publisher", p),
                        ("element", element),
                        ("source", source),
                        ("status", status),
                    ]),
                    *n,
                ));
            }
            for ((element, source, change), n) in lock(&sh.incidents).iter() {
                incidents.push((
                    labels(&[
                        ("publisher", p),
                        ("element", element),
                        ("source", source),
                        ("type", change),
                    ]),
                    *n,
                ));
            }
            for (element, h) in lock(&sh.processing).iter() {
                processing.push((labels(&[("publisher", p), ("element", element)]), h.clone()));
            }
            let s = sh.stats();
            received.push((labels(&[("publisher", p)]), s.received));
            dropped.push((labels(&[("publisher", p)]), s.queue_dropped));
            duplicates.push((labels(&[("publisher", p)]), s.incident_duplicates));
            let out = &sh.outputs;
            let mut result = |output: &str, result: &str, n: u64| {
                results.push((
                    labels(&[("publisher", p), ("output", output), ("result", result)]),
                    n,
                ))
            };
            if out.file {
                result("file", "written", s.file_written);
                result("file", "failed", s.file_failed);
            }
            if out.mqtt {
                result("mqtt", "delivered", s.mqtt_delivered);
                result("mqtt", "replayed", s.mqtt_replayed);
                result("mqtt", "spool_dropped", s.spool_dropped);
                result("mqtt", "spool_skipped", s.spool_skipped);
                spool.push((
                    labels(&[("publisher", p), ("output", "mqtt")]),
                    s.spool_events,
                ));
                connected.push((
                    labels(&[("publisher", p), ("output", "mqtt")]),
                    s.mqtt_connected as u64,
                ));
            }
            if out.webhook {
                result("webhook", "delivered", s.webhook_delivered);
                result("webhook", "replayed", s.webhook_replayed);
                result("webhook", "rejected", s.webhook_rejected);
                result("webhook", "retried", s.webhook_retries);
                result("webhook", "spool_dropped", s.webhook_spool_dropped);
                result("webhook", "spool_skipped", s.webhook_spool_skipped);
                spool.push((
                    labels(&[("publisher", p), ("output", "webhook")]),
                    s.webhook_spool_events,
                ));
                connected.push((
                    labels(&[("publisher", p), ("output", "webhook")]),
                    s.webhook_connected as u64,
                ));
            }
        }
        family(
            &mut encoder,
            "iguard_verdicts",
            "Verdicts received by iguardpublish, by verifying element, source and status",
            true,
            &verdicts,
        )?;
        family(
            &mut encoder,
            "iguard_incidents",
            "Incident events published by iguardpublish, by verifying element, source and type \
             (new, update, alert, end)",
            true,
            &incidents,
        )?;
        family(
            &mut encoder,
            "iguard_publish_incident_duplicates",
            "Copies of an incident change already published, dropped",
            true,
            &duplicates,
        )?;
        family(
            &mut encoder,
            "iguard_publish_received",
            "Verdict events that reached iguardpublish",
            true,
            &received,
        )?;
        family(
            &mut encoder,
            "iguard_publish_queue_dropped",
            "Verdict events dropped because the output queue was full",
            true,
            &dropped,
        )?;
        family(
            &mut encoder,
            "iguard_publish_results",
            "Publish results per output",
            true,
            &results,
        )?;
        family(
            &mut encoder,
            "iguard_spool_events",
            "Events waiting in an output's spool",
            false,
            &spool,
        )?;
        family(
            &mut encoder,
            "iguard_sink_connected",
            "1 when the output's receiver is reachable",
            false,
            &connected,
        )?;
        family(
            &mut encoder,
            "iguard_queue_depth",
            "Clips waiting for a worker in an upstream iguardverify",
            false,
            &depth,
        )?;
        family(
            &mut encoder,
            "iguard_workers",
            "Worker threads of an upstream iguardverify",
            false,
            &workers,
        )?;
        family(
            &mut encoder,
            "iguard_workers_active",
            "Workers of an upstream iguardverify scoring a clip now",
            false,
            &active,
        )?;
        if !processing.is_empty() {
            let mut m = encoder.encode_descriptor(
                "iguard_processing_seconds",
                "Time a verdict's clip took to score (the verdicts' processing_ms)",
                None,
                MetricType::Histogram,
            )?;
            for (l, h) in &processing {
                h.encode(m.encode_family(l)?)?;
            }
        }
        Ok(())
    }
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let mut r = Registry::default();
    r.register_collector(Box::new(Publishers));
    r
});

/// The OpenMetrics text of every publisher in the process.
pub fn render() -> String {
    let mut s = String::new();
    // Writing to a String cannot fail; an encoder error would be a bug in a label.
    let _ = prometheus_client::encoding::text::encode(&mut s, &REGISTRY);
    s
}

fn answer(mut stream: TcpStream) {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let left = || Some(deadline.saturating_duration_since(Instant::now())).filter(|d| !d.is_zero());
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < 16384 {
        // The deadline is for the whole request, not for each read.
        let Some(wait) = left() else {
            let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
            let _ = stream.write_all(
                b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        };
        let _ = stream.set_read_timeout(Some(wait));
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let _ = stream.set_write_timeout(Some(left().unwrap_or(Duration::from_millis(200))));
    let text = String::from_utf8_lossy(&got);
    let mut first = text.lines().next().unwrap_or_default().split_whitespace();
    let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, ctype, body) = if method != "GET" && method != "HEAD" {
        (
            "405 Method Not Allowed",
            "text/plain",
            "GET /metrics\n".to_string(),
        )
    } else if path == "/metrics" {
        ("200 OK", CONTENT_TYPE, render())
    } else {
        ("404 Not Found", "text/plain", "see /metrics\n".to_string())
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    if method != "HEAD" {
        let _ = stream.write_all(body.as_bytes());
    }
}

/// Serves `/metrics` at `addr` for the rest of the process; a second call for the same
/// address is a no-op. An error names the address (in use, not local, ...).
pub fn serve(addr: SocketAddr) -> Result<(), String> {
    let mut servers = lock(&SERVERS);
    if servers.contains_key(&addr) {
        return Ok(());
    }
    let listener =
        TcpListener::bind(addr).map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
    std::thread::Builder::new()
        .name("iguardpub-metrics".into())
        .spawn(move || {
            let busy = Arc::new(AtomicUsize::new(0));
            for stream in listener.incoming().flatten() {
                if busy.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                    // Closed now: a flood of connections costs no thread and no memory.
                    busy.fetch_sub(1, Ordering::AcqRel);
                    continue;
                }
                let b = busy.clone();
                let spawned = std::thread::Builder::new()
                    .name("iguardpub-scrape".into())
                    .spawn(move || {
                        answer(stream);
                        b.fetch_sub(1, Ordering::AcqRel);
                    });
                if spawned.is_err() {
                    busy.fetch_sub(1, Ordering::AcqRel);
                }
            }
        })
        .map_err(|e| format!("cannot start the metrics thread: {e}"))?;
    servers.insert(addr, ());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `GET /metrics` over a plain socket: the status line, or why there is none (a generous
    /// limit that only turns a hang into a failure).
    fn get(addr: SocketAddr) -> Result<String, String> {
        let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut text = String::new();
        s.read_to_string(&mut text).map_err(|e| e.to_string())?;
        Ok(text.lines().next().unwrap_or_default().to_string())
    }

    #[test]
    fn a_slow_client_holds_no_scrape_back_and_is_cut_off_at_the_deadline() {
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        serve(addr).unwrap();
        // One byte every 2 s, for far longer than the deadline; it reports how it ended.
        let slow = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            for b in b"GET /metrics HTTP/1.1\r\nHost: slowly-slowly-slowly\r\n".iter() {
                if s.write_all(&[*b]).is_err() {
                    return "write refused";
                }
                let mut buf = [0u8; 64];
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                match s.read(&mut buf) {
                    Ok(0) => return "closed",
                    Ok(_) => return "answered",
                    Err(_) => {} // nothing yet: the next byte
                }
            }
            "never cut off"
        });
        std::thread::sleep(Duration::from_millis(500));
        // Scrapes while the slow client is connected: each is answered.
        for _ in 0..3 {
            assert_eq!(get(addr).unwrap(), "HTTP/1.1 200 OK");
        }
        let ended = slow.join().unwrap();
        assert!(ended == "answered" || ended == "closed", "{ended}");
    }

    #[test]
    fn connections_past_the_limit_are_closed_and_the_server_goes_on() {
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        serve(addr).unwrap();
        // Idle connections fill every slot; one more is closed without an answer.
        let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let refused = get(addr);
        assert!(
            !matches!(&refused, Ok(l) if l.starts_with("HTTP")),
            "answered past the limit: {refused:?}"
        );
        drop(idle);
        // Their threads end as the connections close; then scrapes are answered again.
        let mut answer = get(addr);
        for _ in 0..100 {
            if matches!(&answer, Ok(l) if l == "HTTP/1.1 200 OK") {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            answer = get(addr);
        }
        assert_eq!(answer.unwrap(), "HTTP/1.1 200 OK");
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address("9464").unwrap(),
            "127.0.0.1:9464".parse().unwrap()
        );
        assert_eq!(
            parse_address("0.0.0.0:1234").unwrap(),
            "0.0.0.0:1234".parse().unwrap()
        );
        assert_eq!(
            parse_address("[::1]:9").unwrap(),
            "[::1]:9".parse().unwrap()
        );
        for bad in ["0", "host", "1.2.3.4", "99999"] {
            let e = parse_address(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
