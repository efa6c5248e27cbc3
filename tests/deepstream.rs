// SPDX-License-Identifier: MIT OR Apache-2.0
//! The DeepStream reader against batch metas built by a stand-in for DeepStream
//! (`standin/mod.rs`), kept only for what NVIDIA's real 9.0 library cannot give here: the
//! object layout of DeepStream 5.x–8.x (`obj_label` at 336; tests `standin_ds5_to_8_*`), and
//! malformed metas NVIDIA's functions never make (wrong `meta_type`, null pointers, circular
//! lists, unterminated labels, nonsense boxes; tests `standin_garbage_*`). Everything 9.x, and
//! several frames and objects per batch, is tested against NVIDIA's own library in
//! `deepstream_nvidia.rs`.

mod standin;

use std::sync::Once;

use gstiguard::detections::deepstream::{
    ClassLabels, DeepStreamLayout, DeepStreamReader, MAX_FRAMES_PER_BUFFER, MAX_OBJECTS_PER_BUFFER,
    carries_batch_meta,
};
use gstiguard::detections::{DetectionReader, FrameDetections};
use standin::{Batch, Release, UNTRACKED};

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstiguard::plugin_register_static().expect("register the iguard plugin");
    });
}

fn read_with(reader: &mut DeepStreamReader, buffer: &gst::BufferRef) -> Vec<FrameDetections> {
    let mut out = Vec::new();
    reader.read(buffer, &mut out);
    out
}

fn read(buffer: &gst::BufferRef) -> Vec<FrameDetections> {
    read_with(&mut DeepStreamReader::default(), buffer)
}

fn buffer_with(batch: Batch) -> gst::Buffer {
    init();
    let mut buffer = gst::Buffer::new();
    batch.attach(buffer.get_mut().unwrap());
    buffer
}

fn labels_with(layout: DeepStreamLayout, batch: Batch) -> Vec<String> {
    let buffer = buffer_with(batch);
    let mut reader = DeepStreamReader::new(layout, ClassLabels::default());
    read_with(&mut reader, &buffer)
        .into_iter()
        .flat_map(|f| f.detections)
        .map(|d| d.label)
        .collect()
}

#[test]
fn standin_ds5_to_8_class_labels_win_over_obj_label_at_336() {
    let buffer = buffer_with(Batch::new().frame(0, 0, 1, 0, |f| {
        f.object(0, 0.9, (1.0, 1.0, 2.0, 2.0), "Person")
            .object(1, 0.9, (1.0, 1.0, 2.0, 2.0), "Bag")
            .object(2, 0.9, (1.0, 1.0, 2.0, 2.0), "")
    }));
    let labels = ClassLabels::parse("person;;face").unwrap();
    let mut reader = DeepStreamReader::new(DeepStreamLayout::V5toV8, labels);
    let got: Vec<String> = read_with(&mut reader, &buffer)[0]
        .detections
        .iter()
        .map(|d| d.label.clone())
        .collect();
    assert_eq!(got, ["person", "Bag", "face"]);
}

#[test]
fn standin_ds5_to_8_obj_label_at_336_is_read_with_the_v5_to_v8_layout() {
    let batch = || {
        Batch::new().release(Release::Ds8).frame(0, 0, 1, 0, |f| {
            f.object(0, 0.9, (1.0, 1.0, 2.0, 2.0), "person").object(
                5,
                0.9,
                (1.0, 1.0, 2.0, 2.0),
                "Person carrying a bag",
            )
        })
    };
    assert_eq!(
        labels_with(DeepStreamLayout::V5toV8, batch()),
        ["person", "Person carrying a bag"]
    );
    // Read at 344, a DeepStream 8 label is missing or cut short: the layout must match the
    // DeepStream that wrote the metas, or be left unknown.
    assert_eq!(
        labels_with(DeepStreamLayout::V9, batch()),
        ["class-0", "arrying a bag"]
    );
    assert_eq!(
        labels_with(DeepStreamLayout::Unknown, batch()),
        ["class-0", "class-5"]
    );
}

#[test]
fn standin_garbage_obj_label_must_be_terminated_utf8_within_its_128_bytes() {
    let batch = Batch::new().frame(0, 0, 1, 0, |f| {
        f.object(0, 0.9, (1.0, 1.0, 2.0, 2.0), "")
            .raw_label(&[b'a'; 128])
            .object(1, 0.9, (1.0, 1.0, 2.0, 2.0), "")
            .raw_label(b"caf\xe9\0")
            .object(2, 0.9, (1.0, 1.0, 2.0, 2.0), "")
            .raw_label("café\0".as_bytes())
    });
    assert_eq!(
        labels_with(DeepStreamLayout::V5toV8, batch),
        ["class-0", "class-1", "café"]
    );
}

#[test]
fn standin_garbage_a_wrong_meta_type_is_not_a_batch() {
    let buffer = buffer_with(
        Batch::new()
            .meta_type(4096)
            .frame(0, 0, 1, 0, |f| f.object(0, 1.0, (1.0, 1.0, 2.0, 2.0), "")),
    );
    assert!(read(&buffer).is_empty());
    assert!(!carries_batch_meta(&buffer));
}

