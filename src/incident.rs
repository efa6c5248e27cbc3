// SPDX-License-Identifier: MIT OR Apache-2.0
//! Incidents: one record per tracked object (or, with `clip-per=source`, per period of a
//! source's activity) that gathers the verdicts of all its clips. A guard gets one alert per
//! intruder instead of one per clip.
//!
//! This module owns the record and how it travels: as the `iguard-incident` bus message and
//! the custom downstream event of the same name, one per change ([`Change`]). It knows nothing
//! of the element that keeps incidents (`iguardverify`) nor of the publishers.

use std::fmt;

use crate::snapshot::Snapshot;
use crate::verdict::{Status, Verdict};

/// The name of the bus message's and the downstream event's structure.
pub const EVENT_NAME: &str = "iguard-incident";

/// Field names of the structure. `iguardverify` adds where each change comes from, as it
/// does to its verdict events: `run-id` (its run, the one its verdicts carry), `element` (its
/// name) and `unix-us` (when the change happened), see [`crate::publish::wire::stamp`].
pub mod fields {
    /// `gchararray`: `new`, `update`, `alert` or `end` ([`super::Change`]).
    pub const CHANGE: &str = "type";
    /// `guint64`: unique within one element's run, counting from 1.
    pub const INCIDENT_ID: &str = "incident-id";
    /// `guint`: this event's number within its incident, from 1 (`new`) up; with `run-id`
    /// and `incident-id` it names the event once (publishers de-duplicate on it).
    pub const REVISION: &str = "revision";
    pub const SOURCE_ID: &str = "source-id";
    pub const PAD_INDEX: &str = "pad-index";
    /// `guint64`: the tracked object's id, `G_MAXUINT64` with `clip-per=source`.
    pub const OBJECT_ID: &str = "object-id";
    pub const TRIGGER_LABEL: &str = "trigger-label";
    /// `gchararray`: `pending`, `alert` or `dismissed` ([`super::State`]).
    pub const STATE: &str = "state";
    /// `gchararray`: why it ended ([`super::EndReason`]); empty while open.
    pub const END_REASON: &str = "end-reason";
    /// `guint64` each: stream times (PTS) of the first and last clip frames; `G_MAXUINT64`
    /// when unknown.
    pub const START_PTS: &str = "start-pts";
    pub const END_PTS: &str = "end-pts";
    /// `gint64` each: wall-clock microseconds since the Unix epoch; `end-unix-us` is 0 while
    /// open.
    pub const START_UNIX_US: &str = "start-unix-us";
    pub const END_UNIX_US: &str = "end-unix-us";
    /// `guint` each.
    pub const CLIPS: &str = "clips";
    pub const CLIPS_VERIFIED: &str = "clips-verified";
    pub const CLIPS_REJECTED: &str = "clips-rejected";
    pub const CLIPS_UNSCORED: &str = "clips-unscored";
    /// `gdouble`: the best score of its scored clips; NaN when none was scored.
    pub const BEST_SCORE: &str = "best-score";
    pub const BEST_LABEL: &str = "best-label";
    /// `guint` each: the latest box, in frame pixels (all 0 when unknown).
    pub const BOX_X: &str = "box-x";
    pub const BOX_Y: &str = "box-y";
    pub const BOX_WIDTH: &str = "box-width";
    pub const BOX_HEIGHT: &str = "box-height";
    /// `gchararray`: the zones the object entered, in order of entry, comma-separated.
    pub const ZONES: &str = "zones";
    /// `GstBuffer` (`image/jpeg`): the best clip's snapshot, when snapshots are on.
    pub const SNAPSHOT: &str = "snapshot";
}

/// What happened to an incident; one event each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// Its first clip started.
    New,
    /// One of its clips got a verdict (and it did not just become an alert).
    Update,
    /// It became an alert: `alert-after` of its clips were verified. Once per incident.
    Alert,
    /// It ended. Once per incident, always the last.
    End,
}

impl Change {
    pub const ALL: [Change; 4] = [Change::New, Change::Update, Change::Alert, Change::End];

    pub fn as_str(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Update => "update",
            Change::Alert => "alert",
            Change::End => "end",
        }
    }

    pub fn parse(s: &str) -> Option<Change> {
        Change::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Where an incident stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Open and not (yet) an alert.
    Pending,
    /// Became an alert (it stays one after it ends).
    Alert,
    /// Ended without becoming an alert: Stage 2 removed a false alarm.
    Dismissed,
}

