// SPDX-License-Identifier: MIT OR Apache-2.0
//! Snapshots: what the model saw. A clip's tiles laid out as a contact sheet (row-major, in
//! sampling order) and encoded as one JPEG. Encoded by the worker that scored the clip, never
//! by a streaming thread: a JPEG of a 4×4 sheet of 224 px tiles costs milliseconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::clip::Clip;

/// The JPEG bytes of one verdict's snapshot: the verdict's own type, under the name its
/// encoder's callers know.
pub use crate::verdict::Jpeg as Snapshot;

/// How one element's snapshots are made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SnapshotConfig {
    /// Tiles per row of the sheet; the rows follow from the clip's tile count.
    pub columns: u32,
    /// JPEG quality, 1 to 100.
    pub quality: u8,
    /// A snapshot larger than this is not attached (and counted as skipped).
    pub max_bytes: usize,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            columns: 4,
            quality: 85,
            max_bytes: 2 * 1024 * 1024,
        }
    }
}

/// JPEG's own limit on each side.
const MAX_SIDE: u32 = u16::MAX as u32;

/// Counts of one element's snapshots.
#[derive(Debug, Default)]
pub struct SnapshotCounters {
    pub encoded: AtomicU64,
    /// Not attached: over `max_bytes`, a sheet JPEG cannot hold, or an encoder error.
    pub skipped: AtomicU64,
}

impl SnapshotCounters {
    pub fn encoded(&self) -> u64 {
        self.encoded.load(Ordering::Relaxed)
    }

    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
}

/// The sheet's size for `tiles` tiles of `width`×`height` in `columns` columns.
pub fn sheet_size(tiles: u32, width: u32, height: u32, columns: u32) -> (u32, u32) {
    let columns = columns.clamp(1, tiles.max(1));
    let rows = tiles.div_ceil(columns);
    (columns * width, rows * height)
}

/// Lays the clip's first `real_frames` tiles (the repeated fill of a clip cut short is no part
/// of what was seen) out as an RGB sheet; cells past the last tile stay black.
pub fn contact_sheet(clip: &Clip, columns: u32) -> (u32, u32, Vec<u8>) {
    let tiles = clip
        .real_frames
        .clamp(1, clip.frames.max(1))
        .min(clip.frames);
    let (w, h) = sheet_size(tiles, clip.width, clip.height, columns);
    let columns = columns.clamp(1, tiles.max(1));
    let mut sheet = vec![0u8; w as usize * h as usize * 3];
    let row_bytes = clip.width as usize * 3;
    for i in 0..tiles as usize {
        let tile = clip.tile(i);
        let x0 = (i % columns as usize) * row_bytes;
        let y0 = (i / columns as usize) * clip.height as usize;
        for y in 0..clip.height as usize {
            let dst = (y0 + y) * w as usize * 3 + x0;
            sheet[dst..dst + row_bytes].copy_from_slice(&tile[y * row_bytes..(y + 1) * row_bytes]);
        }
    }
    (w, h, sheet)
}

/// Encodes the clip's contact sheet, or says why not.
pub fn encode(clip: &Clip, config: &SnapshotConfig) -> Result<Vec<u8>, String> {
    if clip.frames == 0 || clip.width == 0 || clip.height == 0 {
        return Err("the clip has no tiles".into());
    }
    let (w, h, sheet) = contact_sheet(clip, config.columns);
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(format!(
            "a {w}x{h} sheet is larger than JPEG allows ({MAX_SIDE} per side)"
        ));
    }
    let mut out = Vec::with_capacity(sheet.len() / 8);
    let encoder = jpeg_encoder::Encoder::new(&mut out, config.quality.clamp(1, 100));
    encoder
        .encode(&sheet, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| format!("JPEG encoding of a {w}x{h} sheet failed: {e}"))?;
    if out.len() > config.max_bytes {
        return Err(format!(
            "snapshot of {} bytes is over snapshot-max-bytes={}",
            out.len(),
            config.max_bytes
        ));
    }
    Ok(out)
}

