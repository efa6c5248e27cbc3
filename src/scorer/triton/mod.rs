// SPDX-License-Identifier: MIT OR Apache-2.0
//! The remote scorer: a Triton-compatible inference server over the KServe v2 (Open Inference
//! Protocol) gRPC API, the one DeepStream's `nvinferserver` speaks.
//!
//! Clips are laid out and normalised by the same [`model_io`] code as the ONNX scorer's, sent as
//! raw FP32 bytes, and the server's logits become scores there too: a model served remotely
//! scores the same clips the same way as when it runs locally.
//!
//! Concurrency: the scorer owns a small tokio runtime (two named threads) that drives one HTTP/2
//! connection. Each [`Scorer::score`] call normalises its clips on the calling (pool worker)
//! thread, spawns the RPC as a task and waits for it on a plain channel, so many workers have
//! requests in flight at once over the one connection (at most `in_flight`), and the call never
//! needs to be inside or outside any particular async context. Cancelling aborts the task, which
//! drops the RPC (HTTP/2 resets the stream). A failed connection is dropped and re-made with
//! back-off by later calls; while backing off, calls fail at once instead of waiting.
//!
//! One deadline per call, in two places: the pool's cancel at `worker-timeout` aborts the task,
//! and the request's `grpc-timeout` tells the server when the answer stops being useful (tonic
//! also ends the call there on our side, so a scorer used without a pool still returns).

use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::model_io::{
    self, ModelInfo, ModelIo, TAO_INPUT, TAO_OUTPUT, info_from_shapes, pick_name, resolve_positive,
};
use super::{Cancel, Score, ScoreError, Scorer};
use crate::clip::Clip;

#[allow(clippy::all, clippy::pedantic)]
mod proto {
    tonic::include_proto!("inference");
}

use proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use proto::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use proto::{
    ModelConfigRequest, ModelInferRequest, ModelInferResponse, ModelMetadataRequest,
    ModelMetadataResponse, ModelReadyRequest, ServerLiveRequest, ServerReadyRequest,
};

type Client = GrpcInferenceServiceClient<Channel>;

/// TLS towards the server. Without it the connection is plain HTTP/2.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    /// PEM certificate(s) of the authority that signed the server's; `None` = the system's.
    pub ca_file: Option<PathBuf>,
    /// Name the server's certificate must carry; `None` = the host of the URL.
    pub domain: Option<String>,
    /// PEM client certificate and key, for servers that require mutual TLS; both or neither.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TritonConfig {
    /// The server's gRPC endpoint: `host:port` (Triton listens on 8001), or with a scheme,
    /// `http://host:port` or `https://host:port` (TLS).
    pub url: String,
    pub model_name: String,
    /// Empty = the server's choice (Triton: the newest ready version).
    pub model_version: String,
    /// Limit on making the TCP (and TLS) connection, at connect and at each reconnect.
    pub connect_timeout: Duration,
    /// The `grpc-timeout` of each call (and of the checks at connect): a little over the
    /// pool's `worker-timeout`, whose cancel ends calls first.
    pub request_timeout: Duration,
    /// TLS settings; `None` = plain, unless the URL says `https://`.
    pub tls: Option<TlsConfig>,
    /// The model's input and output names, preprocessing, labels and positive classes, as
    /// for the ONNX scorer.
    pub io: ModelIo,
    /// Most clips in one request (also bounded by the model's own limit).
    pub max_batch: usize,
    /// Most requests in flight at once; more wait (within their deadline).
    pub in_flight: usize,
}

