//! A pod's name resolution (upstream `pkg/kubelet/network/dns` and the
//! kubelet's hosts file): the `DNSConfig` the runtime writes the sandbox's
//! resolv.conf from, following `dnsPolicy` and `dnsConfig`, and the
//! kubelet-managed `/etc/hosts` mounted into every container.

use std::net::IpAddr;

use k8s_cri::v1::DnsConfig;
use k8s_openapi::api::core::v1::Pod;

/// Upstream's `ndots` for cluster-first pods.
const NDOTS: &str = "ndots:5";

/// The cluster's DNS, from the node flags.
#[derive(Debug, Clone)]
pub struct ClusterDns {
    pub servers: Vec<IpAddr>,
    pub domain: String,
}

/// The host's resolver settings (its resolv.conf).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostResolv {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

impl HostResolv {
    pub fn parse(text: &str) -> HostResolv {
        let mut resolv = HostResolv::default();
        for line in text.lines() {
            let mut fields = line.split_whitespace();
            match fields.next() {
                Some("nameserver") => resolv.servers.extend(fields.next().map(str::to_string)),
                Some("search") | Some("domain") => resolv.searches = fields.map(str::to_string).collect(),
                Some("options") => resolv.options.extend(fields.map(str::to_string)),
                _ => {}
            }
        }
        resolv
    }

    pub fn read() -> HostResolv {
        HostResolv::parse(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
    }
}

/// The sandbox's DNS configuration for `pod`.
pub fn config(pod: &Pod, cluster: &ClusterDns, host: &HostResolv) -> DnsConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let host_network = spec.host_network == Some(true);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let cluster_first = match policy {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network,
        _ => false,
    };
    let mut dns = match policy {
        "None" => DnsConfig::default(),
        _ if cluster_first && !cluster.servers.is_empty() => {
            let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
            let domain = &cluster.domain;
            let mut searches = vec![
                format!("{namespace}.svc.{domain}"),
                format!("svc.{domain}"),
                domain.clone(),
            ];
            searches.extend(host.searches.iter().cloned());
            DnsConfig {
                servers: cluster.servers.iter().map(IpAddr::to_string).collect(),
                searches,
                options: vec![NDOTS.into()],
            }
        }
        _ => DnsConfig {
            servers: host.servers.clone(),
            searches: host.searches.clone(),
            options: host.options.clone(),
        },
    };
    if let Some(extra) = spec.dns_config {
        dns.servers.extend(extra.nameservers.into_iter().flatten());
        dns.searches.extend(extra.searches.into_iter().flatten());
        for option in extra.options.into_iter().flatten() {
            let name = option.name.unwrap_or_default();
            dns.options.retain(|o| o.split(':').next() != Some(name.as_str()));
            dns.options.push(match option.value {
                Some(value) => format!("{name}:{value}"),
                None => name,
            });
        }
    }
    dedup(&mut dns.searches);
    dns
}

fn dedup(items: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    items.retain(|i| seen.insert(i.clone()));
}

/// The pod's hostname: `spec.hostname`, else the pod's name (at most 63 characters).
pub fn hostname(pod: &Pod) -> String {
    let spec = pod.spec.as_ref();
    let name = spec
        .and_then(|s| s.hostname.clone())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    name.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches(['-', '.'])
        .to_string()
}

/// The kubelet-managed `/etc/hosts` of a pod on the pod network.
pub fn hosts_file(pod: &Pod, pod_ips: &[String], domain: &str) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut text = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    let hostname = hostname(pod);
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    for ip in pod_ips {
        match spec.subdomain.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => text.push_str(&format!(
                "{ip}\t{hostname}.{sub}.{namespace}.svc.{domain}\t{hostname}\n"
            )),
            None => text.push_str(&format!("{ip}\t{hostname}\n")),
        }
    }
    text.push_str(&host_aliases(pod));
    text
}

/// The hosts file of a `hostNetwork` pod: the host's, plus the aliases.
pub fn host_network_hosts_file(pod: &Pod, host_hosts: &str) -> String {
    format!(
        "# Kubernetes-managed hosts file (host network).\n{host_hosts}{}",
        host_aliases(pod)
    )
}

fn host_aliases(pod: &Pod) -> String {
    let aliases = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_aliases.clone())
        .unwrap_or_default();
    if aliases.is_empty() {
        return String::new();
    }
    let mut text = String::from("\n# Entries added by HostAliases.\n");
    for alias in aliases {
        let names = alias.hostnames.unwrap_or_default().join("\t");
        text.push_str(&format!("{}\t{names}\n", alias.ip));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        let mut s = json!({"containers": [{"name": "a"}]});
        s.as_object_mut().unwrap().extend(spec.as_object().unwrap().clone());
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "prod"}, "spec": s})).unwrap()
    }

    fn cluster() -> ClusterDns {
        ClusterDns {
            servers: vec!["10.43.0.10".parse().unwrap()],
            domain: "cluster.local".into(),
        }
    }

    #[test]
    fn cluster_first_pods_search_their_namespace() {
        let host = HostResolv::parse("nameserver 192.0.2.1\nsearch corp.example\noptions edns0\n");
        let dns = config(&pod(json!({})), &cluster(), &host);
        assert_eq!(dns.servers, ["10.43.0.10"]);
        assert_eq!(
            dns.searches,
            [
                "prod.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example"
            ]
        );
        assert_eq!(dns.options, ["ndots:5"]);
        // hostNetwork pods resolve like the host unless ClusterFirstWithHostNet.
        let host_net = config(&pod(json!({"hostNetwork": true})), &cluster(), &host);
        assert_eq!(host_net.servers, ["192.0.2.1"]);
        let with = config(
            &pod(json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"})),
            &cluster(),
            &host,
        );
        assert_eq!(with.servers, ["10.43.0.10"]);
        let none = config(
            &pod(
                json!({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.2.3.4"], "options": [{"name": "ndots", "value": "2"}]}}),
            ),
            &cluster(),
            &host,
        );
        assert_eq!(
            (none.servers, none.searches, none.options),
            (vec!["1.2.3.4".to_string()], vec![], vec!["ndots:2".to_string()])
        );
    }

    #[test]
    fn hosts_files_name_the_pod() {
        let text = hosts_file(
            &pod(
                json!({"hostname": "h", "subdomain": "s", "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["a", "b"]}]}),
            ),
            &["10.42.0.5".into()],
            "cluster.local",
        );
        assert!(text.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(text.contains("10.42.0.5\th.s.prod.svc.cluster.local\th\n"), "{text}");
        assert!(
            text.ends_with("# Entries added by HostAliases.\n1.2.3.4\ta\tb\n"),
            "{text}"
        );
        assert!(hosts_file(&pod(json!({})), &["10.42.0.6".into()], "cluster.local").contains("10.42.0.6\tweb\n"));
    }
}
