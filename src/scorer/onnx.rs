// SPDX-License-Identifier: MIT OR Apache-2.0
//! The ONNX Runtime scorer: a real 3D-CNN action model run with `ort`.
//!
//! The runtime is loaded at run time (`load-dynamic`): from `ORT_DYLIB_PATH` when set, else the
//! system's `libonnxruntime.so`. The same build runs the PyPI wheel's CPU library here and
//! NVIDIA's build (CUDA, TensorRT) on a Jetson.
//!
//! Defaults follow NVIDIA TAO ActionRecognitionNet (3D, RGB): input `input_rgb`
//! `[N, 3, T, H, W]`, pixels scaled to [-1, 1] (mean 127.5, scale 1/127.5), output `fc_pred`
//! `[N, classes]` logits. The input's static dims (T, H, W, N) are read from the model.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, TryLockError};

use ort::session::builder::GraphOptimizationLevel;
use ort::session::{RunOptions, Session};
use ort::value::Tensor;

use super::{Cancel, Score, ScoreError, Scorer};
use crate::clip::Clip;

/// Memory order of the model's input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// `[N, C, T, H, W]` (TAO, PyTorch video models).
    #[default]
    Ncdhw,
    /// `[N, T, C, H, W]`.
    Ndchw,
    /// `[N, T, H, W, C]` (TensorFlow/Keras).
    Ndhwc,
}

impl Layout {
    /// Positions of (T, C, H, W) in the 5-D input shape.
    fn axes(self) -> (usize, usize, usize, usize) {
        match self {
            Layout::Ncdhw => (2, 1, 3, 4),
            Layout::Ndchw => (1, 2, 3, 4),
            Layout::Ndhwc => (1, 4, 2, 3),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorOrder {
    #[default]
    Rgb,
    Bgr,
}

/// What turns the model's output into probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// The outputs are probabilities already.
    None,
    #[default]
    Softmax,
    Sigmoid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Provider {
    #[default]
    Cpu,
    Cuda,
    TensorRt,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
            Provider::TensorRt => "tensorrt",
        }
    }
}

/// A class counted into the score, by name (needs labels) or index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassRef {
    Index(usize),
    Name(String),
}

impl ClassRef {
    /// Parses `"1,3"` or `"armed,fighting"` (mixed is fine). Empty = every class but the first.
    pub fn parse_list(s: &str) -> Vec<ClassRef> {
        s.split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| match c.parse::<usize>() {
                Ok(i) => ClassRef::Index(i),
                Err(_) => ClassRef::Name(c.to_string()),
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OnnxConfig {
    pub model_path: PathBuf,
    /// Input and output names; `None` = the TAO names when the model has them, else the
    /// model's first input and output.
    pub input_name: Option<String>,
    pub output_name: Option<String>,
    pub layout: Layout,
    /// Per channel in model order (R, G, B unless `color` is BGR).
    pub mean: [f32; 3],
    pub scale: [f32; 3],
    pub color: ColorOrder,
    pub activation: Activation,
    pub labels: Vec<String>,
    pub positive: Vec<ClassRef>,
    pub provider: Provider,
    pub trt_cache_dir: Option<PathBuf>,
    /// Intra-op threads per session.
    pub threads: usize,
    /// Sessions (one per worker: a session runs one call at a time).
    pub sessions: usize,
    pub max_batch: usize,
}

impl Default for OnnxConfig {
    fn default() -> Self {
        OnnxConfig {
            model_path: PathBuf::new(),
            input_name: None,
            output_name: None,
            layout: Layout::Ncdhw,
            mean: [127.5; 3],
            scale: [1.0 / 127.5; 3],
            color: ColorOrder::Rgb,
            activation: Activation::Softmax,
            labels: Vec::new(),
            positive: Vec::new(),
            provider: Provider::Cpu,
            trt_cache_dir: None,
            threads: 1,
            sessions: 1,
            max_batch: 1,
        }
    }
}

pub const TAO_INPUT: &str = "input_rgb";
pub const TAO_OUTPUT: &str = "fc_pred";

/// What the model says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub input_name: String,
    pub output_name: String,
    /// Static dims; `None` where the model leaves them free.
    pub batch: Option<usize>,
    pub frames: Option<u32>,
    pub height: Option<u32>,
    pub width: Option<u32>,
    pub classes: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "cannot load the ONNX Runtime library {path:?}: {reason}. Install it (e.g. the PyPI \
         onnxruntime wheel) and point ORT_DYLIB_PATH at libonnxruntime.so"
    )]
    Runtime { path: String, reason: String },
    #[error("model file {0:?} does not exist")]
    Missing(PathBuf),
    #[error(
        "{0:?} is a TensorRT engine, which is tied to one GPU and TensorRT version: give the ONNX \
         export instead and set execution-provider=tensorrt (its engine cache makes later starts \
         fast)"
    )]
    Engine(PathBuf),
    #[error("cannot load model {path:?}: {reason}")]
    Model { path: PathBuf, reason: String },
    #[error("model {path:?}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("labels file {path:?}: {reason}")]
    Labels { path: PathBuf, reason: String },
    #[error("positive-classes: {0}")]
    Positive(String),
}

