//! The HTTP client under the rgw source's S3 calls: the SDK's own stack
//! (hyper, rustls with this machine's trusted CAs, keep-alive connections
//! from one pool), with one difference: every read from a connection asks
//! the kernel to acknowledge at once (`TCP_QUICKACK`).
//!
//! Why: radosgw's beast frontend leaves Nagle's algorithm on unless
//! configured with `tcp_nodelay=1`, and writes a response's headers and its
//! body in two sends. On a reused connection the body then waits for the
//! client's acknowledgement of the headers, which Linux delays by 40 ms:
//! every small object cost ~42 ms, whatever the server's load (measured in
//! `docs/rgw.md`). Acknowledging at once removes the wait; against a server
//! that has Nagle off it changes nothing.

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector as Tcp};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The client, to hand to the SDK's config (`http_client`).
#[derive(Clone, Debug)]
pub struct QuickAckClient {
    client: Client<hyper_rustls::HttpsConnector<QuickAck>, SdkBody>,
}

impl QuickAckClient {
    /// A client for http and https (certificates checked against this
    /// machine's trusted CAs, or `SSL_CERT_FILE`, as the SDK's default does).
    #[must_use]
    pub fn shared() -> SharedHttpClient {
        let mut roots = rustls::RootCertStore::empty();
        // why: a store that fails to load leaves https failing with
        // "invalid peer certificate", which names the way out
        let found = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(found.certs);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("aws-lc-rs offers rustls's default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut tcp = Tcp::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(QuickAck(tcp));
        let client = Client::builder(TokioExecutor::new()).build(https);
        SharedHttpClient::new(QuickAckClient { client })
    }
}

impl HttpClient for QuickAckClient {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

impl HttpConnector for QuickAckClient {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(r) => r,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let sent = self.client.request(request);
        HttpConnectorFuture::new(async move {
            match sent.await {
                Ok(response) => HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                    .map_err(|e| ConnectorError::other(e.into(), None)),
                // why: a connection that failed is worth a retry, as the SDK's
                // own client classifies it
                Err(e) if e.is_connect() => Err(ConnectorError::io(e.into())),
                Err(e) => Err(ConnectorError::other(e.into(), None)),
            }
        })
    }
}

/// Makes TCP connections whose reads acknowledge at once.
#[derive(Clone, Debug)]
pub struct QuickAck(Tcp);

impl tower_service::Service<http::Uri> for QuickAck {
    type Response = QuickAckStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<QuickAckStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move { Ok(QuickAckStream(connecting.await?)) })
    }
}

/// A TCP connection that sets `TCP_QUICKACK` before every read (the flag
/// does not stay set: the kernel drops it as the connection goes on).
#[derive(Debug)]
pub struct QuickAckStream(TokioIo<TcpStream>);

impl hyper::rt::Read for QuickAckStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        // why: a failure only brings the delay back; the read goes on
        let _ = socket2::SockRef::from(self.0.inner()).set_tcp_quickack(true);
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for QuickAckStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

impl Connection for QuickAckStream {
    fn connected(&self) -> Connected {
        self.0.connected()
    }
}
