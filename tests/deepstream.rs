// SPDX-License-Identifier: MIT OR Apache-2.0
//! The DeepStream reader against batch metas built by a stand-in for DeepStream (see
//! `standin/mod.rs`): frames and objects as written, labels, the layouts' `obj_label`, and
//! garbage that must yield nothing rather than a crash.

mod standin;

use std::sync::Once;

use gstiguard::detections::deepstream::{
    ClassLabels, DeepStreamLayout, DeepStreamReader, MAX_FRAMES_PER_BUFFER, MAX_OBJECTS_PER_BUFFER,
    carries_batch_meta,
};
use gstiguard::detections::{Detection, DetectionReader, FrameDetections, SourceFrame};
use gstiguard::geometry::Rect;
use standin::{Batch, Release, UNTRACKED};

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstiguard::plugin_register_static().expect("register the iguard plugin");
    });
}

const MS: u64 = 1_000_000;

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

fn rect(x: f32, y: f32, width: f32, height: f32) -> Rect {
    Rect {
        x,
        y,
        width,
        height,
    }
}

#[test]
fn three_sources_interleaved_in_one_batch() {
    let buffer = buffer_with(
        Batch::new()
            .frame(2, 2, 120, 4_000 * MS, |f| {
                f.object(0, 0.91, (10.0, 20.0, 30.0, 60.0), "")
                    .id(7)
                    .object(2, 0.55, (100.5, 50.25, 40.0, 40.0), "")
            })
            .frame(0, 0, 118, 4_040 * MS, |f| f)
            .frame(1, 1, 3, 4_033 * MS, |f| {
                f.object(1, 0.3, (0.0, 0.0, 1920.0, 1080.0), "")
                    .id(1 << 40)
                    .object(7, 1.0, (5.0, 6.0, 7.0, 8.0), "")
                    .object(0, 0.125, (-4.0, 1070.0, 50.0, 50.0), "")
                    .id(0)
            }),
    );
    let labels = ClassLabels::parse("0=person,1=bag,2=face").unwrap();
    let mut reader = DeepStreamReader::new(DeepStreamLayout::Unknown, labels);
    let out = read_with(&mut reader, &buffer);

    let det = |class_id, label: &str, confidence: f32, r: Rect, object_id| Detection {
        class_id,
        label: label.to_string(),
        confidence: confidence as f64,
        rect: r,
        object_id,
    };
    let frame = |source_id, batch_index, frame_num, pts, detections| FrameDetections {
        source: SourceFrame {
            source_id,
            pad_index: source_id,
            batch_index,
            frame_num: Some(frame_num),
            pts: Some(pts),
        },
        detections,
    };
    assert_eq!(
        out,
        vec![
            frame(
                2,
                0,
                120,
                4_000 * MS,
                vec![
                    det(0, "person", 0.91, rect(10.0, 20.0, 30.0, 60.0), Some(7)),
                    det(2, "face", 0.55, rect(100.5, 50.25, 40.0, 40.0), None),
                ]
            ),
            frame(0, 1, 118, 4_040 * MS, vec![]),
            frame(
                1,
                2,
                3,
                4_033 * MS,
                vec![
                    det(1, "bag", 0.3, rect(0.0, 0.0, 1920.0, 1080.0), Some(1 << 40)),
                    det(7, "class-7", 1.0, rect(5.0, 6.0, 7.0, 8.0), None),
                    det(0, "person", 0.125, rect(-4.0, 1070.0, 50.0, 50.0), Some(0)),
                ]
            ),
        ]
    );
    assert_eq!(reader.skipped(), 0);
    assert!(carries_batch_meta(&buffer));
}

#[test]
fn pad_index_and_source_id_are_read_separately() {
    let buffer =
        buffer_with(
            Batch::new()
                .frame(9, 4, -1, u64::MAX, |f| f)
                .frame(3, 0, 0, 0, |f| f),
        );
    let out = read(&buffer);
    assert_eq!(
        out.iter().map(|f| f.source).collect::<Vec<_>>(),
        [
            SourceFrame {
                source_id: 9,
                pad_index: 4,
                batch_index: 0,
                frame_num: None,
                pts: None,
            },
            SourceFrame {
                source_id: 3,
                pad_index: 0,
                batch_index: 1,
                frame_num: Some(0),
                pts: Some(0),
            },
        ]
    );
}

#[test]
fn class_labels_win_over_obj_label() {
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
fn obj_label_at_336_is_read_with_the_v5_to_v8_layout() {
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
fn obj_label_at_344_is_read_with_the_v9_layout() {
    let batch = || {
        Batch::new().release(Release::Ds9).frame(0, 0, 1, 0, |f| {
            f.object(0, 0.9, (1.0, 1.0, 2.0, 2.0), "person").object(
                3,
                0.9,
                (1.0, 1.0, 2.0, 2.0),
                "knife",
            )
        })
    };
    assert_eq!(
        labels_with(DeepStreamLayout::V9, batch()),
        ["person", "knife"]
    );
    assert_eq!(
        labels_with(DeepStreamLayout::V5toV8, batch()),
        ["class-0", "class-3"]
    );
    assert_eq!(
        labels_with(DeepStreamLayout::Unknown, batch()),
        ["class-0", "class-3"]
    );
}

#[test]
fn obj_label_must_be_terminated_utf8_within_its_128_bytes() {
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
fn a_wrong_meta_type_is_not_a_batch() {
    let buffer = buffer_with(
        Batch::new()
            .meta_type(4096)
            .frame(0, 0, 1, 0, |f| f.object(0, 1.0, (1.0, 1.0, 2.0, 2.0), "")),
    );
    assert!(read(&buffer).is_empty());
    assert!(!carries_batch_meta(&buffer));
}

#[test]
fn only_the_batch_meta_among_other_metas_is_read() {
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
fn null_meta_data_yields_nothing() {
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
fn empty_lists_yield_no_frames_or_no_detections() {
    assert!(read(&buffer_with(Batch::new())).is_empty());
    let out = read(&buffer_with(Batch::new().frame(4, 4, 1, 0, |f| f)));
    assert_eq!(out.len(), 1);
    assert!(out[0].detections.is_empty());
}

#[test]
fn null_list_data_is_skipped() {
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
fn circular_lists_end_at_the_bounds() {
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
fn nonsense_boxes_are_passed_on_as_they_are() {
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
fn the_batch_memory_is_freed_with_the_buffer() {
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
