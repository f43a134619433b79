//! The API server's certificates: a cluster CA and a serving certificate it
//! signs, kept as PEM files in the data dir, and the rustls configuration
//! that serves them with ALPN `h2` and `http/1.1` (kubectl speaks HTTP/2).
//!
//! Layout under the TLS directory (`<data dir>/tls`, mode 0700):
//! `ca.crt` (0644), `ca.key` (0600), `server.crt` (0644), `server.key` (0600).
//! The first start creates all four. Later starts reuse the CA as it is (a
//! CA the operator put there is used too) and re-issue the serving
//! certificate only when it no longer covers every required name, is not
//! signed by the CA, or expires within [`RENEW_BEFORE`].

use std::fs;
use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier as _;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// How long a new CA is valid (as k3s: ten years).
const CA_VALIDITY_DAYS: i64 = 3650;
/// How long a new serving certificate is valid.
const SERVER_VALIDITY_DAYS: i64 = 365;
/// A serving certificate that expires sooner than this is re-issued at start
/// (as k3s does, 90 days).
pub const RENEW_BEFORE: Duration = Duration::from_secs(90 * 24 * 3600);

/// ALPN protocols offered, preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why the certificates could not be loaded, created or served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file or directory could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// A file or directory could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// One half of the CA is there without the other. skiff does not
    /// silently replace a CA, since every kubeconfig and agent trusts it.
    #[error("{} exists but {} does not: restore it, or remove both to create a new CA", present.display(), missing.display())]
    IncompleteCa {
        /// The file that exists.
        present: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{} holds no PEM {what}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was expected: "certificate" or "private key".
        what: &'static str,
    },
    /// A key or certificate could not be generated, parsed or signed.
    #[error("certificate operation failed ({what})")]
    Certificate {
        /// What was being done.
        what: &'static str,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
    /// rustls refused the certificate or key.
    #[error("the serving certificate cannot be used")]
    Config(#[source] rustls::Error),
    /// The CA cannot verify server certificates.
    #[error("the CA cannot verify server certificates")]
    Verifier(#[source] rustls::client::VerifierBuilderError),
}

/// The names the serving certificate must cover: the DNS names and IP
/// addresses clients use to reach the server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerNames {
    /// DNS names, e.g. `localhost` and the host name.
    pub dns: Vec<String>,
    /// IP addresses, e.g. `127.0.0.1`, `::1` and the listen address.
    pub ips: Vec<IpAddr>,
}

impl ServerNames {
    /// `localhost`, `127.0.0.1` and `::1`, plus `listen` when it is a
    /// specific address (not 0.0.0.0 / ::) and `hostname` when it is a valid
    /// DNS name.
    pub fn for_listen(listen: IpAddr, hostname: Option<&str>) -> Self {
        let mut names = ServerNames {
            dns: vec!["localhost".to_owned()],
            ips: vec![
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ],
        };
        if !listen.is_unspecified() && !names.ips.contains(&listen) {
            names.ips.push(listen);
        }
        if let Some(host) = hostname.map(str::trim).filter(|h| !h.is_empty()) {
            let valid = matches!(ServerName::try_from(host), Ok(ServerName::DnsName(_)));
            if valid && !names.dns.iter().any(|d| d.eq_ignore_ascii_case(host)) {
                names.dns.push(host.to_owned());
            }
        }
        names
    }

    /// Every name as a string, DNS names first.
    fn sans(&self) -> Vec<String> {
        self.dns
            .iter()
            .cloned()
            .chain(self.ips.iter().map(IpAddr::to_string))
            .collect()
    }

    /// Every name as rustls' `ServerName`; names rustls cannot parse are
    /// skipped (they were filtered out when the list was made).
    fn server_names(&self) -> Vec<ServerName<'static>> {
        let dns = self
            .dns
            .iter()
            .filter_map(|d| ServerName::try_from(d.clone()).ok());
        let ips = self
            .ips
            .iter()
            .map(|ip| ServerName::IpAddress((*ip).into()));
        dns.chain(ips).collect()
    }
}

/// The files of the cluster PKI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsPaths {
    /// The directory holding them.
    pub dir: PathBuf,
    /// The CA certificate (PEM), the one kubeconfigs embed.
    pub ca_cert: PathBuf,
    /// The CA private key (PEM, 0600).
    pub ca_key: PathBuf,
    /// The serving certificate (PEM).
    pub server_cert: PathBuf,
    /// The serving key (PEM, 0600).
    pub server_key: PathBuf,
}

