// SPDX-License-Identifier: MIT OR Apache-2.0
//! `config-file` and `preset` through the element: what is in force after READY→PAUSED
//! (`effective-settings`), while the properties keep reading what the application set.
//!
//! What each test proves: the seed `tests/data/config.yaml` sets the properties at start and
//! its unknown key is named in a bus WARNING; every `step2` key reaches its property; a property
//! set explicitly wins over the file (even when set to its default value); the order is
//! defaults < preset < config-file < explicit; `enabled: false` in the file passes the video
//! through untouched; a bad YAML file, a bad value and a missing file each fail the state change
//! with an error naming the line, the key and value, or the path. A test scorer stands in for
//! the model the seed file names, so no model is loaded.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::*;
use gst::prelude::*;
use gstiguard::iguardverify::ModelType;

const SEED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/config.yaml");
const BAD_VALUE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/config-bad-step2.yaml"
);

/// Writes `text` to a file of its own and returns its path.
fn config(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("iguard-config-element-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn path_str(p: &std::path::Path) -> String {
    p.to_str().unwrap().to_string()
}

/// An element with `props` and a recording scorer (so the model a file names is never loaded),
/// taken to PAUSED. Returns it, its bus and whether the state change succeeded.
fn start(props: &[(&str, &dyn ToValue)]) -> (gst::Element, gst::Bus, bool) {
    let (e, bus) = element(props);
    set_scorer(&e, Arc::new(Recorder::default()));
    let ok = e.set_state(gst::State::Paused).is_ok();
    (e, bus, ok)
}

fn stop(e: &gst::Element) {
    e.set_state(gst::State::Null).unwrap();
}

/// A setting in force (`effective-settings`): after a start, the properties layered over the
/// preset and the file; before one, the properties.
fn eff<T: for<'a> gst::glib::value::FromValue<'a> + 'static>(e: &gst::Element, name: &str) -> T {
    let s = e.property::<gst::Structure>("effective-settings");
    s.get::<T>(name)
        .unwrap_or_else(|err| panic!("effective-settings {name}: {err:?} in {s}"))
}

fn u(e: &gst::Element, name: &str) -> u32 {
    eff::<u32>(e, name)
}

/// The texts of the messages of `kind` on `bus` so far.
fn texts(bus: &gst::Bus, kind: gst::MessageType) -> Vec<String> {
    std::iter::from_fn(|| bus.pop_filtered(&[kind]))
        .filter_map(|m| match m.view() {
            gst::MessageView::Error(e) => Some(format!("{} ({:?})", e.error(), e.debug())),
            gst::MessageView::Warning(w) => Some(format!("{} ({:?})", w.error(), w.debug())),
            _ => None,
        })
        .collect()
}

/// Starts an element with `props`, expects the state change to fail, and returns the error.
fn start_error(props: &[(&str, &dyn ToValue)]) -> String {
    let (e, bus, ok) = start(props);
    assert!(!ok, "the state change must fail");
    let errors = texts(&bus, gst::MessageType::Error);
    stop(&e);
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors[0].clone()
}

const ALL_KEYS: &str = "\
step1:
  max_workers: 8
step2:
  enabled: true
  model_path: /models/other.onnx
  model_type: fallback
  verification_threshold: 0.55
  input_size: [112, 96]
  temporal_size: 8
  async_enabled: false
  max_workers: 3
  queue_size: 7
  result_queue_size: 9
  worker_timeout_sec: 2.5
";

#[test]
fn the_seed_config_sets_the_properties_at_start_and_names_its_unknown_key() {
    // The seed file's values equal the defaults, so start from a preset that differs: the file
    // must win over it.
    let (e, bus) = element(&[("config-file", &SEED)]);
    e.set_property_from_str("preset", "orin-nano");
    set_scorer(&e, Arc::new(Recorder::default()));
    assert_eq!(u(&e, "max-workers"), 2);
    assert_eq!(eff::<Option<String>>(&e, "model-path"), None);
    e.set_state(gst::State::Paused).unwrap();

    assert_eq!(
        u(&e, "max-workers"),
        2,
        "step2.max_workers, not the preset's 1"
    );
    assert_eq!(
        u(&e, "queue-size"),
        50,
        "step2.queue_size, not the preset's 20"
    );
    assert_eq!(u(&e, "result-queue-size"), 100);
    assert_eq!(eff::<f64>(&e, "threshold"), 0.7);
    assert_eq!(u(&e, "temporal-size"), 16);
    assert_eq!((u(&e, "input-width"), u(&e, "input-height")), (224, 224));
    assert_eq!(eff::<f64>(&e, "worker-timeout"), 10.0);
    assert!(eff::<bool>(&e, "async"));
    assert!(eff::<bool>(&e, "enabled"));
    assert_eq!(
        eff::<Option<String>>(&e, "model-path").as_deref(),
        Some("models/action_recognition_rgb_3d.onnx")
    );
    assert_eq!(eff::<ModelType>(&e, "model-type"), ModelType::Onnx);
    let stats = Stats::of(&e);
    assert_eq!((stats.u("max-workers"), stats.u("queue-size")), (2, 50));

    let warnings = texts(&bus, gst::MessageType::Warning);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("save_clips") && warnings[0].contains("config.yaml"),
        "{}",
        warnings[0]
    );
    assert!(
        !warnings[0].contains("max_workers"),
        "step1's keys are not step2's"
    );
    stop(&e);
}

