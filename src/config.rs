// SPDX-License-Identifier: MIT OR Apache-2.0
//! I-Guard's `config.yaml` `step2` section as `iguardverify` property values, and the Jetson
//! presets.
//!
//! Existing I-Guard deployments describe Stage 2 in the `step2` section of their `config.yaml`;
//! every other section (`step1`, `cameras`, ...) belongs to other parts of the system and is not
//! read. A key that is absent or `null` leaves its property at the element's default. Values are
//! checked here against the same ranges as the properties, so a bad file is reported with the
//! key, the value and what was expected, before any element sees it.
//!
//! | `step2` key              | property                        | accepted                      |
//! |--------------------------|---------------------------------|-------------------------------|
//! | `enabled`                | (none yet)                      | `true` / `false`              |
//! | `model_path`             | `model-path`                    | a string                      |
//! | `model_type`             | `model-type`                    | `onnx`, `tao`, `fallback`     |
//! | `verification_threshold` | `threshold`                     | a number, 0 to 1              |
//! | `input_size`             | `input-width`, `input-height`   | `224` or `[w, h]`, 1 to 4096  |
//! | `temporal_size`          | `temporal-size`                 | an integer, 1 to 1024         |
//! | `async_enabled`          | `async`                         | `true` / `false`              |
//! | `max_workers`            | `max-workers`                   | an integer, 1 to 64           |
//! | `queue_size`             | `queue-size`                    | an integer, 1 to 10000        |
//! | `result_queue_size`      | `result-queue-size`             | an integer, 0 to 100000       |
//! | `worker_timeout_sec`     | `worker-timeout`                | a number, 0.001 to 3600       |
//! | `zones`                  | `zones`                         | a string, `name:x,y x,y x,y;…`|
//! | `trigger_zones`          | `trigger-zones`                 | a string `a,b` or a list      |
//! | `ignore_zones`           | `ignore-zones`                  | a string `a,b` or a list      |
//! | `incidents`              | `incidents`                     | `true` / `false`              |
//! | `alert_after`            | `alert-after`                   | an integer, 1 to 1000         |
//! | `incident_timeout_sec`   | `incident-timeout`              | a number, 0 to 86400          |
//!
//! YAML is read with `serde_norway` (the maintained continuation of `serde_yaml`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_norway::Value;

use crate::scorer::factory::ModelKind;

/// The section of `config.yaml` read here.
pub const SECTION: &str = "step2";

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid YAML at line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("invalid YAML: {0}")]
    SyntaxNoLocation(String),
    #[error(
        "no '{SECTION}' section: the Stage-2 settings are read from a top-level '{SECTION}:' \
         mapping"
    )]
    NoStep2,
    #[error("'{SECTION}' must be a mapping of keys to values, found {0}")]
    Step2NotMapping(String),
    #[error("{SECTION}.{key} = {value}: expected {expected}")]
    Invalid {
        key: String,
        value: String,
        expected: String,
    },
    /// Any of the above, in a file.
    #[error("{path}: {source}")]
    InFile {
        path: PathBuf,
        source: Box<ConfigError>,
    },
}

/// The model families a config file may name: case-insensitive `onnx`, `tao` or `fallback`
/// (a remote server needs settings the seed's `step2` section has no keys for).
fn model_kind(s: &str) -> Option<ModelKind> {
    match s.trim().to_ascii_lowercase().as_str() {
        "onnx" => Some(ModelKind::Onnx),
        "tao" => Some(ModelKind::Tao),
        "fallback" => Some(ModelKind::Fallback),
        _ => None,
    }
}

