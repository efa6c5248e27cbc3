// SPDX-License-Identifier: MIT OR Apache-2.0
//! Incidents end to end on real footage: OpenCV's `vtest.avi` decoded, its recorded HOG
//! person detections replayed (`make footage`), `iguardverify` scoring each person's clips
//! with the tiny ONNX model (plumbing, not a trained detector: its "armed" class answers to
//! red, so on this street some clips pass the threshold and most do not), `iguardpublish`
//! writing the event log and publishing to a real mosquitto broker.
//!
//! The event log must tell each incident's story consistently with its verdicts: one `new`,
//! one `end`, revisions one by one, at most one `alert` and only after a verified verdict of
//! its object, and counts that are those of its object's verdicts (see
//! `common::publish::check_incident_log`). Nothing is left pending at EOS, the broker got
//! what the log got, and the publisher's figures add up. Which people alert depends on the
//! model and the detector, so the test asserts the rules, not the counts.
//!
//! Without the footage it fails naming `make footage`; `IGUARD_FOOTAGE=skip` skips it.

mod broker;
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use gst::prelude::*;

use broker::{Broker, Subscriber};
use common::footage::footage;
use common::publish::{IncidentLog, check_incident_log, lines, tmpdir, u};
use common::*;
use gstiguard::{incident, meta};

/// What the pipeline said on its bus until EOS.
#[derive(Default)]
struct Bus {
    verdicts: u64,
    incident_changes: u64,
    warnings: Vec<String>,
}

fn run(desc: &str, limit: Duration) -> (Bus, Stats, gst::Structure) {
    let p = gst::parse::launch(desc)
        .unwrap_or_else(|e| panic!("{desc}: {e}"))
        .downcast::<gst::Pipeline>()
        .unwrap();
    let _stop = StopOnDrop(p.clone().upcast());
    let bus = p.bus().unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let mut said = Bus::default();
    let mut eos = false;
    for msg in bus.iter_timed(gst::ClockTime::from_nseconds(limit.as_nanos() as u64)) {
        match msg.view() {
            gst::MessageView::Eos(_) => {
                eos = true;
                break;
            }
            gst::MessageView::Error(err) => panic!("pipeline error: {err:?}"),
            gst::MessageView::Warning(w) => said.warnings.push(w.error().to_string()),
            gst::MessageView::Element(m) => match m.structure().map(|s| s.name().as_str()) {
                Some(meta::MESSAGE_NAME) => said.verdicts += 1,
                Some(incident::EVENT_NAME) => said.incident_changes += 1,
                _ => (),
            },
            _ => (),
        }
    }
    assert!(eos, "no EOS within {limit:?}: {desc}");
    let v = p.by_name("v").unwrap();
    let publisher = p.by_name("p").unwrap();
    let verifier = Stats::of(&v);
    let published = publisher.property::<gst::Structure>("stats");
    p.set_state(gst::State::Null).unwrap();
    (said, verifier, published)
}

