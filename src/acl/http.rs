//! The HTTP ACL check (`[http]`): its question and answer, and one GET per
//! question, bounded by the configured timeout, with the daemon's one HTTP
//! client policy ([`crate::fetch::client`]: no proxy, no redirects).
//! Async, so that while one client waits for the answer every other client
//! is still served.

use std::time::Duration;

use crate::wire::MacAddr;

/// A question for the HTTP ACL server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpQuery {
    /// The client asked about (one question in flight per MAC).
    pub mac: MacAddr,
    /// `location` + `pxe`/`dhcp` path + `?mac=..&uuid=..&ip=..`.
    pub url: String,
}

/// What the HTTP ACL server said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpAnswer {
    /// 200: served; the body's `Client:` and `File:` lines.
    Granted {
        client: Option<String>,
        file: Option<String>,
    },
    /// 401, any other status, an error or no answer in time.
    Denied(String),
}

/// A reusable client for the ACL server.
#[derive(Clone)]
pub struct HttpAcl {
    client: reqwest::Client,
    timeout: Duration,
}

impl HttpAcl {
    pub fn new(timeout: Duration) -> Result<HttpAcl, String> {
        let client = crate::fetch::client(timeout)
            .map_err(|e| format!("cannot build the HTTP ACL client: {e}"))?;
        Ok(HttpAcl { client, timeout })
    }

    /// Asks `url`: 200 grants (with the body's `Client:`/`File:` lines),
    /// anything else, an error, a body over [`MAX_BODY`] or no answer
    /// within the timeout denies.
    pub async fn check(&self, url: &str) -> HttpAnswer {
        // One bound for the whole exchange: connecting, the head, the body.
        match tokio::time::timeout(self.timeout, self.ask(url)).await {
            Ok(Ok(a)) => a,
            Ok(Err(why)) => HttpAnswer::Denied(why),
            Err(_) => HttpAnswer::Denied(format!("{url}: no answer within {:?}", self.timeout)),
        }
    }

    async fn ask(&self, url: &str) -> Result<HttpAnswer, String> {
        let mut resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status();
        if status != reqwest::StatusCode::OK {
            return Err(format!("{url}: HTTP {status}"));
        }
        // Chunk by chunk, stopping past the cap: a hostile or broken ACL
        // server's endless answer must not grow the daemon's memory.
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(format!("{url}: answer over {MAX_BODY} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(parse_body(&String::from_utf8_lossy(&body)))
    }
}

/// The largest ACL answer read: two short lines are all it needs.
pub const MAX_BODY: usize = 64 * 1024;

/// Reads `Client: NAME` and `File: NAME` lines (keys case-insensitive)
/// from a 200 body.
pub fn parse_body(body: &str) -> HttpAnswer {
    let (mut client, mut file) = (None, None);
    for line in body.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        match k.trim().to_ascii_lowercase().as_str() {
            "client" => client = Some(v.to_string()),
            "file" => file = Some(v.to_string()),
            _ => {}
        }
    }
    HttpAnswer::Granted { client, file }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_lines() {
        assert_eq!(
            parse_body("Client: box1\nfile:  boot/x.cfg \nnoise\nOther: 1\n"),
            HttpAnswer::Granted {
                client: Some("box1".into()),
                file: Some("boot/x.cfg".into())
            }
        );
        assert_eq!(
            parse_body(""),
            HttpAnswer::Granted {
                client: None,
                file: None
            }
        );
    }
}
