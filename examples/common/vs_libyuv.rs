// SPDX-License-Identifier: MIT OR Apache-2.0
//! The sampler against libyuv on the same crops of the same frames, in one run (issue 24,
//! item 1): time per call (median, the two interleaved call by call) and the pixel
//! difference between their tiles, which must stay within `MAX_DIFF`/`MEAN_DIFF`.
//!
//! Both sample bilinearly at the same positions: tile pixel `i` reads the crop at
//! `(i + 0.5) × crop / tile − 0.5` (pixel centres at half-integers; libyuv's `ScaleSlope`
//! for a bilinear downscale starts at half a step less half a pixel), mixing the two rows
//! around it and then the two columns. They differ only in fixed-point arithmetic: the
//! sampler rounds weights to 1/256 and each mix to nearest; libyuv truncates the row weight to
//! 1/256 and the column weight to 1/128 (`ScaleARGBFilterCols`, `ScaleFilterCols`: 7-bit
//! fractions). A weight off by at most 1/128 + 1/512 moves a mix of two bytes by at most
//! 0.01 × 255 ≈ 2.5 levels, the row weight 1.5 more, and the roundings 1 more: **RGBA: at most
//! 5 levels**. On average the truncations pull libyuv's tile down by about a level against
//! the sampler's rounding (1.5 measured on noise, the worst case): **mean at most 2**.
//!
//! For NV12 the same holds for Y, U and V (each within 5), then the YUV → RGB conversions
//! differ: B = 1.164 Y' + 2.112 U' (BT.709, limited range) turns 5 and 5 into 16.4, libyuv's
//! matrix has 6-bit coefficients (up to 1/128 of 2.1 × 128: about 2 levels) and both round or
//! truncate the result (1 each): **NV12: at most 20.4, set at 22** (R and G, with smaller
//! gains, stay far inside); **mean at most 2 × 2.1 ≈ 4** for the same reason as RGBA's. The
//! frames are noise, so neighbours differ by up to 255: any misplaced sample (a row or column
//! off by one, a half-pixel shift, swapped chroma) shows as tens of levels.

#[path = "libyuv.rs"]
mod libyuv;

use std::time::Instant;

use gst_video::prelude::*;
use gst_video::{VideoColorimetry, VideoFormat, VideoFrameRef, VideoInfo};
use gstiguard::geometry::PixelRect;
use gstiguard::sampler::Sampler;
use libyuv::{Crop, LibYuv, Scratch};

/// The bounds explained above: the largest difference of any channel of any tile pixel, and
/// the largest per-channel mean difference.
const MAX_DIFF_RGBA: u8 = 5;
const MAX_DIFF_NV12: u8 = 22;
const MEAN_DIFF_RGBA: f64 = 2.0;
const MEAN_DIFF_NV12: f64 = 4.0;

const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;
const PERSON: Crop = Crop {
    x: 720,
    y: 220,
    width: 480,
    height: 640,
};
const FULL: Crop = Crop {
    x: 0,
    y: 0,
    width: WIDTH,
    height: HEIGHT,
};

/// One case's results.
pub struct Row {
    pub case: String,
    pub sampler_ns: f64,
    pub libyuv_ns: f64,
    /// libyuv's cheaper NV12 route (chroma at half the tile's size), NV12 only.
    pub libyuv_420_ns: Option<f64>,
    pub pixels: u32,
    pub max_diff: [u8; 3],
    pub mean_diff: [f64; 3],
    pub bound: u8,
    pub mean_bound: f64,
}

impl Row {
    pub fn agrees(&self) -> bool {
        self.max_diff.iter().all(|&m| m <= self.bound)
            && self.mean_diff.iter().all(|&m| m <= self.mean_bound)
    }
}

/// The bound a case is held to, for the report.
pub fn bounds() -> String {
    format!(
        "per channel: max |difference| <= {MAX_DIFF_RGBA}, mean <= {MEAN_DIFF_RGBA} (RGBA); \
         max <= {MAX_DIFF_NV12}, mean <= {MEAN_DIFF_NV12} (NV12)"
    )
}

/// Opens libyuv, or says how to get it (and why it did not open).
pub fn open() -> Result<LibYuv, String> {
    LibYuv::open().map_err(|e| {
        format!(
            "libyuv: not found (apt-get install libyuv0) — comparison skipped (libyuv.so.0: {e})"
        )
    })
}

/// A `WIDTH`×`HEIGHT` frame of noise (xorshift32): neighbours differ as much as they can, the
/// worst case for agreement, and nothing for either side to skip. BT.709 limited range, so
/// both sides use one matrix.
fn frame(format: VideoFormat, seed: u32) -> Result<(gst::Buffer, VideoInfo), String> {
    let colorimetry: VideoColorimetry = "bt709".parse().map_err(|e| format!("{e:?}"))?;
    let info = VideoInfo::builder(format, WIDTH, HEIGHT)
        .colorimetry(&colorimetry)
        .build()
        .map_err(|e| e.to_string())?;
    let mut buf = gst::Buffer::with_size(info.size()).map_err(|e| e.to_string())?;
    {
        let b = buf.get_mut().ok_or("buffer not writable")?;
        let mut map = b.map_writable().map_err(|e| e.to_string())?;
        let mut x = seed.wrapping_mul(0x9E37_79B9) | 1;
        for byte in map.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *byte = (x >> 24) as u8;
        }
    }
    Ok((buf, info))
}

