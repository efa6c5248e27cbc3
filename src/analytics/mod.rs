// SPDX-License-Identifier: MIT OR Apache-2.0
//! GStreamer's analytics metadata (`GstAnalyticsRelationMeta`, GStreamer 1.24 and later): the
//! one place in the crate that calls its library. [`scan`] reads a buffer's object-detection and
//! tracking mtds into plain records; [`attach_verdict`] writes a verdict back as a
//! classification mtd related to the object's detection mtd.
//!
//! The library is opened at run time ([`library`]), never linked: the same plugin binary runs
//! on 1.20 and 1.22, where there is no such library and no buffer can carry the meta. A buffer's
//! meta is found by its API type, looked up by name ([`META_API_NAME`]) and checked against the
//! library's own `GstMetaInfo`, so a meta of another origin is never handed to its functions.
//!
//! Relations are read with `gst_analytics_relation_meta_get_relation` between mtds that
//! `gst_analytics_relation_meta_iterate` returned, never with `get_direct_related`, which walks
//! the whole relation matrix and reads the data of whatever id a (possibly broken) producer
//! related, existing or not.

use std::ffi::c_int;
use std::sync::OnceLock;

use gst::glib;
use gst::glib::translate::{FromGlib, IntoGlib};

pub mod library;

pub use library::{Analytics, LoadError, library};
use library::{Mtd, REL_NONE, REL_RELATE_TO, RelationMeta};

use crate::verdict::Verdict;

/// The name GStreamer registers the relation meta's API type under.
pub const META_API_NAME: &str = "GstAnalyticsRelationMetaAPI";

/// Mtds read from one buffer at most: the relation matrix is quadratic, and a broken producer
/// must not stall the streaming thread. The rest are counted in [`Scan::unread`].
pub const MAX_MTDS_PER_BUFFER: usize = 1024;

/// The relation meta's API type, once something in this process registered it (the analytics
/// library does so when its first meta is made). Only a found type is cached.
pub fn meta_api() -> Option<glib::Type> {
    static API: OnceLock<glib::Type> = OnceLock::new();
    if let Some(t) = API.get() {
        return Some(*t);
    }
    let t = glib::Type::from_name(META_API_NAME)?;
    Some(*API.get_or_init(|| t))
}

/// One object-detection mtd, as its producer wrote it (nothing is validated here).
#[derive(Debug, Clone, PartialEq)]
pub struct OdRecord {
    /// The mtd's id in its relation meta.
    pub id: u32,
    /// The object type's quark as a string (empty for quark 0).
    pub label: String,
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
    /// The location's confidence level.
    pub confidence: f32,
}

/// One tracking mtd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackRecord {
    pub id: u32,
    pub tracking_id: u64,
    pub lost: bool,
}

/// What [`scan`] read from one buffer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scan {
    pub ods: Vec<OdRecord>,
    pub tracks: Vec<TrackRecord>,
    /// `(od id, tracking mtd id)`: each od's first related tracking mtd (a relation either
    /// way, of any type), at most one per od.
    pub links: Vec<(u32, u32)>,
    /// Mtds past [`MAX_MTDS_PER_BUFFER`], and od or tracking mtds whose data the library would
    /// not give.
    pub unread: u64,
    /// Mtds of other types (classification, segmentation, ...), left alone.
    pub other: u64,
}

impl Scan {
    pub fn clear(&mut self) {
        self.ods.clear();
        self.tracks.clear();
        self.links.clear();
        self.unread = 0;
        self.other = 0;
    }

    /// The tracking id of the od mtd `od`, when a tracking mtd is related to it.
    pub fn tracking_id(&self, od: u32) -> Option<u64> {
        let (_, t) = self.links.iter().find(|(o, _)| *o == od)?;
        self.tracks
            .iter()
            .find(|r| r.id == *t)
            .map(|r| r.tracking_id)
    }
}

