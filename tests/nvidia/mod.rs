// SPDX-License-Identifier: MIT OR Apache-2.0
//! Batch metas made by NVIDIA's own DeepStream 9.0 libraries (`libnvds_meta.so`,
//! `libnvdsgst_meta.so` from PyPI `nvidia-deepstream-videodecode-cu13`, fetched by
//! `make deepstream-libs` and found through `IGUARD_DEEPSTREAM_LIB_DIR`), the way `nvstreammux`
//! and `nvinfer` make them: NVIDIA's pool functions allocate and link the metas, and the fields
//! a producer fills are written here at the offsets of the 9.x headers.
//!
//! The offsets are written out here, from NVMM-FACTS.md and NVIDIA's headers, rather than taken
//! from the crate's `layout` module, so a wrong offset on either side makes the tests fail.
//!
//! Without the libraries every test using this module fails (it never skips), saying how to get
//! them.
#![allow(dead_code)]

use std::ffi::{CStr, CString, c_char};

use gst::glib;
use gst::glib::ffi::GList;
use gstiguard::deepstream::nvds::{
    NvDsBatchMeta, NvDsFrameMeta, NvDsObjectMeta, NvdsGstMetaLib, NvdsMetaLib, nvds_gst_meta,
    nvds_meta,
};

// NvDsBatchMeta / NvDsFrameMeta / NvDsObjectMeta (9.x, LP64).
const BASE_BATCH_META: usize = 0;
const BATCH_MAX_FRAMES_IN_BATCH: usize = 40;
const BATCH_NUM_FRAMES_IN_BATCH: usize = 44;
const BATCH_FRAME_META_LIST: usize = 96;
const FRAME_PAD_INDEX: usize = 40;
const FRAME_BATCH_ID: usize = 44;
const FRAME_FRAME_NUM: usize = 48;
const FRAME_BUF_PTS: usize = 56;
const FRAME_SOURCE_ID: usize = 72;
const FRAME_SOURCE_WIDTH: usize = 80;
const FRAME_SOURCE_HEIGHT: usize = 84;
const FRAME_NUM_OBJ_META: usize = 96;
const FRAME_OBJ_META_LIST: usize = 104;
const FRAME_USER_META_LIST: usize = 120;
const OBJECT_CLASS_ID: usize = 52;
const OBJECT_OBJECT_ID: usize = 56;
const OBJECT_CONFIDENCE: usize = 96;
const OBJECT_RECT: usize = 104; // left, top, width, height: f32
const OBJECT_DISPLAY_TEXT: usize = 240;
const OBJECT_LABEL: usize = 344;
const OBJECT_CLASSIFIER_META_LIST: usize = 472;
// NvDsBaseMeta, NvDsClassifierMeta, NvDsLabelInfo, NvDsUserMeta.
const BASE_META_TYPE: usize = 8;
const CLASSIFIER_NUM_LABELS: usize = 40;
const CLASSIFIER_UNIQUE_COMPONENT_ID: usize = 44;
const CLASSIFIER_LABEL_INFO_LIST: usize = 48;
const CLASSIFIER_TYPE: usize = 56;
const LABEL_RESULT_LABEL: usize = 44;
const LABEL_P_RESULT_LABEL: usize = 176;
const LABEL_RESULT_CLASS_ID: usize = 184;
const LABEL_RESULT_PROB: usize = 192;
const USER_META_DATA: usize = 40;
/// `NvDsMeta.meta_type`, and its value for a batch meta.
const NVDS_META_TYPE: usize = 32;
const NVDS_BATCH_GST_META: i32 = 4097;
pub const UNTRACKED: u64 = u64::MAX;

fn fail(e: &dyn std::fmt::Display) -> ! {
    panic!(
        "NVIDIA's DeepStream libraries are needed for this test and could not be opened: {e}\n\
         Run `make deepstream-libs` (or `make test`, which does) and export \
         IGUARD_DEEPSTREAM_LIB_DIR=$PWD/.deepstream/nvidia/deepstream_videodecode/_libs"
    )
}

/// `libnvds_meta.so`; the test fails if it cannot be opened.
pub fn lib() -> &'static NvdsMetaLib {
    nvds_meta().unwrap_or_else(|e| fail(e))
}

