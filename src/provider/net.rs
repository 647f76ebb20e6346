//! Endpoint policy for providers that reach a key service over a network.
//!
//! Every network provider lockbox ships checks its endpoint with
//! [`require_tls_or_loopback`] before it sends anything; a third-party
//! provider should do the same, so that one policy holds for all of them.

use crate::error::Error;

/// Checks that a key-service endpoint is `https://`, or `http://` on a
/// loopback host (`127.0.0.0/8`, `[::1]`, `localhost`) for local test servers.
///
/// Plain HTTP elsewhere would send the credentials (a Vault token, an AWS
/// session token) and the plaintext data keys that unwrap returns across the
/// network in the clear, so it is refused rather than merely discouraged.
/// Userinfo (`user@host`) is refused on plain HTTP, so a loopback-looking
/// prefix cannot smuggle another host.
///
/// ```
/// use lockbox::provider::net::require_tls_or_loopback;
/// assert!(require_tls_or_loopback("https://kms.eu-west-1.example").is_ok());
/// assert!(require_tls_or_loopback("http://127.0.0.1:4566").is_ok());
/// assert!(require_tls_or_loopback("http://vault.internal:8200").is_err());
/// ```
pub fn require_tls_or_loopback(url: &str) -> Result<(), Error> {
    const BAD: Error = Error::InvalidArgument {
        what: "endpoint must be an https:// URL, or http:// on a loopback address",
    };
    let lower = url.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("https://") {
        return if authority(rest).is_empty() { Err(BAD) } else { Ok(()) };
    }
    let rest = lower.strip_prefix("http://").ok_or(BAD)?;
    let auth = authority(rest);
    if auth.contains('@') {
        return Err(BAD);
    }
    let host = if let Some(v6) = auth.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        auth.split(':').next().unwrap_or_default()
    };
    if is_loopback(host) { Ok(()) } else { Err(BAD) }
}

fn authority(rest: &str) -> &str {
    rest.split(['/', '?', '#']).next().unwrap_or_default()
}

fn is_loopback(host: &str) -> bool {
    if host == "localhost" || host == "::1" {
        return true;
    }
    let mut parts = host.split('.');
    let first = parts.next();
    let rest: alloc::vec::Vec<&str> = parts.collect();
    first == Some("127")
        && rest.len() == 3
        && rest
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u8>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::require_tls_or_loopback as check_endpoint;

    #[test]
    fn endpoints_must_be_tls_or_loopback() {
        for ok in [
            "https://kms.eu-west-1.example",
            "https://vault.internal:8200/",
            "http://127.0.0.1:4566",
            "http://127.1.2.3/",
            "HTTP://LOCALHOST:8200",
            "http://[::1]:8200",
        ] {
            assert!(check_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:8200",
            "http://vault.internal:8200",
            "http://127.0.0.1.evil.example/",
            "http://127.0.0.1@evil.example/",
            "http://[::2]:8200",
            "ftp://127.0.0.1",
            "https://",
            "127.0.0.1:8200",
            "",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }
}
