// SPDX-License-Identifier: MIT OR Apache-2.0
//! DeepStream against NVIDIA's own DeepStream 9.0 metadata libraries (see `nvidia/mod.rs`):
//! the reader on batch metas NVIDIA's functions built (several frames and objects, every field
//! it reads, `obj_label` at the 9.x offset), before and after NVIDIA's batch copy; verdicts
//! written back as a classifier meta on the tracked object and an `IGUARD.VERDICT` user meta
//! on its frame, read back through NVIDIA's lists and kept by buffer copies; the C header of
//! the user meta against the Rust struct; and a real pipeline through `iguardverify`.
//!
//! These tests fail, never skip, when the libraries are missing (`make test` fetches them).

mod common;
mod nvidia;

use std::sync::Mutex;
use std::time::Duration;

use gst::prelude::*;
use gstiguard::deepstream::verdict_meta::{
    AttachError, IGuardVerdictMeta, ObjectResult, Target, attach_verdict, c_array_str,
    live_payloads,
};
use gstiguard::deepstream::{DeepStreamLayout, layout};
use gstiguard::detections::deepstream::{ClassLabels, DeepStreamReader, carries_batch_meta};
use gstiguard::detections::{Detection, DetectionReader, FrameDetections, SourceFrame};
use gstiguard::geometry::Rect;
use gstiguard::verdict::{Status, Verdict};
use nvidia::{Frame, Object, UNTRACKED};

/// `NVDS_START_USER_META`: types registered by name start here.
const NVDS_START_USER_META: i32 = 4096 + 4096 + 1;

/// Tests that count live verdict payloads must not overlap each other.
static PAYLOADS: Mutex<()> = Mutex::new(());

fn read(layout: DeepStreamLayout, labels: &str, buffer: &gst::BufferRef) -> Vec<FrameDetections> {
    let mut r = DeepStreamReader::new(layout, ClassLabels::parse(labels).unwrap());
    let mut out = Vec::new();
    r.read(buffer, &mut out);
    assert_eq!(r.skipped(), 0);
    out
}

fn rect(r: [f32; 4]) -> Rect {
    Rect {
        x: r[0],
        y: r[1],
        width: r[2],
        height: r[3],
    }
}

/// Three sources in one batch, out of order, with tracked and untracked objects.
fn three_sources() -> Vec<Frame> {
    vec![
        Frame::new(4, 1, 0)
            .at(17, 1_000_000_000)
            .size(1280, 720)
            .object(Object::new(0, 0.91, [10.0, 20.0, 30.5, 40.25], "person").id(11))
            .object(Object::new(2, 0.42, [100.0, 50.0, 8.0, 9.0], "weapon"))
            .object(Object::new(1, 0.66, [0.0, 0.0, 1280.0, 720.0], "bag").id(13)),
        Frame::new(0, 2, 1).at(3, 40_000_000),
        Frame::new(7, 0, 2)
            .at(-1, u64::MAX)
            .object(Object::new(5, 0.125, [1.5, 2.5, 3.5, 4.5], "caméra").id(1 << 40))
            .object(Object::new(9, 1.0, [-4.0, 1070.0, 50.0, 50.0], "").id(0)),
    ]
}

fn expected(frames: &[Frame]) -> Vec<FrameDetections> {
    frames
        .iter()
        .map(|f| FrameDetections {
            source: SourceFrame {
                source_id: f.source_id,
                pad_index: f.pad_index,
                batch_index: f.batch_id,
                frame_num: u64::try_from(f.frame_num).ok(),
                pts: (f.buf_pts != u64::MAX).then_some(f.buf_pts),
            },
            // NVIDIA's nvds_add_obj_meta_to_frame prepends: the list is in reverse order.
            detections: f
                .objects
                .iter()
                .rev()
                .map(|o| Detection {
                    class_id: o.class_id,
                    label: match o.label.as_str() {
                        "" => format!("class-{}", o.class_id),
                        l => l.to_string(),
                    },
                    confidence: o.confidence as f64,
                    rect: rect(o.rect),
                    object_id: (o.object_id != UNTRACKED).then_some(o.object_id),
                })
                .collect(),
        })
        .collect()
}

