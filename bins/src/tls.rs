//! squalld's TLS server configuration from nsqd's flags (spec §9.8): `--tls-cert`, `--tls-key`,
//! `--tls-client-auth-policy`, `--tls-root-ca-file`, `--tls-min-version`. One `ServerConfig` is
//! built at start and shared by every shard (the NSQ TCP upgrade and the HTTPS listener).
//!
//! Also the client side, for squall-to-file's `tls_v1` ([`ClientTls`]): go-nsq's `tls_*` config
//! options.
//!
//! rustls speaks TLS 1.2 and 1.3 only: `tls1.0` and `tls1.1` minimums allow both of those.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};

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
            // Without --tls-root-ca-file, nsqd (Go) verifies clients against the system's CAs.
            let mut roots = RootCertStore::empty();
            if files.root_ca.is_empty() {
                roots = system_roots();
            } else {
                for cert in CertificateDer::pem_file_iter(files.root_ca).map_err(|e| fail(&e))? {
                    roots.add(cert.map_err(|e| fail(&e))?).map_err(|e| fail(&e))?;
                }
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

/// Where Go's `crypto/x509` looks for the system's CA bundle on Linux (`$SSL_CERT_FILE` first),
/// which is what go-nsq verifies nsqd against without `tls_root_ca_file`.
const SYSTEM_CA_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// go-nsq's `tls_*` consumer options (its `tlsConfig` handler), read in order; each `set` error
/// is what go-nsq's `Config.Set` would return, and leaves the option as it was.
#[derive(Default)]
pub struct ClientTls {
    /// go-nsq makes its own `tls.Config` on the first `tls_*` option, and that one stops at
    /// TLS 1.2; without any, Go's defaults (1.2 and 1.3) apply.
    configured: bool,
    insecure_skip_verify: bool,
    /// `tls_root_ca_file`; the system's CAs when absent.
    roots: Option<RootCertStore>,
    cert_file: String,
    key_file: String,
    client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

impl ClientTls {
    /// One option; `value` is `None` for a bare key (Go's `true`, which no `tls_*` string
    /// option takes).
    pub fn set(&mut self, key: &str, value: Option<&str>) -> Result<(), String> {
        self.configured = true;
        if key == "tls_insecure_skip_verify" {
            self.insecure_skip_verify = match value {
                None => true,
                Some(v) => crate::config::go_values::parse_go_bool(v).map_err(|_| {
                    format!("failed to coerce option {key} ({v}) - strconv.ParseBool: parsing {v:?}: invalid syntax")
                })?,
            };
            return Ok(());
        }
        let Some(value) = value else {
            return Err("ERROR: true is not a string".into());
        };
        match key {
            "tls_cert" | "tls_key" => {
                if key == "tls_cert" {
                    self.cert_file = value.to_string();
                } else {
                    self.key_file = value.to_string();
                }
                if !self.cert_file.is_empty() && !self.key_file.is_empty() && self.client_cert.is_none() {
                    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert_file)
                        .and_then(|it| it.collect::<Result<_, _>>())
                        .map_err(|e| format!("{}: {e}", self.cert_file))?;
                    if certs.is_empty() {
                        return Err(format!("{}: no certificate", self.cert_file));
                    }
                    let key = PrivateKeyDer::from_pem_file(&self.key_file)
                        .map_err(|e| format!("{}: {e}", self.key_file))?;
                    self.client_cert = Some((certs, key));
                }
            }
            "tls_root_ca_file" => {
                let mut roots = RootCertStore::empty();
                let certs = CertificateDer::pem_file_iter(value)
                    .map_err(|e| format!("ERROR: failed to read custom Certificate Authority file {e}"))?;
                for cert in certs.flatten() {
                    let _ = roots.add(cert);
                }
                if roots.is_empty() {
                    return Err(
                        "ERROR: failed to append certificates from Certificate Authority file".into(),
                    );
                }
                self.roots = Some(roots);
            }
            "tls_min_version" => match value {
                // All of these mean TLS 1.2 here: the most go-nsq's config allows, the least
                // rustls speaks.
                "ssl3.0" | "tls1.0" | "tls1.1" | "tls1.2" => {}
                _ => return Err(format!("ERROR: {value} is not a tls version")),
            },
            _ => return Err(format!("unknown option {key}")),
        }
        Ok(())
    }

    /// The rustls client configuration for `tls_v1`.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = if self.configured {
            &[&rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| e.to_string())?;
        let builder = if self.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServerCert {
                    algorithms: provider.signature_verification_algorithms,
                }))
        } else {
            let roots = self.roots.clone().unwrap_or_else(system_roots);
            builder.with_root_certificates(roots)
        };
        let config = match &self.client_cert {
            None => builder.with_no_client_auth(),
            Some((certs, key)) => builder
                .with_client_auth_cert(certs.clone(), key.clone_key())
                .map_err(|e| format!("tls_cert/tls_key: {e}"))?,
        };
        Ok(Arc::new(config))
    }
}

/// The name a connection to `addr` (`host:port`) verifies, as go-nsq sets `ServerName` to the
/// host part.
pub fn server_name(addr: &str) -> Result<ServerName<'static>, String> {
    let host = match addr.rsplit_once(':') {
        Some((host, _port)) => host,
        None => return Err(format!("address {addr}: missing port in address")),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|e| format!("{host}: {e}"))
}

fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let from_env = std::env::var("SSL_CERT_FILE").ok().filter(|f| !f.is_empty());
    let files: Vec<String> = match from_env {
        Some(f) => vec![f],
        None => SYSTEM_CA_FILES.iter().map(|f| f.to_string()).collect(),
    };
    for file in files {
        if let Ok(certs) = CertificateDer::pem_file_iter(&file) {
            for cert in certs.flatten() {
                let _ = roots.add(cert);
            }
            if !roots.is_empty() {
                break;
            }
        }
    }
    roots
}

/// `tls_insecure_skip_verify`: any server certificate, as Go's `InsecureSkipVerify` (the
/// handshake signature is still checked against it).
#[derive(Debug)]
struct AnyServerCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_are_the_host_part() {
        assert!(matches!(
            server_name("127.0.0.1:4150"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(server_name("[::1]:4150"), Ok(ServerName::IpAddress(_))));
        assert!(matches!(
            server_name("nsqd.example.com:4150"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(server_name("nsqd").is_err());
    }

    #[test]
    fn client_options_follow_go_nsq() {
        let mut t = ClientTls::default();
        assert!(t.set("tls_min_version", Some("tls1.3")).is_err());
        assert!(t.set("tls_root_ca_file", None).is_err());
        assert!(t.set("tls_root_ca_file", Some("/nonexistent")).is_err());
        t.set("tls_insecure_skip_verify", None).unwrap();
        assert!(t.insecure_skip_verify && t.configured);
        assert!(t.client_config().is_ok());
        assert!(ClientTls::default().client_config().is_ok());
    }
}
