// SPDX-License-Identifier: MIT OR Apache-2.0
//! The HTTP webhook output: one thread that POSTs the webhook spool, oldest first, one event
//! at a time (so the order per source holds without bookkeeping).
//!
//! The client is a small blocking HTTP/1.1 writer over `std::net::TcpStream` (one connection
//! per event, `Connection: close`): it needs no new dependency and no async runtime, and a
//! POST with a status line back is all this output uses. `http://` only for now; `https://`
//! is refused at start with a clear error rather than sent in the clear.
//!
//! An event leaves the spool only on a 2xx answer. 4xx: the receiver will never take it, so it
//! is dropped and counted (`webhook-rejected`). 5xx, a timeout or a connection failure: the
//! spool is rewound and sent again, as replays, after a jittered exponential back-off.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::mqtt::backoff;
use super::schema::{self, Event};
use super::{Notice, Shared, Sink, lock};

/// The signature header: `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "X-IGuard-Signature";

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    pub url: String,
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
    pub secret: Option<String>,
    /// One attempt: connect, send, and the status line back.
    pub timeout: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
}

/// Parses `http://host[:port][/path]` (port 80 by default; IPv6 addresses in brackets) into
/// host, port and path.
pub fn parse_url(url: &str) -> Result<(String, u16, String), String> {
    let bad = |why: &str| format!("webhook-url {url:?} is not valid: {why}");
    if url.starts_with("https://") {
        return Err(bad(
            "https:// is not supported yet; use http:// (e.g. to a local \
                        TLS-terminating proxy)",
        ));
    }
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("use http://host[:port]/path"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(r) = authority.strip_prefix('[') {
        let (h, after) = r.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host.contains('@') {
        return Err(bad("no host (user info is not supported)"));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
        None => 80,
    };
    if path.contains(['\r', '\n', ' ']) {
        return Err(bad("the path has spaces or line breaks"));
    }
    Ok((host.to_string(), port, path.to_string()))
}

/// `sha256=<hex>`: HMAC-SHA256 of the body with the secret.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, body);
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256=");
    for b in tag.as_ref() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// One POST; the HTTP status, or why there is none.
pub fn post(config: &WebhookConfig, body: &[u8], event_id: &str) -> Result<u16, String> {
    let deadline = Instant::now() + config.timeout;
    let addrs = (config.host.as_str(), config.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", config.host))?;
    let mut stream = None;
    let mut last = String::from("no address");
    for a in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&a, left) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    let mut stream = stream.ok_or_else(|| format!("cannot connect: {last}"))?;
    let left = |what: &str| {
        let d = deadline.saturating_duration_since(Instant::now());
        if d.is_zero() {
            Err(format!("timed out {what}"))
        } else {
            Ok(d)
        }
    };
    stream
        .set_write_timeout(Some(left("connecting")?))
        .map_err(|e| e.to_string())?;
    let host = if config.host.contains(':') {
        format!("[{}]:{}", config.host, config.port)
    } else {
        format!("{}:{}", config.host, config.port)
    };
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: iguardpublish\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nIdempotency-Key: {event_id}\r\n\
         Connection: close\r\n",
        config.path,
        body.len()
    );
    if let Some(secret) = &config.secret {
        head.push_str(&format!(
            "{SIGNATURE_HEADER}: {}\r\n",
            signature(secret, body)
        ));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.write_all(body))
        .map_err(|e| format!("cannot send: {e}"))?;
    // The status line is all we need; read until it is complete.
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.contains(&b'\n') {
        stream
            .set_read_timeout(Some(left("waiting for the answer")?))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) => return Err("the server closed the connection without an answer".into()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("no answer: {e}")),
        }
        if got.len() > 8192 {
            break;
        }
    }
    let line = String::from_utf8_lossy(&got);
    let line = line.lines().next().unwrap_or_default();
    let mut parts = line.split_whitespace();
    match (
        parts.next(),
        parts.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => Ok(code),
        _ => Err(format!("not an HTTP answer: {line:?}")),
    }
}

fn random() -> u64 {
    let t = schema::now_us() as u64;
    // A cheap mix of the clock: enough to spread retries, not for secrets.
    let mut x = t ^ 0x2545_f491_4f6c_dd1d;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^ (x >> 29)
}

