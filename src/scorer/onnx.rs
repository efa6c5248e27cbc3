// SPDX-License-Identifier: MIT OR Apache-2.0
//! The ONNX Runtime scorer: a real 3D-CNN action model run with `ort`.
//!
//! The runtime is loaded at run time (`load-dynamic`): from `ORT_DYLIB_PATH` when set, else the
//! system's `libonnxruntime.so`. The same build runs the PyPI wheel's CPU library here and
//! NVIDIA's build (CUDA, TensorRT) on a Jetson.
//!
//! The model's I/O (tensor names, layout, normalisation, scores) is [`super::model_io`]'s,
//! shared with the remote scorer. The input's static dims (T, H, W, N) are read from the model.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, TryLockError};

use ort::session::builder::GraphOptimizationLevel;
use ort::session::{RunOptions, Session};
use ort::value::Tensor;

use super::model_io::{
    self, ClassError, ModelInfo, ModelIo, TAO_INPUT, TAO_OUTPUT, info_from_shapes, pick_name,
    resolve_positive,
};
use super::{Cancel, Score, ScoreError, Scorer};
use crate::clip::Clip;

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

/// What loading a model into ONNX Runtime takes: the model and its I/O, and how the runtime
/// runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxConfig {
    pub model_path: PathBuf,
    pub io: ModelIo,
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
            io: ModelIo::default(),
            provider: Provider::Cpu,
            trt_cache_dir: None,
            threads: 1,
            sessions: 1,
            max_batch: 1,
        }
    }
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
    #[error(transparent)]
    Classes(#[from] ClassError),
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
        let positive = resolve_positive(&config.io, &info)?;
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
        let names = |outlets: &[ort::value::Outlet]| -> Vec<String> {
            outlets.iter().map(|o| o.name().to_string()).collect()
        };
        let (inputs, outputs) = (names(session.inputs()), names(session.outputs()));
        let pick = |names: &[String], wanted: &Option<String>, tao: &str, what: &str| {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            pick_name(&names, wanted.as_deref(), tao, what).map_err(io)
        };
        let input_name = pick(&inputs, &config.io.input_name, TAO_INPUT, "input")?;
        let output_name = pick(&outputs, &config.io.output_name, TAO_OUTPUT, "output")?;
        let lost = |name: &str| io(format!("lost tensor {name:?}"));
        let input = session
            .inputs()
            .iter()
            .find(|o| o.name() == input_name)
            .ok_or_else(|| lost(&input_name))?;
        let output = session
            .outputs()
            .iter()
            .find(|o| o.name() == output_name)
            .ok_or_else(|| lost(&output_name))?;
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
        info_from_shapes(
            input_name,
            output_name,
            &shape,
            &out_shape,
            config.io.layout,
        )
        .map_err(io)
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

    fn class_index(&self, label: &str) -> Option<u32> {
        model_io::class_index(&self.config.io, label)
    }

    fn score(&self, clips: &[&Clip], cancel: &Cancel) -> Result<Vec<Score>, ScoreError> {
        if clips.is_empty() {
            return Ok(vec![]);
        }
        let model = |reason: String| {
            ScoreError::Failed(format!("model {:?}: {reason}", self.config.model_path))
        };
        let batch = model_io::prepare(clips, &self.config.io, &self.info).map_err(model)?;
        let n = batch.rows();
        let failed = |e: ort::Error| ScoreError::Failed(e.to_string());
        let tensor = Tensor::from_array((batch.shape, batch.data)).map_err(failed)?;
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
        if out_shape.len() != 2 || out_shape[0] != n as i64 {
            return Err(model(format!(
                "output has shape {out_shape:?} for a batch of {n}"
            )));
        }
        model_io::scores(values, n, batch.clips, &self.config.io, &self.positive).map_err(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn class_errors_read_as_they_are() {
        let e = LoadError::from(ClassError::Positive("class index 7 is out of range".into()));
        assert_eq!(
            e.to_string(),
            "positive-classes: class index 7 is out of range"
        );
    }
}
