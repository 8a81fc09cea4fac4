//! The container's `/etc/hosts` and `/etc/resolv.conf`, as Docker writes them.

use std::fmt::Write as _;
use std::net::IpAddr;

/// One line of a hosts file: an address and its names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    /// The address.
    pub ip: IpAddr,
    /// Its names, first the canonical one.
    pub names: Vec<String>,
}

/// A hosts file: Docker's fixed localhost lines, then the container's own entries, then its peers'.
pub fn hosts_file(own: &[HostEntry], peers: &[HostEntry]) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for e in own.iter().chain(peers) {
        if !e.names.is_empty() {
            let _ = writeln!(s, "{}\t{}", e.ip, e.names.join(" "));
        }
    }
    s
}

/// Docker's default name servers, used when the host has only loopback ones (unreachable from a
/// container's own network namespace).
pub const DEFAULT_NAMESERVERS: &[&str] = &["8.8.8.8", "8.8.4.4"];

/// A container's resolv.conf from the host's: every line kept but `nameserver`s on loopback addresses
/// (`127.0.0.0/8`, `::1`), which point at the host's own stub resolver and would point at the container
/// itself; when none is left, [`DEFAULT_NAMESERVERS`].
pub fn resolv_conf(host: &str) -> String {
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            match words.next().and_then(|a| a.split('%').next()?.parse::<IpAddr>().ok()) {
                Some(ip) if ip.is_loopback() => continue,
                Some(_) => servers += 1,
                None => continue,
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        for ns in DEFAULT_NAMESERVERS {
            let _ = writeln!(out, "nameserver {ns}");
        }
    }
    out
}

/// The host's resolver configuration, as Docker picks it: `/etc/resolv.conf`, or systemd-resolved's
/// upstream list (`/run/systemd/resolve/resolv.conf`) when the former names only the `127.0.0.53` stub.
///
/// # Ambient authority
/// Reads those two host paths.
pub fn host_resolv_conf() -> String {
    let etc = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let only_stub = etc
        .lines()
        .any(|l| l.split_whitespace().eq(["nameserver", "127.0.0.53"]))
        && !etc
            .lines()
            .filter_map(|l| l.strip_prefix("nameserver"))
            .any(|a| a.trim() != "127.0.0.53");
    if only_stub && let Ok(upstream) = std::fs::read_to_string("/run/systemd/resolve/resolv.conf") {
        return upstream;
    }
    etc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_drops_loopback_servers_and_keeps_the_rest() {
        let host = "# generated\nsearch example.com\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n\
                    nameserver ::1\noptions edns0 trust-ad\n";
        assert_eq!(
            resolv_conf(host),
            "# generated\nsearch example.com\nnameserver 10.0.0.2\noptions edns0 trust-ad\n"
        );
    }

    #[test]
    fn resolv_conf_falls_back_to_dockers_defaults() {
        let out = resolv_conf("nameserver 127.0.0.1\nsearch lan\n");
        assert_eq!(out, "search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        assert_eq!(resolv_conf(""), "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }

    #[test]
    fn hosts_lists_own_then_peers() {
        let e = |ip: &str, names: &[&str]| HostEntry {
            ip: ip.parse().expect("ip"),
            names: names.iter().map(|s| s.to_string()).collect(),
        };
        let s = hosts_file(
            &[e("10.1.0.2", &["abc123", "web", "www"])],
            &[e("10.1.0.3", &["db"]), e("10.1.0.4", &[])],
        );
        assert!(s.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(s.ends_with("10.1.0.2\tabc123 web www\n10.1.0.3\tdb\n"), "{s}");
    }
}