static RUNTIME: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

/// The library path the runtime is (or would be) loaded from.
pub fn runtime_path() -> String {
    match std::env::var("ORT_DYLIB_PATH") {
        Ok(p) if !p.is_empty() => p,
        _ => "libonnxruntime.so".into(),
    }
}

/// Loads ONNX Runtime once per process. The outcome, success or failure, is kept: a library
/// cannot be unloaded and loaded again.
pub fn runtime() -> Result<&'static ort::environment::Environment, LoadError> {
    let path = runtime_path();
    RUNTIME
        .get_or_init(|| {
            ort::init_from(&path)
                .map_err(|e| e.to_string())?
                .with_name("iguard")
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|reason| LoadError::Runtime {
            path,
            reason: reason.clone(),
        })
}

/// Reads a labels file: one class name a line (blank lines kept as unnamed classes only when
/// followed by a name), or one line of `;`-separated names.
pub fn read_labels(path: &Path) -> Result<Vec<String>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError::Labels {
        path: path.into(),
        reason: e.to_string(),
    })?;
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let lines: Vec<&str> = match lines.iter().rposition(|l| !l.is_empty()) {
        Some(last) => lines[..=last].to_vec(),
        None => {
            return Err(LoadError::Labels {
                path: path.into(),
                reason: "it is empty".into(),
            });
        }
    };
    if lines.len() == 1 && lines[0].contains(';') {
        return Ok(lines[0].split(';').map(|l| l.trim().to_string()).collect());
    }
    Ok(lines.into_iter().map(String::from).collect())
}

/// Fills `out` (len = clips × 3 × T × H × W) with the normalised clips in `layout`.
pub fn preprocess(clips: &[&Clip], config: &OnnxConfig, out: &mut [f32]) {
    let Some(first) = clips.first() else { return };
    let (t, h, w) = (
        first.frames as usize,
        first.height as usize,
        first.width as usize,
    );
    let per_clip = 3 * t * h * w;
    // Source channel (in the RGB tile) for each model channel.
    let src = match config.color {
        ColorOrder::Rgb => [0, 1, 2],
        ColorOrder::Bgr => [2, 1, 0],
    };
    let lut: Vec<[f32; 256]> = (0..3)
        .map(|c| {
            let mut l = [0f32; 256];
            for (v, x) in l.iter_mut().enumerate() {
                *x = (v as f32 - config.mean[c]) * config.scale[c];
            }
            l
        })
        .collect();
    for (n, clip) in clips.iter().enumerate() {
        let dst = &mut out[n * per_clip..(n + 1) * per_clip];
        for f in 0..t {
            let tile = clip.tile(f);
            match config.layout {
                Layout::Ndhwc => {
                    let d = &mut dst[f * h * w * 3..(f + 1) * h * w * 3];
                    for (px, o) in tile.chunks_exact(3).zip(d.chunks_exact_mut(3)) {
                        for c in 0..3 {
                            o[c] = lut[c][px[src[c]] as usize];
                        }
                    }
                }
                Layout::Ncdhw | Layout::Ndchw => {
                    for c in 0..3 {
                        let start = match config.layout {
                            Layout::Ncdhw => (c * t + f) * h * w,
                            _ => (f * 3 + c) * h * w,
                        };
                        let d = &mut dst[start..start + h * w];
                        for (px, o) in tile.chunks_exact(3).zip(d.iter_mut()) {
                            *o = lut[c][px[src[c]] as usize];
                        }
                    }
                }
            }
        }
    }
}

