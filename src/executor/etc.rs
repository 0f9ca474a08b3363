//! The /etc/hosts and /etc/resolv.conf that every step sees, bind-mounted read-only.

use super::Network;

/// Where the host's resolver configuration lives, and systemd-resolved's upstream list used
/// when the host file only points at the local stub (127.0.0.53), as BuildKit does.
const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";
const SYSTEMD_RESOLV_CONF: &str = "/run/systemd/resolve/resolv.conf";

/// Docker's fallback when no usable nameserver is left after filtering.
const FALLBACK_NAMESERVERS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// The hosts file: localhost lines naming the container's hostname, then the extra hosts.
pub(crate) fn hosts_file(hostname: &str, extra_hosts: &[(String, String)]) -> String {
    let mut out =
        format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for (host, ip) in extra_hosts {
        out.push_str(&format!("{ip}\t{host}\n"));
    }
    out
}

/// Reads the host's resolv.conf and adapts it to `network`.
pub(crate) fn resolv_conf(network: Network) -> String {
    let host = std::fs::read_to_string(HOST_RESOLV_CONF).unwrap_or_default();
    let host = if only_systemd_stub(&host) {
        std::fs::read_to_string(SYSTEMD_RESOLV_CONF).unwrap_or(host)
    } else {
        host
    };
    adapt_resolv_conf(&host, network)
}

fn nameservers(conf: &str) -> impl Iterator<Item = &str> {
    conf.lines().filter_map(|line| {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("nameserver"), Some(ip)) => Some(ip),
            _ => None,
        }
    })
}

fn only_systemd_stub(conf: &str) -> bool {
    let mut servers = nameservers(conf).peekable();
    servers.peek().is_some() && servers.all(|ip| ip == "127.0.0.53")
}

fn is_loopback(ip: &str) -> bool {
    ip.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

/// With the host's network the file is used as is. In a separate network namespace a
/// loopback nameserver points at the container itself, so those lines are dropped (and
/// public resolvers put in when nothing is left), as Docker does.
pub(crate) fn adapt_resolv_conf(host: &str, network: Network) -> String {
    if network == Network::Host {
        return host.to_owned();
    }
    let mut out = String::new();
    let mut kept = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if let (Some("nameserver"), Some(ip)) = (words.next(), words.next()) {
            if is_loopback(ip) {
                continue;
            }
            kept += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if kept == 0 {
        for ip in FALLBACK_NAMESERVERS {
            out.push_str(&format!("nameserver {ip}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_names_hostname_and_extra_hosts() {
        let hosts = hosts_file("box", &[("db".into(), "10.0.0.2".into())]);
        assert_eq!(
            hosts,
            "127.0.0.1\tlocalhost box\n::1\tlocalhost ip6-localhost ip6-loopback\n10.0.0.2\tdb\n"
        );
    }

    #[test]
    fn isolated_network_drops_loopback_nameservers() {
        let host = "search lan\nnameserver 127.0.0.1\nnameserver ::1\nnameserver 10.1.1.1\n";
        assert_eq!(
            adapt_resolv_conf(host, Network::None),
            "search lan\nnameserver 10.1.1.1\n"
        );
        assert_eq!(adapt_resolv_conf(host, Network::Host), host);
    }

    #[test]
    fn isolated_network_falls_back_to_public_resolvers() {
        assert_eq!(
            adapt_resolv_conf("nameserver 127.0.0.53\noptions edns0\n", Network::None),
            "options edns0\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
    }

    #[test]
    fn systemd_stub_detection() {
        assert!(only_systemd_stub("nameserver 127.0.0.53\n"));
        assert!(!only_systemd_stub(
            "nameserver 127.0.0.53\nnameserver 1.1.1.1\n"
        ));
        assert!(!only_systemd_stub(""));
    }
}
