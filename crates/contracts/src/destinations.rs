//! Where a webhook may point: the public internet only, unless a deployment opens chosen
//! networks ([`Destinations::allowing`]) for internal receivers or tests. A webhook URL is
//! a request the service makes on a customer's behalf, so one naming a loopback, private,
//! link-local, unique-local, carrier-grade NAT, multicast, documentation or metadata
//! address would let a customer reach inside (server-side request forgery).
//!
//! The check runs on a URL's host when a contact is set (an IP literal, in any spelling the
//! URL standard accepts — `2130706433`, `0x7f.1` and `127.1` are all 127.0.0.1 once parsed —
//! or a name known to be internal) and again on every address a name resolves to when the
//! webhook is sent, connecting only to addresses that passed (see notification-service's
//! webhook channel). An IPv6 address that carries an IPv4 one (mapped, compatible, NAT64,
//! 6to4, Teredo) is checked as the IPv4 address it carries: `2002:7f00:1::` reaches
//! 127.0.0.1 through any 6to4 relay as surely as `::ffff:127.0.0.1` does.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IP network, `addr/prefix` (`127.0.0.0/8`, `fd00::/8`; a bare address is `/32` or `/128`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP network (like 127.0.0.0/8 or fd00::/8)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            "" => max,
            p => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An IPv4 address carried in IPv6 (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64
/// `64:ff9b::a.b.c.d`, 6to4 `2002:aabb:ccdd::/48`) as the IPv4 address it is. (Teredo
/// carries two, and local-use NAT64 one where its operator chose: [`not_public`] checks
/// those.)
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let embedded = Ipv4Addr::from((u128::from(v6) & 0xffff_ffff) as u32);
            if let Some(v4) = v6.to_ipv4_mapped() {
                IpAddr::V4(v4)
            } else if (s[..6] == [0, 0, 0, 0, 0, 0] && !(s[6] == 0 && s[7] <= 1))
                || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
            {
                // IPv4-compatible (`::a.b.c.d`, not `::` or `::1`) or NAT64.
                IpAddr::V4(embedded)
            } else if s[0] == 0x2002 {
                // 6to4 (RFC 3056): the IPv4 address in bits 16..48.
                IpAddr::V4(ipv4_of(s[1], s[2]))
            } else {
                ip
            }
        }
        v4 => v4,
    }
}

/// The IPv4 address whose high and low 16 bits are `high` and `low`.
fn ipv4_of(high: u16, low: u16) -> Ipv4Addr {
    Ipv4Addr::from((u32::from(high) << 16) | u32::from(low))
}

/// Why `ip` is not a public unicast address, if it is not.
pub fn not_public(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            match (a, b, c) {
                (0, _, _) => Some("\"this network\" (0.0.0.0/8)"),
                (10, _, _) => Some("private (10.0.0.0/8)"),
                (100, 64..=127, _) => Some("carrier-grade NAT (100.64.0.0/10)"),
                (127, _, _) => Some("loopback (127.0.0.0/8)"),
                (169, 254, _) => Some("link-local or cloud metadata (169.254.0.0/16)"),
                (172, 16..=31, _) => Some("private (172.16.0.0/12)"),
                (192, 0, 0) => Some("IETF protocol assignments (192.0.0.0/24)"),
                (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Some("documentation"),
                (192, 168, _) => Some("private (192.168.0.0/16)"),
                (198, 18..=19, _) => Some("benchmarking (198.18.0.0/15)"),
                (224..=239, _, _) => Some("multicast (224.0.0.0/4)"),
                (240..=255, _, _) => Some("reserved or broadcast (240.0.0.0/4)"),
                _ => None,
            }
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if v6 == Ipv6Addr::UNSPECIFIED {
                Some("unspecified (::)")
            } else if v6 == Ipv6Addr::LOCALHOST {
                Some("loopback (::1)")
            } else if s[0] & 0xfe00 == 0xfc00 {
                Some("unique-local (fc00::/7)")
            } else if s[0] & 0xffc0 == 0xfe80 {
                Some("link-local (fe80::/10)")
            } else if s[0] & 0xffc0 == 0xfec0 {
                Some("site-local (fec0::/10)")
            } else if s[0] & 0xff00 == 0xff00 {
                Some("multicast (ff00::/8)")
            } else if s[0] == 0x2001 && s[1] == 0x0db8 {
                Some("documentation (2001:db8::/32)")
            } else if s[0] == 0x0100 && s[1..4] == [0, 0, 0] {
                Some("discard-only (100::/64)")
            } else if s[..3] == [0x64, 0xff9b, 1] {
                // RFC 8215: NAT64 inside one network, to IPv4 addresses of its choosing.
                Some("local-use NAT64 (64:ff9b:1::/48)")
            } else if s[0] == 0x2001 && s[1] == 0 {
                // Teredo (RFC 4380): the server's IPv4 address in bits 32..64, the client's
                // in the last 32, inverted. Either inside would carry the request there.
                let server = ipv4_of(s[2], s[3]);
                let client = ipv4_of(!s[6], !s[7]);
                if not_public(server.into()).is_some() || not_public(client.into()).is_some() {
                    Some("Teredo (2001::/32) through or to an address that is not public")
                } else {
                    None
                }
            } else {
                None
            }
        }
    }
}

