// SPDX-License-Identifier: MIT OR Apache-2.0
//! Verdicts written back as DeepStream metadata, with NVIDIA's own pool functions, so
//! `nvdsosd`, DeepStream apps and pyds read them the way they read `nvinfer`'s results:
//!
//! - on the object meta whose `object_id` is the trigger's (in the frame of the verdict's
//!   source): an `NvDsClassifierMeta` with one `NvDsLabelInfo` (`result_label` = status and
//!   label, e.g. `verified armed`; `result_prob` = score; `result_class_id` = the model's class;
//!   `unique_component_id` = the element's `unique-id`), and the verdict appended to the
//!   object's `text_params.display_text`;
//! - on that source's frame meta: an `NvDsUserMeta` of type
//!   `nvds_get_user_meta_type("IGUARD.VERDICT")` holding an [`IGuardVerdictMeta`], the C struct
//!   of `include/iguard_verdict_meta.h`, with copy and release functions so buffer copies keep
//!   it.
//!
//! Changes are made under the batch's `nvds_acquire_meta_lock`, and only on a writable buffer:
//! a batch meta on a shared buffer belongs to its other holders too.

use std::ffi::{CString, c_char};
use std::sync::atomic::{AtomicI64, Ordering};

use gst::glib::ffi::gpointer;

use super::layout::{MAX_FRAMES_PER_BUFFER, MAX_OBJECTS_PER_BUFFER};
use super::nvds::{
    NvDsBatchMeta, NvDsClassifierMeta, NvDsFrameMeta, NvDsLabelInfo, NvDsObjectMeta, NvDsUserMeta,
    NvdsMetaLib, nvds_meta,
};
use super::{DeepStreamLayout, batch_metas, batch_metas_made_by, field, layout};
use crate::verdict::{Status, Verdict};

/// `IGuardVerdictMeta.version` of this layout.
pub const VERDICT_META_VERSION: u32 = 1;
/// `object_id` / `clip_*_pts` when there is none.
pub const NONE: u64 = u64::MAX;
/// `classifier_type` of our classifier metas (a static string: NVIDIA never frees it).
pub const CLASSIFIER_TYPE: &std::ffi::CStr = c"iguardverify";

/// The user meta's payload, laid out as `IGuardVerdictMeta` in `include/iguard_verdict_meta.h`
/// (every field naturally aligned, no padding; 656 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IGuardVerdictMeta {
    pub version: u32,
    pub size: u32,
    pub request_id: u64,
    pub object_id: u64,
    pub source_id: u32,
    pub pad_index: u32,
    pub status: i32,
    pub frames: u32,
    pub score: f64,
    pub threshold: f64,
    pub trigger_confidence: f64,
    pub clip_start_pts: u64,
    pub clip_end_pts: u64,
    pub queue_ms: f64,
    pub processing_ms: f64,
    pub status_name: [c_char; 16],
    pub label: [c_char; 128],
    pub trigger_label: [c_char; 128],
    pub scorer: [c_char; 32],
    pub reason: [c_char; 256],
}

/// Verdict payloads allocated and not yet released (by attaching, copying, releasing).
static LIVE_PAYLOADS: AtomicI64 = AtomicI64::new(0);

/// How many verdict payloads are alive in this process: every attached or copied user meta
/// holds one until DeepStream releases it. For tests and leak checks.
pub fn live_payloads() -> i64 {
    LIVE_PAYLOADS.load(Ordering::Relaxed)
}

/// A g_malloc'd copy of `m`, counted in [`live_payloads`].
fn alloc_payload(m: &IGuardVerdictMeta) -> *mut IGuardVerdictMeta {
    // SAFETY: g_malloc aborts rather than return null; the block has the struct's size and
    // g_malloc's alignment suits every field.
    unsafe {
        let p = gst::glib::ffi::g_malloc(std::mem::size_of::<IGuardVerdictMeta>())
            .cast::<IGuardVerdictMeta>();
        p.write(*m);
        LIVE_PAYLOADS.fetch_add(1, Ordering::Relaxed);
        p
    }
}

/// `IGuardVerdictStatus` of the header.
pub fn status_code(status: Status) -> i32 {
    match status {
        Status::Verified => 0,
        Status::Rejected => 1,
        Status::Fallback => 2,
        Status::Timeout => 3,
        Status::Dropped => 4,
        Status::Error => 5,
    }
}

