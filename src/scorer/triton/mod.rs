// SPDX-License-Identifier: MIT OR Apache-2.0
//! The remote scorer: a Triton-compatible inference server over the KServe v2 (Open Inference
//! Protocol) gRPC API, the one DeepStream's `nvinferserver` speaks.
//!
//! Clips are laid out and normalised by the same [`super::model_io`] code as the ONNX scorer's,
//! sent as raw FP32 bytes, and the server's logits become scores there too: a model served
//! remotely scores the same clips the same way as when it runs locally.
//!
//! Concurrency: the scorer owns a small tokio runtime (two named threads) that drives one HTTP/2
//! connection. Each [`super::Scorer::score`] call normalises its clips on the calling (pool worker)
//! thread, spawns the RPC as a task and waits for it on a plain channel, so many workers have
//! requests in flight at once over the one connection (at most `in_flight`), and the call never
//! needs to be inside or outside any particular async context. Cancelling aborts the task, which
//! drops the RPC (HTTP/2 resets the stream). A failed connection is dropped and re-made with
//! back-off by later calls; while backing off, calls fail at once instead of waiting.
//!
//! One deadline per call, in two places: the pool's cancel at `worker-timeout` aborts the task,
//! and the request's `grpc-timeout` tells the server when the answer stops being useful (tonic
//! also ends the call there on our side, so a scorer used without a pool still returns).
//!
//! The rooms, each of which knows only those above it:
//! - [`TritonError`] and the error helpers (here);
//! - `config`: what the scorer is told (URL, TLS, timeouts, limits) and the endpoint made of it;
//! - `link`: the connection and its back-off, the in-flight limit, one call with its deadline,
//!   and the checks at connect;
//! - `scorer`: [`TritonScorer`], which lays clips out, runs calls on its runtime and reads
//!   scores from the answers.
//!
//! This file must not know how any of them works: it names them and the errors they share.

use std::fmt::Write as _;

mod config;
mod link;
mod scorer;

#[allow(clippy::all, clippy::pedantic)]
mod proto {
    tonic::include_proto!("inference");
}

pub use config::{TlsConfig, TritonConfig};
pub use scorer::TritonScorer;

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
