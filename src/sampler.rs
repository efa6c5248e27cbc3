// SPDX-License-Identifier: MIT OR Apache-2.0
//! Crop a region of a system-memory video frame and resize it into an RGB tile.
//! (Placeholder signature; the implementation is being written.)

use crate::geometry::PixelRect;

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("unsupported video format {0}")]
    UnsupportedFormat(String),
    #[error("{0}")]
    Resize(String),
}

/// Reusable scratch state for sampling; one per element, used on the streaming thread.
#[derive(Default)]
pub struct Sampler {}

impl Sampler {
    pub fn new() -> Self {
        Sampler {}
    }

    /// Crops `region` of `frame` and resizes it into `out`, a `out_width`×`out_height` tile of
    /// packed RGB bytes (`out.len() == out_width * out_height * 3`).
    pub fn sample(
        &mut self,
        _frame: &gst_video::VideoFrameRef<&gst::BufferRef>,
        _region: PixelRect,
        _out_width: u32,
        _out_height: u32,
        _out: &mut [u8],
    ) -> Result<(), SampleError> {
        Err(SampleError::Resize("not implemented".into()))
    }
}
