// SPDX-License-Identifier: MIT OR Apache-2.0
//! Fuzzes the DeepStream reader (`detections::deepstream::DeepStreamReader`) over random
//! metadata memory, attached to a buffer through the test stand-in of DeepStream's GstMeta
//! (`tests/standin/`, which registers `NvDsMetaAPI`; it is not NVIDIA's code).
//!
//! The input is the memory: an arena of batch, frame and object blocks and `GList` nodes whose
//! every byte comes from the fuzzer. Only the words the reader follows as pointers are mapped
//! into the arena (or to null): the reader trusts pointers, so a pointer outside readable
//! memory is not a case it can survive (nor is it one DeepStream produces). The shapes that
//! matter are all reachable: lists that loop, share nodes or hold null data, frames shared by
//! several lists, any field value (NaN boxes, labels without a NUL or with invalid UTF-8),
//! several batch metas on one buffer, metas of another type, null `meta_data`, an undersized
//! meta.
//!
//! Checked beyond "no panic, no hang": the output equals an independent walk of the arena by
//! index (frames, detections, every field, labels per the configured layout), stays within
//! the per-buffer bounds, and the `skipped` count agrees.

#![no_main]

use std::sync::Once;

use gstiguard::detections::deepstream::{
    ClassLabels, DeepStreamLayout, DeepStreamReader, MAX_FRAMES_PER_BUFFER, MAX_OBJECTS_PER_BUFFER,
};
use gstiguard::detections::{DetectionReader, FrameDetections};
use libfuzzer_sys::fuzz_target;

#[allow(dead_code, clippy::all)]
#[path = "../../tests/standin/mod.rs"]
mod standin;

// Offsets, written out as DeepStream's headers give them (as the stand-in does), so the
// reference walk does not borrow the reader's own table.
const BATCH_FRAME_LIST: usize = 96;
const FRAME_PAD_INDEX: usize = 40;
const FRAME_BATCH_ID: usize = 44;
const FRAME_NUM: usize = 48;
const FRAME_PTS: usize = 56;
const FRAME_SOURCE_ID: usize = 72;
const FRAME_OBJ_LIST: usize = 104;
const OBJ_CLASS_ID: usize = 52;
const OBJ_OBJECT_ID: usize = 56;
const OBJ_CONFIDENCE: usize = 96;
const OBJ_RECT: usize = 104;
const OBJ_LABEL_V5_TO_V8: usize = 336;
const OBJ_LABEL_V9: usize = 344;
const OBJ_LABEL_LEN: usize = 128;

/// The arena's regions: (block size, count). Blocks are at least as large as every field the
/// reader reads in them.
const BATCHES: (usize, usize) = (112, 2);
const FRAME_NODES: (usize, usize) = (24, 16);
const OBJECT_NODES: (usize, usize) = (24, 48);
const FRAMES: (usize, usize) = (112, 8);
const OBJECTS: (usize, usize) = (OBJ_LABEL_V9 + OBJ_LABEL_LEN, 12);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Region {
    Batch,
    FrameNode,
    ObjectNode,
    Frame,
    Object,
}

impl Region {
    const ALL: [Region; 5] = [
        Region::Batch,
        Region::FrameNode,
        Region::ObjectNode,
        Region::Frame,
        Region::Object,
    ];

    fn shape(self) -> (usize, usize) {
        match self {
            Region::Batch => BATCHES,
            Region::FrameNode => FRAME_NODES,
            Region::ObjectNode => OBJECT_NODES,
            Region::Frame => FRAMES,
            Region::Object => OBJECTS,
        }
    }

    fn start(self) -> usize {
        Region::ALL
            .iter()
            .take_while(|r| **r != self)
            .map(|r| r.shape().0 * r.shape().1)
            .sum()
    }
}

const ARENA: usize = OBJECTS.0 * OBJECTS.1
    + FRAMES.0 * FRAMES.1
    + OBJECT_NODES.0 * OBJECT_NODES.1
    + FRAME_NODES.0 * FRAME_NODES.1
    + BATCHES.0 * BATCHES.1;

/// The fuzzed memory: 8-byte aligned (the reader dereferences `GList` nodes), with the
/// pointer words rewritten to point at blocks of the right region.
struct Arena {
    words: Vec<u64>,
}

impl Arena {
    fn base(&self) -> *const u8 {
        self.words.as_ptr().cast()
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the words' own memory, viewed as bytes.
        unsafe { std::slice::from_raw_parts(self.base(), ARENA) }
    }

    fn at(&self, region: Region, index: usize) -> usize {
        region.start() + index * region.shape().0
    }

