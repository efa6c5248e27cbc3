// SPDX-License-Identifier: MIT OR Apache-2.0
//! A test-only stand-in for DeepStream's batch metadata, kept for what NVIDIA's real
//! DeepStream 9.0 library (`tests/nvidia/`, used by `deepstream_nvidia.rs`) cannot give on a
//! machine without a GPU: the object layout of DeepStream 5.x–8.x, and malformed metas.
//!
//! Only one of the two can register `NvDsMetaAPI` in a process, so the tests using the stand-in
//! live in binaries of their own. This registers a GstMeta API under DeepStream's name
//! (`NvDsMetaAPI`, tag `nvdsmeta`) and attaches batch / frame / object metas built in zeroed heap
//! blocks, with each field written at the byte offset DeepStream uses (DESIGN.md, "DeepStream
//! facts"). The offsets are written out here on purpose rather than taken from the crate's
//! `layout` module, so a wrong offset on either side makes the tests fail.
//!
//! Everything a batch allocates is owned by its meta and freed by the meta's free function when
//! the buffer (or the meta) goes away; [`Attached::is_freed`] tells a test it happened.
//!
//! Besides well-formed batches it makes garbage: a wrong `meta_type`, a null `meta_data`, empty
//! lists, list nodes with null data, circular lists, and a meta too small to be an `NvDsMeta`.
#![allow(dead_code)]

use std::ffi::c_int;
use std::sync::{Arc, OnceLock, Weak};

use gst::ffi::{GstBuffer, GstMeta, GstMetaInfo};
use gst::glib;
use gst::glib::ffi::{GList, gboolean, gpointer};
use gst::glib::translate::FromGlib;

/// `meta_type` of DeepStream's batch meta.
pub const BATCH_META_TYPE: i32 = 4097;
/// `object_id` of an object no tracker has seen.
pub const UNTRACKED: u64 = u64::MAX;

// Sizes of the blocks standing in for the C structures: at least as large as the real ones
// (which are a few hundred bytes) so a reader straying past a field stays in zeroed memory.
const BATCH_SIZE: usize = 512;
const FRAME_SIZE: usize = 1024;
const OBJECT_SIZE: usize = 1024;

// The offsets, as DESIGN.md states them (LP64).
const BATCH_FRAME_META_LIST: usize = 96;
const FRAME_PAD_INDEX: usize = 40;
const FRAME_BATCH_ID: usize = 44;
const FRAME_FRAME_NUM: usize = 48;
const FRAME_BUF_PTS: usize = 56;
const FRAME_SOURCE_ID: usize = 72;
const FRAME_SOURCE_WIDTH: usize = 80;
const FRAME_SOURCE_HEIGHT: usize = 84;
const FRAME_OBJ_META_LIST: usize = 104;
const OBJECT_CLASS_ID: usize = 52;
const OBJECT_OBJECT_ID: usize = 56;
const OBJECT_CONFIDENCE: usize = 96;
const OBJECT_RECT: usize = 104; // left, top, width, height: f32
const OBJECT_LABEL_DS5_TO_8: usize = 336;
const OBJECT_LABEL_DS9: usize = 344;
const OBJECT_LABEL_LEN: usize = 128;

/// The stand-in `NvDsMeta`: a `GstMeta`, `meta_data`, `user_data`, `meta_type`, then (where
/// DeepStream keeps its copy / release callbacks) what the stand-in must free.
#[repr(C)]
struct NvDsMetaStandin {
    meta: GstMeta,
    meta_data: gpointer,
    user_data: gpointer,
    meta_type: c_int,
    owned: *mut Owned,
    reserved: [gpointer; 8],
}

/// Which DeepStream release's object layout to write labels for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Release {
    /// DeepStream 5.0 to 8.x: `obj_label` at 336.
    #[default]
    Ds8,
    /// DeepStream 9.x: `obj_label` at 344; 336..344 holds other data (written non-zero here).
    Ds9,
}

struct MetaInfos {
    full: *const GstMetaInfo,
    undersized: *const GstMetaInfo,
}
// SAFETY: meta infos are static registrations, never freed or changed.
unsafe impl Send for MetaInfos {}
unsafe impl Sync for MetaInfos {}

/// Registers the stand-in meta API and its implementations once; returns the API type.
pub fn register() -> glib::Type {
    infos();
    glib::Type::from_name("NvDsMetaAPI").expect("registered")
}