/// Turns one clip's outputs into a score and the top class's name.
pub fn score_outputs(
    logits: &[f32],
    activation: Activation,
    positive: &[usize],
    labels: &[String],
) -> Score {
    let probs: Vec<f64> = match activation {
        Activation::None => logits.iter().map(|&v| v as f64).collect(),
        Activation::Sigmoid => logits
            .iter()
            .map(|&v| 1.0 / (1.0 + (-(v as f64)).exp()))
            .collect(),
        Activation::Softmax => {
            let max = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
            let exps: Vec<f64> = logits.iter().map(|&v| (v as f64 - max).exp()).collect();
            let sum: f64 = exps.iter().sum();
            exps.into_iter().map(|e| e / sum).collect()
        }
    };
    let score: f64 = positive.iter().filter_map(|&i| probs.get(i)).sum();
    // The first of equal maxima.
    let top = (0..probs.len()).fold(0, |best, i| if probs[i] > probs[best] { i } else { best });
    let label = labels
        .get(top)
        .cloned()
        .unwrap_or_else(|| format!("class-{top}"));
    // NaN stays NaN (the pool answers it `error`); rounding beyond [0, 1] is clamped.
    let score = if score.is_nan() {
        score
    } else {
        score.clamp(0.0, 1.0)
    };
    Score { score, label }
}

/// A clip model's [`ModelInfo`] from its input shape (5-D, in `layout`) and output shape
/// (`[batch, classes]`); dims ≤ 0 are free. Errors are reasons, for a message.
pub fn info_from_shapes(
    input_name: String,
    output_name: String,
    shape: &[i64],
    out_shape: &[i64],
    layout: Layout,
) -> Result<ModelInfo, String> {
    if shape.len() != 5 {
        return Err(format!(
            "input {input_name:?} has shape {shape:?}: a clip model takes a 5-D tensor \
             (batch, channels, frames, height, width in some order)"
        ));
    }
    let (t, c, h, w) = layout.axes();
    if shape[c] > 0 && shape[c] != 3 {
        return Err(format!(
            "input {input_name:?} has shape {shape:?}: with tensor-layout {layout:?} dimension {c} \
             should be 3 colour channels; is the layout right?"
        ));
    }
    if out_shape.len() != 2 {
        return Err(format!(
            "output {output_name:?} has shape {out_shape:?}; expected [batch, classes]"
        ));
    }
    Ok(ModelInfo {
        input_name,
        output_name,
        batch: dim(shape[0]).map(|b| b as usize),
        frames: dim(shape[t]),
        height: dim(shape[h]),
        width: dim(shape[w]),
        classes: dim(out_shape[1]).map(|c| c as usize),
    })
}

/// The indices of the positive classes (see [`OnnxConfig::positive`]) of a model.
pub fn resolve_positive(config: &OnnxConfig, info: &ModelInfo) -> Result<Vec<usize>, LoadError> {
    if let (Some(n), false) = (info.classes, config.labels.is_empty())
        && n != config.labels.len()
    {
        return Err(LoadError::Labels {
            path: PathBuf::new(),
            reason: format!(
                "{} labels for a model with {n} classes",
                config.labels.len()
            ),
        });
    }
    let classes = info
        .classes
        .or((!config.labels.is_empty()).then_some(config.labels.len()));
    if config.positive.is_empty() {
        // Every class but the first, which TAO-style models keep for "nothing happening".
        return match classes {
            Some(n) if n >= 2 => Ok((1..n).collect()),
            _ => Err(LoadError::Positive(
                "the model's class count is not fixed: name the positive classes".into(),
            )),
        };
    }
    config
        .positive
        .iter()
        .map(|c| match c {
            ClassRef::Index(i) if classes.is_none_or(|n| *i < n) => Ok(*i),
            ClassRef::Index(i) => Err(LoadError::Positive(format!(
                "class index {i} is out of range for a model with {} classes",
                classes.unwrap_or(0)
            ))),
            ClassRef::Name(name) => config.labels.iter().position(|l| l == name).ok_or_else(|| {
                LoadError::Positive(format!(
                    "no class named {name:?} (labels: {:?}); give labels-file or use indices",
                    config.labels
                ))
            }),
        })
        .collect()
}

pub struct OnnxScorer {
    sessions: Vec<Mutex<Session>>,
    next: AtomicUsize,
    info: ModelInfo,
    config: OnnxConfig,
    positive: Vec<usize>,
    /// The provider in use (CPU when the requested one was unavailable).
    provider: Provider,
    /// Things worth telling the user (provider fallbacks).
    pub warnings: Vec<String>,
}