impl TlsPaths {
    /// The files under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        Self {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            dir,
        }
    }
}

/// What [`Pki::load_or_create`] did with the serving certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServingCert {
    /// The existing one still fits and was kept.
    Reused,
    /// A new one was issued (first start, names changed, or expiring).
    Issued,
}

/// The loaded CA and serving certificate.
pub struct Pki {
    paths: TlsPaths,
    authority: Arc<CertificateAuthority>,
    server_cert_pem: String,
    server_key_pem: String,
    serving_cert: ServingCert,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Pki")
            .field("paths", &self.paths)
            .field("serving_cert", &self.serving_cert)
            .finish_non_exhaustive()
    }
}

impl Pki {
    /// Loads the CA from `paths` (creating it on first start) and makes sure
    /// the serving certificate covers `names`, re-issuing it if not.
    pub fn load_or_create(paths: &TlsPaths, names: &ServerNames) -> Result<Self, TlsError> {
        create_private_dir(&paths.dir)?;
        let (ca_cert_pem, ca_key_pem) = load_or_create_ca(paths)?;
        let ca_der = first_certificate(&paths.ca_cert, &ca_cert_pem)?;
        let authority = Arc::new(CertificateAuthority::new(ca_cert_pem, &ca_key_pem, ca_der)?);

        let existing = read_optional(&paths.server_cert)?.zip(read_optional(&paths.server_key)?);
        let still_fits = existing.as_ref().is_some_and(|(cert_pem, key_pem)| {
            serving_cert_fits(
                &authority.cert_der,
                cert_pem,
                key_pem,
                names,
                SystemTime::now() + RENEW_BEFORE,
            )
        });
        let (server_cert_pem, server_key_pem, serving_cert) = match existing {
            Some((cert, key)) if still_fits => (cert, key, ServingCert::Reused),
            _ => {
                let IssuedCertificate {
                    cert_pem: cert,
                    key_pem: key,
                } = authority.issue_serving_cert("skiff-apiserver", names)?;
                write_file_atomically(&paths.server_key, key.as_bytes(), 0o600)
                    .map_err(|source| write_error(&paths.server_key, source))?;
                write_file_atomically(&paths.server_cert, cert.as_bytes(), 0o644)
                    .map_err(|source| write_error(&paths.server_cert, source))?;
                tracing::info!(path = %paths.server_cert.display(), names = ?names.sans(), "issued the serving certificate");
                (cert, key, ServingCert::Issued)
            }
        };
        Ok(Self {
            paths: paths.clone(),
            authority,
            server_cert_pem,
            server_key_pem,
            serving_cert,
        })
    }

    /// The files.
    pub fn paths(&self) -> &TlsPaths {
        &self.paths
    }

    /// The CA certificate in PEM, as kubeconfigs embed it.
    pub fn ca_cert_pem(&self) -> &str {
        self.authority.cert_pem()
    }

    /// The CA, to issue node serving certificates and to verify nodes.
    pub fn authority(&self) -> &Arc<CertificateAuthority> {
        &self.authority
    }

    /// Whether the serving certificate was kept or issued by this load.
    pub fn serving_cert(&self) -> ServingCert {
        self.serving_cert
    }

    /// SHA-256 of the CA certificate's DER, lowercase hex: what a joining
    /// node checks the server's CA against (the `K10<hash>` part of the node
    /// token, as in k3s).
    pub fn ca_sha256_hex(&self) -> Result<String, TlsError> {
        Ok(hex(ring::digest::digest(
            &ring::digest::SHA256,
            &self.authority.cert_der,
        )
        .as_ref()))
    }

    /// A rustls server configuration serving the certificate with ALPN `h2`
    /// and `http/1.1`, using the ring provider.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let chain = vec![first_certificate(
            &self.paths.server_cert,
            &self.server_cert_pem,
        )?];
        let key = PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes()).map_err(|_| {
            TlsError::Pem {
                path: self.paths.server_key.clone(),
                what: "private key",
            }
        })?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(TlsError::Config)?;
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// The crypto provider of every TLS configuration skiff builds (ring, as in
/// the rest of the workspace), passed explicitly so that no process-wide
/// default has to be installed.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The cluster CA: its certificate and the key that signs serving
/// certificates (the API server's and every node's). Its `Debug` never
/// shows the key.
pub struct CertificateAuthority {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .finish_non_exhaustive()
    }
}

