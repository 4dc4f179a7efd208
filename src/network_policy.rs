//! Why: a resource's host is where the gateway opens connections with vault credentials. A
//! user with Modify could point a resource at the gateway's own loopback services, a cloud
//! metadata address (link-local) or any network the gateway can reach. The administrator's
//! `resource_networks` setting says where resources may point: by default anywhere but
//! loopback, link-local, unspecified and multicast addresses; or exactly a list of networks.
//! Checked when a resource's host is set (an address, or `localhost`) and, for a direct
//! connection, on the addresses the host name resolves to at launch.

use std::net::IpAddr;

/// A network: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// `10.0.0.0/8`, `::1/128`, or a bare address (one host).
    pub fn parse(s: &str) -> Option<Network> {
        let (a, p) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Network { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Where resources may point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResourceNetworks {
    /// Anywhere but loopback, link-local, unspecified and multicast addresses.
    Default,
    /// Exactly these networks.
    Only(Vec<Network>),
}

impl ResourceNetworks {
    /// `default`, or a comma-separated list of networks.
    pub fn parse(s: &str) -> Option<ResourceNetworks> {
        if s.trim() == "default" {
            return Some(ResourceNetworks::Default);
        }
        let nets: Option<Vec<Network>> = s.split(',').map(Network::parse).collect();
        nets.filter(|n| !n.is_empty()).map(ResourceNetworks::Only)
    }

    /// Why `ip` is refused, or None when resources may point at it.
    pub fn refusal(&self, ip: IpAddr) -> Option<String> {
        // An IPv4 address written as IPv6 (::ffff:127.0.0.1) is judged as what it is.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match self {
            ResourceNetworks::Default => {
                let special = ip.is_loopback()
                    || ip.is_unspecified()
                    || ip.is_multicast()
                    || match ip {
                        IpAddr::V4(v4) => v4.is_link_local() || v4.is_broadcast(),
                        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
                    };
                special.then(|| format!("{ip} is a loopback, link-local, unspecified or multicast address, which resources may not point at (the administrator's resource_networks setting)"))
            }
            ResourceNetworks::Only(nets) => (!nets.iter().any(|n| n.contains(ip))).then(|| {
                format!("{ip} is outside the networks resources may point at (the administrator's resource_networks setting)")
            }),
        }
    }

    /// Checks a host as typed: an address is judged at once; `localhost` is loopback.
    pub fn check_host(&self, host: &str) -> Result<(), String> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let ip = if bare.eq_ignore_ascii_case("localhost") {
            Some(IpAddr::from([127, 0, 0, 1]))
        } else {
            bare.parse::<IpAddr>().ok()
        };
        match ip.and_then(|ip| self.refusal(ip)) {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }
}

/// For a direct connection: the addresses `host` resolves to, each checked (a name may
/// resolve to a loopback address). A name that does not resolve is left to the connection,
/// which reports it.
pub async fn check_resolved(
    policy: &ResourceNetworks,
    host: &str,
    port: u16,
) -> Result<(), String> {
    policy.check_host(host)?;
    let Ok(addrs) = tokio::net::lookup_host((host, port)).await else {
        return Ok(());
    };
    for a in addrs {
        if let Some(why) = policy.refusal(a.ip()) {
            return Err(format!("{host} resolves to {}: {why}", a.ip()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_refuses_the_gateways_own_and_special_addresses() {
        let d = ResourceNetworks::Default;
        for bad in [
            "127.0.0.1",
            "127.9.9.9",
            "localhost",
            "::1",
            "[::1]",
            "169.254.169.254",
            "fe80::1",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "::ffff:127.0.0.1",
        ] {
            assert!(d.check_host(bad).is_err(), "{bad}");
        }
        for ok in [
            "10.0.0.5",
            "192.168.1.1",
            "db1.example.com",
            "2001:db8::1",
            "8.8.8.8",
        ] {
            assert!(d.check_host(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn a_list_allows_exactly_its_networks() {
        let only =
            ResourceNetworks::parse("10.0.0.0/8, 192.168.10.0/24,2001:db8::/32").expect("parses");
        assert!(only.check_host("10.200.3.4").is_ok());
        assert!(only.check_host("192.168.10.77").is_ok());
        assert!(only.check_host("2001:db8::5").is_ok());
        assert!(only.check_host("192.168.11.1").is_err());
        assert!(only.check_host("127.0.0.1").is_err());
        let all = ResourceNetworks::parse("0.0.0.0/0,::/0").expect("parses");
        assert!(all.check_host("127.0.0.1").is_ok() && all.check_host("::1").is_ok());
        assert_eq!(ResourceNetworks::parse("10.0.0.0/33"), None);
        assert_eq!(ResourceNetworks::parse("nonsense"), None);
    }
}
