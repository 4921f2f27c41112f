//! The addresses a metadata-document fetch may reach: a resolver that keeps
//! only those, and the ranges it refuses.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::CimdError;

/// The marker error of a resolution that found only refused addresses.
#[derive(Debug)]
pub(super) struct Forbidden;

impl std::fmt::Display for Forbidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("every address of the host is refused")
    }
}

impl std::error::Error for Forbidden {}

pub(super) fn is_forbidden(e: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<Forbidden>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Resolves names and keeps only addresses a fetch may reach.
pub(super) struct GuardedResolver {
    pub(super) allow_loopback: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| check_ip(a.ip(), allow_loopback).is_ok())
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(Forbidden) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Ranges a fetch never reaches (beyond what `std` classifies).
const REFUSED: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001:db8::/32",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// `Ok` when a fetch may reach `ip`.
pub(super) fn check_ip(ip: IpAddr, allow_loopback: bool) -> Result<(), CimdError> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if ip.is_loopback() {
        return if allow_loopback {
            Ok(())
        } else {
            Err(CimdError::ForbiddenAddress)
        };
    }
    let refused = REFUSED
        .iter()
        .filter_map(|n| n.parse::<IpNet>().ok())
        .any(|net| net.contains(&ip));
    if refused || ip.is_unspecified() || ip.is_multicast() {
        Err(CimdError::ForbiddenAddress)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "fd00:ec2::254",
            "fe80::1",
            "64:ff9b::a9fe:a9fe",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(
                check_ip(ip, false),
                Err(CimdError::ForbiddenAddress),
                "{ip}"
            );
        }
        assert!(check_ip("127.0.0.1".parse().unwrap(), true).is_ok());
        assert!(check_ip("10.1.2.3".parse().unwrap(), true).is_err());
        assert!(check_ip("93.184.215.14".parse().unwrap(), false).is_ok());
        assert!(check_ip("2606:4700::1111".parse().unwrap(), false).is_ok());
    }
}
