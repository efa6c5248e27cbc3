// SPDX-License-Identifier: MIT OR Apache-2.0
//! NVMM caps where NVIDIA's surface libraries cannot be opened (a binary of its own: the
//! element opens them once per process). The batch metas still come from NVIDIA's real
//! `libnvds_meta.so` (opened first, then the search folders are pointed at an empty one).
//! With `fallback-on-error=true` (the default) a warning names `libnvbufsurface.so` and what
//! to install, the video flows and clips are scored from their labels only: `fallback`
//! verdicts with `positive`, never `verified` (so MQTT's `/verified` never fires on a guess);
//! with `false`, an error with the same words and the caps are refused.

mod common;
mod nvidia;

use std::sync::{Arc, Once};
use std::time::Duration;

use common::*;
use gst::prelude::*;
use gstiguard::verdict::Status;

fn no_surface_libraries() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        init();
        nvidia::lib();
        nvidia::gst_lib();
        let empty = std::env::temp_dir().join(format!("iguard-no-nvmm-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        // SAFETY: before any element looks for the surface libraries (this Once runs first in
        // every test of the binary).
        unsafe {
            std::env::set_var("IGUARD_NVBUFSURFACE_LIB_DIR", &empty);
            std::env::set_var("IGUARD_DEEPSTREAM_LIB_DIR", &empty);
        }
    });
}

fn caps() -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .features(["memory:NVMM"])
        .field("format", "NV12")
        .field("width", 64i32)
        .field("height", 48i32)
        .field("framerate", gst::Fraction::new(30, 1))
        .build()
}

/// A 72-byte stand-in for an NvBufSurface memory (never read: the library is missing) with a
/// batch meta of one source seeing a weapon.
fn buffer(n: u64) -> gst::Buffer {
    let mut b = gst::Buffer::from_mut_slice(vec![0u8; 72]);
    let frames = [nvidia::Frame::new(0, 0, 0)
        .at(n as i32, n * 33_000_000)
        .size(64, 48)
        .object(nvidia::Object::new(2, 0.9, [8.0, 8.0, 32.0, 32.0], ""))];
    nvidia::attach(b.get_mut().unwrap(), &frames);
    b
}

/// Drains the bus: warning and error texts, and the verdicts (one pass: a filtered pop drops
/// the messages it does not match).
fn drain(bus: &gst::Bus) -> (Vec<String>, Vec<String>, Vec<gstiguard::verdict::Verdict>) {
    let (mut warnings, mut errors, mut verdicts) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(m) = bus.pop() {
        match m.view() {
            gst::MessageView::Warning(w) => warnings.push(w.error().to_string()),
            gst::MessageView::Error(e) => errors.push(e.error().to_string()),
            gst::MessageView::Element(_) => {
                if let Some(s) = m.structure()
                    && s.name() == gstiguard::meta::MESSAGE_NAME
                {
                    verdicts.push(gstiguard::meta::from_structure(s).unwrap());
                }
            }
            _ => {}
        }
    }
    (warnings, errors, verdicts)
}

/// The `iguard-verdict` events the element pushed downstream so far, read the way
/// `iguardpublish` reads them.
fn published(h: &mut gst_check::Harness) -> Vec<gstiguard::publish::schema::Event> {
    let mut out = Vec::new();
    while let Some(ev) = h.try_pull_event() {
        if let Some(s) = gstiguard::publish::wire::verdict_structure(&ev) {
            let (fields, origin) = gstiguard::publish::wire::read(s, "publish0");
            out.push(gstiguard::publish::schema::Event::from_fields(fields, &origin).unwrap());
        }
    }
    out
}

fn props(fallback: bool) -> Vec<(&'static str, Box<dyn ToValue>)> {
    vec![
        ("class-labels", Box::new("0=person,1=bag,2=weapon")),
        ("trigger-labels", Box::new("person,weapon")),
        ("temporal-size", Box::new(2u32)),
        ("cooldown", Box::new(0u32)),
        ("input-width", Box::new(16u32)),
        ("input-height", Box::new(16u32)),
        ("fallback-on-error", Box::new(fallback)),
    ]
}