/// The `step2` section; `None` where a key is absent or `null`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Step2Config {
    /// Whether Stage 2 runs at all. Not a property yet: the application decides whether to put
    /// the element in the pipeline.
    pub enabled: Option<bool>,
    pub model_path: Option<String>,
    pub model_type: Option<ModelKind>,
    pub verification_threshold: Option<f64>,
    /// Width and height (`input_size: 224` means 224×224).
    pub input_size: Option<(u32, u32)>,
    pub temporal_size: Option<u32>,
    pub async_enabled: Option<bool>,
    pub max_workers: Option<u32>,
    pub queue_size: Option<u32>,
    pub result_queue_size: Option<u32>,
    pub worker_timeout_sec: Option<f64>,
    /// The zones' text form, checked (each zone well formed).
    pub zones: Option<String>,
    /// Comma-separated zone names (a YAML list is joined).
    pub trigger_zones: Option<String>,
    pub ignore_zones: Option<String>,
    pub incidents: Option<bool>,
    pub alert_after: Option<u32>,
    pub incident_timeout_sec: Option<f64>,
    /// Keys of the section this version does not know, in file order (worth a warning: a
    /// misspelt key is otherwise silently ignored).
    pub unknown_keys: Vec<String>,
}

/// Ranges shared with the element's properties.
const SIZE_RANGE: (u64, u64) = (1, 4096);
const TEMPORAL_RANGE: (u64, u64) = (1, 1024);
const WORKERS_RANGE: (u64, u64) = (1, 64);
const QUEUE_RANGE: (u64, u64) = (1, 10_000);
const RESULT_QUEUE_RANGE: (u64, u64) = (0, 100_000);
const THRESHOLD_RANGE: (f64, f64) = (0.0, 1.0);
const TIMEOUT_RANGE: (f64, f64) = (0.001, 3600.0);
const ALERT_AFTER_RANGE: (u64, u64) = (1, 1000);
const INCIDENT_TIMEOUT_RANGE: (f64, f64) = (0.0, 86_400.0);

impl Step2Config {
    /// Reads the `step2` section of the YAML file at `path`. Errors name the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml(&text).map_err(|e| ConfigError::InFile {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    /// Reads the `step2` section of a whole `config.yaml` document.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let doc: Value = serde_norway::from_str(text).map_err(|e| match e.location() {
            Some(l) => ConfigError::Syntax {
                line: l.line(),
                column: l.column(),
                message: e.to_string(),
            },
            None => ConfigError::SyntaxNoLocation(e.to_string()),
        })?;
        let section = doc.get(SECTION).ok_or(ConfigError::NoStep2)?;
        let mapping = match section {
            Value::Mapping(m) => m,
            Value::Null => return Ok(Step2Config::default()),
            other => return Err(ConfigError::Step2NotMapping(show(other))),
        };

        let mut c = Step2Config::default();
        for (key, value) in mapping {
            let Some(key) = key.as_str() else {
                c.unknown_keys.push(show(key));
                continue;
            };
            if value.is_null() {
                continue;
            }
            match key {
                "enabled" => c.enabled = Some(boolean(key, value)?),
                "model_path" => c.model_path = Some(string(key, value, "a file path")?.into()),
                "model_type" => {
                    let expected = "one of onnx, tao, fallback";
                    let s = string(key, value, expected)?;
                    c.model_type =
                        Some(model_kind(s).ok_or_else(|| invalid(key, value, expected))?);
                }
                "verification_threshold" => {
                    c.verification_threshold = Some(number(key, value, THRESHOLD_RANGE)?)
                }
                "input_size" => c.input_size = Some(input_size(key, value)?),
                "temporal_size" => c.temporal_size = Some(integer(key, value, TEMPORAL_RANGE)?),
                "async_enabled" => c.async_enabled = Some(boolean(key, value)?),
                "max_workers" => c.max_workers = Some(integer(key, value, WORKERS_RANGE)?),
                "queue_size" => c.queue_size = Some(integer(key, value, QUEUE_RANGE)?),
                "result_queue_size" => {
                    c.result_queue_size = Some(integer(key, value, RESULT_QUEUE_RANGE)?)
                }
                "worker_timeout_sec" => {
                    c.worker_timeout_sec = Some(number(key, value, TIMEOUT_RANGE)?)
                }
                "zones" => {
                    let text = string(key, value, "zones as 'name:x,y x,y x,y; name2:...'")?;
                    crate::zones::Zones::parse(text).map_err(|e| invalid(key, value, e))?;
                    c.zones = Some(text.to_string());
                }
                "trigger_zones" => c.trigger_zones = Some(zone_names(key, value)?),
                "ignore_zones" => c.ignore_zones = Some(zone_names(key, value)?),
                "incidents" => c.incidents = Some(boolean(key, value)?),
                "alert_after" => c.alert_after = Some(integer(key, value, ALERT_AFTER_RANGE)?),
                "incident_timeout_sec" => {
                    c.incident_timeout_sec = Some(number(key, value, INCIDENT_TIMEOUT_RANGE)?)
                }
                _ => c.unknown_keys.push(key.to_string()),
            }
        }
        Ok(c)
    }

    /// What the section sets, as an overlay on the element's settings.
    pub fn overlay(&self) -> Overlay {
        Overlay {
            enabled: self.enabled,
            model_path: self.model_path.clone(),
            model_type: self.model_type,
            threshold: self.verification_threshold,
            input_width: self.input_size.map(|(w, _)| w),
            input_height: self.input_size.map(|(_, h)| h),
            temporal_size: self.temporal_size,
            async_: self.async_enabled,
            max_workers: self.max_workers,
            queue_size: self.queue_size,
            result_queue_size: self.result_queue_size,
            worker_timeout: self.worker_timeout_sec,
            zones: self.zones.clone(),
            trigger_zones: self.trigger_zones.clone(),
            ignore_zones: self.ignore_zones.clone(),
            incidents: self.incidents,
            alert_after: self.alert_after,
            incident_timeout: self.incident_timeout_sec,
        }
    }
}

