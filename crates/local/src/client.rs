//! A small blocking HTTP/1.1 client for the CLI's client commands and the end-to-end tests
//! (127.0.0.1 only; one request per connection).

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Client errors.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `http://host:port[/path]`.
    #[error("bad URL '{0}': expected http://HOST:PORT")]
    Url(String),
    /// Connection or I/O failure.
    #[error("cannot reach {url}: {source}")]
    Io {
        /// The server.
        url: String,
        /// Error.
        source: std::io::Error,
    },
    /// The answer is not HTTP.
    #[error("malformed HTTP response from {0}")]
    Malformed(String),
}

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Body.
    pub body: String,
}

impl Response {
    /// The body as JSON (`null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// A client of one server.
#[derive(Debug, Clone)]
pub struct Client {
    host: String,
    base: String,
    /// Headers sent with every request.
    pub headers: Vec<(String, String)>,
    /// Read/write timeout.
    pub timeout: Duration,
}

impl Client {
    /// A client for `http://HOST:PORT`.
    pub fn new(url: &str) -> Result<Client, ClientError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| ClientError::Url(url.into()))?;
        let host = rest.split('/').next().unwrap_or("").to_string();
        if host.is_empty() || !host.contains(':') {
            return Err(ClientError::Url(url.into()));
        }
        Ok(Client {
            base: format!("http://{host}"),
            host,
            headers: Vec::new(),
            timeout: Duration::from_secs(30),
        })
    }

    /// Adds a header to every request.
    pub fn with_header(mut self, name: &str, value: &str) -> Client {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Sends a request.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Result<Response, ClientError> {
        let io = |source| ClientError::Io {
            url: self.base.clone(),
            source,
        };
        let mut s = TcpStream::connect(&self.host).map_err(io)?;
        s.set_read_timeout(Some(self.timeout)).map_err(io)?;
        s.set_write_timeout(Some(self.timeout)).map_err(io)?;
        let body = body.unwrap_or("");
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        );
        for (k, v) in &self.headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        for (k, v) in extra {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        s.write_all(req.as_bytes()).map_err(io)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).map_err(io)?;
        parse_response(&raw).ok_or_else(|| ClientError::Malformed(self.base.clone()))
    }

    /// GET.
    pub fn get(&self, path: &str) -> Result<Response, ClientError> {
        self.request("GET", path, None, &[])
    }

    /// POST a JSON value.
    pub fn post(&self, path: &str, body: &Value) -> Result<Response, ClientError> {
        self.request("POST", path, Some(&body.to_string()), &[])
    }

    /// A GraphQL request.
    pub fn graphql(&self, query: &str, variables: Value) -> Result<Response, ClientError> {
        self.post(
            "/graphql",
            &serde_json::json!({"query": query, "variables": variables}),
        )
    }
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut chunked = false;
    for l in lines {
        let lower = l.to_ascii_lowercase();
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    let body = &raw[end + 4..];
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Some(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..nl]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[nl + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_responses() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").expect("plain");
        assert_eq!((r.status, r.body.as_str()), (200, "{}"));
        let r = parse_response(b"HTTP/1.1 401 Unauthorized\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            .expect("chunked");
        assert_eq!((r.status, r.body.as_str()), (401, "abcde"));
        assert!(parse_response(b"garbage").is_none());
        assert!(Client::new("https://x").is_err());
        assert!(Client::new("http://127.0.0.1:1").is_ok());
    }
}
