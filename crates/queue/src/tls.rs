//! The TLS client of `rediss://` URLs: the system's trust store (`rustls-native-certs`) plus the
//! certificates of an optional PEM file (`REDIS_TLS_CA_FILE`, for private CAs). The server's
//! certificate chain and its name (the URL's host, a DNS name or an IP address) are always
//! verified; there is no switch to turn that off.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use rustls::{ClientConfig, RootCertStore};

/// The client configuration, or why there can be none (a message for the operator).
pub(crate) fn client_config(ca_file: Option<&Path>) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    // Unreadable or unparsable system certificates are skipped, not fatal: one broken file in
    // /etc/ssl/certs must not stop the service (rustls-native-certs reports them as errors).
    let native = rustls_native_certs::load_native_certs();
    let (system, _) = roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "the CA file {} holds no PEM certificate",
                path.display()
            ));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                format!(
                    "the CA file {} holds an unusable certificate: {e}",
                    path.display()
                )
            })?;
        }
    }
    if roots.is_empty() {
        return Err(format!(
            "no CA certificate to verify the server with: the system store has none ({system} \
             loaded; install ca-certificates) and no CA file is set"
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("queue-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let error = client_config(Some(&missing)).unwrap_err();
        assert!(error.contains("cannot read the CA file"), "{error}");
        assert!(error.contains("missing.pem"), "{error}");

        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let error = client_config(Some(&empty)).unwrap_err();
        assert!(error.contains("holds no PEM certificate"), "{error}");

        let garbage = dir.join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let error = client_config(Some(&garbage)).unwrap_err();
        assert!(error.contains("unusable certificate"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