/// `libnvdsgst_meta.so`; the test fails if it cannot be opened.
pub fn gst_lib() -> &'static NvdsGstMetaLib {
    nvds_gst_meta().unwrap_or_else(|e| fail(e))
}

fn put<T>(base: *mut u8, offset: usize, v: T) {
    // SAFETY: callers write inside metas NVIDIA allocated with their 9.x sizes.
    unsafe { base.add(offset).cast::<T>().write_unaligned(v) }
}

pub fn get<T: Copy>(base: *const u8, offset: usize) -> T {
    // SAFETY: callers read inside live metas NVIDIA allocated with their 9.x sizes.
    unsafe { base.add(offset).cast::<T>().read_unaligned() }
}

/// An object meta to make.
#[derive(Debug, Clone)]
pub struct Object {
    pub class_id: i32,
    pub object_id: u64,
    pub confidence: f32,
    /// left, top, width, height.
    pub rect: [f32; 4],
    pub label: String,
    pub display_text: Option<String>,
}

impl Object {
    pub fn new(class_id: i32, confidence: f32, rect: [f32; 4], label: &str) -> Self {
        Object {
            class_id,
            object_id: UNTRACKED,
            confidence,
            rect,
            label: label.into(),
            display_text: None,
        }
    }

    pub fn id(mut self, id: u64) -> Self {
        self.object_id = id;
        self
    }

    pub fn text(mut self, t: &str) -> Self {
        self.display_text = Some(t.into());
        self
    }
}

/// A frame meta to make.
#[derive(Debug, Clone)]
pub struct Frame {
    pub source_id: u32,
    pub pad_index: u32,
    pub batch_id: u32,
    pub frame_num: i32,
    pub buf_pts: u64,
    pub width: u32,
    pub height: u32,
    pub objects: Vec<Object>,
}

impl Frame {
    pub fn new(source_id: u32, pad_index: u32, batch_id: u32) -> Self {
        Frame {
            source_id,
            pad_index,
            batch_id,
            frame_num: 0,
            buf_pts: 0,
            width: 1920,
            height: 1080,
            objects: Vec::new(),
        }
    }

    pub fn at(mut self, frame_num: i32, buf_pts: u64) -> Self {
        self.frame_num = frame_num;
        self.buf_pts = buf_pts;
        self
    }

    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.width = width;
        self.height = height;
        self
    }

    pub fn object(mut self, o: Object) -> Self {
        self.objects.push(o);
        self
    }
}

