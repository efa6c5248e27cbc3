// SPDX-License-Identifier: MIT OR Apache-2.0
//! The ONNX Runtime scorer through real pipelines and real generated models (`make models`),
//! with ONNX Runtime from the PyPI wheel (`ORT_DYLIB_PATH`, set by `make test`).
//!
//! What each test proves: the element's score equals Python onnxruntime's on the same tiles
//! (two preprocessing setups); a batch of N equals N single calls; a slow model is cancelled at
//! `worker-timeout` and the pool goes on; a missing, corrupt or `.engine` model, a conflicting
//! shape, an unavailable execution provider and a missing runtime library each give the
//! documented warning + fallback or a clear error; the model fixes the clip shape; two
//! elements with one `model-instance-id` share one model load and one pool.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use gst::prelude::*;
use gstiguard::clip::Clip;
use gstiguard::meta;
use gstiguard::scorer::model_io::{Activation, ClassRef, ModelIo};
use gstiguard::scorer::onnx::{OnnxConfig, OnnxScorer};
use gstiguard::scorer::{Cancel, Scorer};
use gstiguard::verdict::{Status, Verdict};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A generated model; `make models` (run by `make test`) creates them.
fn model(name: &str) -> PathBuf {
    let p = root().join("models").join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `make models` (make test does)",
        p.display()
    );
    p
}

