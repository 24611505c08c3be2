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
//!
//! A connection on which nothing moves (no byte read or written) for
//! [`IDLE`] fails with `TimedOut`, and connecting gives up after
//! [`CONNECT`]: a radosgw that stops answering (hung, or stopped) fails the
//! unit instead of holding the run forever. (`STRATA_RGW_IDLE_SECS`
//! shortens the idle limit for the tests.)

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

/// How long a connection may move no byte before it fails.
pub const IDLE: std::time::Duration = std::time::Duration::from_mins(2);
/// How long connecting may take.
pub const CONNECT: std::time::Duration = std::time::Duration::from_secs(30);

fn idle_limit() -> std::time::Duration {
    std::env::var("STRATA_RGW_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(IDLE, std::time::Duration::from_secs)
}

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
        SharedHttpClient::new(QuickAckClient::new(idle_limit()))
    }

    /// The client, failing a connection on which no byte moved for `idle`.
    #[must_use]
    pub fn new(idle: std::time::Duration) -> QuickAckClient {
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
        tcp.set_connect_timeout(Some(CONNECT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(QuickAck { tcp, idle });
        let client = Client::builder(TokioExecutor::new()).build(https);
        QuickAckClient { client }
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
pub struct QuickAck {
    tcp: Tcp,
    idle: std::time::Duration,
}

impl tower_service::Service<http::Uri> for QuickAck {
    type Response = QuickAckStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<QuickAckStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.tcp.call(uri);
        let limit = self.idle;
        Box::pin(async move {
            Ok(QuickAckStream {
                io: connecting.await?,
                limit,
                idle: Box::pin(tokio::time::sleep(limit)),
            })
        })
    }
}

/// A TCP connection that sets `TCP_QUICKACK` before every read (the flag
/// does not stay set: the kernel drops it as the connection goes on), and
/// fails once no byte has moved for its idle limit.
#[derive(Debug)]
pub struct QuickAckStream {
    io: TokioIo<TcpStream>,
    limit: std::time::Duration,
    /// Fires `limit` after the last byte moved.
    idle: Pin<Box<tokio::time::Sleep>>,
}

impl QuickAckStream {
    /// What a poll of the connection came to: progress restarts the idle
    /// clock; waiting past it is an error.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        p: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match p {
            Poll::Ready(r) => {
                let next = tokio::time::Instant::now() + self.limit;
                self.idle.as_mut().reset(next);
                Poll::Ready(r)
            }
            Poll::Pending if self.idle.as_mut().poll(cx).is_ready() => {
                Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("radosgw moved no byte for {} s", self.limit.as_secs()),
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl hyper::rt::Read for QuickAckStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        // why: a failure only brings the delay back; the read goes on
        let _ = socket2::SockRef::from(self.io.inner()).set_tcp_quickack(true);
        let p = Pin::new(&mut self.io).poll_read(cx, buf);
        self.watch(cx, p)
    }
}

impl hyper::rt::Write for QuickAckStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let p = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, p)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let p = Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, p)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let p = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, p)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl Connection for QuickAckStream {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_server_that_accepts_and_never_answers_fails_the_request_after_the_idle_limit() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // why: hold the accepted connection open and silent, as a stopped radosgw does
        let silent = std::thread::spawn(move || {
            let conn = listener.accept().unwrap();
            std::thread::sleep(Duration::from_secs(4));
            drop(conn);
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = QuickAckClient::new(Duration::from_secs(1));
        let request = HttpRequest::try_from(
            http::Request::get(format!("http://127.0.0.1:{port}/bucket"))
                .body(SdkBody::empty())
                .unwrap(),
        )
        .unwrap();
        let started = Instant::now();
        let got = rt.block_on(HttpConnector::call(&client, request));
        let waited = started.elapsed();
        let err = got.expect_err("a silent server cannot answer");
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
            "failed after {waited:?}: {err}"
        );
        let mut chain = vec![err.to_string()];
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            chain.push(s.to_string());
            source = s.source();
        }
        let chain = chain.join(": ");
        assert!(chain.contains("radosgw moved no byte for 1 s"), "{chain}");
        silent.join().unwrap();
    }
}
