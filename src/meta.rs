// SPDX-License-Identifier: MIT OR Apache-2.0
//! `IGuardVerificationMeta`: a verdict attached to a buffer as a `GstCustomMeta`.
//!
//! The meta holds one `GstStructure` whose fields are [`fields`]; the same fields make up the
//! `iguard-verification` bus message. Readers need nothing of ours:
//! C: `gst_buffer_get_custom_meta (buf, "IGuardVerificationMeta")` then
//! `gst_custom_meta_get_structure ()`; Python: `buf.get_custom_meta("IGuardVerificationMeta")
//! .get_structure()`. The meta has no tags, so elements that copy metadata (converters, scalers)
//! carry it on.

use crate::geometry::PixelRect;
use crate::verdict::{Status, Verdict};

/// The registered name of the custom meta.
pub const META_NAME: &str = "IGuardVerificationMeta";
/// The name of the element message carrying a verdict.
pub const MESSAGE_NAME: &str = "iguard-verification";

/// Field names shared by the meta structure and the bus message.
pub mod fields {
    pub const REQUEST_ID: &str = "request-id";
    pub const SOURCE_ID: &str = "source-id";
    pub const PAD_INDEX: &str = "pad-index";
    pub const STATUS: &str = "status";
    pub const SCORE: &str = "score";
    pub const THRESHOLD: &str = "threshold";
    pub const POSITIVE: &str = "positive";
    pub const LABEL: &str = "label";
    pub const TRIGGER_LABEL: &str = "trigger-label";
    pub const TRIGGER_CONFIDENCE: &str = "trigger-confidence";
    pub const CLIP_START_PTS: &str = "clip-start-pts";
    pub const CLIP_END_PTS: &str = "clip-end-pts";
    pub const FRAMES: &str = "frames";
    pub const QUEUE_MS: &str = "queue-ms";
    pub const PROCESSING_MS: &str = "processing-ms";
    pub const SCORER: &str = "scorer";
    pub const REASON: &str = "reason";
    /// `guint64`: the tracked object's id, `G_MAXUINT64` when none.
    pub const OBJECT_ID: &str = "object-id";
    /// `guint` each: the crop on the last sampled frame, in frame pixels (0 when unknown).
    pub const CROP_X: &str = "crop-x";
    pub const CROP_Y: &str = "crop-y";
    pub const CROP_WIDTH: &str = "crop-width";
    pub const CROP_HEIGHT: &str = "crop-height";
    /// `GstBuffer`, only with `snapshot=true` and when one was made: the clip's tiles as a
    /// JPEG contact sheet (`image/jpeg`, row-major in sampling order).
    pub const SNAPSHOT: &str = "snapshot";
    /// `gchararray`: the zones the clip's object entered, in order of entry, comma-separated;
    /// empty when none (or no zones are set).
    pub const ZONES: &str = "zones";
}

/// Registers the meta once per process (plugin_init may run more than once in tests).
pub fn register() {
    if gst::meta::CustomMeta::is_registered(META_NAME) {
        return;
    }
    // Copy the verdict along when an element copies metadata to a new buffer; the verdict
    // describes the clip, not pixels, so it survives scaling and conversion.
    gst::meta::CustomMeta::register_with_transform(META_NAME, &[], |dest, meta, _src, _kind| {
        match gst::meta::CustomMeta::add(dest, META_NAME) {
            Ok(mut copy) => {
                let s = copy.mut_structure();
                for (name, value) in meta.structure().iter() {
                    s.set_value(name, value.clone());
                }
                true
            }
            Err(_) => false,
        }
    });
}

fn pts_value(pts: Option<u64>) -> u64 {
    pts.unwrap_or(u64::MAX)
}

