// SPDX-License-Identifier: MIT OR Apache-2.0
//! The output thread (`iguardpub-io`): takes each queued job, reads the event, writes the log
//! and the snapshot, and hands the event to the spool for MQTT and the webhook.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};

use serde_json::{Map, Value};

use super::file::{FileConfig, JsonlFile};
use super::schema::Origin;
use super::snapshots::{SnapshotDir, SnapshotDirConfig};
use super::webhook::WebhookEvents;
use super::{MAX_SNAPSHOT_SOURCES, Notice, Shared, Sink, incidents, intake, schema, wire};
use crate::sync::lock;

pub(super) enum Job {
    Event(
        Map<String, Value>,
        Origin,
        Option<crate::snapshot::Snapshot>,
    ),
    /// An `iguard-verdict` event as it arrived, and when: read ([`wire::read`]) here, on the
    /// output thread, so the streaming thread only queues a reference (reading it there cost
    /// 5-7 µs a verdict warm, 30-40 µs cold; see NOTES-pubbench.md).
    Verdict(gst::Event, i64),
    /// An `iguard-incident` event as it arrived, and when; read on the output thread too.
    Incident(gst::Event, i64),
    /// Answered once every job before it is done.
    Barrier(SyncSender<()>),
}

/// What the output thread does with each event.
pub(super) struct Route {
    pub(super) file: Option<FileConfig>,
    pub(super) mqtt: bool,
    /// Which events the webhook gets; `None` without a webhook.
    pub(super) webhook_events: Option<WebhookEvents>,
    pub(super) snapshot_dir: Option<SnapshotDirConfig>,
    /// The verdicts' JPEGs are wanted (a snapshot folder or MQTT is configured).
    pub(super) want_jpeg: bool,
    /// The publisher's run id, for incidents whose verifier names none.
    pub(super) run_id: String,
}