    fn read<const N: usize>(&self, offset: usize) -> [u8; N] {
        self.bytes()[offset..offset + N].try_into().unwrap()
    }

    fn u32(&self, offset: usize) -> u32 {
        u32::from_ne_bytes(self.read(offset))
    }

    fn u64(&self, offset: usize) -> u64 {
        u64::from_ne_bytes(self.read(offset))
    }

    /// The block index a pointer word at `offset` was mapped to (`None`: null).
    fn target(&self, offset: usize, region: Region) -> Option<usize> {
        let p = self.u64(offset) as usize;
        if p == 0 {
            return None;
        }
        let rel = p - self.base() as usize - region.start();
        Some(rel / region.shape().0)
    }

    /// Rewrites the word at `offset` into a pointer to a block of `region` (or null), chosen by
    /// the fuzzed value that was there.
    fn point(&mut self, offset: usize, region: Region) {
        let v = self.u64(offset);
        // A quarter of the values (and all zero bytes) end the chain.
        let p = if v & 0xff < 0x40 {
            0
        } else {
            let index = (v >> 8) as usize % region.shape().1;
            self.base() as usize + self.at(region, index)
        };
        self.words[offset / 8] = p as u64;
    }

    fn new(data: &[u8]) -> Self {
        let mut words = vec![0u64; ARENA.div_ceil(8)];
        // SAFETY: the vector's own memory, as bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 8)
        };
        let n = data.len().min(ARENA);
        bytes[..n].copy_from_slice(&data[..n]);
        let mut a = Arena { words };
        for i in 0..BATCHES.1 {
            a.point(a.at(Region::Batch, i) + BATCH_FRAME_LIST, Region::FrameNode);
        }
        for i in 0..FRAME_NODES.1 {
            let n = a.at(Region::FrameNode, i);
            a.point(n, Region::Frame);
            a.point(n + 8, Region::FrameNode);
        }
        for i in 0..OBJECT_NODES.1 {
            let n = a.at(Region::ObjectNode, i);
            a.point(n, Region::Object);
            a.point(n + 8, Region::ObjectNode);
        }
        for i in 0..FRAMES.1 {
            a.point(a.at(Region::Frame, i) + FRAME_OBJ_LIST, Region::ObjectNode);
        }
        a
    }
}

/// What the reader should give, found by walking the arena by index with the reader's bounds.
struct Expected {
    frames: Vec<(usize, Vec<usize>)>,
    skipped: u64,
}

fn walk(
    arena: &Arena,
    mut node: Option<usize>,
    nodes: Region,
    items: Region,
    budget: &mut usize,
    skipped: &mut u64,
) -> Vec<usize> {
    let mut out = Vec::new();
    while let Some(n) = node {
        if *budget == 0 {
            *skipped += 1;
            break;
        }
        *budget -= 1;
        let at = arena.at(nodes, n);
        match arena.target(at, items) {
            Some(i) => out.push(i),
            None => *skipped += 1,
        }
        node = arena.target(at + 8, nodes);
    }
    out
}

/// One meta the input attaches: a batch meta on batch block `batch`, or a mangled one.
#[derive(Clone, Copy)]
enum Meta {
    Batch(usize),
    OtherType(usize),
    NullData,
    Undersized,
}

fn expected(arena: &Arena, metas: &[Meta]) -> Expected {
    let mut frames_budget = MAX_FRAMES_PER_BUFFER;
    let mut objects_budget = MAX_OBJECTS_PER_BUFFER;
    let mut skipped = 0;
    // The reader first picks the buffer's batch metas (counting unreadable ones), then reads
    // each batch: its whole frame list, then each frame's objects.
    let mut batches = Vec::new();
    for m in metas {
        match *m {
            Meta::Batch(b) => batches.push(b),
            Meta::NullData | Meta::Undersized => skipped += 1,
            Meta::OtherType(_) => {}
        }
    }
    let mut frames = Vec::new();
    for b in batches {
        let head = arena.target(
            arena.at(Region::Batch, b) + BATCH_FRAME_LIST,
            Region::FrameNode,
        );
        let list = walk(
            arena,
            head,
            Region::FrameNode,
            Region::Frame,
            &mut frames_budget,
            &mut skipped,
        );
        for f in list {
            let head = arena.target(
                arena.at(Region::Frame, f) + FRAME_OBJ_LIST,
                Region::ObjectNode,
            );
            let objects = walk(
                arena,
                head,
                Region::ObjectNode,
                Region::Object,
                &mut objects_budget,
                &mut skipped,
            );
            frames.push((f, objects));
        }
    }
    Expected { frames, skipped }
}

