//! TLS of SSL and SASL_SSL listeners (rustls with the aws-lc-rs provider): the server
//! configurations built from `--tls-cert`, `--tls-key` and `--tls-client-ca`, rebuilt when
//! those files change (a certificate rotation needs no restart), and the principal of a
//! client certificate. Also the CLI's client configuration (`client_config`): the brokers'
//! CA (or the system's), and a client certificate for SSL listeners that require one.
//!
//! **Invariant:** a connection is served with one complete, consistent configuration: a
//! new set of files replaces the old one only once it parses and its key matches its
//! certificate; until then the previous one stays in use. A client always verifies the
//! broker's certificate and name; there is no switch to turn that off.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::listener::SecurityProtocol;
use super::principal::Principal;

/// The TLS files of SSL and SASL_SSL listeners (from `config::security`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// A client certificate chain and its private key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The TLS files of a client (none: the system's CA certificates, no client certificate).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTlsFiles {
    pub ca: Option<PathBuf>,
    pub client_cert: Option<CertificateFiles>,
}

/// How often the TLS files are read to notice a rotation.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);
/// Longest TLS handshake; a client that stalls it is disconnected.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest TLS file read (a certificate chain or CA bundle is a few KiB; a bigger file is a
/// mistake, not a certificate).
const FILE_BYTES_MAX: u64 = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is larger than {FILE_BYTES_MAX} bytes")]
    TooLarge { path: String },
    #[error("{path} holds no PEM {what}")]
    Missing { path: String, what: &'static str },
    #[error("parse {path}: {source}")]
    Pem {
        path: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error("build the TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("client CA: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error(
        "no usable CA certificate in the system's store ({details}); give the brokers' CA with --tls-ca"
    )]
    NoSystemRoots { details: String },
}

/// The bytes of the TLS files, as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileContents {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read;
    let display = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| TlsError::Read {
        path: display.clone(),
        source,
    })?;
    let mut bytes = Vec::new();
    file.take(FILE_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| TlsError::Read {
            path: display.clone(),
            source,
        })?;
    if bytes.len() as u64 > FILE_BYTES_MAX {
        return Err(TlsError::TooLarge { path: display });
    }
    Ok(bytes)
}

impl FileContents {
    fn read(files: &TlsFiles) -> Result<Self, TlsError> {
        Ok(FileContents {
            cert: read_file(&files.cert)?,
            key: read_file(&files.key)?,
            client_ca: files.client_ca.as_deref().map(read_file).transpose()?,
        })
    }
}

fn certificates(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: path.display().to_string(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Missing {
            path: path.display().to_string(),
            what: "certificate",
        });
    }
    Ok(certs)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The acceptors of the two TLS listener kinds, built from one set of files.
struct Acceptors {
    contents: FileContents,
    /// SSL: requires a client certificate when a client CA is configured.
    ssl: TlsAcceptor,
    /// SASL_SSL: no client certificate (the principal comes from SASL).
    sasl_ssl: TlsAcceptor,
}

fn private_key(pem: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|source| match source {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Missing {
            path: path.display().to_string(),
            what: "private key",
        },
        source => TlsError::Pem {
            path: path.display().to_string(),
            source,
        },
    })
}

fn build(files: &TlsFiles, contents: FileContents) -> Result<Acceptors, TlsError> {
    let chain = certificates(&contents.cert, &files.cert)?;
    let key = private_key(&contents.key, &files.key)?;
    let builder =
        || ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions();
    let sasl_ssl = builder()?
        .with_no_client_auth()
        .with_single_cert(chain.clone(), key.clone_key())?;
    let ssl = match (&contents.client_ca, &files.client_ca) {
        (Some(pem), Some(path)) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(pem, path)? {
                roots.add(cert)?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).build()?;
            builder()?
                .with_client_cert_verifier(verifier)
                .with_single_cert(chain, key)?
        }
        _ => sasl_ssl.clone(),
    };
    Ok(Acceptors {
        contents,
        ssl: TlsAcceptor::from(Arc::new(ssl)),
        sasl_ssl: TlsAcceptor::from(Arc::new(sasl_ssl)),
    })
}

/// The current TLS configuration of the broker's listeners.
pub struct Tls {
    files: TlsFiles,
    current: RwLock<Arc<Acceptors>>,
}