#[test]
fn nvidias_libraries_open_and_register_the_meta_api() {
    common::init();
    let l = nvidia::lib();
    let g = nvidia::gst_lib();
    if let Some(dir) = std::env::var_os("IGUARD_DEEPSTREAM_LIB_DIR") {
        let dir = dir.to_string_lossy().into_owned();
        assert!(l.from().starts_with(&dir), "{} not from {dir}", l.from());
        assert!(g.from().starts_with(&dir), "{} not from {dir}", g.from());
    }
    // SAFETY: `nvds_meta_api_get_type` takes nothing and returns a GType.
    let api = unsafe { (g.meta_api_get_type)() };
    let api: gst::glib::Type = unsafe { gst::glib::translate::from_glib(api) };
    assert_eq!(api.name(), layout::META_API_NAME);
    assert_eq!(gstiguard::deepstream::meta_api(), Some(api));
    let user_type = l.verdict_user_meta_type();
    assert!(
        user_type >= NVDS_START_USER_META,
        "a user meta type: {user_type}"
    );
    // SAFETY: a NUL-terminated name NVIDIA only reads.
    let again =
        unsafe { (l.get_user_meta_type)(layout::VERDICT_USER_META_NAME.as_ptr().cast_mut()) };
    assert_eq!(again, user_type, "stable within the process");

    // Inside a DeepStream pipeline the copy nvinfer loaded is found first, by name.
    use gstiguard::deepstream::loader::{NvLib, Place, open};
    let loaded = open(NvLib::NvdsMeta, &[Place::Loaded]).expect("found as already loaded");
    assert!(loaded.from.contains("already loaded"), "{}", loaded.from);
}

#[test]
fn the_reader_reads_every_field_of_nvidias_batch_meta() {
    common::init();
    let frames = three_sources();
    let buffer = nvidia::buffer_with(&frames);
    assert!(carries_batch_meta(&buffer));

    // NVIDIA's lists hold what was added, where the reader looks for them.
    let batch = nvidia::batch_of(&buffer);
    assert!(!batch.is_null(), "NVIDIA's own lookup finds the batch meta");
    let fms = nvidia::frames(batch);
    assert_eq!(fms.len(), 3);
    assert_eq!(nvidia::num_frames_in_batch(batch), 3);
    for (fm, f) in fms.iter().zip(&frames) {
        assert_eq!(nvidia::meta_type(fm.cast()), layout::meta_type::FRAME);
        assert_eq!(nvidia::num_obj_meta(*fm) as usize, f.objects.len());
        for o in nvidia::objects(*fm) {
            assert_eq!(nvidia::meta_type(o.cast()), layout::meta_type::OBJECT);
        }
    }

    assert_eq!(read(DeepStreamLayout::V9, "", &buffer), expected(&frames));
}

#[test]
fn obj_label_is_read_at_344_with_deepstream_9_only() {
    common::init();
    let frames = three_sources();
    let buffer = nvidia::buffer_with(&frames);
    let labels = |layout, class_labels| -> Vec<String> {
        read(layout, class_labels, &buffer)
            .into_iter()
            .flat_map(|f| f.detections)
            .map(|d| d.label)
            .collect()
    };
    let v9: DeepStreamLayout = "9.0".parse().unwrap();
    // Objects come in reverse order of adding (NVIDIA prepends).
    // An empty obj_label falls back on the class id.
    assert_eq!(
        labels(v9, ""),
        ["bag", "weapon", "person", "class-9", "caméra"]
    );
    assert_eq!(
        labels(v9, "2=gun"),
        ["bag", "gun", "person", "class-9", "caméra"],
        "class-labels wins"
    );
    let by_class = ["class-1", "class-2", "class-0", "class-9", "class-5"];
    assert_eq!(
        labels(DeepStreamLayout::Unknown, ""),
        by_class,
        "no layout, no obj_label"
    );
    assert_eq!(
        labels(DeepStreamLayout::V5toV8, ""),
        by_class,
        "336 is not obj_label in 9.x"
    );
}

#[test]
fn the_reader_sees_the_same_after_nvidias_batch_copy() {
    common::init();
    let frames = vec![
        Frame::new(1, 1, 0).at(5, 99).object(
            Object::new(3, 0.5, [1.0, 2.0, 3.0, 4.0], "person")
                .id(8)
                .text("person"),
        ),
        Frame::new(2, 0, 1).object(Object::new(4, 0.25, [5.0, 6.0, 7.0, 8.0], "car")),
    ];
    let original = nvidia::buffer_with(&frames);
    let copy = original.copy();
    let (a, b) = (nvidia::batch_of(&original), nvidia::batch_of(&copy));
    assert!(
        !b.is_null() && a != b,
        "NVIDIA's copy function made a new batch meta"
    );
    // NVIDIA's object copy duplicates the string at our display_text offset.
    let (oa, ob) = (
        nvidia::objects(nvidia::frames(a)[0])[0],
        nvidia::objects(nvidia::frames(b)[0])[0],
    );
    assert_ne!(nvidia::display_text_ptr(oa), nvidia::display_text_ptr(ob));
    assert_eq!(nvidia::display_text(ob).as_deref(), Some("person"));
    drop(original);
    assert_eq!(read(DeepStreamLayout::V9, "", &copy), expected(&frames));
}

