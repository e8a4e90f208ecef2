//! squalld's TLS server configuration from nsqd's flags (spec §9.8): `--tls-cert`, `--tls-key`,
//! `--tls-client-auth-policy`, `--tls-root-ca-file`, `--tls-min-version`. One `ServerConfig` is
//! built at start and shared by every shard (the NSQ TCP upgrade and the HTTPS listener).
//!
//! rustls speaks TLS 1.2 and 1.3 only: `tls1.0` and `tls1.1` minimums allow both of those.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};

use crate::config::TlsMinVersion;

/// Which client certificates the server asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    /// `require`: any certificate (its signature over the handshake is still checked).
    Require,
    /// `require-verify`: a certificate chaining to `--tls-root-ca-file`.
    RequireVerify,
}

impl ClientAuth {
    /// nsqd's reading of `--tls-client-auth-policy`: anything else asks for no certificate.
    pub fn from_policy(policy: &str) -> ClientAuth {
        match policy {
            "require" => ClientAuth::Require,
            "require-verify" => ClientAuth::RequireVerify,
            _ => ClientAuth::None,
        }
    }
}

pub struct TlsFiles<'a> {
    pub cert: &'a str,
    pub key: &'a str,
    pub root_ca: &'a str,
    pub client_auth: ClientAuth,
    pub min_version: TlsMinVersion,
}

/// Builds the server configuration; errors read as nsqd's `failed to build TLS config - ...`.
pub fn server_config(files: &TlsFiles<'_>) -> Result<Arc<ServerConfig>, String> {
    let fail = |e: &dyn std::fmt::Display| format!("failed to build TLS config - {e}");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(files.cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| fail(&format!("{}: {e}", files.cert)))?;
    let key = PrivateKeyDer::from_pem_file(files.key).map_err(|e| fail(&format!("{}: {e}", files.key)))?;
    // Go's preference, which nsqd's clients see: AES-128-GCM first, whatever the client's order.
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|s| {
        let name = format!("{:?}", s.suite());
        (!name.contains("AES_128_GCM"), !name.contains("AES_256_GCM"))
    });
    let provider = Arc::new(provider);
    let versions: &[&rustls::SupportedProtocolVersion] = match files.min_version {
        TlsMinVersion::Tls13 => &[&rustls::version::TLS13],
        _ => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| fail(&e))?;
    let builder = match files.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Require => builder.with_client_cert_verifier(Arc::new(AnyClientCert {
            algorithms: provider.signature_verification_algorithms,
        })),
        ClientAuth::RequireVerify => {
            if files.root_ca.is_empty() {
                return Err(fail(
                    &"--tls-client-auth-policy=require-verify needs --tls-root-ca-file",
                ));
            }
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(files.root_ca).map_err(|e| fail(&e))? {
                roots.add(cert.map_err(|e| fail(&e))?).map_err(|e| fail(&e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| fail(&e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| fail(&e))?;
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// `require`: a client must present a certificate, any certificate.
#[derive(Debug)]
struct AnyClientCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
