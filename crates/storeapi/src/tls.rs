//! TLS for the gRPC server and clients (Thanos's `--grpc-server-tls-*` and
//! `--grpc-client-tls-*` flags), also used by the HTTP servers (`--http.config`):
//! certificates read from PEM files, client certificates verified against a CA, a minimum
//! protocol version, and a listener whose handshakes run off the accept loop.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// How long a client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The protocol versions from a minimum, as Thanos (`1.2`) or Prometheus's web config
/// (`TLS12`) spell it. rustls speaks 1.2 and 1.3 only, so a lower minimum means 1.2.
pub fn versions_from(
    min: &str,
) -> Result<&'static [&'static rustls::SupportedProtocolVersion], String> {
    static ALL: &[&rustls::SupportedProtocolVersion] =
        &[&rustls::version::TLS13, &rustls::version::TLS12];
    static V13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    match min.trim() {
        "" | "1.0" | "1.1" | "1.2" | "TLS10" | "TLS11" | "TLS12" => Ok(ALL),
        "1.3" | "TLS13" => Ok(V13),
        other => Err(format!(
            "unknown TLS version {other:?}: want 1.0, 1.1, 1.2 or 1.3 (TLS10…TLS13)"
        )),
    }
}

fn read_certs(path: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("read {what} {path}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("read {what} {path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what} {path} holds no PEM certificate"));
    }
    Ok(certs)
}

fn read_key(path: &str, what: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("read {what} {path}: {e}"))
}

fn read_roots(path: &str, what: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for c in read_certs(path, what)? {
        roots
            .add(c)
            .map_err(|e| format!("{what} {path}: bad CA certificate: {e}"))?;
    }
    Ok(roots)
}

/// Whether and how a server asks clients for certificates (Go's `tls.ClientAuthType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    /// Asked for; any certificate (or none) is accepted unverified.
    Request,
    /// Required; any certificate is accepted unverified.
    RequireAny,
    /// Verified against the CA when given.
    VerifyIfGiven,
    /// Required and verified against the CA.
    RequireAndVerify,
}

impl ClientAuth {
    /// Go's names, as Prometheus's web config spells them.
    pub fn parse(s: &str) -> Result<ClientAuth, String> {
        Ok(match s {
            "" | "NoClientCert" => ClientAuth::None,
            "RequestClientCert" => ClientAuth::Request,
            "RequireAnyClientCert" => ClientAuth::RequireAny,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerify,
            other => {
                return Err(format!(
                    "unknown client_auth_type {other:?}: want NoClientCert, RequestClientCert, \
                     RequireAnyClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"
                ))
            }
        })
    }
}

/// What a TLS server is built from.
#[derive(Clone, Debug, Default)]
pub struct ServerFiles {
    pub cert: String,
    pub key: String,
    pub client_ca: String,
    pub min_version: String,
}

