// SPDX-License-Identifier: MIT OR Apache-2.0
//! Typed function tables of NVIDIA's metadata libraries, `libnvds_meta.so` and
//! `libnvdsgst_meta.so`, opened once per process ([`nvds_meta`], [`nvds_gst_meta`]).
//!
//! The signatures are those of `nvdsmeta.h` / `gstnvdsmeta.h` (DeepStream 5.0–9.x). The meta
//! structures are opaque here: their fields are read and written at the offsets in
//! [`super::layout`], so one table serves every release.

use std::ffi::{c_char, c_int};
use std::sync::OnceLock;

use gst::glib::ffi::{GType, gboolean, gpointer};

use super::loader::{self, LoadError, NvLib, Opened, Place};

macro_rules! opaque {
    ($($(#[$m:meta])* $name:ident),* $(,)?) => {
        $( $(#[$m])* #[repr(C)] pub struct $name { _opaque: [u8; 0] } )*
    };
}

opaque!(
    /// `NvDsBatchMeta`.
    NvDsBatchMeta,
    /// `NvDsFrameMeta`.
    NvDsFrameMeta,
    /// `NvDsObjectMeta`.
    NvDsObjectMeta,
    /// `NvDsClassifierMeta`.
    NvDsClassifierMeta,
    /// `NvDsLabelInfo`.
    NvDsLabelInfo,
    /// `NvDsUserMeta`.
    NvDsUserMeta,
    /// `NvDsMeta`, the GstMeta.
    NvDsMeta,
);

/// `NvDsMetaCopyFunc`: returns a copy of what `data` holds.
pub type CopyFunc = unsafe extern "C" fn(data: gpointer, user_data: gpointer) -> gpointer;
/// `NvDsMetaReleaseFunc`: frees what `data` holds.
pub type ReleaseFunc = unsafe extern "C" fn(data: gpointer, user_data: gpointer);

/// `libnvds_meta.so`: meta pools, lists and locks.
pub struct NvdsMetaLib {
    /// Keeps the library loaded while the function pointers below are in use.
    opened: Opened,
    pub create_batch_meta: unsafe extern "C" fn(max_batch_size: u32) -> *mut NvDsBatchMeta,
    pub destroy_batch_meta: unsafe extern "C" fn(*mut NvDsBatchMeta) -> gboolean,
    pub acquire_frame_meta_from_pool:
        unsafe extern "C" fn(*mut NvDsBatchMeta) -> *mut NvDsFrameMeta,
    pub add_frame_meta_to_batch: unsafe extern "C" fn(*mut NvDsBatchMeta, *mut NvDsFrameMeta),
    pub acquire_obj_meta_from_pool: unsafe extern "C" fn(*mut NvDsBatchMeta) -> *mut NvDsObjectMeta,
    pub add_obj_meta_to_frame:
        unsafe extern "C" fn(*mut NvDsFrameMeta, *mut NvDsObjectMeta, *mut NvDsObjectMeta),
    pub acquire_classifier_meta_from_pool:
        unsafe extern "C" fn(*mut NvDsBatchMeta) -> *mut NvDsClassifierMeta,
    pub acquire_label_info_meta_from_pool:
        unsafe extern "C" fn(*mut NvDsBatchMeta) -> *mut NvDsLabelInfo,
    pub add_label_info_meta_to_classifier:
        unsafe extern "C" fn(*mut NvDsClassifierMeta, *mut NvDsLabelInfo),
    pub add_classifier_meta_to_object:
        unsafe extern "C" fn(*mut NvDsObjectMeta, *mut NvDsClassifierMeta),
    pub acquire_user_meta_from_pool: unsafe extern "C" fn(*mut NvDsBatchMeta) -> *mut NvDsUserMeta,
    pub add_user_meta_to_frame: unsafe extern "C" fn(*mut NvDsFrameMeta, *mut NvDsUserMeta),
    /// Registers (or finds) a user meta type by name; the number is stable within a process.
    pub get_user_meta_type: unsafe extern "C" fn(name: *mut c_char) -> c_int,
    /// Takes the batch's recursive mutex.
    pub acquire_meta_lock: unsafe extern "C" fn(*mut NvDsBatchMeta),
    pub release_meta_lock: unsafe extern "C" fn(*mut NvDsBatchMeta),
    /// The copy and release functions producers give `gst_buffer_add_nvds_meta` for a batch.
    pub batch_meta_copy_func: CopyFunc,
    pub batch_meta_release_func: ReleaseFunc,
}

/// `libnvdsgst_meta.so`: the GstMeta that carries a batch meta on a buffer.
pub struct NvdsGstMetaLib {
    opened: Opened,
    pub buffer_add_nvds_meta: unsafe extern "C" fn(
        buffer: *mut gst::ffi::GstBuffer,
        meta_data: gpointer,
        user_data: gpointer,
        copy_func: Option<CopyFunc>,
        release_func: Option<ReleaseFunc>,
    ) -> *mut NvDsMeta,
    pub buffer_get_nvds_batch_meta:
        unsafe extern "C" fn(buffer: *mut gst::ffi::GstBuffer) -> *mut NvDsBatchMeta,
    pub meta_api_get_type: unsafe extern "C" fn() -> GType,
}

impl NvdsMetaLib {
    /// Opens `libnvds_meta.so` from the first of `places` that has it (uncached: see
    /// [`nvds_meta`] for the process-wide table).
    pub fn load(places: &[Place]) -> Result<Self, LoadError> {
        let lib = NvLib::NvdsMeta;
        let opened = loader::open(lib, places)?;
        // SAFETY: each type below is the function's signature in nvdsmeta.h, and `opened` is
        // stored with the pointers so the library outlives them.
        unsafe {
            Ok(NvdsMetaLib {
                create_batch_meta: loader::symbol(&opened, lib, "nvds_create_batch_meta")?,
                destroy_batch_meta: loader::symbol(&opened, lib, "nvds_destroy_batch_meta")?,
                acquire_frame_meta_from_pool: loader::symbol(
                    &opened,
                    lib,
                    "nvds_acquire_frame_meta_from_pool",
                )?,
                add_frame_meta_to_batch: loader::symbol(
                    &opened,
                    lib,
                    "nvds_add_frame_meta_to_batch",
                )?,
                acquire_obj_meta_from_pool: loader::symbol(
                    &opened,
                    lib,
                    "nvds_acquire_obj_meta_from_pool",
                )?,
                add_obj_meta_to_frame: loader::symbol(&opened, lib, "nvds_add_obj_meta_to_frame")?,
                acquire_classifier_meta_from_pool: loader::symbol(
                    &opened,
                    lib,
                    "nvds_acquire_classifier_meta_from_pool",
                )?,
                acquire_label_info_meta_from_pool: loader::symbol(
                    &opened,
                    lib,
                    "nvds_acquire_label_info_meta_from_pool",
                )?,
                add_label_info_meta_to_classifier: loader::symbol(
                    &opened,
                    lib,
                    "nvds_add_label_info_meta_to_classifier",
                )?,
                add_classifier_meta_to_object: loader::symbol(
                    &opened,
                    lib,
                    "nvds_add_classifier_meta_to_object",
                )?,
                acquire_user_meta_from_pool: loader::symbol(
                    &opened,
                    lib,
                    "nvds_acquire_user_meta_from_pool",
                )?,
                add_user_meta_to_frame: loader::symbol(
                    &opened,
                    lib,
                    "nvds_add_user_meta_to_frame",
                )?,
                get_user_meta_type: loader::symbol(&opened, lib, "nvds_get_user_meta_type")?,
                acquire_meta_lock: loader::symbol(&opened, lib, "nvds_acquire_meta_lock")?,
                release_meta_lock: loader::symbol(&opened, lib, "nvds_release_meta_lock")?,
                batch_meta_copy_func: loader::symbol(&opened, lib, "nvds_batch_meta_copy_func")?,
                batch_meta_release_func: loader::symbol(
                    &opened,
                    lib,
                    "nvds_batch_meta_release_func",
                )?,
                opened,
            })
        }
    }

    /// Where the library was opened from.
    pub fn from(&self) -> &str {
        &self.opened.from
    }

    /// The number of our verdict user meta type (`IGUARD.VERDICT`) in this process.
    pub fn verdict_user_meta_type(&self) -> i32 {
        static TYPE: OnceLock<i32> = OnceLock::new();
        *TYPE.get_or_init(|| {
            // SAFETY: the name is a NUL-terminated string that outlives the call; DeepStream
            // copies it into its registry and does not write through the pointer.
            unsafe {
                (self.get_user_meta_type)(super::layout::VERDICT_USER_META_NAME.as_ptr().cast_mut())
            }
        })
    }
}

impl NvdsGstMetaLib {
    /// Opens `libnvdsgst_meta.so` (uncached; see [`nvds_gst_meta`]).
    pub fn load(places: &[Place]) -> Result<Self, LoadError> {
        let lib = NvLib::NvdsGstMeta;
        let opened = loader::open(lib, places)?;
        // SAFETY: each type below is the function's signature in gstnvdsmeta.h, and `opened`
        // is stored with the pointers.
        unsafe {
            Ok(NvdsGstMetaLib {
                buffer_add_nvds_meta: loader::symbol(&opened, lib, "gst_buffer_add_nvds_meta")?,
                buffer_get_nvds_batch_meta: loader::symbol(
                    &opened,
                    lib,
                    "gst_buffer_get_nvds_batch_meta",
                )?,
                meta_api_get_type: loader::symbol(&opened, lib, "nvds_meta_api_get_type")?,
                opened,
            })
        }
    }

    pub fn from(&self) -> &str {
        &self.opened.from
    }
}

/// `libnvds_meta.so`, opened once for the process from the usual places
/// ([`loader::places_from_env`]). A failure is kept too: the places do not change while the
/// process runs.
pub fn nvds_meta() -> Result<&'static NvdsMetaLib, &'static LoadError> {
    static LIB: OnceLock<Result<NvdsMetaLib, LoadError>> = OnceLock::new();
    LIB.get_or_init(|| NvdsMetaLib::load(&loader::places_from_env()))
        .as_ref()
}

/// `libnvdsgst_meta.so`, opened once for the process after `libnvds_meta.so`, which it needs.
pub fn nvds_gst_meta() -> Result<&'static NvdsGstMetaLib, &'static LoadError> {
    static LIB: OnceLock<Result<NvdsGstMetaLib, LoadError>> = OnceLock::new();
    nvds_meta()?;
    LIB.get_or_init(|| NvdsGstMetaLib::load(&loader::places_from_env()))
        .as_ref()
}
