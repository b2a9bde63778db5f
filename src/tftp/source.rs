//! TFTP's side of served bytes: the ERROR a file error becomes
//! ([`TftpError`]), netascii conversion both ways, and the names the rest
//! of TFTP uses from [`crate::files`] (re-exported here).

use std::io;

use crate::files::FileError;
pub use crate::files::{AnySource, Source, TextFile};
use crate::wire::tftp::code;

/// A TFTP protocol error: what goes in the ERROR packet to the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TftpError {
    pub code: u16,
    pub message: String,
}

impl TftpError {
    pub fn new(code: u16, message: impl Into<String>) -> TftpError {
        TftpError {
            code,
            message: message.into(),
        }
    }
    pub fn not_found() -> TftpError {
        TftpError::new(code::FILE_NOT_FOUND, "File not found")
    }
    pub fn access() -> TftpError {
        TftpError::new(code::ACCESS_VIOLATION, "Access violation")
    }
}

/// A file error as the client sees it.
impl From<FileError> for TftpError {
    fn from(e: FileError) -> TftpError {
        match e {
            FileError::NotFound => TftpError::not_found(),
            FileError::AccessDenied => TftpError::access(),
            FileError::NotRegular => TftpError::new(code::FILE_NOT_FOUND, "Not a regular file"),
            FileError::Upstream(message) => TftpError::new(code::NOT_DEFINED, message),
        }
    }
}

/// [`crate::files::components`] with its refusal as a TFTP error (uploads
/// follow the same name rules as reads).
pub fn components(name: &str) -> Result<Vec<&str>, TftpError> {
    crate::files::components(name).map_err(TftpError::from)
}

/// Netascii (RFC 764 via RFC 1350) on the way out: LF -> CR LF, CR -> CR NUL.
/// The converted size is not known in advance, so no `tsize`.
#[derive(Debug)]
pub struct NetasciiOut<S> {
    inner: S,
    pending: Option<u8>,
    scratch: Vec<u8>,
}

impl<S: Source> NetasciiOut<S> {
    pub fn new(inner: S) -> Self {
        NetasciiOut {
            inner,
            pending: None,
            scratch: Vec::new(),
        }
    }
}

impl<S: Source> Source for NetasciiOut<S> {
    fn size(&self) -> Option<u64> {
        None
    }
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut o = 0;
        if let Some(p) = self.pending.take() {
            buf[0] = p;
            o = 1;
            if o == buf.len() {
                return Ok(o);
            }
        }
        // Each raw byte becomes at most two: read half the room.
        let want = ((buf.len() - o) / 2).max(1);
        self.scratch.resize(want, 0);
        let n = self.inner.read(&mut self.scratch[..want]).await?;
        for &b in &self.scratch[..n] {
            let (a, c) = match b {
                b'\n' => (b'\r', Some(b'\n')),
                b'\r' => (b'\r', Some(0)),
                x => (x, None),
            };
            buf[o] = a;
            o += 1;
            if let Some(c) = c {
                if o < buf.len() {
                    buf[o] = c;
                    o += 1;
                } else {
                    self.pending = Some(c);
                }
            }
        }
        Ok(o)
    }
}

/// Netascii on the way in (uploads): CR LF -> LF, CR NUL -> CR.
#[derive(Debug, Default)]
pub struct NetasciiIn {
    cr: bool,
}

impl NetasciiIn {
    /// Converts `data`, appending to `out`.
    pub fn convert(&mut self, data: &[u8], out: &mut Vec<u8>) {
        for &b in data {
            if self.cr {
                self.cr = false;
                match b {
                    b'\n' => {
                        out.push(b'\n');
                        continue;
                    }
                    0 => {
                        out.push(b'\r');
                        continue;
                    }
                    _ => out.push(b'\r'),
                }
            }
            if b == b'\r' {
                self.cr = true;
            } else {
                out.push(b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_errors_keep_their_tftp_codes() {
        assert_eq!(components("../x"), Err(TftpError::access()));
        assert_eq!(components("/"), Err(TftpError::not_found()));
        let e = TftpError::from(FileError::NotRegular);
        assert_eq!((e.code, e.message.as_str()), (1, "Not a regular file"));
        let e = TftpError::from(FileError::Upstream("Upstream HTTP 302".into()));
        assert_eq!((e.code, e.message.as_str()), (0, "Upstream HTTP 302"));
    }

    async fn read_all<S: Source>(mut s: S, chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![0; chunk];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[tokio::test]
    async fn netascii_both_ways() {
        let raw = b"a\nb\rc\r\n\n".to_vec();
        for chunk in [1, 2, 3, 512] {
            let enc = read_all(NetasciiOut::new(TextFile::new(raw.clone())), chunk).await;
            assert_eq!(enc, b"a\r\nb\r\0c\r\0\r\n\r\n");
            let mut dec = NetasciiIn::default();
            let mut out = Vec::new();
            for part in enc.chunks(chunk) {
                dec.convert(part, &mut out);
            }
            assert_eq!(out, raw);
        }
    }
}