impl Default for TritonConfig {
    fn default() -> Self {
        TritonConfig {
            url: "127.0.0.1:8001".into(),
            model_name: String::new(),
            model_version: String::new(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            tls: None,
            io: ModelIo::default(),
            max_batch: 1,
            in_flight: 4,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TritonError {
    #[error("inference server url {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("inference server TLS: {0}")]
    Tls(String),
    #[error(
        "cannot reach the inference server at {url}: {reason}. Is it running, and is this its \
         gRPC endpoint (Triton's default port is 8001)?"
    )]
    Unreachable { url: String, reason: String },
    #[error("the inference server at {url} is not ready: {reason}")]
    NotReady { url: String, reason: String },
    #[error(
        "model {model:?}{version} is not ready on the inference server at {url}{reason}: is it in \
         the server's model repository, and loaded?"
    )]
    ModelNotReady {
        url: String,
        model: String,
        /// `" version N"` or empty.
        version: String,
        /// `" (what the server said)"` or empty.
        reason: String,
    },
    #[error("model {model:?} on the inference server at {url}: {reason}")]
    Model {
        url: String,
        model: String,
        reason: String,
    },
    #[error("cannot start the inference client's threads: {0}")]
    Runtime(String),
}

/// Largest gRPC message the client accepts (tonic's default is 4 MB).
const MAX_MESSAGE: usize = 1 << 30;
/// Reconnect back-off: first wait, and the longest.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// The connection and what we know about its health.
#[derive(Default)]
struct Conn {
    client: Option<Client>,
    /// Bumped at each new connection, so a late failure of an old one cannot drop a new one.
    generation: u64,
    /// A connection attempt is running.
    connecting: bool,
    /// No connection attempt before this, after a failure.
    retry_at: Option<Instant>,
    last_error: String,
}

/// What the tasks share: the endpoint, the connection, the in-flight limit.
struct Link {
    url: String,
    endpoint: Endpoint,
    connect_timeout: Duration,
    /// Never held across an await.
    conn: Mutex<Conn>,
    /// Wakes the callers waiting for a connection attempt to end.
    attempted: tokio::sync::Notify,
    in_flight: tokio::sync::Semaphore,
    /// Failures since the last success; sets the back-off.
    failures: AtomicU32,
}

impl Link {
    fn new(config: &TritonConfig, endpoint: Endpoint) -> Link {
        Link {
            url: config.url.clone(),
            endpoint,
            connect_timeout: config.connect_timeout,
            conn: Mutex::new(Conn::default()),
            attempted: tokio::sync::Notify::new(),
            in_flight: tokio::sync::Semaphore::new(config.in_flight.max(1)),
            failures: AtomicU32::new(0),
        }
    }

