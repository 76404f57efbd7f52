//! The SPDY/3 header-compression dictionary (draft 3, section 2.6.10.1).
//!
//! Both directions of a SPDY/3 session compress header blocks with one long-lived zlib stream primed with
//! this dictionary; a single wrong byte makes the peer's `inflateSetDictionary` fail (the dictionary's adler32
//! is in the zlib header), so it is built here from the specification's parts rather than typed as one blob:
//! a run of length-prefixed header names and values, then a run of plain text. The unit test pins its length
//! and adler32, and the integration tests prove it against containerd's (Go) implementation.

use std::sync::OnceLock;

/// The length-prefixed entries, in specification order.
const ENTRIES: &[&str] = &[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// The plain-text tail: status codes, reason phrases, dates and common values.
const TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information",
    "204 No Content",
    "301 Moved Permanently",
    "400 Bad Request",
    "401 Unauthorized",
    "403 Forbidden",
    "404 Not Found",
    "500 Internal Server Error",
    "501 Not Implemented",
    "503 Service Unavailable",
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec",
    " 00:00:00",
    " Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,",
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

/// The dictionary bytes (1423 of them).
pub fn dictionary() -> &'static [u8] {
    static DICTIONARY: OnceLock<Vec<u8>> = OnceLock::new();
    DICTIONARY.get_or_init(|| {
        let mut out = Vec::with_capacity(1423);
        for entry in ENTRIES {
            out.extend_from_slice(&(entry.len() as u32).to_be_bytes());
            out.extend_from_slice(entry.as_bytes());
        }
        out.extend_from_slice(TAIL.as_bytes());
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// zlib's adler32, to pin the dictionary id a peer checks.
    fn adler32(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &byte in data {
            a = (a + u32::from(byte)) % 65521;
            b = (b + a) % 65521;
        }
        (b << 16) | a
    }

    #[test]
    fn has_the_specified_size_and_shape() {
        let dict = dictionary();
        assert_eq!(dict.len(), 1423);
        assert_eq!(&dict[..11], b"\0\0\0\x07options");
        assert!(dict.ends_with(b"utf-,*,enq=0."));
        // The id every SPDY/3 zlib header block names (FDICT), as sent by Go's and Chromium's framers.
        assert_eq!(adler32(dict), 0xe3c6_a7c2);
    }
}