/// Names of the threads that encoded snapshots, for the tests that check none is a streaming
/// thread.
#[cfg(any(test, feature = "testing"))]
pub fn encoder_threads() -> Vec<String> {
    crate::sync::lock(&ENCODER_THREADS).clone()
}

#[cfg(any(test, feature = "testing"))]
static ENCODER_THREADS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Encodes and counts: `Ok` when the snapshot is attached.
pub fn make(
    clip: &Clip,
    config: &SnapshotConfig,
    counters: &SnapshotCounters,
) -> Result<Snapshot, String> {
    #[cfg(any(test, feature = "testing"))]
    crate::sync::lock(&ENCODER_THREADS).push(
        std::thread::current()
            .name()
            .unwrap_or("(unnamed)")
            .to_string(),
    );
    match encode(clip, config) {
        Ok(jpeg) => {
            counters.encoded.fetch_add(1, Ordering::Relaxed);
            Ok(Arc::new(jpeg))
        }
        Err(e) => {
            counters.skipped.fetch_add(1, Ordering::Relaxed);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detections::SourceFrame;
    use crate::geometry::PixelRect;

    fn clip(frames: u32, real: u32, w: u32, h: u32) -> Clip {
        let mut pixels = Vec::new();
        for i in 0..frames {
            // Each tile one flat colour, so its cell is recognisable in the sheet.
            for _ in 0..w * h {
                pixels.extend_from_slice(&[(i * 15) as u8, 255 - (i * 15) as u8, 128]);
            }
        }
        Clip {
            request_id: 1,
            source: SourceFrame::default(),
            width: w,
            height: h,
            frames,
            real_frames: real,
            pixels,
            frame_labels: crate::clip::FrameLabels::empty(frames as usize),
            region: PixelRect::full(w, h),
            trigger_label: String::new(),
            trigger_confidence: 0.0,
            start_pts: None,
            end_pts: None,
        }
    }

    #[test]
    fn sheet_places_tiles_row_major() {
        let c = clip(6, 6, 4, 2);
        let (w, h, sheet) = contact_sheet(&c, 4);
        assert_eq!((w, h), (16, 4));
        let px = |x: u32, y: u32| {
            let o = ((y * w + x) * 3) as usize;
            [sheet[o], sheet[o + 1], sheet[o + 2]]
        };
        assert_eq!(px(0, 0), [0, 255, 128]);
        assert_eq!(px(12, 1), [45, 210, 128]); // tile 3, top row, last column
        assert_eq!(px(4, 2), [75, 180, 128]); // tile 5, second row
        assert_eq!(px(8, 3), [0, 0, 0]); // no tile 6: black
    }

    #[test]
    fn sheet_leaves_out_repeated_fill() {
        let c = clip(8, 3, 2, 2);
        assert_eq!(contact_sheet(&c, 4).0, 6);
        assert_eq!(contact_sheet(&c, 4).1, 2);
    }

    #[test]
    fn encodes_a_jpeg_and_counts() {
        let counters = SnapshotCounters::default();
        let j = make(&clip(16, 16, 32, 32), &SnapshotConfig::default(), &counters).unwrap();
        assert_eq!(&j[..2], &[0xff, 0xd8]);
        assert_eq!(&j[j.len() - 2..], &[0xff, 0xd9]);
        assert_eq!((counters.encoded(), counters.skipped()), (1, 0));
    }

    #[test]
    fn over_the_bound_is_skipped_and_counted() {
        let counters = SnapshotCounters::default();
        let config = SnapshotConfig {
            max_bytes: 100,
            ..Default::default()
        };
        let e = make(&clip(16, 16, 32, 32), &config, &counters).unwrap_err();
        assert!(e.contains("snapshot-max-bytes=100"), "{e}");
        assert_eq!((counters.encoded(), counters.skipped()), (0, 1));
    }
}
