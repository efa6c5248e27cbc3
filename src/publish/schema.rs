// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `iguard.verdict/1` event: one JSON object per verdict, the same for the event log, MQTT
//! and later outputs.
//!
//! Every verdict field is there under its name in snake_case (the structure's `request-id` is
//! `request_id`), so a field added to the verdict reaches consumers without a schema change.
//! Around them: `event_id` (the verifier's random per-start run id and the request id, unique
//! across restarts so consumers can drop duplicates), `source`, RFC 3339 and Unix times of the
//! verdict, the verifying and publishing elements, and `replayed`/`age_ms`, set when the event
//! is written or sent.

use serde_json::{Map, Value};

/// The schema of a verdict event.
pub const VERDICT_SCHEMA: &str = "iguard.verdict/1";
/// The schema of a gap event: events the spool had to drop.
pub const GAP_SCHEMA: &str = "iguard.gap/1";
/// The schema of an incident event: one per change of an incident (see
/// [`super::incidents`]).
pub const INCIDENT_SCHEMA: &str = "iguard.incident/1";

/// Where a verdict came from, beyond its own fields.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The verifying element's random id for its current run (hex).
    pub run_id: String,
    /// The verifying element's name.
    pub element: String,
    /// The publishing element's name.
    pub publisher: String,
    /// When the verdict was produced, in microseconds since the Unix epoch.
    pub unix_us: i64,
}

/// A verdict event, ready to render.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: String,
    /// The camera/source the verdict is about, safe as an MQTT topic level.
    pub source: String,
    /// A verdict's status; an incident event's `type` (`new`, `update`, `alert`, `end`).
    pub status: String,
    /// Whether this is a gap event rather than a verdict.
    pub gap: bool,
    /// Whether this is an incident event (`iguard.incident/1`) rather than a verdict.
    pub incident: bool,
    pub unix_us: i64,
    /// The whole object, with `replayed: false` and `age_ms: 0`.
    body: Map<String, Value>,
}

/// Makes `name` a single MQTT topic level: no separators or wildcards, never empty.
pub fn topic_level(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| match c {
            '/' | '+' | '#' | '\0' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    if s.is_empty() { "_".into() } else { s }
}

/// `kebab-case` → `snake_case`.
pub fn snake_case(name: &str) -> String {
    name.replace('-', "_")
}

/// Formats microseconds since the Unix epoch as RFC 3339 UTC with microseconds.
pub fn rfc3339(unix_us: i64) -> String {
    let secs = unix_us.div_euclid(1_000_000);
    let micros = unix_us.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian; H. Hinnant's method).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    )
}

/// Now, in microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// The object box, when the verdict carries one as `<p>_x/_y/_width/_height` fields.
fn object_box(fields: &Map<String, Value>) -> Option<Value> {
    ["box", "bbox", "object_box", "crop"].iter().find_map(|p| {
        let get = |k: &str| fields.get(&format!("{p}_{k}")).and_then(number);
        Some(serde_json::json!({
            "x": get("x")?,
            "y": get("y")?,
            "width": get("width")?,
            "height": get("height")?,
        }))
    })
}

/// The `zones` field (a comma-separated string in the structure) as a JSON array of names;
/// left as it is when it is not a string (absent: an older producer).
fn zones_as_array(body: &mut Map<String, Value>) {
    if let Some(Value::String(list)) = body.get("zones") {
        let names: Vec<Value> = list
            .split(',')
            .map(str::trim)
            .filter(|z| !z.is_empty())
            .map(|z| Value::String(z.to_string()))
            .collect();
        body.insert("zones".into(), Value::Array(names));
    }
}

/// The fields every event starts with, in this order.
fn envelope(schema: &str, event_id: &str, source: &str, origin: &Origin) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("schema".into(), schema.into());
    body.insert("event_id".into(), event_id.into());
    body.insert("time".into(), rfc3339(origin.unix_us).into());
    body.insert("unix_ms".into(), (origin.unix_us / 1000).into());
    body.insert("source".into(), source.into());
    body.insert("element".into(), origin.element.clone().into());
    body.insert("publisher".into(), origin.publisher.clone().into());
    body.insert("replayed".into(), false.into());
    body.insert("age_ms".into(), 0.into());
    body
}

impl Event {
    /// Builds the event from a verdict's fields (already snake_case, `null` for values that do
    /// not exist such as a missing PTS) and where it came from.
    pub fn from_fields(fields: Map<String, Value>, origin: &Origin) -> Result<Event, String> {
        let request_id = fields
            .get("request_id")
            .and_then(Value::as_u64)
            .ok_or("the verdict has no request_id")?;
        let status = fields
            .get("status")
            .and_then(Value::as_str)
            .ok_or("the verdict has no status")?
            .to_string();
        let source = match fields.get("source_name").and_then(Value::as_str) {
            Some(name) if !name.is_empty() => topic_level(name),
            _ => match fields.get("source_id").and_then(Value::as_u64) {
                Some(id) => id.to_string(),
                None => return Err("the verdict has no source_id".into()),
            },
        };
        let run = if origin.run_id.is_empty() {
            "0"
        } else {
            &origin.run_id
        };
        let event_id = format!("{run}-{request_id}");

        let mut body = envelope(VERDICT_SCHEMA, &event_id, &source, origin);
        if let Some(b) = object_box(&fields) {
            body.insert("box".into(), b);
        }
        for (k, v) in fields {
            body.entry(k).or_insert(v);
        }
        zones_as_array(&mut body);
        Ok(Event {
            event_id,
            source,
            status,
            gap: false,
            incident: false,
            unix_us: origin.unix_us,
            body,
        })
    }

