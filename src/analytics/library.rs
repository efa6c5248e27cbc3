// SPDX-License-Identifier: MIT OR Apache-2.0
//! `libgstanalytics-1.0.so.0` opened at run time: the few functions of GStreamer's analytics
//! library (1.24 and later) this crate calls, as a typed table ([`library`]).
//!
//! The signatures are those of `gstanalyticsmeta.h`, `gstanalyticsobjectdetectionmtd.h`,
//! `gstanalyticsobjecttrackingmtd.h` and `gstanalyticsclassificationmtd.h`, the same in 1.24 and
//! 1.26 for every function used here (1.26 added oriented boxes, `N_TO_N` relations and
//! segmentation, none of which we need). Nothing links against the library, so one plugin
//! binary loads on GStreamer 1.20 and 1.22, where it does not exist.

use std::ffi::{c_float, c_int, c_uint};
use std::sync::OnceLock;

use gst::glib::ffi::{GQuark, gboolean, gpointer};
use libloading::os::unix::{Library, RTLD_LAZY, RTLD_LOCAL};

/// The library's file name (its soname since 1.24).
pub const LIBRARY: &str = "libgstanalytics-1.0.so.0";

/// `GstAnalyticsRelationMeta`: opaque; only the library's functions look inside.
#[repr(C)]
pub struct RelationMeta {
    _opaque: [u8; 0],
}

/// `GstAnalyticsMtd`, the handle every mtd function takes: `{ guint id;
/// GstAnalyticsRelationMeta *meta; }` (the od, tracking and classification handles are the
/// same struct under other names).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Mtd {
    pub id: c_uint,
    pub meta: *mut RelationMeta,
}

/// `GstAnalyticsMtdType`: a `guintptr` naming an mtd implementation; 0 is "any".
pub type MtdType = usize;
pub const MTD_TYPE_ANY: MtdType = 0;

/// `GstAnalyticsRelTypes` (flags).
pub type RelTypes = c_uint;
pub const REL_NONE: RelTypes = 0;
pub const REL_IS_PART_OF: RelTypes = 1 << 1;
pub const REL_CONTAIN: RelTypes = 1 << 2;
pub const REL_RELATE_TO: RelTypes = 1 << 3;

/// The functions we use, and the library that keeps them valid.
pub struct Analytics {
    _library: Library,
    /// Where the library came from, for messages.
    pub from: String,
    pub relation_meta_get_info: unsafe extern "C" fn() -> *const gst::ffi::GstMetaInfo,
    pub relation_get_length: unsafe extern "C" fn(*const RelationMeta) -> usize,
    pub relation_meta_iterate: unsafe extern "C" fn(
        meta: *mut RelationMeta,
        state: *mut gpointer,
        type_: MtdType,
        rlt_mtd: *mut Mtd,
    ) -> gboolean,
    pub relation_meta_get_relation:
        unsafe extern "C" fn(meta: *const RelationMeta, first: c_uint, second: c_uint) -> RelTypes,
    pub relation_meta_set_relation: unsafe extern "C" fn(
        meta: *mut RelationMeta,
        type_: RelTypes,
        first: c_uint,
        second: c_uint,
    ) -> gboolean,
    pub mtd_get_mtd_type: unsafe extern "C" fn(*const Mtd) -> MtdType,
    pub od_mtd_get_mtd_type: unsafe extern "C" fn() -> MtdType,
    pub od_mtd_get_location: unsafe extern "C" fn(
        instance: *const Mtd,
        x: *mut c_int,
        y: *mut c_int,
        w: *mut c_int,
        h: *mut c_int,
        loc_conf_lvl: *mut c_float,
    ) -> gboolean,
    pub od_mtd_get_obj_type: unsafe extern "C" fn(*const Mtd) -> GQuark,
    pub tracking_mtd_get_mtd_type: unsafe extern "C" fn() -> MtdType,
    pub tracking_mtd_get_info: unsafe extern "C" fn(
        instance: *const Mtd,
        tracking_id: *mut u64,
        first_seen: *mut gst::ffi::GstClockTime,
        last_seen: *mut gst::ffi::GstClockTime,
        lost: *mut gboolean,
    ) -> gboolean,
    pub relation_meta_add_cls_mtd: unsafe extern "C" fn(
        instance: *mut RelationMeta,
        length: usize,
        confidence_levels: *mut c_float,
        class_quarks: *mut GQuark,
        cls_mtd: *mut Mtd,
    ) -> gboolean,
    pub relation_meta_add_tracking_mtd: unsafe extern "C" fn(
        instance: *mut RelationMeta,
        tracking_id: u64,
        tracking_first_seen: gst::ffi::GstClockTime,
        trk_mtd: *mut Mtd,
    ) -> gboolean,
}