/// Makes a batch meta of `frames` with NVIDIA's functions and attaches it to `buffer` the way
/// `nvstreammux` does (`gst_buffer_add_nvds_meta` with NVIDIA's batch copy and release
/// functions, `meta_type` = `NVDS_BATCH_GST_META`). Returns the batch meta.
pub fn attach(buffer: &mut gst::BufferRef, frames: &[Frame]) -> *mut NvDsBatchMeta {
    let l = lib();
    let g = gst_lib();
    // SAFETY: NVIDIA's functions with the arguments nvdsmeta.h documents; every meta written
    // to comes from the batch's pools; strings are g_malloc'd (NVIDIA frees them).
    unsafe {
        let batch = (l.create_batch_meta)(frames.len().max(1) as u32);
        assert!(!batch.is_null(), "nvds_create_batch_meta");
        // As nvstreammux does. NVIDIA's batch copy makes its copy with this many frames: left
        // at 0 (nvds_create_batch_meta does not set it), copying the buffer crashes.
        put(batch.cast::<u8>(), BASE_BATCH_META, batch);
        put(
            batch.cast::<u8>(),
            BATCH_MAX_FRAMES_IN_BATCH,
            frames.len().max(1) as u32,
        );
        for f in frames {
            let fm = (l.acquire_frame_meta_from_pool)(batch);
            assert!(!fm.is_null());
            let p = fm.cast::<u8>();
            put(p, FRAME_PAD_INDEX, f.pad_index);
            put(p, FRAME_BATCH_ID, f.batch_id);
            put(p, FRAME_FRAME_NUM, f.frame_num);
            put(p, FRAME_BUF_PTS, f.buf_pts);
            put(p, FRAME_SOURCE_ID, f.source_id);
            put(p, FRAME_SOURCE_WIDTH, f.width);
            put(p, FRAME_SOURCE_HEIGHT, f.height);
            (l.add_frame_meta_to_batch)(batch, fm);
            for o in &f.objects {
                let om = (l.acquire_obj_meta_from_pool)(batch);
                assert!(!om.is_null());
                let q = om.cast::<u8>();
                put(q, OBJECT_CLASS_ID, o.class_id);
                put(q, OBJECT_OBJECT_ID, o.object_id);
                put(q, OBJECT_CONFIDENCE, o.confidence);
                for (i, v) in o.rect.iter().enumerate() {
                    put(q, OBJECT_RECT + 4 * i, *v);
                }
                let bytes = o.label.as_bytes();
                assert!(bytes.len() < 128);
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), q.add(OBJECT_LABEL), bytes.len());
                put(q, OBJECT_LABEL + bytes.len(), 0u8);
                if let Some(t) = &o.display_text {
                    let c = CString::new(t.as_str()).unwrap();
                    put(q, OBJECT_DISPLAY_TEXT, glib::ffi::g_strdup(c.as_ptr()));
                }
                (l.add_obj_meta_to_frame)(fm, om, std::ptr::null_mut());
            }
        }
        let meta = (g.buffer_add_nvds_meta)(
            buffer.as_mut_ptr(),
            batch.cast(),
            std::ptr::null_mut(),
            Some(l.batch_meta_copy_func),
            Some(l.batch_meta_release_func),
        );
        assert!(!meta.is_null(), "gst_buffer_add_nvds_meta");
        put(meta.cast::<u8>(), NVDS_META_TYPE, NVDS_BATCH_GST_META);
        batch
    }
}

/// A buffer of `size` bytes carrying a batch of `frames`.
pub fn buffer_with(frames: &[Frame]) -> gst::Buffer {
    let mut b = gst::Buffer::with_size(16).unwrap();
    attach(b.get_mut().unwrap(), frames);
    b
}

/// The batch meta NVIDIA's own lookup finds on `buffer`.
pub fn batch_of(buffer: &gst::BufferRef) -> *mut NvDsBatchMeta {
    // SAFETY: a read-only lookup on a live buffer.
    unsafe { (gst_lib().buffer_get_nvds_batch_meta)(buffer.as_ptr().cast_mut()) }
}

/// The `data` of each node of a GList.
pub fn list(mut node: *const GList) -> Vec<*mut u8> {
    let mut out = Vec::new();
    while !node.is_null() {
        // SAFETY: lists NVIDIA made; bounded below.
        unsafe {
            out.push((*node).data.cast::<u8>());
            node = (*node).next;
        }
        assert!(out.len() < 10_000, "a runaway list");
    }
    out
}

pub fn frames(batch: *mut NvDsBatchMeta) -> Vec<*mut NvDsFrameMeta> {
    list(get(batch.cast(), BATCH_FRAME_META_LIST))
        .into_iter()
        .map(|p| p.cast())
        .collect()
}

pub fn objects(frame: *mut NvDsFrameMeta) -> Vec<*mut NvDsObjectMeta> {
    list(get(frame.cast(), FRAME_OBJ_META_LIST))
        .into_iter()
        .map(|p| p.cast())
        .collect()
}

pub fn num_frames_in_batch(batch: *mut NvDsBatchMeta) -> u32 {
    get(batch.cast(), BATCH_NUM_FRAMES_IN_BATCH)
}

pub fn num_obj_meta(frame: *mut NvDsFrameMeta) -> u32 {
    get(frame.cast(), FRAME_NUM_OBJ_META)
}

pub fn source_id(frame: *mut NvDsFrameMeta) -> u32 {
    get(frame.cast(), FRAME_SOURCE_ID)
}

pub fn object_id(o: *mut NvDsObjectMeta) -> u64 {
    get(o.cast(), OBJECT_OBJECT_ID)
}

pub fn meta_type(meta: *const u8) -> i32 {
    get(meta, BASE_META_TYPE)
}

