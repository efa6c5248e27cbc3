// SPDX-License-Identifier: MIT OR Apache-2.0
//! The HTTP webhook output: one thread that POSTs the webhook spool, oldest first, one event
//! at a time (so the order per source holds without bookkeeping).
//!
//! The client is a small blocking HTTP/1.1 writer over `std::net::TcpStream` (one connection
//! per event, `Connection: close`), wrapped in rustls for `https://` (the same client set-up
//! as `mqtts://`: the roots of `tls-ca-file` or the system's, the host name checked against
//! the certificate): it needs no new dependency and no async runtime, and a POST with a status
//! line back is all this output uses.
//!
//! An event leaves the spool only on a 2xx answer. 408 (timeout) and 429 (too many requests):
//! the receiver wants it later, so it is sent again after the answer's `Retry-After` (seconds
//! or an HTTP date, at most [`MAX_RETRY_AFTER`]), or the back-off without one. 401 and 403 (a
//! rotated secret, an expired token): an outage, not a verdict on the event: kept, retried with
//! back-off, warned once. Any other 4xx: the receiver will never take it, so it is dropped and
//! counted (`webhook-rejected`). 5xx, a timeout or a connection failure: the spool is rewound
//! and sent again, as replays, after a jittered exponential back-off (or `Retry-After`).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::mqtt::backoff;
use super::schema::{self, Event};
use super::{Notice, Shared, Sink, lock, tls};

/// The longest `Retry-After` honoured; a longer one waits this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// The signature header: `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "X-IGuard-Signature";

/// Where a webhook URL points.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// `https://`: TLS, the host name checked against the server's certificate.
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

/// Which events the webhook gets (`webhook-events`). Gap events (what a spool had to drop)
/// go whatever the choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WebhookEvents {
    /// Verdicts and every incident change.
    #[default]
    All,
    /// Verdicts only (what the webhook got before incidents existed).
    Verdicts,
    /// Every incident change, no verdicts.
    Incidents,
    /// Only the incident events of incidents becoming alerts: one POST per alerting incident.
    Alerts,
}

impl WebhookEvents {
    /// Whether the webhook gets `event`.
    pub fn wants(self, event: &Event) -> bool {
        if event.gap {
            return true;
        }
        match self {
            WebhookEvents::All => true,
            WebhookEvents::Verdicts => !event.incident,
            WebhookEvents::Incidents => event.incident,
            WebhookEvents::Alerts => event.is_alert(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    pub url: String,
    pub endpoint: Endpoint,
    /// PEM roots for `https://`; `None` = the system's.
    pub ca_file: Option<String>,
    pub secret: Option<String>,
    /// One attempt: connect, send, and the status line back.
    pub timeout: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
    pub events: WebhookEvents,
}

/// Parses `http://host[:port][/path]` or `https://…` (port 80 or 443 by default; IPv6
/// addresses in brackets).
pub fn parse_url(url: &str) -> Result<Endpoint, String> {
    let bad = |why: &str| format!("webhook-url {url:?} is not valid: {why}");
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad(
            "use http://host[:port]/path or https://host[:port]/path",
        ));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return Err(bad("user info is not supported"));
    }
    let (host, port) = super::host_port(authority, if tls { 443 } else { 80 }).map_err(bad)?;
    if path.contains(['\r', '\n', ' ']) {
        return Err(bad("the path has spaces or line breaks"));
    }
    if tls && ServerName::try_from(host).is_err() {
        return Err(bad("the host is neither a DNS name nor an IP address"));
    }
    Ok(Endpoint {
        tls,
        host: host.to_string(),
        port,
        path: path.to_string(),
    })
}

/// Checks what can be checked before starting (the TLS roots of an `https://` webhook).
pub fn validate(config: &WebhookConfig) -> Result<(), String> {
    if config.endpoint.tls {
        tls::client_config(config.ca_file.as_deref())?;
    }
    Ok(())
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

/// One connection, plain or TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &s.sock,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// The TLS client set-up of an `https://` webhook, made once per thread; `None` for `http://`.
pub type Tls = Option<Result<Arc<rustls::ClientConfig>, String>>;

pub fn tls_for(config: &WebhookConfig) -> Tls {
    config
        .endpoint
        .tls
        .then(|| tls::client_config(config.ca_file.as_deref()))
}

/// What a receiver answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub code: u16,
    /// `Retry-After`, read when the code asks for a retry (408, 429, 5xx).
    pub retry_after: Option<Duration>,
}

/// What to do with an event after an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Refused for good (a 4xx other than 401, 403, 408 and 429): dropped, counted.
    Rejected,
    /// Kept and sent again after the back-off, or after `Retry-After` when given.
    Retry,
}

