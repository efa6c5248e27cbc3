// SPDX-License-Identifier: MIT OR Apache-2.0
//! The connection to the inference server and its back-off: one HTTP/2 channel shared by every
//! call, made by a task of its own, dropped when a call says it is broken and re-made by later
//! calls after a doubling wait (while waiting, calls fail at once). Also the in-flight limit, one
//! inference call with its deadline, and the checks at connect (live, ready, model ready,
//! metadata, Triton's model config).
//!
//! It speaks KServe v2 messages; it must not know clips, tensors' meaning or the model's I/O
//! (the scorer's), nor how the URL and TLS became an endpoint (the configuration's).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};

use super::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use super::proto::{
    ModelConfigRequest, ModelInferRequest, ModelInferResponse, ModelMetadataRequest,
    ModelMetadataResponse, ModelReadyRequest, ServerLiveRequest, ServerReadyRequest,
};
use super::{TritonConfig, TritonError, error_chain};
use crate::scorer::ScoreError;

type Client = GrpcInferenceServiceClient<Channel>;

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
pub(super) struct Link {
    pub(super) url: String,
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
    pub(super) fn new(config: &TritonConfig, endpoint: Endpoint) -> Link {
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
    pub(super) async fn infer(
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

    /// The checks and reads of [`super::TritonScorer::connect`].
    pub(super) async fn probe(
        self: &Arc<Self>,
        config: &TritonConfig,
    ) -> Result<Probe, TritonError> {
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

pub(super) struct Probe {
    pub(super) metadata: ModelMetadataResponse,
    /// The server's largest batch for the model; `Some(0)` = no batch dimension.
    pub(super) max_batch: Option<usize>,
}

/// `message` as a request the server (and tonic, on our side) gives up on after `timeout`.
fn with_timeout<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
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

#[cfg(test)]
mod tests {
    use super::*;

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