    /// An incident event from its fields (snake_case, as [`Event::from_fields`] takes a
    /// verdict's): `event_id` is `<run>-incident-<incident_id>-<revision>`, so each change of
    /// an incident is named once and a copy of one can be dropped by it.
    pub fn from_incident(fields: Map<String, Value>, origin: &Origin) -> Result<Event, String> {
        let number = |k: &str| {
            fields
                .get(k)
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("the incident has no {k}"))
        };
        let (incident_id, revision) = (number("incident_id")?, number("revision")?);
        let change = fields
            .get("type")
            .and_then(Value::as_str)
            .ok_or("the incident has no type")?
            .to_string();
        let source = match fields.get("source_name").and_then(Value::as_str) {
            Some(name) if !name.is_empty() => topic_level(name),
            _ => number("source_id")?.to_string(),
        };
        let run = if origin.run_id.is_empty() {
            "0"
        } else {
            &origin.run_id
        };
        let event_id = format!("{run}-incident-{incident_id}-{revision}");
        let mut body = envelope(INCIDENT_SCHEMA, &event_id, &source, origin);
        body.insert("type".into(), change.clone().into());
        if let Some(b) = fields.get("box") {
            body.insert("box".into(), b.clone());
        }
        for (k, v) in fields {
            body.entry(k).or_insert(v);
        }
        zones_as_array(&mut body);
        Ok(Event {
            event_id,
            source,
            status: change,
            gap: false,
            incident: true,
            unix_us: origin.unix_us,
            body,
        })
    }

    /// A gap event: `dropped` events between `first_us` and `last_us` were lost.
    pub fn gap(
        event_id: String,
        dropped: u64,
        first_us: i64,
        last_us: i64,
        publisher: &str,
        now: i64,
    ) -> Event {
        let mut body = Map::new();
        body.insert("schema".into(), GAP_SCHEMA.into());
        body.insert("event_id".into(), event_id.clone().into());
        body.insert("time".into(), rfc3339(now).into());
        body.insert("unix_ms".into(), (now / 1000).into());
        body.insert("publisher".into(), publisher.into());
        body.insert("dropped".into(), dropped.into());
        body.insert("first_dropped_time".into(), rfc3339(first_us).into());
        body.insert("last_dropped_time".into(), rfc3339(last_us).into());
        body.insert("replayed".into(), false.into());
        body.insert("age_ms".into(), 0.into());
        Event {
            event_id,
            source: String::new(),
            status: String::new(),
            gap: true,
            incident: false,
            unix_us: now,
            body,
        }
    }

    /// Reads an event back from its JSON (a spool line).
    pub fn from_json(line: &str) -> Result<Event, String> {
        let body: Map<String, Value> =
            serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
        let s = |k: &str| body.get(k).and_then(Value::as_str).map(String::from);
        let gap = s("schema").as_deref() == Some(GAP_SCHEMA);
        let incident = s("schema").as_deref() == Some(INCIDENT_SCHEMA);
        if !gap && !incident && s("schema").as_deref() != Some(VERDICT_SCHEMA) {
            return Err(format!("unknown schema {:?}", body.get("schema")));
        }
        let event_id = s("event_id").ok_or("no event_id")?;
        let unix_ms = body
            .get("unix_ms")
            .and_then(Value::as_i64)
            .ok_or("no unix_ms")?;
        Ok(Event {
            event_id,
            source: s("source").unwrap_or_default(),
            status: if incident {
                s("type").unwrap_or_default()
            } else {
                s("status").unwrap_or_default()
            },
            gap,
            incident,
            // A stored line is input: a huge value saturates rather than overflow.
            unix_us: unix_ms.saturating_mul(1000),
            body,
        })
    }

    pub fn is_verified(&self) -> bool {
        !self.incident && self.status == "verified"
    }

    /// Whether this is the incident event of an incident becoming an alert.
    pub fn is_alert(&self) -> bool {
        self.incident && self.status == "alert"
    }

    /// How old the event is at `now_us`, in milliseconds (never negative).
    pub fn age_ms(&self, now_us: i64) -> i64 {
        (now_us.saturating_sub(self.unix_us) / 1000).max(0)
    }

    pub fn body(&self) -> &Map<String, Value> {
        &self.body
    }

    pub(crate) fn body_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.body
    }

    /// The JSON text sent or written at `now_us`; `replayed` for events sent late (after an
    /// outage, or from a previous run's spool).
    pub fn render(&self, replayed: bool, now_us: i64) -> String {
        let mut body = self.body.clone();
        body.insert("replayed".into(), replayed.into());
        body.insert("age_ms".into(), self.age_ms(now_us).into());
        Value::Object(body).to_string()
    }

    /// The JSON text as stored in a spool segment (not yet sent).
    pub fn stored(&self) -> String {
        Value::Object(self.body.clone()).to_string()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub fn fields(request_id: u64, source_id: u32, status: &str) -> Map<String, Value> {
        let v = json!({
            "request_id": request_id, "source_id": source_id, "pad_index": 0,
            "status": status, "score": 0.9, "threshold": 0.7, "positive": status == "verified",
            "label": "weapon", "trigger_label": "person", "trigger_confidence": 0.8,
            "clip_start_pts": 0, "clip_end_pts": null, "frames": 16, "queue_ms": 1.0,
            "processing_ms": 2.0, "scorer": "fallback", "reason": "",
        });
        v.as_object().unwrap().clone()
    }

    pub fn origin() -> Origin {
        Origin {
            run_id: "00c0ffee".into(),
            element: "verify0".into(),
            publisher: "publish0".into(),
            unix_us: 1_764_581_400_123_456,
        }
    }

    #[test]
    fn rfc3339_matches_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(951_782_400_000_001), "2000-02-29T00:00:00.000001Z");
        assert_eq!(
            rfc3339(1_764_581_400_123_456),
            "2025-12-01T09:30:00.123456Z"
        );
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn event_carries_every_field_and_the_envelope() {
        let e = Event::from_fields(fields(7, 3, "verified"), &origin()).unwrap();
        assert_eq!(e.event_id, "00c0ffee-7");
        assert_eq!(e.source, "3");
        assert!(e.is_verified());
        let v: Value =
            serde_json::from_str(&e.render(false, origin().unix_us + 2_500_000)).unwrap();
        assert_eq!(v["schema"], VERDICT_SCHEMA);
        assert_eq!(v["time"], "2025-12-01T09:30:00.123456Z");
        assert_eq!(v["unix_ms"], 1_764_581_400_123i64);
        assert_eq!(v["element"], "verify0");
        assert_eq!(v["publisher"], "publish0");
        assert_eq!(v["replayed"], false);
        assert_eq!(v["age_ms"], 2500);
        for (k, val) in fields(7, 3, "verified") {
            assert_eq!(v[&k], val, "field {k}");
        }
        assert!(v.get("box").is_none());
        // The envelope comes first, in a fixed order.
        let keys: Vec<_> = v.as_object().unwrap().keys().take(3).cloned().collect();
        assert_eq!(keys, ["schema", "event_id", "time"]);
    }

    #[test]
    fn box_and_source_name_when_present() {
        let mut f = fields(1, 0, "rejected");
        f.insert("object_id".into(), 12.into());
        for (k, x) in [("x", 0.1), ("y", 0.2), ("width", 0.3), ("height", 0.4)] {
            f.insert(format!("box_{k}"), x.into());
        }
        f.insert("source_name".into(), "front/door#1".into());
        let e = Event::from_fields(f, &origin()).unwrap();
        assert_eq!(e.source, "front_door_1");
        let v: Value = serde_json::from_str(&e.render(true, 0)).unwrap();
        assert_eq!(v["object_id"], 12);
        assert_eq!(v["box"]["width"], 0.3);
        assert_eq!(v["replayed"], true);
        assert_eq!(v["age_ms"], 0, "never negative");
    }

    #[test]
    fn a_verdicts_zones_are_an_array_and_absent_from_older_producers() {
        let mut f = fields(1, 0, "verified");
        f.insert("zones".into(), "lawn,door".into());
        let v = Event::from_fields(f, &origin()).unwrap();
        assert_eq!(v.body()["zones"], json!(["lawn", "door"]));
        let mut f = fields(2, 0, "verified");
        f.insert("zones".into(), "".into());
        let v = Event::from_fields(f, &origin()).unwrap();
        assert_eq!(
            v.body()["zones"],
            json!([]),
            "present and empty: none entered"
        );
        let v = Event::from_fields(fields(3, 0, "verified"), &origin()).unwrap();
        assert!(
            v.body().get("zones").is_none(),
            "an older producer: no field"
        );
    }

    #[test]
    fn missing_fields_are_named() {
        let mut f = fields(1, 0, "verified");
        f.remove("request_id");
        assert!(
            Event::from_fields(f, &origin())
                .unwrap_err()
                .contains("request_id")
        );
    }

    #[test]
    fn stored_events_read_back() {
        let e = Event::from_fields(fields(9, 1, "timeout"), &origin()).unwrap();
        let back = Event::from_json(&e.stored()).unwrap();
        assert_eq!(back.event_id, e.event_id);
        assert_eq!(back.source, "1");
        assert_eq!(back.status, "timeout");
        assert_eq!(back.unix_us, origin().unix_us / 1000 * 1000);
        let g = Event::gap("g-1".into(), 5, 1, 2, "p", 3);
        let back = Event::from_json(&g.stored()).unwrap();
        assert!(back.gap);
        assert_eq!(back.body()["dropped"], 5);
        assert!(Event::from_json("{\"schema\":\"other/1\"}").is_err());
        assert!(Event::from_json("not json").is_err());
    }
}
