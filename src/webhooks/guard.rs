//! The SSRF guard (API.md §7): callbacks go to public addresses only, unless the
//! installation allows private ones (`VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS`, for development
//! and the sandbox). Hostnames are resolved here and the connection is made to an address
//! that passed ([`GuardedResolver`]), so a DNS answer cannot change between check and use.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::webhook_url::WebhookUrl;

/// Whether `ip` is an address callbacks may never reach (unless private targets are
/// allowed): loopback, RFC 1918, link-local (incl. 169.254.169.254), CGNAT, multicast,
/// unspecified, broadcast, documentation and benchmarking ranges; IPv6 loopback, ULA,
/// link-local, multicast, and IPv4-mapped forms of the above.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => forbidden_v4(v4),
            None => forbidden_v6(v6),
        },
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18/15
        || a >= 240 // reserved
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let [first, second, third, ..] = ip.segments();
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (first & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
        || (first == 0x2001 && second == 0x0db8) // documentation
        // Addresses that carry an IPv4 address to some gateway, which may be a private
        // one: refused whole rather than judged by the address inside.
        || ip.segments()[..6] == [0; 6] // IPv4-compatible ::a.b.c.d (deprecated)
        || (first == 0x0064 && second == 0xff9b && (third == 0 || third == 1)) // NAT64 64:ff9b::/96, 64:ff9b:1::/48
        || first == 0x2002 // 6to4 2002::/16
        || (first == 0x2001 && second == 0) // Teredo 2001::/32
        || (first == 0x0100 && second == 0 && third == 0 && ip.segments()[3] == 0) // discard-only 100::/64
}

/// The address a URL's host names literally (`10.0.0.1`, `[::1]`), if it is one.
pub fn address_literal(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// The setting that lets callbacks reach private addresses, named in refusals.
pub const ALLOW_PRIVATE_VAR: &str = "VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS";

/// A callback URL that points where callbacks may not go; its text names the field and
/// the setting that would allow it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{field} must not point to a private or reserved address (set {ALLOW_PRIVATE_VAR}=true to allow it, e.g. for a trial on one machine)"
)]
pub struct TargetRefused {
    /// The field that holds the URL (`notifyUrl`, `statusUrl`, …).
    pub field: String,
}

/// [`check_target`] of each `(field, url)`; the first refusal.
pub async fn check_targets<'a>(
    urls: impl IntoIterator<Item = (&'static str, &'a WebhookUrl)>,
    allow_private: bool,
) -> Result<(), TargetRefused> {
    for (field, url) in urls {
        check_target(field, url.as_str(), allow_private).await?;
    }
    Ok(())
}

/// How long a target check at acceptance waits for DNS.
const CHECK_DNS_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Checks a callback URL given in a request: an address literal, or a hostname that
/// resolves only to addresses callbacks may not reach, is refused (`field` names it). A
/// name that does not resolve now is let through: the dispatcher checks again at
/// delivery, so a passing DNS failure does not refuse a customer's call.
pub async fn check_target(
    field: &str,
    url: &str,
    allow_private: bool,
) -> Result<(), TargetRefused> {
    if allow_private {
        return Ok(());
    }
    let refused = || TargetRefused {
        field: field.to_string(),
    };
    let Some(host) = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
    else {
        return Err(refused());
    };
    if let Some(ip) = address_literal(&host) {
        return if is_forbidden(ip) {
            Err(refused())
        } else {
            Ok(())
        };
    }
    let lookup = tokio::time::timeout(
        CHECK_DNS_WITHIN,
        tokio::net::lookup_host((host.as_str(), 0)),
    )
    .await;
    match lookup {
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if !addrs.is_empty() && addrs.iter().all(|a| is_forbidden(a.ip())) {
                Err(refused())
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// Resolves hostnames for the dispatcher's HTTP client and keeps only addresses callbacks
/// may reach; a host with none fails to resolve (the attempt fails, naming the reason).
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    /// Private targets allowed (development).
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| allow_private || !is_forbidden(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(format!(
                    "{host} resolves only to private or reserved addresses ({ALLOW_PRIVATE_VAR} is false)"
                )
                .into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

impl GuardedResolver {
    /// The resolver as reqwest takes it.
    pub fn shared(self) -> Arc<Self> {
        Arc::new(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_table() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::",
            "198.18.0.1",
            "240.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::808:808",
            "64:ff9b:1::a00:1",
            "2002:7f00:1::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "::127.0.0.1",
            "::10.0.0.1",
            "::8.8.8.8",
            "fec0::1",
            "100::1",
        ] {
            assert!(is_forbidden(bad.parse().unwrap()), "{bad}");
        }
        for good in [
            "8.8.8.8",
            "1.1.1.1",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "2001:4860:4860::8888",
            "64:ff9c::1",
        ] {
            assert!(!is_forbidden(good.parse().unwrap()), "{good}");
        }
    }

    #[tokio::test]
    async fn targets_checked_at_acceptance() {
        for url in [
            "http://127.0.0.1:9/x",
            "http://[::1]/x",
            "http://localhost:8080/x",
            "http://169.254.169.254/latest",
        ] {
            assert_eq!(
                check_target("statusUrl", url, false).await.map_err(|e| e.to_string()),
                Err("statusUrl must not point to a private or reserved address (set VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS=true to allow it, e.g. for a trial on one machine)".to_string()),
                "{url}"
            );
            assert_eq!(check_target("statusUrl", url, true).await, Ok(()));
        }
        assert_eq!(
            check_target("cdrUrl", "https://8.8.8.8/x", false).await,
            Ok(())
        );
        // Not resolvable now: checked again at delivery.
        assert_eq!(
            check_target("cdrUrl", "https://no-such-host.invalid/x", false).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn localhost_is_refused_unless_allowed() {
        let name: Name = "localhost".parse().unwrap();
        let refused = GuardedResolver {
            allow_private: false,
        }
        .resolve(name)
        .await;
        assert!(refused.is_err());
        let name: Name = "localhost".parse().unwrap();
        let allowed = GuardedResolver {
            allow_private: true,
        }
        .resolve(name)
        .await;
        assert!(allowed.unwrap().any(|a| a.ip().is_loopback()));
    }
}
