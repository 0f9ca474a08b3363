//! `--add-host NAME:host-gateway`: the address of the Docker host as seen from its
//! containers. buildx resolves it on the client before the build (the graph carries IPs
//! only); bud does the same with the Docker the docker CLI would use: the gateway of its
//! default bridge, which is what dockerd's `host-gateway-ip` defaults to.

use anyhow::{Context as _, bail};

use crate::cli::BuildOptions;
use crate::docker_host::DockerUnavailable;

const HOST_GATEWAY: &str = "host-gateway";

/// `opts` with every `host-gateway` replaced by Docker's bridge gateway, or `None` when no
/// `--add-host` asks for it.
pub(super) async fn resolve(
    opts: &BuildOptions,
    docker: Result<&bollard::Docker, &DockerUnavailable>,
) -> anyhow::Result<Option<BuildOptions>> {
    let Some(first) = opts.add_hosts.iter().find(|h| h.ip == HOST_GATEWAY) else {
        return Ok(None);
    };
    let flag = format!("--add-host {}:{HOST_GATEWAY}", first.host);
    let docker = match docker {
        Ok(docker) => docker,
        Err(why) => bail!(
            "{flag}: the host gateway is Docker's, and no Docker answers ({why}); give the \
             host's address instead",
            why = crate::error_chain::error_chain(why)
        ),
    };
    let bridge = docker
        .inspect_network("bridge", None)
        .await
        .with_context(|| format!("{flag}: reading Docker's bridge network"))?;
    let Some(gateway) = ipv4_gateway(&bridge) else {
        bail!("{flag}: Docker's bridge network has no IPv4 gateway; give the host's address");
    };
    let mut resolved = opts.clone();
    for host in &mut resolved.add_hosts {
        if host.ip == HOST_GATEWAY {
            host.ip = gateway.clone();
        }
    }
    Ok(Some(resolved))
}

/// The bridge's IPv4 gateway as Docker reports it; where its IPAM config names only the
/// subnet (dockerd adopted a docker0 that existed before it started), the subnet's first
/// host address, which is what dockerd gives the bridge it makes itself and what its own
/// host-gateway resolves to then.
fn ipv4_gateway(network: &bollard::models::NetworkInspect) -> Option<String> {
    let configs = network.ipam.as_ref()?.config.as_ref()?;
    let named = configs
        .iter()
        .filter_map(|c| c.gateway.as_deref())
        .find(|g| g.parse::<std::net::Ipv4Addr>().is_ok())
        .map(str::to_owned);
    named.or_else(|| {
        configs
            .iter()
            .filter_map(|c| c.subnet.as_deref())
            .find_map(first_ipv4_host)
    })
}

/// `a.b.c.d/len`'s first host address (the network address plus one), for IPv4 subnets
/// with room for hosts.
fn first_ipv4_host(subnet: &str) -> Option<String> {
    let (address, len) = subnet.split_once('/')?;
    let address: std::net::Ipv4Addr = address.parse().ok()?;
    let len: u32 = len.parse().ok()?;
    if len > 30 {
        return None;
    }
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    let network = u32::from(address) & mask;
    Some(std::net::Ipv4Addr::from(network + 1).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ipv4_gateway_of_the_bridge_is_taken() {
        let network: bollard::models::NetworkInspect = serde_json::from_str(
            r#"{"Name":"bridge","IPAM":{"Config":[{"Subnet":"fd00::/64","Gateway":"fd00::1"},
                {"Subnet":"172.17.0.0/16","Gateway":"172.17.0.1"}]}}"#,
        )
        .unwrap();
        assert_eq!(ipv4_gateway(&network).as_deref(), Some("172.17.0.1"));
        let none: bollard::models::NetworkInspect =
            serde_json::from_str(r#"{"Name":"bridge","IPAM":{"Config":[]}}"#).unwrap();
        assert_eq!(ipv4_gateway(&none), None);
    }

    #[test]
    fn a_bridge_with_only_a_subnet_has_its_first_host_as_gateway() {
        let network: bollard::models::NetworkInspect = serde_json::from_str(
            r#"{"Name":"bridge","IPAM":{"Config":[{"Subnet":"172.17.0.0/16"}]}}"#,
        )
        .unwrap();
        assert_eq!(ipv4_gateway(&network).as_deref(), Some("172.17.0.1"));
        assert_eq!(
            first_ipv4_host("10.228.29.0/24").as_deref(),
            Some("10.228.29.1")
        );
        assert_eq!(first_ipv4_host("10.0.0.77/8").as_deref(), Some("10.0.0.1"));
        assert_eq!(first_ipv4_host("10.0.0.1/32"), None);
        assert_eq!(first_ipv4_host("fd00::/64"), None);
    }
}