/// A serving certificate and its key, both PEM (the key PKCS#8). Its
/// `Debug` never shows the key.
#[derive(Clone)]
pub struct IssuedCertificate {
    /// The certificate, signed by the cluster CA.
    pub cert_pem: String,
    /// Its private key, PKCS#8.
    pub key_pem: String,
}

impl std::fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    fn new(
        cert_pem: String,
        key_pem: &str,
        cert_der: CertificateDer<'static>,
    ) -> Result<Self, TlsError> {
        let key = KeyPair::from_pem(key_pem).map_err(|source| TlsError::Certificate {
            what: "parse the CA key",
            source,
        })?;
        let issuer =
            Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|source| TlsError::Certificate {
                what: "parse the CA certificate",
                source,
            })?;
        Ok(Self {
            cert_pem,
            cert_der,
            issuer,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a serving certificate for `names` with a fresh key: common
    /// name `common_name`, valid one year, for server authentication.
    pub fn issue_serving_cert(
        &self,
        common_name: &str,
        names: &ServerNames,
    ) -> Result<IssuedCertificate, TlsError> {
        let key = generate_key()?;
        let mut params =
            CertificateParams::new(names.sans()).map_err(|source| TlsError::Certificate {
                what: "build the serving certificate's names",
                source,
            })?;
        params.distinguished_name = distinguished_name(common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, SERVER_VALIDITY_DAYS);
        let cert =
            params
                .signed_by(&key, &self.issuer)
                .map_err(|source| TlsError::Certificate {
                    what: "sign the serving certificate",
                    source,
                })?;
        Ok(IssuedCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A verifier of server certificates that trusts this CA alone: how
    /// the API server verifies the node APIs it connects to.
    pub fn server_verifier(&self) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert_der.clone()).map_err(TlsError::Config)?;
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(TlsError::Verifier)
    }
}

/// A rustls client configuration (ring provider, ALPN `http/1.1`) that
/// verifies servers with `verifier`.
pub fn client_config(verifier: Arc<WebPkiServerVerifier>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_webpki_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Reads the CA, or creates it when neither file exists.
fn load_or_create_ca(paths: &TlsPaths) -> Result<(String, String), TlsError> {
    match (
        read_optional(&paths.ca_cert)?,
        read_optional(&paths.ca_key)?,
    ) {
        (Some(cert), Some(key)) => Ok((cert, key)),
        (Some(_), None) => Err(TlsError::IncompleteCa {
            present: paths.ca_cert.clone(),
            missing: paths.ca_key.clone(),
        }),
        (None, Some(_)) => Err(TlsError::IncompleteCa {
            present: paths.ca_key.clone(),
            missing: paths.ca_cert.clone(),
        }),
        (None, None) => {
            let key = generate_key()?;
            let mut params = CertificateParams::default();
            params.distinguished_name = distinguished_name("skiff-ca");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            set_validity(&mut params, CA_VALIDITY_DAYS);
            let cert = params
                .self_signed(&key)
                .map_err(|source| TlsError::Certificate {
                    what: "self-sign the CA",
                    source,
                })?;
            let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
            // The key first: a crash in between leaves a key without a
            // certificate, which the next start reports instead of using.
            write_file_atomically(&paths.ca_key, key_pem.as_bytes(), 0o600)
                .map_err(|source| write_error(&paths.ca_key, source))?;
            write_file_atomically(&paths.ca_cert, cert_pem.as_bytes(), 0o644)
                .map_err(|source| write_error(&paths.ca_cert, source))?;
            tracing::info!(path = %paths.ca_cert.display(), "created the cluster CA");
            Ok((cert_pem, key_pem))
        }
    }
}

/// Whether an existing serving certificate chains to the CA, covers every
/// name, is still valid at `at`, and its key parses. Anything unreadable
/// counts as "does not fit", so that it gets re-issued.
fn serving_cert_fits(
    ca: &CertificateDer<'static>,
    cert_pem: &str,
    key_pem: &str,
    names: &ServerNames,
    at: SystemTime,
) -> bool {
    let Ok(cert) = CertificateDer::from_pem_slice(cert_pem.as_bytes()) else {
        return false;
    };
    if PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).is_err() {
        return false;
    }
    let mut roots = RootCertStore::empty();
    if roots.add(ca.clone()).is_err() {
        return false;
    }
    let Ok(verifier) =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider()).build()
    else {
        return false;
    };
    let at = UnixTime::since_unix_epoch(
        at.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    );
    names.server_names().iter().all(|name| {
        verifier
            .verify_server_cert(&cert, &[], name, &[], at)
            .is_ok()
    })
}