    fn conn(&self) -> MutexGuard<'_, Conn> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn backoff(&self) -> Duration {
        let n = self.failures.load(Ordering::Relaxed).clamp(1, 16);
        (BACKOFF_MIN * 2u32.pow(n - 1)).min(BACKOFF_MAX)
    }

    /// The connected client, connecting first if needed; while backing off after a failure, the
    /// reason at once. Errors are reasons, for a message.
    ///
    /// The attempt runs as a task of its own: it ends (within `connect_timeout`) and records
    /// its outcome even when every caller waiting for it has reached its deadline meanwhile.
    async fn client(self: &Arc<Self>) -> Result<(Client, u64), String> {
        let mut waited = false;
        loop {
            let mut attempted = std::pin::pin!(self.attempted.notified());
            // Registered before looking, so an attempt ending in between still wakes us.
            attempted.as_mut().enable();
            {
                let mut conn = self.conn();
                if let Some(c) = &conn.client {
                    return Ok((c.clone(), conn.generation));
                }
                if let Some(at) = conn.retry_at
                    && let Some(wait) = at.checked_duration_since(Instant::now())
                {
                    return Err(if waited {
                        conn.last_error.clone()
                    } else {
                        format!(
                            "{} (reconnecting in {} ms)",
                            conn.last_error,
                            wait.as_millis().max(1)
                        )
                    });
                }
                if !conn.connecting {
                    conn.connecting = true;
                    tokio::spawn(self.clone().attempt());
                }
            }
            attempted.await;
            waited = true;
        }
    }

    async fn attempt(self: Arc<Self>) {
        let outcome = tokio::time::timeout(self.connect_timeout, self.endpoint.connect()).await;
        let mut conn = self.conn();
        conn.connecting = false;
        match outcome {
            Ok(Ok(channel)) => {
                conn.client = Some(
                    GrpcInferenceServiceClient::new(channel)
                        .max_decoding_message_size(MAX_MESSAGE)
                        .max_encoding_message_size(MAX_MESSAGE),
                );
                conn.generation += 1;
                conn.retry_at = None;
            }
            Ok(Err(e)) => self.failed(&mut conn, error_chain(&e)),
            Err(_) => self.failed(
                &mut conn,
                format!(
                    "no connection within connect-timeout ({:.1} s)",
                    self.connect_timeout.as_secs_f64()
                ),
            ),
        }
        drop(conn);
        self.attempted.notify_waiters();
    }

    fn failed(&self, conn: &mut Conn, reason: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        conn.retry_at = Some(Instant::now() + self.backoff());
        conn.last_error = reason;
    }

    /// Drops connection `generation` after a failure on it; a later call reconnects.
    fn broken(&self, generation: u64, reason: &str) {
        let mut conn = self.conn();
        if conn.generation == generation && conn.client.is_some() {
            conn.client = None;
            self.failed(&mut conn, reason.to_string());
        }
    }

    /// One inference call that stops being useful at `deadline`. What is left of it when the
    /// request goes out is its `grpc-timeout`; the wait for a slot or a connection before that
    /// ends with the caller's cancel (or, connecting, at `connect_timeout`).
    async fn infer(
        self: &Arc<Self>,
        request: ModelInferRequest,
        deadline: Instant,
    ) -> Result<ModelInferResponse, ScoreError> {
        let _slot = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| ScoreError::Failed("the scorer is closing".into()))?;
        let (mut client, generation) = self.client().await.map_err(|reason| {
            ScoreError::Failed(format!("inference server {}: {reason}", self.url))
        })?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ScoreError::Cancelled);
        }
        match client.model_infer(with_timeout(request, left)).await {
            Ok(response) => {
                self.failures.store(0, Ordering::Relaxed);
                Ok(response.into_inner())
            }
            // The deadline, not a broken link: the connection stays.
            Err(status) if Instant::now() >= deadline || is_deadline(&status) => {
                Err(ScoreError::Cancelled)
            }
            Err(status) => {
                let reason = describe(&status);
                if is_link_failure(&status) {
                    self.broken(generation, &reason);
                }
                Err(ScoreError::Failed(format!(
                    "inference server {}: {reason}",
                    self.url
                )))
            }
        }
    }

    /// The checks and reads of [`TritonScorer::connect`].
    async fn probe(self: &Arc<Self>, config: &TritonConfig) -> Result<Probe, TritonError> {
        let url = || self.url.clone();
        let unreachable = |reason: String| TritonError::Unreachable { url: url(), reason };
        let (mut client, _) = self.client().await.map_err(unreachable)?;
        // The checks together get one request_timeout, as one call would.
        let limit = config.request_timeout;
        let deadline = Instant::now() + limit;
        let left = || deadline.saturating_duration_since(Instant::now());
        let describe = |status: &tonic::Status| {
            if Instant::now() >= deadline {
                format!("no answer within {:.1} s", limit.as_secs_f64())
            } else {
                describe(status)
            }
        };
        let live = client
            .server_live(with_timeout(ServerLiveRequest {}, left()))
            .await
            .map_err(|s| unreachable(describe(&s)))?
            .into_inner()
            .live;
        if !live {
            return Err(TritonError::NotReady {
                url: url(),
                reason: "it says it is not live".into(),
            });
        }
        let ready = client
            .server_ready(with_timeout(ServerReadyRequest {}, left()))
            .await
            .map_err(|s| unreachable(describe(&s)))?
            .into_inner()
            .ready;
        if !ready {
            return Err(TritonError::NotReady {
                url: url(),
                reason: "it is live but not ready (still loading models?)".into(),
            });
        }
        let not_ready = |reason: String| TritonError::ModelNotReady {
            url: url(),
            model: config.model_name.clone(),
            version: if config.model_version.is_empty() {
                String::new()
            } else {
                format!(" version {}", config.model_version)
            },
            reason,
        };
        let model_ready = client
            .model_ready(with_timeout(
                ModelReadyRequest {
                    name: config.model_name.clone(),
                    version: config.model_version.clone(),
                },
                left(),
            ))
            .await
            .map_err(|s| not_ready(format!(" ({})", describe(&s))))?
            .into_inner()
            .ready;
        if !model_ready {
            return Err(not_ready(String::new()));
        }
        let metadata = client
            .model_metadata(with_timeout(
                ModelMetadataRequest {
                    name: config.model_name.clone(),
                    version: config.model_version.clone(),
                },
                left(),
            ))
            .await
            .map_err(|s| TritonError::Model {
                url: url(),
                model: config.model_name.clone(),
                reason: format!("cannot read its metadata: {}", describe(&s)),
            })?
            .into_inner();
        // Triton's extension; other servers may not have it, and then the limit is unknown.
        let max_batch = client
            .model_config(with_timeout(
                ModelConfigRequest {
                    name: config.model_name.clone(),
                    version: config.model_version.clone(),
                },
                left(),
            ))
            .await
            .ok()
            .and_then(|r| r.into_inner().config)
            .map(|c| c.max_batch_size.max(0) as usize);
        Ok(Probe {
            metadata,
            max_batch,
        })
    }
}