#[test]
fn every_step2_key_reaches_its_property() {
    let file = config("all-keys.yaml", ALL_KEYS);
    let (e, bus, ok) = start(&[("config-file", &path_str(&file))]);
    assert!(ok);
    assert!(eff::<bool>(&e, "enabled"));
    assert_eq!(
        eff::<Option<String>>(&e, "model-path").as_deref(),
        Some("/models/other.onnx")
    );
    assert_eq!(eff::<ModelType>(&e, "model-type"), ModelType::Fallback);
    assert_eq!(eff::<f64>(&e, "threshold"), 0.55);
    assert_eq!((u(&e, "input-width"), u(&e, "input-height")), (112, 96));
    assert_eq!(u(&e, "temporal-size"), 8);
    assert!(!eff::<bool>(&e, "async"));
    assert_eq!(u(&e, "max-workers"), 3);
    assert_eq!(u(&e, "queue-size"), 7);
    assert_eq!(u(&e, "result-queue-size"), 9);
    assert_eq!(eff::<f64>(&e, "worker-timeout"), 2.5);
    let s = Stats::of(&e);
    assert_eq!(
        (s.u("max-workers"), s.u("queue-size"), s.u("workers")),
        (3, 7, 3),
        "the pool was built with the file's sizes"
    );
    assert!(texts(&bus, gst::MessageType::Warning).is_empty());
    stop(&e);
}

#[test]
fn explicit_properties_win_over_the_file() {
    let file = config("explicit.yaml", ALL_KEYS);
    let (e, _bus, ok) = start(&[
        ("config-file", &path_str(&file)),
        ("temporal-size", &4u32),
        ("threshold", &0.9f64),
        ("input-height", &64u32),
        // Set to its default value: still a deliberate choice that the file must not undo.
        ("queue-size", &50u32),
    ]);
    assert!(ok);
    assert_eq!(u(&e, "temporal-size"), 4);
    assert_eq!(eff::<f64>(&e, "threshold"), 0.9);
    assert_eq!((u(&e, "input-width"), u(&e, "input-height")), (112, 64));
    assert_eq!(u(&e, "queue-size"), 50);
    assert_eq!(u(&e, "max-workers"), 3, "not set explicitly: from the file");
    stop(&e);
}

#[test]
fn defaults_then_preset_then_config_file_then_explicit_properties() {
    let sizes = |e: &gst::Element| {
        (
            u(e, "max-workers"),
            u(e, "queue-size"),
            u(e, "result-queue-size"),
        )
    };
    let workers_only = path_str(&config("workers-only.yaml", "step2:\n  max_workers: 2\n"));
    type Props<'a> = Vec<(&'a str, &'a dyn ToValue)>;
    let cases: [(&str, Props, (u32, u32, u32)); 5] = [
        ("defaults", vec![], (2, 50, 100)),
        ("preset", vec![], (1, 20, 40)),
        (
            "preset + explicit",
            vec![("max-workers", &3u32)],
            (3, 20, 40),
        ),
        (
            "preset + file",
            vec![("config-file", &workers_only)],
            (2, 20, 40),
        ),
        (
            "preset + file + explicit",
            vec![("config-file", &workers_only), ("max-workers", &4u32)],
            (4, 20, 40),
        ),
    ];
    for (what, props, expected) in cases {
        let (e, _bus) = element(&props);
        if what != "defaults" {
            e.set_property_from_str("preset", "orin-nano");
        }
        set_scorer(&e, Arc::new(Recorder::default()));
        e.set_state(gst::State::Paused).unwrap();
        assert_eq!(sizes(&e), expected, "{what}");
        stop(&e);
    }
}