/// Values a preset or a config file gives the element's properties; `None` leaves a property
/// as it is. Applied to a per-run copy of the settings, never to what the application set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overlay {
    pub enabled: Option<bool>,
    pub model_path: Option<String>,
    pub model_type: Option<ModelKind>,
    pub threshold: Option<f64>,
    pub input_width: Option<u32>,
    pub input_height: Option<u32>,
    pub temporal_size: Option<u32>,
    pub async_: Option<bool>,
    pub max_workers: Option<u32>,
    pub queue_size: Option<u32>,
    pub result_queue_size: Option<u32>,
    pub worker_timeout: Option<f64>,
    pub zones: Option<String>,
    pub trigger_zones: Option<String>,
    pub ignore_zones: Option<String>,
    pub incidents: Option<bool>,
    pub alert_after: Option<u32>,
    pub incident_timeout: Option<f64>,
}

impl Overlay {
    /// `top` over `self`: a value in `top` wins.
    pub fn then(self, top: Overlay) -> Overlay {
        Overlay {
            enabled: top.enabled.or(self.enabled),
            model_path: top.model_path.or(self.model_path),
            model_type: top.model_type.or(self.model_type),
            threshold: top.threshold.or(self.threshold),
            input_width: top.input_width.or(self.input_width),
            input_height: top.input_height.or(self.input_height),
            temporal_size: top.temporal_size.or(self.temporal_size),
            async_: top.async_.or(self.async_),
            max_workers: top.max_workers.or(self.max_workers),
            queue_size: top.queue_size.or(self.queue_size),
            result_queue_size: top.result_queue_size.or(self.result_queue_size),
            worker_timeout: top.worker_timeout.or(self.worker_timeout),
            zones: top.zones.or(self.zones),
            trigger_zones: top.trigger_zones.or(self.trigger_zones),
            ignore_zones: top.ignore_zones.or(self.ignore_zones),
            incidents: top.incidents.or(self.incidents),
            alert_after: top.alert_after.or(self.alert_after),
            incident_timeout: top.incident_timeout.or(self.incident_timeout),
        }
    }

    /// The element properties this overlay sets, in a fixed order.
    pub fn property_names(&self) -> Vec<&'static str> {
        let given = [
            ("enabled", self.enabled.is_some()),
            ("model-path", self.model_path.is_some()),
            ("model-type", self.model_type.is_some()),
            ("threshold", self.threshold.is_some()),
            ("input-width", self.input_width.is_some()),
            ("input-height", self.input_height.is_some()),
            ("temporal-size", self.temporal_size.is_some()),
            ("async", self.async_.is_some()),
            ("max-workers", self.max_workers.is_some()),
            ("queue-size", self.queue_size.is_some()),
            ("result-queue-size", self.result_queue_size.is_some()),
            ("worker-timeout", self.worker_timeout.is_some()),
            ("zones", self.zones.is_some()),
            ("trigger-zones", self.trigger_zones.is_some()),
            ("ignore-zones", self.ignore_zones.is_some()),
            ("incidents", self.incidents.is_some()),
            ("alert-after", self.alert_after.is_some()),
            ("incident-timeout", self.incident_timeout.is_some()),
        ];
        given
            .into_iter()
            .filter(|(_, g)| *g)
            .map(|(n, _)| n)
            .collect()
    }
}