impl State {
    pub const ALL: [State; 3] = [State::Pending, State::Alert, State::Dismissed];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Alert => "alert",
            State::Dismissed => "dismissed",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Why an incident ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// Its object was lost (`track-timeout`), or with `clip-per=source` the source went quiet.
    Lost,
    /// `incident-timeout` passed without a new clip.
    Timeout,
    /// Its source ended (a per-stream EOS).
    SourceEos,
    /// The stream ended.
    Eos,
    /// The pipeline was flushed (a seek).
    Flush,
    /// The element stopped.
    Stop,
}

impl EndReason {
    pub const ALL: [EndReason; 6] = [
        EndReason::Lost,
        EndReason::Timeout,
        EndReason::SourceEos,
        EndReason::Eos,
        EndReason::Flush,
        EndReason::Stop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Lost => "lost",
            EndReason::Timeout => "timeout",
            EndReason::SourceEos => "source-eos",
            EndReason::Eos => "eos",
            EndReason::Flush => "flush",
            EndReason::Stop => "stop",
        }
    }

    pub fn parse(s: &str) -> Option<EndReason> {
        EndReason::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A box in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PixelBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// One incident as it stands after its latest change.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub incident_id: u64,
    /// The number of the latest change sent (0 before the first); the keeper raises it by one
    /// before each change it sends.
    pub revision: u32,
    pub source_id: u32,
    pub pad_index: u32,
    pub object_id: Option<u64>,
    pub trigger_label: String,
    pub state: State,
    pub end_reason: Option<EndReason>,
    pub start_pts: Option<u64>,
    pub end_pts: Option<u64>,
    pub start_unix_us: i64,
    /// 0 while open.
    pub end_unix_us: i64,
    pub clips: u32,
    pub clips_verified: u32,
    pub clips_rejected: u32,
    pub clips_unscored: u32,
    /// NaN when no clip was scored.
    pub best_score: f64,
    pub best_label: String,
    pub last_box: Option<PixelBox>,
    /// Zones entered, in order of entry, each once.
    pub zones: Vec<String>,
    pub snapshot: Option<Snapshot>,
}

impl Incident {
    /// A new, pending incident with no clip counted yet.
    pub fn open(
        incident_id: u64,
        source_id: u32,
        pad_index: u32,
        object_id: Option<u64>,
        trigger_label: &str,
        start_pts: Option<u64>,
        start_unix_us: i64,
    ) -> Incident {
        Incident {
            incident_id,
            revision: 0,
            source_id,
            pad_index,
            object_id,
            trigger_label: trigger_label.to_string(),
            state: State::Pending,
            end_reason: None,
            start_pts,
            end_pts: None,
            start_unix_us,
            end_unix_us: 0,
            clips: 0,
            clips_verified: 0,
            clips_rejected: 0,
            clips_unscored: 0,
            best_score: f64::NAN,
            best_label: String::new(),
            last_box: None,
            zones: Vec::new(),
            snapshot: None,
        }
    }

    pub fn is_open(&self) -> bool {
        self.end_reason.is_none()
    }

    /// Counts a clip's verdict: verified, rejected, or unscored (fallback, timeout, dropped,
    /// error). A `fallback` verdict is a label guess and never counts as verified. The best
    /// score (and its snapshot) is kept. Returns whether this verdict was verified.
    pub fn count_verdict(&mut self, v: &Verdict) -> bool {
        match v.status {
            Status::Verified => self.clips_verified += 1,
            Status::Rejected => self.clips_rejected += 1,
            _ => self.clips_unscored += 1,
        }
        if matches!(v.status, Status::Verified | Status::Rejected)
            && v.score.is_finite()
            && (self.best_score.is_nan() || v.score > self.best_score)
        {
            self.best_score = v.score;
            self.best_label = v.label.clone();
            if v.snapshot.is_some() {
                self.snapshot = v.snapshot.clone();
            }
        }
        if let Some(end) = v.clip_end_pts {
            self.end_pts = Some(self.end_pts.map_or(end, |e| e.max(end)));
        }
        v.status == Status::Verified
    }

    /// Adds a zone to those entered, once, keeping the order of entry.
    pub fn enter_zone(&mut self, name: &str) -> bool {
        if self.zones.iter().any(|z| z == name) {
            return false;
        }
        self.zones.push(name.to_string());
        true
    }

    /// Ends the incident: an alert stays one, anything else is dismissed.
    pub fn end(&mut self, reason: EndReason, end_unix_us: i64) {
        if !self.is_open() {
            return;
        }
        self.end_reason = Some(reason);
        self.end_unix_us = end_unix_us;
        if self.state == State::Pending {
            self.state = State::Dismissed;
        }
    }

