// SPDX-License-Identifier: MIT OR Apache-2.0
//! The DeepStream reader: the `NvDsBatchMeta` that `nvstreammux` attaches and `nvinfer` /
//! `nvtracker` fill, read without linking to DeepStream.
//!
//! The batch meta is found the way DeepStream finds it: among the buffer's GstMetas, the ones
//! whose API type is registered under [`layout::META_API_NAME`] and whose `meta_type` is the batch
//! type. The type is looked up by name at run time, so the plugin loads and runs where DeepStream
//! is absent (the reader then finds nothing). The C structures are read at the byte offsets kept
//! in [`layout`], the only place in the crate that knows them.
//!
//! Each `NvDsFrameMeta` of the batch becomes one [`FrameDetections`] (source id, pad index, batch
//! index, frame number and the frame's own PTS), each `NvDsObjectMeta` one [`Detection`]. An
//! object's label is, in this order: the configured [`ClassLabels`] entry for its class id; the
//! `obj_label` DeepStream wrote, when the configured [`DeepStreamLayout`] says where it is and it
//! is a NUL-terminated UTF-8 string; `class-<id>`.
//!
//! Metadata is not trusted beyond its pointers: null pointers are skipped, list walks are bounded
//! per buffer ([`MAX_FRAMES_PER_BUFFER`], [`MAX_OBJECTS_PER_BUFFER`]) so a corrupted circular list
//! cannot hang the streaming thread, and boxes are passed on as they are (NaN included): the clip
//! logic rejects what it cannot crop.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use gst::glib;

use super::{Detection, DetectionReader, FrameDetections, SourceFrame};
use crate::geometry::Rect;

pub use crate::deepstream::layout::{MAX_FRAMES_PER_BUFFER, MAX_OBJECTS_PER_BUFFER};
pub use crate::deepstream::{DeepStreamLayout, LayoutError, layout, meta_api};
use crate::deepstream::{batch_meta_data, field};

/// A class-labels string or labels file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    #[error(
        "class-labels entry '{0}' is not 'id=label': write pairs like \"0=person,1=bag\" or an \
         ordered list like \"person;bag\""
    )]
    NotAPair(String),
    #[error("class-labels entry '{0}' does not start with a class id (an integer)")]
    BadId(String),
    #[error("class-labels gives class {id} twice ('{first}' and '{second}')")]
    Duplicate {
        id: i32,
        first: String,
        second: String,
    },
    #[error("class-labels gives class {0} an empty label")]
    EmptyLabel(i32),
    #[error(
        "class-labels '{0}' has ',' but no 'id=label' pairs: use \"0=person,1=bag\" pairs or a \
         ';'-separated list like \"person;bag\""
    )]
    CommaList(String),
    #[error("cannot read the labels file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Labels for detector class ids, which win over the labels DeepStream wrote.
///
/// The string syntax ([`ClassLabels::parse`]) is one of:
/// - pairs `id=label` separated by `,`: `"0=person,1=bag,2=face"` (ids in any order, any may be
///   missing; spaces around ids and labels are ignored);
/// - an ordered list separated by `;`, the first label being class 0: `"person;bag;face"`, the
///   one-line form of an `nvinfer` labels file (an empty entry leaves its class unlabelled);
/// - the empty string: no labels.
///
/// [`ClassLabels::from_labels_file`] reads an `nvinfer` labels file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassLabels(BTreeMap<i32, String>);

