// SPDX-License-Identifier: MIT OR Apache-2.0
//! The MQTT output: one thread that owns the connection (rumqttc on a current-thread tokio
//! runtime) and sends the spool, oldest first.
//!
//! An event leaves the spool only when every one of its publishes was acknowledged (PUBACK at
//! QoS 1). rumqttc reports each publish as it writes it (`Outgoing::Publish(pkid)`, in the
//! order they were made), so a FIFO of what we published maps packet ids back to events. At
//! most [`WINDOW`] events are in flight, far fewer packets than rumqttc's inflight limit, so
//! it never reorders publishes (its packet-id collision path). Each connection gets a fresh
//! client: when one fails, everything unacknowledged is sent again on the next, as a replay,
//! after a jittered exponential back-off.
//!
//! Packets are bounded by `max_packet_bytes` (the broker's limit when the user gives one,
//! otherwise room for the largest snapshot the verifiers upstream attach): a publish over it is
//! never handed to the client, whose own check would end the session. A snapshot over it is
//! left off (its event still goes) and counted; an event over it can never go, so it leaves the
//! spool, counted, rather than block every event behind it.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};

use rumqttc::{
    AsyncClient, ConnectReturnCode, Event as MqttEvent, LastWill, MqttOptions, Outgoing, Packet,
    QoS, TlsConfiguration, Transport,
};

use super::schema::{self, Event};
use super::{Notice, Shared, Sink, lock};

/// Events in flight at once.
pub const WINDOW: usize = 16;

/// One publish an event makes.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub topic: String,
    pub retain: bool,
    /// Its own payload; `None`: the event's JSON.
    pub payload: Option<String>,
}

/// The publishes of `event` under `prefix`; `fresh`: young enough (`max-alert-age`) for the
/// alert topics.
///
/// - a verdict: `<prefix>/verdicts`, `<prefix>/<source>/verified` when verified and fresh,
///   and the retained `<prefix>/<source>/last`;
/// - an incident change: `<prefix>/incidents`, `<prefix>/<source>/alerts` when it is the
///   change to an alert and fresh (once per incident), and on `new`, `alert` and `end` the
///   retained `<prefix>/<source>/<label>/active`: the number of open alerts of that trigger
///   label on that source (the event's `active`);
/// - a gap event: `<prefix>/verdicts`.
pub fn topics(prefix: &str, event: &Event, fresh: bool) -> Vec<Part> {
    let part = |topic: String, retain: bool, payload: Option<String>| Part {
        topic,
        retain,
        payload,
    };
    let src = &event.source;
    if event.gap {
        return vec![part(format!("{prefix}/verdicts"), false, None)];
    }
    if !event.incident {
        let mut out = vec![part(format!("{prefix}/verdicts"), false, None)];
        if event.is_verified() && fresh {
            out.push(part(format!("{prefix}/{src}/verified"), false, None));
        }
        out.push(part(format!("{prefix}/{src}/last"), true, None));
        return out;
    }
    let mut out = vec![part(format!("{prefix}/incidents"), false, None)];
    if event.is_alert() && fresh {
        out.push(part(format!("{prefix}/{src}/alerts"), false, None));
    }
    let body = event.body();
    let active = body.get("active").and_then(serde_json::Value::as_u64);
    if let Some(n) = active
        && matches!(event.status.as_str(), "new" | "alert" | "end")
    {
        let label = schema::topic_level(
            body.get("trigger_label")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default(),
        );
        out.push(part(
            format!("{prefix}/{src}/{label}/active"),
            true,
            Some(n.to_string()),
        ));
    }
    out
}

/// MQTT's largest packet: a fixed header and a remaining length of at most 268,435,455.
pub const PROTOCOL_MAX_PACKET: usize = 268_435_455 + 5;
/// Room beyond a snapshot's bytes for its topic and packet header.
pub const SNAPSHOT_ROOM: usize = 64 * 1024;
/// `iguardverify`'s default `snapshot-max-bytes`: the largest snapshot expected when no
/// verifier is linked upstream at start.
pub const DEFAULT_SNAPSHOT_MAX_BYTES: usize = 2 * 1024 * 1024;