/// Writes the verdict's fields into `s` (the meta's structure or a message's).
pub fn fill_structure(s: &mut gst::StructureRef, v: &Verdict) {
    use fields::*;
    s.set(REQUEST_ID, v.request_id);
    s.set(SOURCE_ID, v.source_id);
    s.set(PAD_INDEX, v.pad_index);
    s.set(STATUS, v.status.as_str());
    s.set(SCORE, v.score);
    s.set(THRESHOLD, v.threshold);
    s.set(POSITIVE, v.is_positive());
    s.set(LABEL, v.label.as_str());
    s.set(TRIGGER_LABEL, v.trigger_label.as_str());
    s.set(TRIGGER_CONFIDENCE, v.trigger_confidence);
    s.set(CLIP_START_PTS, pts_value(v.clip_start_pts));
    s.set(CLIP_END_PTS, pts_value(v.clip_end_pts));
    s.set(FRAMES, v.frames);
    s.set(QUEUE_MS, v.queue_ms);
    s.set(PROCESSING_MS, v.processing_ms);
    s.set(SCORER, v.scorer.as_str());
    s.set(REASON, v.reason.as_str());
    s.set(OBJECT_ID, v.object_id.unwrap_or(u64::MAX));
    let c = v.crop.unwrap_or(PixelRect {
        x: 0,
        y: 0,
        width: 0,
        height: 0,
    });
    s.set(CROP_X, c.x);
    s.set(CROP_Y, c.y);
    s.set(CROP_WIDTH, c.width);
    s.set(CROP_HEIGHT, c.height);
    s.set(ZONES, v.zones.join(","));
    if let Some(jpeg) = &v.snapshot {
        // Shares the bytes: a verdict goes out as a message, a meta and an event.
        s.set(SNAPSHOT, gst::Buffer::from_slice(SharedJpeg(jpeg.clone())));
    }
}

/// A snapshot's bytes as a buffer's memory, without a copy.
struct SharedJpeg(crate::snapshot::Snapshot);