pub(super) fn dispatch(shared: Arc<Shared>, rx: Receiver<Job>, route: Route) {
    let Route {
        file,
        mqtt,
        webhook_events,
        snapshot_dir,
        want_jpeg,
        run_id,
    } = route;
    let webhook = webhook_events.is_some();
    let mut tracker = incidents::Tracker::default();
    let mut file = file.map(JsonlFile::new);
    let mut snapshot_dir = snapshot_dir.and_then(|c| match SnapshotDir::open(c) {
        Ok(d) => Some(d),
        Err(reason) => {
            (shared.notice)(Notice::Warning {
                sink: Sink::SnapshotDir,
                reason: format!("{reason}: snapshots are not written"),
            });
            None
        }
    });
    let mut file_up = true;
    let mut snapshot_dir_up = true;
    // The spools' folder problems: one warning per outage, `up` when it works again.
    let spooled = |r: Result<Option<String>, String>| match r {
        Ok(None) => {}
        Ok(Some(detail)) => (shared.notice)(Notice::Up {
            sink: Sink::Spool,
            detail,
        }),
        Err(reason) => (shared.notice)(Notice::Warning {
            sink: Sink::Spool,
            reason,
        }),
    };
    // A batch ends when the queue runs empty: the spools' appends are synced then (and by the
    // spool itself every `SYNC_EVERY` appends while the queue stays busy).
    let sync = || {
        for (on, spool) in [(mqtt, &shared.spool), (webhook, &shared.webhook_spool)] {
            if on && let Err(reason) = lock(spool).sync() {
                spooled(Err(reason));
            }
        }
    };
    loop {
        let job = match rx.try_recv() {
            Ok(job) => job,
            Err(TryRecvError::Empty) => {
                sync();
                match rx.recv() {
                    Ok(job) => job,
                    Err(_) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        let (event, jpeg) = match job {
            Job::Barrier(done) => {
                if let Some(f) = file.as_mut() {
                    let _ = f.flush();
                }
                sync();
                let _ = done.try_send(());
                continue;
            }
            Job::Event(f, o, j) => match intake::verdict_event(&shared, f, &o) {
                Some(e) => (e, j),
                None => continue,
            },
            Job::Verdict(ev, received_us) => {
                let Some(s) = wire::verdict_structure(&ev) else {
                    // `submit_verdict` is only given verdict events.
                    shared.counters.invalid.fetch_add(1, Ordering::Relaxed);
                    shared.counters.processed.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let (fields, mut origin) = wire::read(s, &shared.name);
                if !s.has_field(wire::UNIX_US) {
                    // Without the verifier's time, the time it reached the element.
                    origin.unix_us = received_us;
                }
                match intake::verdict_event(&shared, fields, &origin) {
                    // The bytes are copied only when something wants them.
                    Some(e) => (e, want_jpeg.then(|| wire::snapshot(s)).flatten()),
                    None => continue,
                }
            }
            Job::Incident(ev, received_us) => {
                let want = snapshot_dir.is_some();
                match intake::incident_event(&shared, &mut tracker, &ev, received_us, &run_id, want)
                {
                    Some(e) => e,
                    None => continue,
                }
            }
        };
        let c = &shared.counters;
        let mut event = event;
        if let (Some(dir), Some(jpeg)) = (snapshot_dir.as_mut(), jpeg.as_ref()) {
            // Written before the event, so a consumer that reads `snapshot.file` finds it.
            match dir.write(&event.event_id, jpeg) {
                Ok(name) => {
                    c.snapshots_written.fetch_add(1, Ordering::Relaxed);
                    if let Some(Value::Object(o)) = event.body_mut().get_mut("snapshot") {
                        o.insert("file".into(), name.into());
                    }
                    if !snapshot_dir_up {
                        snapshot_dir_up = true;
                        (shared.notice)(Notice::Up {
                            sink: Sink::SnapshotDir,
                            detail: format!("writing snapshots to {} again", dir.dir().display()),
                        });
                    }
                }
                Err(e) => {
                    c.snapshots_failed.fetch_add(1, Ordering::Relaxed);
                    // A failing folder is one outage, warned once; a refused snapshot (too big
                    // for the folder's bound) is about that snapshot alone.
                    if !e.io {
                        (shared.notice)(Notice::Warning {
                            sink: Sink::SnapshotDir,
                            reason: e.reason,
                        });
                    } else if snapshot_dir_up {
                        snapshot_dir_up = false;
                        (shared.notice)(Notice::Down {
                            sink: Sink::SnapshotDir,
                            reason: e.reason,
                        });
                    }
                }
            }
        }
        if let Some(f) = file.as_mut() {
            match f.write_line(&event.render(false, schema::now_us())) {
                Ok(()) => {
                    c.file_written.fetch_add(1, Ordering::Relaxed);
                    if !file_up {
                        file_up = true;
                        (shared.notice)(Notice::Up {
                            sink: Sink::File,
                            detail: format!("writing {} again", f.path().display()),
                        });
                    }
                }
                Err(e) => {
                    c.file_failed.fetch_add(1, Ordering::Relaxed);
                    if file_up {
                        file_up = false;
                        (shared.notice)(Notice::Down {
                            sink: Sink::File,
                            reason: format!("cannot write {}: {e}", f.path().display()),
                        });
                    }
                }
            }
        }
        if webhook_events.is_some_and(|w| w.wants(&event)) {
            let r = lock(&shared.webhook_spool).push(event.clone());
            shared.webhook_wake.notify_one();
            spooled(r);
        }
        // An incident's snapshot is one of its verdicts': that one already went to MQTT.
        if mqtt
            && !event.incident
            && let Some(jpeg) = jpeg
        {
            let mut pending = lock(&shared.snapshots);
            if pending.len() < MAX_SNAPSHOT_SOURCES || pending.contains_key(&event.source) {
                pending.insert(event.source.clone(), jpeg);
            } else {
                c.snapshots_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        if mqtt {
            let r = lock(&shared.spool).push(event);
            spooled(r);
            shared.wake.notify_one();
        }
        c.processed.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(f) = file.as_mut() {
        let _ = f.flush();
    }
}
