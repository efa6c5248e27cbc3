// SPDX-License-Identifier: MIT OR Apache-2.0
//! Prometheus metrics of every `iguardpublish` in the process: one process-wide registry
//! (`prometheus-client`), filled at scrape time from each element's figures — the same
//! [`Stats`](super::Stats) the `stats` property shows, so the two cannot disagree — and
//! served in OpenMetrics text at `/metrics` by one small thread per address.
//!
//! An element's figures stay in the registry until the element is freed (like `stats`,
//! which shows the last run after a stop), so the last run can still be scraped.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

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
            for (element, h) in lock(&sh.processing).iter() {
                processing.push((labels(&[("publisher", p), ("element", element)]), h.clone()));
            }
            let s = sh.stats();
            received.push((labels(&[("publisher", p)]), s.received));
            dropped.push((labels(&[("publisher", p)]), s.queue_dropped));
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
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < 16384 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
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
            for stream in listener.incoming().flatten() {
                // One scrape at a time is plenty; each is bounded by its timeouts.
                answer(stream);
            }
        })
        .map_err(|e| format!("cannot start the metrics thread: {e}"))?;
    servers.insert(addr, ());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
