//! Who may use the proxy: the `--allow` list and `--auth` credentials.
//!
//! A proxy that decrypts TLS with its own CA must never become an open
//! relay. Checks run on every request that arrives on a client connection
//! (plain HTTP requests and CONNECT); requests inside an intercepted CONNECT
//! inherit the verdict given to that CONNECT.

use base64::Engine;
use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;

/// `user:pass` for `Proxy-Authorization: Basic`. `Debug` never shows the
/// password.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyAuth {
    user: String,
    /// The expected header value, `Basic <base64(user:pass)>`.
    expected: String,
}

impl ProxyAuth {
    /// Parses `user:pass`; the password may contain `:`.
    pub fn parse(spec: &str) -> Result<ProxyAuth, String> {
        let Some((user, pass)) = spec.split_once(':') else {
            return Err("--auth wants user:pass (with a colon)".into());
        };
        if user.is_empty() || pass.is_empty() {
            return Err("--auth wants a non-empty user and password (user:pass)".into());
        }
        let token = base64::engine::general_purpose::STANDARD.encode(spec);
        Ok(ProxyAuth {
            user: user.to_owned(),
            expected: format!("Basic {token}"),
        })
    }

    /// True when `header` (a Proxy-Authorization value) carries these
    /// credentials. The scheme name is case-insensitive (RFC 9110 §11.1).
    pub fn accepts(&self, header: Option<&[u8]>) -> bool {
        let Some(value) = header.and_then(|h| std::str::from_utf8(h).ok()) else {
            return false;
        };
        let Some((scheme, token)) = value.trim().split_once(' ') else {
            return false;
        };
        let expected_token = &self.expected["Basic ".len()..];
        scheme.eq_ignore_ascii_case("basic")
            && constant_time_eq(token.trim().as_bytes(), expected_token.as_bytes())
    }

    pub fn user(&self) -> &str {
        &self.user
    }
}

impl fmt::Debug for ProxyAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ProxyAuth {{ user: {:?}, password: (redacted) }}",
            self.user
        )
    }
}

/// Compares without an early exit, so response timing does not reveal how
/// much of a guessed password was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Verdict for one client request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// The client's address is outside `--allow` (answer 403).
    AddressNotAllowed,
    /// Credentials missing or wrong (answer 407).
    AuthRequired,
}

/// The access policy of one proxy.
#[derive(Debug, Clone, Default)]
pub struct AccessPolicy {
    /// Networks allowed to use the proxy; empty means any client that can
    /// reach the listening socket.
    pub allow: Vec<IpNet>,
    pub auth: Option<ProxyAuth>,
}

impl AccessPolicy {
    pub fn check(&self, client: IpAddr, proxy_authorization: Option<&[u8]>) -> Verdict {
        let client = canonical(client);
        if !self.allow.is_empty() && !self.allow.iter().any(|net| net.contains(&client)) {
            return Verdict::AddressNotAllowed;
        }
        match &self.auth {
            Some(auth) if !auth.accepts(proxy_authorization) => Verdict::AuthRequired,
            _ => Verdict::Allowed,
        }
    }
}

/// IPv4 clients on a dual-stack socket appear as `::ffff:a.b.c.d`; compare
/// them as the IPv4 addresses users write in `--allow`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user_pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
    }

    #[test]
    fn auth_accepts_only_the_right_credentials() {
        let auth = ProxyAuth::parse("tester:s3:cret").unwrap();
        assert!(auth.accepts(Some(header("tester:s3:cret").as_bytes())));
        assert!(
            auth.accepts(Some(
                header("tester:s3:cret")
                    .replace("Basic", "basic")
                    .as_bytes()
            ))
        );
        assert!(!auth.accepts(Some(header("tester:wrong").as_bytes())));
        assert!(!auth.accepts(Some(b"Bearer abc")));
        assert!(!auth.accepts(None));
        assert!(!format!("{auth:?}").contains("s3:cret"));
    }

    #[test]
    fn auth_spec_errors_say_what_to_write() {
        assert!(
            ProxyAuth::parse("nocolon")
                .unwrap_err()
                .contains("user:pass")
        );
        assert!(ProxyAuth::parse(":pw").is_err());
    }

    #[test]
    fn allow_list_matches_networks_and_mapped_ipv4() {
        let policy = AccessPolicy {
            allow: vec!["10.0.2.0/24".parse().unwrap(), "::1/128".parse().unwrap()],
            auth: None,
        };
        assert_eq!(
            policy.check("10.0.2.15".parse().unwrap(), None),
            Verdict::Allowed
        );
        assert_eq!(
            policy.check("::ffff:10.0.2.15".parse().unwrap(), None),
            Verdict::Allowed
        );
        assert_eq!(policy.check("::1".parse().unwrap(), None), Verdict::Allowed);
        assert_eq!(
            policy.check("127.0.0.1".parse().unwrap(), None),
            Verdict::AddressNotAllowed
        );
    }

    #[test]
    fn empty_allow_list_admits_everyone_and_auth_still_applies() {
        let policy = AccessPolicy {
            allow: vec![],
            auth: Some(ProxyAuth::parse("a:b").unwrap()),
        };
        assert_eq!(
            policy.check("192.0.2.1".parse().unwrap(), None),
            Verdict::AuthRequired
        );
        assert_eq!(
            policy.check("192.0.2.1".parse().unwrap(), Some(header("a:b").as_bytes())),
            Verdict::Allowed
        );
    }
}