impl ClassLabels {
    /// Parses the class-labels syntax described on the type.
    pub fn parse(s: &str) -> Result<Self, LabelsError> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(ClassLabels::default());
        }
        if !s.contains('=') {
            if s.contains(',') {
                return Err(LabelsError::CommaList(s.to_string()));
            }
            return Ok(Self::from_list(s.split(';')));
        }
        use crate::labels::PairError;
        crate::labels::parse_id_labels(s)
            .map(ClassLabels)
            .map_err(|e| match e {
                // A label with '=' in it: pairs joined by something other than ','.
                PairError::NotAPair { entry } | PairError::EqualsInLabel { entry, .. } => {
                    LabelsError::NotAPair(entry)
                }
                PairError::BadId { entry, .. } => LabelsError::BadId(entry),
                PairError::EmptyLabel { id } => LabelsError::EmptyLabel(id),
                PairError::Duplicate { id, first, second } => {
                    LabelsError::Duplicate { id, first, second }
                }
            })
    }

    /// Reads the text of an `nvinfer` labels file: one label a line (line N is class N, an empty
    /// line leaves its class unlabelled), or all labels `;`-separated on a single line.
    pub fn from_labels_text(text: &str) -> Self {
        let names = crate::labels::parse_labels_text(text);
        Self::from_list(names.iter().map(String::as_str))
    }

    /// Reads an `nvinfer` labels file (see [`crate::labels::read_labels_file`]).
    pub fn from_labels_file(path: impl AsRef<Path>) -> Result<Self, LabelsError> {
        crate::labels::read_labels_file(path.as_ref())
            .map(|names| Self::from_list(names.iter().map(String::as_str)))
            .map_err(|e| LabelsError::File {
                path: e.path,
                source: e.source,
            })
    }

    fn from_list<'a>(items: impl Iterator<Item = &'a str>) -> Self {
        ClassLabels(
            items
                .enumerate()
                .map(|(i, l)| (i, l.trim()))
                .filter(|(i, l)| !l.is_empty() && *i <= i32::MAX as usize)
                .map(|(i, l)| (i as i32, l.to_string()))
                .collect(),
        )
    }

    /// The label of `class_id`, if one is configured.
    pub fn get(&self, class_id: i32) -> Option<&str> {
        self.0.get(&class_id).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The labels in class id order.
    pub fn iter(&self) -> impl Iterator<Item = (i32, &str)> {
        self.0.iter().map(|(k, v)| (*k, v.as_str()))
    }
}

impl FromStr for ClassLabels {
    type Err = LabelsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for ClassLabels {
    /// The pairs syntax, which [`ClassLabels::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (id, label)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{id}={label}")?;
        }
        Ok(())
    }
}

/// Whether `buffer` carries at least one DeepStream batch meta (a cheap test for choosing a
/// reader).
pub fn carries_batch_meta(buffer: &gst::BufferRef) -> bool {
    let Some(api) = meta_api() else {
        return false;
    };
    let mut skipped = 0;
    buffer
        .iter_meta::<gst::Meta>()
        .any(|m| batch_meta_data(&m, api, &mut skipped).is_some())
}

/// How many more list nodes a read may visit.
struct Budget {
    frames: usize,
    objects: usize,
}

/// Calls `f` with the `data` of each node of a `GList`, visiting at most `*budget` nodes. Nodes
/// with null data, and the rest of a list longer than the budget, are counted in `skipped`.
///
/// # Safety
/// `node` must be null or point to a readable `GList` whose `next` chain consists of null or
/// readable `GList` nodes for at least `*budget` steps.
unsafe fn walk_list(
    mut node: *const glib::ffi::GList,
    budget: &mut usize,
    skipped: &mut u64,
    mut f: impl FnMut(*const u8),
) {
    while !node.is_null() {
        if *budget == 0 {
            *skipped += 1;
            return;
        }
        *budget -= 1;
        // SAFETY: `node` is non-null and readable per the caller's contract.
        let (data, next) = unsafe { ((*node).data, (*node).next) };
        if data.is_null() {
            *skipped += 1;
        } else {
            f(data.cast::<u8>().cast_const());
        }
        node = next;
    }
}

/// The `obj_label` text: the bytes before the first NUL, if there is one within the array and
/// they are non-empty UTF-8.
fn label_from_bytes(bytes: &[u8]) -> Option<&str> {
    let end = bytes.iter().position(|b| *b == 0)?;
    std::str::from_utf8(&bytes[..end])
        .ok()
        .filter(|s| !s.is_empty())
}

/// Reads the detections of DeepStream batch metas.
#[derive(Debug, Clone, Default)]
pub struct DeepStreamReader {
    layout: DeepStreamLayout,
    labels: ClassLabels,
    skipped: u64,
}

impl DeepStreamReader {
    pub fn new(layout: DeepStreamLayout, labels: ClassLabels) -> Self {
        DeepStreamReader {
            layout,
            labels,
            skipped: 0,
        }
    }

    pub fn layout(&self) -> DeepStreamLayout {
        self.layout
    }