/// The packet bound: `setting` (the broker's limit) when not 0; otherwise room for the
/// largest snapshot the verifiers upstream attach (`snapshot_max`), at least 1 MiB; never
/// over the protocol's limit.
pub fn packet_bound(setting: u32, snapshot_max: Option<usize>) -> usize {
    let auto = snapshot_max.unwrap_or(DEFAULT_SNAPSHOT_MAX_BYTES) + SNAPSHOT_ROOM;
    let bound = if setting > 0 {
        setting as usize
    } else {
        auto.max(1 << 20)
    };
    bound.min(PROTOCOL_MAX_PACKET)
}

/// The size of a PUBLISH packet (QoS 1 or 2: with a packet id), as the client counts it.
pub fn publish_size(topic: &str, payload: usize) -> usize {
    let remaining = 2 + topic.len() + 2 + payload;
    let len_len = match remaining {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    };
    1 + len_len + remaining
}

#[derive(Debug, Clone, PartialEq)]
pub struct MqttConfig {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub ca_file: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub qos: u8,
    pub topic_prefix: String,
    pub client_id: String,
    /// Replays older than this stay off the `verified` topic; zero = no limit.
    pub max_alert_age: Duration,
    /// How often `<prefix>/stats` is published; zero = never.
    pub stats_interval: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub keep_alive: Duration,
    pub connect_timeout: Duration,
    /// The largest packet sent (see [`packet_bound`]).
    pub max_packet_bytes: usize,
}

