//! TLS of the HTTP side: the server's certificate (PEM files, or a self-signed one kept in
//! the data directory), the rustls configuration (HTTP/2 and HTTP/1.1 by ALPN), and the
//! fingerprints clients pin.
//!
//! Rules:
//! - a self-signed certificate is made once, for `localhost`, the listen address and
//!   `http.public_names`, and kept in `<data dir>/tls/` (key mode 0600); it is made again
//!   only when those names change;
//! - the fingerprint printed is the SHA-256 of the certificate (what `ardoise studio
//!   --server-fingerprint` pins), and the SPKI hash is the base64 SHA-256 of its public key
//!   (what Chromium's `--ignore-certificate-errors-spki-list` takes).

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// Why TLS could not be set up.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A certificate or key is not usable.
    #[error("{0}")]
    Invalid(String),
}

/// The server's certificate chain and key, with their fingerprints.
pub struct TlsIdentity {
    /// The chain, leaf first.
    pub certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// SHA-256 of the leaf certificate, `AB:CD:…`.
    pub fingerprint: String,
    /// base64 SHA-256 of the leaf's SubjectPublicKeyInfo.
    pub spki_hash: String,
    /// Made by the server itself.
    pub self_signed: bool,
    /// The PEM files it came from (certificate, key): a TURN server beside Ardoise uses them.
    pub files: (PathBuf, PathBuf),
}

impl TlsIdentity {
    /// A chain and key from PEM files.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(|e| TlsError::Invalid(format!("{}: {e}", cert.display())))?
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::Invalid(format!("{}: {e}", cert.display())))?;
        if certs.is_empty() {
            return Err(TlsError::Invalid(format!("{}: no certificate in this PEM file", cert.display())));
        }
        std::fs::metadata(key).map_err(|source| TlsError::Io { path: key.to_owned(), source })?;
        let key_der = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| TlsError::Invalid(format!("{}: no usable private key: {e}", key.display())))?;
        Self::new(certs, key_der, false, (cert.to_owned(), key.to_owned()))
    }

    /// The self-signed certificate of data directory `dir` for `names`, made if missing or
    /// made for other names.
    pub fn self_signed(dir: &Path, names: &[String]) -> Result<Self, TlsError> {
        let tls = dir.join("tls");
        let (cert_path, key_path, names_path) =
            (tls.join("self-signed.crt"), tls.join("self-signed.key"), tls.join("self-signed.names"));
        let wanted = names.join("\n");
        if std::fs::read_to_string(&names_path).is_ok_and(|n| n == wanted)
            && let Ok(id) = Self::from_files(&cert_path, &key_path)
        {
            return Ok(Self { self_signed: true, ..id });
        }
        let made = rcgen::generate_simple_self_signed(names.to_vec())
            .map_err(|e| TlsError::Invalid(format!("cannot make a self-signed certificate: {e}")))?;
        std::fs::create_dir_all(&tls).map_err(|source| TlsError::Io { path: tls.clone(), source })?;
        write_private(&key_path, made.signing_key.serialize_pem().as_bytes())?;
        std::fs::write(&cert_path, made.cert.pem())
            .map_err(|source| TlsError::Io { path: cert_path.clone(), source })?;
        std::fs::write(&names_path, wanted).map_err(|source| TlsError::Io { path: names_path.clone(), source })?;
        let key = PrivateKeyDer::from_pem_slice(made.signing_key.serialize_pem().as_bytes())
            .map_err(|e| TlsError::Invalid(format!("self-signed key: {e}")))?;
        Self::new(vec![made.cert.der().clone()], key, true, (cert_path, key_path))
    }

    fn new(
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        self_signed: bool,
        files: (PathBuf, PathBuf),
    ) -> Result<Self, TlsError> {
        let fingerprint = fingerprint(&certs[0]);
        let spki_hash = spki_hash(&certs[0])?;
        Ok(TlsIdentity { certs, key, fingerprint, spki_hash, self_signed, files })
    }

    /// The rustls configuration of the listener: HTTP/2 then HTTP/1.1 by ALPN.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Invalid(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(self.certs.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Invalid(format!("the key does not match the certificate: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// SHA-256 of a certificate, as `AB:CD:…`.
pub fn fingerprint(cert: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert);
    d.as_ref().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// base64 SHA-256 of a certificate's SubjectPublicKeyInfo.
pub fn spki_hash(cert: &[u8]) -> Result<String, TlsError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| TlsError::Invalid(format!("cannot parse the certificate: {e}")))?;
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, parsed.tbs_certificate.subject_pki.raw);
    Ok(base64::engine::general_purpose::STANDARD.encode(d.as_ref()))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let err = |source| TlsError::Io { path: path.to_owned(), source };
    opts.open(path).and_then(|mut f| f.write_all(bytes)).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_is_made_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("ardoise-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let a = TlsIdentity::self_signed(&dir, &names).unwrap();
        let b = TlsIdentity::self_signed(&dir, &names).unwrap();
        assert_eq!(a.fingerprint, b.fingerprint, "kept");
        assert_eq!(a.fingerprint.len(), 32 * 3 - 1);
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(&a.spki_hash).unwrap().len(), 32);
        assert!(a.server_config().is_ok());
        let c = TlsIdentity::self_signed(&dir, &["ardoise.example".to_owned()]).unwrap();
        assert_ne!(a.fingerprint, c.fingerprint, "made again for other names");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("tls/self-signed.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let files =
            TlsIdentity::from_files(&dir.join("tls/self-signed.crt"), &dir.join("tls/self-signed.key")).unwrap();
        assert_eq!(files.fingerprint, c.fingerprint);
        assert!(TlsIdentity::from_files(&dir.join("tls/self-signed.names"), &dir.join("tls/self-signed.key")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