#[test]
fn standin_garbage_only_the_batch_meta_among_other_metas_is_read() {
    init();
    let mut buffer = gst::Buffer::new();
    {
        let b = buffer.get_mut().unwrap();
        gst_video::VideoRegionOfInterestMeta::add(b, "person", (0, 0, 10, 10));
        Batch::new()
            .meta_type(4098)
            .frame(5, 5, 1, 0, |f| f)
            .attach(b);
        Batch::new().frame(1, 1, 1, 0, |f| f).attach(b);
        standin::attach_undersized(b);
    }
    let mut reader = DeepStreamReader::default();
    let out = read_with(&mut reader, &buffer);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].source.source_id, 1);
    assert_eq!(reader.skipped(), 1, "the undersized meta");
}

#[test]
fn standin_garbage_null_meta_data_yields_nothing() {
    let buffer = buffer_with(
        Batch::new()
            .null_meta_data()
            .frame(0, 0, 1, 0, |f| f.object(0, 1.0, (1.0, 1.0, 2.0, 2.0), "")),
    );
    let mut reader = DeepStreamReader::default();
    assert!(read_with(&mut reader, &buffer).is_empty());
    assert_eq!(reader.skipped(), 1);
}

#[test]
fn standin_garbage_empty_lists_yield_no_frames_or_no_detections() {
    assert!(read(&buffer_with(Batch::new())).is_empty());
    let out = read(&buffer_with(Batch::new().frame(4, 4, 1, 0, |f| f)));
    assert_eq!(out.len(), 1);
    assert!(out[0].detections.is_empty());
}

#[test]
fn standin_garbage_null_list_data_is_skipped() {
    let buffer = buffer_with(
        Batch::new()
            .null_frame()
            .frame(1, 1, 1, 0, |f| {
                f.null_object()
                    .object(0, 0.5, (1.0, 1.0, 2.0, 2.0), "")
                    .null_object()
            })
            .null_frame(),
    );
    let mut reader = DeepStreamReader::default();
    let out = read_with(&mut reader, &buffer);
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].source.batch_index, 1,
        "batch_id as written, not our count"
    );
    assert_eq!(out[0].detections.len(), 1);
    assert_eq!(reader.skipped(), 4);
}

#[test]
fn standin_garbage_circular_lists_end_at_the_bounds() {
    let buffer = buffer_with(
        Batch::new()
            .frame(0, 0, 1, 0, |f| {
                f.object(0, 0.5, (1.0, 1.0, 2.0, 2.0), "")
                    .object(1, 0.5, (1.0, 1.0, 2.0, 2.0), "")
                    .circular()
            })
            .frame(1, 1, 1, 0, |f| f)
            .circular(),
    );
    let out = read(&buffer);
    assert_eq!(out.len(), MAX_FRAMES_PER_BUFFER);
    let objects: usize = out.iter().map(|f| f.detections.len()).sum();
    assert_eq!(objects, MAX_OBJECTS_PER_BUFFER);
}

#[test]
fn standin_garbage_nonsense_boxes_are_passed_on_as_they_are() {
    let buffer = buffer_with(Batch::new().frame(0, 0, 1, 0, |f| {
        f.object(
            0,
            f32::NAN,
            (f32::NAN, f32::INFINITY, -5.0, f32::NEG_INFINITY),
            "",
        )
        .id(UNTRACKED)
    }));
    let out = read(&buffer);
    let d = &out[0].detections[0];
    assert!(d.confidence.is_nan());
    assert!(d.rect.x.is_nan());
    assert_eq!(d.rect.y, f32::INFINITY);
    assert_eq!(d.rect.width, -5.0);
    assert!(!d.rect.is_valid());
    assert_eq!(d.object_id, None);
}

#[test]
fn standin_the_batch_memory_is_freed_with_the_buffer() {
    init();
    let mut buffer = gst::Buffer::new();
    let attached = Batch::new()
        .frame(0, 0, 1, 0, |f| {
            f.object(0, 1.0, (1.0, 1.0, 2.0, 2.0), "person")
        })
        .frame(1, 1, 1, 0, |f| f.null_object().circular())
        .attach(buffer.get_mut().unwrap());
    let copy = buffer.clone();
    drop(buffer);
    assert!(!attached.is_freed(), "still referenced");
    assert_eq!(read(&copy).len(), 2);
    drop(copy);
    assert!(attached.is_freed());
}

const CHILD: &str = "IGUARD_DEEPSTREAM_TEST_CHILD";

/// Runs in a child process of its own, where the stand-in never registers `NvDsMetaAPI`.
#[test]
fn without_deepstream_registered_nothing_is_read() {
    if std::env::var_os(CHILD).is_some() {
        init();
        assert!(gst::glib::Type::from_name("NvDsMetaAPI").is_none());
        let mut buffer = gst::Buffer::new();
        gst_video::VideoRegionOfInterestMeta::add(
            buffer.get_mut().unwrap(),
            "person",
            (0, 0, 10, 10),
        );
        assert!(read(&buffer).is_empty());
        assert!(!carries_batch_meta(&buffer));
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "without_deepstream_registered_nothing_is_read",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .expect("run the test binary again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
