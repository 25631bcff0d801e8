//! A root exit hook that panics once the response is complete, behind a
//! real server: the client gets the whole response, and the connection
//! stays open for the next request.
//!
//! The client is a raw HTTP/1.1 one on a `TcpStream`, so that a connection
//! the server drops shows as such, not as a retry on a fresh connection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use stackholm::{Outcome, DEFAULT};
use stackholm_tower::{RequestEnd, StackholmLayer};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

mod support;
use support::serve;

/// What the hooks of one test's requests saw.
#[derive(Default)]
struct Log {
    endings: Mutex<Vec<(Outcome, Option<u16>, bool)>>,
    panics: AtomicUsize,
}

/// Registers two root exit hooks: one that records how the request ended,
/// and, run before it (hooks run last registered first), one that panics.
fn hooks(log: &Arc<Log>) {
    let recorder = Arc::clone(log);
    DEFAULT
        .on_root_exit(move |outcome| {
            let end = RequestEnd::current(DEFAULT).expect("inside the request");
            recorder.endings.lock().unwrap().push((
                outcome,
                end.status().map(|status| status.as_u16()),
                end.body_complete(),
            ));
        })
        .unwrap();
    let panicker = Arc::clone(log);
    DEFAULT
        .on_root_exit(move |_| {
            panicker.panics.fetch_add(1, Ordering::SeqCst);
            panic!("a root exit hook failed after the response")
        })
        .unwrap();
}

/// `/full`: a body of known length, at its end with its one frame.
/// `/stream`: a chunked body, at its end when it says so on a last poll.
/// `/empty`: a body empty from the start, so the request ends with its head.
fn app(log: &Arc<Log>) -> Router {
    let (full, stream, empty) = (Arc::clone(log), Arc::clone(log), Arc::clone(log));
    Router::new()
        .route(
            "/full",
            get(move || async move {
                hooks(&full);
                "all of it"
            }),
        )
        .route(
            "/stream",
            get(move || async move {
                hooks(&stream);
                let chunks = futures_util::stream::unfold(0, |n| async move {
                    if n == 3 {
                        return None;
                    }
                    tokio::task::yield_now().await;
                    Some((
                        Ok::<_, Infallible>(Bytes::from(format!("chunk {n};"))),
                        n + 1,
                    ))
                });
                Body::from_stream(chunks)
            }),
        )
        .route(
            "/empty",
            get(move || async move {
                hooks(&empty);
            }),
        )
        .layer(StackholmLayer::new())
}

#[derive(Debug, PartialEq)]
struct Reply {
    status: u16,
    chunked: bool,
    body: String,
}

/// One keep-alive connection, one request at a time.
struct Connection(BufReader<TcpStream>);

impl Connection {
    async fn open(addr: SocketAddr) -> Self {
        Self(BufReader::new(TcpStream::connect(addr).await.unwrap()))
    }

    async fn get(&mut self, path: &str) -> Reply {
        let request = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
        self.0
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.read_reply(path))
            .await
            .unwrap_or_else(|_| panic!("no answer to GET {path} in time"))
    }

    async fn read_reply(&mut self, path: &str) -> Reply {
        let status_line = self.line(path).await;
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not a status line: {status_line:?}"));
        let (mut length, mut chunked) = (0, false);
        loop {
            let header = self.line(path).await;
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').expect("a header line");
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().unwrap();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                assert!(!value.eq_ignore_ascii_case("close"), "GET {path}: {header}");
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let size_line = self.line(path).await;
                let size = size_line.split(';').next().unwrap();
                let size = usize::from_str_radix(size.trim(), 16).unwrap();
                if size == 0 {
                    // No trailers are sent: the blank line ends the body.
                    assert_eq!(self.line(path).await, "");
                    break;
                }
                body.extend(self.bytes(size, path).await);
                assert_eq!(self.line(path).await, "", "a chunk ends with CRLF");
            }
        } else {
            body = self.bytes(length, path).await;
        }
        Reply {
            status,
            chunked,
            body: String::from_utf8(body).unwrap(),
        }
    }

    /// A line without its CRLF; the server closing the connection first is
    /// the defect under test, told as such.
    async fn line(&mut self, path: &str) -> String {
        let mut line = String::new();
        let read = self.0.read_line(&mut line).await.unwrap();
        assert!(
            read > 0 && line.ends_with("\r\n"),
            "the server closed the connection during GET {path} (got {line:?})"
        );
        line.truncate(line.len() - 2);
        line
    }

    async fn bytes(&mut self, n: usize, path: &str) -> Vec<u8> {
        let mut bytes = vec![0; n];
        self.0
            .read_exact(&mut bytes)
            .await
            .unwrap_or_else(|err| panic!("the body of GET {path} was cut short: {err}"));
        bytes
    }
}