fn infos() -> &'static MetaInfos {
    static INFOS: OnceLock<MetaInfos> = OnceLock::new();
    INFOS.get_or_init(|| {
        assert!(
            glib::Type::from_name("NvDsMetaAPI").is_none(),
            "NvDsMetaAPI registered by someone else"
        );
        // SAFETY: plain GStreamer registrations with static strings and our callbacks.
        unsafe {
            let mut tags = [c"nvdsmeta".as_ptr(), std::ptr::null()];
            let api =
                gst::ffi::gst_meta_api_type_register(c"NvDsMetaAPI".as_ptr(), tags.as_mut_ptr());
            assert_ne!(glib::Type::from_glib(api), glib::Type::INVALID);
            let full = gst::ffi::gst_meta_register(
                api,
                c"IGuardStandinNvDsMeta".as_ptr(),
                std::mem::size_of::<NvDsMetaStandin>(),
                Some(meta_init),
                Some(meta_free),
                None,
            );
            // A meta of the same API that is too small to hold `meta_type`.
            let undersized = gst::ffi::gst_meta_register(
                api,
                c"IGuardStandinUndersizedNvDsMeta".as_ptr(),
                std::mem::size_of::<GstMeta>() + 8,
                Some(undersized_init),
                None,
                None,
            );
            assert!(!full.is_null() && !undersized.is_null());
            MetaInfos { full, undersized }
        }
    })
}

/// What `gst_buffer_add_meta` hands to [`meta_init`].
struct InitParams {
    meta_data: gpointer,
    meta_type: i32,
    owned: *mut Owned,
}

unsafe extern "C" fn meta_init(
    meta: *mut GstMeta,
    params: gpointer,
    _: *mut GstBuffer,
) -> gboolean {
    // SAFETY: `meta` has the registered size of `NvDsMetaStandin`; `params` is the
    // `InitParams` `attach` passes for the duration of the call.
    unsafe {
        let m = meta.cast::<NvDsMetaStandin>();
        let p = &*params.cast::<InitParams>();
        std::ptr::addr_of_mut!((*m).meta_data).write(p.meta_data);
        std::ptr::addr_of_mut!((*m).user_data).write(std::ptr::null_mut());
        std::ptr::addr_of_mut!((*m).meta_type).write(p.meta_type);
        std::ptr::addr_of_mut!((*m).owned).write(p.owned);
        std::ptr::addr_of_mut!((*m).reserved).write([std::ptr::null_mut(); 8]);
    }
    glib::ffi::GTRUE
}

unsafe extern "C" fn meta_free(meta: *mut GstMeta, _: *mut GstBuffer) {
    // SAFETY: `meta` was initialised by `meta_init`; `owned` came from `Box::into_raw` and is
    // freed only here.
    unsafe {
        let m = meta.cast::<NvDsMetaStandin>();
        let owned = (*m).owned;
        (*m).owned = std::ptr::null_mut();
        if !owned.is_null() {
            drop(Box::from_raw(owned));
        }
    }
}

unsafe extern "C" fn undersized_init(
    meta: *mut GstMeta,
    _: gpointer,
    _: *mut GstBuffer,
) -> gboolean {
    // SAFETY: the registered size is a GstMeta plus 8 bytes.
    unsafe {
        meta.cast::<u8>()
            .add(std::mem::size_of::<GstMeta>())
            .write_bytes(0, 8)
    };
    glib::ffi::GTRUE
}

/// The heap blocks and GLists of one attached batch, freed with its meta.
#[derive(Default)]
struct Owned {
    blocks: Vec<Box<[u64]>>,
    lists: Vec<*mut GList>,
    /// Last nodes of circular lists: their `next` is cut before the lists are freed.
    cycles: Vec<*mut GList>,
    alive: Arc<()>,
}

impl Owned {
    fn block(&mut self, bytes: usize) -> *mut u8 {
        let mut b = vec![0u64; bytes.div_ceil(8)].into_boxed_slice();
        let p = b.as_mut_ptr().cast::<u8>();
        self.blocks.push(b);
        p
    }