fn python() -> PathBuf {
    std::env::var_os("IGUARD_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/python"))
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("iguard-onnx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Generates a variant of the tiny model into a temp file.
fn generate(args: &[&str], name: &str) -> PathBuf {
    let out = tmp(name);
    let st = Command::new(python())
        .arg(root().join("models/generate.py"))
        .args(args)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run models/generate.py");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    out
}

/// Python onnxruntime's scores for clips dumped as raw RGB.
fn python_scores(
    model: &Path,
    clips: &[PathBuf],
    t: u32,
    h: u32,
    w: u32,
    extra: &[&str],
) -> Vec<f64> {
    let mut cmd = Command::new(python());
    cmd.arg(root().join("models/score_clip.py"))
        .arg("--model")
        .arg(model)
        .args([
            "--frames",
            &t.to_string(),
            "--height",
            &h.to_string(),
            "--width",
            &w.to_string(),
        ])
        .args(extra);
    for c in clips {
        cmd.arg("--clip").arg(c);
    }
    let out = cmd.output().expect("run models/score_clip.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    // {"scores": [a, b, ...], ...}
    let start = text.find("\"scores\": [").expect("scores in the output") + 11;
    let end = start + text[start..].find(']').unwrap();
    text[start..end]
        .split(',')
        .map(|v| v.trim().parse::<f64>().unwrap())
        .collect()
}

/// A seeded texture frame, RGBA.
fn texture(seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..W * H * 4)
        .map(|i| {
            if i % 4 == 3 {
                return 255;
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

const BOX: (u32, u32, u32, u32) = (50, 40, 112, 112);

/// The box's pixels of a texture frame, RGB.
fn crop(frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for y in BOX.1..BOX.1 + BOX.3 {
        for x in BOX.0..BOX.0 + BOX.2 {
            let i = ((y * W + x) * 4) as usize;
            out.extend_from_slice(&frame[i..i + 3]);
        }
    }
    out
}

/// Pushes 16 texture frames with a person exactly on `BOX` through an element and returns its
/// first verdict and the clip the element should have built.
fn verify_textures(props: &[(&str, &dyn ToValue)]) -> (Verdict, Vec<u8>) {
    let mut all: Vec<(&str, &dyn ToValue)> = vec![
        ("roi-margin", &0.0f32),
        ("cooldown", &1000u32),
        ("trigger-labels", &"person"),
    ];
    all.extend_from_slice(props);
    let (e, bus) = element(&all);
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_src_caps(caps());
    let mut clip = Vec::new();
    for n in 0..16u64 {
        let pixels = texture(n + 1);
        clip.extend(crop(&pixels));
        let mut b = gst::Buffer::from_mut_slice(pixels);
        b.get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(n * 33));
        add_detection(&mut b, "person", 0.9, BOX);
        h.push(b).unwrap();
    }
    h.push_event(gst::event::Eos::new());
    let v = bus_verdicts(&bus);
    Stats::of(&e).assert_adds_up();
    assert_eq!(v.len(), 1, "{v:?}");
    (v[0].clone(), clip)
}

#[test]
fn element_scores_match_python_onnxruntime() {
    let tiny = model("tiny-action.onnx");
    let path = tiny.to_str().unwrap();
    let (v, clip) = verify_textures(&[("model-path", &path), ("positive-classes", &"1")]);
    assert_eq!(
        (
            v.status == Status::Verified || v.status == Status::Rejected,
            v.scorer.as_str()
        ),
        (true, "onnx")
    );
    let dump = tmp("clip-a.rgb");
    std::fs::write(&dump, &clip).unwrap();
    let py = python_scores(&tiny, &[dump], 16, 112, 112, &["--positive", "1"]);
    assert!(
        (v.score - py[0]).abs() < 1e-4,
        "element {} vs python {}",
        v.score,
        py[0]
    );
}

#[test]
fn other_layouts_and_normalisations_match_python_too() {
    let m = generate(
        &["tiny", "--layout", "ndhwc", "--classes", "3", "--seed", "7"],
        "ndhwc.onnx",
    );
    let path = m.to_str().unwrap();
    let (v, clip) = verify_textures(&[
        ("model-path", &path),
        ("positive-classes", &"0,2"),
        ("mean", &"120,110,100"),
        ("scale", &"0.02,0.01,0.015"),
        ("output-activation", &"sigmoid"),
        ("tensor-layout", &"ndhwc"),
    ]);
    assert_eq!(v.scorer, "onnx", "{v:?}");
    let dump = tmp("clip-b.rgb");
    std::fs::write(&dump, &clip).unwrap();
    let py = python_scores(
        &m,
        &[dump],
        16,
        112,
        112,
        &[
            "--layout",
            "ndhwc",
            "--positive",
            "0,2",
            "--mean",
            "120,110,100",
            "--scale",
            "0.02,0.01,0.015",
            "--activation",
            "sigmoid",
        ],
    );
    assert!(
        (v.score - py[0]).abs() < 1e-4,
        "element {} vs python {}",
        v.score,
        py[0]
    );
}

fn clip_of(seed: u64) -> Clip {
    let t = 16;
    let mut pixels = Vec::new();
    for f in 0..t {
        pixels.extend(crop(&texture(seed * 100 + f)));
    }
    Clip {
        request_id: seed,
        source: Default::default(),
        width: 112,
        height: 112,
        frames: t as u32,
        real_frames: t as u32,
        pixels,
        frame_labels: gstiguard::clip::FrameLabels::empty(t as usize),
        region: gstiguard::geometry::PixelRect::full(112, 112),
        trigger_label: String::new(),
        trigger_confidence: 1.0,
        start_pts: None,
        end_pts: None,
    }
}

#[test]
fn a_batch_of_n_gives_the_scores_of_n_single_calls() {
    init();
    let config = OnnxConfig {
        model_path: model("tiny-action.onnx"),
        io: ModelIo {
            positive: vec![ClassRef::Index(1)],
            activation: Activation::Softmax,
            ..Default::default()
        },
        max_batch: 4,
        ..Default::default()
    };
    let scorer = OnnxScorer::load(config).expect("load the tiny model");
    assert_eq!(scorer.max_batch(), 4);
    let clips: Vec<Clip> = (1..=3).map(clip_of).collect();
    let refs: Vec<&Clip> = clips.iter().collect();
    let batch = scorer.score(&refs, &Cancel::new()).unwrap();
    let singles: Vec<f64> = clips
        .iter()
        .map(|c| scorer.score(&[c], &Cancel::new()).unwrap()[0].score)
        .collect();
    for (b, s) in batch.iter().zip(&singles) {
        assert!(
            (b.score - s).abs() < 1e-5,
            "batch {} vs single {}",
            b.score,
            s
        );
    }
    assert!(
        singles.windows(2).any(|w| (w[0] - w[1]).abs() > 1e-6),
        "different clips score differently"
    );
    // And Python, given the same three clips as one batch, agrees.
    let dumps: Vec<PathBuf> = clips
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let p = tmp(&format!("batch-{i}.rgb"));
            std::fs::write(&p, &c.pixels).unwrap();
            p
        })
        .collect();
    let py = python_scores(
        &model("tiny-action.onnx"),
        &dumps,
        16,
        112,
        112,
        &["--positive", "1"],
    );
    for (b, p) in batch.iter().zip(&py) {
        assert!(
            (b.score - p).abs() < 1e-4,
            "rust {} vs python {}",
            b.score,
            p
        );
    }
}

#[test]
fn a_fixed_batch_of_one_is_respected() {
    let m = generate(&["tiny", "--batch", "1"], "batch1.onnx");
    let scorer = OnnxScorer::load(OnnxConfig {
        model_path: m,
        max_batch: 8,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(scorer.info().batch, Some(1));
    assert_eq!(
        scorer.max_batch(),
        1,
        "the pool never hands it more than one clip"
    );
}

/// Runs a pipeline to EOS; returns verdicts, warning and error texts, and the stats of every
/// iguardverify element by name.
struct Run {
    verdicts: Vec<Verdict>,
    warnings: Vec<String>,
    errors: Vec<String>,
    stats: Vec<(String, Stats)>,
    started: bool,
}

fn run(desc: &str) -> Run {
    init();
    let p = gst::parse::launch(desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let _stop = StopOnDrop(p.clone().upcast());
    let bus = p.bus().unwrap();
    let started = p.set_state(gst::State::Playing).is_ok();
    let mut r = Run {
        verdicts: vec![],
        warnings: vec![],
        errors: vec![],
        stats: vec![],
        started,
    };
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                r.errors.push(format!("{} {:?}", e.error(), e.debug()));
                break;
            }
            gst::MessageView::Warning(w) => r.warnings.push(w.error().to_string()),
            gst::MessageView::Element(m) => {
                if let Some(s) = m.structure()
                    && s.name() == meta::MESSAGE_NAME
                {
                    r.verdicts.push(meta::from_structure(s).unwrap());
                }
            }
            _ => (),
        }
    }
    for e in p.iterate_elements().into_iter().flatten() {
        if e.factory().is_some_and(|f| f.name() == "iguardverify") {
            r.stats.push((e.name().to_string(), Stats::of(&e)));
        }
    }
    p.set_state(gst::State::Null).unwrap();
    for (_, s) in &r.stats {
        s.assert_adds_up();
    }
    r
}

fn demo(verify: &str) -> String {
    format!(
        "videotestsrc num-buffers=45 ! video/x-raw,width=320,height=240,format=RGBA,framerate=30/1 \
         ! iguardreplay location={}/tests/data/demo-detections.txt ! iguardverify name=v cooldown=0 clip-per=source {verify} \
         ! fakesink sync=false",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn a_slow_model_is_cancelled_at_the_deadline_and_the_pool_goes_on() {
    let slow = model("slow-action.onnx");
    let r = with_watchdog(Duration::from_secs(120), move || {
        run(&demo(&format!(
            "model-path={} worker-timeout=0.1 max-workers=1",
            slow.display()
        )))
    });
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let statuses: Vec<Status> = r.verdicts.iter().map(|v| v.status).collect();
    assert_eq!(
        statuses,
        vec![Status::Timeout; 3],
        "every clip got its verdict: {:?}",
        r.verdicts
    );
    assert!(
        r.verdicts
            .iter()
            .all(|v| v.scorer == "onnx" && v.reason.contains("worker-timeout"))
    );
    let s = &r.stats[0].1;
    assert_eq!(s.u("timed-out"), 3);
    assert!(s.u("worker-restarts") >= 1);
}

#[test]
fn a_missing_model_warns_and_falls_back() {
    let r = run(&demo("model-path=/nonexistent/model.onnx"));
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("/nonexistent/model.onnx") && w.contains("fallback")),
        "{:?}",
        r.warnings
    );
    assert_eq!(r.verdicts.len(), 3);
    assert!(
        r.verdicts
            .iter()
            .all(|v| v.status == Status::Fallback && v.scorer == "fallback")
    );
}

#[test]
fn a_corrupt_model_warns_or_fails_as_asked() {
    let bad = tmp("corrupt.onnx");
    std::fs::write(&bad, b"this is not a protobuf at all \x00\x01\x02").unwrap();
    let r = run(&demo(&format!("model-path={}", bad.display())));
    assert!(
        r.warnings.iter().any(|w| w.contains("corrupt.onnx")),
        "{:?}",
        r.warnings
    );
    assert!(r.verdicts.iter().all(|v| v.scorer == "fallback") && r.verdicts.len() == 3);

    let r = run(&demo(&format!(
        "model-path={} fallback-on-error=false",
        bad.display()
    )));
    assert!(!r.started || !r.errors.is_empty());
    assert!(
        r.errors.iter().any(|e| e.contains("corrupt.onnx")),
        "{:?}",
        r.errors
    );
    assert!(r.verdicts.is_empty());
}

#[test]
fn an_engine_file_is_refused_with_what_to_do() {
    let engine = tmp("model.engine");
    std::fs::write(&engine, b"serialized engine").unwrap();
    let r = run(&demo(&format!(
        "model-path={} fallback-on-error=false",
        engine.display()
    )));
    let text = r.errors.join(" ");
    assert!(
        text.contains("TensorRT") && text.contains("execution-provider=tensorrt"),
        "{text}"
    );
}

#[test]
fn the_model_fixes_the_clip_shape_and_a_conflict_is_an_error() {
    let tiny = model("tiny-action.onnx");
    // input-width/height default to 224: the model's 112 wins, silently.
    let r = run(&demo(&format!("model-path={}", tiny.display())));
    assert!(
        r.errors.is_empty() && r.warnings.is_empty(),
        "{:?} {:?}",
        r.errors,
        r.warnings
    );
    assert!(
        r.verdicts
            .iter()
            .all(|v| v.scorer == "onnx" && v.status.is_scored()),
        "{:?}",
        r.verdicts
    );
    // Set explicitly to something else: a clear error naming both values.
    let r = run(&demo(&format!(
        "model-path={} temporal-size=8",
        tiny.display()
    )));
    let text = r.errors.join(" ");
    assert!(
        text.contains("temporal-size=8") && text.contains("16"),
        "{text}"
    );
}

#[test]
fn an_unavailable_execution_provider_falls_back_to_the_cpu() {
    let tiny = model("tiny-action.onnx");
    let r = run(&demo(&format!(
        "model-path={} execution-provider=cuda",
        tiny.display()
    )));
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("cuda") && w.contains("CPU")),
        "{:?}",
        r.warnings
    );
    assert_eq!(r.verdicts.len(), 3);
    assert!(r.verdicts.iter().all(|v| v.scorer == "onnx"));
}