fn same_f32(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn check(arena: &Arena, layout: DeepStreamLayout, want: &Expected, got: &[FrameDetections]) {
    assert!(got.len() <= MAX_FRAMES_PER_BUFFER);
    let total: usize = got.iter().map(|f| f.detections.len()).sum();
    assert!(total <= MAX_OBJECTS_PER_BUFFER);
    assert_eq!(got.len(), want.frames.len(), "frames read");
    for ((f, objects), fd) in want.frames.iter().zip(got) {
        let at = arena.at(Region::Frame, *f);
        let s = &fd.source;
        assert_eq!(s.source_id, arena.u32(at + FRAME_SOURCE_ID));
        assert_eq!(s.pad_index, arena.u32(at + FRAME_PAD_INDEX));
        assert_eq!(s.batch_index, arena.u32(at + FRAME_BATCH_ID));
        let num = i32::from_ne_bytes(arena.read(at + FRAME_NUM));
        assert_eq!(s.frame_num, u64::try_from(num).ok());
        let pts = arena.u64(at + FRAME_PTS);
        assert_eq!(s.pts, (pts != u64::MAX).then_some(pts));
        assert_eq!(fd.detections.len(), objects.len(), "objects of frame {f}");
        for (o, d) in objects.iter().zip(&fd.detections) {
            let at = arena.at(Region::Object, *o);
            let class_id = i32::from_ne_bytes(arena.read(at + OBJ_CLASS_ID));
            assert_eq!(d.class_id, class_id);
            let id = arena.u64(at + OBJ_OBJECT_ID);
            assert_eq!(d.object_id, (id != u64::MAX).then_some(id));
            let f32_at = |off: usize| f32::from_ne_bytes(arena.read(at + off));
            assert!(same_f32(d.confidence as f32, f32_at(OBJ_CONFIDENCE)));
            let r = [d.rect.x, d.rect.y, d.rect.width, d.rect.height];
            for (i, v) in r.into_iter().enumerate() {
                assert!(same_f32(v, f32_at(OBJ_RECT + 4 * i)), "rect {i}");
            }
            let label_at = match layout {
                DeepStreamLayout::V5toV8 => Some(OBJ_LABEL_V5_TO_V8),
                DeepStreamLayout::V9 => Some(OBJ_LABEL_V9),
                DeepStreamLayout::Unknown => None,
            };
            let text = label_at.and_then(|l| {
                let bytes = &arena.bytes()[at + l..at + l + OBJ_LABEL_LEN];
                let end = bytes.iter().position(|b| *b == 0)?;
                std::str::from_utf8(&bytes[..end])
                    .ok()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            });
            assert_eq!(d.label, text.unwrap_or_else(|| format!("class-{class_id}")));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        standin::register();
    });
    // The first bytes choose the layout and the metas; the rest is the memory.
    let Some((&[layout, count, kinds], memory)) = data.split_first_chunk::<3>() else {
        return;
    };
    let layout = [
        DeepStreamLayout::V5toV8,
        DeepStreamLayout::V9,
        DeepStreamLayout::Unknown,
    ][layout as usize % 3];
    let metas: Vec<Meta> = (0..1 + count as usize % 3)
        .map(|i| {
            let k = (kinds >> (2 * i)) & 3;
            let b = i % BATCHES.1;
            match (k, count >> 4) {
                (0 | 1, _) => Meta::Batch(b),
                (2, c) if c & 1 == 0 => Meta::OtherType(b),
                (2, _) => Meta::NullData,
                _ => Meta::Undersized,
            }
        })
        .collect();
    let arena = Arena::new(memory);

    let mut buffer = gst::Buffer::new();
    {
        let b = buffer.get_mut().unwrap();
        for m in &metas {
            let batch = |i| {
                arena
                    .base()
                    .wrapping_add(arena.at(Region::Batch, i))
                    .cast_mut()
            };
            match *m {
                Meta::Batch(i) => standin::attach_raw(b, batch(i), standin::BATCH_META_TYPE),
                Meta::OtherType(i) => standin::attach_raw(b, batch(i), 4096 + 7),
                Meta::NullData => {
                    standin::attach_raw(b, std::ptr::null_mut(), standin::BATCH_META_TYPE)
                }
                Meta::Undersized => standin::attach_undersized(b),
            }
        }
    }

    let mut reader = DeepStreamReader::new(layout, ClassLabels::default());
    let mut got = Vec::new();
    reader.read(&buffer, &mut got);
    let want = expected(&arena, &metas);
    check(&arena, layout, &want, &got);
    assert_eq!(reader.skipped(), want.skipped, "skipped");
    // The arena outlives the buffer that points into it.
    drop(buffer);
});