struct Probe {
    metadata: ModelMetadataResponse,
    /// The server's largest batch for the model; `Some(0)` = no batch dimension.
    max_batch: Option<usize>,
}

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

    /// The model's names and static dims, as [`onnx::OnnxScorer::info`] gives them.
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

/// `message` as a request the server (and tonic, on our side) gives up on after `timeout`.
fn with_timeout<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

/// The endpoint for `config.url`: scheme, TLS, connect timeout.
fn endpoint(config: &TritonConfig) -> Result<Endpoint, TritonError> {
    let url = config.url.trim();
    let url_err = |reason: String| TritonError::Url {
        url: config.url.clone(),
        reason,
    };
    let uri = match url.split_once("://") {
        Some(("http", _)) if config.tls.is_some() => {
            return Err(url_err(
                "TLS settings are given but the url says http://: use https:// or host:port".into(),
            ));
        }
        Some(("http" | "https", _)) => url.to_string(),
        Some((scheme, _)) => {
            return Err(url_err(format!(
                "unknown scheme {scheme:?}: give host:port, http://host:port or https://host:port"
            )));
        }
        None if config.tls.is_some() => format!("https://{url}"),
        None => format!("http://{url}"),
    };
    let mut endpoint = Endpoint::from_shared(uri.clone())
        .map_err(|e| url_err(error_chain(&e)))?
        // Our connects have their own limit (`Link::attempt`, handshakes included); this one
        // bounds the TCP connect of a reconnect that tonic makes by itself inside a call.
        .connect_timeout(config.connect_timeout)
        .tcp_nodelay(true);
    let tls = match (&config.tls, uri.starts_with("https://")) {
        (Some(tls), _) => Some(tls.clone()),
        (None, true) => Some(TlsConfig::default()),
        (None, false) => None,
    };
    if let Some(tls) = tls {
        endpoint = endpoint
            .tls_config(tls_config(&tls)?)
            .map_err(|e| TritonError::Tls(error_chain(&e)))?;
    }
    Ok(endpoint)
}

fn tls_config(tls: &TlsConfig) -> Result<ClientTlsConfig, TritonError> {
    let read = |what: &str, p: &Path| {
        std::fs::read(p).map_err(|e| TritonError::Tls(format!("{what} {}: {e}", p.display())))
    };
    let mut c = ClientTlsConfig::new();
    c = match &tls.ca_file {
        Some(p) => c.ca_certificate(Certificate::from_pem(read("ca-file", p)?)),
        None => c.with_native_roots(),
    };
    if let Some(d) = &tls.domain {
        c = c.domain_name(d.clone());
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            c = c.identity(Identity::from_pem(
                read("client certificate", cert)?,
                read("client key", key)?,
            ));
        }
        (None, None) => {}
        _ => {
            return Err(TritonError::Tls(
                "give both a client certificate and its key, or neither".into(),
            ));
        }
    }
    Ok(c)
}