#[test]
fn two_elements_with_one_instance_id_share_the_model_and_the_pool() {
    let tiny = model("tiny-action.onnx");
    let data = format!(
        "{}/tests/data/demo-detections.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let branch = |name: &str| {
        format!(
            "videotestsrc num-buffers=45 ! video/x-raw,width=320,height=240,format=RGBA,framerate=30/1 \
             ! iguardreplay location={data} ! iguardverify name={name} cooldown=0 clip-per=source model-path={} \
             model-instance-id=site-a ! fakesink sync=false ",
            tiny.display()
        )
    };
    let r = run(&(branch("cam1") + &branch("cam2")));
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.stats.len(), 2);
    let pools: Vec<String> = r
        .stats
        .iter()
        .map(|(_, s)| s.0.get::<String>("pool").unwrap())
        .collect();
    assert_eq!(
        pools[0], pools[1],
        "one pool (and so one model load) for both"
    );
    for (_, s) in &r.stats {
        assert_eq!(s.0.get::<String>("model-instance-id").unwrap(), "site-a");
        assert_eq!(s.u("submitted"), 3, "each element counts its own requests");
    }
    assert_eq!(r.verdicts.len(), 6);
    assert!(r.verdicts.iter().all(|v| v.scorer == "onnx"));
}

#[test]
fn a_missing_runtime_library_warns_and_falls_back() {
    // The runtime loads once per process, so this runs gst-launch with a wrong path.
    init();
    let tiny = model("tiny-action.onnx");
    let out = Command::new("gst-launch-1.0")
        .arg("-m")
        .args(demo(&format!("model-path={}", tiny.display())).split_whitespace())
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .env("GST_PLUGIN_PATH", plugin_dir())
        .output()
        .expect("run gst-launch-1.0");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("cannot load the ONNX Runtime library")
            && text.contains("/nonexistent/libonnxruntime.so"),
        "{text}"
    );
    assert_eq!(text.matches("status=(string)fallback").count(), 3, "{text}");
}