    pub fn labels(&self) -> &ClassLabels {
        &self.labels
    }

    /// Metadata entries skipped so far as unreadable: null pointers, undersized metas, and list
    /// walks cut short by the per-buffer bounds (one per cut). A growing count means a broken
    /// upstream or a layout mismatch, worth a warning.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Appends one entry per frame meta of the `NvDsBatchMeta` at `batch`.
    ///
    /// # Safety
    /// `batch` must point to a readable `NvDsBatchMeta` as [`layout`] describes it, whose lists
    /// hold null or readable nodes and null or readable frame / object metas.
    unsafe fn read_batch(
        &mut self,
        batch: *const u8,
        budget: &mut Budget,
        out: &mut Vec<FrameDetections>,
    ) {
        // SAFETY: `batch` is a readable batch meta (caller).
        let frames: *const glib::ffi::GList =
            unsafe { field(batch, layout::batch::FRAME_META_LIST) };
        let mut skipped = 0;
        let mut frame_metas = Vec::new();
        // SAFETY: the frame list belongs to the batch meta (caller's contract).
        unsafe {
            walk_list(frames, &mut budget.frames, &mut skipped, |f| {
                frame_metas.push(f)
            })
        };
        for frame in frame_metas {
            // SAFETY: a non-null entry of the frame list is a readable frame meta (caller).
            let fd = unsafe { self.read_frame(frame, &mut budget.objects, &mut skipped) };
            out.push(fd);
        }
        self.skipped += skipped;
    }

    /// # Safety
    /// `frame` must point to a readable `NvDsFrameMeta` whose object list holds null or readable
    /// nodes and null or readable object metas.
    unsafe fn read_frame(
        &self,
        frame: *const u8,
        objects_budget: &mut usize,
        skipped: &mut u64,
    ) -> FrameDetections {
        use layout::frame as f;
        // SAFETY: every offset lies inside the frame meta (caller).
        let (source_id, pad_index, batch_id, frame_num, buf_pts, objects) = unsafe {
            (
                field::<u32>(frame, f::SOURCE_ID),
                field::<u32>(frame, f::PAD_INDEX),
                field::<u32>(frame, f::BATCH_ID),
                field::<i32>(frame, f::FRAME_NUM),
                field::<u64>(frame, f::BUF_PTS),
                field::<*const glib::ffi::GList>(frame, f::OBJ_META_LIST),
            )
        };
        let mut object_metas = Vec::new();
        // SAFETY: the object list belongs to the frame meta (caller).
        unsafe { walk_list(objects, objects_budget, skipped, |o| object_metas.push(o)) };
        let detections = object_metas
            .into_iter()
            // SAFETY: a non-null entry of the object list is a readable object meta (caller).
            .map(|o| unsafe { self.read_object(o) })
            .collect();
        FrameDetections {
            source: SourceFrame {
                source_id,
                pad_index,
                batch_index: batch_id,
                frame_num: u64::try_from(frame_num).ok(),
                pts: (buf_pts != u64::MAX).then_some(buf_pts),
            },
            detections,
        }
    }

    /// # Safety
    /// `object` must point to a readable `NvDsObjectMeta` laid out as [`layout`] and
    /// `self.layout` describe it.
    unsafe fn read_object(&self, object: *const u8) -> Detection {
        use layout::object as o;
        // SAFETY: every offset lies inside the object meta (caller).
        let (class_id, object_id, confidence, x, y, width, height) = unsafe {
            (
                field::<i32>(object, o::CLASS_ID),
                field::<u64>(object, o::OBJECT_ID),
                field::<f32>(object, o::CONFIDENCE),
                field::<f32>(object, o::RECT_LEFT),
                field::<f32>(object, o::RECT_TOP),
                field::<f32>(object, o::RECT_WIDTH),
                field::<f32>(object, o::RECT_HEIGHT),
            )
        };
        let label = match self.labels.get(class_id) {
            Some(l) => l.to_string(),
            None => self
                .layout
                .obj_label_offset()
                .and_then(|off| {
                    // SAFETY: the layout says `obj_label[OBJ_LABEL_LEN]` is at `off` inside
                    // the object meta (caller).
                    let bytes =
                        unsafe { std::slice::from_raw_parts(object.add(off), o::OBJ_LABEL_LEN) };
                    label_from_bytes(bytes).map(str::to_string)
                })
                .unwrap_or_else(|| format!("class-{class_id}")),
        };
        Detection {
            class_id,
            label,
            confidence: confidence as f64,
            rect: Rect {
                x,
                y,
                width,
                height,
            },
            object_id: (object_id != o::UNTRACKED_OBJECT_ID).then_some(object_id),
        }
    }
}