/// Whether a failed call ran out of time: the server's deadline, or tonic's on our side (the
/// `grpc-timeout` value is rounded, so the clock alone may read just short of the deadline).
fn is_deadline(status: &tonic::Status) -> bool {
    use tonic::Code;
    status.code() == Code::DeadlineExceeded
        || (status.code() == Code::Cancelled && status.message() == "Timeout expired")
}

/// Whether a failed call says the connection is gone (drop it and reconnect), rather than the
/// server refusing this one request.
fn is_link_failure(status: &tonic::Status) -> bool {
    use tonic::Code;
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled
    )
}

/// A status as a reason: code, message and the causes under it.
fn describe(status: &tonic::Status) -> String {
    let mut s = format!("{:?}", status.code()).to_lowercase();
    if !status.message().is_empty() {
        let _ = write!(s, ": {}", status.message());
    }
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        let text = e.to_string();
        if !s.contains(&text) {
            let _ = write!(s, ": {text}");
        }
        source = e.source();
    }
    s
}

/// An error and its causes on one line (tonic's transport errors say little at the top).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !s.contains(&text) {
            let _ = write!(s, ": {text}");
        }
        source = e.source();
    }
    s
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
    fn urls_get_a_scheme_and_bad_ones_a_clear_error() {
        let cfg = |url: &str, tls: Option<TlsConfig>| TritonConfig {
            url: url.into(),
            model_name: "m".into(),
            tls,
            ..Default::default()
        };
        assert_eq!(
            endpoint(&cfg("127.0.0.1:8001", None))
                .unwrap()
                .uri()
                .to_string(),
            "http://127.0.0.1:8001/"
        );
        assert_eq!(
            endpoint(&cfg("http://host:1", None))
                .unwrap()
                .uri()
                .to_string(),
            "http://host:1/"
        );
        let e = endpoint(&cfg("grpc://host:1", None))
            .unwrap_err()
            .to_string();
        assert!(e.contains("grpc") && e.contains("host:port"), "{e}");
        let e = endpoint(&cfg("http://host:1", Some(TlsConfig::default())))
            .unwrap_err()
            .to_string();
        assert!(e.contains("https://"), "{e}");
        let e = endpoint(&cfg(
            "host:1",
            Some(TlsConfig {
                ca_file: Some("/nonexistent/ca.pem".into()),
                ..Default::default()
            }),
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let e = endpoint(&cfg(
            "host:1",
            Some(TlsConfig {
                cert_file: Some("/x.pem".into()),
                ..Default::default()
            }),
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("both"), "{e}");
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

    #[test]
    fn requests_carry_their_timeout() {
        let r = with_timeout((), Duration::from_millis(400));
        let header = r.metadata().get("grpc-timeout").expect("grpc-timeout");
        assert!(header.to_str().unwrap().starts_with("400"), "{header:?}");
    }

    #[test]
    fn deadlines_are_told_from_broken_links() {
        let local = tonic::Status::cancelled("Timeout expired");
        let server = tonic::Status::deadline_exceeded("Deadline Exceeded");
        let reset = tonic::Status::cancelled("h2 protocol error: stream reset");
        assert!(is_deadline(&local) && is_deadline(&server));
        assert!(!is_deadline(&reset) && is_link_failure(&reset));
        assert!(!is_deadline(&tonic::Status::unavailable(
            "connection refused"
        )));
    }

    #[test]
    fn backoff_doubles_up_to_a_limit() {
        let link = Link::new(
            &TritonConfig::default(),
            Endpoint::from_static("http://127.0.0.1:1"),
        );
        link.failures.store(1, Ordering::Relaxed);
        assert_eq!(link.backoff(), BACKOFF_MIN);
        link.failures.store(2, Ordering::Relaxed);
        assert_eq!(link.backoff(), BACKOFF_MIN * 2);
        link.failures.store(40, Ordering::Relaxed);
        assert_eq!(link.backoff(), BACKOFF_MAX);
    }
}
