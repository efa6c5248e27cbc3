// SPDX-License-Identifier: MIT OR Apache-2.0
//! The TLS client set-up shared by `mqtts://` and `https://` webhooks: rustls with ring, the
//! roots from `tls-ca-file` or Debian's bundle.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Used when no CA file is given: Debian's bundle of trusted roots.
pub const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A client configuration that trusts the certificates of `ca_file` (PEM), or the system's.
pub fn client_config(ca_file: Option<&str>) -> Result<Arc<rustls::ClientConfig>, String> {
    let path = ca_file.unwrap_or(SYSTEM_CA_FILE);
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read the CA file {path:?}: {e}"))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("bad certificate in {path:?}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("bad certificate in {path:?}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("no certificates in the CA file {path:?}"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_must_be_readable_and_hold_certificates() {
        let e = client_config(Some("/nonexistent/ca.pem")).unwrap_err();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let d = std::env::temp_dir().join(format!("iguard-tls-empty-{}", std::process::id()));
        std::fs::write(&d, "not a certificate\n").unwrap();
        let e = client_config(d.to_str()).unwrap_err();
        assert!(e.contains("no certificates"), "{e}");
        std::fs::remove_file(d).unwrap();
    }
}
