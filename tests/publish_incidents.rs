// SPDX-License-Identifier: MIT OR Apache-2.0
//! `iguardpublish` and incidents, with the real outputs: the `iguard-incident` events
//! `iguardverify` sends (built here with the shared `Incident` type, as the element builds
//! them) pushed into the element, and what reached the event log, a real mosquitto broker
//! (also through an outage), a real webhook receiver and the metrics.

mod broker;
mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use gst::prelude::*;
use serde_json::Value;

use broker::hook::Hook;
use broker::{Broker, Received, Subscriber};
use common::publish::{event_ids as ids, lines, now_ms, publisher, tmpdir, u};
use gstiguard::incident::{Change, EndReason, Incident, PixelBox, State};

/// Incidents as `iguardverify` keeps them: each change raises the revision and is sent as
/// `incident.to_event(change)`.
struct Keeper {
    incidents: Vec<Incident>,
}

impl Keeper {
    fn new() -> Keeper {
        Keeper {
            incidents: Vec::new(),
        }
    }

    fn get(&mut self, id: u64) -> &mut Incident {
        self.incidents
            .iter_mut()
            .find(|i| i.incident_id == id)
            .expect("opened before")
    }

    fn open(&mut self, id: u64, source: u32, object: Option<u64>) -> gst::Event {
        let mut i = Incident::open(
            id,
            source,
            0,
            object,
            "person",
            Some(id * 1_000_000_000),
            1_764_581_400_000_000 + id as i64,
        );
        i.revision = 1;
        i.clips = 1;
        let e = i.to_event(Change::New);
        self.incidents.push(i);
        e
    }

    /// A clip's verdict counted: verified (with `score`) or rejected.
    fn update(&mut self, id: u64, verified: bool, score: f64) -> gst::Event {
        let i = self.get(id);
        i.revision += 1;
        if verified {
            i.clips_verified += 1;
        } else {
            i.clips_rejected += 1;
        }
        if i.best_score.is_nan() || score > i.best_score {
            i.best_score = score;
            i.best_label = "person".into();
        }
        i.last_box = Some(PixelBox {
            x: 40,
            y: 60,
            width: 50,
            height: 120,
        });
        i.enter_zone("lawn");
        i.to_event(Change::Update)
    }

    fn alert(&mut self, id: u64) -> gst::Event {
        let i = self.get(id);
        i.revision += 1;
        i.clips += 1;
        i.clips_verified += 1;
        i.best_score = 0.93;
        i.best_label = "person".into();
        i.state = State::Alert;
        i.to_event(Change::Alert)
    }

    fn end(&mut self, id: u64, reason: EndReason) -> gst::Event {
        let i = self.get(id);
        i.revision += 1;
        i.end(reason, 1_764_581_460_000_000);
        i.to_event(Change::End)
    }
}

/// An `iguard-verdict` event as `iguardverify` sends it, with the zones its object entered.
fn verdict_event(request_id: u64, zones: Option<&str>) -> gst::Event {
    let mut s = gst::Structure::builder("iguard-verdict")
        .field("request-id", request_id)
        .field("source-id", 0u32)
        .field("status", "rejected")
        .field("object-id", 7u64)
        .field("run-id", "5eed")
        .field("element", "v")
        .build();
    if let Some(z) = zones {
        s.set("zones", z);
    }
    gst::event::CustomDownstream::new(s)
}

/// Two tracked objects on source 0 (incident 1 becomes an alert, incident 2 is dismissed),
/// one `clip-per=source` incident on source 1 that becomes an alert, a verdict, and one copy
/// of a change already sent. Returns the events and how many distinct incident changes.
fn story() -> (Vec<gst::Event>, usize) {
    let mut k = Keeper::new();
    let mut events = vec![
        k.open(1, 0, Some(7)),
        verdict_event(1, Some("lawn")),
        k.update(1, false, 0.31),
        k.open(2, 0, Some(8)),
        k.alert(1),
    ];
    // The same change again (a tee upstream, a resent event): dropped.
    events.push(events[4].clone());
    events.extend([
        k.open(3, 1, None),
        k.alert(3),
        k.update(2, false, 0.12),
        k.end(1, EndReason::Lost),
        k.end(2, EndReason::Lost),
        k.end(3, EndReason::Eos),
    ]);
    (events, 10)
}