impl DetectionReader for DeepStreamReader {
    /// Appends one entry per `NvDsFrameMeta` of the buffer's batch meta(s), in list order, and
    /// nothing when the buffer has no (readable) batch meta.
    fn read(&mut self, buffer: &gst::BufferRef, out: &mut Vec<FrameDetections>) {
        let Some(api) = meta_api() else {
            return;
        };
        let mut budget = Budget {
            frames: MAX_FRAMES_PER_BUFFER,
            objects: MAX_OBJECTS_PER_BUFFER,
        };
        let mut skipped = 0;
        let batches: Vec<*const u8> = buffer
            .iter_meta::<gst::Meta>()
            .filter_map(|m| batch_meta_data(&m, api, &mut skipped))
            .collect();
        self.skipped += skipped;
        for batch in batches {
            // SAFETY: `batch` is the non-null `meta_data` of a batch-type `NvDsMeta` on the
            // buffer we borrow, which DeepStream keeps alive with the buffer; its layout is the
            // one `layout` describes (the documented assumption of this module).
            unsafe { self.read_batch(batch, &mut budget, out) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glib::ffi::GList;

    /// Zeroed, 8-byte-aligned blocks standing in for DeepStream metas, and the GLists that link
    /// them, freed on drop.
    #[derive(Default)]
    struct Mem {
        blocks: Vec<Box<[u64]>>,
        lists: Vec<*mut GList>,
        /// Last nodes of circular lists, whose `next` is cut before freeing.
        cycles: Vec<*mut GList>,
    }

    impl Mem {
        fn block(&mut self, bytes: usize) -> *mut u8 {
            let mut b = vec![0u64; bytes.div_ceil(8)].into_boxed_slice();
            let p = b.as_mut_ptr().cast::<u8>();
            self.blocks.push(b);
            p
        }

        fn list(&mut self, items: &[*mut u8]) -> *mut GList {
            let mut l: *mut GList = std::ptr::null_mut();
            for i in items {
                // SAFETY: appending to a list we own.
                l = unsafe { glib::ffi::g_list_append(l, i.cast()) };
            }
            self.lists.push(l);
            l
        }

        /// A list whose last node points back at its first.
        fn circular(&mut self, items: &[*mut u8]) -> *mut GList {
            let l = self.list(items);
            // SAFETY: `l` is a non-empty list we own; the cycle is cut again in `drop`.
            unsafe {
                let last = glib::ffi::g_list_last(l);
                (*last).next = l;
                self.cycles.push(last);
            }
            l
        }
    }

    impl Drop for Mem {
        fn drop(&mut self) {
            // SAFETY: lists and nodes we made, each freed once after its cycle is cut.
            unsafe {
                for last in self.cycles.drain(..) {
                    (*last).next = std::ptr::null_mut();
                }
                for l in self.lists.drain(..) {
                    glib::ffi::g_list_free(l);
                }
            }
        }
    }

    fn put<T: Copy>(base: *mut u8, offset: usize, v: T) {
        // SAFETY: test blocks are sized to hold every field written.
        unsafe { base.add(offset).cast::<T>().write_unaligned(v) }
    }

    const OBJ_SIZE: usize = 1024;
    const FRAME_SIZE: usize = 512;
    const BATCH_SIZE: usize = 256;

    fn object(mem: &mut Mem, class_id: i32, conf: f32, rect: [f32; 4], id: u64) -> *mut u8 {
        use layout::object as o;
        let p = mem.block(OBJ_SIZE);
        put(p, o::CLASS_ID, class_id);
        put(p, o::OBJECT_ID, id);
        put(p, o::CONFIDENCE, conf);
        put(p, o::RECT_LEFT, rect[0]);
        put(p, o::RECT_TOP, rect[1]);
        put(p, o::RECT_WIDTH, rect[2]);
        put(p, o::RECT_HEIGHT, rect[3]);
        p
    }

    fn write_label(obj: *mut u8, offset: usize, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            put(obj, offset + i, *b);
        }
    }

    fn frame(mem: &mut Mem, source: u32, pad: u32, batch_id: u32, objects: *mut GList) -> *mut u8 {
        use layout::frame as f;
        let p = mem.block(FRAME_SIZE);
        put(p, f::SOURCE_ID, source);
        put(p, f::PAD_INDEX, pad);
        put(p, f::BATCH_ID, batch_id);
        put(p, f::FRAME_NUM, 7i32);
        put(p, f::BUF_PTS, 40_000_000u64);
        put(p, f::SOURCE_FRAME_WIDTH, 1920u32);
        put(p, f::SOURCE_FRAME_HEIGHT, 1080u32);
        put(p, f::OBJ_META_LIST, objects);
        p
    }

    fn batch(mem: &mut Mem, frames: *mut GList) -> *mut u8 {
        let p = mem.block(BATCH_SIZE);
        put(p, layout::batch::FRAME_META_LIST, frames);
        p
    }

    fn read(reader: &mut DeepStreamReader, batch: *const u8) -> Vec<FrameDetections> {
        let mut budget = Budget {
            frames: MAX_FRAMES_PER_BUFFER,
            objects: MAX_OBJECTS_PER_BUFFER,
        };
        let mut out = Vec::new();
        // SAFETY: test batches are laid out per `layout` in live memory.
        unsafe { reader.read_batch(batch, &mut budget, &mut out) };
        out
    }

    #[test]
    fn the_nvds_meta_fields_follow_a_gst_meta() {
        assert_eq!(
            std::mem::size_of::<gst::ffi::GstMeta>(),
            layout::meta::META_DATA
        );
        assert_eq!(layout::meta::USER_DATA, layout::meta::META_DATA + 8);
        assert_eq!(layout::meta::META_TYPE, layout::meta::USER_DATA + 8);
        assert_eq!(
            layout::object::OBJ_LABEL_V9 + layout::object::OBJ_LABEL_LEN,
            472
        );
    }

    #[test]
    fn reads_frames_and_objects_as_written() {
        let mut mem = Mem::default();
        let a = object(&mut mem, 0, 0.9, [1.0, 2.0, 3.0, 4.0], 11);
        let b = object(&mut mem, 2, 0.25, [10.5, 20.5, 30.0, 40.0], u64::MAX);
        let objs = mem.list(&[a, b]);
        let f0 = frame(&mut mem, 3, 1, 0, objs);
        let f1 = frame(&mut mem, 5, 2, 1, std::ptr::null_mut());
        put(f1, layout::frame::FRAME_NUM, -1i32);
        put(f1, layout::frame::BUF_PTS, u64::MAX);
        let frames = mem.list(&[f0, f1]);
        let bm = batch(&mut mem, frames);

        let mut r = DeepStreamReader::default();
        let out = read(&mut r, bm);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0].source,
            SourceFrame {
                source_id: 3,
                pad_index: 1,
                batch_index: 0,
                frame_num: Some(7),
                pts: Some(40_000_000),
            }
        );
        assert_eq!(out[0].detections.len(), 2);
        let d = &out[0].detections[0];
        assert_eq!(
            (d.class_id, d.confidence, d.object_id),
            (0, 0.9f32 as f64, Some(11))
        );
        assert_eq!(
            d.rect,
            Rect {
                x: 1.0,
                y: 2.0,
                width: 3.0,
                height: 4.0
            }
        );
        assert_eq!(d.label, "class-0");
        let d = &out[0].detections[1];
        assert_eq!((d.class_id, d.object_id), (2, None), "untracked id is None");
        assert_eq!(out[1].source.frame_num, None);
        assert_eq!(out[1].source.pts, None);
        assert!(out[1].detections.is_empty());
        assert_eq!(r.skipped(), 0);
    }

