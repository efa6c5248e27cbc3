// SPDX-License-Identifier: MIT OR Apache-2.0
//! The 1- and 2-byte-pixel paths (a luma or U/V plane; NV12's interleaved UV) with AVX2
//! intrinsics, chosen at run time: the pair-load data flow of the 4-byte kernel (`super::x86`)
//! for narrow pixels.
//!
//! The same arithmetic as the portable path, so the same tile to the byte. Each tile pixel's
//! near and far neighbour are adjacent in a row: 2 bytes (1-byte pixels) or 4 (U, V, U, V),
//! so eight tile pixels load theirs with one 32-bit `vpgatherdd` from each of the two rows
//! (the cost is per tile pixel, not per frame pixel of the span). One byte shuffle orders each
//! 32-bit word as (near, far) per channel, one byte interleave makes (upper, lower) pairs and
//! one `vpmaddubsw` mixes the rows in 8-bit lanes, with the 4-byte kernel's bias (bytes − 128
//! signed, weights (256 − w, w) unsigned, + 128 × 256 + 128 back) so its rounding is the
//! portable path's exactly. `vpmaddwd` then mixes (near, far) with the column's (256 − w, w),
//! and two packs make bytes.
//!
//! A gather reads 4 bytes, so a column whose 4 bytes would pass the span's end (one of the
//! last pixels of a 1-byte span, the last of a 2-byte span) is mixed by the portable formula,
//! per byte; the columns run left to right, so these are the tile's last few.

use std::arch::x86_64::*;

use super::{ONE, Plane, Taps, mix};

/// Tile columns handled per step: one 32-bit gather of 8.
const GROUP: usize = 8;

/// The column taps in the kernel's layout, rebuilt per plane (reused, so no allocation once
/// grown).
#[derive(Default)]
pub(super) struct NarrowTaps {
    /// Per tile column the kernel mixes (padded to a whole group with 0: the span's first
    /// word, never stored), the byte offset in the span of the 4 bytes it reads.
    at: Vec<i32>,
    /// Per group, the columns' weights as 16-bit (256 − w, w) pairs in the order the kernel's
    /// 32-bit sums come out: 1-byte pixels, one pair per column, columns 0–7; 2-byte pixels,
    /// one pair per channel, columns 0, 1, 4, 5 then 2, 3, 6, 7 (two vectors).
    weights: Vec<i16>,
    /// How many tile columns (from the left) the kernel mixes; the rest are mixed per byte.
    simd: usize,
}

impl NarrowTaps {
    fn set<const S: usize>(&mut self, columns: &Taps, first: u32, len: usize) {
        self.at.clear();
        self.weights.clear();
        let fits = |near: u32| (near - first) as usize * S + 4 <= len;
        self.simd = columns.near.iter().take_while(|&&near| fits(near)).count();
        let groups = self.simd.div_ceil(GROUP);
        let column = |i: usize| -> (i32, i16) {
            match (columns.near.get(i), columns.weight.get(i)) {
                (Some(&near), Some(&w)) if i < self.simd => {
                    (((near - first) as usize * S) as i32, w as i16)
                }
                _ => (0, 0),
            }
        };
        let order: &[usize] = if S == 1 {
            &[0, 1, 2, 3, 4, 5, 6, 7]
        } else {
            &[0, 1, 4, 5, 2, 3, 6, 7]
        };
        for g in 0..groups {
            self.at.extend((0..GROUP).map(|k| column(g * GROUP + k).0));
            for &k in order {
                let w = column(g * GROUP + k).1;
                for _ in 0..S {
                    self.weights.extend([ONE as i16 - w, w]);
                }
            }
        }
    }
}

