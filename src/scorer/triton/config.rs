// SPDX-License-Identifier: MIT OR Apache-2.0
//! The remote scorer's configuration: the server's URL, TLS, timeouts and limits
//! ([`TritonConfig`], [`TlsConfig`]), and the endpoint (scheme, TLS, connect timeout) made of them.
//!
//! It checks and builds; it must not know a live connection, the protocol's messages or clips.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use super::{TritonError, error_chain};
use crate::scorer::model_io::ModelIo;

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

/// The endpoint for `config.url`: scheme, TLS, connect timeout.
pub(super) fn endpoint(config: &TritonConfig) -> Result<Endpoint, TritonError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