/// Copies `s` into `dst` as a NUL-terminated string, cut at a character boundary to fit and at
/// the first NUL `s` may hold. Returns whether all of that text fitted.
fn put_str(dst: &mut [c_char], s: &str) -> bool {
    let s = s.split('\0').next().unwrap_or_default();
    let mut end = s.len().min(dst.len().saturating_sub(1));
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    for (d, b) in dst.iter_mut().zip(s.as_bytes()[..end].iter()) {
        *d = *b as c_char;
    }
    if let Some(nul) = dst.get_mut(end) {
        *nul = 0;
    }
    end == s.len()
}

/// The text of a NUL-terminated array (up to its first NUL; lossy for invalid UTF-8).
pub fn c_array_str(a: &[c_char]) -> String {
    let bytes: Vec<u8> = a
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

impl IGuardVerdictMeta {
    pub fn new(verdict: &Verdict, object_id: Option<u64>) -> Self {
        let mut m = IGuardVerdictMeta {
            version: VERDICT_META_VERSION,
            size: std::mem::size_of::<Self>() as u32,
            request_id: verdict.request_id,
            object_id: object_id.unwrap_or(NONE),
            source_id: verdict.source_id,
            pad_index: verdict.pad_index,
            status: status_code(verdict.status),
            frames: verdict.frames,
            score: verdict.score,
            threshold: verdict.threshold,
            trigger_confidence: verdict.trigger_confidence,
            clip_start_pts: verdict.clip_start_pts.unwrap_or(NONE),
            clip_end_pts: verdict.clip_end_pts.unwrap_or(NONE),
            queue_ms: verdict.queue_ms,
            processing_ms: verdict.processing_ms,
            status_name: [0; 16],
            label: [0; 128],
            trigger_label: [0; 128],
            scorer: [0; 32],
            reason: [0; 256],
        };
        put_str(&mut m.status_name, verdict.status.as_str());
        put_str(&mut m.label, &verdict.label);
        put_str(&mut m.trigger_label, &verdict.trigger_label);
        put_str(&mut m.scorer, &verdict.scorer);
        put_str(&mut m.reason, &verdict.reason);
        m
    }
}

/// The `result_label` of a verdict: its status, then its label when it has one
/// (`verified armed`, `timeout`).
pub fn status_label(verdict: &Verdict) -> String {
    if verdict.label.is_empty() {
        verdict.status.as_str().to_string()
    } else {
        format!("{} {}", verdict.status, verdict.label)
    }
}

/// What is appended to the object's `display_text`: the status label, and the score when the
/// clip was scored (`verified armed 0.91`).
pub fn display_text(verdict: &Verdict) -> String {
    if verdict.status.is_scored() && verdict.score.is_finite() {
        format!("{} {:.2}", status_label(verdict), verdict.score)
    } else {
        status_label(verdict)
    }
}

/// Where a verdict goes besides its source's frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The trigger's tracker id: the object meta that gets the classifier meta.
    pub object_id: Option<u64>,
    /// `result_class_id`: the model's class, when a model named one (`u32::MAX` otherwise).
    pub class_id: Option<u32>,
    /// `unique_component_id` of the classifier meta (the element's `unique-id`).
    pub unique_id: i32,
    /// The configured layout (`deepstream-version`), named in the error when the object pool's
    /// element size is not a known release's. What is written follows the size alone: it is
    /// the running library's own fact.
    pub layout: DeepStreamLayout,
}

/// What [`attach_verdict`] did with the object part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectResult {
    /// A classifier meta went on the object and its `display_text` got the verdict.
    Classified,
    /// The verdict has no tracker id.
    Untracked,
    /// No object of the frame has that id.
    NotInFrame,
}

/// What [`attach_verdict`] attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attached {
    /// `batch_id` of the frame meta that got the user meta.
    pub batch_id: u32,
    pub object: ObjectResult,
    /// The object layout of the batch, from its object pool's element size.
    pub layout: DeepStreamLayout,
}

