// SPDX-License-Identifier: MIT OR Apache-2.0
//! The 4-byte-pixel path (RGBA and its orders) with AVX2 intrinsics, chosen at run time.
//!
//! The same arithmetic as the portable path, so the same tile to the byte: each tile pixel's
//! two rows are mixed first (weight in 1/256, rounded to nearest), then its two columns. What
//! differs is the data flow, learnt from libyuv's ARGB kernels: each tile pixel loads its near
//! and far neighbour as one 8-byte pair from each of the two rows (nothing is mixed that no tile
//! pixel reads, so the cost is per tile pixel, not per frame pixel of the span), one byte
//! shuffle lines the four bytes up as (upper, lower) pairs per channel, and one `vpmaddubsw`
//! mixes the rows in 8-bit lanes. The bytes are biased by −128 so they can be the signed
//! operand and the weights (256 − w, w) the unsigned one: every sum then fits 16 bits without
//! saturating, and adding 128 × 256 + 128 back gives the portable rounding exactly. The columns
//! are mixed with `vpmaddwd` in 16-bit lanes (weights up to 256, so a tile pixel on a pixel
//! centre stays exact), and the result's second byte is already the rounded channel, so one
//! byte shuffle per vector both shifts and drops the fourth byte.

use std::arch::x86_64::*;

use super::{ONE, Plane, Taps};

/// Tile columns handled per step: two per 256-bit vector, one in each 128-bit lane.
const GROUP: usize = 8;

/// The column taps in the kernel's layout, rebuilt per tile (reused, so no allocation once
/// grown).
#[derive(Default)]
pub(super) struct PairTaps {
    /// Per tile column (padded to a whole group), the byte offset in the span of the 8 bytes it
    /// reads: its near pixel and the pixel after it.
    at: Vec<u32>,
    /// Per group, four vectors of the columns' weights as 16-bit (256 − w, w) per channel:
    /// vector `k` holds column `k` of the group in its low lane and column `k + 4` in its high
    /// lane.
    weights: Vec<i16>,
}

impl PairTaps {
    /// Lays out `columns` for a span of `len` bytes (at least two pixels) starting at pixel
    /// `first`. A column whose near pixel is the span's last (then its weight is 0) reads the
    /// pair one pixel earlier with weights (0, 256): the same value, and no byte past the span.
    fn set(&mut self, columns: &Taps, first: u32, len: usize) {
        let width = columns.near.len();
        let groups = width.div_ceil(GROUP);
        self.at.clear();
        self.weights.clear();
        let column = |i: usize| -> (u32, i16) {
            let Some((&near, &w)) = columns.near.get(i).zip(columns.weight.get(i)) else {
                return (0, 0); // padding: read the span's first pair, never stored
            };
            let at = (near - first) as usize * 4;
            if at + 8 <= len {
                (at as u32, w as i16)
            } else {
                debug_assert_eq!(w, 0, "only a column on the span's last pixel reads past it");
                ((at - 4) as u32, ONE as i16)
            }
        };
        for g in 0..groups {
            for k in 0..GROUP {
                self.at.push(column(g * GROUP + k).0);
            }
            for k in 0..GROUP / 2 {
                for lane in [k, k + GROUP / 2] {
                    let w = column(g * GROUP + lane).1;
                    for _ in 0..4 {
                        self.weights.extend([ONE as i16 - w, w]);
                    }
                }
            }
        }
    }
}

/// Samples `plane` (4-byte pixels) into `dst`, a tile of packed 3-byte pixels made of the
/// source bytes `PICK` names, as `super::resample_plane::<4, 3, PICK>` does. Returns false,
/// having written nothing, when it cannot: no AVX2, or a span under two pixels wide (a pair
/// would not fit).
pub(super) fn resample<const PICK: u32>(
    plane: &Plane,
    columns: &Taps,
    rows: &Taps,
    taps: &mut PairTaps,
    dst: &mut [u8],
) -> bool {
    let (first, end) = columns.span();
    if end < first + 2 || !std::arch::is_x86_feature_detected!("avx2") {
        return false;
    }
    let (lo, hi) = (first as usize * 4, end as usize * 4);
    taps.set(columns, first, hi - lo);
    // The loads below rely on this; checked once per tile rather than per pixel.
    assert!(
        taps.at.iter().all(|&at| at as usize + 8 <= hi - lo),
        "a column pair reaches past the span"
    );
    // SAFETY: the CPU was just found to support AVX2.
    unsafe { tile_avx2::<PICK>(plane, rows, (lo, hi), taps, columns.near.len(), dst) };
    true
}