    fn list(&mut self, items: &[*mut u8], circular: bool) -> *mut GList {
        let mut l: *mut GList = std::ptr::null_mut();
        for i in items {
            // SAFETY: appending to a list we own.
            l = unsafe { glib::ffi::g_list_append(l, i.cast()) };
        }
        if l.is_null() {
            return l;
        }
        self.lists.push(l);
        if circular {
            // SAFETY: `l` is a non-empty list we own; `drop` cuts the cycle again.
            unsafe {
                let last = glib::ffi::g_list_last(l);
                (*last).next = l;
                self.cycles.push(last);
            }
        }
        l
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: lists we made, each freed once, after any cycle is cut.
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
    assert!(offset + std::mem::size_of::<T>() <= OBJECT_SIZE.max(FRAME_SIZE).max(BATCH_SIZE));
    // SAFETY: every block is at least as large as the largest offset written into it.
    unsafe { base.add(offset).cast::<T>().write_unaligned(v) }
}

/// One entry of a list: a meta, or a node with null data.
enum Entry<T> {
    Meta(T),
    Null,
}

#[derive(Debug, Clone)]
struct ObjectSpec {
    class_id: i32,
    object_id: u64,
    confidence: f32,
    rect: (f32, f32, f32, f32),
    label: Vec<u8>,
}

/// The objects of one frame, built by the closure given to [`Batch::frame`].
#[derive(Default)]
pub struct Frame {
    objects: Vec<Entry<ObjectSpec>>,
    circular: bool,
    size: Option<(u32, u32)>,
}

impl Frame {
    /// Adds an untracked object; `label` ("" for none) is written NUL-terminated as `obj_label`
    /// where the batch's [`Release`] keeps it.
    pub fn object(
        mut self,
        class_id: i32,
        confidence: f32,
        rect: (f32, f32, f32, f32),
        label: &str,
    ) -> Self {
        let mut bytes = label.as_bytes().to_vec();
        bytes.truncate(OBJECT_LABEL_LEN - 1);
        bytes.push(0);
        self.objects.push(Entry::Meta(ObjectSpec {
            class_id,
            object_id: UNTRACKED,
            confidence,
            rect,
            label: bytes,
        }));
        self
    }

    /// Sets the tracker id of the last object added.
    pub fn id(mut self, object_id: u64) -> Self {
        self.last().object_id = object_id;
        self
    }

    /// Sets the raw `obj_label` bytes (up to 128, not terminated unless they say so) of the last
    /// object added.
    pub fn raw_label(mut self, bytes: &[u8]) -> Self {
        assert!(bytes.len() <= OBJECT_LABEL_LEN);
        self.last().label = bytes.to_vec();
        self
    }

    /// Adds an object-list node whose data is null.
    pub fn null_object(mut self) -> Self {
        self.objects.push(Entry::Null);
        self
    }

    /// Makes the object list circular (its last node points back at the first).
    pub fn circular(mut self) -> Self {
        self.circular = true;
        self
    }

    /// Sets `source_frame_width` / `source_frame_height` (1920×1080 otherwise).
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.size = Some((width, height));
        self
    }

    fn last(&mut self) -> &mut ObjectSpec {
        match self.objects.last_mut() {
            Some(Entry::Meta(o)) => o,
            _ => panic!("no object to modify"),
        }
    }
}

struct FrameSpec {
    source_id: u32,
    pad_index: u32,
    frame_num: i32,
    pts: u64,
    frame: Frame,
}

/// A DeepStream batch meta to attach to a buffer.
pub struct Batch {
    frames: Vec<Entry<FrameSpec>>,
    release: Release,
    meta_type: i32,
    null_meta_data: bool,
    circular: bool,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            frames: Vec::new(),
            release: Release::default(),
            meta_type: BATCH_META_TYPE,
            null_meta_data: false,
            circular: false,
        }
    }
}

/// A handle on an attached batch, to check its memory was freed.
pub struct Attached(Weak<()>);

impl Attached {
    /// Whether the meta's free function has released everything the batch allocated.
    pub fn is_freed(&self) -> bool {
        self.0.upgrade().is_none()
    }
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `obj_label` where this DeepStream release keeps it.
    pub fn release(mut self, release: Release) -> Self {
        self.release = release;
        self
    }

    /// Adds a frame meta; its `batch_id` is its place among the frames added so far (null
    /// entries included). `objects` adds its objects.
    pub fn frame(
        mut self,
        source_id: u32,
        pad_index: u32,
        frame_num: i32,
        pts: u64,
        objects: impl FnOnce(Frame) -> Frame,
    ) -> Self {
        self.frames.push(Entry::Meta(FrameSpec {
            source_id,
            pad_index,
            frame_num,
            pts,
            frame: objects(Frame::default()),
        }));
        self
    }

    /// Adds a frame-list node whose data is null.
    pub fn null_frame(mut self) -> Self {
        self.frames.push(Entry::Null);
        self
    }

    /// Makes the frame list circular.
    pub fn circular(mut self) -> Self {
        self.circular = true;
        self
    }

    /// Sets `NvDsMeta.meta_type` (the batch type otherwise).
    pub fn meta_type(mut self, meta_type: i32) -> Self {
        self.meta_type = meta_type;
        self
    }

    /// Attaches the meta with a null `meta_data` (nothing is built).
    pub fn null_meta_data(mut self) -> Self {
        self.null_meta_data = true;
        self
    }