    #[test]
    fn labels_come_from_the_mapping_then_obj_label_then_the_class_id() {
        let mut mem = Mem::default();
        let a = object(&mut mem, 0, 1.0, [0.0; 4], 1);
        let b = object(&mut mem, 1, 1.0, [0.0; 4], 2);
        let c = object(&mut mem, 2, 1.0, [0.0; 4], 3);
        // The two label places are 8 bytes apart: short labels keep both readable.
        for o in [a, b] {
            write_label(o, layout::object::OBJ_LABEL_V5_TO_V8, b"ds8\0");
            write_label(o, layout::object::OBJ_LABEL_V9, b"ds9\0");
        }
        let objs = mem.list(&[a, b, c]);
        let f = frame(&mut mem, 0, 0, 0, objs);
        let frames = mem.list(&[f]);
        let bm = batch(&mut mem, frames);
        let labels = ClassLabels::parse("0=person").unwrap();

        let labels_of = |layout| {
            let mut r = DeepStreamReader::new(layout, labels.clone());
            read(&mut r, bm)[0]
                .detections
                .iter()
                .map(|d| d.label.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            labels_of(DeepStreamLayout::V5toV8),
            ["person", "ds8", "class-2"]
        );
        assert_eq!(
            labels_of(DeepStreamLayout::V9),
            ["person", "ds9", "class-2"]
        );
        assert_eq!(
            labels_of(DeepStreamLayout::Unknown),
            ["person", "class-1", "class-2"]
        );
    }

    #[test]
    fn obj_label_must_be_terminated_utf8() {
        assert_eq!(label_from_bytes(b"bag\0junk"), Some("bag"));
        assert_eq!(label_from_bytes(&[b'x'; 128]), None, "no NUL");
        assert_eq!(label_from_bytes(b"\xff\xfe\0"), None, "not UTF-8");
        assert_eq!(label_from_bytes(b"\0bag"), None, "empty");
        assert_eq!(label_from_bytes("caméra\0".as_bytes()), Some("caméra"));

        let mut mem = Mem::default();
        let o = object(&mut mem, 4, 1.0, [0.0; 4], 1);
        write_label(o, layout::object::OBJ_LABEL_V5_TO_V8, &[b'x'; 128]);
        let objs = mem.list(&[o]);
        let f = frame(&mut mem, 0, 0, 0, objs);
        let frames = mem.list(&[f]);
        let bm = batch(&mut mem, frames);
        let mut r = DeepStreamReader::new(DeepStreamLayout::V5toV8, ClassLabels::default());
        assert_eq!(read(&mut r, bm)[0].detections[0].label, "class-4");
    }

    #[test]
    fn null_entries_are_skipped_and_counted() {
        let mut mem = Mem::default();
        let a = object(&mut mem, 1, 0.5, [0.0; 4], 1);
        let objs = mem.list(&[std::ptr::null_mut(), a, std::ptr::null_mut()]);
        let f = frame(&mut mem, 0, 0, 0, objs);
        let frames = mem.list(&[std::ptr::null_mut(), f]);
        let bm = batch(&mut mem, frames);
        let mut r = DeepStreamReader::default();
        let out = read(&mut r, bm);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].detections.len(), 1);
        assert_eq!(r.skipped(), 3);