#[test]
fn unknown_keys_are_named_in_a_warning_and_the_element_starts() {
    let file = config(
        "unknown.yaml",
        "step2:\n  max_worker: 3\n  queue_size: 5\n  save_clips: true\n",
    );
    let (e, bus, ok) = start(&[("config-file", &path_str(&file))]);
    assert!(ok);
    let warnings = texts(&bus, gst::MessageType::Warning);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("max_worker, save_clips") && warnings[0].contains("unknown.yaml"),
        "{}",
        warnings[0]
    );
    assert_eq!(u(&e, "queue-size"), 5);
    assert_eq!(u(&e, "max-workers"), 2, "the misspelt key set nothing");
    stop(&e);
}

#[test]
fn enabled_false_in_the_file_passes_the_video_through() {
    let file = config("disabled.yaml", "step2:\n  enabled: false\n");
    let (e, bus) = element(&[
        ("config-file", &path_str(&file)),
        ("temporal-size", &1u32),
        ("input-width", &8u32),
        ("input-height", &8u32),
    ]);
    let rec = Arc::new(Recorder::default());
    set_scorer(&e, rec.clone());
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_src_caps(caps());
    for n in 0..5 {
        let mut b = frame((100, 60, 64, 80), n * 33);
        add_detection(&mut b, "weapon", 0.99, (100, 60, 64, 80));
        h.push(b).unwrap();
        assert!(h.pull().is_ok());
    }
    h.push_event(gst::event::Eos::new());
    assert!(!eff::<bool>(&e, "enabled"));
    assert!(rec.clips.lock().unwrap().is_empty());
    assert!(bus_verdicts(&bus).is_empty());
    let s = Stats::of(&e);
    s.assert_adds_up();
    assert_eq!(s.u("submitted"), 0);
}

#[test]
fn a_bad_yaml_file_fails_the_state_change_naming_the_line() {
    let file = config(
        "syntax.yaml",
        "step1:\n  a: 1\nstep2:\n  max_workers: [1, 2\n",
    );
    let error = start_error(&[("config-file", &path_str(&file))]);
    assert!(
        error.contains("config-file") && error.contains("syntax.yaml") && error.contains("line 5"),
        "{error}"
    );
}

#[test]
fn a_bad_value_fails_the_state_change_naming_the_key_and_the_value() {
    let error = start_error(&[("config-file", &BAD_VALUE)]);
    assert!(
        error.contains("config-bad-step2.yaml")
            && error.contains("step2.max_workers")
            && error.contains("\"two\"")
            && error.contains("1 to 64"),
        "{error}"
    );
    let file = config("range.yaml", "step2:\n  verification_threshold: 1.5\n");
    let error = start_error(&[("config-file", &path_str(&file))]);
    assert!(
        error.contains("step2.verification_threshold = 1.5"),
        "{error}"
    );
}

#[test]
fn a_missing_file_fails_the_state_change_naming_the_path() {
    let error = start_error(&[("config-file", &"/nonexistent/iguard/site-config.yaml")]);
    assert!(
        error.contains("/nonexistent/iguard/site-config.yaml"),
        "{error}"
    );
}

#[test]
fn a_file_without_step2_is_an_error() {
    let file = config("no-step2.yaml", "step1:\n  enabled: true\n");
    let error = start_error(&[("config-file", &path_str(&file))]);
    assert!(error.contains("no 'step2' section"), "{error}");
}

#[test]
fn properties_read_what_was_set_and_nothing_leaks_into_the_next_run() {
    let file = config(
        "leak.yaml",
        "step2:\n  queue_size: 7\n  verification_threshold: 0.3\n",
    );
    let (e, _bus) = element(&[("config-file", &path_str(&file))]);
    e.set_property_from_str("preset", "orin-nano");
    set_scorer(&e, Arc::new(Recorder::default()));
    e.set_state(gst::State::Paused).unwrap();
    assert_eq!((u(&e, "max-workers"), u(&e, "queue-size")), (1, 7));
    assert_eq!(eff::<f64>(&e, "threshold"), 0.3);
    // The properties read what the application set, not what the layers put in force.
    assert_eq!(e.property::<u32>("max-workers"), 2);
    assert_eq!(e.property::<u32>("queue-size"), 50);
    assert_eq!(e.property::<f64>("threshold"), 0.7);
    stop(&e);

    // Unset both: the next run has the defaults again.
    e.set_property("config-file", None::<String>);
    e.set_property_from_str("preset", "none");
    e.set_state(gst::State::Paused).unwrap();
    assert_eq!(
        (
            u(&e, "max-workers"),
            u(&e, "queue-size"),
            u(&e, "result-queue-size")
        ),
        (2, 50, 100)
    );
    assert_eq!(eff::<f64>(&e, "threshold"), 0.7);
    let stats = e.property::<gst::Structure>("stats");
    assert_eq!(stats.get::<u32>("queue-size").unwrap(), 50);
    stop(&e);
}