fn warnings(bus: &gst::Bus) -> Vec<String> {
    std::iter::from_fn(|| bus.pop())
        .filter_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some(w.error().to_string()),
            _ => None,
        })
        .collect()
}

fn on<'a>(msgs: &'a [Received], topic: &str) -> Vec<&'a Received> {
    msgs.iter().filter(|m| m.topic == topic).collect()
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// The value of the series `name{labels...}` (every given label matching), summed.
fn metric(body: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum()
}

#[test]
fn every_incident_change_reaches_the_log_mqtt_and_metrics_once_and_each_alert_its_topic() {
    let dir = tmpdir("incidents");
    let log = dir.join("events.jsonl");
    let broker = Broker::start("incidents");
    let sub = Subscriber::start(broker.port, "sub-incidents", "t/#", false);
    let metrics_port = broker::free_port();
    let (mut h, e, bus) = publisher(&format!(
        "name=pubinc file-path={} mqtt-url={} topic-prefix=t flush-timeout=30000 \
         metrics-address={metrics_port}",
        log.display(),
        broker.url()
    ));
    let (events, changes) = story();
    let pushed_from = now_ms();
    for ev in events {
        assert!(h.push_event(ev));
    }
    let pushed_to = now_ms();
    // EOS waits for the log and every PUBACK.
    assert!(h.push_event(gst::event::Eos::new()));
    let stats = e.property::<gst::Structure>("stats");
    let body = scrape(&format!("127.0.0.1:{metrics_port}"));

    // The event log: every change once, in order, and the verdict.
    let written = lines(&log);
    let incidents: Vec<Value> = written
        .iter()
        .filter(|e| e["schema"] == "iguard.incident/1")
        .cloned()
        .collect();
    assert_eq!(incidents.len(), changes, "{incidents:#?}");
    let unique: HashSet<String> = ids(&incidents).into_iter().collect();
    assert_eq!(unique.len(), changes, "a change logged twice");
    let of = |id: u64| -> Vec<(String, u64)> {
        incidents
            .iter()
            .filter(|e| e["incident_id"] == id)
            .map(|e| {
                (
                    e["type"].as_str().unwrap().to_string(),
                    e["revision"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let t = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
        v.iter().map(|(s, r)| (s.to_string(), *r)).collect()
    };
    assert_eq!(
        of(1),
        t(&[("new", 1), ("update", 2), ("alert", 3), ("end", 4)])
    );
    assert_eq!(of(2), t(&[("new", 1), ("update", 2), ("end", 3)]));
    assert_eq!(of(3), t(&[("new", 1), ("alert", 2), ("end", 3)]));

    // The schema: the envelope, and every field of the incident.
    let alert = incidents
        .iter()
        .find(|e| e["incident_id"] == 1 && e["type"] == "alert")
        .unwrap();
    let id = alert["event_id"].as_str().unwrap();
    assert!(
        id.ends_with("-incident-1-3") && id.len() > "-incident-1-3".len(),
        "run id, incident id and revision: {id}"
    );
    // The story's changes come as an older verifier sent them, without `run-id`, `element` or
    // `unix-us`: named after the publisher's own run (not the verdict's `5eed`), with no
    // element, at the time they reached the publisher.
    let run = id.strip_suffix("-incident-1-3").unwrap();
    assert_ne!(run, "5eed");
    for e in &incidents {
        let ms = e["unix_ms"].as_i64().unwrap();
        assert!(
            e["event_id"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{run}-incident-"))
                && e["element"] == ""
                && (pushed_from..=pushed_to).contains(&ms),
            "{e}"
        );
    }
    for (k, want) in [
        ("source", Value::from("0")),
        ("publisher", "pubinc".into()),
        ("replayed", false.into()),
        ("object_id", 7.into()),
        ("trigger_label", "person".into()),
        ("state", "alert".into()),
        ("end_reason", Value::Null),
        ("start_pts", 1_000_000_000u64.into()),
        ("start_unix_us", 1_764_581_400_000_001i64.into()),
        ("start_time", "2025-12-01T09:30:00.000001Z".into()),
        ("end_time", Value::Null),
        ("clips", 2.into()),
        ("clips_verified", 1.into()),
        ("clips_rejected", 1.into()),
        ("clips_unscored", 0.into()),
        ("best_score", 0.93.into()),
        ("best_label", "person".into()),
        ("zones", serde_json::json!(["lawn"])),
        (
            "box",
            serde_json::json!({"x": 40, "y": 60, "width": 50, "height": 120}),
        ),
        ("active", 1.into()),
    ] {
        assert_eq!(alert[k], want, "{k} in {alert}");
    }
    for k in ["time", "unix_ms", "age_ms", "element", "pad_index"] {
        assert!(alert.get(k).is_some(), "{k} missing in {alert}");
    }
    let ended = incidents
        .iter()
        .find(|e| e["incident_id"] == 2 && e["type"] == "end")
        .unwrap();
    assert_eq!(ended["state"], "dismissed");
    assert_eq!(ended["end_reason"], "lost");
    assert_eq!(ended["end_time"], "2025-12-01T09:31:00.000000Z");
    let per_source = incidents.iter().find(|e| e["incident_id"] == 3).unwrap();
    assert_eq!(per_source["object_id"], Value::Null, "clip-per=source");
    assert_eq!(per_source["best_score"], Value::Null, "nothing scored yet");
    let verdict = written
        .iter()
        .find(|e| e["schema"] == "iguard.verdict/1")
        .unwrap();
    assert_eq!(verdict["zones"], serde_json::json!(["lawn"]));

    // MQTT: every change on <prefix>/incidents, in order, and nothing of them elsewhere.
    sub.wait("every change", Duration::from_secs(30), |m| {
        on(m, "t/incidents").len() >= changes && on(m, "t/1/person/active").len() >= 3
    });
    std::thread::sleep(Duration::from_millis(300));
    let msgs = sub.messages();
    let on_topic: Vec<Value> = on(&msgs, "t/incidents").iter().map(|m| m.json()).collect();
    assert_eq!(
        ids(&on_topic),
        ids(&incidents),
        "the log's changes, in order"
    );
    assert!(on(&msgs, "t/incidents").iter().all(|m| !m.retain));
    let verdicts = on(&msgs, "t/verdicts");
    assert_eq!(verdicts.len(), 1, "the verdict topics carry verdicts only");
    assert_eq!(verdicts[0].json()["zones"], serde_json::json!(["lawn"]));
    assert_eq!(on(&msgs, "t/0/last").len(), 1);
    // Exactly one alert per alerting incident, on its source's topic.
    for (topic, incident) in [("t/0/alerts", 1), ("t/1/alerts", 3)] {
        let a = on(&msgs, topic);
        assert_eq!(a.len(), 1, "{topic}: {a:?}");
        let j = a[0].json();
        assert_eq!(
            (j["incident_id"].as_u64(), j["type"].as_str()),
            (Some(incident), Some("alert"))
        );
        assert!(!a[0].retain);
    }
    // The open alerts per source and label: 1 while incident 1 is an alert, 0 once it ends.
    let active =
        |topic: &str| -> Vec<String> { on(&msgs, topic).iter().map(|m| m.text()).collect() };
    assert_eq!(active("t/0/person/active"), ["0", "0", "1", "0", "0"]);
    assert_eq!(active("t/1/person/active"), ["0", "1", "0"]);
    drop(sub);
    // A newcomer (Home Assistant starting) reads the retained count: nobody is there.
    let late = Subscriber::start(broker.port, "sub-late", "t/+/person/active", false);
    late.wait("the retained counts", Duration::from_secs(10), |m| {
        m.len() >= 2
    });
    for m in late.messages() {
        assert!(m.retain && m.text() == "0", "{m:?}");
    }

    // The figures: every change once, the copy dropped and counted.
    assert_eq!(u(&stats, "incidents"), changes as u64, "{stats}");
    assert_eq!(u(&stats, "incident-duplicates"), 1, "{stats}");
    assert_eq!(u(&stats, "received"), changes as u64 + 2, "{stats}");
    assert_eq!(u(&stats, "mqtt-delivered"), changes as u64 + 1, "{stats}");
    assert_eq!(u(&stats, "invalid"), 0, "{stats}");
    let pm = |labels: &[(&str, &str)]| metric(&body, "iguard_incidents_total", labels);
    let me = [("publisher", "pubinc")];
    assert_eq!(pm(&[me[0], ("type", "new")]), 3.0, "{body}");
    assert_eq!(pm(&[me[0], ("type", "update")]), 2.0, "{body}");
    assert_eq!(pm(&[me[0], ("type", "alert")]), 2.0, "{body}");
    assert_eq!(pm(&[me[0], ("type", "end")]), 3.0, "{body}");
    assert_eq!(pm(&[me[0], ("source", "1")]), 3.0, "{body}");
    assert_eq!(
        metric(&body, "iguard_publish_incident_duplicates_total", &me),
        1.0,
        "{body}"
    );
    drop(h);
    assert!(warnings(&bus).is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_alert_in_a_broker_outage_is_spooled_and_sent_once_marked_replayed() {
    let mut broker = Broker::start("incident-outage");
    let sub = Subscriber::start(broker.port, "sub-inc-outage", "o/#", true);
    let (mut h, e, _bus) = publisher(&format!(
        "mqtt-url={} topic-prefix=o reconnect-delay=100 reconnect-max-delay=500 keep-alive=2 \
         flush-timeout=30000",
        broker.url()
    ));
    let stats = |f: &str| u(&e.property::<gst::Structure>("stats"), f);
    let connected = || {
        e.property::<gst::Structure>("stats")
            .get::<bool>("mqtt-connected")
            .unwrap()
    };
    let mut k = Keeper::new();
    assert!(h.push_event(k.open(1, 0, Some(7))));
    sub.wait("the first change", Duration::from_secs(20), |m| {
        on(m, "o/incidents").len() == 1
    });
    wait_for("its PUBACK", Duration::from_secs(20), || {
        stats("spool-events") == 0
    });

    // The broker goes; nothing is in flight. What happens now waits in the spool.
    broker.stop();
    wait_for("the publisher to see it", Duration::from_secs(20), || {
        !connected()
    });
    for ev in [k.update(1, false, 0.4), k.alert(1), k.open(2, 0, Some(8))] {
        assert!(h.push_event(ev));
    }
    wait_for("three events spooled", Duration::from_secs(10), || {
        stats("spool-events") == 3
    });
    assert_eq!(stats("mqtt-delivered"), 1);

    broker.resume();
    wait_for("the reconnect", Duration::from_secs(30), connected);
    for ev in [k.end(1, EndReason::Lost), k.end(2, EndReason::Lost)] {
        assert!(h.push_event(ev));
    }
    assert!(h.push_event(gst::event::Eos::new()));
    sub.wait("every change", Duration::from_secs(30), |m| {
        on(m, "o/incidents").len() >= 6
    });
    std::thread::sleep(Duration::from_millis(300));
    let msgs = sub.messages();
    // The broker itself may deliver a message to this subscriber again across its restart (it
    // was not sure the subscriber had it): such a copy is marked dup and is the same bytes. The
    // publisher must send each change once.
    let incidents = on(&msgs, "o/incidents");
    let redelivered = |i: usize| {
        incidents[i].dup
            && incidents[..i]
                .iter()
                .any(|m| m.payload == incidents[i].payload)
    };
    let changes: Vec<Value> = (0..incidents.len())
        .filter(|&i| !redelivered(i))
        .map(|i| incidents[i].json())
        .collect();
    let unique: HashSet<String> = ids(&changes).into_iter().collect();
    assert_eq!(
        (changes.len(), unique.len()),
        (6, 6),
        "every change once (dup flags {:?}): {changes:#?}",
        incidents.iter().map(|m| m.dup).collect::<Vec<_>>()
    );
    // Exactly one alert, sent after the outage and marked so.
    let alerts = on(&msgs, "o/0/alerts");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = alerts[0].json();
    assert_eq!(a["incident_id"], 1);
    assert_eq!(a["replayed"], true, "{a}");
    assert!(a["age_ms"].as_i64().unwrap() > 0, "{a}");
    // The three from the outage are replays; the first was not.
    let replayed: Vec<u64> = changes
        .iter()
        .filter(|c| c["replayed"] == true)
        .map(|c| c["revision"].as_u64().unwrap() * 10 + c["incident_id"].as_u64().unwrap())
        .collect();
    for want in [21, 31, 12] {
        assert!(replayed.contains(&want), "{want} in {replayed:?}");
    }
    assert_eq!(changes[0]["replayed"], false);
    // The count went to 1 and back to 0, and 0 is what stays.
    let active: Vec<String> = on(&msgs, "o/0/person/active")
        .iter()
        .map(|m| m.text())
        .collect();
    let one = active.iter().position(|v| v == "1").expect("went to 1");
    assert!(
        active[one..].contains(&"0".to_string()),
        "{active:?}: back to 0"
    );
    assert_eq!(active.last().map(String::as_str), Some("0"), "{active:?}");
    let s = e.property::<gst::Structure>("stats");
    assert_eq!(u(&s, "incidents"), 6, "{s}");
    assert_eq!(u(&s, "mqtt-delivered"), 6, "{s}");
    assert!(u(&s, "mqtt-replayed") >= 3, "{s}");
    assert_eq!(u(&s, "spool-dropped"), 0, "{s}");
    drop(h);
}

/// Runs the story through a publisher with `webhook-events=<mode>` to a real receiver; its
/// answers.
fn through_webhook(dir: &Path, mode: &str) -> Vec<Value> {
    std::fs::create_dir_all(dir).unwrap();
    let secret = "inc-secret";
    let hook = Hook::start(dir, secret, 0.0, 0);
    let (mut h, e, bus) = publisher(&format!(
        "webhook-url=http://127.0.0.1:{}/hook webhook-secret={secret} webhook-events={mode} \
         flush-timeout=30000",
        hook.port
    ));
    let (events, _) = story();
    for ev in events {
        assert!(h.push_event(ev));
    }
    assert!(h.push_event(gst::event::Eos::new()));
    let s = e.property::<gst::Structure>("stats");
    assert_eq!(u(&s, "webhook-spool-events"), 0, "{s}");
    drop(h);
    assert!(warnings(&bus).is_empty());
    let answers = hook.answers();
    assert!(
        answers
            .iter()
            .all(|a| a["code"] == 200 && a["problem"] == ""),
        "{answers:?}"
    );
    assert_eq!(u(&s, "webhook-delivered"), answers.len() as u64, "{s}");
    answers
}

#[test]
fn a_webhook_for_alerts_gets_one_post_per_alerting_incident_and_all_gets_every_change() {
    let dir = tmpdir("incident-webhook");
    let alerts = through_webhook(&dir.join("alerts"), "alerts");
    let got: Vec<(Option<&str>, Option<&str>)> = alerts
        .iter()
        .map(|a| (a["schema"].as_str(), a["type"].as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (Some("iguard.incident/1"), Some("alert")),
            (Some("iguard.incident/1"), Some("alert"))
        ]
    );
    let ids: Vec<&str> = alerts
        .iter()
        .map(|a| a["event_id"].as_str().unwrap())
        .collect();
    assert!(
        ids[0].ends_with("-incident-1-3") && ids[1].ends_with("-incident-3-2"),
        "{ids:?}"
    );

    let all = through_webhook(&dir.join("all"), "all");
    let incidents = all
        .iter()
        .filter(|a| a["schema"] == "iguard.incident/1")
        .count();
    let verdicts = all
        .iter()
        .filter(|a| a["schema"] == "iguard.verdict/1")
        .count();
    assert_eq!((incidents, verdicts), (10, 1), "{all:?}");
    let unique: HashSet<&str> = all
        .iter()
        .map(|a| a["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(unique.len(), 11, "each once");

    let only_verdicts = through_webhook(&dir.join("verdicts"), "verdicts");
    assert_eq!(only_verdicts.len(), 1);
    assert_eq!(only_verdicts[0]["schema"], "iguard.verdict/1");
    std::fs::remove_dir_all(dir).unwrap();
}
