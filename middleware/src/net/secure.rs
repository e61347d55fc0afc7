//! The transport's security: every connection is secured before a byte of the protocol crosses
//! it, by one of two standard protocols. No cryptographic construction is written here.
//!
//! * **Mutual TLS 1.3** ([`Security::Tls`], rustls with the ring provider): the recommended mode
//!   between machines. Every node has a certificate from the cluster CA naming its id as the DNS
//!   subject-alternative name [`node_dns_name`] (`node-<id>.actix-coord`). The dialer verifies
//!   the acceptor's certificate for the id it meant to reach; the acceptor verifies the dialer's
//!   certificate against the CA and then checks that the id the dialer claims in its `Hello` is
//!   the one its certificate names. A member therefore cannot speak for another.
//! * **Noise with a pre-shared key** ([`Security::Psk`], the `snow` crate, pattern
//!   `Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s`): the quick-start mode, from the cluster secret.
//!   The dialer is the Noise initiator and the acceptor the responder (roles are bound: two
//!   acceptors wired together by a relay both wait for an initiator and time out), the
//!   whole transcript and the protocol version (the prologue) are bound, session keys are fresh
//!   per connection (ephemeral X25519), and every byte after the handshake is encrypted and
//!   authenticated (ChaCha20-Poly1305). Anyone who knows the secret is a member and may claim any
//!   id: only certificates stop one member from impersonating another.
//!
//! After either handshake the connection is a plain byte stream ([`BoxStream`]) on which the
//! node runs its `Hello`/`Welcome` exchange and then its frames.

use super::transport::BoxStream;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use sha2::{Digest, Sha256};
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// The DNS subject-alternative name a node's certificate must carry: `node-<id>.actix-coord`.
pub fn node_dns_name(id: u32) -> String {
    format!("node-{id}.actix-coord")
}

/// The Noise protocol of the shared-secret mode.
pub const NOISE_PATTERN: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";
/// The Noise prologue: binds the protocol and its version into the handshake transcript.
const NOISE_PROLOGUE: &[u8] = b"actix-coord/2";
/// Largest Noise message (the Noise spec's limit).
const NOISE_MAX_MSG: usize = 65_535;
/// The AEAD tag of each Noise transport message.
const NOISE_TAG: usize = 16;
/// Largest plaintext in one Noise transport message.
const NOISE_MAX_PLAIN: usize = NOISE_MAX_MSG - NOISE_TAG;
/// Encrypted bytes buffered before a write must reach the socket.
const NOISE_WRITE_HIGH: usize = 256 * 1024;

/// Why the security layer could not be set up from the files or values given.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        source: io::Error,
    },
    /// A PEM input held no certificate, no key, or something unreadable.
    #[error("bad PEM in {what}: {detail}")]
    Pem {
        /// Which input.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// rustls refused the certificates or key.
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built (for example an empty CA set).
    #[error("client verifier: {0}")]
    Verifier(String),
    /// The development certificates could not be generated.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A node's TLS identity: its certificate chain and key, and the cluster CA it trusts.
#[derive(Clone)]
pub struct TlsIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    roots: Arc<rustls::RootCertStore>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TlsIdentity({} certificates, {} CA roots)",
            self.chain.len(),
            self.roots.len()
        )
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read {
        path: path.display().to_string(),
        source,
    })
}

impl TlsIdentity {
    /// Reads a certificate chain (PEM, the node's certificate first), its private key (PEM,
    /// PKCS#8, PKCS#1 or SEC1) and the cluster CA certificates (PEM).
    ///
    /// # Errors
    /// [`TlsConfigError`] when a file cannot be read or holds no usable PEM.
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
        ca: impl AsRef<Path>,
    ) -> Result<Self, TlsConfigError> {
        Self::from_pem(
            &read_file(cert.as_ref())?,
            &read_file(key.as_ref())?,
            &read_file(ca.as_ref())?,
        )
    }

    /// As [`from_pem_files`](Self::from_pem_files), from PEM text in memory.
    ///
    /// # Errors
    /// [`TlsConfigError::Pem`] when an input holds no certificate or key.
    pub fn from_pem(cert: &[u8], key: &[u8], ca: &[u8]) -> Result<Self, TlsConfigError> {
        let pem_err = |what: &'static str| {
            move |e: rustls::pki_types::pem::Error| TlsConfigError::Pem {
                what,
                detail: e.to_string(),
            }
        };
        let chain = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_err("the certificate"))?;
        if chain.is_empty() {
            return Err(TlsConfigError::Pem {
                what: "the certificate",
                detail: "no CERTIFICATE block".into(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(pem_err("the key"))?;
        let mut roots = rustls::RootCertStore::empty();
        let mut n = 0;
        for c in CertificateDer::pem_slice_iter(ca) {
            let c = c.map_err(pem_err("the CA"))?;
            roots
                .add(c)
                .map_err(|e| TlsConfigError::Verifier(e.to_string()))?;
            n += 1;
        }
        if n == 0 {
            return Err(TlsConfigError::Pem {
                what: "the CA",
                detail: "no CERTIFICATE block".into(),
            });
        }
        Ok(Self {
            chain,
            key: Arc::new(key),
            roots: Arc::new(roots),
        })
    }

    /// Builds the rustls client and server configurations (TLS 1.3 only, client certificates
    /// required and verified against the CA).
    pub(crate) fn configs(&self) -> Result<TlsConfigs, TlsConfigError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(self.roots.clone())
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            self.roots.clone(),
            provider.clone(),
        )
        .build()
        .map_err(|e| TlsConfigError::Verifier(e.to_string()))?;
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        Ok(TlsConfigs {
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
        })
    }
}