fn generate_key() -> Result<KeyPair, TlsError> {
    KeyPair::generate().map_err(|source| TlsError::Certificate {
        what: "generate a key",
        source,
    })
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, "skiff");
    name
}

/// Valid from yesterday (tolerating clocks a little behind) to `days` from
/// today.
fn set_validity(params: &mut CertificateParams, days: i64) {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let ymd = |date: jiff::civil::Date| {
        rcgen::date_time_ymd(date.year().into(), date.month() as u8, date.day() as u8)
    };
    let from = today.yesterday().unwrap_or(today);
    let until = today
        .checked_add(jiff::Span::new().days(days))
        .unwrap_or(today);
    params.not_before = ymd(from);
    params.not_after = ymd(until);
}

fn first_certificate(path: &Path, pem: &str) -> Result<CertificateDer<'static>, TlsError> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|_| TlsError::Pem {
        path: path.to_owned(),
        what: "certificate",
    })
}

/// The file's text, or `None` if it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>, TlsError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TlsError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

fn write_error(path: &Path, source: std::io::Error) -> TlsError {
    TlsError::Write {
        path: path.to_owned(),
        source,
    }
}

/// Creates `dir` (and parents) with mode 0700 if it does not exist; an
/// existing directory keeps its mode.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| write_error(dir, source))
}

