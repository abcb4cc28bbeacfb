//! The HTTP connection edge: request heads up to Go's limit, as Prometheus serves them.
//!
//! Go's `net/http` takes a request head (request line and headers) of up to 1 MiB + 4 KiB and
//! answers a larger one with a plain-text 431. Our HTTP stack cannot represent a URI over
//! 64 KiB, so a connection is read through [`EdgeStream`], which watches each request head:
//! a request whose URI is long gets its query string moved into a form body (a GET becomes
//! a POST, a POST keeps its body and gets the query appended, as Go orders form values), which
//! the API reads exactly as it would read the URL; a head over Go's limit gets Go's 431 and
//! the connection closes. Everything else passes through unchanged, request after request
//! (bodies are skipped over by their `Content-Length`; a chunked request body ends the
//! watching for that connection).

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Go's `DefaultMaxHeaderBytes` plus the 4096 bytes of slack its reader allows.
pub const MAX_HEAD_BYTES: usize = (1 << 20) + 4096;

/// URIs longer than this are moved into a body (below the HTTP stack's own limit).
const LONG_URI: usize = 16 * 1024;

/// What Go writes for a request head over its limit.
const HEAD_TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large";

/// A listener whose connections (in the clear or over TLS, handshakes done) are
/// [`EdgeStream`]s.
pub struct EdgeListener {
    incoming: futures::stream::BoxStream<'static, io::Result<storeapi::tls::ServerStream>>,
    local: std::net::SocketAddr,
}

impl EdgeListener {
    pub fn new(
        listener: tokio::net::TcpListener,
        tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    ) -> io::Result<EdgeListener> {
        let local = listener.local_addr()?;
        Ok(EdgeListener {
            incoming: storeapi::tls::incoming(listener, tls, "HTTP"),
            local,
        })
    }
}

impl axum::serve::Listener for EdgeListener {
    type Io = EdgeStream<storeapi::tls::ServerStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        use futures::StreamExt;
        loop {
            match self.incoming.next().await {
                Some(Ok(s)) => {
                    let peer = s.tcp().peer_addr().unwrap_or(self.local);
                    return (EdgeStream::new(s), peer);
                }
                Some(Err(e)) => {
                    tracing::warn!(err = %e, "accepting HTTP connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// What the reader does next with the bytes of the connection.
enum Step {
    /// Hand out these bytes (a head, possibly rewritten, or an appended query).
    Emit(Vec<u8>),
    /// Pass this many body bytes through.
    Pass(u64),
    /// Drop this many body bytes (the body of a GET turned into a POST).
    Skip(u64),
}

enum Mode {
    /// Gathering a request head in `input`.
    Head,
    /// Working through the steps of the current request.
    Steps(VecDeque<Step>),
    /// No more watching: plain pass-through (after a chunked body).
    Through,
    /// Writing Go's 431 before closing.
    Reject(usize),
    Closed,
}

pub struct EdgeStream<S> {
    inner: S,
    /// Bytes read from the connection and not yet handed out.
    input: Vec<u8>,
    /// How far `input` was searched for the end of the head.
    scanned: usize,
    mode: Mode,
    eof: bool,
}

impl<S> EdgeStream<S> {
    pub fn new(inner: S) -> Self {
        EdgeStream {
            inner,
            input: Vec::new(),
            scanned: 0,
            mode: Mode::Head,
            eof: false,
        }
    }
}

fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    buf[start..]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| start + p + 4)
}

/// The steps for one complete request head.
fn plan_request(head: &[u8]) -> (VecDeque<Step>, bool) {
    let mut steps = VecDeque::new();
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut content_length: u64 = 0;
    let mut chunked = false;
    let mut headers: Vec<&str> = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.trim().parse().unwrap_or(0);
                continue;
            }
            if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            }
            if name.eq_ignore_ascii_case("content-type") {
                continue;
            }
        }
        headers.push(line);
    }
    let mut parts = request_line.splitn(3, ' ');
    let (method, uri, version) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let long = uri.len() > LONG_URI && !chunked && uri.contains('?');
    if !long {
        steps.push_back(Step::Emit(head.to_vec()));
        if chunked {
            return (steps, true);
        }
        if content_length > 0 {
            steps.push_back(Step::Pass(content_length));
        }
        return (steps, false);
    }
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let keeps_body = matches!(method, "POST" | "PUT" | "PATCH");
    let new_len = if keeps_body && content_length > 0 {
        content_length + 1 + query.len() as u64
    } else {
        query.len() as u64
    };
    let new_method = if keeps_body { method } else { "POST" };
    let mut out = format!("{new_method} {path} {version}\r\n");
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    out.push_str(&format!("Content-Length: {new_len}\r\n\r\n"));
    steps.push_back(Step::Emit(out.into_bytes()));
    if keeps_body && content_length > 0 {
        steps.push_back(Step::Pass(content_length));
        steps.push_back(Step::Emit(format!("&{query}").into_bytes()));
    } else {
        if content_length > 0 {
            steps.push_back(Step::Skip(content_length));
        }
        steps.push_back(Step::Emit(query.as_bytes().to_vec()));
    }
    (steps, false)
}