/// The rustls sides of one node.
#[derive(Clone)]
pub(crate) struct TlsConfigs {
    connector: tokio_rustls::TlsConnector,
    acceptor: tokio_rustls::TlsAcceptor,
}

/// A development certificate authority: makes a CA and node certificates with rcgen, for
/// tests, demonstrations and `node gen-certs`. Not for production keys management.
///
/// ```
/// use actix_coord::net::DevCa;
/// let ca = DevCa::new().unwrap();
/// let identity = ca.node_identity(3).unwrap(); // certificate for node-3.actix-coord
/// # let _ = identity;
/// ```
pub struct DevCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DevCa")
    }
}

/// A node certificate and its key, in PEM.
#[derive(Clone, Debug)]
pub struct NodeCertPem {
    /// The certificate (`CERTIFICATE` block).
    pub cert: String,
    /// Its private key (`PRIVATE KEY` block, PKCS#8).
    pub key: String,
}

impl DevCa {
    /// A fresh CA (ECDSA P-256, self-signed, named "actix-coord development CA").
    ///
    /// # Errors
    /// [`TlsConfigError::Generate`].
    pub fn new() -> Result<Self, TlsConfigError> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "actix-coord development CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem,
            issuer: rcgen::Issuer::new(params, key),
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A certificate for node `id` (SAN [`node_dns_name`]`(id)`, usable as client and server).
    ///
    /// # Errors
    /// [`TlsConfigError::Generate`].
    pub fn node_cert(&self, id: u32) -> Result<NodeCertPem, TlsConfigError> {
        let mut params = rcgen::CertificateParams::new(vec![node_dns_name(id)])?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("actix-coord node {id}"));
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        let key = rcgen::KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(NodeCertPem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }

    /// Node `id`'s identity, ready for [`NodeBuilder::tls`](super::NodeBuilder::tls).
    ///
    /// # Errors
    /// [`TlsConfigError`].
    pub fn node_identity(&self, id: u32) -> Result<TlsIdentity, TlsConfigError> {
        let c = self.node_cert(id)?;
        TlsIdentity::from_pem(
            c.cert.as_bytes(),
            c.key.as_bytes(),
            self.cert_pem.as_bytes(),
        )
    }