/// Two requests to `path` on one connection, each answered whole, and each
/// ending a request whose other hooks were told it succeeded.
async fn twice_on_one_connection(path: &str, expected: Reply) {
    let log = Arc::new(Log::default());
    let addr = serve(app(&log)).await;
    let mut connection = Connection::open(addr).await;
    for request in 1..=2 {
        assert_eq!(connection.get(path).await, expected);
        assert_eq!(log.panics.load(Ordering::SeqCst), request);
        assert_eq!(
            log.endings.lock().unwrap().pop(),
            Some((Outcome::Left, Some(200), true)),
            "the panic stopped no other hook, and changed nothing they saw"
        );
    }
}

#[tokio::test]
async fn a_hook_panicking_after_a_full_body_leaves_the_response_and_connection_whole() {
    let expected = Reply {
        status: 200,
        chunked: false,
        body: "all of it".to_owned(),
    };
    twice_on_one_connection("/full", expected).await;
}

#[tokio::test]
async fn a_hook_panicking_after_a_streamed_body_leaves_the_response_and_connection_whole() {
    let expected = Reply {
        status: 200,
        chunked: true,
        body: "chunk 0;chunk 1;chunk 2;".to_owned(),
    };
    twice_on_one_connection("/stream", expected).await;
}

#[tokio::test]
async fn a_hook_panicking_with_an_empty_body_leaves_the_response_and_connection_whole() {
    let expected = Reply {
        status: 200,
        chunked: false,
        body: String::new(),
    };
    twice_on_one_connection("/empty", expected).await;
}

/// A response dropped unfinished (a client gone, an HTTP/2 stream reset)
/// ends its request `Cancelled` inside hyper's connection task: a root exit
/// hook panicking then goes no further either, whether the response future
/// or its body is dropped.
#[test]
fn a_hook_panicking_when_a_response_is_dropped_unfinished_goes_no_further() {
    use std::future::Future;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use http_body_util::Full;
    use tower::{service_fn, Layer, Service};

    let log = Arc::new(Log::default());
    let hooked = Arc::clone(&log);
    let mut service = StackholmLayer::new().layer(service_fn(move |_: http::Request<()>| {
        hooks(&hooked);
        std::future::ready(Ok::<_, Infallible>(http::Response::new(Full::new(
            Bytes::from_static(b"never sent"),
        ))))
    }));

    let future = service.call(http::Request::new(()));
    let dropped = catch_unwind(AssertUnwindSafe(|| drop(future)));
    assert!(
        dropped.is_ok(),
        "dropping the response future did not panic"
    );

    let mut cx = Context::from_waker(Waker::noop());
    let future = pin!(service.call(http::Request::new(())));
    let Poll::Ready(Ok(response)) = future.poll(&mut cx) else {
        panic!("the response is ready at once");
    };
    let body = response.into_body();
    let dropped = catch_unwind(AssertUnwindSafe(|| drop(body)));
    assert!(dropped.is_ok(), "dropping the body did not panic");

    assert_eq!(log.panics.load(Ordering::SeqCst), 2);
    assert_eq!(
        *log.endings.lock().unwrap(),
        [
            (Outcome::Cancelled, None, false),
            (Outcome::Cancelled, Some(200), false),
        ],
        "the panic stopped no other hook"
    );
}