/// The relation meta on `buffer` made by `lib`, if there is one.
fn relation_meta(lib: &Analytics, buffer: &gst::BufferRef) -> Option<*mut RelationMeta> {
    let api = meta_api()?;
    // SAFETY: reads the buffer's meta list, which we borrow; returns null or a live meta.
    let meta = unsafe { gst::ffi::gst_buffer_get_meta(buffer.as_mut_ptr(), api.into_glib()) };
    if meta.is_null() {
        return None;
    }
    // SAFETY: a static registration, returned by the library that owns the meta type.
    let info = unsafe { (lib.relation_meta_get_info)() };
    // SAFETY: `meta` is live; its `info` is set when it is added.
    (unsafe { (*meta).info } == info).then_some(meta.cast())
}

/// Reads the od and tracking mtds of `buffer`'s relation meta into `out` (emptied first).
/// Returns false when the buffer has no relation meta of this library.
pub fn scan(lib: &Analytics, buffer: &gst::BufferRef, out: &mut Scan) -> bool {
    out.clear();
    let Some(meta) = relation_meta(lib, buffer) else {
        return false;
    };
    // SAFETY: each call below passes the live relation meta of the buffer we borrow, handles
    // the library filled in, and out-pointers to locals; none of them writes to the meta.
    unsafe {
        let od_type = (lib.od_mtd_get_mtd_type)();
        let tracking_type = (lib.tracking_mtd_get_mtd_type)();
        let length = (lib.relation_get_length)(meta);
        out.unread = length.saturating_sub(MAX_MTDS_PER_BUFFER) as u64;
        let mut state: glib::ffi::gpointer = std::ptr::null_mut();
        let mut mtd = Mtd {
            id: 0,
            meta: std::ptr::null_mut(),
        };
        let mut seen = 0;
        while seen < MAX_MTDS_PER_BUFFER
            && (lib.relation_meta_iterate)(meta, &mut state, library::MTD_TYPE_ANY, &mut mtd)
                != glib::ffi::GFALSE
        {
            seen += 1;
            let t = (lib.mtd_get_mtd_type)(&mtd);
            if t == od_type {
                let (mut x, mut y, mut w, mut h): (c_int, c_int, c_int, c_int) = (0, 0, 0, 0);
                let mut confidence = 0.0f32;
                if (lib.od_mtd_get_location)(&mtd, &mut x, &mut y, &mut w, &mut h, &mut confidence)
                    == glib::ffi::GFALSE
                {
                    out.unread += 1;
                    continue;
                }
                let quark = (lib.od_mtd_get_obj_type)(&mtd);
                let label = if quark == 0 {
                    String::new()
                } else {
                    glib::Quark::from_glib(quark).as_str().to_string()
                };
                out.ods.push(OdRecord {
                    id: mtd.id,
                    label,
                    x,
                    y,
                    w,
                    h,
                    confidence,
                });
            } else if t == tracking_type {
                let (mut id, mut first, mut last, mut lost) = (0u64, 0, 0, 0);
                if (lib.tracking_mtd_get_info)(&mtd, &mut id, &mut first, &mut last, &mut lost)
                    == glib::ffi::GFALSE
                {
                    out.unread += 1;
                    continue;
                }
                out.tracks.push(TrackRecord {
                    id: mtd.id,
                    tracking_id: id,
                    lost: lost != glib::ffi::GFALSE,
                });
            } else {
                out.other += 1;
            }
        }
        for od in &out.ods {
            let related = out.tracks.iter().find(|t| {
                (lib.relation_meta_get_relation)(meta, od.id, t.id) != REL_NONE
                    || (lib.relation_meta_get_relation)(meta, t.id, od.id) != REL_NONE
            });
            if let Some(t) = related {
                out.links.push((od.id, t.id));
            }
        }
    }
    true
}

/// One object the element's own tracker followed: the od mtd with this label and box (pixels),
/// and the object id the tracker gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Followed<'a> {
    pub label: &'a str,
    pub rect: [i32; 4],
    pub object_id: u64,
}