    /// Writes `ca.pem`, `ca-key.pem` and, for each id, `node<ID>.pem` and `node<ID>-key.pem`
    /// into `dir` (created if missing); returns the files written.
    ///
    /// # Errors
    /// [`TlsConfigError`] on generation or I/O errors.
    pub fn write(
        &self,
        dir: impl AsRef<Path>,
        ids: impl IntoIterator<Item = u32>,
    ) -> Result<Vec<std::path::PathBuf>, TlsConfigError> {
        let dir = dir.as_ref();
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| TlsConfigError::Read { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut written = Vec::new();
        let mut put = |name: String, text: &str| -> Result<(), TlsConfigError> {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(io(&p))?;
            written.push(p);
            Ok(())
        };
        put("ca.pem".into(), &self.cert_pem)?;
        put("ca-key.pem".into(), &self.key_pem)?;
        for id in ids {
            let c = self.node_cert(id)?;
            put(format!("node{id}.pem"), &c.cert)?;
            put(format!("node{id}-key.pem"), &c.key)?;
        }
        Ok(written)
    }
}

/// How a node secures its connections.
#[derive(Clone)]
pub(crate) enum Security {
    /// Noise NNpsk0 with a key derived from the cluster secret.
    Psk([u8; 32]),
    /// Mutual TLS 1.3.
    Tls(TlsConfigs),
}

impl Security {
    /// The Noise pre-shared key for a cluster secret: SHA-256 over a label and the secret. The
    /// secret should be long and random (for example 32 random bytes in hex): a short one can
    /// be guessed offline from one recorded handshake.
    pub(crate) fn psk(secret: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(b"actix-coord noise psk v1\0");
        h.update(secret);
        Self::Psk(h.finalize().into())
    }
}

/// What the security layer proved about the peer, checked against its `Hello`.
pub(crate) enum PeerProof {
    /// Anyone with the secret: any claimed id is taken.
    Secret,
    /// The peer's certificate (acceptor side): the claimed id must be the one it names.
    Certificate(CertificateDer<'static>),
    /// The dialer verified the acceptor's certificate for this id.
    Verified(u32),
}

impl PeerProof {
    /// Whether `claimed` is an id this proof allows.
    pub(crate) fn allows(&self, claimed: u32) -> bool {
        match self {
            PeerProof::Secret => true,
            PeerProof::Verified(id) => *id == claimed,
            PeerProof::Certificate(der) => {
                let Ok(cert) = webpki::EndEntityCert::try_from(der) else {
                    return false;
                };
                let Ok(name) = ServerName::try_from(node_dns_name(claimed)) else {
                    return false;
                };
                cert.verify_is_valid_for_subject_name(&name).is_ok()
            }
        }
    }
}

/// Why securing a connection failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SecureError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The peer failed authentication (wrong secret, bad or foreign certificate).
    #[error("authentication failed: {0}")]
    Auth(String),
}

fn noise_builder(psk: &[u8; 32]) -> snow::Builder<'_> {
    // The pattern is a constant that parses.
    let params: snow::params::NoiseParams = NOISE_PATTERN
        .parse()
        .unwrap_or_else(|_| unreachable!("the Noise pattern parses"));
    snow::Builder::new(params)
        .prologue(NOISE_PROLOGUE)
        .and_then(|b| b.psk(0, psk))
        .unwrap_or_else(|_| unreachable!("prologue and psk are set once"))
}

async fn noise_send(s: &mut BoxStream, msg: &[u8]) -> io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| io::Error::other("noise message too long"))?;
    let mut buf = Vec::with_capacity(2 + msg.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(msg);
    s.write_all(&buf).await?;
    s.flush().await
}

async fn noise_recv(s: &mut BoxStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut msg).await?;
    Ok(msg)
}

/// The Noise initiator's handshake (the dialer's).
pub(crate) async fn noise_dial(
    mut s: BoxStream,
    psk: &[u8; 32],
) -> Result<NoiseStream, SecureError> {
    let auth = |e: snow::Error| SecureError::Auth(e.to_string());
    let mut hs = noise_builder(psk).build_initiator().map_err(auth)?;
    let mut buf = vec![0u8; NOISE_MAX_MSG];
    let n = hs.write_message(&[], &mut buf).map_err(auth)?;
    noise_send(&mut s, &buf[..n]).await?;
    let reply = noise_recv(&mut s).await?;
    hs.read_message(&reply, &mut buf).map_err(auth)?;
    let state = hs.into_transport_mode().map_err(auth)?;
    Ok(NoiseStream::new(s, state))
}

/// The Noise responder's handshake (the acceptor's).
pub(crate) async fn noise_accept(
    mut s: BoxStream,
    psk: &[u8; 32],
) -> Result<NoiseStream, SecureError> {
    let auth = |e: snow::Error| SecureError::Auth(e.to_string());
    let mut hs = noise_builder(psk).build_responder().map_err(auth)?;
    let mut buf = vec![0u8; NOISE_MAX_MSG];
    let first = noise_recv(&mut s).await?;
    hs.read_message(&first, &mut buf).map_err(auth)?;
    let n = hs.write_message(&[], &mut buf).map_err(auth)?;
    noise_send(&mut s, &buf[..n]).await?;
    let state = hs.into_transport_mode().map_err(auth)?;
    Ok(NoiseStream::new(s, state))
}

/// Secures a dialed connection to `expected`.
pub(crate) async fn dial(
    security: &Security,
    s: BoxStream,
    expected: u32,
) -> Result<(BoxStream, PeerProof), SecureError> {
    match security {
        Security::Psk(psk) => Ok((Box::new(noise_dial(s, psk).await?), PeerProof::Secret)),
        Security::Tls(t) => {
            let name = ServerName::try_from(node_dns_name(expected))
                .map_err(|e| SecureError::Auth(e.to_string()))?;
            let tls = t.connector.connect(name, s).await.map_err(tls_error)?;
            Ok((Box::new(tls), PeerProof::Verified(expected)))
        }
    }
}