fn verdict(source_id: u32, status: Status, label: &str, score: f64) -> Verdict {
    Verdict {
        request_id: 77,
        source_id,
        pad_index: 5,
        status,
        score,
        threshold: 0.5,
        label: label.into(),
        trigger_label: "person".into(),
        trigger_confidence: 0.875,
        clip_start_pts: Some(1_000),
        clip_end_pts: Some(2_000),
        frames: 16,
        queue_ms: 1.25,
        processing_ms: 12.5,
        scorer: "onnx".into(),
        reason: String::new(),
        object_id: None,
        crop: None,
        snapshot: None,
        zones: Vec::new(),
    }
}

fn target(object_id: Option<u64>) -> Target {
    Target {
        object_id,
        class_id: Some(3),
        unique_id: 42,
        layout: DeepStreamLayout::Unknown,
    }
}

fn two_sources() -> Vec<Frame> {
    vec![
        Frame::new(1, 0, 0).object(Object::new(0, 0.9, [0.0; 4], "person").id(11)),
        Frame::new(2, 1, 1)
            .object(
                Object::new(0, 0.8, [1.0; 4], "person")
                    .id(11)
                    .text("person"),
            )
            .object(Object::new(0, 0.7, [2.0; 4], "person").id(12)),
    ]
}

/// The verdict payloads on the frame of `source` in `buffer`.
fn payloads(buffer: &gst::BufferRef, source: u32) -> Vec<(*const u8, IGuardVerdictMeta)> {
    let ty = nvidia::lib().verdict_user_meta_type();
    let batch = nvidia::batch_of(buffer);
    nvidia::frames(batch)
        .into_iter()
        .filter(|f| nvidia::source_id(*f) == source)
        .flat_map(nvidia::user_metas)
        .filter(|(t, _)| *t == ty)
        .map(|(_, p)| {
            assert!(!p.is_null());
            // SAFETY: the payload of an IGUARD.VERDICT user meta is an IGuardVerdictMeta.
            (p, unsafe { p.cast::<IGuardVerdictMeta>().read_unaligned() })
        })
        .collect()
}

fn object(
    buffer: &gst::BufferRef,
    source: u32,
    id: u64,
) -> *mut gstiguard::deepstream::nvds::NvDsObjectMeta {
    let batch = nvidia::batch_of(buffer);
    let f = nvidia::frames(batch)
        .into_iter()
        .find(|f| nvidia::source_id(*f) == source)
        .unwrap();
    nvidia::objects(f)
        .into_iter()
        .find(|o| nvidia::object_id(*o) == id)
        .unwrap()
}

fn check_payload(m: &IGuardVerdictMeta, v: &Verdict, object_id: u64) {
    assert_eq!(
        (m.version, m.size as usize),
        (1, size_of::<IGuardVerdictMeta>())
    );
    assert_eq!((m.request_id, m.object_id), (v.request_id, object_id));
    assert_eq!(
        (m.source_id, m.pad_index, m.frames),
        (v.source_id, v.pad_index, v.frames)
    );
    assert_eq!((m.score, m.threshold), (v.score, v.threshold));
    assert_eq!(m.trigger_confidence, v.trigger_confidence);
    assert_eq!(
        (Some(m.clip_start_pts), Some(m.clip_end_pts)),
        (v.clip_start_pts, v.clip_end_pts)
    );
    assert_eq!((m.queue_ms, m.processing_ms), (v.queue_ms, v.processing_ms));
    assert_eq!(c_array_str(&m.status_name), v.status.as_str());
    assert_eq!(c_array_str(&m.label), v.label);
    assert_eq!(c_array_str(&m.trigger_label), v.trigger_label);
    assert_eq!(c_array_str(&m.scorer), v.scorer);
    assert_eq!(c_array_str(&m.reason), v.reason);
}

/// Checks the classifier meta and display text on `o` and the payload on source 2's frame.
/// `copied`: the buffer is a copy, whose classifier meta NVIDIA's copy made.
fn check_written(buffer: &gst::BufferRef, v: &Verdict, copied: bool) {
    let o = object(buffer, 2, 11);
    let cls = nvidia::classifiers(o);
    assert_eq!(cls.len(), 1, "{cls:?}");
    let c = &cls[0];
    assert_eq!(c.meta_type, layout::meta_type::CLASSIFIER);
    assert_eq!((c.num_labels, c.unique_component_id), (1, 42));
    // NVIDIA's nvds_copy_classifier_meta (9.0.2) copies the unique id and labels, not
    // classifier_type.
    let ty = (!copied).then_some("iguardverify");
    assert_eq!(c.classifier_type.as_deref(), ty);
    assert_eq!(c.labels.len(), 1);
    let l = &c.labels[0];
    assert_eq!(l.meta_type, layout::meta_type::LABEL_INFO);
    assert_eq!(l.result_label, "verified armed");
    assert_eq!(l.p_result_label, None);
    assert_eq!((l.result_class_id, l.result_prob), (3, v.score as f32));
    assert_eq!(
        nvidia::display_text(o).as_deref(),
        Some("person verified armed 0.91")
    );

    // The other object with the same tracker id in another source, and another object of the
    // frame, are untouched.
    for o in [object(buffer, 1, 11), object(buffer, 2, 12)] {
        assert!(nvidia::classifiers(o).is_empty());
        assert_eq!(nvidia::display_text(o), None);
    }
    let p = payloads(buffer, 2);
    assert_eq!(p.len(), 1);
    check_payload(&p[0].1, v, 11);
    assert!(payloads(buffer, 1).is_empty());
}