fn c_str(p: *const c_char) -> Option<String> {
    // SAFETY: a NUL-terminated string NVIDIA or we wrote.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

pub fn display_text(o: *mut NvDsObjectMeta) -> Option<String> {
    c_str(get(o.cast(), OBJECT_DISPLAY_TEXT))
}

pub fn display_text_ptr(o: *mut NvDsObjectMeta) -> *const c_char {
    get(o.cast(), OBJECT_DISPLAY_TEXT)
}

/// One `NvDsLabelInfo` as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelInfo {
    pub meta_type: i32,
    pub result_label: String,
    pub p_result_label: Option<String>,
    pub result_class_id: u32,
    pub result_prob: f32,
}

/// One `NvDsClassifierMeta` as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Classifier {
    pub meta_type: i32,
    pub num_labels: u32,
    pub unique_component_id: i32,
    pub classifier_type: Option<String>,
    pub labels: Vec<LabelInfo>,
}

pub fn classifiers(o: *mut NvDsObjectMeta) -> Vec<Classifier> {
    list(get(o.cast(), OBJECT_CLASSIFIER_META_LIST))
        .into_iter()
        .map(|c| Classifier {
            meta_type: meta_type(c),
            num_labels: get(c, CLASSIFIER_NUM_LABELS),
            unique_component_id: get(c, CLASSIFIER_UNIQUE_COMPONENT_ID),
            classifier_type: c_str(get(c, CLASSIFIER_TYPE)),
            labels: list(get(c, CLASSIFIER_LABEL_INFO_LIST))
                .into_iter()
                .map(|l| LabelInfo {
                    meta_type: meta_type(l),
                    // SAFETY: `result_label` is a 128-byte array inside the label info.
                    result_label: c_str(unsafe { l.add(LABEL_RESULT_LABEL) }.cast()).unwrap(),
                    p_result_label: c_str(get(l, LABEL_P_RESULT_LABEL)),
                    result_class_id: get(l, LABEL_RESULT_CLASS_ID),
                    result_prob: get(l, LABEL_RESULT_PROB),
                })
                .collect(),
        })
        .collect()
}

/// The frame's user metas: (meta_type, user_meta_data).
pub fn user_metas(frame: *mut NvDsFrameMeta) -> Vec<(i32, *const u8)> {
    list(get(frame.cast(), FRAME_USER_META_LIST))
        .into_iter()
        .map(|u| (meta_type(u), get(u, USER_META_DATA)))
        .collect()
}

/// The stand-in's builder interface (`standin::Batch` / `standin::Frame`) over NVIDIA's
/// library, so the element tests read the same with either.
pub mod compat {
    /// The objects of one frame, built by the closure given to [`Batch::frame`].
    #[derive(Default)]
    pub struct Frame(Vec<super::Object>);

    impl Frame {
        /// Adds an untracked object with `label` as `obj_label` ("" for none).
        pub fn object(
            mut self,
            class_id: i32,
            confidence: f32,
            rect: (f32, f32, f32, f32),
            label: &str,
        ) -> Self {
            let r = [rect.0, rect.1, rect.2, rect.3];
            self.0
                .push(super::Object::new(class_id, confidence, r, label));
            self
        }

        /// Sets the tracker id of the last object added.
        pub fn id(mut self, object_id: u64) -> Self {
            self.0.last_mut().expect("an object").object_id = object_id;
            self
        }
    }

    /// A batch meta to make with NVIDIA's functions.
    #[derive(Default)]
    pub struct Batch(Vec<super::Frame>);

    impl Batch {
        pub fn new() -> Self {
            Self::default()
        }

        /// Adds a frame meta; its `batch_id` is its place among the frames added so far.
        pub fn frame(
            mut self,
            source_id: u32,
            pad_index: u32,
            frame_num: i32,
            pts: u64,
            objects: impl FnOnce(Frame) -> Frame,
        ) -> Self {
            let mut f = super::Frame::new(source_id, pad_index, self.0.len() as u32)
                .at(frame_num, pts)
                .size(crate::common::W, crate::common::H);
            f.objects = objects(Frame::default()).0;
            self.0.push(f);
            self
        }

        pub fn attach(self, buffer: &mut gst::BufferRef) {
            super::attach(buffer, &self.0);
        }
    }
}
