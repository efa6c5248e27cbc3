// SPDX-License-Identifier: MIT OR Apache-2.0
//! Where the pixels of one frame come from: a system-memory video frame (mapped and sampled on
//! the CPU by [`Sampler`]) or an NVMM `NvBufSurface` batch (each frame's surface cropped and
//! scaled by NVIDIA's transform into a surface we own, then read; see
//! [`crate::deepstream::surface`]). `collect()` asks [`Pixels::tile`] for a tile and does not
//! care which.

use gst_video::VideoInfo;

use crate::deepstream::surface::{self, TileReader};
use crate::geometry::PixelRect;
use crate::sampler::Sampler;

/// The kind of memory the negotiated caps carry.
pub const NVMM_FEATURE: &str = "memory:NVMM";

/// Whether `caps` are NVMM caps (`video/x-raw(memory:NVMM)`).
pub fn is_nvmm(caps: &gst::CapsRef) -> bool {
    caps.features(0).is_some_and(|f| f.contains(NVMM_FEATURE))
}

/// One element's way of reading frames, chosen in `set_caps`.
pub enum FrameSource {
    /// System memory: map the buffer as a video frame and sample it.
    System(Box<Sampler>),
    /// NVMM: crop and scale `surfaceList[batch_id]` with NVIDIA's transform.
    Nvmm(TileReader),
}

impl FrameSource {
    pub fn system() -> Self {
        FrameSource::System(Box::default())
    }

    /// The NVMM source, or why NVIDIA's surface libraries cannot be used (names the library,
    /// the places tried and what to install).
    pub fn nvmm() -> Result<Self, String> {
        let lib = surface::surface_lib().map_err(|e| e.to_string())?;
        Ok(FrameSource::Nvmm(TileReader::new(lib)))
    }

    pub fn is_nvmm(&self) -> bool {
        matches!(self, FrameSource::Nvmm(_))
    }

    /// Frame access for one buffer; the buffer is mapped on the first tile and unmapped when
    /// the returned value goes.
    pub fn pixels<'a>(&'a mut self, buf: &'a gst::BufferRef, info: &'a VideoInfo) -> Pixels<'a> {
        Pixels {
            source: self,
            buf,
            info,
            frame: None,
            map: None,
            error: None,
        }
    }
}

/// One buffer's pixels, mapped on demand.
pub struct Pixels<'a> {
    source: &'a mut FrameSource,
    buf: &'a gst::BufferRef,
    info: &'a VideoInfo,
    frame: Option<gst_video::VideoFrameRef<&'a gst::BufferRef>>,
    map: Option<gst::BufferMap<'a, gst::buffer::Readable>>,
    /// A failed map, kept so every tile of the buffer reports it without retrying.
    error: Option<String>,
}

impl Pixels<'_> {
    /// Fills `out` (`tw`×`th` RGB) from `region` of the frame at `batch_index` of the buffer
    /// (the frame meta's `batch_id`; ignored for system memory, which holds one image).
    pub fn tile(
        &mut self,
        batch_index: u32,
        region: PixelRect,
        tw: u32,
        th: u32,
        out: &mut [u8],
    ) -> Result<(), String> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        match self.source {
            FrameSource::System(sampler) => {
                if self.frame.is_none() {
                    match gst_video::VideoFrameRef::from_buffer_ref_readable(self.buf, self.info) {
                        Ok(f) => self.frame = Some(f),
                        Err(e) => {
                            let e = format!("cannot map the frame: {e}");
                            self.error = Some(e.clone());
                            return Err(e);
                        }
                    }
                }
                let frame = self.frame.as_ref().expect("mapped above");
                sampler
                    .sample(frame, region, tw, th, out)
                    .map_err(|e| e.to_string())
            }
            FrameSource::Nvmm(reader) => {
                if self.map.is_none() {
                    // Only NVIDIA's memory is an NvBufSurface: anything else under NVMM caps
                    // is refused before it is mapped or read.
                    if let Err(e) = surface::check_memory(self.buf) {
                        let e = e.to_string();
                        self.error = Some(e.clone());
                        return Err(e);
                    }
                    match self.buf.map_readable() {
                        Ok(m) => self.map = Some(m),
                        Err(e) => {
                            let e = format!("cannot map the NVMM buffer: {e}");
                            self.error = Some(e.clone());
                            return Err(e);
                        }
                    }
                }
                let map = self.map.as_ref().expect("mapped above");
                // SAFETY: the buffer's mapped memory, kept mapped while `map` lives, made by
                // one of NVIDIA's NVMM allocators (`check_memory` above): its NvBufSurface,
                // whose header `read_tile` checks before following `surfaceList`.
                unsafe { reader.read_tile(map.as_slice(), batch_index, region, tw, th, out) }
                    .map_err(|e| e.to_string())
            }
        }
    }
}