/// The byte shuffle that turns one tile pixel's 16 loaded bytes (the upper row's pair, then
/// the lower row's) into (upper, lower) byte pairs per channel, near pixel's then far's: the
/// operands of the row mix, whose 16-bit results are then (near, far) pairs per channel.
fn pairs_mask() -> [u8; 16] {
    let mut mask = [0u8; 16];
    for c in 0..4u8 {
        let at = usize::from(c) * 4;
        mask[at..at + 4].copy_from_slice(&[c, 8 + c, 4 + c, 12 + c]);
    }
    mask
}

/// For vector `k` of a group: the shuffle that takes the rounded channels `PICK` names (the
/// second byte of each 32-bit mix) to bytes `3k..3k + 3` of each lane and zeroes the rest.
fn pick_mask<const PICK: u32>(k: usize) -> [u8; 16] {
    let mut mask = [0x80u8; 16];
    for j in 0..3 {
        let channel = (PICK >> (8 * j)) as u8;
        mask[3 * k + j] = channel * 4 + 1;
    }
    mask
}

fn both_lanes(mask: [u8; 16]) -> __m256i {
    let mut wide = [0u8; 32];
    wide[..16].copy_from_slice(&mask);
    wide[16..].copy_from_slice(&mask);
    // SAFETY: reads 32 bytes from a 32-byte array; loadu has no alignment requirement.
    unsafe { _mm256_loadu_si256(wide.as_ptr().cast()) }
}

/// The 8 bytes at `at` in `row`, as an integer (an unaligned load the compiler folds into a
/// broadcast).
///
/// # Safety
/// `at + 8` must be within `row`.
#[inline(always)]
unsafe fn pair(row: &[u8], at: u32) -> i64 {
    let at = at as usize;
    debug_assert!(at + 8 <= row.len());
    // SAFETY: the caller guarantees 8 readable bytes at `at`; the read is unaligned.
    unsafe { row.as_ptr().add(at).cast::<i64>().read_unaligned() }
}