/// Samples `plane` (`S` = 1 or 2 bytes a pixel) into `dst`, a tile of the same pixels, as
/// `super::resample_plane::<S, S, SAME>` does. Returns false, having written nothing, when it
/// cannot: no AVX2.
pub(super) fn resample<const S: usize>(
    plane: &Plane,
    columns: &Taps,
    rows: &Taps,
    taps: &mut NarrowTaps,
    dst: &mut [u8],
) -> bool {
    const { assert!(S == 1 || S == 2) };
    if !std::arch::is_x86_feature_detected!("avx2") {
        return false;
    }
    let (first, end) = columns.span();
    let (lo, hi) = (first as usize * S, end as usize * S);
    taps.set::<S>(columns, first, hi - lo);
    // The gathers below rely on this; checked once per plane rather than per pixel.
    assert!(
        taps.at
            .iter()
            .all(|&at| at >= 0 && at as usize + 4 <= hi - lo),
        "a column's 4 bytes reach past the span"
    );
    // SAFETY: the CPU was just found to support AVX2, and every gather offset was just
    // checked to lie inside the span.
    unsafe { tile_avx2::<S>(plane, columns, rows, (lo, hi), taps, dst) };
    true
}

fn both_lanes(mask: [u8; 16]) -> __m256i {
    let mut wide = [0u8; 32];
    wide[..16].copy_from_slice(&mask);
    wide[16..].copy_from_slice(&mask);
    // SAFETY: reads 32 bytes from a 32-byte array; loadu has no alignment requirement.
    unsafe { _mm256_loadu_si256(wide.as_ptr().cast()) }
}

/// The byte shuffle applied to each gathered row: 1-byte pixels keep bytes 0 and 1 (near,
/// far) of each word, packed into the lane's low 8 bytes; 2-byte pixels reorder each word
/// (U, V, U′, V′) as (U, U′, V, V′).
fn order_mask<const S: usize>() -> [u8; 16] {
    let mut mask = [0x80u8; 16];
    for word in 0..4u8 {
        let at = usize::from(word) * 4;
        if S == 1 {
            mask[usize::from(word) * 2..][..2].copy_from_slice(&[word * 4, word * 4 + 1]);
        } else {
            mask[at..at + 4].copy_from_slice(&[at as u8, at as u8 + 2, at as u8 + 1, at as u8 + 3]);
        }
    }
    mask
}

/// Rows mixed in 8-bit lanes, rounded: 16-bit (near, far) per channel from (upper, lower)
/// byte pairs, with `weights` the (256 − w, w) byte pair in every 16-bit lane.
#[target_feature(enable = "avx2")]
#[inline]
fn mix_rows(bytes: __m256i, weights: __m256i) -> __m256i {
    let mixed = _mm256_maddubs_epi16(weights, _mm256_xor_si256(bytes, _mm256_set1_epi8(-128)));
    _mm256_srli_epi16(
        _mm256_add_epi16(mixed, _mm256_set1_epi16(0x8080u16 as i16)),
        8,
    )
}

/// Columns mixed in 16-bit lanes with the 16 (256 − w, w) pairs of `weights`, rounded: one
/// channel value per 32-bit lane.
#[target_feature(enable = "avx2")]
#[inline]
fn mix_columns(mixed: __m256i, weights: &[i16]) -> __m256i {
    let w = &weights[..16];
    // SAFETY: `w` is 16 i16s, 32 bytes; loadu has no alignment requirement.
    let w = unsafe { _mm256_loadu_si256(w.as_ptr().cast()) };
    let sum = _mm256_madd_epi16(mixed, w);
    _mm256_srli_epi32(
        _mm256_add_epi32(sum, _mm256_set1_epi32(i32::from(ONE / 2))),
        8,
    )
}

/// Eight tile pixels' 4 bytes from `row`, at the byte offsets `at`.
///
/// # Safety
/// AVX2; every offset in `at` must have 4 readable bytes after it in `row`.
#[inline(always)]
unsafe fn gather(row: &[u8], at: __m256i) -> __m256i {
    // SAFETY: the caller guarantees AVX2 and that each 4-byte read is inside `row`.
    unsafe { _mm256_i32gather_epi32::<1>(row.as_ptr().cast(), at) }
}