/// Why the host name `name` is internal, if it is known to be: `localhost` and
/// `*.localhost`, and `*.internal`, `*.local`, `*.home.arpa` (private zones; GCP's
/// `metadata.google.internal`, AWS's `*.compute.internal`).
pub fn internal_name(name: &str) -> Option<&'static str> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let under = |zone: &str| name == zone || name.ends_with(&format!(".{zone}"));
    if under("localhost") {
        Some("loopback (localhost)")
    } else if under("internal") || under("local") || under("home.arpa") || name == "metadata" {
        Some("an internal name")
    } else {
        None
    }
}

/// Which destinations webhooks may reach: public addresses, and the networks opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Destinations {
    allowed: Vec<Network>,
}

impl Destinations {
    /// Public addresses only.
    pub fn public_only() -> Self {
        Self::default()
    }

    /// Public addresses and `networks` (say `127.0.0.0/8` for a receiver on this host).
    pub fn allowing(networks: Vec<Network>) -> Self {
        Self { allowed: networks }
    }

    /// May a webhook connect to `ip`?
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), String> {
        match not_public(ip) {
            Some(why) if !self.allowed.iter().any(|n| n.contains(ip)) => Err(format!(
                "must point at a public address; {} is {why}",
                canonical(ip)
            )),
            _ => Ok(()),
        }
    }

    /// May a webhook name `host`? An IP literal is checked as [`Destinations::check_ip`];
    /// a name known to be internal is refused unless an opened network is loopback's and
    /// the name is `localhost` (names are checked again, resolved, when sent).
    pub fn check_host(&self, host: &url::Host<&str>) -> Result<(), String> {
        match host {
            url::Host::Ipv4(ip) => self.check_ip(IpAddr::V4(*ip)),
            url::Host::Ipv6(ip) => self.check_ip(IpAddr::V6(*ip)),
            url::Host::Domain(name) => match internal_name(name) {
                Some(_)
                    if self
                        .allowed
                        .iter()
                        .any(|n| n.contains(Ipv4Addr::LOCALHOST.into()))
                        && internal_name(name) == Some("loopback (localhost)") =>
                {
                    Ok(())
                }
                Some(why) => Err(format!("must point at a public host; {name:?} is {why}")),
                None => Ok(()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_of(url: &str) -> Result<(), String> {
        let url = url::Url::parse(url).unwrap();
        Destinations::public_only().check_host(&url.host().unwrap())
    }

    #[test]
    fn every_spelling_of_an_inside_address_is_refused() {
        for url in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[::]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[64:ff9b::7f00:1]/",
            // 6to4: 127.0.0.1, 10.0.0.1, 169.254.169.254, 192.168.1.1.
            "http://[2002:7f00:1::]/",
            "http://[2002:7f00:0001::1]/",
            "http://[2002:a00:1::]/",
            "http://[2002:a9fe:a9fe::]/",
            "http://[2002:c0a8:101:1::1]/",
            // Local-use NAT64 (RFC 8215), whatever it carries.
            "http://[64:ff9b:1::808:808]/",
            "http://[64:ff9b:1:7f00:1::]/",
            // Teredo: to client 127.0.0.1 (inverted, 80ff:fffe) through server 8.8.8.8;
            // to client 8.8.8.8 (f7f7:f7f7) through server 10.0.0.1.
            "http://[2001:0:808:808::80ff:fffe]/",
            "http://[2001:0000:0a00:0001:0:0:f7f7:f7f7]/",
            "http://10.1.2.3/",
            "http://172.20.0.1/",
            "http://192.168.1.1/",
            "http://100.100.100.200/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/",
            "http://[fe80::1]/",
            "http://224.0.0.1/",
            "http://localhost/",
            "http://LOCALHOST./",
            "http://api.localhost/",
            "http://metadata.google.internal/",
            "http://printer.local/",
        ] {
            assert!(host_of(url).is_err(), "{url} was accepted");
        }
        for url in [
            "https://hooks.example.com/x",
            "http://93.184.215.14/",
            "http://[2606:4700::1111]/",
            // The public IPv4 address 8.8.8.8 carried by 6to4, NAT64 and Teredo (both ends).
            "http://[2002:0808:0808::]/",
            "http://[2002:808:808:1::1]/",
            "http://[64:ff9b::808:808]/",
            "http://[2001:0:808:808::f7f7:f7f7]/",
        ] {
            assert!(host_of(url).is_ok(), "{url}: {:?}", host_of(url));
        }
    }

    #[test]
    fn an_opened_network_lets_its_addresses_through_and_no_other() {
        let loopback = Destinations::allowing(vec![Network::parse("127.0.0.0/8").unwrap()]);
        assert!(loopback.check_ip("127.0.0.1".parse().unwrap()).is_ok());
        assert!(loopback
            .check_ip("::ffff:127.0.0.1".parse().unwrap())
            .is_ok());
        assert!(loopback.check_ip("10.0.0.1".parse().unwrap()).is_err());
        assert!(loopback.check_host(&url::Host::Domain("localhost")).is_ok());
        assert!(loopback
            .check_host(&url::Host::Domain("x.internal"))
            .is_err());
        assert!(Network::parse("10.0.0.0/33").is_err());
        assert!(Network::parse("nope").is_err());
        assert_eq!(Network::parse("::1").unwrap().to_string(), "::1/128");
    }
}