    /// The structure describing this incident after `change`.
    pub fn to_structure(&self, change: Change) -> gst::Structure {
        use fields::*;
        let b = self.last_box.unwrap_or_default();
        let mut s = gst::Structure::builder(EVENT_NAME)
            .field(CHANGE, change.as_str())
            .field(INCIDENT_ID, self.incident_id)
            .field(REVISION, self.revision)
            .field(SOURCE_ID, self.source_id)
            .field(PAD_INDEX, self.pad_index)
            .field(OBJECT_ID, self.object_id.unwrap_or(u64::MAX))
            .field(TRIGGER_LABEL, self.trigger_label.as_str())
            .field(STATE, self.state.as_str())
            .field(END_REASON, self.end_reason.map_or("", EndReason::as_str))
            .field(START_PTS, self.start_pts.unwrap_or(u64::MAX))
            .field(END_PTS, self.end_pts.unwrap_or(u64::MAX))
            .field(START_UNIX_US, self.start_unix_us)
            .field(END_UNIX_US, self.end_unix_us)
            .field(CLIPS, self.clips)
            .field(CLIPS_VERIFIED, self.clips_verified)
            .field(CLIPS_REJECTED, self.clips_rejected)
            .field(CLIPS_UNSCORED, self.clips_unscored)
            .field(BEST_SCORE, self.best_score)
            .field(BEST_LABEL, self.best_label.as_str())
            .field(BOX_X, b.x)
            .field(BOX_Y, b.y)
            .field(BOX_WIDTH, b.width)
            .field(BOX_HEIGHT, b.height)
            .field(ZONES, self.zones.join(","))
            .build();
        if let Some(jpeg) = &self.snapshot {
            s.set(SNAPSHOT, gst::Buffer::from_slice(SharedJpeg(jpeg.clone())));
        }
        s
    }

    /// The custom serialized downstream event carrying this incident after `change`.
    pub fn to_event(&self, change: Change) -> gst::Event {
        gst::event::CustomDownstream::new(self.to_structure(change))
    }

    /// Reads an incident and its change back from a structure (message or event); the error
    /// names the field.
    pub fn from_structure(s: &gst::StructureRef) -> Result<(Change, Incident), String> {
        use fields::*;
        fn get<'a, T: gst::glib::value::FromValue<'a> + 'static>(
            s: &'a gst::StructureRef,
            f: &str,
        ) -> Result<T, String> {
            s.get::<T>(f).map_err(|e| format!("field {f}: {e}"))
        }
        if s.name() != EVENT_NAME {
            return Err(format!(
                "structure {:?} is not {EVENT_NAME}",
                s.name().as_str()
            ));
        }
        let change_str: String = get(s, CHANGE)?;
        let change =
            Change::parse(&change_str).ok_or_else(|| format!("unknown type {change_str:?}"))?;
        let state_str: String = get(s, STATE)?;
        let state =
            State::parse(&state_str).ok_or_else(|| format!("unknown state {state_str:?}"))?;
        let reason_str: String = get(s, END_REASON)?;
        let end_reason = if reason_str.is_empty() {
            None
        } else {
            Some(
                EndReason::parse(&reason_str)
                    .ok_or_else(|| format!("unknown end-reason {reason_str:?}"))?,
            )
        };
        let pts = |f: &str| -> Result<Option<u64>, String> {
            let v: u64 = get(s, f)?;
            Ok((v != u64::MAX).then_some(v))
        };
        let b = PixelBox {
            x: get(s, BOX_X)?,
            y: get(s, BOX_Y)?,
            width: get(s, BOX_WIDTH)?,
            height: get(s, BOX_HEIGHT)?,
        };
        let zones: String = get(s, ZONES)?;
        let object_id: u64 = get(s, OBJECT_ID)?;
        let incident = Incident {
            incident_id: get(s, INCIDENT_ID)?,
            revision: get(s, REVISION)?,
            source_id: get(s, SOURCE_ID)?,
            pad_index: get(s, PAD_INDEX)?,
            object_id: (object_id != u64::MAX).then_some(object_id),
            trigger_label: get(s, TRIGGER_LABEL)?,
            state,
            end_reason,
            start_pts: pts(START_PTS)?,
            end_pts: pts(END_PTS)?,
            start_unix_us: get(s, START_UNIX_US)?,
            end_unix_us: get(s, END_UNIX_US)?,
            clips: get(s, CLIPS)?,
            clips_verified: get(s, CLIPS_VERIFIED)?,
            clips_rejected: get(s, CLIPS_REJECTED)?,
            clips_unscored: get(s, CLIPS_UNSCORED)?,
            best_score: get(s, BEST_SCORE)?,
            best_label: get(s, BEST_LABEL)?,
            last_box: (b.width > 0 && b.height > 0).then_some(b),
            zones: zones
                .split(',')
                .filter(|z| !z.is_empty())
                .map(str::to_string)
                .collect(),
            snapshot: crate::meta::snapshot(s),
        };
        Ok((change, incident))
    }
}

