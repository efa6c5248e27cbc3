// SPDX-License-Identifier: MIT OR Apache-2.0
//! `iguardverify`: Stage-2 verification of first-stage detections.
//!
//! An in-place transform on system-memory video. For every buffer it reads the detections,
//! advances each source's clip (a trigger starts a clip of `temporal-size` copied, downscaled
//! RGB tiles), hands finished clips to an internal worker pool without waiting for it, and
//! attaches finished verdicts to the next buffer of the same source as `IGuardVerificationMeta`.
//! Every verdict is also posted at once as an `iguard-verification` element message.
//!
//! ```text
//! gst-launch-1.0 -m videotestsrc num-buffers=60 ! video/x-raw,width=320,height=240 \
//!     ! iguardreplay location=tests/data/demo-detections.txt ! iguardverify ! fakesink
//! ```

use std::sync::Arc;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use crate::scorer::Scorer;
use crate::scorer::factory::ModelKind;
use crate::scorer::{model_io, onnx};

mod collect;
mod courier;
mod delivery;
mod imp;
mod incidents;
mod properties;
mod settings;
mod stats;

glib::wrapper! {
    pub struct IGuardVerify(ObjectSubclass<imp::IGuardVerify>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Which part of the frame a clip covers (`crop` property).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstIGuardCrop")]
pub enum Crop {
    #[default]
    #[enum_value(
        name = "The object's box (clip-per=object) or the union of the triggering boxes, widened by roi-margin",
        nick = "roi"
    )]
    Roi = 0,
    #[enum_value(name = "The whole frame", nick = "full")]
    Full = 1,
}

/// What one clip is about (`clip-per` property).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstIGuardClipPer")]
pub enum ClipPer {
    #[default]
    #[enum_value(
        name = "One clip per tracked object, its crop following the object's box",
        nick = "object"
    )]
    Object = 0,
    #[enum_value(
        name = "One clip at a time per source, over the union of the triggering boxes",
        nick = "source"
    )]
    Source = 1,
}

/// Where object ids come from with clip-per=object (`tracking` property).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstIGuardTracking")]
pub enum Tracking {
    #[default]
    #[enum_value(
        name = "The detector's ids when detections carry them, the built-in association otherwise",
        nick = "auto"
    )]
    Auto = 0,
    #[enum_value(
        name = "Only the detector's ids (DeepStream object_id, ROI object_id); others start nothing",
        nick = "ids"
    )]
    Ids = 1,
    #[enum_value(
        name = "The built-in IoU association, ignoring the detector's ids",
        nick = "builtin"
    )]
    Builtin = 2,
}

/// Queue order and overflow policy (`priority` property).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstIGuardPriority")]
pub enum Priority {
    #[default]
    #[enum_value(
        name = "First in, first served; the oldest request is dropped when full",
        nick = "fifo"
    )]
    Fifo = 0,
    #[enum_value(
        name = "Highest trigger confidence served first; the lowest is dropped when full",
        nick = "confidence"
    )]
    Confidence = 1,
}

/// Which scorer verifies clips (`model-type` property).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstIGuardModelType")]
pub enum ModelType {
    #[default]
    #[enum_value(
        name = "ONNX model run with ONNX Runtime; I/O settings from the properties",
        nick = "onnx"
    )]
    Onnx = 0,
    #[enum_value(
        name = "ONNX export of NVIDIA TAO ActionRecognitionNet: TAO I/O names and normalisation",
        nick = "tao"
    )]
    Tao = 1,
    #[enum_value(name = "No model: the label-based fallback scorer", nick = "fallback")]
    Fallback = 2,
    #[enum_value(
        name = "A remote Triton Inference Server (KServe v2 gRPC) at server-url serving model-name",
        nick = "triton"
    )]
    Triton = 3,
}

/// Memory order of the model's input tensor (`tensor-layout` property).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstIGuardTensorLayout")]
pub enum TensorLayout {
    #[default]
    #[enum_value(name = "[N, C, T, H, W] (TAO, PyTorch video models)", nick = "ncdhw")]
    Ncdhw = 0,
    #[enum_value(name = "[N, T, C, H, W]", nick = "ndchw")]
    Ndchw = 1,
    #[enum_value(name = "[N, T, H, W, C] (TensorFlow)", nick = "ndhwc")]
    Ndhwc = 2,
}

/// Channel order the model expects (`color-order` property).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstIGuardColorOrder")]
pub enum ColorOrder {
    #[default]
    #[enum_value(name = "RGB", nick = "rgb")]
    Rgb = 0,
    #[enum_value(name = "BGR", nick = "bgr")]
    Bgr = 1,
}

/// What turns the model's outputs into probabilities (`output-activation` property).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstIGuardActivation")]
pub enum Activation {
    #[enum_value(name = "None: the outputs are probabilities", nick = "none")]
    None = 0,
    #[default]
    #[enum_value(name = "Softmax over the classes", nick = "softmax")]
    Softmax = 1,
    #[enum_value(name = "Sigmoid per class", nick = "sigmoid")]
    Sigmoid = 2,
}

