//! The one HTTP client configuration for everything the daemon fetches (the
//! TFTP HTTP root, the HTTP ACL, boot file sizes for DHCP option 13), so
//! that every fetch follows the same policy.

use std::io;
use std::time::Duration;

/// A client for the daemon's own fetches. Callers bound each request (or
/// each body chunk) themselves: a whole-request timeout here would cut a
/// long file download short.
///
/// - No proxy: the servers fetched from are local infrastructure, and a
///   proxy taken from `HTTP_PROXY` for one fetch but not another would make
///   a file's size and its bytes come from different hosts.
/// - No redirects: a mirror's `302` to `http://127.0.0.1:...` would make
///   the daemon fetch from its own loopback on a client's behalf. A
///   redirect is therefore an error status for that file (a 3xx answer is
///   returned as it is, and callers treat any non-2xx as a failure).
/// - `connect_timeout`: a dead server fails within it.
pub fn client(connect_timeout: Duration) -> io::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect_timeout)
        .build()
        .map_err(|e| io::Error::other(format!("HTTP client: {e}")))
}