/// Why nothing was attached.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AttachError {
    #[error(
        "the buffer is not writable: its DeepStream batch meta is shared and not ours to change"
    )]
    NotWritable,
    #[error("the buffer carries no DeepStream batch meta")]
    NoBatchMeta,
    #[error(
        "the buffer's DeepStream batch meta was not made by the loaded libnvds_meta.so ({0}): \
         it is left alone"
    )]
    ForeignBatchMeta(String),
    #[error("no frame meta of source {0} in the buffer's batch")]
    SourceNotInBatch(u32),
    #[error(
        "the batch's object pool allocates {size}-byte NvDsObjectMeta, the size of no DeepStream \
         release whose layout is known ({known}; deepstream-version gives {configured}): \
         nothing is written to its metas",
        known = layout::object::KNOWN_SIZES
            .iter()
            .map(|(size, l)| format!("{size} for {}", l.nick()))
            .collect::<Vec<_>>()
            .join(", ")
    )]
    UnknownObjectSize {
        size: u32,
        configured: DeepStreamLayout,
    },
    #[error("the batch meta has no object pool: nothing is written to its metas")]
    NoObjectPool,
    #[error("DeepStream's {0} pool returned no meta")]
    PoolEmpty(&'static str),
    #[error(transparent)]
    Library(#[from] super::loader::LoadError),
}

/// Holds a batch's meta lock; released on drop.
struct MetaLock<'a> {
    lib: &'a NvdsMetaLib,
    batch: *mut NvDsBatchMeta,
}

impl<'a> MetaLock<'a> {
    fn new(lib: &'a NvdsMetaLib, batch: *mut NvDsBatchMeta) -> Self {
        // SAFETY: `batch` is a live batch meta made by this library (caller).
        unsafe { (lib.acquire_meta_lock)(batch) };
        MetaLock { lib, batch }
    }
}

impl Drop for MetaLock<'_> {
    fn drop(&mut self) {
        // SAFETY: taken in `new` on the same batch.
        unsafe { (self.lib.release_meta_lock)(self.batch) };
    }
}

/// The `data` of each node of a `GList`, at most `limit` of them, skipping null data.
///
/// # Safety
/// `node` must be null or a readable `GList` whose `next` chain is made of readable nodes.
unsafe fn list_items(mut node: *const gst::glib::ffi::GList, limit: usize) -> Vec<*mut u8> {
    let mut out = Vec::new();
    while !node.is_null() && out.len() < limit {
        // SAFETY: `node` is non-null and readable (caller).
        let (data, next) = unsafe { ((*node).data, (*node).next) };
        if !data.is_null() {
            out.push(data.cast::<u8>());
        }
        node = next;
    }
    out
}

/// The object layout of a batch, from the size its object pool allocates each
/// `NvDsObjectMeta` with ([`layout::object::KNOWN_SIZES`]). Any other size is a release whose
/// layout we do not know (a future one whose object grew, or another library): `Err`, and
/// nothing may be written. `configured` only goes into the error.
///
/// # Safety
/// `batch` must be a live `NvDsBatchMeta`.
pub unsafe fn object_layout(
    batch: *const u8,
    configured: DeepStreamLayout,
) -> Result<DeepStreamLayout, AttachError> {
    // SAFETY: the pool pointer is a field of the batch meta (caller); a non-null pool is a
    // live `NvDsMetaPool`.
    let size = unsafe {
        let pool: *const u8 = field(batch, layout::batch::OBJ_META_POOL);
        if pool.is_null() {
            return Err(AttachError::NoObjectPool);
        }
        field::<u32>(pool, layout::pool::ELEMENT_SIZE)
    };
    layout::object::KNOWN_SIZES
        .iter()
        .find(|(known, _)| *known == size)
        .map(|(_, l)| *l)
        .ok_or(AttachError::UnknownObjectSize { size, configured })
}

/// Copies the verdict payload of a user meta (`NvDsMetaCopyFunc`): NVIDIA's batch copy calls it
/// with the source `NvDsUserMeta`.
unsafe extern "C" fn verdict_copy(data: gpointer, _user_data: gpointer) -> gpointer {
    if data.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: `data` is one of our user metas, whose payload is null or an
    // `IGuardVerdictMeta` allocated by us with g_malloc.
    unsafe {
        let src: *const IGuardVerdictMeta = field(data.cast(), layout::user::USER_META_DATA);
        if src.is_null() {
            return std::ptr::null_mut();
        }
        alloc_payload(&*src).cast()
    }
}

/// Frees the verdict payload of a user meta (`NvDsMetaReleaseFunc`) and clears the pointer.
unsafe extern "C" fn verdict_release(data: gpointer, _user_data: gpointer) {
    if data.is_null() {
        return;
    }
    // SAFETY: as in `verdict_copy`; the pointer is cleared so it is freed once.
    unsafe {
        let slot = data
            .cast::<u8>()
            .add(layout::user::USER_META_DATA)
            .cast::<gpointer>();
        let p = slot.read_unaligned();
        if !p.is_null() {
            gst::glib::ffi::g_free(p);
            LIVE_PAYLOADS.fetch_sub(1, Ordering::Relaxed);
        }
        slot.write_unaligned(std::ptr::null_mut());
    }
}