fn median(mut v: Vec<u64>) -> f64 {
    v.sort_unstable();
    v.get(v.len() / 2).map_or(f64::NAN, |&x| x as f64)
}

fn compare_tiles(a: &[u8], b: &[u8]) -> ([u8; 3], [f64; 3]) {
    let (mut max, mut sum) = ([0u8; 3], [0u64; 3]);
    for (pa, pb) in a.chunks_exact(3).zip(b.chunks_exact(3)) {
        for c in 0..3 {
            let d = pa[c].abs_diff(pb[c]);
            max[c] = max[c].max(d);
            sum[c] += u64::from(d);
        }
    }
    let n = (a.len() / 3).max(1) as f64;
    (max, sum.map(|s| s as f64 / n))
}

/// Every case: RGBA and NV12, the person box and the full frame, 112² and 224² tiles;
/// `iterations` timed calls of each side per case.
pub fn run(lib: &LibYuv, iterations: usize) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let mut sampler = Sampler::new();
    let mut scratch = Scratch::default();
    for (format, fname) in [(VideoFormat::Rgba, "rgba"), (VideoFormat::Nv12, "nv12")] {
        let (buf, info) = frame(format, 7)?;
        let vf = VideoFrameRef::from_buffer_ref_readable(buf.as_ref(), &info)
            .map_err(|e| e.to_string())?;
        let strides: Vec<usize> = vf.plane_stride().iter().map(|&s| s as usize).collect();
        let p0 = vf.plane_data(0).map_err(|e| e.to_string())?;
        let p1 = if format == VideoFormat::Nv12 {
            vf.plane_data(1).map_err(|e| e.to_string())?
        } else {
            &[][..]
        };
        for (crop, cname) in [(PERSON, "person"), (FULL, "full")] {
            for t in [112u32, 224] {
                let case = format!("{fname}_{cname}_{t}");
                let region = PixelRect {
                    x: crop.x,
                    y: crop.y,
                    width: crop.width,
                    height: crop.height,
                };
                let n = (t * t * 3) as usize;
                let (mut ours, mut theirs, mut theirs_420) =
                    (vec![0u8; n], vec![0u8; n], vec![0u8; n]);
                let mut call = |which: u8, out: &mut [u8]| -> Result<(), String> {
                    match (which, format) {
                        (0, _) => sampler
                            .sample(&vf, region, t, t, out)
                            .map_err(|e| e.to_string()),
                        (1, VideoFormat::Rgba) => {
                            lib.rgba_tile(p0, strides[0], crop, (t, t), &mut scratch, out)
                        }
                        (1, _) => lib.nv12_tile(
                            (p0, strides[0]),
                            (p1, strides[1]),
                            crop,
                            (t, t),
                            &mut scratch,
                            out,
                        ),
                        _ => lib.nv12_tile_420(
                            (p0, strides[0]),
                            (p1, strides[1]),
                            crop,
                            (t, t),
                            &mut scratch,
                            out,
                        ),
                    }
                };
                let sides: &[u8] = if format == VideoFormat::Nv12 {
                    &[0, 1, 2]
                } else {
                    &[0, 1]
                };
                let mut times: [Vec<u64>; 3] =
                    std::array::from_fn(|_| Vec::with_capacity(iterations));
                // A few untimed calls first: scratch grown, code and crop in cache.
                for i in 0..iterations + 8 {
                    for &side in sides {
                        let out = match side {
                            0 => &mut ours,
                            1 => &mut theirs,
                            _ => &mut theirs_420,
                        };
                        let start = Instant::now();
                        call(side, out)?;
                        let ns = start.elapsed().as_nanos() as u64;
                        if i >= 8 {
                            times[side as usize].push(ns);
                        }
                    }
                }
                let (max_diff, mean_diff) = compare_tiles(&ours, &theirs);
                let [s, l, l420] = [0, 1, 2].map(|i| median(std::mem::take(&mut times[i])));
                rows.push(Row {
                    case,
                    sampler_ns: s,
                    libyuv_ns: l,
                    libyuv_420_ns: (format == VideoFormat::Nv12).then_some(l420),
                    pixels: t * t,
                    max_diff,
                    mean_diff,
                    bound: if format == VideoFormat::Nv12 {
                        MAX_DIFF_NV12
                    } else {
                        MAX_DIFF_RGBA
                    },
                    mean_bound: if format == VideoFormat::Nv12 {
                        MEAN_DIFF_NV12
                    } else {
                        MEAN_DIFF_RGBA
                    },
                });
            }
        }
    }
    Ok(rows)
}