    /// Builds the metas and attaches them to `buffer`.
    pub fn attach(self, buffer: &mut gst::BufferRef) -> Attached {
        let infos = infos();
        let mut owned = Box::new(Owned::default());
        let alive = Arc::downgrade(&owned.alive);
        let meta_data = if self.null_meta_data {
            std::ptr::null_mut()
        } else {
            self.build(&mut owned)
        };
        let mut params = InitParams {
            meta_data: meta_data.cast(),
            meta_type: self.meta_type,
            owned: Box::into_raw(owned),
        };
        // SAFETY: `buffer` is writable (we hold it mutably); `params` outlives the call and
        // `meta_init` takes `owned` over.
        let meta = unsafe {
            gst::ffi::gst_buffer_add_meta(
                buffer.as_mut_ptr(),
                infos.full,
                std::ptr::addr_of_mut!(params).cast(),
            )
        };
        assert!(!meta.is_null(), "gst_buffer_add_meta failed");
        Attached(alive)
    }

    fn build(&self, owned: &mut Owned) -> *mut u8 {
        let mut frames = Vec::new();
        for (batch_id, entry) in self.frames.iter().enumerate() {
            match entry {
                Entry::Null => frames.push(std::ptr::null_mut()),
                Entry::Meta(spec) => {
                    frames.push(self.build_frame(owned, spec, batch_id as u32));
                }
            }
        }
        let frame_list = owned.list(&frames, self.circular);
        let batch = owned.block(BATCH_SIZE);
        put(batch, BATCH_FRAME_META_LIST, frame_list);
        batch
    }

    fn build_frame(&self, owned: &mut Owned, spec: &FrameSpec, batch_id: u32) -> *mut u8 {
        let mut objects = Vec::new();
        for entry in &spec.frame.objects {
            match entry {
                Entry::Null => objects.push(std::ptr::null_mut()),
                Entry::Meta(o) => objects.push(self.build_object(owned, o)),
            }
        }
        let object_list = owned.list(&objects, spec.frame.circular);
        let (width, height) = spec.frame.size.unwrap_or((1920, 1080));
        let f = owned.block(FRAME_SIZE);
        put(f, FRAME_PAD_INDEX, spec.pad_index);
        put(f, FRAME_BATCH_ID, batch_id);
        put(f, FRAME_FRAME_NUM, spec.frame_num);
        put(f, FRAME_BUF_PTS, spec.pts);
        put(f, FRAME_SOURCE_ID, spec.source_id);
        put(f, FRAME_SOURCE_WIDTH, width);
        put(f, FRAME_SOURCE_HEIGHT, height);
        put(f, FRAME_OBJ_META_LIST, object_list);
        f
    }

    fn build_object(&self, owned: &mut Owned, spec: &ObjectSpec) -> *mut u8 {
        let o = owned.block(OBJECT_SIZE);
        put(o, OBJECT_CLASS_ID, spec.class_id);
        put(o, OBJECT_OBJECT_ID, spec.object_id);
        put(o, OBJECT_CONFIDENCE, spec.confidence);
        let (l, t, w, h) = spec.rect;
        for (i, v) in [l, t, w, h].into_iter().enumerate() {
            put(o, OBJECT_RECT + 4 * i, v);
        }
        let label_at = match self.release {
            Release::Ds8 => OBJECT_LABEL_DS5_TO_8,
            Release::Ds9 => {
                // DeepStream 9 keeps other data before the label: fill it so a reader using
                // the older offset sees no NUL-terminated text there.
                for i in OBJECT_LABEL_DS5_TO_8..OBJECT_LABEL_DS9 {
                    put(o, i, 0xA5u8);
                }
                OBJECT_LABEL_DS9
            }
        };
        for (i, b) in spec.label.iter().enumerate() {
            put(o, label_at + i, *b);
        }
        o
    }
}

/// Attaches a meta of the `NvDsMetaAPI` API whose registered size is too small to be an
/// `NvDsMeta`.
pub fn attach_undersized(buffer: &mut gst::BufferRef) {
    let infos = infos();
    // SAFETY: `buffer` is writable; the undersized init takes no parameters.
    let meta = unsafe {
        gst::ffi::gst_buffer_add_meta(buffer.as_mut_ptr(), infos.undersized, std::ptr::null_mut())
    };
    assert!(!meta.is_null());
}

/// Attaches an `NvDsMeta` of `meta_type` whose `meta_data` is `meta_data` as it is, owning
/// nothing: the caller keeps that memory alive as long as the buffer (the fuzz target's
/// arena of random metadata).
pub fn attach_raw(buffer: &mut gst::BufferRef, meta_data: *mut u8, meta_type: i32) {
    let infos = infos();
    let mut params = InitParams {
        meta_data: meta_data.cast(),
        meta_type,
        owned: std::ptr::null_mut(),
    };
    // SAFETY: `buffer` is writable; `params` outlives the call; a null `owned` frees nothing.
    let meta = unsafe {
        gst::ffi::gst_buffer_add_meta(
            buffer.as_mut_ptr(),
            infos.full,
            std::ptr::addr_of_mut!(params).cast(),
        )
    };
    assert!(!meta.is_null(), "gst_buffer_add_meta failed");
}