/// A server config for `files`; `client_auth` applies when a client CA is given or when it
/// needs none. `alpn` lists the protocols offered (`h2` for gRPC).
pub fn server_config(
    files: &ServerFiles,
    client_auth: ClientAuth,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, String> {
    let certs = read_certs(&files.cert, "TLS certificate")?;
    let key = read_key(&files.key, "TLS key")?;
    let provider = provider();
    let verifier: Arc<dyn ClientCertVerifier> = match client_auth {
        ClientAuth::None => WebPkiClientVerifier::no_client_auth(),
        ClientAuth::Request | ClientAuth::RequireAny => Arc::new(AnyClientCert {
            mandatory: client_auth == ClientAuth::RequireAny,
            provider: provider.clone(),
        }),
        ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify => {
            if files.client_ca.is_empty() {
                return Err(
                    "client certificates are to be verified, but no client CA is given".into(),
                );
            }
            let roots = read_roots(&files.client_ca, "client CA")?;
            let b = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let b = if client_auth == ClientAuth::VerifyIfGiven {
                b.allow_unauthenticated()
            } else {
                b
            };
            b.build()
                .map_err(|e| format!("client CA {}: {e}", files.client_ca))?
        }
    };
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions_from(&files.min_version)?)
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS certificate {} with key {}: {e}", files.cert, files.key))?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// The gRPC server's TLS from Thanos's flags: none when neither certificate nor key is set;
/// a client CA turns on verified client certificates.
pub fn grpc_server_config(files: &ServerFiles) -> Result<Option<Arc<ServerConfig>>, String> {
    match (files.cert.is_empty(), files.key.is_empty()) {
        (true, true) => {
            if !files.client_ca.is_empty() {
                return Err("--grpc-server-tls-client-ca is set without --grpc-server-tls-cert and --grpc-server-tls-key".into());
            }
            return Ok(None);
        }
        (false, false) => {}
        _ => {
            return Err(
                "--grpc-server-tls-cert and --grpc-server-tls-key go together: set both or neither"
                    .into(),
            )
        }
    }
    let auth = if files.client_ca.is_empty() {
        ClientAuth::None
    } else {
        ClientAuth::RequireAndVerify
    };
    server_config(files, auth, &[b"h2"]).map(Some)
}

/// What a TLS client is built from (Thanos's `--grpc-client-tls-*` flags, or the
/// `tls_config` of an HTTP client config).
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    pub skip_verify: bool,
    pub cert: String,
    pub key: String,
    pub ca: String,
    pub server_name: String,
    pub min_version: String,
}

/// A client config: the server verified against `ca` (the system's roots when empty) unless
/// `skip_verify`; a client certificate when `cert` and `key` are set.
pub fn client_config(o: &ClientOptions, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions_from(&o.min_version)?)
        .map_err(|e| e.to_string())?;
    let builder = if o.skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider)))
    } else {
        let roots = if o.ca.is_empty() {
            let mut roots = RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            for c in native.certs {
                let _ = roots.add(c);
            }
            roots
        } else {
            read_roots(&o.ca, "TLS CA")?
        };
        if o.server_name.is_empty() {
            builder.with_root_certificates(roots)
        } else {
            let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| format!("TLS CA: {e}"))?;
            let name = server_name(&o.server_name, "")?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(FixedName { inner, name }))
        }
    };
    let mut cfg = match (o.cert.is_empty(), o.key.is_empty()) {
        (true, true) => builder.with_no_client_auth(),
        (false, false) => builder
            .with_client_auth_cert(
                read_certs(&o.cert, "TLS client certificate")?,
                read_key(&o.key, "TLS client key")?,
            )
            .map_err(|e| format!("TLS client certificate {} with key {}: {e}", o.cert, o.key))?,
        _ => {
            return Err(
                "a TLS client certificate and its key go together: set both or neither".into(),
            )
        }
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// The name a client verifies the server by: `server_name` when set, else the host.
pub fn server_name(server_name: &str, host: &str) -> Result<ServerName<'static>, String> {
    let name = if server_name.is_empty() {
        host.trim_start_matches('[').trim_end_matches(']')
    } else {
        server_name
    };
    ServerName::try_from(name.to_string()).map_err(|e| format!("bad TLS server name {name:?}: {e}"))
}

/// Verifies server certificates by a configured name instead of the one connected to
/// (`--grpc-client-server-name`, `tls_config.server_name`).
#[derive(Debug)]
struct FixedName {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for FixedName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The handshake signature checks of a verifier that accepts certificates unverified:
/// signatures are still checked with the crypto provider held in field `$field`.
macro_rules! provider_signature_checks {
    ($field:tt) => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.$field.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.$field.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.$field
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}

/// Accepts any server certificate (`--grpc-client-tls-skip-verify`); signatures are still
/// checked, so the handshake proves the server holds the key it shows.
#[derive(Debug)]
struct AnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    provider_signature_checks!(0);
}

/// Asks for a client certificate and accepts any (Go's `RequestClientCert` and
/// `RequireAnyClientCert`).
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    provider_signature_checks!(provider);
}

