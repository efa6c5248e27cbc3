// SPDX-License-Identifier: MIT OR Apache-2.0
//! NVIDIA's DeepStream, the one place in the crate that knows its ABI: the metadata layouts per
//! release ([`layout`], [`DeepStreamLayout`]), finding the batch meta on a buffer, opening
//! NVIDIA's libraries at run time ([`loader`], [`nvds`]) and writing verdicts back as
//! DeepStream metadata ([`verdict_meta`]).
//!
//! Nothing here links against DeepStream: the plugin builds and loads anywhere, and a library
//! is opened only when a buffer needs it (see [`loader`] for where it is looked for).

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use gst::glib;

pub mod events;
pub mod layout;
pub mod loader;
pub mod nvds;
pub mod surface;
pub mod tiles;
pub mod verdict_meta;

/// Which DeepStream's `NvDsObjectMeta` layout to assume for the fields that moved between
/// releases (only `obj_label` so far). With `Unknown`, those fields are never read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DeepStreamLayout {
    /// DeepStream 5.0 to 8.x.
    V5toV8,
    /// DeepStream 9.x.
    V9,
    /// Not known: read only the fields that are the same in every supported release.
    #[default]
    Unknown,
}

impl DeepStreamLayout {
    /// The layout of a DeepStream major version; `Unknown` for versions we have no facts for.
    pub fn for_major_version(major: u32) -> Self {
        match major {
            5..=8 => DeepStreamLayout::V5toV8,
            9 => DeepStreamLayout::V9,
            _ => DeepStreamLayout::Unknown,
        }
    }

    /// Where `obj_label` is in an `NvDsObjectMeta`, if known.
    pub fn obj_label_offset(self) -> Option<usize> {
        match self {
            DeepStreamLayout::V5toV8 => Some(layout::object::OBJ_LABEL_V5_TO_V8),
            DeepStreamLayout::V9 => Some(layout::object::OBJ_LABEL_V9),
            DeepStreamLayout::Unknown => None,
        }
    }

    /// Where `text_params.display_text` is in an `NvDsObjectMeta`, if known.
    pub fn display_text_offset(self) -> Option<usize> {
        match self {
            DeepStreamLayout::V5toV8 => Some(layout::object::DISPLAY_TEXT_V5_TO_V8),
            DeepStreamLayout::V9 => Some(layout::object::DISPLAY_TEXT_V9),
            DeepStreamLayout::Unknown => None,
        }
    }

    /// Where `classifier_meta_list` is in an `NvDsObjectMeta`, if known.
    pub fn classifier_meta_list_offset(self) -> Option<usize> {
        match self {
            DeepStreamLayout::V5toV8 => Some(layout::object::CLASSIFIER_META_LIST_V5_TO_V8),
            DeepStreamLayout::V9 => Some(layout::object::CLASSIFIER_META_LIST_V9),
            DeepStreamLayout::Unknown => None,
        }
    }

    /// The short name [`FromStr`] accepts: `v5-v8`, `v9` or `unknown`.
    pub fn nick(self) -> &'static str {
        match self {
            DeepStreamLayout::V5toV8 => "v5-v8",
            DeepStreamLayout::V9 => "v9",
            DeepStreamLayout::Unknown => "unknown",
        }
    }
}

impl fmt::Display for DeepStreamLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.nick())
    }
}

/// A DeepStream layout name that is neither a nick nor a supported version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown DeepStream layout '{0}': expected v5-v8, v9, unknown, or a DeepStream version from 5 \
     to 9 (e.g. 6.4)"
)]
pub struct LayoutError(pub String);

impl FromStr for DeepStreamLayout {
    type Err = LayoutError;

    /// Accepts a nick (`v5-v8`, `v9`, `unknown`) or a DeepStream version (`6.4`, `9`, `9.0`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "v5-v8" => return Ok(DeepStreamLayout::V5toV8),
            "v9" => return Ok(DeepStreamLayout::V9),
            "unknown" => return Ok(DeepStreamLayout::Unknown),
            _ => {}
        }
        let major = t.split('.').next().unwrap_or_default();
        match major
            .parse::<u32>()
            .map(DeepStreamLayout::for_major_version)
        {
            Ok(l) if l != DeepStreamLayout::Unknown => Ok(l),
            _ => Err(LayoutError(s.to_string())),
        }
    }
}