/// Why the library is not used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error(
        "cannot open {LIBRARY} ({0}): GStreamer's analytics metadata (1.24 and later) is not \
         read or written; install GStreamer 1.24 or later's gst-plugins-bad libraries \
         (libgstreamer-plugins-bad1.0-0) to use it"
    )]
    NotFound(String),
    #[error("{from} lacks `{symbol}` ({reason}): it is not GStreamer 1.24 or later's {LIBRARY}")]
    MissingSymbol {
        from: String,
        symbol: String,
        reason: String,
    },
}

/// The loader's own words (`dlerror`).
fn reason(e: &libloading::Error) -> String {
    match std::error::Error::source(e) {
        Some(s) => s.to_string(),
        None => e.to_string(),
    }
}

impl Analytics {
    /// Opens the library: the copy already loaded in this process when there is one (the one
    /// that registered the meta other elements attach), else by name through the dynamic
    /// loader. Uncached; see [`library`].
    pub fn load() -> Result<Self, LoadError> {
        // SAFETY: opening GStreamer's analytics library runs no initialiser beyond GLib's
        // type-system constructors; it is never closed while the table lives.
        let (library, from) = match unsafe {
            Library::open(Some(LIBRARY), RTLD_LAZY | RTLD_LOCAL | libc::RTLD_NOLOAD)
        } {
            Ok(l) => (l, format!("{LIBRARY} (already loaded)")),
            Err(_) => match unsafe { Library::open(Some(LIBRARY), RTLD_LAZY | RTLD_LOCAL) } {
                Ok(l) => (l, LIBRARY.to_string()),
                Err(e) => return Err(LoadError::NotFound(reason(&e))),
            },
        };
        /// Copies a function pointer out of the library.
        ///
        /// # Safety
        /// `T` must be the symbol's exact `extern "C"` signature.
        unsafe fn sym<T: Copy>(lib: &Library, from: &str, name: &str) -> Result<T, LoadError> {
            // SAFETY: per the caller's contract.
            unsafe { lib.get::<T>(name.as_bytes()) }
                .map(|s| *s)
                .map_err(|e| LoadError::MissingSymbol {
                    from: from.to_string(),
                    symbol: name.to_string(),
                    reason: reason(&e),
                })
        }
        let l = &library;
        let f = from.as_str();
        // SAFETY: each type is the function's signature in the 1.24/1.26 headers named in the
        // module documentation; `library` is stored with the pointers.
        unsafe {
            Ok(Analytics {
                relation_meta_get_info: sym(l, f, "gst_analytics_relation_meta_get_info")?,
                relation_get_length: sym(l, f, "gst_analytics_relation_get_length")?,
                relation_meta_iterate: sym(l, f, "gst_analytics_relation_meta_iterate")?,
                relation_meta_get_relation: sym(l, f, "gst_analytics_relation_meta_get_relation")?,
                relation_meta_set_relation: sym(l, f, "gst_analytics_relation_meta_set_relation")?,
                mtd_get_mtd_type: sym(l, f, "gst_analytics_mtd_get_mtd_type")?,
                od_mtd_get_mtd_type: sym(l, f, "gst_analytics_od_mtd_get_mtd_type")?,
                od_mtd_get_location: sym(l, f, "gst_analytics_od_mtd_get_location")?,
                od_mtd_get_obj_type: sym(l, f, "gst_analytics_od_mtd_get_obj_type")?,
                tracking_mtd_get_mtd_type: sym(l, f, "gst_analytics_tracking_mtd_get_mtd_type")?,
                tracking_mtd_get_info: sym(l, f, "gst_analytics_tracking_mtd_get_info")?,
                relation_meta_add_cls_mtd: sym(l, f, "gst_analytics_relation_meta_add_cls_mtd")?,
                relation_meta_add_tracking_mtd: sym(
                    l,
                    f,
                    "gst_analytics_relation_meta_add_tracking_mtd",
                )?,
                from,
                _library: library,
            })
        }
    }
}

impl std::fmt::Debug for Analytics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analytics")
            .field("from", &self.from)
            .finish()
    }
}

/// The library, opened once for the process; a failure is kept too (where it is missing, it
/// stays missing while the process runs).
pub fn library() -> Result<&'static Analytics, &'static LoadError> {
    static LIB: OnceLock<Result<Analytics, LoadError>> = OnceLock::new();
    LIB.get_or_init(Analytics::load).as_ref()
}