impl<S: AsyncRead + AsyncWrite + Unpin> EdgeStream<S> {
    /// Reads more of the connection into `input`; Ready(false) at end of stream.
    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        if self.eof {
            return Poll::Ready(Ok(false));
        }
        let mut chunk = [0u8; 16 * 1024];
        let mut rb = ReadBuf::new(&mut chunk);
        match Pin::new(&mut self.inner).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {
                if rb.filled().is_empty() {
                    self.eof = true;
                    return Poll::Ready(Ok(false));
                }
                self.input.extend_from_slice(rb.filled());
                Poll::Ready(Ok(true))
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for EdgeStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.mode {
                Mode::Closed => return Poll::Ready(Ok(())),
                Mode::Through => {
                    if !this.input.is_empty() {
                        let n = this.input.len().min(buf.remaining());
                        buf.put_slice(&this.input[..n]);
                        this.input.drain(..n);
                        return Poll::Ready(Ok(()));
                    }
                    return Pin::new(&mut this.inner).poll_read(cx, buf);
                }
                Mode::Reject(written) => {
                    while *written < HEAD_TOO_LARGE.len() {
                        match Pin::new(&mut this.inner).poll_write(cx, &HEAD_TOO_LARGE[*written..])
                        {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(Err(_)) | Poll::Ready(Ok(0)) => break,
                            Poll::Ready(Ok(n)) => *written += n,
                        }
                    }
                    let _ = Pin::new(&mut this.inner).poll_flush(cx);
                    this.mode = Mode::Closed;
                    return Poll::Ready(Ok(()));
                }
                Mode::Head => {
                    let found = find_head_end(&this.input, this.scanned);
                    if found.unwrap_or(this.input.len()) > MAX_HEAD_BYTES {
                        this.mode = Mode::Reject(0);
                        continue;
                    }
                    if let Some(end) = found {
                        let head: Vec<u8> = this.input.drain(..end).collect();
                        this.scanned = 0;
                        let (steps, chunked) = plan_request(&head);
                        this.mode = Mode::Steps(steps);
                        if chunked {
                            // Hand out the head, then pass everything through.
                            if let Mode::Steps(s) = &mut this.mode {
                                if let Some(Step::Emit(h)) = s.pop_front() {
                                    let mut rest = std::mem::take(&mut this.input);
                                    this.input = h;
                                    this.input.append(&mut rest);
                                }
                            }
                            this.mode = Mode::Through;
                        }
                        continue;
                    }
                    this.scanned = this.input.len();
                    match this.fill(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Ready(Ok(true)) => continue,
                        Poll::Ready(Ok(false)) => {
                            // End of stream: hand out what is left (hyper reports it).
                            this.mode = Mode::Through;
                            continue;
                        }
                    }
                }
                Mode::Steps(steps) => {
                    let Some(step) = steps.front_mut() else {
                        this.mode = Mode::Head;
                        continue;
                    };
                    match step {
                        Step::Emit(bytes) => {
                            let n = bytes.len().min(buf.remaining());
                            buf.put_slice(&bytes[..n]);
                            bytes.drain(..n);
                            if bytes.is_empty() {
                                steps.pop_front();
                            }
                            return Poll::Ready(Ok(()));
                        }
                        Step::Pass(_) | Step::Skip(_) => {
                            let (pass, left) = match step {
                                Step::Pass(l) => (true, *l),
                                Step::Skip(l) => (false, *l),
                                Step::Emit(_) => unreachable!("matched above"),
                            };
                            if left == 0 {
                                steps.pop_front();
                                continue;
                            }
                            if this.input.is_empty() {
                                match this.fill(cx) {
                                    Poll::Pending => return Poll::Pending,
                                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                                    Poll::Ready(Ok(true)) => continue,
                                    Poll::Ready(Ok(false)) => {
                                        this.mode = Mode::Closed;
                                        return Poll::Ready(Ok(()));
                                    }
                                }
                            }
                            let avail = this.input.len().min(left as usize);
                            let n = if pass {
                                avail.min(buf.remaining())
                            } else {
                                avail
                            };
                            if pass {
                                buf.put_slice(&this.input[..n]);
                            }
                            this.input.drain(..n);
                            if let Mode::Steps(steps) = &mut this.mode {
                                if let Some(Step::Pass(l) | Step::Skip(l)) = steps.front_mut() {
                                    *l -= n as u64;
                                }
                            }
                            if pass {
                                return Poll::Ready(Ok(()));
                            }
                        }
                    }
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for EdgeStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn through(input: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let input = input.to_vec();
        let writer = tokio::spawn(async move {
            client.write_all(&input).await.unwrap();
            client.shutdown().await.unwrap();
            let mut back = Vec::new();
            let _ = client.read_to_end(&mut back).await;
            back
        });
        let mut edge = EdgeStream::new(server);
        let mut out = Vec::new();
        edge.read_to_end(&mut out).await.unwrap();
        drop(edge);
        (out, writer.await.unwrap())
    }

    #[tokio::test]
    async fn short_requests_pass_unchanged() {
        let req = b"GET /api/v1/query?query=up HTTP/1.1\r\nHost: x\r\n\r\nPOST /api/v1/query HTTP/1.1\r\nContent-Length: 8\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\nquery=upGET / HTTP/1.1\r\n\r\n";
        assert_eq!(through(req).await.0, req.to_vec());
    }

    #[tokio::test]
    async fn long_get_becomes_post_with_the_query_as_body() {
        let q = format!("query={}", "a".repeat(100_000));
        let req =
            format!("GET /api/v1/query?{q} HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\n\r\n");
        let out = String::from_utf8(through(req.as_bytes()).await.0).unwrap();
        let expect = format!(
            "POST /api/v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{q}GET /next HTTP/1.1\r\n\r\n",
            q.len()
        );
        assert_eq!(out, expect);
    }

    #[tokio::test]
    async fn long_post_appends_the_query_after_the_body() {
        let q = format!("x={}", "b".repeat(20_000));
        let req = format!(
            "POST /p?{q} HTTP/1.1\r\nContent-Length: 7\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\nquery=1"
        );
        let out = String::from_utf8(through(req.as_bytes()).await.0).unwrap();
        assert!(out.starts_with("POST /p HTTP/1.1\r\n"));
        assert!(out.ends_with(&format!("\r\n\r\nquery=1&{q}")));
        assert!(out.contains(&format!("Content-Length: {}\r\n", 8 + q.len())));
    }

    #[tokio::test]
    async fn oversized_head_gets_gos_431() {
        let req = format!("GET /?a={} HTTP/1.1\r\n\r\n", "c".repeat(MAX_HEAD_BYTES));
        let (out, back) = through(req.as_bytes()).await;
        assert!(out.is_empty());
        assert_eq!(back, HEAD_TOO_LARGE.to_vec());
    }
}