impl Tls {
    /// Reads and checks the files; a broker with a bad certificate does not start.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let acceptors = build(&files, FileContents::read(&files)?)?;
        Ok(Arc::new(Tls {
            files,
            current: RwLock::new(Arc::new(acceptors)),
        }))
    }

    /// The acceptor for a new connection on a listener of `protocol`.
    pub fn acceptor(&self, protocol: SecurityProtocol) -> TlsAcceptor {
        let current = self
            .current
            .read()
            .expect("the TLS lock is never poisoned")
            .clone();
        match protocol {
            SecurityProtocol::Ssl => current.ssl.clone(),
            _ => current.sasl_ssl.clone(),
        }
    }

    /// Whether SSL listeners ask for (and require) a client certificate.
    pub fn requires_client_certificate(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// Reads the files once; rebuilds the configuration if they changed. `Ok(true)` when a
    /// new configuration is in use.
    fn reload(&self) -> Result<bool, TlsError> {
        let contents = FileContents::read(&self.files)?;
        let unchanged = {
            let current = self.current.read().expect("the TLS lock is never poisoned");
            current.contents == contents
        };
        if unchanged {
            return Ok(false);
        }
        let acceptors = build(&self.files, contents)?;
        *self
            .current
            .write()
            .expect("the TLS lock is never poisoned") = Arc::new(acceptors);
        Ok(true)
    }

    /// Re-reads the files every [`RELOAD_INTERVAL`] until `stop`. A rotation that writes the
    /// key and the certificate one after the other is seen half-done at worst: that set
    /// does not match, is refused and retried on the next pass.
    pub async fn run_reloads(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(RELOAD_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The last failure logged, so a file that stays broken is not logged every second.
        let mut last_error: Option<String> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            let tls = self.clone();
            let result = tokio::task::spawn_blocking(move || tls.reload()).await;
            match result {
                Ok(Ok(true)) => {
                    last_error = None;
                    tracing::info!("TLS certificates reloaded");
                }
                Ok(Ok(false)) => last_error = None,
                Ok(Err(err)) => {
                    let text = err.to_string();
                    if last_error.as_deref() != Some(text.as_str()) {
                        tracing::warn!(
                            "failed to reload TLS files, keeping the previous ones: {text}"
                        );
                        last_error = Some(text);
                    }
                }
                Err(err) => tracing::error!("TLS reload task failed: {err}"),
            }
        }
    }
}

/// The CLI's TLS configuration: trust `files.ca` (PEM), or the system's CA certificates
/// without it; present `files.client_cert` when given. Blocking: it reads files.
pub fn client_config(files: &ClientTlsFiles) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    match &files.ca {
        Some(path) => {
            for cert in certificates(&read_file(path)?, path)? {
                roots.add(cert)?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                let details = if native.errors.is_empty() {
                    "it is empty".to_string()
                } else {
                    native
                        .errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                return Err(TlsError::NoSystemRoots { details });
            }
        }
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match &files.client_cert {
        Some(CertificateFiles { cert, key }) => {
            let chain = certificates(&read_file(cert)?, cert)?;
            let key = private_key(&read_file(key)?, key)?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(config)
}

/// The principal of a verified client certificate: `User:<subject CN>`, or `User:<subject
/// DN>` for a certificate without a common name (Kafka's default principal builder uses the
/// whole DN).
pub fn certificate_principal(cert: &CertificateDer<'_>) -> Option<Principal> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    if let Some(cn) = subject.iter_common_name().next() {
        return Some(Principal::user(cn.as_str().ok()?));
    }
    Some(Principal::user(subject.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(cn: &str) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn files_are_reloaded_only_when_valid_and_changed() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            client_ca: None,
        };
        let (cert, key) = certificate("one");
        std::fs::write(&files.cert, &cert).unwrap();
        std::fs::write(&files.key, &key).unwrap();
        let tls = Tls::load(files.clone()).unwrap();
        assert!(!tls.reload().unwrap(), "unchanged files");
        // Half a rotation: a new key with the old certificate is refused, the old set stays.
        let (new_cert, new_key) = certificate("two");
        std::fs::write(&files.key, &new_key).unwrap();
        assert!(matches!(tls.reload(), Err(TlsError::Config(_))));
        std::fs::write(&files.cert, &new_cert).unwrap();
        assert!(tls.reload().unwrap());
        std::fs::write(&files.cert, "not a certificate").unwrap();
        assert!(matches!(tls.reload(), Err(TlsError::Missing { .. })));
        std::fs::remove_file(&files.key).unwrap();
        assert!(matches!(tls.reload(), Err(TlsError::Read { .. })));
        assert!(Tls::load(files).is_err(), "a broken set does not start");
    }

    #[test]
    fn certificate_principal_is_the_common_name() {
        let (cert, _) = certificate("alice");
        let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        assert_eq!(certificate_principal(&der), Some(Principal::user("alice")));
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let mut params = params;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme");
        let key = rcgen::KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().clone();
        assert_eq!(certificate_principal(&der), Some(Principal::user("O=Acme")));
    }
}