#[test]
fn a_verdict_becomes_a_classifier_meta_on_its_object_and_a_user_meta_on_its_frame() {
    common::init();
    let _g = PAYLOADS.lock().unwrap_or_else(|e| e.into_inner());
    let live = live_payloads();
    let mut buffer = nvidia::buffer_with(&two_sources());
    let v = verdict(2, Status::Verified, "armed", 0.914);
    let a = attach_verdict(buffer.get_mut().unwrap(), &v, &target(Some(11))).unwrap();
    assert_eq!(a.batch_id, 1);
    assert_eq!(a.object, ObjectResult::Classified);
    assert_eq!(
        a.layout,
        DeepStreamLayout::V9,
        "recognised from the object pool"
    );
    check_written(&buffer, &v, false);
    assert_eq!(live_payloads(), live + 1);
    drop(buffer);
    assert_eq!(live_payloads(), live, "NVIDIA's release called ours");
}

#[test]
fn both_metas_survive_a_buffer_copy() {
    common::init();
    let _g = PAYLOADS.lock().unwrap_or_else(|e| e.into_inner());
    let live = live_payloads();
    let mut buffer = nvidia::buffer_with(&two_sources());
    let v = verdict(2, Status::Verified, "armed", 0.914);
    attach_verdict(buffer.get_mut().unwrap(), &v, &target(Some(11))).unwrap();
    let copy = buffer.copy();
    assert_ne!(nvidia::batch_of(&buffer), nvidia::batch_of(&copy));
    assert_eq!(
        live_payloads(),
        live + 2,
        "the copy has a payload of its own"
    );
    assert_ne!(payloads(&buffer, 2)[0].0, payloads(&copy, 2)[0].0);
    drop(buffer);
    check_written(&copy, &v, true);
    let copy_of_copy = copy.copy();
    drop(copy);
    check_written(&copy_of_copy, &v, true);
    drop(copy_of_copy);
    assert_eq!(live_payloads(), live);
}

#[test]
fn untracked_or_absent_objects_get_only_the_user_meta() {
    common::init();
    let _g = PAYLOADS.lock().unwrap_or_else(|e| e.into_inner());
    let mut buffer = nvidia::buffer_with(&two_sources());
    let v = verdict(2, Status::Timeout, "", f64::NAN);
    let b = buffer.get_mut().unwrap();
    let a = attach_verdict(b, &v, &target(None)).unwrap();
    assert_eq!(a.object, ObjectResult::Untracked);
    let a = attach_verdict(b, &v, &target(Some(99))).unwrap();
    assert_eq!(a.object, ObjectResult::NotInFrame);
    for id in [11, 12] {
        assert!(nvidia::classifiers(object(&buffer, 2, id)).is_empty());
    }
    let p = payloads(&buffer, 2);
    assert_eq!(p.len(), 2);
    // NVIDIA's nvds_add_user_meta_to_frame prepends too.
    assert_eq!(p[1].1.object_id, u64::MAX);
    assert_eq!(p[0].1.object_id, 99);
    assert!(p[1].1.score.is_nan());
    assert_eq!(c_array_str(&p[1].1.status_name), "timeout");

    let e = attach_verdict(
        buffer.get_mut().unwrap(),
        &verdict(9, Status::Verified, "x", 1.0),
        &target(None),
    );
    assert!(matches!(e, Err(AttachError::SourceNotInBatch(9))), "{e:?}");
    let mut plain = gst::Buffer::new();
    let e = attach_verdict(plain.get_mut().unwrap(), &v, &target(None));
    assert!(matches!(e, Err(AttachError::NoBatchMeta)), "{e:?}");
}

