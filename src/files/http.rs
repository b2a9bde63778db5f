//! An `http://` root: names are fetched on the client's behalf and the body
//! streamed, one chunk held at a time.

use std::io;
use std::time::Duration;

use super::{components, FileError, Source};

/// An `http://` URL prefix; names are fetched on the client's behalf.
#[derive(Clone, Debug)]
pub struct HttpRoot {
    prefix: String,
    client: reqwest::Client,
    /// Longest wait for the server: to answer, and for each body chunk.
    timeout: Duration,
}

/// Characters left as they are in a URL path; the rest is %-encoded (a `?`
/// or `#` in a TFTP name must not become a query or fragment).
fn url_path_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The Content-Length header itself: reqwest's `content_length()` is not
/// the header for every response kind (it is 0 for a HEAD).
fn content_length(resp: &reqwest::Response) -> Option<u64> {
    resp.headers()
        .get(reqwest::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

impl HttpRoot {
    /// `client` should come from [`crate::fetch::client`] (no proxy, no
    /// redirects).
    pub fn new(prefix: &str, client: reqwest::Client, timeout: Duration) -> HttpRoot {
        HttpRoot {
            prefix: prefix.trim_end_matches('/').to_string(),
            client,
            timeout,
        }
    }

    pub fn url_for(&self, name: &str) -> Result<String, FileError> {
        let parts: Vec<String> = components(name)?.into_iter().map(url_path_escape).collect();
        Ok(format!("{}/{}", self.prefix, parts.join("/")))
    }

    /// Sends `req` within the timeout and maps the status: 404/410 is "not
    /// found", 401/403 "access denied", any other non-2xx (a redirect
    /// included: none is followed) an upstream error.
    async fn send(
        &self,
        url: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, FileError> {
        let resp = match tokio::time::timeout(self.timeout, req.send()).await {
            Err(_) => {
                tracing::warn!(%url, "HTTP root: no answer in time");
                return Err(FileError::Upstream("Upstream timed out".into()));
            }
            Ok(Err(e)) => {
                tracing::warn!(%url, "HTTP root: {e}");
                return Err(FileError::Upstream("Upstream unreachable".into()));
            }
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
            return Err(FileError::NotFound);
        }
        if status == reqwest::StatusCode::FORBIDDEN || status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(FileError::AccessDenied);
        }
        if !status.is_success() {
            tracing::warn!(%url, %status, "HTTP root: error status");
            return Err(FileError::Upstream(format!(
                "Upstream HTTP {}",
                status.as_u16()
            )));
        }
        Ok(resp)
    }

    /// Starts a GET; the body is streamed by the returned source. A 404 is
    /// "file not found"; a dead or slow server an error within the timeout.
    pub async fn open(&self, name: &str) -> Result<HttpFile, FileError> {
        let url = self.url_for(name)?;
        let resp = self.send(&url, self.client.get(&url)).await?;
        Ok(HttpFile {
            size: content_length(&resp),
            url,
            resp,
            pending: bytes::Bytes::new(),
            got: 0,
            timeout: self.timeout,
        })
    }

    /// A HEAD's Content-Length, when the server answers 2xx in time.
    pub async fn size(&self, name: &str) -> Option<u64> {
        let url = self.url_for(name).ok()?;
        let resp = self.send(&url, self.client.head(&url)).await.ok()?;
        content_length(&resp)
    }
}

/// A streamed HTTP body: at most one received chunk is held, so memory per
/// transfer stays near a window, whatever the file size.
#[derive(Debug)]
pub struct HttpFile {
    url: String,
    resp: reqwest::Response,
    size: Option<u64>,
    pending: bytes::Bytes,
    got: u64,
    timeout: Duration,
}

/// Progress is logged (debug) every this many bytes of a proxied file.
const PROGRESS_EVERY: u64 = 16 << 20;

impl HttpFile {
    /// The next body chunk into `pending`; `false` at the end of the body
    /// (an error if it is shorter than its Content-Length).
    async fn next_chunk(&mut self) -> io::Result<bool> {
        let chunk = tokio::time::timeout(self.timeout, self.resp.chunk())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "upstream HTTP stalled"))?
            .map_err(|e| io::Error::other(format!("upstream HTTP: {e}")))?;
        let Some(c) = chunk else {
            if let Some(want) = self.size.filter(|w| *w != self.got) {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("upstream HTTP body ended at {} of {want} bytes", self.got),
                ));
            }
            return Ok(false);
        };
        let before = self.got / PROGRESS_EVERY;
        self.got += c.len() as u64;
        if self.got / PROGRESS_EVERY != before {
            tracing::debug!(url = %self.url, bytes = self.got, "HTTP root: fetching");
        }
        self.pending = c;
        Ok(true)
    }
}

impl Source for HttpFile {
    fn size(&self) -> Option<u64> {
        self.size
    }
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pending.is_empty() && !self.next_chunk().await? {
            return Ok(0);
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        let _ = self.pending.split_to(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_escaping() {
        let h = HttpRoot::new(
            "http://h:1/p/",
            reqwest::Client::new(),
            Duration::from_secs(1),
        );
        assert_eq!(
            h.url_for("/a b/c?d#e").unwrap(),
            "http://h:1/p/a%20b/c%3Fd%23e"
        );
        assert!(h.url_for("../etc").is_err());
    }
}
