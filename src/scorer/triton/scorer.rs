// SPDX-License-Identifier: MIT OR Apache-2.0
//! [`TritonScorer`], the [`Scorer`] over an inference server: at connect, the model's I/O read
//! from its metadata; per call, the clips laid out and normalised by [`model_io`] (as for the
//! ONNX scorer), the request run on the scorer's own tokio runtime (two named threads) while the
//! calling worker waits on a plain channel, and the answer's logits turned into scores.
//!
//! It must not know how the connection is kept or retried ([`super::link`]) or how a URL and TLS
//! become an endpoint ([`super::config`]).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Instant;

use super::config::endpoint;
use super::link::Link;
use super::proto::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use super::proto::{self, ModelInferRequest, ModelInferResponse, ModelMetadataResponse};
use super::{TritonConfig, TritonError};
use crate::clip::Clip;
use crate::scorer::model_io::{
    self, ModelInfo, ModelIo, TAO_INPUT, TAO_OUTPUT, info_from_shapes, pick_name, resolve_positive,
};
use crate::scorer::{Cancel, Score, ScoreError, Scorer};

/// Owns the runtime; shuts it down without waiting, so dropping a scorer never blocks.
struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

pub struct TritonScorer {
    handle: tokio::runtime::Handle,
    link: Arc<Link>,
    info: ModelInfo,
    /// Whether requests carry a batch dimension (Triton: `max_batch_size` > 0).
    batch_dim: bool,
    /// The server's limit on clips per request, when it tells.
    server_max_batch: Option<usize>,
    positive: Vec<usize>,
    config: TritonConfig,
    next_id: AtomicU64,
    // Last: dropped after the link, whose tasks it ran.
    _runtime: Runtime,
}

impl std::fmt::Debug for TritonScorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TritonScorer")
            .field("url", &self.link.url)
            .field("model", &self.config.model_name)
            .field("info", &self.info)
            .finish()
    }
}

impl TritonScorer {
    /// Connects, checks that the server is live and ready and the model ready, and reads the
    /// model's inputs and outputs. Takes at most about `connect_timeout + request_timeout`.
    pub fn connect(config: TritonConfig) -> Result<TritonScorer, TritonError> {
        let mut config = config;
        config.max_batch = config.max_batch.max(1);
        config.in_flight = config.in_flight.max(1);
        if config.model_name.is_empty() {
            return Err(TritonError::Model {
                url: config.url.clone(),
                model: String::new(),
                reason: "no model name given".into(),
            });
        }
        let endpoint = endpoint(&config)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("iguard-triton")
            .enable_all()
            .build()
            .map_err(|e| TritonError::Runtime(e.to_string()))?;
        let runtime = Runtime(Some(runtime));
        let handle = runtime.0.as_ref().expect("just built").handle().clone();
        let link = Arc::new(Link::new(&config, endpoint));

        let probe = {
            let (link, config) = (link.clone(), config.clone());
            async move { link.probe(&config).await }
        };
        // Bounded by connect_timeout and the checks' grpc-timeout; never aborted.
        let probe = run(&handle, probe, None).unwrap_or_else(|| {
            Err(TritonError::Runtime(
                "the connection task ended early".into(),
            ))
        })?;

        let model_err = |reason: String| TritonError::Model {
            url: config.url.clone(),
            model: config.model_name.clone(),
            reason,
        };
        let (info, batch_dim) = model_info(&probe.metadata, &config.io).map_err(model_err)?;
        let batch_dim = batch_dim && probe.max_batch != Some(0);
        let positive = resolve_positive(&config.io, &info).map_err(|e| model_err(e.to_string()))?;
        Ok(TritonScorer {
            handle,
            link,
            info,
            batch_dim,
            server_max_batch: probe.max_batch.filter(|&b| b > 0),
            positive,
            config,
            next_id: AtomicU64::new(1),
            _runtime: runtime,
        })
    }