/// Parses `mqtt://host[:port]` or `mqtts://host[:port]` (1883 and 8883 by default; IPv6
/// addresses in brackets) into host, port and whether TLS is on.
pub fn parse_url(url: &str) -> Result<(String, u16, bool), String> {
    let bad = |why: &str| format!("mqtt-url {url:?} is not valid: {why}");
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else {
        return Err(bad("use mqtt://host:port, or mqtts://host:port for TLS"));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = super::host_port(authority, if tls { 8883 } else { 1883 }).map_err(bad)?;
    Ok((host.to_string(), port, tls))
}

/// The back-off before attempt `n` (0-based) after a failure: doubling from `min` to `max`,
/// then a random 50–100 % of it, so many publishers do not reconnect in step.
pub fn backoff(n: u32, min: Duration, max: Duration, random: u64) -> Duration {
    let base = min
        .saturating_mul(1u32 << n.min(20))
        .min(max.max(min))
        .as_secs_f64();
    let jitter = 0.5 + 0.5 * (random % 1000) as f64 / 1000.0;
    Duration::from_secs_f64(base * jitter)
}

fn qos(n: u8) -> QoS {
    match n {
        0 => QoS::AtMostOnce,
        2 => QoS::ExactlyOnce,
        _ => QoS::AtLeastOnce,
    }
}

fn tls_transport(ca_file: Option<&str>) -> Result<Transport, String> {
    Ok(Transport::tls_with_config(TlsConfiguration::Rustls(
        super::tls::client_config(ca_file)?,
    )))
}

/// Checks what can be checked before starting (the TLS files).
pub fn validate(config: &MqttConfig) -> Result<(), String> {
    if config.tls {
        tls_transport(config.ca_file.as_deref())?;
    }
    Ok(())
}

fn options(config: &MqttConfig) -> Result<MqttOptions, String> {
    let mut o = MqttOptions::new(&config.client_id, &config.host, config.port);
    o.set_keep_alive(config.keep_alive.max(Duration::from_secs(1)));
    o.set_clean_session(true);
    o.set_inflight(100);
    // Incoming: acknowledgements only. Outgoing: what `Session::publish` lets through.
    o.set_max_packet_size(1 << 20, config.max_packet_bytes);
    o.set_last_will(LastWill::new(
        format!("{}/available", config.topic_prefix),
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    if let Some(user) = &config.user {
        o.set_credentials(user, config.password.clone().unwrap_or_default());
    }
    if config.tls {
        o.set_transport(tls_transport(config.ca_file.as_deref())?);
    }
    Ok(o)
}

/// What a session ended with.
enum End {
    Shutdown,
    /// The connection failed; whether it had been up (the back-off starts over then).
    Lost {
        was_up: bool,
        reason: String,
    },
}

enum Wake {
    Net(Result<MqttEvent, rumqttc::ConnectionError>),
    Nudge,
    Stop,
    Tick,
}

/// An event in flight: publishes not yet acknowledged.
struct InFlight {
    parts: u32,
    replay: bool,
    unix_us: i64,
}

struct Session<'a> {
    shared: &'a Shared,
    config: &'a MqttConfig,
    client: AsyncClient,
    /// What each publish made is for, in the order made: an event's seq, or None (status
    /// messages nobody waits for).
    expected: VecDeque<Option<u64>>,
    pkids: HashMap<u16, u64>,
    events: HashMap<u64, InFlight>,
    up: bool,
}

impl Session<'_> {
    fn fits(&self, topic: &str, payload: usize) -> bool {
        publish_size(topic, payload) <= self.config.max_packet_bytes
    }

    fn publish(
        &mut self,
        topic: String,
        qos: QoS,
        retain: bool,
        payload: Vec<u8>,
        seq: Option<u64>,
    ) -> Result<(), String> {
        if !self.fits(&topic, payload.len()) {
            // Not for the client: its own check would end the session. Events and snapshots
            // are checked before; a status message over the bound is left out.
            debug_assert!(seq.is_none(), "an event part over the bound: {topic}");
            return Ok(());
        }
        self.client
            .try_publish(topic, qos, retain, payload)
            .map_err(|e| format!("cannot queue a publish: {e}"))?;
        self.expected.push_back(seq);
        Ok(())
    }

    fn part_acked(&mut self, seq: u64) {
        let Some(f) = self.events.get_mut(&seq) else {
            return;
        };
        f.parts -= 1;
        if f.parts > 0 {
            return;
        }
        let f = self.events.remove(&seq).expect("present above");
        lock(&self.shared.spool).ack(seq);
        let c = &self.shared.counters;
        c.mqtt_delivered.fetch_add(1, Ordering::Relaxed);
        if f.replay {
            c.mqtt_replayed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.shared
                .record_latency((schema::now_us() - f.unix_us) as f64 / 1000.0);
        }
    }

    fn on_connected(&mut self) -> Result<(), String> {
        self.up = true;
        let c = &self.shared.counters;
        c.mqtt_connects.fetch_add(1, Ordering::Relaxed);
        self.shared.mqtt_up.store(true, Ordering::Relaxed);
        let prefix = &self.config.topic_prefix;
        self.publish(
            format!("{prefix}/available"),
            QoS::AtLeastOnce,
            true,
            b"online".to_vec(),
            None,
        )?;
        lock(&self.shared.spool).down = false;
        (self.shared.notice)(Notice::Up {
            sink: Sink::Mqtt,
            detail: format!("connected to {}:{}", self.config.host, self.config.port),
        });
        Ok(())
    }

    /// Puts a gap event first when the bound dropped events since the last one: after a
    /// reconnect, and also while connected (the bound counts events in flight too).
    fn report_gap(&mut self) {
        let gap = {
            let mut spool = lock(&self.shared.spool);
            let gap = spool.take_gap();
            if let Some(g) = gap {
                let n = self.shared.counters.gaps.fetch_add(1, Ordering::Relaxed) + 1;
                spool.push_front(Event::gap(
                    format!("{}-gap-{n}", self.config.client_id),
                    g.dropped,
                    g.first_us,
                    g.last_us,
                    &self.shared.name,
                    schema::now_us(),
                ));
            }
            gap
        };
        if let Some(g) = gap {
            (self.shared.notice)(Notice::Warning {
                sink: Sink::Spool,
                reason: format!(
                    "spool-max-bytes reached: {} events produced from {} to {} were dropped",
                    g.dropped,
                    schema::rfc3339(g.first_us),
                    schema::rfc3339(g.last_us)
                ),
            });
        }
    }

    /// Sends from the spool while the window has room.
    fn pump(&mut self) -> Result<(), String> {
        self.report_gap();
        let prefix = self.config.topic_prefix.clone();
        let q = qos(self.config.qos);
        // Snapshots first: queued before their event, they reach the broker before it.
        let snapshots = std::mem::take(&mut *lock(&self.shared.snapshots));
        for (src, jpeg) in snapshots {
            let topic = format!("{prefix}/{src}/snapshot");
            if !self.fits(&topic, jpeg.len()) {
                self.too_large("snapshot", &topic, jpeg.len());
                continue;
            }
            self.publish(topic, q, true, jpeg.to_vec(), None)?;
        }
        while self.events.len() < WINDOW {
            let Some(o) = lock(&self.shared.spool).next_unsent() else {
                break;
            };
            let now = schema::now_us();
            let payload = o.event.render(o.replay, now).into_bytes();
            let fresh = self.config.max_alert_age.is_zero()
                || o.event.age_ms(now) as u128 <= self.config.max_alert_age.as_millis();
            let publishes = topics(&prefix, &o.event, fresh);
            // The longest of its topics decides.
            let longest = publishes
                .iter()
                .filter(|p| p.payload.is_none())
                .map(|p| p.topic.as_str())
                .max_by_key(|t| t.len())
                .unwrap_or_default();
            if !self.fits(longest, payload.len()) {
                lock(&self.shared.spool).ack(o.seq);
                self.too_large("event", &o.event.event_id, payload.len());
                continue;
            }
            let parts = publishes.len() as u32;
            for p in publishes {
                let bytes = p
                    .payload
                    .map_or_else(|| payload.clone(), String::into_bytes);
                self.publish(p.topic, q, p.retain, bytes, Some(o.seq))?;
            }
            self.events.insert(
                o.seq,
                InFlight {
                    parts,
                    replay: o.replay,
                    unix_us: o.event.unix_us,
                },
            );
        }
        Ok(())
    }

    /// Counts (and warns of, the first time) a snapshot or an event over the packet bound.
    fn too_large(&self, what: &str, name: &str, bytes: usize) {
        let c = &self.shared.counters;
        let counter = if what == "snapshot" {
            &c.mqtt_snapshots_skipped
        } else {
            &c.mqtt_too_large
        };
        let first = c.mqtt_snapshots_skipped.load(Ordering::Relaxed)
            + c.mqtt_too_large.load(Ordering::Relaxed)
            == 0;
        counter.fetch_add(1, Ordering::Relaxed);
        if first {
            let what = if what == "snapshot" {
                "the snapshot was left off (its event is sent); further ones are counted in \
                 mqtt-snapshots-skipped"
            } else {
                "the event was dropped; further ones are counted in mqtt-too-large"
            };
            (self.shared.notice)(Notice::Warning {
                sink: Sink::Mqtt,
                reason: format!(
                    "{name}: {bytes} bytes is over the MQTT packet bound of {} bytes \
                     (mqtt-max-packet-bytes): {what}",
                    self.config.max_packet_bytes
                ),
            });
        }
    }

    fn on_event(&mut self, ev: MqttEvent) -> Result<(), String> {
        match ev {
            MqttEvent::Incoming(Packet::ConnAck(ack)) => {
                if ack.code != ConnectReturnCode::Success {
                    return Err(format!("the broker refused the connection: {:?}", ack.code));
                }
                self.on_connected()?;
            }
            MqttEvent::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(Some(seq)) = self.expected.pop_front() {
                    if pkid == 0 {
                        // QoS 0: written is all there is.
                        self.part_acked(seq);
                    } else {
                        self.pkids.insert(pkid, seq);
                    }
                }
            }
            MqttEvent::Incoming(Packet::PubAck(ack)) => {
                if let Some(seq) = self.pkids.remove(&ack.pkid) {
                    self.part_acked(seq);
                }
            }
            // QoS 2: the PUBCOMP ends the exchange.
            MqttEvent::Incoming(Packet::PubComp(c)) => {
                if let Some(seq) = self.pkids.remove(&c.pkid) {
                    self.part_acked(seq);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn publish_stats(&mut self) -> Result<(), String> {
        let s = self.shared.stats().to_json().to_string().into_bytes();
        self.publish(
            format!("{}/stats", self.config.topic_prefix),
            QoS::AtMostOnce,
            false,
            s,
            None,
        )
    }
}

async fn session(shared: &Shared, config: &MqttConfig) -> End {
    let options = match options(config) {
        Ok(o) => o,
        Err(reason) => {
            return End::Lost {
                was_up: false,
                reason,
            };
        }
    };
    let (client, mut eventloop) = AsyncClient::new(options, 512);
    let secs = config.connect_timeout.as_secs().max(1);
    eventloop.network_options.set_connection_timeout(secs);
    // An alert is one small packet: Nagle's algorithm would hold it back while an earlier one
    // waits for its ACK (rumqttc leaves it on by default).
    eventloop.network_options.set_tcp_nodelay(true);
    let mut s = Session {
        shared,
        config,
        client,
        expected: VecDeque::new(),
        pkids: HashMap::new(),
        events: HashMap::new(),
        up: false,
    };
    let mut next_tick = tokio::time::Instant::now() + config.stats_interval;
    loop {
        let wake = {
            let mut net = pin!(eventloop.poll());
            let mut nudge = pin!(shared.wake.notified());
            let mut stop = pin!(shared.stop.notified());
            let mut tick = pin!(tokio::time::sleep_until(next_tick));
            let (up, stats) = (s.up, !config.stats_interval.is_zero() && s.up);
            std::future::poll_fn(|cx| {
                if let Poll::Ready(r) = net.as_mut().poll(cx) {
                    return Poll::Ready(Wake::Net(r));
                }
                if stop.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Wake::Stop);
                }
                // New events only matter once connected; waking for them earlier would cancel
                // a connect (or TLS handshake) in progress.
                if up && nudge.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Wake::Nudge);
                }
                if stats && tick.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Wake::Tick);
                }
                Poll::Pending
            })
            .await
        };
        let result = match wake {
            Wake::Net(Ok(ev)) => s.on_event(ev),
            Wake::Net(Err(e)) => Err(e.to_string()),
            Wake::Nudge | Wake::Stop => Ok(()),
            Wake::Tick => {
                next_tick = tokio::time::Instant::now() + config.stats_interval;
                s.publish_stats()
            }
        };
        if let Err(reason) = result {
            return End::Lost {
                was_up: s.up,
                reason,
            };
        }
        if shared.stopping.load(Ordering::Relaxed) {
            if s.up {
                // Say goodbye: nobody should wait for a publisher that stopped on purpose.
                let _ = s.publish(
                    format!("{}/available", config.topic_prefix),
                    QoS::AtLeastOnce,
                    true,
                    b"offline".to_vec(),
                    None,
                );
                let _ = s.client.try_disconnect();
                let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
                while let Ok(Ok(_)) = tokio::time::timeout_at(deadline, eventloop.poll()).await {}
            }
            return End::Shutdown;
        }
        if s.up
            && let Err(reason) = s.pump()
        {
            return End::Lost {
                was_up: true,
                reason,
            };
        }
    }
}