        let empty = batch(&mut mem, std::ptr::null_mut());
        assert!(read(&mut r, empty).is_empty());
    }

    #[test]
    fn circular_lists_are_cut_at_the_bounds() {
        let mut mem = Mem::default();
        let o = object(
            &mut mem,
            0,
            f32::NAN,
            [f32::NAN, 0.0, f32::INFINITY, 1.0],
            1,
        );
        let objs = mem.circular(&[o]);
        let f = frame(&mut mem, 0, 0, 0, objs);
        let frames = mem.circular(&[f]);
        let bm = batch(&mut mem, frames);
        let mut r = DeepStreamReader::default();
        let out = read(&mut r, bm);
        assert_eq!(out.len(), MAX_FRAMES_PER_BUFFER);
        let objects: usize = out.iter().map(|f| f.detections.len()).sum();
        assert_eq!(objects, MAX_OBJECTS_PER_BUFFER);
        assert!(out[0].detections[0].confidence.is_nan(), "passed on as is");
        assert!(out[0].detections[0].rect.x.is_nan());
        assert!(r.skipped() > 0);
    }

    #[test]
    fn without_the_meta_api_nothing_is_read() {
        gst::init().unwrap();
        // Nothing in this test binary registers the DeepStream meta API.
        assert_eq!(meta_api(), None);
        let mut buf = gst::Buffer::new();
        gst_video::VideoRegionOfInterestMeta::add(buf.get_mut().unwrap(), "person", (0, 0, 4, 4));
        let mut out = Vec::new();
        DeepStreamReader::default().read(&buf, &mut out);
        assert!(out.is_empty());
        assert!(!carries_batch_meta(&buf));
    }

    #[test]
    fn class_labels_pairs() {
        let l = ClassLabels::parse(" 0=person, 2 = face ,1=bag,").unwrap();
        assert_eq!(l.get(0), Some("person"));
        assert_eq!(l.get(1), Some("bag"));
        assert_eq!(l.get(2), Some("face"));
        assert_eq!(l.get(3), None);
        assert_eq!(l.to_string(), "0=person,1=bag,2=face");
        assert_eq!(ClassLabels::parse(&l.to_string()).unwrap(), l);
        assert_eq!(ClassLabels::parse("-1=none").unwrap().get(-1), Some("none"));
    }

    #[test]
    fn class_labels_list() {
        let l: ClassLabels = "person;bag;;face;".parse().unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l.get(0), Some("person"));
        assert_eq!(l.get(1), Some("bag"));
        assert_eq!(l.get(2), None);
        assert_eq!(l.get(3), Some("face"));
        assert_eq!(ClassLabels::parse("person").unwrap().get(0), Some("person"));
        assert!(ClassLabels::parse("  ").unwrap().is_empty());
    }

    #[test]
    fn class_labels_errors_name_the_entry() {
        let e = |s: &str| ClassLabels::parse(s).unwrap_err().to_string();
        assert!(e("0=person,bag").contains("'bag'"));
        assert!(e("x=person").contains("'x=person'"));
        assert!(e("0=person,0=bag").contains("class 0 twice"));
        assert!(e("3=").contains("class 3"));
        assert!(e("person,bag").contains("'person,bag'"));
        // Pairs joined by ';': one entry, and its label would hold '='.
        assert!(e("0=person;1=bag").contains("'0=person;1=bag' is not 'id=label'"));
    }

    #[test]
    fn labels_files_one_per_line_or_semicolons() {
        let l = ClassLabels::from_labels_text("person\r\nbag\n\nface\n\n");
        assert_eq!(
            l.iter().collect::<Vec<_>>(),
            [(0, "person"), (1, "bag"), (3, "face")]
        );
        let l = ClassLabels::from_labels_text("person;bag;face\n");
        assert_eq!(
            l.iter().collect::<Vec<_>>(),
            [(0, "person"), (1, "bag"), (2, "face")]
        );

        let path = std::env::temp_dir().join(format!("iguard-labels-{}.txt", std::process::id()));
        std::fs::write(&path, "car\nperson\n").unwrap();
        let l = ClassLabels::from_labels_file(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(l.get(1), Some("person"));
        let e = ClassLabels::from_labels_file(&path)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
    }

    #[test]
    fn layouts_by_nick_and_version() {
        for (s, l) in [
            ("v5-v8", DeepStreamLayout::V5toV8),
            ("V9", DeepStreamLayout::V9),
            ("unknown", DeepStreamLayout::Unknown),
            ("5.1", DeepStreamLayout::V5toV8),
            ("6.4", DeepStreamLayout::V5toV8),
            ("8", DeepStreamLayout::V5toV8),
            ("9.0", DeepStreamLayout::V9),
        ] {
            assert_eq!(s.parse::<DeepStreamLayout>(), Ok(l), "{s}");
            assert_eq!(l.nick().parse::<DeepStreamLayout>(), Ok(l));
        }
        for s in ["4.0", "10", "", "v10"] {
            assert!(s.parse::<DeepStreamLayout>().is_err(), "{s}");
        }
        assert_eq!(DeepStreamLayout::default().obj_label_offset(), None);
        assert_eq!(DeepStreamLayout::V9.obj_label_offset(), Some(344));
        assert_eq!(DeepStreamLayout::V5toV8.obj_label_offset(), Some(336));
    }
}