/// The whole tile; see the module's doc.
///
/// # Safety
/// The CPU must support AVX2; `taps` must have been set for the span `lo..hi` of these
/// columns with every pair inside it (`at + 8 <= hi - lo`).
#[target_feature(enable = "avx2")]
unsafe fn tile_avx2<const PICK: u32>(
    plane: &Plane,
    rows: &Taps,
    (lo, hi): (usize, usize),
    taps: &PairTaps,
    width: usize,
    dst: &mut [u8],
) {
    let pairs = both_lanes(pairs_mask());
    let picks: [__m256i; 4] = std::array::from_fn(|k| both_lanes(pick_mask::<PICK>(k)));
    let bias = _mm256_set1_epi8(-128);
    let row_round = _mm256_set1_epi16(0x8080u16 as i16);
    let column_round = _mm256_set1_epi32(i32::from(ONE / 2));
    // Keeps the first three 32-bit words of each lane: 24 contiguous bytes.
    let compact = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 7, 7);
    let rows = rows.near.iter().zip(&rows.far).zip(&rows.weight);
    for (out, ((&top, &bottom), &weight)) in dst.chunks_exact_mut(width * 3).zip(rows) {
        let upper = &plane.row(top)[lo..hi];
        // A row weight of 0 needs 256 on the upper row, which a byte cannot hold: mix the upper
        // row with itself at (128, 128) instead, the same sum.
        let (lower, row_weights) = if weight == 0 {
            (upper, [128, 128])
        } else {
            let lower = &plane.row(bottom)[lo..hi];
            (lower, [(ONE - weight) as u8, weight as u8])
        };
        let row_weights = _mm256_set1_epi16(i16::from_le_bytes(row_weights));
        let groups = taps
            .at
            .chunks_exact(GROUP)
            .zip(taps.weights.chunks_exact(GROUP * 8));
        for (g, (at, weights)) in groups.enumerate() {
            let mut rgb = _mm256_setzero_si256();
            for (k, pick) in picks.iter().enumerate() {
                let (low, high) = (at[k], at[k + GROUP / 2]);
                // SAFETY: every `at` was checked against the span's length by `resample`, and
                // `upper`/`lower` are that span of a row.
                let [a, b, c, d] = unsafe {
                    [
                        pair(upper, low),
                        pair(lower, low),
                        pair(upper, high),
                        pair(lower, high),
                    ]
                };
                // Broadcast loads and blends, rather than inserts: no shuffle-port work.
                let low =
                    _mm256_blend_epi32::<0b0000_1100>(_mm256_set1_epi64x(a), _mm256_set1_epi64x(b));
                let high =
                    _mm256_blend_epi32::<0b1100_0000>(_mm256_set1_epi64x(c), _mm256_set1_epi64x(d));
                let bytes = _mm256_blend_epi32::<0b1111_0000>(low, high);
                let bytes = _mm256_xor_si256(_mm256_shuffle_epi8(bytes, pairs), bias);
                // (256 − w)(u − 128) + w(l − 128) = mix − 32768: within 16 bits; + 0x8080
                // (wrapping) is mix + 128, and its high byte the rounded row mix.
                let mixed = _mm256_maddubs_epi16(row_weights, bytes);
                let mixed = _mm256_srli_epi16(_mm256_add_epi16(mixed, row_round), 8);
                // SAFETY: `weights` is one group's 4 vectors of 16 i16s; vector `k` is in it.
                let w = unsafe { _mm256_loadu_si256(weights.as_ptr().add(k * 16).cast()) };
                let mixed = _mm256_add_epi32(_mm256_madd_epi16(mixed, w), column_round);
                rgb = _mm256_or_si256(rgb, _mm256_shuffle_epi8(mixed, *pick));
            }
            let rgb = _mm256_permutevar8x32_epi32(rgb, compact);
            let start = g * GROUP * 3;
            if let Some(whole) = out.get_mut(start..start + GROUP * 3) {
                // SAFETY: `whole` is 24 writable bytes: 16 then 8, unaligned stores.
                unsafe {
                    _mm_storeu_si128(whole.as_mut_ptr().cast(), _mm256_castsi256_si128(rgb));
                    let tail = _mm256_extracti128_si256(rgb, 1);
                    _mm_storel_epi64(whole.as_mut_ptr().add(16).cast(), tail);
                }
            } else {
                // The last, partial group of a row.
                let mut last = [0u8; 32];
                // SAFETY: 32 writable bytes.
                unsafe { _mm256_storeu_si256(last.as_mut_ptr().cast(), rgb) };
                let rest = &mut out[start..];
                let n = rest.len();
                rest.copy_from_slice(&last[..n]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{BGR, RGB, RowScratch, XBGR, XRGB, resample_plane, test_noise as noise};
    use super::*;

    /// The kernel and the portable path on the same plane and taps; `None` when the kernel
    /// declined.
    fn both<const PICK: u32>(
        plane: &Plane,
        columns: &Taps,
        rows: &Taps,
    ) -> Option<(Vec<u8>, Vec<u8>)> {
        let n = columns.near.len() * rows.near.len() * 3;
        let (mut simd, mut portable) = (vec![0x11u8; n], vec![0x22u8; n]);
        let mut taps = PairTaps::default();
        if !resample::<PICK>(plane, columns, rows, &mut taps, &mut simd) {
            return None;
        }
        resample_plane::<4, 3, PICK>(
            plane,
            columns,
            rows,
            &mut RowScratch::default(),
            &mut portable,
        );
        Some((simd, portable))
    }

    /// The AVX2 kernel gives the portable path's bytes exactly, for every byte order, on noise
    /// (neighbours as different as they get): odd frame sizes, windows inside, on every edge,
    /// fractional, one pixel and less, tiles narrower and wider than the window (up- and
    /// downscaling, partial groups of 8), tight rows and padded rows full of poison that
    /// must never show.
    #[test]
    fn kernel_matches_the_portable_path() {
        let avx2 = std::arch::is_x86_feature_detected!("avx2");
        let mut compared = 0;
        for (width, height) in [(2u32, 1u32), (2, 3), (3, 2), (9, 7), (37, 23), (64, 48)] {
            for pad in [0usize, 12] {
                let row = width as usize * 4;
                let stride = row + pad;
                let mut data = noise(stride * height as usize, width * 31 + height);
                for r in data.chunks_exact_mut(stride) {
                    r[row..].fill(0xff);
                }
                let plane = Plane {
                    data: &data,
                    stride,
                    width,
                    height,
                    bytes_per_pixel: 4,
                };
                let (w, h) = (f64::from(width), f64::from(height));
                let windows = [
                    (0.0, 0.0, w, h),
                    (1.0, 0.0, w - 1.0, h),
                    (0.0, h - 1.0, w, 1.0),
                    (w - 2.0, 0.0, 2.0, h),
                    (w - 1.0, h - 1.0, 1.0, 1.0),
                    (0.0, 0.0, 1.0, 1.0),
                    (0.5, 0.5, w / 2.0, h / 2.0),
                    (w - 1.5, h - 0.5, 1.5, 0.5),
                ];
                for (left, top, ww, wh) in windows {
                    for (ow, oh) in [(1u32, 1u32), (3, 2), (8, 1), (9, 5), (17, 4), (112, 3)] {
                        let (mut columns, mut rows) = (Taps::default(), Taps::default());
                        columns.set(left, ww, width, ow);
                        rows.set(top, wh, height, oh);
                        let what = format!(
                            "{width}x{height} pad {pad}: window {left},{top} {ww}x{wh} -> {ow}x{oh}"
                        );
                        let results = [
                            both::<RGB>(&plane, &columns, &rows),
                            both::<BGR>(&plane, &columns, &rows),
                            both::<XRGB>(&plane, &columns, &rows),
                            both::<XBGR>(&plane, &columns, &rows),
                        ];
                        let (first, end) = columns.span();
                        let runs = avx2 && end >= first + 2;
                        for (order, result) in results.into_iter().enumerate() {
                            assert_eq!(result.is_some(), runs, "{what}: kernel ran?");
                            if let Some((simd, portable)) = result {
                                assert_eq!(simd, portable, "{what}, byte order {order}");
                                compared += 1;
                            }
                        }
                    }
                }
            }
        }
        if avx2 {
            assert!(compared > 1000, "only {compared} tiles compared");
        }
    }

    /// A span of one pixel (a frame or window one pixel wide) has no pair to load: the kernel
    /// declines and the portable path samples it.
    #[test]
    fn one_pixel_span_is_left_to_the_portable_path() {
        let data = noise(4 * 5, 3);
        let plane = Plane {
            data: &data,
            stride: 4,
            width: 1,
            height: 5,
            bytes_per_pixel: 4,
        };
        let (mut columns, mut rows) = (Taps::default(), Taps::default());
        columns.set(0.0, 1.0, 1, 7);
        rows.set(0.0, 5.0, 5, 3);
        let mut out = vec![0u8; 7 * 3 * 3];
        assert!(!resample::<RGB>(
            &plane,
            &columns,
            &rows,
            &mut PairTaps::default(),
            &mut out
        ));
        assert!(out.iter().all(|&b| b == 0), "declined but wrote");
    }

    /// The pair layout: a column on the span's last pixel reads the pair before it with all the
    /// weight on its second pixel; padding columns fill the last group.
    #[test]
    fn last_pixel_reads_the_pair_before_it() {
        let mut columns = Taps::default();
        // Three tile columns over a 2-pixel axis, upscaled: the last lands on pixel 1 exactly.
        columns.set(0.0, 2.0, 2, 3);
        assert_eq!(columns.near, [0, 0, 1]);
        assert_eq!(columns.far, [1, 1, 1]);
        let mut taps = PairTaps::default();
        taps.set(&columns, 0, 8);
        assert_eq!(taps.at, [0, 0, 0, 0, 0, 0, 0, 0]);
        // Vector 2's low lane is column 2: (0, 256) on every channel.
        assert_eq!(
            &taps.weights[2 * 16..2 * 16 + 8],
            &[0, 256, 0, 256, 0, 256, 0, 256]
        );
        // Column 0 is clamped onto pixel 0, column 1 halfway between the two.
        assert_eq!(&taps.weights[..2], &[256, 0]);
        assert_eq!(&taps.weights[16..18], &[128, 128]);
        assert_eq!(taps.weights.len(), 4 * 16);
    }
}