fn random() -> u64 {
    let t = schema::now_us() as u64;
    // A cheap mix of the clock: enough to spread reconnects, not for secrets.
    let mut x = t ^ 0x9e37_79b9_7f4a_7c15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^ (x >> 29)
}

/// The MQTT thread's body: connect, send, and on failure back off and connect again, until
/// `stopping`.
pub fn run(shared: Arc<Shared>, config: MqttConfig) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            (shared.notice)(Notice::Down {
                sink: Sink::Mqtt,
                reason: format!("cannot start the MQTT runtime: {e}"),
            });
            return;
        }
    };
    let mut failures = 0u32;
    let mut down_reported = false;
    loop {
        let end = rt.block_on(session(&shared, &config));
        shared.mqtt_up.store(false, Ordering::Relaxed);
        {
            let mut spool = lock(&shared.spool);
            spool.down = true;
            spool.rewind();
        }
        let (was_up, reason) = match end {
            End::Shutdown => return,
            End::Lost { was_up, reason } => (was_up, reason),
        };
        if was_up {
            failures = 0;
            down_reported = false;
            shared
                .counters
                .mqtt_disconnects
                .fetch_add(1, Ordering::Relaxed);
        }
        // One warning per outage, not one per attempt.
        if !down_reported {
            down_reported = true;
            (shared.notice)(Notice::Down {
                sink: Sink::Mqtt,
                reason: format!(
                    "MQTT broker {}:{}: {reason}; retrying with back-off, events are spooled",
                    config.host, config.port
                ),
            });
        }
        let wait = backoff(
            failures,
            config.reconnect_min,
            config.reconnect_max,
            random(),
        );
        failures = failures.saturating_add(1);
        let deadline = Instant::now() + wait;
        while !shared.stopping.load(Ordering::Relaxed) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            rt.block_on(async {
                let _ = tokio::time::timeout(left, shared.stop.notified()).await;
            });
        }
        if shared.stopping.load(Ordering::Relaxed) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("mqtt://localhost").unwrap(),
            ("localhost".into(), 1883, false)
        );
        assert_eq!(
            parse_url("mqtts://broker.example:8884/x").unwrap(),
            ("broker.example".into(), 8884, true)
        );
        assert_eq!(
            parse_url("mqtt://[::1]:1999").unwrap(),
            ("::1".into(), 1999, false)
        );
        assert_eq!(
            parse_url("mqtts://[::1]").unwrap(),
            ("::1".into(), 8883, true)
        );
        for bad in [
            "http://x",
            "mqtt://",
            "mqtt://h:0",
            "mqtt://h:99999",
            "mqtt://h:p",
        ] {
            let e = parse_url(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn the_packet_bound_comes_from_the_settings_and_counts_as_the_client_does() {
        let mib = 1 << 20;
        assert_eq!(packet_bound(0, None), 2 * mib + SNAPSHOT_ROOM);
        assert_eq!(packet_bound(0, Some(4 * mib)), 4 * mib + SNAPSHOT_ROOM);
        assert_eq!(packet_bound(0, Some(1024)), mib, "at least 1 MiB");
        assert_eq!(
            packet_bound(131_072, Some(4 * mib)),
            131_072,
            "the broker's limit wins"
        );
        assert_eq!(packet_bound(u32::MAX, None), PROTOCOL_MAX_PACKET);
        // The size rumqttc checks against its bound, for each length of the length field.
        for len in [
            0,
            1,
            100,
            127,
            16_000,
            16_383,
            2_097_000,
            2_097_151,
            3 << 20,
        ] {
            let mut p = rumqttc::Publish::new("a/b/snapshot", QoS::AtLeastOnce, vec![0u8; len]);
            p.pkid = 1;
            assert_eq!(publish_size("a/b/snapshot", len), p.size(), "{len}");
        }
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(2));
        for n in 0..30 {
            for r in [0, 499, 999] {
                let d = backoff(n, min, max, r);
                let base = (100u64 << n.min(20)).min(2000) as f64 / 1000.0;
                assert!(d.as_secs_f64() >= base * 0.5 - 1e-9, "{n} {d:?}");
                assert!(d.as_secs_f64() <= base + 1e-9, "{n} {d:?}");
            }
        }
        assert!(backoff(0, min, max, 999) < backoff(3, min, max, 0) * 2);
        assert_ne!(backoff(2, min, max, 0), backoff(2, min, max, 999));
    }
}
