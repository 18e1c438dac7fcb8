//! The server's certificate: read from `tls_cert_file` / `tls_key_file` (PEM; RSA, ECDSA or
//! Ed25519 keys in PKCS#8, PKCS#1 or SEC1 form) into a rustls configuration every shard takes
//! for each new connection, and read again on reload (SIGHUP) without a restart. A reload that
//! fails keeps the certificate being served.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use super::KernelSupport;
use thiserror::Error;

/// Why the certificate files could not be used.
#[derive(Debug, Error)]
pub enum TlsConfigError {
    /// A file could not be read or holds no PEM object of the expected kind.
    #[error("{key} = {path}: {reason}")]
    File {
        /// The configuration key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the pair (the key does not match the certificate, an unsupported key).
    #[error("tls_key_file = {path}: {reason}")]
    Pair {
        /// The key file.
        path: PathBuf,
        /// rustls's reason.
        reason: String,
    },
}

/// The current TLS configuration and where it comes from.
#[derive(Debug)]
pub(crate) struct CertStore {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
    /// What the kernel takes sessions with (configurations allow secret extraction if any).
    kernel: KernelSupport,
}

impl CertStore {
    /// Reads the certificate chain and key; the error names the key of the file at fault.
    /// Sessions go to the kernel after their handshake where `kernel` takes their cipher.
    pub(crate) fn load(
        cert_file: &Path,
        key_file: &Path,
        kernel: KernelSupport,
    ) -> Result<CertStore, TlsConfigError> {
        let config = server_config(cert_file, key_file, kernel)?;
        Ok(CertStore {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            current: RwLock::new(config),
            kernel,
        })
    }

    /// What the kernel takes sessions with.
    pub(crate) fn kernel(&self) -> KernelSupport {
        self.kernel
    }

    /// The configuration for a new connection (taken once per accepted connection).
    pub(crate) fn current(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the files again; new connections get the new certificate, open ones keep theirs.
    /// On error the old certificate stays.
    pub(crate) fn reload(&self) -> Result<(), TlsConfigError> {
        let config = server_config(&self.cert_file, &self.key_file, self.kernel)?;
        match self.current.write() {
            Ok(mut c) => *c = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
        Ok(())
    }
}

fn file_error(key: &'static str, path: &Path, reason: impl ToString) -> TlsConfigError {
    TlsConfigError::File {
        key,
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// A rustls server configuration (ring provider, TLS 1.2 and 1.3, ALPN `http/1.1`) for the
/// files' certificate chain and key; secrets can be taken out for the kernel where it takes any.
fn server_config(
    cert_file: &Path,
    key_file: &Path,
    kernel: KernelSupport,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| file_error("tls_cert_file", cert_file, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error("tls_cert_file", cert_file, e))?;
    if certs.is_empty() {
        return Err(file_error(
            "tls_cert_file",
            cert_file,
            "no CERTIFICATE in the file",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
        file_error(
            "tls_key_file",
            key_file,
            format!("{e} (expected a PEM private key: PKCS#8, RSA or EC)"),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsConfigError::Pair {
            path: key_file.to_path_buf(),
            reason: e.to_string(),
        })?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsConfigError::Pair {
            path: key_file.to_path_buf(),
            reason: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.enable_secret_extraction = kernel.any();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls")
            .join(name)
    }

    #[test]
    fn rsa_and_ecdsa_pairs_load() {
        for kind in ["rsa", "ecdsa"] {
            let cert = fixture(&format!("server-{kind}.pem"));
            let key = fixture(&format!("server-{kind}.key"));
            CertStore::load(&cert, &key, KernelSupport::NONE)
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
        }
    }

    #[test]
    fn errors_name_the_key_of_the_file_at_fault() {
        let cert = fixture("server-rsa.pem");
        let key = fixture("server-rsa.key");
        let missing = fixture("nope.pem");
        let e = CertStore::load(&missing, &key, KernelSupport::NONE)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("tls_cert_file = "), "{e}");
        let e = CertStore::load(&cert, &cert, KernelSupport::NONE)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("tls_key_file = "), "{e}");
        let e = CertStore::load(&key, &key, KernelSupport::NONE)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tls_cert_file") && e.contains("no CERTIFICATE"),
            "{e}"
        );
        let other_key = fixture("server-ecdsa.key");
        let e = CertStore::load(&cert, &other_key, KernelSupport::NONE)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("tls_key_file = "), "a mismatched pair: {e}");
    }
}