/// Whether the loaded runtime was built with this provider.
fn available<E: ort::ep::ExecutionProvider>(_ep: &E) -> bool {
    E::is_available().unwrap_or(false)
}

fn dim(v: i64) -> Option<u32> {
    (v > 0).then_some(v as u32)
}

impl OnnxScorer {
    pub fn load(config: OnnxConfig) -> Result<OnnxScorer, LoadError> {
        let path = config.model_path.clone();
        if path
            .extension()
            .is_some_and(|e| e == "engine" || e == "plan" || e == "trt")
        {
            return Err(LoadError::Engine(path));
        }
        if !path.is_file() {
            return Err(LoadError::Missing(path));
        }
        let env = runtime()?;
        let mut warnings = Vec::new();
        let mut provider = config.provider;
        let model_err = |e: ort::Error| LoadError::Model {
            path: path.clone(),
            reason: e.to_string(),
        };
        let eps = match config.provider {
            Provider::Cpu => vec![],
            Provider::Cuda => {
                let ep = ort::ep::CUDA::default();
                if available::<_>(&ep) {
                    vec![ep.build().error_on_failure()]
                } else {
                    vec![]
                }
            }
            Provider::TensorRt => {
                let mut ep = ort::ep::TensorRT::default();
                if let Some(dir) = &config.trt_cache_dir {
                    ep = ep
                        .with_engine_cache(true)
                        .with_engine_cache_path(dir.display());
                }
                if available::<_>(&ep) {
                    // CUDA picks up what TensorRT cannot run.
                    vec![
                        ep.build().error_on_failure(),
                        ort::ep::CUDA::default().build(),
                    ]
                } else {
                    vec![]
                }
            }
        };
        if config.provider != Provider::Cpu && eps.is_empty() {
            warnings.push(format!(
                "execution provider {} is not available in the ONNX Runtime library {}: using the CPU",
                config.provider.as_str(),
                runtime_path()
            ));
            provider = Provider::Cpu;
        }

        let mut sessions = Vec::new();
        for _ in 0..config.sessions.max(1) {
            let builder = Session::builder(env)
                .map_err(model_err)?
                .with_optimization_level(GraphOptimizationLevel::All)
                .map_err(|e| model_err(e.into()))?
                .with_intra_threads(config.threads.max(1))
                .map_err(|e| model_err(e.into()))?;
            let mut builder = if eps.is_empty() {
                builder
            } else {
                match builder.with_execution_providers(&eps) {
                    Ok(b) => b,
                    Err(e) => {
                        warnings.push(format!(
                            "execution provider {} failed ({}): using the CPU",
                            config.provider.as_str(),
                            e
                        ));
                        provider = Provider::Cpu;
                        e.recover()
                    }
                }
            };
            sessions.push(Mutex::new(
                builder.commit_from_file(&path).map_err(model_err)?,
            ));
        }
        let info = Self::inspect(
            &sessions[0].lock().unwrap_or_else(|e| e.into_inner()),
            &config,
        )?;
        let positive = resolve_positive(&config, &info)?;
        Ok(OnnxScorer {
            sessions,
            next: AtomicUsize::new(0),
            info,
            config,
            positive,
            provider,
            warnings,
        })
    }