impl AsRef<[u8]> for SharedJpeg {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

/// The snapshot in a structure's `snapshot` field, if any.
pub fn snapshot(s: &gst::StructureRef) -> Option<crate::snapshot::Snapshot> {
    let buf = s.get::<gst::Buffer>(fields::SNAPSHOT).ok()?;
    let map = buf.map_readable().ok()?;
    Some(std::sync::Arc::new(map.as_slice().to_vec()))
}

/// The verdict as a structure named `name`.
pub fn to_structure(name: &str, v: &Verdict) -> gst::Structure {
    let mut s = gst::Structure::new_empty(name);
    fill_structure(&mut s, v);
    s
}

/// Attaches the verdict to `buffer`.
pub fn add(buffer: &mut gst::BufferRef, v: &Verdict) -> Result<(), gst::glib::BoolError> {
    let mut meta = gst::meta::CustomMeta::add(buffer, META_NAME)?;
    fill_structure(meta.mut_structure(), v);
    Ok(())
}

/// Reads a verdict back from a meta's or a message's structure.
pub fn from_structure(s: &gst::StructureRef) -> Result<Verdict, String> {
    use fields::*;
    fn get<'a, T: gst::glib::value::FromValue<'a> + 'static>(
        s: &'a gst::StructureRef,
        f: &str,
    ) -> Result<T, String> {
        s.get::<T>(f).map_err(|e| format!("field {f}: {e}"))
    }
    let status_str: String = get(s, STATUS)?;
    let status = Status::ALL
        .into_iter()
        .find(|st| st.as_str() == status_str)
        .ok_or_else(|| format!("unknown status {status_str:?}"))?;
    // Absent in structures written before these fields existed: read as unknown.
    let object_id = s.get::<u64>(OBJECT_ID).ok().filter(|id| *id != u64::MAX);
    let crop = match (
        s.get::<u32>(CROP_X),
        s.get::<u32>(CROP_Y),
        s.get::<u32>(CROP_WIDTH),
        s.get::<u32>(CROP_HEIGHT),
    ) {
        (Ok(x), Ok(y), Ok(width), Ok(height)) if width > 0 && height > 0 => Some(PixelRect {
            x,
            y,
            width,
            height,
        }),
        _ => None,
    };
    let pts = |f: &str| -> Result<Option<u64>, String> {
        let v: u64 = get(s, f)?;
        Ok((v != u64::MAX).then_some(v))
    };
    Ok(Verdict {
        request_id: get(s, REQUEST_ID)?,
        source_id: get(s, SOURCE_ID)?,
        pad_index: get(s, PAD_INDEX)?,
        status,
        score: get(s, SCORE)?,
        threshold: get(s, THRESHOLD)?,
        label: get(s, LABEL)?,
        trigger_label: get(s, TRIGGER_LABEL)?,
        trigger_confidence: get(s, TRIGGER_CONFIDENCE)?,
        clip_start_pts: pts(CLIP_START_PTS)?,
        clip_end_pts: pts(CLIP_END_PTS)?,
        frames: get(s, FRAMES)?,
        queue_ms: get(s, QUEUE_MS)?,
        processing_ms: get(s, PROCESSING_MS)?,
        scorer: get(s, SCORER)?,
        reason: get(s, REASON)?,
        object_id,
        crop,
        snapshot: snapshot(s),
        // Absent in structures written before zones existed: none.
        zones: s
            .get::<&str>(ZONES)
            .map(|z| {
                z.split(',')
                    .filter(|n| !n.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// Every verdict attached to `buffer`, in the order they were attached.
pub fn read_all(buffer: &gst::BufferRef) -> Vec<Verdict> {
    buffer
        .iter_meta::<gst::Meta>()
        .filter_map(|m| {
            let custom = m.try_as_custom_meta()?;
            if !custom.has_name(META_NAME) {
                return None;
            }
            from_structure(custom.structure()).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn sample() -> Verdict {
        Verdict {
            request_id: 42,
            source_id: 3,
            pad_index: 1,
            status: Status::Verified,
            score: 0.91,
            threshold: 0.7,
            label: "weapon".into(),
            trigger_label: "person".into(),
            trigger_confidence: 0.88,
            clip_start_pts: Some(1_000),
            clip_end_pts: None,
            frames: 16,
            queue_ms: 1.5,
            processing_ms: 12.25,
            scorer: "fallback".into(),
            reason: String::new(),
            object_id: Some(5),
            crop: Some(PixelRect {
                x: 10,
                y: 20,
                width: 30,
                height: 40,
            }),
            snapshot: None,
            zones: vec!["lawn".into(), "door".into()],
        }
    }

    #[test]
    fn round_trips_through_a_buffer_and_survives_a_copy() {
        gst::init().unwrap();
        register();
        register(); // a second registration is harmless
        let mut buf = gst::Buffer::with_size(16).unwrap();
        add(buf.get_mut().unwrap(), &sample()).unwrap();
        assert_eq!(read_all(&buf), vec![sample()]);
        let s = gst::meta::CustomMeta::from_buffer(&buf, META_NAME).unwrap();
        assert!(s.structure().get::<bool>(fields::POSITIVE).unwrap());
        assert_eq!(
            s.structure().get::<&str>(fields::ZONES).unwrap(),
            "lawn,door"
        );

        let mut copy = gst::Buffer::new();
        buf.copy_into(copy.get_mut().unwrap(), gst::BufferCopyFlags::META, ..)
            .unwrap();
        assert_eq!(read_all(&copy), vec![sample()]);
    }

    #[test]
    fn unknown_status_is_an_error() {
        gst::init().unwrap();
        let mut s = to_structure(MESSAGE_NAME, &sample());
        s.set(fields::STATUS, "maybe");
        assert!(from_structure(&s).unwrap_err().contains("maybe"));
    }

    #[test]
    fn a_snapshot_travels_as_a_buffer_field() {
        gst::init().unwrap();
        register();
        let jpeg = std::sync::Arc::new(vec![0xff, 0xd8, 1, 2, 3, 0xff, 0xd9]);
        let v = Verdict {
            snapshot: Some(jpeg.clone()),
            ..sample()
        };
        let s = to_structure(MESSAGE_NAME, &v);
        let buf = s.get::<gst::Buffer>(fields::SNAPSHOT).unwrap();
        assert_eq!(buf.map_readable().unwrap().as_slice(), jpeg.as_slice());
        let mut b = gst::Buffer::with_size(16).unwrap();
        add(b.get_mut().unwrap(), &v).unwrap();
        assert_eq!(read_all(&b), vec![v]);
        assert!(!to_structure(MESSAGE_NAME, &sample()).has_field(fields::SNAPSHOT));
    }
}