#[test]
fn a_shared_buffer_is_never_written() {
    common::init();
    let _g = PAYLOADS.lock().unwrap_or_else(|e| e.into_inner());
    let live = live_payloads();
    let buffer = nvidia::buffer_with(&two_sources());
    let other = buffer.clone();
    // SAFETY: a deliberately wrong `&mut` to a shared buffer, to check the guard refuses it
    // before touching anything.
    let shared = unsafe { &mut *other.as_ptr().cast_mut().cast::<gst::BufferRef>() };
    let e = attach_verdict(
        shared,
        &verdict(2, Status::Verified, "armed", 0.9),
        &target(Some(11)),
    );
    assert!(matches!(e, Err(AttachError::NotWritable)), "{e:?}");
    assert!(e.unwrap_err().to_string().contains("not writable"));
    assert!(nvidia::classifiers(object(&buffer, 2, 11)).is_empty());
    assert!(payloads(&buffer, 2).is_empty());
    assert_eq!(live_payloads(), live);
}

#[test]
fn a_long_label_goes_whole_to_p_result_label() {
    common::init();
    let _g = PAYLOADS.lock().unwrap_or_else(|e| e.into_inner());
    let mut buffer = nvidia::buffer_with(&two_sources());
    let long = "é".repeat(100);
    let v = verdict(1, Status::Rejected, &long, 0.1);
    attach_verdict(buffer.get_mut().unwrap(), &v, &target(Some(11))).unwrap();
    let cls = nvidia::classifiers(object(&buffer, 1, 11));
    let l = &cls[0].labels[0];
    let full = format!("rejected {long}");
    assert_eq!(l.p_result_label.as_deref(), Some(full.as_str()));
    assert!(l.result_label.len() <= 127 && full.starts_with(&l.result_label));
    assert_eq!(
        l.result_label.len(),
        9 + 2 * 59,
        "cut at a character boundary"
    );
    let p = payloads(&buffer, 1);
    assert_eq!(c_array_str(&p[0].1.label), "é".repeat(63));
}