fn make(fallback: bool) -> (gst::Element, gst::Bus, Arc<Recorder>) {
    let p = props(fallback);
    let refs: Vec<(&str, &dyn ToValue)> = p.iter().map(|(k, v)| (*k, v.as_ref())).collect();
    let (e, bus) = element(&refs);
    let scorer = Arc::new(Recorder::default());
    set_scorer(&e, scorer.clone());
    (e, bus, scorer)
}

#[test]
fn without_the_surface_libraries_the_video_flows_with_labels_only_verdicts() {
    no_surface_libraries();
    with_watchdog(Duration::from_secs(60), || {
        let (e, bus, scorer) = make(true);
        let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
        h.set_src_caps(caps());
        // Two clips of two frames (the frame after a clip is its cooldown, even at 0).
        for n in 1..=5u64 {
            h.push(buffer(n)).expect("the video keeps flowing");
            h.pull().expect("the buffer came out");
        }
        let mut warnings = Vec::new();
        let mut verdicts = Vec::new();
        wait_for("verdicts", Duration::from_secs(10), || {
            let (w, _, v) = drain(&bus);
            warnings.extend(w);
            verdicts.extend(v);
            verdicts.len() >= 2
        });
        let w = warnings
            .iter()
            .find(|w| w.contains("Cannot read NVMM frames"))
            .unwrap_or_else(|| panic!("no NVMM warning in {warnings:?}"));
        for part in [
            "cannot open libnvbufsurface.so",
            "install DeepStream",
            "nvidia-deepstream-videodecode-cu13",
            "labels only (fallback-on-error=true)",
        ] {
            assert!(w.contains(part), "{part:?} missing from: {w}");
        }
        assert_eq!(warnings.len(), 1, "warned once: {warnings:?}");
        assert_eq!(verdicts.len(), 2, "{verdicts:?}");
        // A guess from labels is `fallback` (never `verified`), on the positive side here.
        for v in &verdicts {
            assert_eq!(v.status, Status::Fallback, "{v:?}");
            assert!(v.is_positive(), "{v:?}");
            assert!((v.score - 0.9).abs() < 1e-6, "{v:?}");
            assert_eq!(v.label, "weapon");
            assert!(v.reason.contains("labels only"), "{v:?}");
        }
        // What iguardpublish makes of them: `fallback` with `positive`, so MQTT's
        // `<prefix>/<source>/verified` topic does not fire on a guess.
        let events = published(&mut h);
        assert_eq!(events.len(), 2, "one iguard-verdict event per verdict");
        for ev in &events {
            assert_eq!(ev.status, "fallback", "{:?}", ev.body());
            assert_eq!(ev.body()["positive"], serde_json::Value::Bool(true));
            assert!(!ev.is_verified(), "a label guess is not a verified alert");
        }
        let s = Stats::of(&e);
        assert_eq!((s.u("fallback"), s.u("verified")), (2, 0), "{}", s.0);
        assert!(
            scorer.clips.lock().unwrap().is_empty(),
            "the model scorer got no pixel-less clip"
        );
        Stats::of(&e).assert_adds_up();
        drop(h);
    });
}

#[test]
fn without_the_surface_libraries_and_no_fallback_the_caps_are_refused_with_the_reason() {
    no_surface_libraries();
    with_watchdog(Duration::from_secs(60), || {
        let (e, bus, _scorer) = make(false);
        let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
        h.set_src_caps(caps());
        assert!(h.push(buffer(1)).is_err(), "not negotiated");
        let (_, errors, _) = drain(&bus);
        assert!(
            errors.iter().any(|e| e.contains("Cannot read NVMM frames")
                && e.contains("cannot open libnvbufsurface.so")
                && e.contains("install DeepStream")),
            "{errors:?}"
        );
        drop(h);
    });
}