/// Secures an accepted connection.
pub(crate) async fn accept(
    security: &Security,
    s: BoxStream,
) -> Result<(BoxStream, PeerProof), SecureError> {
    match security {
        Security::Psk(psk) => Ok((Box::new(noise_accept(s, psk).await?), PeerProof::Secret)),
        Security::Tls(t) => {
            let tls = t.acceptor.accept(s).await.map_err(tls_error)?;
            let cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.clone().into_owned())
                .ok_or_else(|| SecureError::Auth("no client certificate".into()))?;
            Ok((Box::new(tls), PeerProof::Certificate(cert)))
        }
    }
}

/// rustls reports handshake failures as `InvalidData` I/O errors: those are authentication
/// failures (bad certificate, unknown CA, wrong name); the rest are I/O.
fn tls_error(e: io::Error) -> SecureError {
    if e.kind() == io::ErrorKind::InvalidData {
        SecureError::Auth(e.to_string())
    } else {
        SecureError::Io(e)
    }
}

/// A byte stream encrypted with a Noise transport state: each chunk of at most 65 519 plaintext
/// bytes travels as one Noise message, a 2-byte big-endian length then the ciphertext and its
/// tag. A message that fails authentication ends the stream with an error.
pub(crate) struct NoiseStream {
    inner: BoxStream,
    state: Box<snow::TransportState>,
    /// Ciphertext read and not yet decrypted.
    rbuf: Vec<u8>,
    /// Where the socket's bytes land before they join `rbuf` (zeroed once, not per read).
    chunk: Box<[u8]>,
    /// Decrypted bytes (`plain[..plain_len]`) not yet returned, from `plain_pos`.
    plain: Vec<u8>,
    plain_len: usize,
    plain_pos: usize,
    /// Ciphertext not yet written, from `wpos`.
    wbuf: Vec<u8>,
    wpos: usize,
    /// A decryption failure: the stream is dead.
    failed: bool,
}

impl NoiseStream {
    fn new(inner: BoxStream, state: snow::TransportState) -> Self {
        Self {
            inner,
            state: Box::new(state),
            rbuf: Vec::with_capacity(16 * 1024),
            chunk: vec![0u8; 16 * 1024].into_boxed_slice(),
            plain: vec![0u8; NOISE_MAX_MSG],
            plain_len: 0,
            plain_pos: 0,
            wbuf: Vec::with_capacity(16 * 1024),
            wpos: 0,
            failed: false,
        }
    }

    /// Writes buffered ciphertext until done or the socket is full.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.wpos < self.wbuf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.wbuf[self.wpos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.wpos += n;
        }
        self.wbuf.clear();
        self.wpos = 0;
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for NoiseStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.failed {
                return Poll::Ready(Err(io::Error::other(
                    "noise: message failed authentication",
                )));
            }
            if this.plain_pos < this.plain_len {
                let n = (this.plain_len - this.plain_pos).min(buf.remaining());
                buf.put_slice(&this.plain[this.plain_pos..this.plain_pos + n]);
                this.plain_pos += n;
                return Poll::Ready(Ok(()));
            }
            // A whole message buffered? Decrypt it.
            if this.rbuf.len() >= 2 {
                let len = usize::from(u16::from_be_bytes([this.rbuf[0], this.rbuf[1]]));
                if this.rbuf.len() >= 2 + len {
                    match this
                        .state
                        .read_message(&this.rbuf[2..2 + len], &mut this.plain)
                    {
                        Ok(n) => {
                            this.plain_pos = 0;
                            this.plain_len = n;
                            this.rbuf.drain(..2 + len);
                            continue;
                        }
                        Err(_) => {
                            this.failed = true;
                            continue;
                        }
                    }
                }
            }
            // Read more ciphertext.
            let mut rb = ReadBuf::new(&mut this.chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                return if this.rbuf.is_empty() {
                    Poll::Ready(Ok(()))
                } else {
                    Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()))
                };
            }
            this.rbuf.extend_from_slice(rb.filled());
        }
    }
}

impl AsyncWrite for NoiseStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.wbuf.len() - this.wpos >= NOISE_WRITE_HIGH {
            ready!(this.poll_drain(cx))?;
        }
        let n = data.len().min(NOISE_MAX_PLAIN);
        let start = this.wbuf.len();
        this.wbuf.resize(start + 2 + n + NOISE_TAG, 0);
        match this
            .state
            .write_message(&data[..n], &mut this.wbuf[start + 2..])
        {
            Ok(len) => {
                // `len` is n + 16 ≤ 65 535.
                let len16 = len as u16;
                this.wbuf[start..start + 2].copy_from_slice(&len16.to_be_bytes());
                this.wbuf.truncate(start + 2 + len);
                Poll::Ready(Ok(n))
            }
            Err(e) => {
                this.wbuf.truncate(start);
                Poll::Ready(Err(io::Error::other(format!("noise: {e}"))))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}