    fn inspect(session: &Session, config: &OnnxConfig) -> Result<ModelInfo, LoadError> {
        let path = &config.model_path;
        let io = |reason: String| LoadError::Io {
            path: path.clone(),
            reason,
        };
        let pick =
            |outlets: &[ort::value::Outlet], wanted: &Option<String>, tao: &str, what: &str| {
                let names: Vec<&str> = outlets.iter().map(|o| o.name()).collect();
                match wanted {
                    Some(n) if names.contains(&n.as_str()) => Ok(n.clone()),
                    Some(n) => Err(io(format!("has no {what} named {n:?} (it has {names:?})"))),
                    None if names.contains(&tao) => Ok(tao.to_string()),
                    None => names
                        .first()
                        .map(|s| s.to_string())
                        .ok_or_else(|| io(format!("has no {what}"))),
                }
            };
        let input_name = pick(session.inputs(), &config.input_name, TAO_INPUT, "input")?;
        let output_name = pick(session.outputs(), &config.output_name, TAO_OUTPUT, "output")?;
        let input = session
            .inputs()
            .iter()
            .find(|o| o.name() == input_name)
            .expect("picked");
        let output = session
            .outputs()
            .iter()
            .find(|o| o.name() == output_name)
            .expect("picked");
        if input.dtype().tensor_type() != Some(ort::value::TensorElementType::Float32) {
            return Err(io(format!(
                "input {input_name:?} is {:?}, not a float32 tensor",
                input.dtype()
            )));
        }
        let shape: Vec<i64> = input
            .dtype()
            .tensor_shape()
            .map(|s| s.to_vec())
            .unwrap_or_default();
        let out_shape: Vec<i64> = output
            .dtype()
            .tensor_shape()
            .map(|s| s.to_vec())
            .unwrap_or_default();
        info_from_shapes(input_name, output_name, &shape, &out_shape, config.layout).map_err(io)
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn provider(&self) -> Provider {
        self.provider
    }

    pub fn positive_classes(&self) -> &[usize] {
        &self.positive
    }

    /// A free session, or (all busy) the next one in turn.
    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        for s in &self.sessions {
            match s.try_lock() {
                Ok(g) => return g,
                Err(TryLockError::Poisoned(e)) => return e.into_inner(),
                Err(TryLockError::WouldBlock) => continue,
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.sessions.len();
        self.sessions[i].lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Scorer for OnnxScorer {
    fn name(&self) -> &str {
        "onnx"
    }

    fn is_model(&self) -> bool {
        true
    }

    fn max_batch(&self) -> usize {
        match self.info.batch {
            Some(b) => b.min(self.config.max_batch.max(1)),
            None => self.config.max_batch.max(1),
        }
    }

    fn score(&self, clips: &[&Clip], cancel: &Cancel) -> Result<Vec<Score>, ScoreError> {
        let Some(first) = clips.first() else {
            return Ok(vec![]);
        };
        let (t, h, w) = (
            first.frames as usize,
            first.height as usize,
            first.width as usize,
        );
        if clips
            .iter()
            .any(|c| (c.frames as usize, c.height as usize, c.width as usize) != (t, h, w))
        {
            return Err(ScoreError::Failed(
                "clips of one batch differ in shape".into(),
            ));
        }
        // A model with a fixed batch larger than the clips at hand gets zero padding.
        let n = self.info.batch.unwrap_or(clips.len()).max(clips.len());
        let per_clip = 3 * t * h * w;
        let mut data = vec![0f32; n * per_clip];
        preprocess(clips, &self.config, &mut data);
        let shape = match self.config.layout {
            Layout::Ncdhw => [n, 3, t, h, w],
            Layout::Ndchw => [n, t, 3, h, w],
            Layout::Ndhwc => [n, t, h, w, 3],
        };
        let failed = |e: ort::Error| ScoreError::Failed(e.to_string());
        let tensor = Tensor::from_array((shape, data)).map_err(failed)?;
        let options = Arc::new(RunOptions::new().map_err(failed)?);
        let o = options.clone();
        cancel.on_cancel(move || {
            let _ = o.terminate();
        });
        if cancel.is_cancelled() {
            return Err(ScoreError::Cancelled);
        }
        let mut session = self.session();
        let outputs = session
            .run_with_options(
                ort::inputs![self.info.input_name.as_str() => tensor],
                &options,
            )
            .map_err(|e| {
                if cancel.is_cancelled() {
                    ScoreError::Cancelled
                } else {
                    failed(e)
                }
            })?;
        let (out_shape, values) = outputs[self.info.output_name.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(failed)?;
        let classes = out_shape.get(1).copied().unwrap_or(0).max(0) as usize;
        if out_shape.first().copied() != Some(n as i64) || classes == 0 {
            return Err(ScoreError::Failed(format!(
                "model output has shape {out_shape:?} for a batch of {n}"
            )));
        }
        Ok((0..clips.len())
            .map(|i| {
                score_outputs(
                    &values[i * classes..(i + 1) * classes],
                    self.config.activation,
                    &self.positive,
                    &self.config.labels,
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detections::SourceFrame;
    use crate::geometry::PixelRect;

    fn clip(t: u32, h: u32, w: u32, fill: impl Fn(usize) -> u8) -> Clip {
        let n = (t * h * w * 3) as usize;
        Clip {
            request_id: 1,
            source: SourceFrame::default(),
            width: w,
            height: h,
            frames: t,
            real_frames: t,
            pixels: (0..n).map(fill).collect(),
            frame_labels: vec![vec![]; t as usize],
            region: PixelRect::full(w, h),
            trigger_label: String::new(),
            trigger_confidence: 1.0,
            start_pts: None,
            end_pts: None,
        }
    }

    #[test]
    fn preprocess_lays_out_and_normalises() {
        // 2 frames of 1×2 pixels; byte i has value i.
        let c = clip(2, 1, 2, |i| i as u8);
        let cfg = OnnxConfig {
            mean: [0.0; 3],
            scale: [1.0; 3],
            ..Default::default()
        };
        let mut out = vec![0.0; 12];
        preprocess(&[&c], &cfg, &mut out);
        // NCDHW: channel R of frame 0 = bytes 0, 3; frame 1 = 6, 9; then G ...
        assert_eq!(out, vec![0., 3., 6., 9., 1., 4., 7., 10., 2., 5., 8., 11.]);

        let mut out = vec![0.0; 12];
        preprocess(
            &[&c],
            &OnnxConfig {
                layout: Layout::Ndchw,
                ..cfg.clone()
            },
            &mut out,
        );
        assert_eq!(out, vec![0., 3., 1., 4., 2., 5., 6., 9., 7., 10., 8., 11.]);

        let mut out = vec![0.0; 12];
        preprocess(
            &[&c],
            &OnnxConfig {
                layout: Layout::Ndhwc,
                color: ColorOrder::Bgr,
                ..cfg
            },
            &mut out,
        );
        assert_eq!(out, vec![2., 1., 0., 5., 4., 3., 8., 7., 6., 11., 10., 9.]);
    }

    #[test]
    fn tao_normalisation_maps_to_minus_one_one() {
        let c = clip(1, 1, 1, |i| [0u8, 255, 128][i]);
        let mut out = vec![0.0; 3];
        preprocess(&[&c], &OnnxConfig::default(), &mut out);
        assert!((out[0] + 1.0).abs() < 1e-6 && (out[1] - 1.0).abs() < 1e-6 && out[2].abs() < 0.01);
    }

    #[test]
    fn activations_and_positive_classes() {
        let labels: Vec<String> = ["normal", "armed", "fighting"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let s = score_outputs(&[0.0, 0.0, 0.0], Activation::Softmax, &[1, 2], &labels);
        assert!((s.score - 2.0 / 3.0).abs() < 1e-9);
        let s = score_outputs(&[0.0, 5.0, 0.0], Activation::Softmax, &[1], &labels);
        assert!(s.score > 0.98 && s.label == "armed");
        let s = score_outputs(&[0.0, 0.0], Activation::Sigmoid, &[0, 1], &[]);
        assert_eq!(s.score, 1.0, "clamped");
        assert_eq!(s.label, "class-0");
        let s = score_outputs(&[0.2, 0.3], Activation::None, &[1], &[]);
        assert!((s.score - 0.3).abs() < 1e-6);
        assert!(
            score_outputs(&[f32::NAN, 0.0], Activation::Softmax, &[1], &[])
                .score
                .is_nan()
        );
    }

    #[test]
    fn class_lists_parse() {
        assert_eq!(
            ClassRef::parse_list(" 1, armed ,,3"),
            vec![
                ClassRef::Index(1),
                ClassRef::Name("armed".into()),
                ClassRef::Index(3)
            ]
        );
        assert!(ClassRef::parse_list("").is_empty());
    }

    #[test]
    fn engine_files_and_missing_models_are_refused_before_loading_anything() {
        let e = OnnxScorer::load(OnnxConfig {
            model_path: "/x/model.engine".into(),
            ..Default::default()
        });
        assert!(matches!(e, Err(LoadError::Engine(_))));
        let e = OnnxScorer::load(OnnxConfig {
            model_path: "/nonexistent.onnx".into(),
            ..Default::default()
        });
        assert!(matches!(e, Err(LoadError::Missing(_))));
        assert!(e.err().unwrap().to_string().contains("/nonexistent.onnx"));
    }

    #[test]
    fn labels_files_one_a_line_or_semicolons() {
        let dir = std::env::temp_dir().join(format!("iguard-labels-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.txt");
        std::fs::write(&a, "normal\narmed\n\n").unwrap();
        assert_eq!(read_labels(&a).unwrap(), vec!["normal", "armed"]);
        std::fs::write(&a, "normal;armed;fighting\n").unwrap();
        assert_eq!(
            read_labels(&a).unwrap(),
            vec!["normal", "armed", "fighting"]
        );
        std::fs::write(&a, "\n").unwrap();
        assert!(read_labels(&a).is_err());
        assert!(
            read_labels(&dir.join("none"))
                .unwrap_err()
                .to_string()
                .contains("none")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