    /// The model's names and static dims, as [`crate::scorer::onnx::OnnxScorer::info`] gives them.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn positive_classes(&self) -> &[usize] {
        &self.positive
    }

    pub fn config(&self) -> &TritonConfig {
        &self.config
    }

    /// The server's limit on clips per request (Triton's `max_batch_size`), when it tells.
    pub fn server_max_batch(&self) -> Option<usize> {
        self.server_max_batch
    }

    /// The request for `clips`, and its rows (the clips and any padding).
    fn request(&self, clips: &[&Clip]) -> Result<(ModelInferRequest, usize), ScoreError> {
        if !self.batch_dim && clips.len() > 1 {
            return Err(ScoreError::Failed(format!(
                "model {:?} takes one clip per request, not {}",
                self.config.model_name,
                clips.len()
            )));
        }
        let batch = model_io::prepare(clips, &self.config.io, &self.info)
            .map_err(|e| ScoreError::Failed(format!("model {:?}: {e}", self.config.model_name)))?;
        let data = batch.data;
        // KServe raw contents are little-endian: on such machines, the floats' bytes as they are.
        let raw: Vec<u8> = if cfg!(target_endian = "little") {
            bytemuck::cast_slice(&data).to_vec()
        } else {
            data.iter().flat_map(|v| v.to_le_bytes()).collect()
        };
        let mut shape: Vec<i64> = batch.shape.iter().map(|&d| d as i64).collect();
        if !self.batch_dim {
            shape.remove(0);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let request = ModelInferRequest {
            model_name: self.config.model_name.clone(),
            model_version: self.config.model_version.clone(),
            id: format!("iguard-{id}"),
            inputs: vec![InferInputTensor {
                name: self.info.input_name.clone(),
                datatype: "FP32".into(),
                shape,
            }],
            outputs: vec![InferRequestedOutputTensor {
                name: self.info.output_name.clone(),
            }],
            raw_input_contents: vec![raw],
        };
        Ok((request, batch.shape[0]))
    }

    /// The logits of `n` clips from a response, `n × classes` values.
    fn logits(&self, response: &ModelInferResponse, n: usize) -> Result<Vec<f32>, String> {
        let name = &self.info.output_name;
        let Some(i) = response.outputs.iter().position(|o| &o.name == name) else {
            let names: Vec<&str> = response.outputs.iter().map(|o| o.name.as_str()).collect();
            return Err(format!(
                "the answer has no output {name:?} (it has {names:?})"
            ));
        };
        let out = &response.outputs[i];
        if out.datatype != "FP32" {
            return Err(format!("output {name:?} is {}, not FP32", out.datatype));
        }
        let expected: Vec<i64> = if self.batch_dim {
            vec![n as i64, -1]
        } else {
            vec![-1]
        };
        let shape_ok = out.shape.len() == expected.len()
            && out
                .shape
                .iter()
                .zip(&expected)
                .all(|(&d, &e)| d > 0 && (e < 0 || d == e));
        if !shape_ok {
            return Err(format!(
                "output {name:?} has shape {:?} for a batch of {n}",
                out.shape
            ));
        }
        let count: i64 = out.shape.iter().product();
        let values: Vec<f32> = match response.raw_output_contents.get(i) {
            Some(raw) => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            None => out
                .contents
                .as_ref()
                .map(|c| c.fp32_contents.clone())
                .unwrap_or_default(),
        };
        if values.len() as i64 != count {
            return Err(format!(
                "output {name:?} of shape {:?} came with {} values",
                out.shape,
                values.len()
            ));
        }
        Ok(values)
    }
}

impl Scorer for TritonScorer {
    fn name(&self) -> &str {
        "triton"
    }

    fn is_model(&self) -> bool {
        true
    }

    fn class_index(&self, label: &str) -> Option<u32> {
        model_io::class_index(&self.config.io, label)
    }

    fn max_batch(&self) -> usize {
        if !self.batch_dim {
            return 1;
        }
        [self.info.batch, self.server_max_batch]
            .into_iter()
            .flatten()
            .fold(self.config.max_batch.max(1), usize::min)
    }

    fn score(&self, clips: &[&Clip], cancel: &Cancel) -> Result<Vec<Score>, ScoreError> {
        if clips.is_empty() {
            return Ok(vec![]);
        }
        if cancel.is_cancelled() {
            return Err(ScoreError::Cancelled);
        }
        let (request, n) = self.request(clips)?;
        let deadline = Instant::now() + self.config.request_timeout;
        let link = self.link.clone();
        let response = run(
            &self.handle,
            async move { link.infer(request, deadline).await },
            Some(cancel),
        );
        // `None`: aborted by `cancel`.
        let response = response.ok_or(ScoreError::Cancelled)??;
        let failed = |reason: String| {
            ScoreError::Failed(format!(
                "inference server {}, model {:?}: {reason}",
                self.link.url, self.config.model_name
            ))
        };
        let values = self.logits(&response, n).map_err(failed)?;
        model_io::scores(&values, n, clips.len(), &self.config.io, &self.positive).map_err(failed)
    }
}

/// Runs `task` on the runtime and waits for it on this thread; `cancel` aborts it. `None` when
/// it was aborted.
fn run<T: Send + 'static>(
    handle: &tokio::runtime::Handle,
    task: impl Future<Output = T> + Send + 'static,
    cancel: Option<&Cancel>,
) -> Option<T> {
    let (tx, rx) = mpsc::sync_channel(1);
    let task = handle.spawn(async move {
        let _ = tx.send(task.await);
    });
    if let Some(cancel) = cancel {
        let abort = task.abort_handle();
        cancel.on_cancel(move || abort.abort());
    }
    // An aborted task drops its sender: the wait ends at once.
    rx.recv().ok()
}