/// Gives each od mtd of `buffer` that `objects` names (same label, same box) and that has no
/// tracking mtd a tracking mtd with the object's id (first seen: `pts`), related to it
/// (`RELATE_TO`, od -> tracking). A detector such as `ssdobjectdetector` writes od mtds with no
/// tracking; this way applications, and [`attach_verdict`], can tell which box a verdict's
/// object id names. Each od mtd is given at most one. Returns how many were added. `scratch` is
/// reused storage.
pub fn add_tracking_ids(
    lib: &Analytics,
    buffer: &mut gst::BufferRef,
    objects: &[Followed],
    pts: Option<gst::ClockTime>,
    scratch: &mut Scan,
) -> usize {
    if objects.is_empty() || !scan(lib, buffer, scratch) {
        return 0;
    }
    let Some(meta) = relation_meta(lib, buffer) else {
        return 0;
    };
    let mut taken: Vec<u32> = Vec::new();
    for o in objects {
        let od = scratch.ods.iter().find(|od| {
            od.label == o.label
                && [od.x, od.y, od.w, od.h] == o.rect
                && scratch.tracking_id(od.id).is_none()
                && !taken.contains(&od.id)
        });
        let Some(od) = od else { continue };
        let mut trk = Mtd {
            id: 0,
            meta: std::ptr::null_mut(),
        };
        // SAFETY: the buffer is ours to change (`&mut`), so is its relation meta; `trk` is a
        // local the library fills in, and both ids in the relation came from it for this meta.
        let ok = unsafe {
            (lib.relation_meta_add_tracking_mtd)(meta, o.object_id, pts.into_glib(), &mut trk)
                != glib::ffi::GFALSE
                && (lib.relation_meta_set_relation)(meta, REL_RELATE_TO, od.id, trk.id)
                    != glib::ffi::GFALSE
        };
        if ok {
            taken.push(od.id);
        }
    }
    taken.len()
}

/// The quark of a verdict's status in a classification mtd: `iguard-<status>`.
pub fn status_class(v: &Verdict) -> String {
    format!("iguard-{}", v.status.as_str())
}

/// The classes and levels of a verdict's classification mtd: its label with its score (scored
/// verdicts only), then [`status_class`] with the score too (0 when unscored).
pub fn verdict_classes(v: &Verdict) -> Vec<(String, f32)> {
    let level = if v.score.is_finite() {
        v.score.clamp(0.0, 1.0) as f32
    } else {
        0.0
    };
    let mut classes = Vec::with_capacity(2);
    if v.status.is_scored() && !v.label.is_empty() {
        classes.push((v.label.clone(), level));
    }
    classes.push((status_class(v), level));
    classes
}

/// Where a verdict went as a classification mtd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attached {
    /// The object-detection mtd it is related to.
    pub od: u32,
    /// The classification mtd added.
    pub cls: u32,
}

/// Why a verdict was not written as a classification mtd.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    #[error("the verdict names no object")]
    NoObject,
    #[error("the buffer has no analytics relation meta")]
    NoRelationMeta,
    #[error("no object-detection mtd on the buffer is tracked as object {0}")]
    ObjectNotOnBuffer(u64),
    #[error("the analytics library refused to add a classification mtd")]
    AddFailed,
    #[error("the analytics library refused to relate the classification mtd to od mtd {0}")]
    RelateFailed(u32),
}