/// Puts a gap event first when the bound dropped events since the last report.
fn report_gap(shared: &Shared, config: &WebhookConfig) {
    let gap = {
        let mut spool = lock(&shared.webhook_spool);
        let gap = spool.take_gap();
        if let Some(g) = gap {
            let n = shared.counters.webhook_gaps.fetch_add(1, Ordering::Relaxed) + 1;
            spool.push_front(Event::gap(
                format!("{}-webhook-gap-{n}", shared.name),
                g.dropped,
                g.first_us,
                g.last_us,
                &shared.name,
                schema::now_us(),
            ));
        }
        gap
    };
    if let Some(g) = gap {
        (shared.notice)(Notice::Warning {
            sink: Sink::Webhook,
            reason: format!(
                "spool-max-bytes reached for {}: {} events produced from {} to {} were dropped",
                config.url,
                g.dropped,
                schema::rfc3339(g.first_us),
                schema::rfc3339(g.last_us)
            ),
        });
    }
}

/// Waits until `deadline`, an event arrives (when `for_events`), or the element stops.
fn wait(shared: &Shared, deadline: Instant, for_events: bool) {
    let mut spool = lock(&shared.webhook_spool);
    loop {
        if shared.stopping.load(Ordering::Relaxed) {
            return;
        }
        if for_events && spool.len() > spool.in_flight() {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        spool = shared
            .webhook_wake
            .wait_timeout(spool, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// The webhook thread's body: send, retry with back-off, until `stopping`.
pub fn run(shared: Arc<Shared>, config: WebhookConfig) {
    let c = &shared.counters;
    let mut failures = 0u32;
    let mut down = false;
    let mut rejected_reported = false;
    while !shared.stopping.load(Ordering::Relaxed) {
        report_gap(&shared, &config);
        let Some(o) = lock(&shared.webhook_spool).next_unsent() else {
            wait(&shared, Instant::now() + Duration::from_secs(1), true);
            continue;
        };
        let body = o.event.render(o.replay, schema::now_us()).into_bytes();
        let failure = match post(&config, &body, &o.event.event_id) {
            Ok(code) if (200..300).contains(&code) => {
                lock(&shared.webhook_spool).ack(o.seq);
                c.webhook_delivered.fetch_add(1, Ordering::Relaxed);
                if o.replay {
                    c.webhook_replayed.fetch_add(1, Ordering::Relaxed);
                }
                None
            }
            Ok(code) if (400..500).contains(&code) => {
                // The receiver refuses this event for good: sending it again cannot help.
                lock(&shared.webhook_spool).ack(o.seq);
                c.webhook_rejected.fetch_add(1, Ordering::Relaxed);
                if !rejected_reported {
                    rejected_reported = true;
                    (shared.notice)(Notice::Warning {
                        sink: Sink::Webhook,
                        reason: format!(
                            "{} answered {code} to event {}: dropped (further refusals are \
                             only counted in webhook-rejected)",
                            config.url, o.event.event_id
                        ),
                    });
                }
                None
            }
            Ok(code) => Some(format!("{} answered {code}", config.url)),
            Err(e) => Some(format!("{}: {e}", config.url)),
        };
        match failure {
            None => {
                failures = 0;
                if down {
                    down = false;
                    lock(&shared.webhook_spool).down = false;
                    shared.webhook_up.store(true, Ordering::Relaxed);
                    (shared.notice)(Notice::Up {
                        sink: Sink::Webhook,
                        detail: format!("{} accepts events again", config.url),
                    });
                } else {
                    shared.webhook_up.store(true, Ordering::Relaxed);
                }
            }
            Some(reason) => {
                c.webhook_retries.fetch_add(1, Ordering::Relaxed);
                shared.webhook_up.store(false, Ordering::Relaxed);
                {
                    let mut spool = lock(&shared.webhook_spool);
                    spool.down = true;
                    spool.rewind();
                }
                // One warning per outage, not one per attempt.
                if !down {
                    down = true;
                    (shared.notice)(Notice::Down {
                        sink: Sink::Webhook,
                        reason: format!("{reason}; retrying with back-off, events are spooled"),
                    });
                }
                let pause = backoff(failures, config.retry_min, config.retry_max, random());
                failures = failures.saturating_add(1);
                wait(&shared, Instant::now() + pause, false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("http://127.0.0.1:8080/hook?a=1").unwrap(),
            ("127.0.0.1".into(), 8080, "/hook?a=1".into())
        );
        assert_eq!(
            parse_url("http://example.org").unwrap(),
            ("example.org".into(), 80, "/".into())
        );
        assert_eq!(
            parse_url("http://[::1]:9/x").unwrap(),
            ("::1".into(), 9, "/x".into())
        );
        for bad in [
            "https://x/",
            "ftp://x",
            "http://",
            "http://h:0/",
            "http://h:x/",
            "http://u@h/",
            "http://h/a b",
        ] {
            let e = parse_url(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn the_signature_is_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
