//! A small HTTP client over loopback, for the example and the tests.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;

/// What went wrong with a request: connecting, sending or reading.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A keep-alive HTTP/1 client for one server.
#[derive(Clone, Debug)]
pub struct Client {
    inner: HyperClient<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Client {
    /// A client for the server at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            inner: HyperClient::builder(TokioExecutor::new()).build_http(),
            base: format!("http://{addr}"),
        }
    }

    /// Sends a request with the given headers and reads the whole body.
    ///
    /// # Errors
    ///
    /// If the request cannot be built, sent, or its body read.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<(StatusCode, String), Error> {
        self.send_body(method, path, headers, Bytes::new()).await
    }

    /// Sends a request with a JSON body and reads the whole response body.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        json: &str,
    ) -> Result<(StatusCode, String), Error> {
        let mut headers = headers.to_vec();
        headers.push(("content-type", "application/json"));
        self.send_body(
            method,
            path,
            &headers,
            Bytes::copy_from_slice(json.as_bytes()),
        )
        .await
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, http::Error> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(Full::new(body))
    }

    async fn send_body(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<(StatusCode, String), Error> {
        let response = self
            .inner
            .request(self.request(method, path, headers, body)?)
            .await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8(body.to_vec())?))
    }

    /// Sends a request and returns the body's chunks as they arrive.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn chunks(&self, path: &str, headers: &[(&str, &str)]) -> Result<Vec<String>, Error> {
        let mut body = self
            .inner
            .request(self.request(Method::GET, path, headers, Bytes::new())?)
            .await?
            .into_body();
        let mut chunks = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                chunks.push(String::from_utf8(data.to_vec())?);
            }
        }
        Ok(chunks)
    }
}