pub fn outcome(code: u16) -> Outcome {
    match code {
        200..=299 => Outcome::Delivered,
        // A receiver that is slow, throttles, or no longer knows our secret: not an answer
        // about this event.
        401 | 403 | 408 | 429 => Outcome::Retry,
        400..=499 => Outcome::Rejected,
        _ => Outcome::Retry,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's method).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110's IMF-fixdate) as seconds since
/// the Unix epoch.
pub fn parse_http_date(s: &str) -> Option<i64> {
    let mut p = s.split_whitespace();
    let _weekday = p.next()?.strip_suffix(',')?;
    let day: i64 = p.next()?.parse().ok()?;
    let month = match p.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = p.next()?.parse().ok()?;
    let mut t = p.next()?.split(':').map(|x| x.parse::<i64>().ok());
    let (h, m, sec) = (t.next()??, t.next()??, t.next()??);
    if p.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec)
}

/// A `Retry-After` value (delay-seconds, or an HTTP date) as a wait from `now_s` (Unix
/// seconds), at most [`MAX_RETRY_AFTER`]; a date in the past is no wait.
pub fn parse_retry_after(value: &str, now_s: i64) -> Option<Duration> {
    let v = value.trim();
    let secs = match v.parse::<u64>() {
        Ok(n) => n,
        Err(_) => parse_http_date(v)?.saturating_sub(now_s).max(0) as u64,
    };
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// One POST; the HTTP status (and `Retry-After` where it matters), or why there is none.
pub fn post(
    config: &WebhookConfig,
    tls: &Tls,
    body: &[u8],
    event_id: &str,
) -> Result<Answer, String> {
    let Endpoint {
        host, port, path, ..
    } = &config.endpoint;
    if let Some(Err(e)) = tls {
        return Err(e.clone());
    }
    let deadline = Instant::now() + config.timeout;
    let addrs = (host.as_str(), *port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    let mut tcp = None;
    let mut last = String::from("no address");
    for a in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&a, left) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    let mut tcp = tcp.ok_or_else(|| format!("cannot connect: {last}"))?;
    let left = |what: &str| {
        let d = deadline.saturating_duration_since(Instant::now());
        if d.is_zero() {
            Err(format!("timed out {what}"))
        } else {
            Ok(d)
        }
    };
    let mut stream = match tls {
        None => Conn::Plain(tcp),
        Some(Err(e)) => return Err(e.clone()),
        Some(Ok(client)) => {
            // Checked by parse_url.
            let name = ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
            let mut conn = rustls::ClientConnection::new(client.clone(), name)
                .map_err(|e| format!("TLS setup failed: {e}"))?;
            let wait = left("connecting")?;
            tcp.set_read_timeout(Some(wait))
                .and_then(|_| tcp.set_write_timeout(Some(wait)))
                .map_err(|e| e.to_string())?;
            // The handshake first, so that a certificate problem says so.
            while conn.is_handshaking() {
                conn.complete_io(&mut tcp)
                    .map_err(|e| format!("TLS handshake with {host}:{port} failed: {e}"))?;
            }
            Conn::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)))
        }
    };
    stream
        .tcp()
        .set_write_timeout(Some(left("connecting")?))
        .map_err(|e| e.to_string())?;
    let host = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: iguardpublish\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nIdempotency-Key: {event_id}\r\n\
         Connection: close\r\n",
        path,
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
    // The status line, and the headers when the answer asks for a retry (for Retry-After).
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    let mut code = None;
    loop {
        if code.is_none()
            && let Some(end) = got.iter().position(|b| *b == b'\n')
        {
            let line = String::from_utf8_lossy(&got[..end]);
            let mut parts = line.split_whitespace();
            code = match (
                parts.next(),
                parts.next().and_then(|c| c.parse::<u16>().ok()),
            ) {
                (Some(v), Some(code)) if v.starts_with("HTTP/") => Some(code),
                _ => return Err(format!("not an HTTP answer: {:?}", line.trim_end())),
            };
        }
        let headers_done = got.windows(4).any(|w| w == b"\r\n\r\n");
        match code {
            Some(c) if outcome(c) != Outcome::Retry || headers_done => break,
            _ => {}
        }
        if got.len() > 8192 {
            break;
        }
        let wait = match left("waiting for the answer") {
            Ok(d) => d,
            // The headers of a retry answer are a nicety: the code is enough.
            Err(_) if code.is_some() => break,
            Err(e) => return Err(e),
        };
        stream
            .tcp()
            .set_read_timeout(Some(wait))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) if code.is_some() => break,
            Ok(0) => return Err("the server closed the connection without an answer".into()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) if code.is_some() => break,
            Err(e) => return Err(format!("no answer: {e}")),
        }
    }
    let Some(code) = code else {
        let line = String::from_utf8_lossy(&got);
        return Err(format!(
            "not an HTTP answer: {:?}",
            line.lines().next().unwrap_or_default()
        ));
    };
    let now_s = schema::now_us().div_euclid(1_000_000);
    let retry_after = String::from_utf8_lossy(&got)
        .split("\r\n")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("retry-after"))
        .and_then(|(_, v)| parse_retry_after(v, now_s));
    Ok(Answer { code, retry_after })
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
    let tls = tls_for(&config);
    while !shared.stopping.load(Ordering::Relaxed) {
        report_gap(&shared, &config);
        let Some(o) = lock(&shared.webhook_spool).next_unsent() else {
            wait(&shared, Instant::now() + Duration::from_secs(1), true);
            continue;
        };
        let body = o.event.render(o.replay, schema::now_us()).into_bytes();
        // A failure: why, and the receiver's own Retry-After when it gave one.
        let failure = match post(&config, &tls, &body, &o.event.event_id) {
            Ok(a) => match outcome(a.code) {
                Outcome::Delivered => {
                    lock(&shared.webhook_spool).ack(o.seq);
                    c.webhook_delivered.fetch_add(1, Ordering::Relaxed);
                    if o.replay {
                        c.webhook_replayed.fetch_add(1, Ordering::Relaxed);
                    }
                    None
                }
                Outcome::Rejected => {
                    // The receiver refuses this event for good: sending it again cannot help.
                    lock(&shared.webhook_spool).ack(o.seq);
                    c.webhook_rejected.fetch_add(1, Ordering::Relaxed);
                    if !rejected_reported {
                        rejected_reported = true;
                        (shared.notice)(Notice::Warning {
                            sink: Sink::Webhook,
                            reason: format!(
                                "{} answered {} to event {}: dropped (further refusals are \
                                 only counted in webhook-rejected)",
                                config.url, a.code, o.event.event_id
                            ),
                        });
                    }
                    None
                }
                Outcome::Retry => {
                    let why = match a.code {
                        401 | 403 => " (is webhook-secret the one the receiver expects?)",
                        408 | 429 => " (asks to send it later)",
                        _ => "",
                    };
                    let after = a
                        .retry_after
                        .map(|d| format!(", Retry-After {} s", d.as_secs()))
                        .unwrap_or_default();
                    Some((
                        format!("{} answered {}{why}{after}", config.url, a.code),
                        a.retry_after,
                    ))
                }
            },
            Err(e) => Some((format!("{}: {e}", config.url), None)),
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
            Some((reason, retry_after)) => {
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
                let pause = retry_after.unwrap_or_else(|| {
                    backoff(failures, config.retry_min, config.retry_max, random())
                });
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
        let at = |tls, host: &str, port, path: &str| Endpoint {
            tls,
            host: host.into(),
            port,
            path: path.into(),
        };
        assert_eq!(
            parse_url("http://127.0.0.1:8080/hook?a=1").unwrap(),
            at(false, "127.0.0.1", 8080, "/hook?a=1")
        );
        assert_eq!(
            parse_url("http://example.org").unwrap(),
            at(false, "example.org", 80, "/")
        );
        assert_eq!(
            parse_url("http://[::1]:9/x").unwrap(),
            at(false, "::1", 9, "/x")
        );
        assert_eq!(
            parse_url("https://example.org/h").unwrap(),
            at(true, "example.org", 443, "/h")
        );
        assert_eq!(
            parse_url("https://localhost:8443").unwrap(),
            at(true, "localhost", 8443, "/")
        );
        for bad in [
            "ftp://x",
            "https://bad_name!/",
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
    fn an_https_webhook_needs_readable_roots_before_it_starts() {
        let config = |url: &str, ca: &str| WebhookConfig {
            url: url.into(),
            endpoint: parse_url(url).unwrap(),
            ca_file: Some(ca.into()),
            secret: None,
            timeout: Duration::from_secs(1),
            retry_min: Duration::from_millis(10),
            retry_max: Duration::from_millis(100),
            events: WebhookEvents::All,
        };
        let e = validate(&config("https://localhost/", "/nonexistent/ca.pem")).unwrap_err();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        // Plain HTTP reads no roots.
        validate(&config("http://localhost/", "/nonexistent/ca.pem")).unwrap();
        // The set-up error is what every attempt then reports.
        let c = config("https://localhost:1/", "/nonexistent/ca.pem");
        let e = post(&c, &tls_for(&c), b"{}", "id").unwrap_err();
        assert!(
            e.contains("/nonexistent/ca.pem") || e.contains("cannot connect"),
            "{e}"
        );
    }

    #[test]
    fn only_final_refusals_drop_an_event() {
        assert_eq!(outcome(200), Outcome::Delivered);
        assert_eq!(outcome(204), Outcome::Delivered);
        for code in [401, 403, 408, 429, 500, 502, 503, 301, 100] {
            assert_eq!(outcome(code), Outcome::Retry, "{code}");
        }
        for code in [400, 404, 410, 413, 422] {
            assert_eq!(outcome(code), Outcome::Rejected, "{code}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        // RFC 9110's example date.
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2028 23:59:59 GMT"),
            Some(1_835_481_599)
        );
        for bad in [
            "",
            "Sun 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Nov 1994 08:49:37 PST",
            "Sun, 32 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
        let now = 784_111_777;
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:40 GMT", now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past"
        );
        assert_eq!(parse_retry_after("86400", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
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