/// The incident structure of `event`, when it is one of ours.
pub fn event_structure(event: &gst::EventRef) -> Option<&gst::StructureRef> {
    if event.type_() != gst::EventType::CustomDownstream {
        return None;
    }
    event.structure().filter(|s| s.name() == EVENT_NAME)
}

/// A snapshot's bytes as a buffer's memory, without a copy.
struct SharedJpeg(Snapshot);

impl AsRef<[u8]> for SharedJpeg {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn verdict(status: Status, score: f64) -> Verdict {
        Verdict {
            request_id: 1,
            source_id: 2,
            pad_index: 0,
            status,
            score,
            threshold: 0.7,
            label: if status.is_scored() {
                "person".into()
            } else {
                String::new()
            },
            trigger_label: "person".into(),
            trigger_confidence: 0.9,
            clip_start_pts: Some(1_000),
            clip_end_pts: Some(2_000),
            frames: 16,
            queue_ms: 0.0,
            processing_ms: 1.0,
            scorer: "onnx".into(),
            reason: String::new(),
            object_id: Some(7),
            crop: None,
            snapshot: None,
            zones: Vec::new(),
        }
    }

    #[test]
    fn verdicts_are_counted_and_a_label_guess_is_never_verified() {
        gst::init().unwrap();
        let mut i = Incident::open(1, 2, 0, Some(7), "person", Some(1_000), 5);
        assert!(!i.count_verdict(&verdict(Status::Rejected, 0.2)));
        assert!(!i.count_verdict(&verdict(Status::Fallback, 0.9)));
        assert!(!i.count_verdict(&verdict(Status::Dropped, f64::NAN)));
        assert!(i.count_verdict(&verdict(Status::Verified, 0.8)));
        assert_eq!(
            (i.clips_verified, i.clips_rejected, i.clips_unscored),
            (1, 1, 2)
        );
        assert_eq!(
            i.best_score, 0.8,
            "the fallback's 0.9 is a guess, not a score"
        );
        assert_eq!(i.end_pts, Some(2_000));
    }

    #[test]
    fn an_incident_that_ends_pending_is_dismissed_and_an_alert_stays_one() {
        let mut dismissed = Incident::open(1, 0, 0, None, "person", None, 0);
        dismissed.end(EndReason::Lost, 10);
        assert_eq!(dismissed.state, State::Dismissed);
        dismissed.end(EndReason::Eos, 20);
        assert_eq!(
            (dismissed.end_reason, dismissed.end_unix_us),
            (Some(EndReason::Lost), 10),
            "an incident ends once"
        );
        let mut alert = Incident::open(2, 0, 0, None, "person", None, 0);
        alert.state = State::Alert;
        alert.end(EndReason::Flush, 10);
        assert_eq!(alert.state, State::Alert);
    }

    #[test]
    fn an_incident_reads_back_from_its_structure_as_itself() {
        gst::init().unwrap();
        let mut i = Incident::open(41, 3, 1, Some(9), "person", Some(5_000), 1_700);
        i.revision = 4;
        let mut v = verdict(Status::Verified, 0.93);
        v.snapshot = Some(Arc::new(vec![0xff, 0xd8, 1, 2]));
        i.clips = 1;
        i.count_verdict(&v);
        i.state = State::Alert;
        i.last_box = Some(PixelBox {
            x: 10,
            y: 20,
            width: 30,
            height: 40,
        });
        i.enter_zone("lawn");
        i.enter_zone("door");
        assert!(!i.enter_zone("lawn"));
        i.end(EndReason::SourceEos, 9_000);
        let s = i.to_structure(Change::End);
        assert_eq!(s.name(), EVENT_NAME);
        assert_eq!(s.get::<&str>(fields::ZONES).unwrap(), "lawn,door");
        let (change, back) = Incident::from_structure(&s).unwrap();
        assert_eq!(change, Change::End);
        assert_eq!(back, i);

        // Open, unscored, no object: the optional fields read back as absent.
        let open = Incident::open(1, 0, 0, None, "gun", None, 0);
        let (change, back) = Incident::from_structure(&open.to_structure(Change::New)).unwrap();
        assert_eq!(change, Change::New);
        assert!(back.best_score.is_nan() && back.object_id.is_none() && back.is_open());
        assert!(back.zones.is_empty() && back.last_box.is_none() && back.start_pts.is_none());

        let event = i.to_event(Change::Alert);
        assert!(event_structure(&event).is_some());
        let mut bad = s.clone();
        bad.set(fields::STATE, "maybe");
        assert!(
            Incident::from_structure(&bad)
                .unwrap_err()
                .contains("\"maybe\"")
        );
    }
}