/// An accepted server connection, in the clear or over TLS.
pub enum ServerStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl ServerStream {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            ServerStream::Plain(s) => s,
            ServerStream::Tls(s) => s.get_ref().0,
        }
    }
}

impl AsyncRead for ServerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ServerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ServerStream::Plain(s) => s.is_write_vectored(),
            ServerStream::Tls(s) => s.is_write_vectored(),
        }
    }
}

impl tonic::transport::server::Connected for ServerStream {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.tcp().connect_info()
    }
}

/// Connections from `listener`: plain when `tls` is `None`; otherwise each handshake runs in
/// its own task (a slow or hostile client holds up nobody) and only finished ones come out.
/// A failed handshake is logged and dropped. The accept loop ends when the stream is dropped.
pub fn incoming(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    what: &'static str,
) -> futures::stream::BoxStream<'static, io::Result<ServerStream>> {
    use futures::StreamExt;
    let Some(cfg) = tls else {
        return futures::stream::unfold(listener, |l| async move {
            let r = l.accept().await.map(|(s, _)| {
                let _ = s.set_nodelay(true);
                ServerStream::Plain(s)
            });
            Some((r, l))
        })
        .boxed();
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<ServerStream>>(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = tx.closed() => return,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(err = %e, what, "accepting connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => {
                        let _ = tx.send(Ok(ServerStream::Tls(Box::new(s)))).await;
                    }
                    Ok(Err(e)) => tracing::info!(%peer, err = %e, what, "TLS handshake failed"),
                    Err(_) => tracing::info!(%peer, what, "TLS handshake timed out"),
                }
            });
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|s| (s, rx)) }).boxed()
}

/// Connects gRPC clients over TLS: TCP to the URI's host and port, then the handshake,
/// verifying the server by `server_name` (or the host).
#[derive(Clone)]
pub struct TlsConnector {
    config: Arc<ClientConfig>,
    server_name: String,
}

impl TlsConnector {
    pub fn new(config: Arc<ClientConfig>, server_name: &str) -> TlsConnector {
        TlsConnector {
            config,
            server_name: server_name.to_string(),
        }
    }
}

type ClientIo = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;

impl tower_service::Service<tonic::codegen::http::Uri> for TlsConnector {
    type Response = ClientIo;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<ClientIo>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: tonic::codegen::http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let bad = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
            let host = uri
                .host()
                .ok_or_else(|| bad(format!("no host in {uri}")))?
                .to_string();
            let port = uri.port_u16().unwrap_or(443);
            let name = server_name(&this.server_name, &host).map_err(bad)?;
            let tcp =
                TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port))
                    .await?;
            let _ = tcp.set_nodelay(true);
            let tls = tokio_rustls::TlsConnector::from(this.config)
                .connect(name, tcp)
                .await?;
            Ok(hyper_util::rt::TokioIo::new(tls))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_versions_as_thanos_and_prometheus_spell_them() {
        assert_eq!(versions_from("1.3").unwrap().len(), 1);
        assert_eq!(versions_from("TLS13").unwrap().len(), 1);
        for v in ["", "1.0", "1.2", "TLS12"] {
            assert_eq!(versions_from(v).unwrap().len(), 2, "{v}");
        }
        assert!(versions_from("1.4").unwrap_err().contains("1.4"));
    }

    #[test]
    fn server_tls_needs_certificate_and_key_together() {
        let only_cert = ServerFiles {
            cert: "/c.pem".into(),
            ..Default::default()
        };
        assert!(grpc_server_config(&only_cert).is_err());
        let ca_alone = ServerFiles {
            client_ca: "/ca.pem".into(),
            ..Default::default()
        };
        assert!(grpc_server_config(&ca_alone).is_err());
        assert!(grpc_server_config(&ServerFiles::default())
            .unwrap()
            .is_none());
        assert!(server_name("", "[::1]").is_ok());
        assert!(server_name("", "localhost").is_ok());
    }
}