/// Writes `contents` to `path` with `mode` through a temporary file in the
/// same directory and a rename, so that a crash leaves either the old file
/// or the new one, never half of one. The file is synced before the rename.
pub(crate) fn write_file_atomically(
    path: &Path,
    contents: &[u8],
    mode: u32,
) -> std::io::Result<()> {
    let file_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("path has no file name"))?;
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(file_name);
    temporary_name.push(".tmp");
    let temporary = path.with_file_name(temporary_name);
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temporary)?;
        // `mode` is filtered by the umask at creation; set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(ips: &[&str]) -> ServerNames {
        ServerNames {
            dns: vec!["localhost".into()],
            ips: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn server_names_for_listen_addresses() {
        let check = |listen: &str, host: Option<&str>, expect_dns: &[&str], expect_ips: &[&str]| {
            let actual = ServerNames::for_listen(listen.parse().unwrap(), host);
            assert_eq!(
                actual,
                ServerNames {
                    dns: expect_dns.iter().map(|d| d.to_string()).collect(),
                    ips: expect_ips.iter().map(|ip| ip.parse().unwrap()).collect(),
                },
                "{listen} {host:?}"
            );
        };
        check("127.0.0.1", None, &["localhost"], &["127.0.0.1", "::1"]);
        check(
            "0.0.0.0",
            Some("node-a"),
            &["localhost", "node-a"],
            &["127.0.0.1", "::1"],
        );
        check("::", Some(""), &["localhost"], &["127.0.0.1", "::1"]);
        check(
            "10.1.2.3",
            Some("node-a\n"),
            &["localhost", "node-a"],
            &["127.0.0.1", "::1", "10.1.2.3"],
        );
        check(
            "127.0.0.1",
            Some("LOCALHOST"),
            &["localhost"],
            &["127.0.0.1", "::1"],
        );
        // Not a DNS name: left out rather than failing the certificate.
        check(
            "127.0.0.1",
            Some("bad name!"),
            &["localhost"],
            &["127.0.0.1", "::1"],
        );
    }

    #[test]
    fn first_load_creates_then_reuses_and_reissues_on_new_names() {
        let dir = tempfile::tempdir().unwrap();
        let paths = TlsPaths::new(dir.path().join("tls"));
        let first = Pki::load_or_create(&paths, &names(&["127.0.0.1"])).unwrap();
        assert_eq!(first.serving_cert(), ServingCert::Issued);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&paths.dir), 0o700);
        assert_eq!(mode(&paths.ca_key), 0o600);
        assert_eq!(mode(&paths.server_key), 0o600);
        assert_eq!(mode(&paths.ca_cert), 0o644);
        first.server_config().unwrap();

        let again = Pki::load_or_create(&paths, &names(&["127.0.0.1"])).unwrap();
        assert_eq!(again.serving_cert(), ServingCert::Reused);
        assert_eq!(again.ca_cert_pem(), first.ca_cert_pem());

        // A subset of the names is still covered.
        let subset = ServerNames {
            dns: vec![],
            ips: vec!["127.0.0.1".parse().unwrap()],
        };
        assert_eq!(
            Pki::load_or_create(&paths, &subset).unwrap().serving_cert(),
            ServingCert::Reused
        );

        let moved = Pki::load_or_create(&paths, &names(&["127.0.0.1", "10.9.8.7"])).unwrap();
        assert_eq!(moved.serving_cert(), ServingCert::Issued);
        assert_eq!(moved.ca_cert_pem(), first.ca_cert_pem(), "the CA is kept");
        assert_eq!(
            moved.ca_sha256_hex().unwrap(),
            first.ca_sha256_hex().unwrap()
        );
        assert_eq!(first.ca_sha256_hex().unwrap().len(), 64);
    }

    #[test]
    fn a_serving_cert_from_another_ca_or_expiring_is_reissued() {
        let dir = tempfile::tempdir().unwrap();
        let paths = TlsPaths::new(dir.path());
        let n = names(&["127.0.0.1"]);
        Pki::load_or_create(&paths, &n).unwrap();
        let ca = first_certificate(&paths.ca_cert, &fs::read_to_string(&paths.ca_cert).unwrap())
            .unwrap();
        let cert = fs::read_to_string(&paths.server_cert).unwrap();
        let key = fs::read_to_string(&paths.server_key).unwrap();
        assert!(serving_cert_fits(&ca, &cert, &key, &n, SystemTime::now()));
        let in_two_years = SystemTime::now() + Duration::from_secs(2 * 365 * 24 * 3600);
        assert!(!serving_cert_fits(&ca, &cert, &key, &n, in_two_years));
        assert!(!serving_cert_fits(
            &ca,
            "garbage",
            &key,
            &n,
            SystemTime::now()
        ));

        let other = tempfile::tempdir().unwrap();
        let other_paths = TlsPaths::new(other.path());
        Pki::load_or_create(&other_paths, &n).unwrap();
        let other_ca = first_certificate(
            &other_paths.ca_cert,
            &fs::read_to_string(&other_paths.ca_cert).unwrap(),
        )
        .unwrap();
        assert!(!serving_cert_fits(
            &other_ca,
            &cert,
            &key,
            &n,
            SystemTime::now()
        ));
    }

    #[test]
    fn the_ca_issues_node_serving_certificates_for_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let paths = TlsPaths::new(dir.path());
        let pki = Pki::load_or_create(&paths, &names(&["127.0.0.1"])).unwrap();
        let node = ServerNames {
            dns: vec!["node-a".into(), "node-a.example".into()],
            ips: vec!["127.0.0.2".parse().unwrap(), "fd00::2".parse().unwrap()],
        };
        let issued = pki.authority().issue_serving_cert("node-a", &node).unwrap();
        assert!(issued.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(!format!("{issued:?}").contains("PRIVATE"), "{issued:?}");
        let ca = &pki.authority().cert_der;
        let now = SystemTime::now();
        assert!(serving_cert_fits(
            ca,
            &issued.cert_pem,
            &issued.key_pem,
            &node,
            now
        ));
        let elsewhere = ServerNames {
            dns: vec!["node-b".into()],
            ips: vec![],
        };
        assert!(!serving_cert_fits(
            ca,
            &issued.cert_pem,
            &issued.key_pem,
            &elsewhere,
            now
        ));
        let in_two_years = now + Duration::from_secs(2 * 365 * 24 * 3600);
        assert!(!serving_cert_fits(
            ca,
            &issued.cert_pem,
            &issued.key_pem,
            &node,
            in_two_years
        ));
        // Each issue has its own key.
        let again = pki.authority().issue_serving_cert("node-a", &node).unwrap();
        assert_ne!(again.key_pem, issued.key_pem);
        client_config(pki.authority().server_verifier().unwrap()).unwrap();
    }

    #[test]
    fn half_a_ca_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let paths = TlsPaths::new(dir.path());
        Pki::load_or_create(&paths, &names(&[])).unwrap();
        fs::remove_file(&paths.ca_key).unwrap();
        let error = Pki::load_or_create(&paths, &names(&[])).unwrap_err();
        assert!(matches!(error, TlsError::IncompleteCa { .. }), "{error}");
    }
}