/// The DeepStream GstMeta API type, if DeepStream (or a stand-in) has registered it in this
/// process. Only a found type is cached: DeepStream registers it lazily, when its first meta is
/// made, which may be after our first buffer.
pub fn meta_api() -> Option<glib::Type> {
    static API: OnceLock<glib::Type> = OnceLock::new();
    if let Some(t) = API.get() {
        return Some(*t);
    }
    let t = glib::Type::from_name(layout::META_API_NAME)?;
    Some(*API.get_or_init(|| t))
}

/// Reads `T` at `base + offset` without any alignment requirement.
///
/// # Safety
/// `base + offset .. base + offset + size_of::<T>()` must be readable memory and any bit pattern
/// must be a valid `T` (true for the integers, floats and raw pointers read here).
pub(crate) unsafe fn field<T: Copy>(base: *const u8, offset: usize) -> T {
    // SAFETY: guaranteed by the caller.
    unsafe { base.add(offset).cast::<T>().read_unaligned() }
}

/// The `meta_data` pointer of a DeepStream batch meta, or `None` when `meta` is another meta,
/// another DeepStream meta type, too small to be an `NvDsMeta`, or has no data (counted in
/// `skipped`).
pub fn batch_meta_data(
    meta: &gst::MetaRef<'_, gst::Meta>,
    api: glib::Type,
    skipped: &mut u64,
) -> Option<*const u8> {
    if meta.api() != api {
        return None;
    }
    let raw = meta.as_ptr();
    // SAFETY: `raw` is a live GstMeta of the buffer we borrow; GStreamer sets its `info` (a
    // static registration) when the meta is added.
    let size = unsafe { (*(*raw).info).size };
    if size < layout::meta::MIN_SIZE {
        *skipped += 1;
        return None;
    }
    let base = raw.cast::<u8>();
    // SAFETY: the meta was allocated with its registered size, which covers `MIN_SIZE` bytes.
    let meta_type: i32 = unsafe { field(base, layout::meta::META_TYPE) };
    if meta_type != layout::BATCH_META_TYPE {
        return None;
    }
    // SAFETY: as above.
    let data: *const u8 = unsafe { field(base, layout::meta::META_DATA) };
    if data.is_null() {
        *skipped += 1;
        return None;
    }
    Some(data)
}

/// The batch metas on `buffer` that the library whose `nvds_batch_meta_copy_func` is
/// `copy_func` made (its copy function is in their `NvDsMeta`), in meta order. Only those may be
/// changed with that library's functions: a meta of another origin (a test stand-in, a
/// corrupt producer) is left alone.
pub fn batch_metas_made_by(buffer: &gst::BufferRef, copy_func: usize) -> Vec<*const u8> {
    let Some(api) = meta_api() else {
        return Vec::new();
    };
    let mut skipped = 0;
    buffer
        .iter_meta::<gst::Meta>()
        .filter(|m| {
            let raw = m.as_ptr();
            // SAFETY: a live GstMeta of the buffer we borrow, with its static registration.
            let size = unsafe { (*(*raw).info).size };
            // SAFETY: within the meta's registered size.
            size >= layout::meta::COPY_FUNC + 8
                && unsafe { field::<usize>(raw.cast(), layout::meta::COPY_FUNC) } == copy_func
        })
        .filter_map(|m| batch_meta_data(&m, api, &mut skipped))
        .collect()
}

/// The batch metas (`NvDsBatchMeta *`) on `buffer`, in meta order; unreadable DeepStream metas
/// are counted in `skipped`.
pub fn batch_metas(buffer: &gst::BufferRef, skipped: &mut u64) -> Vec<*const u8> {
    let Some(api) = meta_api() else {
        return Vec::new();
    };
    buffer
        .iter_meta::<gst::Meta>()
        .filter_map(|m| batch_meta_data(&m, api, skipped))
        .collect()
}