/// The whole tile; see the module's doc.
///
/// # Safety
/// The CPU must support AVX2; `taps` must have been set for the span `lo..hi` of these
/// columns with every offset's 4 bytes inside it.
#[target_feature(enable = "avx2")]
unsafe fn tile_avx2<const S: usize>(
    plane: &Plane,
    columns: &Taps,
    rows: &Taps,
    (lo, hi): (usize, usize),
    taps: &NarrowTaps,
    dst: &mut [u8],
) {
    let width = columns.near.len();
    let order = both_lanes(order_mask::<S>());
    // Each lane's first 4 (1-byte pixels) or 8 (2-byte) packed bytes, side by side.
    let compact = if S == 1 {
        _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)
    } else {
        _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7)
    };
    let rows = rows.near.iter().zip(&rows.far).zip(&rows.weight);
    for (out, ((&top, &bottom), &weight)) in dst.chunks_exact_mut(width * S).zip(rows) {
        let upper = &plane.row(top)[lo..hi];
        // A row weight of 0 needs 256 on the upper row, which a byte cannot hold: mix the upper
        // row with itself at (128, 128) instead, the same sum.
        let (lower, row_weights) = if weight == 0 {
            (upper, [128, 128])
        } else {
            (
                &plane.row(bottom)[lo..hi],
                [(ONE - weight) as u8, weight as u8],
            )
        };
        let row_weights = _mm256_set1_epi16(i16::from_le_bytes(row_weights));
        let groups = taps
            .at
            .chunks_exact(GROUP)
            .zip(taps.weights.chunks_exact(GROUP * 2 * S));
        for (g, (at, weights)) in groups.enumerate() {
            // SAFETY: `at` is one group's 8 offsets.
            let at = unsafe { _mm256_loadu_si256(at.as_ptr().cast()) };
            // SAFETY: AVX2 is on (this function's contract) and `resample` checked every
            // offset's 4 bytes against the span's length; `upper`/`lower` are that span.
            let (a, b) = unsafe { (gather(upper, at), gather(lower, at)) };
            let (a, b) = (_mm256_shuffle_epi8(a, order), _mm256_shuffle_epi8(b, order));
            let packed = if S == 1 {
                // Columns 0–3 | 4–7, one 32-bit sum each.
                let sums = mix_columns(mix_rows(_mm256_unpacklo_epi8(a, b), row_weights), weights);
                let words = _mm256_packs_epi32(sums, sums);
                _mm256_packus_epi16(words, words)
            } else {
                // Columns 0, 1 | 4, 5 and 2, 3 | 6, 7: U and V sums each.
                let low = mix_columns(
                    mix_rows(_mm256_unpacklo_epi8(a, b), row_weights),
                    &weights[..16],
                );
                let high = mix_columns(
                    mix_rows(_mm256_unpackhi_epi8(a, b), row_weights),
                    &weights[16..],
                );
                let words = _mm256_packs_epi32(low, high);
                _mm256_packus_epi16(words, words)
            };
            // Each lane's low 4 (1-byte) or 8 (2-byte) bytes: columns 0–3, then 4–7.
            let bytes = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(packed, compact));
            let start = g * GROUP * S;
            match out.get_mut(start..(start + GROUP * S).min(taps.simd * S)) {
                // SAFETY: `whole` is 16 writable bytes, an unaligned store.
                Some(whole) if S == 2 && whole.len() == 16 => unsafe {
                    _mm_storeu_si128(whole.as_mut_ptr().cast(), bytes)
                },
                // SAFETY: `whole` is 8 writable bytes, an unaligned store.
                Some(whole) if S == 1 && whole.len() == 8 => unsafe {
                    _mm_storel_epi64(whole.as_mut_ptr().cast(), bytes)
                },
                // The last, partial group of the kernel's columns.
                Some(part) => {
                    let mut last = [0u8; 16];
                    // SAFETY: 16 writable bytes, an unaligned store.
                    unsafe { _mm_storeu_si128(last.as_mut_ptr().cast(), bytes) };
                    let n = part.len();
                    part.copy_from_slice(&last[..n]);
                }
                None => unreachable!("a group past the tile row"),
            }
        }
        // The last columns, whose 4 bytes would pass the span's end: per byte, as the
        // portable path mixes them.
        let tail = columns.near.iter().zip(&columns.far).zip(&columns.weight);
        for (i, ((&near, &far), &w)) in tail.enumerate().skip(taps.simd) {
            let (n, f) = (near as usize * S - lo, far as usize * S - lo);
            for c in 0..S {
                let near = mix(upper[n + c], lower[n + c], weight);
                let far = mix(upper[f + c], lower[f + c], weight);
                out[i * S + c] = mix(near, far, w);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{RowScratch, SAME, resample_plane, test_noise as noise};
    use super::*;

    /// The kernel and the portable path on the same plane and taps; `None` when the kernel
    /// declined.
    fn both<const S: usize>(plane: &Plane, columns: &Taps, rows: &Taps) -> Option<[Vec<u8>; 2]> {
        let n = columns.near.len() * rows.near.len() * S;
        let (mut simd, mut portable) = (vec![0x11u8; n], vec![0x22u8; n]);
        if !resample::<S>(plane, columns, rows, &mut NarrowTaps::default(), &mut simd) {
            return None;
        }
        let scratch = &mut RowScratch::default();
        resample_plane::<S, S, SAME>(plane, columns, rows, scratch, &mut portable);
        Some([simd, portable])
    }

    /// The AVX2 kernel gives the portable path's bytes exactly for 1- and 2-byte pixels, on
    /// noise: odd frame sizes (1 to 64 pixels wide), windows inside, on every edge, fractional,
    /// one pixel and less, tiles narrower and wider than the window (partial groups of 8, the
    /// per-byte tail), tight rows and padded rows full of poison that must never show.
    #[test]
    fn kernel_matches_the_portable_path() {
        let avx2 = std::arch::is_x86_feature_detected!("avx2");
        let mut compared = 0;
        let sizes = [
            (1u32, 1u32),
            (1, 5),
            (2, 1),
            (3, 2),
            (4, 3),
            (5, 4),
            (9, 7),
            (37, 23),
        ];
        for (width, height) in sizes.into_iter().chain([(64, 48), (131, 9)]) {
            for pad in [0usize, 12] {
                for bytes in [1usize, 2] {
                    let row = width as usize * bytes;
                    let stride = row + pad;
                    let seed = width * 31 + height + bytes as u32;
                    let mut data = noise(stride * height as usize, seed);
                    for r in data.chunks_exact_mut(stride) {
                        r[row..].fill(0xff);
                    }
                    let plane = Plane {
                        data: &data,
                        stride,
                        width,
                        height,
                        bytes_per_pixel: bytes,
                    };
                    let (w, h) = (f64::from(width), f64::from(height));
                    let windows = [
                        (0.0, 0.0, w, h),
                        (1.0_f64.min(w - 1.0), 0.0, (w - 1.0).max(1.0), h),
                        (0.0, h - 1.0, w, 1.0),
                        ((w - 2.0).max(0.0), 0.0, w.min(2.0), h),
                        ((w - 4.0).max(0.0), 0.0, w.min(4.0), h),
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
                            let result = if bytes == 1 {
                                both::<1>(&plane, &columns, &rows)
                            } else {
                                both::<2>(&plane, &columns, &rows)
                            };
                            assert_eq!(result.is_some(), avx2, "kernel ran?");
                            if let Some([simd, portable]) = result {
                                assert_eq!(
                                    simd, portable,
                                    "{bytes}-byte {width}x{height} pad {pad}: window {left},{top} \
                                     {ww}x{wh} -> {ow}x{oh}"
                                );
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
}