/// The model's I/O from its metadata; also whether its input has a batch dimension.
fn model_info(meta: &ModelMetadataResponse, io: &ModelIo) -> Result<(ModelInfo, bool), String> {
    type Tensor = proto::model_metadata_response::TensorMetadata;
    let pick = |tensors: &[Tensor], wanted: &Option<String>, tao: &str, what: &str| {
        let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
        let name = pick_name(&names, wanted.as_deref(), tao, what)?;
        tensors
            .iter()
            .find(|t| t.name == name)
            .cloned()
            .ok_or_else(|| format!("lost {what} {name:?}"))
    };
    let input = pick(&meta.inputs, &io.input_name, TAO_INPUT, "input")?;
    let output = pick(&meta.outputs, &io.output_name, TAO_OUTPUT, "output")?;
    for t in [&input, &output] {
        if t.datatype != "FP32" {
            return Err(format!(
                "{:?} is {}: the scorer sends and reads FP32 tensors",
                t.name, t.datatype
            ));
        }
    }
    // Without a batch dimension (Triton: max_batch_size 0) the shapes are one clip's.
    let batch_dim = input.shape.len() == 5;
    let with_batch = |shape: &[i64]| -> Vec<i64> {
        if batch_dim {
            shape.to_vec()
        } else {
            std::iter::once(1).chain(shape.iter().copied()).collect()
        }
    };
    let info = info_from_shapes(
        input.name.clone(),
        output.name.clone(),
        &with_batch(&input.shape),
        &with_batch(&output.shape),
        io.layout,
    )?;
    Ok((info, batch_dim))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, shape: &[i64]) -> proto::model_metadata_response::TensorMetadata {
        proto::model_metadata_response::TensorMetadata {
            name: name.into(),
            datatype: "FP32".into(),
            shape: shape.to_vec(),
        }
    }

    fn meta(
        inputs: Vec<proto::model_metadata_response::TensorMetadata>,
        outputs: Vec<proto::model_metadata_response::TensorMetadata>,
    ) -> ModelMetadataResponse {
        ModelMetadataResponse {
            name: "m".into(),
            versions: vec!["1".into()],
            platform: "python".into(),
            inputs,
            outputs,
        }
    }

    #[test]
    fn metadata_gives_the_clip_shape_and_free_batch() {
        let m = meta(
            vec![tensor("input_rgb", &[-1, 3, 16, 112, 112])],
            vec![tensor("fc_pred", &[-1, 2])],
        );
        let (info, batch_dim) = model_info(&m, &ModelIo::default()).unwrap();
        assert!(batch_dim);
        assert_eq!(
            info,
            ModelInfo {
                input_name: "input_rgb".into(),
                output_name: "fc_pred".into(),
                batch: None,
                frames: Some(16),
                height: Some(112),
                width: Some(112),
                classes: Some(2),
            }
        );
    }

    #[test]
    fn metadata_without_batch_dimension_or_tao_names() {
        let m = meta(
            vec![tensor("clip", &[16, 224, 224, 3])],
            vec![tensor("logits", &[5])],
        );
        let cfg = ModelIo {
            layout: model_io::Layout::Ndhwc,
            ..Default::default()
        };
        let (info, batch_dim) = model_info(&m, &cfg).unwrap();
        assert!(!batch_dim);
        assert_eq!(info.batch, Some(1));
        assert_eq!(
            (info.frames, info.height, info.width),
            (Some(16), Some(224), Some(224))
        );
        assert_eq!((info.input_name.as_str(), info.classes), ("clip", Some(5)));
    }

    #[test]
    fn metadata_errors_name_what_is_wrong() {
        let mut input = tensor("input_rgb", &[-1, 3, 16, 112, 112]);
        input.datatype = "UINT8".into();
        let e = model_info(
            &meta(vec![input], vec![tensor("fc_pred", &[-1, 2])]),
            &ModelIo::default(),
        )
        .unwrap_err();
        assert!(e.contains("UINT8") && e.contains("FP32"), "{e}");

        let e = model_info(
            &meta(
                vec![tensor("input_rgb", &[-1, 16, 112, 112, 3])],
                vec![tensor("fc_pred", &[-1, 2])],
            ),
            &ModelIo::default(),
        )
        .unwrap_err();
        assert!(e.contains("layout"), "{e}");

        let e = model_info(
            &meta(
                vec![tensor("input_rgb", &[-1, 3, 16, 112, 112])],
                vec![tensor("fc_pred", &[-1, 2])],
            ),
            &ModelIo {
                output_name: Some("scores".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.contains("\"scores\"") && e.contains("fc_pred"), "{e}");
    }

    #[test]
    fn metadata_dims_beyond_u32_are_errors_naming_the_value() {
        let huge = 1i64 << 40;
        let m = meta(
            vec![tensor("input_rgb", &[-1, 3, 16, huge, 112])],
            vec![tensor("fc_pred", &[-1, 2])],
        );
        let e = model_info(&m, &ModelIo::default()).unwrap_err();
        assert!(e.contains("height") && e.contains(&huge.to_string()), "{e}");
    }
}