#[test]
fn on_vtest_every_incident_in_the_log_agrees_with_its_verdicts_and_nothing_is_left() {
    let Some((video, dets)) = footage() else {
        return;
    };
    init();
    let dir = tmpdir("footage-incidents");
    let log = dir.join("events.jsonl");
    let broker = Broker::start("footage-incidents");
    let sub = Subscriber::start(broker.port, "sub-footage", "f/#", false);
    let desc = format!(
        "filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=RGBA \
         ! iguardreplay location={} class-labels=1=person \
         ! iguardverify name=v model-path={} labels-file={} positive-classes=armed \
         ! iguardpublish name=p file-path={} mqtt-url={} topic-prefix=f flush-timeout=60000 \
         ! fakesink sync=false",
        video.display(),
        dets.display(),
        model("tiny-action.onnx"),
        model("tiny-action.labels.txt"),
        log.display(),
        broker.url()
    );
    let (said, v, p) = with_watchdog(Duration::from_secs(600), move || {
        run(&desc, Duration::from_secs(540))
    });
    let events = lines(&log);
    let found: IncidentLog = check_incident_log(&events);
    eprintln!(
        "vtest.avi through iguardpublish: {} incidents, {} alerts, verdicts {:?}; {} verdicts \
         of no open incident",
        found.ended.len(),
        found.alerts,
        found.verdicts,
        found.orphans
    );

    // Nothing pending at EOS: every request answered, every incident ended, and the log holds
    // every change the verifier made, as its stats count them.
    v.assert_adds_up();
    assert_eq!(v.u("pending"), 0, "{}", v.0);
    assert_eq!(v.u("incidents-open"), 0, "{}", v.0);
    assert_eq!(v.u("incidents-opened"), found.ended.len() as u64, "{}", v.0);
    assert_eq!(v.u("incidents-alerted"), found.alerts as u64, "{}", v.0);
    assert_eq!(
        v.u("incidents-dismissed"),
        found
            .ended
            .values()
            .filter(|e| e["state"] == "dismissed")
            .count() as u64,
        "{}",
        v.0
    );
    let verdicts: usize = found.verdicts.values().sum();
    assert_eq!(
        v.u("submitted"),
        verdicts as u64,
        "a verdict event per request"
    );
    assert_eq!(found.orphans, 0, "every clip belongs to an incident");
    assert!(found.ended.len() >= 4, "incidents for several people");
    // The footage's people are seen, and the tiny model passes some of them: both kinds.
    assert!(
        found.verdicts.contains_key("rejected"),
        "{:?}",
        found.verdicts
    );
    assert!(found.alerts >= 1, "{:?}", found.verdicts);
    assert!(
        found.ended.values().any(|e| e["state"] == "dismissed"),
        "some incidents dismissed"
    );
    // One run, its verdicts' and incidents' names alike.
    let runs: std::collections::BTreeSet<&str> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().split('-').next().unwrap())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(events.iter().all(|e| e["element"] == "v"));

    // Every event the verifier sent was published: received = written + dropped + invalid
    // (+ copies of incident changes, of which there are none), nothing queued or spooled.
    assert_eq!(
        u(&p, "received"),
        said.verdicts + said.incident_changes,
        "{p}"
    );
    assert_eq!(
        u(&p, "received"),
        u(&p, "file-written")
            + u(&p, "queue-dropped")
            + u(&p, "invalid")
            + u(&p, "incident-duplicates"),
        "{p}"
    );
    assert_eq!(
        (
            u(&p, "queue-dropped"),
            u(&p, "invalid"),
            u(&p, "incident-duplicates")
        ),
        (0, 0, 0),
        "{p}"
    );
    assert_eq!(u(&p, "file-written"), events.len() as u64, "{p}");
    assert_eq!(u(&p, "incidents"), said.incident_changes, "{p}");
    assert_eq!(u(&p, "queued"), 0, "{p}");
    assert_eq!(u(&p, "mqtt-delivered"), events.len() as u64, "{p}");
    assert_eq!(u(&p, "spool-events"), 0, "{p}");
    assert!(said.warnings.is_empty(), "{:?}", said.warnings);

    // The broker got the log's incidents in order, each alert once on its source's topic, and
    // every active count is back to 0.
    let ids_of = |schema: &str, kind: Option<&str>| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["schema"] == schema && kind.is_none_or(|k| e["type"] == k))
            .map(|e| e["event_id"].as_str().unwrap().to_string())
            .collect()
    };
    let incidents = ids_of("iguard.incident/1", None);
    let alerts = ids_of("iguard.incident/1", Some("alert"));
    sub.wait("every incident change", Duration::from_secs(30), |m| {
        m.iter().filter(|m| m.topic == "f/incidents").count() >= incidents.len()
    });
    std::thread::sleep(Duration::from_millis(300));
    let msgs = sub.messages();
    let on = |topic: &dyn Fn(&str) -> bool| -> Vec<&broker::Received> {
        msgs.iter().filter(|m| topic(&m.topic)).collect()
    };
    let id = |m: &&broker::Received| m.json()["event_id"].as_str().unwrap().to_string();
    let got: Vec<String> = on(&|t| t == "f/incidents").iter().map(id).collect();
    assert_eq!(got, incidents);
    let got: Vec<String> = on(&|t| t.ends_with("/alerts")).iter().map(id).collect();
    assert_eq!(got, alerts);
    let mut last: BTreeMap<&str, String> = BTreeMap::new();
    for m in on(&|t| t.ends_with("/active")) {
        last.insert(m.topic.as_str(), m.text());
    }
    assert!(!last.is_empty());
    assert!(last.values().all(|v| v == "0"), "{last:?}");
    drop(sub);
    std::fs::remove_dir_all(dir).unwrap();
}