/// Worker and queue sizes for the Jetson Orin modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preset {
    OrinNano,
    OrinNx,
    OrinAgx,
}

impl Preset {
    pub const ALL: [Preset; 3] = [Preset::OrinNano, Preset::OrinNx, Preset::OrinAgx];

    /// `orin-nano`, `orin-nx` or `orin-agx`.
    pub fn nick(self) -> &'static str {
        match self {
            Preset::OrinNano => "orin-nano",
            Preset::OrinNx => "orin-nx",
            Preset::OrinAgx => "orin-agx",
        }
    }

    /// `(max-workers, queue-size, result-queue-size)`.
    pub fn sizes(self) -> (u32, u32, u32) {
        match self {
            Preset::OrinNano => (1, 20, 40),
            Preset::OrinNx => (2, 40, 80),
            Preset::OrinAgx => (3, 60, 120),
        }
    }

    /// The preset as an overlay on the element's settings.
    pub fn overlay(self) -> Overlay {
        let (workers, queue, results) = self.sizes();
        Overlay {
            max_workers: Some(workers),
            queue_size: Some(queue),
            result_queue_size: Some(results),
            ..Default::default()
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.nick())
    }
}

impl FromStr for Preset {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        Preset::ALL
            .into_iter()
            .find(|p| p.nick() == t)
            .ok_or_else(|| format!("unknown preset '{s}': expected orin-nano, orin-nx or orin-agx"))
    }
}

fn invalid(key: &str, value: &Value, expected: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: show(value),
        expected: expected.into(),
    }
}

fn boolean(key: &str, value: &Value) -> Result<bool, ConfigError> {
    value
        .as_bool()
        .ok_or_else(|| invalid(key, value, "true or false"))
}

fn string<'a>(key: &str, value: &'a Value, expected: &str) -> Result<&'a str, ConfigError> {
    value.as_str().ok_or_else(|| invalid(key, value, expected))
}

fn integer(key: &str, value: &Value, (min, max): (u64, u64)) -> Result<u32, ConfigError> {
    value
        .as_u64()
        .filter(|v| (min..=max).contains(v))
        .map(|v| v as u32)
        .ok_or_else(|| invalid(key, value, format!("an integer from {min} to {max}")))
}

fn number(key: &str, value: &Value, (min, max): (f64, f64)) -> Result<f64, ConfigError> {
    value
        .as_f64()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| invalid(key, value, format!("a number from {min} to {max}")))
}

/// Zone names as a comma-separated string or a list of strings; each a usable name.
fn zone_names(key: &str, value: &Value) -> Result<String, ConfigError> {
    let expected = "zone names as \"a,b\" or a list of names (letters, digits, '_', '-')";
    let names: Vec<&str> = match value {
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect(),
        Value::Sequence(list) => list
            .iter()
            .map(|v| v.as_str().map(str::trim))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid(key, value, expected))?,
        _ => return Err(invalid(key, value, expected)),
    };
    if !names.iter().all(|n| crate::zones::is_valid_name(n)) {
        return Err(invalid(key, value, expected));
    }
    Ok(names.join(","))
}

fn input_size(key: &str, value: &Value) -> Result<(u32, u32), ConfigError> {
    let (min, max) = SIZE_RANGE;
    let expected =
        || format!("a size in pixels from {min} to {max}, or a [width, height] pair of them");
    let side = |v: &Value| v.as_u64().filter(|v| (min..=max).contains(v));
    match value {
        Value::Sequence(s) if s.len() == 2 => match (side(&s[0]), side(&s[1])) {
            (Some(w), Some(h)) => Ok((w as u32, h as u32)),
            _ => Err(invalid(key, value, expected())),
        },
        v => side(v)
            .map(|n| (n as u32, n as u32))
            .ok_or_else(|| invalid(key, value, expected())),
    }
}

