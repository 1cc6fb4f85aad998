//! Whom the client's HTTPS trusts: the system's certificate authorities, extra CA files
//! (`--ca`), and server certificates pinned by their SHA-256 fingerprint
//! (`--server-fingerprint`, what `ardoise serve` prints for a self-signed certificate).
//!
//! One trust per process: [`set`] once at start (the studio, the load generator, tests);
//! [`agent`] is the HTTP agent every WHIP/WHEP call uses, [`client_config`] the rustls
//! configuration of the class-events WebSocket.

use anyhow::{Context, Result, bail};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Extra CAs and pinned fingerprints, beyond the system's authorities.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    extra_roots: Vec<CertificateDer<'static>>,
    pins: Vec<[u8; 32]>,
}

impl Trust {
    /// Also trust the CA certificates of a PEM file.
    pub fn with_ca_file(mut self, path: &Path) -> Result<Self> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .with_context(|| format!("CA file {}", path.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("CA file {}", path.display()))?;
        if certs.is_empty() {
            bail!("CA file {}: no certificate", path.display());
        }
        self.extra_roots.extend(certs);
        Ok(self)
    }

    /// Also trust the server certificate whose SHA-256 is `fingerprint` (`AB:CD:…` or hex).
    pub fn with_fingerprint(mut self, fingerprint: &str) -> Result<Self> {
        let hex: String = fingerprint.chars().filter(|c| *c != ':').collect();
        if hex.len() != 64 {
            bail!("a SHA-256 fingerprint is 32 bytes in hex (AB:CD:…): '{fingerprint}'");
        }
        let mut pin = [0u8; 32];
        for (i, b) in pin.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).with_context(|| format!("not hex: '{fingerprint}'"))?;
        }
        self.pins.push(pin);
        Ok(self)
    }

    /// The rustls configuration of this trust.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(c);
        }
        for c in &self.extra_roots {
            let _ = roots.add(c.clone());
        }
        let webpki = (!roots.is_empty()).then(|| {
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().ok()
        });
        let verifier =
            PinningVerifier { pins: self.pins.clone(), webpki: webpki.flatten(), provider: provider.clone() };
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the default provider supports the default versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// Accepts a pinned certificate, else what the authorities vouch for.
#[derive(Debug)]
struct PinningVerifier {
    pins: Vec<[u8; 32]>,
    webpki: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, end_entity.as_ref());
        if self.pins.iter().any(|p| p.as_slice() == digest.as_ref()) {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.webpki {
            Some(v) => v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now),
            None => Err(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

static TRUST: RwLock<Option<(Trust, Arc<rustls::ClientConfig>, ureq::Agent)>> = RwLock::new(None);

fn build(trust: Trust) -> (Trust, Arc<rustls::ClientConfig>, ureq::Agent) {
    let config = trust.client_config();
    let agent = ureq::AgentBuilder::new()
        .tls_config(config.clone())
        .timeout_connect(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build();
    (trust, config, agent)
}

/// Set this process's trust (replacing the previous one).
pub fn set(trust: Trust) {
    *TRUST.write().unwrap_or_else(|e| e.into_inner()) = Some(build(trust));
}

/// Add a pinned fingerprint to this process's trust (tests talking to several servers).
pub fn pin(fingerprint: &str) -> Result<()> {
    let current = TRUST.read().unwrap_or_else(|e| e.into_inner()).as_ref().map(|t| t.0.clone()).unwrap_or_default();
    set(current.with_fingerprint(fingerprint)?);
    Ok(())
}

/// The HTTP agent of this process (the system's authorities only, until [`set`]).
pub fn agent() -> ureq::Agent {
    if let Some((_, _, a)) = TRUST.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        return a.clone();
    }
    let mut t = TRUST.write().unwrap_or_else(|e| e.into_inner());
    t.get_or_insert_with(|| build(Trust::default())).2.clone()
}

/// The rustls configuration of this process (for the class-events WebSocket).
pub fn client_config() -> Arc<rustls::ClientConfig> {
    if let Some((_, c, _)) = TRUST.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        return c.clone();
    }
    let mut t = TRUST.write().unwrap_or_else(|e| e.into_inner());
    t.get_or_insert_with(|| build(Trust::default())).1.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let hex = "AB".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(
            Trust::default().with_fingerprint(&hex).unwrap().pins,
            Trust::default().with_fingerprint(&colons).unwrap().pins
        );
        assert!(Trust::default().with_fingerprint("AB:CD").is_err());
        assert!(Trust::default().with_fingerprint(&"ZZ".repeat(32)).is_err());
    }
}
