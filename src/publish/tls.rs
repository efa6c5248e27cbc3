// SPDX-License-Identifier: MIT OR Apache-2.0
//! The TLS client set-up shared by `mqtts://` and `https://` webhooks: rustls with ring, the
//! roots from `tls-ca-file` or the system's bundle.
//!
//! A `tls-ca-file` is the user's own: a certificate in it that cannot be read is an error that
//! names it. The system's bundle is not: one unparsable certificate in it (a distribution's
//! odd entry) is skipped, and the others are trusted.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Where distributions keep the system's bundle of trusted roots, tried in order (after
/// `SSL_CERT_FILE` when it is set).
pub const SYSTEM_CA_FILES: &[&str] = &[
    // Debian, Ubuntu, Arch, Gentoo, Alpine with ca-certificates
    "/etc/ssl/certs/ca-certificates.crt",
    // Fedora, RHEL/CentOS 7 and later
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    // Fedora and RHEL 6
    "/etc/pki/tls/certs/ca-bundle.crt",
    // openSUSE
    "/etc/ssl/ca-bundle.pem",
    // Alpine, the BSDs
    "/etc/ssl/cert.pem",
];

/// The roots of one PEM file, and how many of its certificates were skipped. `strict`: an
/// unreadable certificate is an error instead.
pub fn load_roots(path: &str, strict: bool) -> Result<(rustls::RootCertStore, usize), String> {
    let mut roots = rustls::RootCertStore::empty();
    let mut skipped = 0;
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read the CA file {path:?}: {e}"))?;
    for (i, cert) in certs.enumerate() {
        let added = match cert {
            Err(rustls::pki_types::pem::Error::Io(e)) => {
                return Err(format!("cannot read the CA file {path:?}: {e}"));
            }
            Err(e) => Err(e.to_string()),
            Ok(cert) => roots.add(cert).map_err(|e| e.to_string()),
        };
        if let Err(e) = added {
            if strict {
                return Err(format!(
                    "certificate {} in {path:?} is not valid: {e}",
                    i + 1
                ));
            }
            skipped += 1;
        }
    }
    if roots.is_empty() {
        return Err(if skipped > 0 {
            format!("no usable certificates in the CA file {path:?} ({skipped} unparsable)")
        } else {
            format!("no certificates in the CA file {path:?}")
        });
    }
    Ok((roots, skipped))
}

/// The system's roots: `from_env` (`SSL_CERT_FILE`), or the first of `candidates` that
/// exists.
fn system_roots(
    from_env: Option<&str>,
    candidates: &[&str],
) -> Result<rustls::RootCertStore, String> {
    let path = match from_env.filter(|p| !p.is_empty()) {
        Some(p) => p,
        None => candidates
            .iter()
            .copied()
            .find(|p| std::path::Path::new(p).exists())
            .ok_or_else(|| {
                format!(
                    "no system bundle of trusted CAs (looked for {}): set tls-ca-file",
                    candidates.join(", ")
                )
            })?,
    };
    load_roots(path, false).map(|(roots, _)| roots)
}

/// A client configuration that trusts the certificates of `ca_file` (PEM), or the system's.
pub fn client_config(ca_file: Option<&str>) -> Result<Arc<rustls::ClientConfig>, String> {
    let from_env = std::env::var("SSL_CERT_FILE").ok();
    client_config_from(ca_file, from_env.as_deref(), SYSTEM_CA_FILES)
}

/// [`client_config`], with the system's bundle at `from_env`, or looked for in `system`.
pub fn client_config_from(
    ca_file: Option<&str>,
    from_env: Option<&str>,
    system: &[&str],
) -> Result<Arc<rustls::ClientConfig>, String> {
    let roots = match ca_file {
        Some(path) => load_roots(path, true)?.0,
        None => system_roots(from_env, system)?,
    };
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

    fn tmp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("iguard-tls-{name}-{}", std::process::id()))
    }

    #[test]
    fn a_ca_file_must_be_readable_and_hold_certificates() {
        let e = client_config(Some("/nonexistent/ca.pem")).unwrap_err();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let d = tmp("empty");
        std::fs::write(&d, "not a certificate\n").unwrap();
        let e = client_config(d.to_str()).unwrap_err();
        assert!(e.contains("no certificates"), "{e}");
        std::fs::remove_file(d).unwrap();
    }

    /// A self-signed CA certificate made by openssl, as PEM.
    fn real_certificate(dir: &std::path::Path) -> String {
        let (key, cert) = (dir.join("k.pem"), dir.join("c.pem"));
        let ok = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj"])
            .args(["/CN=iguard test CA", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl runs")
            .success();
        assert!(ok, "openssl made no certificate");
        std::fs::read_to_string(cert).unwrap()
    }

    #[test]
    fn an_unparsable_certificate_in_the_system_bundle_is_skipped() {
        let dir = tmp("bundle");
        std::fs::create_dir_all(&dir).unwrap();
        let good = real_certificate(&dir);
        // A section that is not base64, and one whose bytes are not a certificate.
        let bundle = format!(
            "-----BEGIN CERTIFICATE-----\n%%% not base64 %%%\n-----END CERTIFICATE-----\n\
             {good}-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n"
        );
        let path = dir.join("bundle.pem");
        std::fs::write(&path, bundle).unwrap();
        let p = path.to_str().unwrap();
        let (roots, skipped) = load_roots(p, false).unwrap();
        assert_eq!((roots.len(), skipped), (1, 2));
        // As the system's bundle: TLS works with the good one.
        client_config_from(None, None, &["/nonexistent/bundle.crt", p]).unwrap();
        client_config_from(None, Some(p), &[]).unwrap();
        // As the user's tls-ca-file: the bad certificate is named.
        let e = client_config(Some(p)).unwrap_err();
        assert!(e.contains("certificate 1") && e.contains(p), "{e}");
        let e = client_config_from(None, None, &["/nonexistent/a.crt", "/nonexistent/b.pem"])
            .unwrap_err();
        assert!(
            e.contains("/nonexistent/b.pem") && e.contains("tls-ca-file"),
            "{e}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