/// Where ONNX Runtime runs the model (`execution-provider` property).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstIGuardExecutionProvider")]
pub enum ExecutionProvider {
    #[default]
    #[enum_value(name = "CPU", nick = "cpu")]
    Cpu = 0,
    #[enum_value(name = "CUDA (NVIDIA GPU)", nick = "cuda")]
    Cuda = 1,
    #[enum_value(
        name = "TensorRT (NVIDIA GPU, Jetson), with CUDA for the rest",
        nick = "tensorrt"
    )]
    TensorRt = 2,
}

/// Worker and queue sizes for a Jetson module (`preset` property).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstIGuardPreset")]
pub enum Preset {
    #[default]
    #[enum_value(name = "None: the properties as set", nick = "none")]
    None = 0,
    #[enum_value(
        name = "Jetson Orin Nano: 1 worker, queue 20, results 40",
        nick = "orin-nano"
    )]
    OrinNano = 1,
    #[enum_value(
        name = "Jetson Orin NX: 2 workers, queue 40, results 80",
        nick = "orin-nx"
    )]
    OrinNx = 2,
    #[enum_value(
        name = "Jetson AGX Orin: 3 workers, queue 60, results 120",
        nick = "orin-agx"
    )]
    OrinAgx = 3,
}

// Each property enum maps onto the core enum of the module that uses it, here and only here.

impl From<Crop> for crate::clip::CropMode {
    fn from(c: Crop) -> Self {
        match c {
            Crop::Roi => Self::Roi,
            Crop::Full => Self::Full,
        }
    }
}

impl From<ClipPer> for crate::clip::ClipPer {
    fn from(c: ClipPer) -> Self {
        match c {
            ClipPer::Object => Self::Object,
            ClipPer::Source => Self::Source,
        }
    }
}

impl From<Tracking> for crate::clip::Tracking {
    fn from(t: Tracking) -> Self {
        match t {
            Tracking::Auto => Self::Auto,
            Tracking::Ids => Self::Ids,
            Tracking::Builtin => Self::Builtin,
        }
    }
}

impl From<Priority> for crate::pool::Priority {
    fn from(p: Priority) -> Self {
        match p {
            Priority::Fifo => Self::Fifo,
            Priority::Confidence => Self::Confidence,
        }
    }
}

impl From<ModelType> for ModelKind {
    fn from(t: ModelType) -> Self {
        match t {
            ModelType::Onnx => Self::Onnx,
            ModelType::Tao => Self::Tao,
            ModelType::Fallback => Self::Fallback,
            ModelType::Triton => Self::Triton,
        }
    }
}

impl From<ModelKind> for ModelType {
    fn from(t: ModelKind) -> Self {
        match t {
            ModelKind::Onnx => Self::Onnx,
            ModelKind::Tao => Self::Tao,
            ModelKind::Fallback => Self::Fallback,
            ModelKind::Triton => Self::Triton,
        }
    }
}

impl From<TensorLayout> for model_io::Layout {
    fn from(l: TensorLayout) -> Self {
        match l {
            TensorLayout::Ncdhw => Self::Ncdhw,
            TensorLayout::Ndchw => Self::Ndchw,
            TensorLayout::Ndhwc => Self::Ndhwc,
        }
    }
}

impl From<ColorOrder> for model_io::ColorOrder {
    fn from(c: ColorOrder) -> Self {
        match c {
            ColorOrder::Rgb => Self::Rgb,
            ColorOrder::Bgr => Self::Bgr,
        }
    }
}

impl From<Activation> for model_io::Activation {
    fn from(a: Activation) -> Self {
        match a {
            Activation::None => Self::None,
            Activation::Softmax => Self::Softmax,
            Activation::Sigmoid => Self::Sigmoid,
        }
    }
}

impl From<ExecutionProvider> for onnx::Provider {
    fn from(p: ExecutionProvider) -> Self {
        match p {
            ExecutionProvider::Cpu => Self::Cpu,
            ExecutionProvider::Cuda => Self::Cuda,
            ExecutionProvider::TensorRt => Self::TensorRt,
        }
    }
}

impl From<Preset> for Option<crate::config::Preset> {
    fn from(p: Preset) -> Self {
        match p {
            Preset::None => None,
            Preset::OrinNano => Some(crate::config::Preset::OrinNano),
            Preset::OrinNx => Some(crate::config::Preset::OrinNx),
            Preset::OrinAgx => Some(crate::config::Preset::OrinAgx),
        }
    }
}

impl IGuardVerify {
    /// Makes the element score clips with `scorer` (from its next start on) instead of the one
    /// its properties choose. For applications embedding their own model, and for tests.
    pub fn set_scorer(&self, scorer: Option<Arc<dyn Scorer>>) {
        self.imp().set_scorer(scorer);
    }
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    ClipPer::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    Tracking::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    Crop::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    Priority::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    ModelType::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    TensorLayout::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    ColorOrder::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    Activation::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    ExecutionProvider::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    Preset::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(
        Some(plugin),
        "iguardverify",
        gst::Rank::NONE,
        IGuardVerify::static_type(),
    )
}