/// Writes `v` as a classification mtd ([`verdict_classes`]) on `buffer`'s relation meta,
/// related both ways (`RELATE_TO`) to the od mtd whose tracking mtd has the verdict's object id.
/// `scratch` is reused storage.
pub fn attach_verdict(
    lib: &Analytics,
    buffer: &mut gst::BufferRef,
    v: &Verdict,
    scratch: &mut Scan,
) -> Result<Attached, AttachError> {
    let object = v.object_id.ok_or(AttachError::NoObject)?;
    if !scan(lib, buffer, scratch) {
        return Err(AttachError::NoRelationMeta);
    }
    let od = scratch
        .ods
        .iter()
        .find(|o| scratch.tracking_id(o.id) == Some(object))
        .map(|o| o.id)
        .ok_or(AttachError::ObjectNotOnBuffer(object))?;
    let meta = relation_meta(lib, buffer).ok_or(AttachError::NoRelationMeta)?;
    let classes = verdict_classes(v);
    let mut levels: Vec<f32> = classes.iter().map(|(_, l)| *l).collect();
    let mut quarks: Vec<glib::ffi::GQuark> = classes
        .iter()
        .map(|(c, _)| glib::Quark::from_str(c.as_str()).into_glib())
        .collect();
    let mut cls = Mtd {
        id: 0,
        meta: std::ptr::null_mut(),
    };
    // SAFETY: the buffer is ours to change (`&mut`), so is its relation meta; the arrays hold
    // `classes.len()` entries each and the library copies them.
    let added = unsafe {
        (lib.relation_meta_add_cls_mtd)(
            meta,
            classes.len(),
            levels.as_mut_ptr(),
            quarks.as_mut_ptr(),
            &mut cls,
        )
    };
    if added == glib::ffi::GFALSE {
        return Err(AttachError::AddFailed);
    }
    // SAFETY: both ids came from the library for this meta.
    let related = unsafe {
        (lib.relation_meta_set_relation)(meta, REL_RELATE_TO, od, cls.id) != glib::ffi::GFALSE
            && (lib.relation_meta_set_relation)(meta, REL_RELATE_TO, cls.id, od)
                != glib::ffi::GFALSE
    };
    if !related {
        return Err(AttachError::RelateFailed(od));
    }
    Ok(Attached { od, cls: cls.id })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Status;

    fn verdict(status: Status, score: f64, label: &str) -> Verdict {
        Verdict {
            request_id: 1,
            source_id: 0,
            pad_index: 0,
            status,
            score,
            threshold: 0.5,
            label: label.into(),
            trigger_label: "person".into(),
            trigger_confidence: 0.9,
            clip_start_pts: None,
            clip_end_pts: None,
            frames: 16,
            queue_ms: 0.0,
            processing_ms: 0.0,
            scorer: "fallback".into(),
            reason: String::new(),
            object_id: Some(3),
            crop: None,
            snapshot: None,
            zones: Vec::new(),
        }
    }

    #[test]
    fn a_scored_verdict_gives_its_label_and_its_status_with_the_score() {
        let c = verdict_classes(&verdict(Status::Verified, 0.8, "fighting"));
        assert_eq!(
            c,
            [
                ("fighting".to_string(), 0.8f32),
                ("iguard-verified".to_string(), 0.8f32)
            ]
        );
    }

    #[test]
    fn an_unscored_verdict_gives_its_status_alone_at_zero() {
        let c = verdict_classes(&verdict(Status::Timeout, f64::NAN, "fighting"));
        assert_eq!(c, [("iguard-timeout".to_string(), 0.0f32)]);
        // A score outside [0, 1] is clamped.
        let c = verdict_classes(&verdict(Status::Rejected, 7.0, "x"));
        assert_eq!(c[1], ("iguard-rejected".to_string(), 1.0f32));
    }

    #[test]
    fn a_scan_finds_each_ods_tracking_id() {
        let s = Scan {
            tracks: vec![
                TrackRecord {
                    id: 1,
                    tracking_id: 42,
                    lost: false,
                },
                TrackRecord {
                    id: 5,
                    tracking_id: 7,
                    lost: false,
                },
            ],
            links: vec![(0, 5), (2, 1)],
            ..Scan::default()
        };
        assert_eq!(s.tracking_id(0), Some(7));
        assert_eq!(s.tracking_id(2), Some(42));
        assert_eq!(s.tracking_id(1), None);
    }
}