#[test]
fn the_c_header_matches_the_rust_struct() {
    use std::mem::offset_of;
    type M = IGuardVerdictMeta;
    let fields: [(&str, usize); 20] = [
        ("version", offset_of!(M, version)),
        ("size", offset_of!(M, size)),
        ("request_id", offset_of!(M, request_id)),
        ("object_id", offset_of!(M, object_id)),
        ("source_id", offset_of!(M, source_id)),
        ("pad_index", offset_of!(M, pad_index)),
        ("status", offset_of!(M, status)),
        ("frames", offset_of!(M, frames)),
        ("score", offset_of!(M, score)),
        ("threshold", offset_of!(M, threshold)),
        ("trigger_confidence", offset_of!(M, trigger_confidence)),
        ("clip_start_pts", offset_of!(M, clip_start_pts)),
        ("clip_end_pts", offset_of!(M, clip_end_pts)),
        ("queue_ms", offset_of!(M, queue_ms)),
        ("processing_ms", offset_of!(M, processing_ms)),
        ("status_name", offset_of!(M, status_name)),
        ("label", offset_of!(M, label)),
        ("trigger_label", offset_of!(M, trigger_label)),
        ("scorer", offset_of!(M, scorer)),
        ("reason", offset_of!(M, reason)),
    ];
    let dir = std::env::temp_dir().join(format!("iguard-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut c = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include \"iguard_verdict_meta.h\"\nint main(void) {\n",
    );
    for (f, _) in &fields {
        c += &format!("  printf(\"{f} %zu\\n\", offsetof(IGuardVerdictMeta, {f}));\n");
    }
    c += "  printf(\"sizeof %zu\\n\", sizeof(IGuardVerdictMeta));\n";
    c += "  printf(\"name %s\\n\", IGUARD_VERDICT_USER_META_NAME);\n";
    c += "  printf(\"version %d\\n\", IGUARD_VERDICT_META_VERSION);\n";
    c += "  printf(\"statuses %d %d %d %d %d %d\\n\", IGUARD_VERDICT_VERIFIED, IGUARD_VERDICT_REJECTED, IGUARD_VERDICT_FALLBACK, IGUARD_VERDICT_TIMEOUT, IGUARD_VERDICT_DROPPED, IGUARD_VERDICT_ERROR);\n  return 0;\n}\n";
    let src = dir.join("offsets.c");
    let exe = dir.join("offsets");
    std::fs::write(&src, c).unwrap();
    let include = concat!(env!("CARGO_MANIFEST_DIR"), "/include");
    let out = std::process::Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-std=c99", "-Wall", "-Werror", "-I", include, "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("a C compiler (cc) to compile include/iguard_verdict_meta.h");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = std::process::Command::new(&exe).output().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let text = String::from_utf8(run.stdout).unwrap();
    let mut want: Vec<String> = fields.iter().map(|(f, o)| format!("{f} {o}")).collect();
    want.push(format!("sizeof {}", size_of::<M>()));
    want.push(format!(
        "name {}",
        layout::VERDICT_USER_META_NAME.to_str().unwrap()
    ));
    want.push("version 1".into());
    let codes: Vec<String> = Status::ALL
        .iter()
        .map(|s| gstiguard::deepstream::verdict_meta::status_code(*s).to_string())
        .collect();
    want.push(format!("statuses {}", codes.join(" ")));
    assert_eq!(text.lines().collect::<Vec<_>>(), want);
}

/// appsrc ! iguardverify ! fakesink with NVIDIA-made batch metas of three sources on RGBA
/// frames: the two that show a trigger label get a verdict per two-frame clip (two each), each
/// naming its own source and pad, with its own frames' `buf_pts`; the third gets none.
#[test]
fn a_pipeline_with_nvidias_metas_gives_verdicts_per_source() {
    common::with_watchdog(Duration::from_secs(60), || {
        common::init();
        let _g = PAYLOADS.lock().unwrap_or_else(|e| e.into_inner());
        let pipeline = gst::parse::launch(
            "appsrc name=src format=time ! iguardverify name=v deepstream-version=9.0 \
             trigger-labels=person,weapon temporal-size=2 cooldown=0 input-width=16 \
             input-height=16 ! fakesink name=sink sync=false",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let src = pipeline.by_name("src").unwrap();
        src.set_property("caps", common::caps());
        let bus = pipeline.bus().unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        for n in 0..4u64 {
            let mut b = common::frame((100, 60, 64, 80), n * 33);
            let pts = n * 33_000_000;
            let frames = [
                Frame::new(3, 0, 0)
                    .at(n as i32, pts)
                    .size(common::W, common::H)
                    .object(Object::new(0, 0.9, [100.0, 60.0, 64.0, 80.0], "person").id(5)),
                Frame::new(8, 1, 1)
                    .at(n as i32, pts + 1)
                    .size(common::W, common::H)
                    .object(Object::new(1, 0.9, [10.0, 10.0, 50.0, 50.0], "bag")),
                Frame::new(6, 2, 2)
                    .at(n as i32, pts + 2)
                    .size(common::W, common::H)
                    .object(Object::new(2, 0.8, [20.0, 30.0, 40.0, 40.0], "weapon")),
            ];
            nvidia::attach(b.get_mut().unwrap(), &frames);
            let r = src.emit_by_name::<gst::FlowReturn>("push-buffer", &[&b]);
            assert_eq!(r, gst::FlowReturn::Ok);
        }
        let r = src.emit_by_name::<gst::FlowReturn>("end-of-stream", &[]);
        assert_eq!(r, gst::FlowReturn::Ok);
        let mut verdicts = Vec::new();
        for msg in bus.iter_timed(gst::ClockTime::from_seconds(30)) {
            match msg.view() {
                gst::MessageView::Eos(_) => break,
                gst::MessageView::Error(e) => panic!("{} ({:?})", e.error(), e.debug()),
                gst::MessageView::Element(_) => {
                    if let Some(s) = msg.structure()
                        && s.name() == gstiguard::meta::MESSAGE_NAME
                    {
                        verdicts.push(gstiguard::meta::from_structure(s).unwrap());
                    }
                }
                _ => {}
            }
        }
        pipeline.set_state(gst::State::Null).unwrap();
        for v in &verdicts {
            let offset = if v.source_id == 6 { 2 } else { 0 };
            let start = v.clip_start_pts.unwrap();
            assert_eq!(
                start % 33_000_000,
                offset,
                "the clip starts at its source's buf_pts"
            );
            assert_eq!(v.clip_end_pts, Some(start + 33_000_000));
        }
        let mut seen: Vec<_> = verdicts
            .iter()
            .map(|v: &Verdict| (v.source_id, v.pad_index, v.trigger_label.clone(), v.status))
            .collect();
        seen.sort_by_key(|s| s.0);
        assert_eq!(
            seen,
            [
                (3, 0, "person".to_string(), Status::Fallback),
                (3, 0, "person".to_string(), Status::Fallback),
                (6, 2, "weapon".to_string(), Status::Fallback),
                (6, 2, "weapon".to_string(), Status::Fallback),
            ],
            "{verdicts:?}"
        );
    });
}
/// Sets the element size of the object pool of `buffer`'s batch (as a DeepStream release of
/// another object size would have it); returns the size it had.
fn set_object_size(buffer: &gst::BufferRef, size: u32) -> u32 {
    let batch = nvidia::batch_of(buffer).cast::<u8>();
    // SAFETY: NVIDIA's live batch meta of a buffer we hold; its object pool is a live
    // `NvDsMetaPool`, whose `element_size` guint is written and restored by the tests before
    // NVIDIA's functions allocate, copy or release anything more from it.
    unsafe {
        let pool = batch
            .add(layout::batch::OBJ_META_POOL)
            .cast::<*mut u8>()
            .read_unaligned();
        assert!(!pool.is_null());
        let slot = pool.add(layout::pool::ELEMENT_SIZE).cast::<u32>();
        let old = slot.read_unaligned();
        slot.write_unaligned(size);
        old
    }
}

/// Issue 19, item 4: only the object sizes of known releases (544: 5.0–8.x, 552: 9.x) are
/// written to. A batch whose pool allocates 560-byte objects (a future release whose object
/// grew) gets nothing: no classifier meta, no `display_text` change, no user meta, whatever
/// `deepstream-version` says; the error names the size.
#[test]
fn a_batch_whose_objects_are_of_an_unknown_size_gets_nothing_written() {
    common::init();
    let _g = PAYLOADS.lock().unwrap_or_else(|e| e.into_inner());
    let live = live_payloads();
    let mut buffer = nvidia::buffer_with(&two_sources());
    let real = set_object_size(&buffer, 560);
    assert_eq!(real, layout::object::SIZE_V9, "NVIDIA's 9.x object size");
    let v = verdict(2, Status::Verified, "armed", 0.914);
    for configured in [
        DeepStreamLayout::V5toV8,
        DeepStreamLayout::V9,
        DeepStreamLayout::Unknown,
    ] {
        for object_id in [Some(11), None] {
            let t = Target {
                layout: configured,
                ..target(object_id)
            };
            let e = attach_verdict(buffer.get_mut().unwrap(), &v, &t);
            assert!(
                matches!(e, Err(AttachError::UnknownObjectSize { size: 560, configured: c }) if c == configured),
                "{configured} {object_id:?}: {e:?}"
            );
            let text = e.unwrap_err().to_string();
            assert!(text.contains("560-byte NvDsObjectMeta"), "{text}");
        }
    }
    set_object_size(&buffer, real);
    for (source, id) in [(2, 11), (2, 12), (1, 11)] {
        assert!(nvidia::classifiers(object(&buffer, source, id)).is_empty());
    }
    assert_eq!(
        nvidia::display_text(object(&buffer, 2, 11)).as_deref(),
        Some("person"),
        "display_text untouched"
    );
    assert!(payloads(&buffer, 1).is_empty() && payloads(&buffer, 2).is_empty());
    assert_eq!(live_payloads(), live);
    // With the size restored, the same verdict is written.
    let a = attach_verdict(buffer.get_mut().unwrap(), &v, &target(Some(11))).unwrap();
    assert_eq!(
        (a.object, a.layout),
        (ObjectResult::Classified, DeepStreamLayout::V9)
    );
}

/// The element warns once, naming the size, when its batches' objects are of an unknown size,
/// writes nothing to them, and its verdicts still go out on the bus.
#[test]
fn the_element_warns_once_about_an_unknown_object_size_and_writes_nothing() {
    common::with_watchdog(Duration::from_secs(60), || {
        common::init();
        let _g = PAYLOADS.lock().unwrap_or_else(|e| e.into_inner());
        let live = live_payloads();
        let (e, bus) = common::element(&[
            ("trigger-labels", &"person"),
            ("temporal-size", &2u32),
            ("cooldown", &0u32),
            ("input-width", &16u32),
            ("input-height", &16u32),
            ("deepstream-version", &"9.0"),
        ]);
        let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
        h.set_src_caps(common::caps());
        let (mut verdicts, mut warnings) = (0, Vec::new());
        // Every message at once: popping one type discards the others.
        let drain = |verdicts: &mut usize, warnings: &mut Vec<String>| {
            while let Some(m) = bus.pop() {
                match m.view() {
                    gst::MessageView::Warning(w) => warnings.push(w.error().to_string()),
                    gst::MessageView::Element(_)
                        if m.structure()
                            .is_some_and(|s| s.name() == gstiguard::meta::MESSAGE_NAME) =>
                    {
                        *verdicts += 1
                    }
                    _ => {}
                }
            }
        };
        for n in 0..40u64 {
            let mut b = common::frame((100, 60, 64, 80), n * 33);
            let frames = [Frame::new(3, 0, 0)
                .at(n as i32, n * 33_000_000)
                .size(common::W, common::H)
                .object(Object::new(0, 0.9, [100.0, 60.0, 64.0, 80.0], "person").id(5))];
            nvidia::attach(b.get_mut().unwrap(), &frames);
            let real = set_object_size(&b, 560);
            h.push(b).unwrap();
            let out = h.pull().unwrap();
            set_object_size(&out, real);
            assert!(payloads(&out, 3).is_empty(), "buffer {n}: a user meta");
            assert!(nvidia::classifiers(object(&out, 3, 5)).is_empty());
            drain(&mut verdicts, &mut warnings);
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            verdicts >= 3,
            "only {verdicts} verdicts: too few to warn more than once"
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("Cannot write verdicts as DeepStream metadata")
                && warnings[0].contains("560-byte NvDsObjectMeta"),
            "{warnings:?}"
        );
        h.push_event(gst::event::Eos::new());
        drop(h);
        let _ = e.set_state(gst::State::Null);
        assert_eq!(live_payloads(), live);
    });
}

/// The element itself writes its verdicts as DeepStream metadata on the next batch that carries
/// the verdict's source: the IGUARD.VERDICT user meta on that source's frame, with the
/// classifier meta's `unique-id` as set.
/// Feeds `iguardverify` (its scorer from `scorer`, when given) frames with NVIDIA's batch metas
/// (source 3 triggers, tracked object 5; source 4 is empty) until a verdict is written; returns
/// its user meta and the classifier metas on object 5.
fn first_written(
    scorer: Option<std::sync::Arc<dyn gstiguard::scorer::Scorer>>,
) -> (IGuardVerdictMeta, Vec<nvidia::Classifier>) {
    common::init();
    // The element's payloads count in `live_payloads`, which other tests compare.
    let _g = PAYLOADS.lock().unwrap_or_else(|e| e.into_inner());
    let e = gst::ElementFactory::make("iguardverify")
        .property("trigger-labels", "person")
        .property("temporal-size", 2u32)
        .property("cooldown", 1000u32)
        .property("input-width", 16u32)
        .property("input-height", 16u32)
        .property("unique-id", 42u32)
        .property("deepstream-version", "9.0")
        .build()
        .unwrap();
    if let Some(s) = scorer {
        common::set_scorer(&e, s);
    }
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_src_caps(common::caps());
    for n in 0..40u64 {
        let mut b = common::frame((100, 60, 64, 80), n * 33);
        let frames = [
            Frame::new(3, 0, 0)
                .at(n as i32, n * 33_000_000)
                .size(common::W, common::H)
                .object(Object::new(0, 0.9, [100.0, 60.0, 64.0, 80.0], "person").id(5)),
            Frame::new(4, 1, 1)
                .at(n as i32, n * 33_000_000)
                .size(common::W, common::H),
        ];
        nvidia::attach(b.get_mut().unwrap(), &frames);
        h.push(b).unwrap();
        let out = h.pull().unwrap();
        assert!(
            payloads(&out, 4).is_empty(),
            "nothing for the untriggered source"
        );
        let written: Vec<_> = payloads(&out, 3).into_iter().map(|(_, m)| m).collect();
        if !written.is_empty() {
            assert_eq!(written.len(), 1, "one verdict, written once");
            let cls = nvidia::classifiers(object(&out, 3, 5));
            h.push_event(gst::event::Eos::new());
            return (written[0], cls);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("no verdict written in 40 frames");
}

#[test]
fn the_element_writes_its_verdicts_as_deepstream_user_metas() {
    common::with_watchdog(Duration::from_secs(60), || {
        let (m, cls) = first_written(None);
        assert_eq!(m.source_id, 3);
        assert_eq!(m.frames, 2);
        assert_eq!(c_array_str(&m.status_name), "fallback");
        // The label-based fallback names no model class.
        assert_eq!(cls.len(), 1, "{cls:?}");
        assert_eq!(cls[0].labels[0].result_class_id, u32::MAX);
    });
}

/// A model-like scorer: every clip is class 2, `armed`, at 0.9.
struct Armed;

impl gstiguard::scorer::Scorer for Armed {
    fn name(&self) -> &str {
        "armed-model"
    }
    fn is_model(&self) -> bool {
        true
    }
    fn class_index(&self, label: &str) -> Option<u32> {
        (label == "armed").then_some(2)
    }
    fn score(
        &self,
        clips: &[&gstiguard::clip::Clip],
        _: &gstiguard::scorer::Cancel,
    ) -> Result<Vec<gstiguard::scorer::Score>, gstiguard::scorer::ScoreError> {
        Ok(clips
            .iter()
            .map(|_| gstiguard::scorer::Score {
                score: 0.9,
                label: "armed".into(),
            })
            .collect())
    }
}

#[test]
fn a_model_verdict_names_the_models_class_in_result_class_id() {
    common::with_watchdog(Duration::from_secs(60), || {
        let (m, cls) = first_written(Some(std::sync::Arc::new(Armed)));
        assert_eq!(c_array_str(&m.status_name), "verified");
        assert_eq!(cls.len(), 1, "{cls:?}");
        let l = &cls[0].labels[0];
        assert_eq!(l.result_label, "verified armed");
        assert_eq!((l.result_class_id, l.result_prob), (2, 0.9));
    });
}