/// A C string of `s` without the NULs it may hold.
fn c_text(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

/// Attaches `verdict` to the frame meta of its source in `buffer`'s batch meta (user meta) and,
/// when `target.object_id` names an object of that frame, to that object (classifier meta and
/// `display_text`). See the module documentation.
pub fn attach_verdict(
    buffer: &mut gst::BufferRef,
    verdict: &Verdict,
    target: &Target,
) -> Result<Attached, AttachError> {
    // SAFETY: a plain query on a live mini object.
    let writable = unsafe {
        gst::ffi::gst_mini_object_is_writable(buffer.as_ptr().cast::<gst::ffi::GstMiniObject>())
    } != 0;
    if !writable {
        return Err(AttachError::NotWritable);
    }
    let mut skipped = 0;
    if batch_metas(buffer, &mut skipped).is_empty() {
        return Err(AttachError::NoBatchMeta);
    }
    let lib = nvds_meta().map_err(|e| AttachError::Library(e.clone()))?;
    let Some(&batch) = batch_metas_made_by(buffer, lib.batch_meta_copy_func as usize).first()
    else {
        return Err(AttachError::ForeignBatchMeta(lib.from().to_string()));
    };
    let batch = batch.cast_mut();
    let user_type = lib.verdict_user_meta_type();
    let _lock = MetaLock::new(lib, batch.cast());

    // SAFETY (for the rest): `batch` is the live batch meta of a buffer we hold writable, made
    // by DeepStream, whose lists hold live frame and object metas laid out per `layout`; we
    // hold its lock.
    let frames: *const gst::glib::ffi::GList =
        unsafe { field(batch, layout::batch::FRAME_META_LIST) };
    // Before anything is written: a batch whose objects are of an unknown size comes from a
    // release whose layouts we do not know.
    let used_layout = unsafe { object_layout(batch, target.layout) }?;
    let frame = unsafe { list_items(frames, MAX_FRAMES_PER_BUFFER) }
        .into_iter()
        .find(|f| unsafe { field::<u32>(*f, layout::frame::SOURCE_ID) } == verdict.source_id)
        .ok_or(AttachError::SourceNotInBatch(verdict.source_id))?;
    let batch_id: u32 = unsafe { field(frame, layout::frame::BATCH_ID) };

    let object = match target.object_id {
        None => ObjectResult::Untracked,
        Some(id) => {
            let objects: *const gst::glib::ffi::GList =
                unsafe { field(frame, layout::frame::OBJ_META_LIST) };
            let found = unsafe { list_items(objects, MAX_OBJECTS_PER_BUFFER) }
                .into_iter()
                .find(|o| unsafe { field::<u64>(*o, layout::object::OBJECT_ID) } == id);
            match found {
                None => ObjectResult::NotInFrame,
                Some(o) => {
                    unsafe { classify(lib, batch, o, verdict, target, used_layout)? };
                    ObjectResult::Classified
                }
            }
        }
    };

    let payload = IGuardVerdictMeta::new(verdict, target.object_id);
    unsafe {
        let user = (lib.acquire_user_meta_from_pool)(batch.cast());
        if user.is_null() {
            return Err(AttachError::PoolEmpty("user meta"));
        }
        let data = alloc_payload(&payload);
        let u = user.cast::<u8>();
        put(u, layout::user::USER_META_DATA, data);
        put(u, layout::base::META_TYPE, user_type);
        put(
            u,
            layout::base::COPY_FUNC,
            verdict_copy as super::nvds::CopyFunc,
        );
        put(
            u,
            layout::base::RELEASE_FUNC,
            verdict_release as super::nvds::ReleaseFunc,
        );
        (lib.add_user_meta_to_frame)(frame.cast::<NvDsFrameMeta>(), user.cast::<NvDsUserMeta>());
    }
    Ok(Attached {
        batch_id,
        object,
        layout: used_layout,
    })
}

/// Writes `v` at `base + offset`.
///
/// # Safety
/// The bytes must lie inside a live, writable structure where a `T` belongs.
unsafe fn put<T>(base: *mut u8, offset: usize, v: T) {
    // SAFETY: per the caller.
    unsafe { base.add(offset).cast::<T>().write_unaligned(v) }
}

/// Adds the classifier meta to `object` and appends to its `display_text`.
///
/// # Safety
/// As in [`attach_verdict`]: a live, locked batch and one of its object metas of layout `l`.
unsafe fn classify(
    lib: &NvdsMetaLib,
    batch: *mut u8,
    object: *mut u8,
    verdict: &Verdict,
    target: &Target,
    l: DeepStreamLayout,
) -> Result<(), AttachError> {
    use layout::{classifier as c, label_info as li};
    let label = status_label(verdict);
    // SAFETY: per the caller; the pool functions hand out zeroed metas of the right kind, and
    // every string stored is g_malloc'd, which NVIDIA's release functions g_free.
    unsafe {
        let cls = (lib.acquire_classifier_meta_from_pool)(batch.cast());
        let info = (lib.acquire_label_info_meta_from_pool)(batch.cast());
        if cls.is_null() || info.is_null() {
            return Err(AttachError::PoolEmpty("classifier / label info"));
        }
        let i = info.cast::<u8>();
        put(i, li::NUM_CLASSES, 0u32);
        let mut text = [0 as c_char; li::RESULT_LABEL_LEN];
        if !put_str(&mut text, &label) {
            let full = c_text(&label);
            put(
                i,
                li::P_RESULT_LABEL,
                gst::glib::ffi::g_strdup(full.as_ptr()),
            );
        }
        std::ptr::copy_nonoverlapping(text.as_ptr(), i.add(li::RESULT_LABEL).cast(), text.len());
        put(i, li::RESULT_CLASS_ID, target.class_id.unwrap_or(u32::MAX));
        put(i, li::LABEL_ID, 0u32);
        put(i, li::RESULT_PROB, verdict.score as f32);

        let k = cls.cast::<u8>();
        put(k, c::UNIQUE_COMPONENT_ID, target.unique_id);
        put(k, c::CLASSIFIER_TYPE, CLASSIFIER_TYPE.as_ptr());
        (lib.add_label_info_meta_to_classifier)(
            cls.cast::<NvDsClassifierMeta>(),
            info.cast::<NvDsLabelInfo>(),
        );
        (lib.add_classifier_meta_to_object)(object.cast::<NvDsObjectMeta>(), cls);

        if let Some(off) = l.display_text_offset() {
            let slot = object.add(off).cast::<*mut c_char>();
            let old = slot.read_unaligned();
            let ours = display_text(verdict);
            let new = if old.is_null() || *old == 0 {
                c_text(&ours)
            } else {
                let old_text = std::ffi::CStr::from_ptr(old).to_string_lossy();
                c_text(&format!("{old_text} {ours}"))
            };
            slot.write_unaligned(gst::glib::ffi::g_strdup(new.as_ptr()));
            gst::glib::ffi::g_free(old.cast());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// The offsets the header's comments state (the tests in `tests/deepstream_nvidia.rs`
    /// compile the header itself and compare).
    #[test]
    fn the_struct_matches_the_header_comments() {
        type M = IGuardVerdictMeta;
        let offsets = [
            (offset_of!(M, version), 0),
            (offset_of!(M, size), 4),
            (offset_of!(M, request_id), 8),
            (offset_of!(M, object_id), 16),
            (offset_of!(M, source_id), 24),
            (offset_of!(M, pad_index), 28),
            (offset_of!(M, status), 32),
            (offset_of!(M, frames), 36),
            (offset_of!(M, score), 40),
            (offset_of!(M, threshold), 48),
            (offset_of!(M, trigger_confidence), 56),
            (offset_of!(M, clip_start_pts), 64),
            (offset_of!(M, clip_end_pts), 72),
            (offset_of!(M, queue_ms), 80),
            (offset_of!(M, processing_ms), 88),
            (offset_of!(M, status_name), 96),
            (offset_of!(M, label), 112),
            (offset_of!(M, trigger_label), 240),
            (offset_of!(M, scorer), 368),
            (offset_of!(M, reason), 400),
        ];
        for (i, (got, want)) in offsets.iter().enumerate() {
            assert_eq!(got, want, "field {i}");
        }
        assert_eq!(size_of::<M>(), 656);
    }

    #[test]
    fn the_object_layout_follows_the_pool_size_and_only_known_sizes_are_accepted() {
        let mut pool = [0u64; 4];
        let mut batch = [0u64; 16];
        let pool_ptr = pool.as_mut_ptr().cast::<u8>();
        let b = batch.as_mut_ptr().cast::<u8>();
        let layout_with = |size: u32, configured| {
            // SAFETY: both blocks are large enough for the fields written and read.
            unsafe {
                put(pool_ptr, layout::pool::ELEMENT_SIZE, size);
                put(b, layout::batch::OBJ_META_POOL, pool_ptr);
                object_layout(b, configured)
            }
        };
        use DeepStreamLayout::*;
        for configured in [Unknown, V5toV8, V9] {
            assert_eq!(layout_with(552, configured).unwrap(), V9, "{configured}");
            assert_eq!(
                layout_with(544, configured).unwrap(),
                V5toV8,
                "{configured}"
            );
            // A future release whose object grew, a smaller or a garbage size: nothing.
            for size in [560, 536, 0, u32::MAX] {
                let e = layout_with(size, configured).unwrap_err();
                assert!(
                    matches!(e, AttachError::UnknownObjectSize { size: s, .. } if s == size),
                    "{e:?}"
                );
                let text = e.to_string();
                assert!(
                    text.contains(&format!("allocates {size}-byte NvDsObjectMeta"))
                        && text.contains("544 for v5-v8, 552 for v9")
                        && text.contains(&format!("deepstream-version gives {configured}"))
                        && text.contains("nothing is written"),
                    "{text}"
                );
            }
        }
        // SAFETY: as above.
        let none = unsafe {
            put(b, layout::batch::OBJ_META_POOL, std::ptr::null_mut::<u8>());
            object_layout(b, V9)
        };
        assert!(matches!(none, Err(AttachError::NoObjectPool)), "{none:?}");
    }

    #[test]
    fn strings_are_cut_at_a_character_boundary_and_a_nul() {
        let mut a = [1 as c_char; 5];
        assert!(put_str(&mut a, "abc"));
        assert_eq!(c_array_str(&a), "abc");
        assert!(!put_str(&mut a, "caméra"), "7 bytes + NUL do not fit 5");
        assert_eq!(c_array_str(&a), "cam", "é is not split");
        assert_eq!(a[3], 0);
        assert!(put_str(&mut a, "ab\0cd"), "the text ends at its NUL");
        assert_eq!(c_array_str(&a), "ab");
        assert!(put_str(&mut a, ""));
        assert_eq!(a[0], 0);
    }

    fn verdict(status: Status, label: &str, score: f64) -> Verdict {
        Verdict {
            request_id: 7,
            source_id: 2,
            pad_index: 3,
            status,
            score,
            threshold: 0.5,
            label: label.into(),
            trigger_label: "person".into(),
            trigger_confidence: 0.8,
            clip_start_pts: Some(1),
            clip_end_pts: None,
            frames: 16,
            queue_ms: 1.5,
            processing_ms: 2.5,
            scorer: "onnx".into(),
            reason: String::new(),
            object_id: None,
            crop: None,
            snapshot: None,
            zones: Vec::new(),
        }
    }

    #[test]
    fn labels_say_the_status_then_the_label_and_the_score_when_scored() {
        let v = verdict(Status::Verified, "armed", 0.914);
        assert_eq!(status_label(&v), "verified armed");
        assert_eq!(display_text(&v), "verified armed 0.91");
        let v = verdict(Status::Timeout, "", f64::NAN);
        assert_eq!(status_label(&v), "timeout");
        assert_eq!(display_text(&v), "timeout");
    }

    #[test]
    fn the_payload_holds_every_verdict_field() {
        let v = verdict(Status::Rejected, "armed", 0.25);
        let m = IGuardVerdictMeta::new(&v, None);
        assert_eq!((m.version, m.size), (1, 656));
        assert_eq!((m.request_id, m.object_id), (7, NONE));
        assert_eq!((m.source_id, m.pad_index, m.status), (2, 3, 1));
        assert_eq!((m.frames, m.score, m.threshold), (16, 0.25, 0.5));
        assert_eq!(m.trigger_confidence, 0.8);
        assert_eq!((m.clip_start_pts, m.clip_end_pts), (1, NONE));
        assert_eq!((m.queue_ms, m.processing_ms), (1.5, 2.5));
        assert_eq!(c_array_str(&m.status_name), "rejected");
        assert_eq!(c_array_str(&m.label), "armed");
        assert_eq!(c_array_str(&m.trigger_label), "person");
        assert_eq!(c_array_str(&m.scorer), "onnx");
        assert_eq!(c_array_str(&m.reason), "");
        for s in Status::ALL {
            assert_eq!(
                status_code(s) as usize,
                Status::ALL.iter().position(|x| *x == s).unwrap()
            );
        }
    }
}