/// A YAML value on one line, as it would be written in flow style.
fn show(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Sequence(s) => format!("[{}]", s.iter().map(show).collect::<Vec<_>>().join(", ")),
        Value::Mapping(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", show(k), show(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Tagged(t) => format!("{} {}", t.tag, show(&t.value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/config.yaml");

    fn step2(body: &str) -> Result<Step2Config, ConfigError> {
        let mut doc = String::from("step1:\n  enabled: true\nstep2:\n");
        for line in body.lines() {
            doc.push_str("  ");
            doc.push_str(line);
            doc.push('\n');
        }
        Step2Config::from_yaml(&doc)
    }

    fn error(body: &str) -> String {
        step2(body).unwrap_err().to_string()
    }

    #[test]
    fn reads_the_seed_configuration() {
        let c = Step2Config::from_file(SEED).unwrap();
        assert_eq!(
            c,
            Step2Config {
                enabled: Some(true),
                model_path: Some("models/action_recognition_rgb_3d.onnx".into()),
                model_type: Some(ModelKind::Onnx),
                verification_threshold: Some(0.7),
                input_size: Some((224, 224)),
                temporal_size: Some(16),
                async_enabled: Some(true),
                max_workers: Some(2),
                queue_size: Some(50),
                result_queue_size: Some(100),
                worker_timeout_sec: Some(10.0),
                unknown_keys: vec!["save_clips".into()],
                ..Default::default()
            }
        );
    }

    #[test]
    fn the_overlay_in_order_with_its_values() {
        let o = Step2Config::from_file(SEED).unwrap().overlay();
        assert_eq!(
            o.property_names(),
            [
                "enabled",
                "model-path",
                "model-type",
                "threshold",
                "input-width",
                "input-height",
                "temporal-size",
                "async",
                "max-workers",
                "queue-size",
                "result-queue-size",
                "worker-timeout"
            ]
        );
        assert_eq!(
            o.model_path.as_deref(),
            Some("models/action_recognition_rgb_3d.onnx")
        );
        assert_eq!(o.model_type, Some(ModelKind::Onnx));
        assert_eq!(o.threshold, Some(0.7));
        assert_eq!((o.input_width, o.input_height), (Some(224), Some(224)));
        assert_eq!(o.temporal_size, Some(16));
        assert_eq!(o.async_, Some(true));
        assert_eq!(o.max_workers, Some(2));
        assert_eq!(o.result_queue_size, Some(100));
        assert_eq!(o.worker_timeout, Some(10.0));

        assert!(Step2Config::default().overlay().property_names().is_empty());
    }

    #[test]
    fn a_later_overlay_wins_key_by_key() {
        let low = Preset::OrinAgx.overlay();
        let high = Overlay {
            queue_size: Some(7),
            threshold: Some(0.9),
            ..Default::default()
        };
        let o = low.then(high);
        assert_eq!(o.max_workers, Some(3), "kept from the preset");
        assert_eq!(o.queue_size, Some(7), "the file wins");
        assert_eq!(o.threshold, Some(0.9));
        assert_eq!(o.result_queue_size, Some(120));
    }

    #[test]
    fn absent_and_null_keys_set_nothing() {
        let c = step2("enabled: false\nmodel_path: null\nmax_workers:\n").unwrap();
        assert_eq!(
            c,
            Step2Config {
                enabled: Some(false),
                ..Default::default()
            }
        );
        assert_eq!(c.overlay().property_names(), ["enabled"]);
        let c = Step2Config::from_yaml("step2:\n").unwrap();
        assert_eq!(c, Step2Config::default());
    }

    #[test]
    fn input_size_as_one_number_or_a_pair() {
        assert_eq!(
            step2("input_size: 112").unwrap().input_size,
            Some((112, 112))
        );
        assert_eq!(
            step2("input_size: [320, 240]").unwrap().input_size,
            Some((320, 240))
        );
        assert_eq!(
            step2("input_size:\n  - 160\n  - 128").unwrap().input_size,
            Some((160, 128))
        );
        let o = step2("input_size: [320, 240]").unwrap().overlay();
        assert_eq!(o.property_names(), ["input-width", "input-height"]);
        assert_eq!((o.input_width, o.input_height), (Some(320), Some(240)));
    }

    #[test]
    fn numbers_accept_integers_and_model_type_any_case() {
        let c =
            step2("verification_threshold: 1\nworker_timeout_sec: 30\nmodel_type: TAO").unwrap();
        assert_eq!(c.verification_threshold, Some(1.0));
        assert_eq!(c.worker_timeout_sec, Some(30.0));
        assert_eq!(c.model_type, Some(ModelKind::Tao));
        assert_eq!(c.overlay().model_type, Some(ModelKind::Tao));
        assert_eq!(
            step2("result_queue_size: 0").unwrap().result_queue_size,
            Some(0)
        );
    }

    #[test]
    fn wrong_types_and_ranges_name_the_key_the_value_and_what_is_expected() {
        for (body, key, value, expected) in [
            ("enabled: yes", "enabled", "\"yes\"", "true or false"),
            ("async_enabled: 1", "async_enabled", "1", "true or false"),
            (
                "model_path: [a, b]",
                "model_path",
                "[\"a\", \"b\"]",
                "a file path",
            ),
            (
                "model_type: tensorrt",
                "model_type",
                "\"tensorrt\"",
                "onnx, tao, fallback",
            ),
            ("model_type: 3", "model_type", "3", "onnx, tao, fallback"),
            (
                "verification_threshold: 1.5",
                "verification_threshold",
                "1.5",
                "from 0 to 1",
            ),
            (
                "verification_threshold: .nan",
                "verification_threshold",
                ".nan",
                "from 0 to 1",
            ),
            (
                "verification_threshold: high",
                "verification_threshold",
                "\"high\"",
                "a number",
            ),
            ("input_size: 0", "input_size", "0", "[width, height]"),
            (
                "input_size: [224]",
                "input_size",
                "[224]",
                "[width, height]",
            ),
            (
                "input_size: [224, 224, 3]",
                "input_size",
                "[224, 224, 3]",
                "[width, height]",
            ),
            (
                "input_size: [224, -1]",
                "input_size",
                "[224, -1]",
                "from 1 to 4096",
            ),
            (
                "input_size: \"224\"",
                "input_size",
                "\"224\"",
                "from 1 to 4096",
            ),
            (
                "temporal_size: 16.5",
                "temporal_size",
                "16.5",
                "an integer from 1 to 1024",
            ),
            (
                "temporal_size: 2000",
                "temporal_size",
                "2000",
                "an integer from 1 to 1024",
            ),
            (
                "max_workers: 0",
                "max_workers",
                "0",
                "an integer from 1 to 64",
            ),
            (
                "max_workers: -2",
                "max_workers",
                "-2",
                "an integer from 1 to 64",
            ),
            (
                "queue_size: 100000",
                "queue_size",
                "100000",
                "from 1 to 10000",
            ),
            (
                "result_queue_size: many",
                "result_queue_size",
                "\"many\"",
                "from 0 to 100000",
            ),
            (
                "worker_timeout_sec: 0",
                "worker_timeout_sec",
                "0",
                "from 0.001 to 3600",
            ),
            (
                "worker_timeout_sec: {s: 1}",
                "worker_timeout_sec",
                "{\"s\": 1}",
                "a number",
            ),
        ] {
            let e = error(body);
            assert!(
                e.contains(&format!("step2.{key} = {value}:")),
                "{body} -> {e}"
            );
            assert!(e.contains(expected), "{body} -> {e}");
        }
    }

    #[test]
    fn zones_and_incident_keys_are_read_and_checked() {
        let c = step2(
            "zones: \"lawn:0,0.5 1,0.5 1,1 0,1; door:0.4,0.2 0.5,0.2 0.5,0.5\"\n\
             trigger_zones: [lawn, door]\n\
             ignore_zones: door\n\
             incidents: false\n\
             alert_after: 2\n\
             incident_timeout_sec: 12.5",
        )
        .unwrap();
        let o = c.overlay();
        assert_eq!(o.trigger_zones.as_deref(), Some("lawn,door"));
        assert_eq!(o.ignore_zones.as_deref(), Some("door"));
        assert_eq!(
            (o.incidents, o.alert_after, o.incident_timeout),
            (Some(false), Some(2), Some(12.5))
        );
        assert!(o.zones.unwrap().starts_with("lawn:"));
        let e = error("zones: \"lawn:0,0 1,0\"");
        assert!(
            e.contains("step2.zones") && e.contains("\"lawn\" has 2 corner(s)"),
            "{e}"
        );
        let e = error("trigger_zones: [lawn, 3]");
        assert!(e.contains("step2.trigger_zones"), "{e}");
        let e = error("ignore_zones: \"a b\"");
        assert!(e.contains("step2.ignore_zones"), "{e}");
        assert!(error("alert_after: 0").contains("an integer from 1 to 1000"));
        assert!(error("incident_timeout_sec: -1").contains("a number from 0 to 86400"));
    }

    #[test]
    fn unknown_keys_are_listed() {
        let c = step2("max_worker: 3\nqueue_size: 5\n7: x").unwrap();
        assert_eq!(c.unknown_keys, ["max_worker", "7"]);
        assert_eq!(c.queue_size, Some(5));
        assert_eq!(c.max_workers, None);
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let e = Step2Config::from_file("/nonexistent/iguard/config.yaml").unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }));
        assert!(
            e.to_string().contains("/nonexistent/iguard/config.yaml"),
            "{e}"
        );
    }

    #[test]
    fn a_file_error_names_the_file_and_the_key() {
        let bad = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/config-bad-step2.yaml"
        );
        let e = Step2Config::from_file(bad).unwrap_err().to_string();
        assert!(e.starts_with(bad), "{e}");
        assert!(e.contains("step2.max_workers = \"two\""), "{e}");
    }

    #[test]
    fn no_step2_section() {
        for doc in [
            "step1:\n  enabled: true\ncameras: []\n",
            "",
            "- a\n- b\n",
            "42",
        ] {
            let e = Step2Config::from_yaml(doc).unwrap_err();
            assert!(matches!(e, ConfigError::NoStep2), "{doc:?} -> {e}");
            assert!(e.to_string().contains("no 'step2' section"));
        }
        let e = Step2Config::from_yaml("step2: [1, 2]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'step2' must be a mapping") && e.contains("[1, 2]"),
            "{e}"
        );
    }

    #[test]
    fn syntax_errors_give_the_line() {
        let e =
            Step2Config::from_yaml("step1:\n  a: 1\nstep2:\n  max_workers: [1, 2\n").unwrap_err();
        assert!(matches!(e, ConfigError::Syntax { line: 5, .. }), "{e:?}");
        assert!(e.to_string().contains("line 5"), "{e}");
        let e = Step2Config::from_yaml("step2:\n  a: 1\n   b: 2\n").unwrap_err();
        assert!(e.to_string().starts_with("invalid YAML at line 3"), "{e}");
    }

    #[test]
    fn presets() {
        let values = |p: Preset| -> Vec<(&str, u32)> {
            let o = p.overlay();
            assert_eq!(
                o.property_names(),
                ["max-workers", "queue-size", "result-queue-size"]
            );
            let v = [o.max_workers, o.queue_size, o.result_queue_size];
            o.property_names()
                .into_iter()
                .zip(v.into_iter().flatten())
                .collect()
        };
        assert_eq!(
            values(Preset::OrinNano),
            [
                ("max-workers", 1),
                ("queue-size", 20),
                ("result-queue-size", 40)
            ]
        );
        assert_eq!(
            values(Preset::OrinNx),
            [
                ("max-workers", 2),
                ("queue-size", 40),
                ("result-queue-size", 80)
            ]
        );
        assert_eq!(
            values(Preset::OrinAgx),
            [
                ("max-workers", 3),
                ("queue-size", 60),
                ("result-queue-size", 120)
            ]
        );
        for p in Preset::ALL {
            assert_eq!(p.nick().parse::<Preset>(), Ok(p));
        }
        assert_eq!("Orin-NX".parse::<Preset>(), Ok(Preset::OrinNx));
        assert!("orin".parse::<Preset>().unwrap_err().contains("orin-nano"));
    }
}
