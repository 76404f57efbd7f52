//! Services (upstream's `ValidateService` and `ValidateServiceUpdate`).

use std::collections::BTreeSet;

use super::Input;
use super::core::validate_non_special_ip;
use super::field::{
    Errs, child, duplicate, forbidden, go_quote, go_string_ptr, go_string_slice, index, invalid, key, not_supported,
    raw, required,
};
use super::formats;
use super::json::Node;
use super::meta::{self, MetaRules, NameRule};
use super::pod;

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const RULES: MetaRules = MetaRules::kube(NameRule::Dns1035);

/// The service's cluster IPs as the strategy normalizes them (`clusterIP` mirrored into `clusterIPs`).
fn cluster_ips<'a>(spec: &Node<'a>) -> Vec<&'a str> {
    let ips = spec.field("clusterIPs").peek_strings();
    if !ips.is_empty() {
        return ips;
    }
    match spec.field("clusterIP").peek_str() {
        "" => Vec::new(),
        ip => vec![ip],
    }
}

fn service_type<'a>(spec: &Node<'a>) -> &'a str {
    match spec.field("type").peek_str() {
        "" => "ClusterIP",
        t => t,
    }
}

fn is_headless(spec: &Node) -> bool {
    cluster_ips(spec) == ["None"]
}

pub(super) fn validate_service(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    let spec = obj.field("spec").object(errs);
    if let Some(old) = input.old() {
        meta::validate_object_meta_update(&obj.field("metadata"), &old.field("metadata"), RULES, errs);
        validate_update(&spec, &old.field("spec"), errs);
    }
    meta::validate_object_meta(&obj.field("metadata"), RULES, errs);
    let svc_type = service_type(&spec);
    let ports = spec.field("ports");
    if ports.len() == 0 && !is_headless(&spec) && svc_type != "ExternalName" {
        errs.push(required(&ports.path, ""));
    }
    validate_type_rules(&spec, svc_type, errs);
    let port_items = ports.items(errs);
    let mut names = BTreeSet::new();
    for port in &port_items {
        validate_service_port(&port.object(errs), port_items.len() > 1, &mut names, errs);
    }
    meta::validate_labels(&spec.field("selector"), errs);
    validate_session_affinity(&spec, errs);
    validate_cluster_ips(&spec, svc_type, errs);
    for ip in spec.field("externalIPs").items(errs) {
        if super::core::validate_ip(&ip, errs) {
            validate_non_special_ip(ip.peek_str(), &ip.path, errs);
        }
    }
    let type_node = spec.field("type");
    if let Some(t) = type_node.str(errs)
        && !t.is_empty()
        && !TYPES.contains(&t)
    {
        errs.push(not_supported(&type_node.path, t, TYPES));
    }
    validate_node_ports(&port_items, svc_type, errs);
    validate_load_balancer_fields(&obj, &spec, svc_type, errs);
    validate_traffic_policies(&spec, svc_type, errs);
}

fn validate_type_rules(spec: &Node, svc_type: &str, errs: &mut Errs) {
    let ips_path = spec.field("clusterIPs").path;
    match svc_type {
        "LoadBalancer" | "NodePort" if is_headless(spec) => errs.push(invalid(
            &index(&ips_path, 0),
            "None",
            &format!("may not be set to 'None' for {svc_type} services"),
        )),
        "ExternalName" => {
            if !cluster_ips(spec).is_empty() {
                errs.push(forbidden(&ips_path, "may not be set for ExternalName services"));
            }
            if spec.field("ipFamilies").len() > 0 {
                errs.push(forbidden(
                    &spec.field("ipFamilies").path,
                    "may not be set for ExternalName services",
                ));
            }
            if spec.field("ipFamilyPolicy").present() {
                errs.push(forbidden(
                    &spec.field("ipFamilyPolicy").path,
                    "may not be set for ExternalName services",
                ));
            }
            let external = spec.field("externalName");
            let cname = external.string(errs);
            let cname = cname.strip_suffix('.').unwrap_or(cname);
            if cname.is_empty() {
                errs.push(required(&external.path, ""));
            } else {
                meta::validate_dns_subdomain(cname, &external.path, errs);
            }
        }
        _ => {}
    }
}

fn validate_service_port(port: &Node, require_name: bool, names: &mut BTreeSet<String>, errs: &mut Errs) {
    let name_node = port.field("name");
    let name = name_node.string(errs);
    if require_name && name.is_empty() {
        errs.push(required(&name_node.path, ""));
    } else if !name.is_empty() {
        meta::validate_dns_label(name, &name_node.path, errs);
        if !names.insert(name.to_string()) {
            errs.push(duplicate(&name_node.path, name));
        }
    }
    let number = port.field("port");
    let p = number.int(errs).unwrap_or(0);
    for msg in formats::is_valid_port_num(p) {
        errs.push(invalid(&number.path, p, &msg));
    }
    pod::validate_protocol(&port.field("protocol"), errs);
    let target = port.field("targetPort");
    let defaulted = match target.value {
        None => true,
        Some(serde_json::Value::String(s)) => s.is_empty(),
        Some(v) => v.as_i64() == Some(0),
    };
    if !defaulted {
        pod::validate_port_num_or_name(&target, errs);
    }
    let app = port.field("appProtocol");
    if let Some(a) = app.str(errs) {
        meta::validate_qualified_name(a, &app.path, errs);
    }
}

fn validate_session_affinity(spec: &Node, errs: &mut Errs) {
    let affinity = spec.field("sessionAffinity");
    let a = match affinity.string(errs) {
        "" => "None",
        a => a,
    };
    if a != "ClientIP" && a != "None" {
        errs.push(not_supported(&affinity.path, a, &["ClientIP", "None"]));
    }
    let config = spec.field("sessionAffinityConfig").object(errs);
    if a == "ClientIP" {
        let timeout = config.field("clientIP").field("timeoutSeconds");
        if let Some(t) = timeout.int(errs)
            && (t <= 0 || t > 86400)
        {
            errs.push(invalid(&timeout.path, t, "must be greater than 0 and less than 86400"));
        }
    } else if a == "None" && config.present() {
        errs.push(forbidden(&config.path, "must not be set when session affinity is None"));
    }
}

fn validate_cluster_ips(spec: &Node, svc_type: &str, errs: &mut Errs) {
    if svc_type == "ExternalName" {
        return;
    }
    let ips_node = spec.field("clusterIPs");
    let cluster_ip = spec.field("clusterIP").string(errs);
    let explicit = ips_node.strings(errs);
    let ips = cluster_ips(spec);
    let shown = || raw(go_string_slice(Some(&ips)));
    if !cluster_ip.is_empty() && !explicit.is_empty() && explicit[0] != cluster_ip {
        errs.push(invalid(&ips_node.path, shown(), "first value must match `clusterIP`"));
    }
    let families = spec.field("ipFamilies");
    let mut seen = BTreeSet::new();
    for family in families.items(errs) {
        let f = family.string(errs);
        if f != "IPv4" && f != "IPv6" {
            errs.push(not_supported(&family.path, f, &["IPv4", "IPv6"]));
        }
        if !seen.insert(f) {
            errs.push(duplicate(&family.path, f));
        }
    }
    let policy = spec.field("ipFamilyPolicy");
    if let Some(p) = policy.str(errs)
        && !["PreferDualStack", "RequireDualStack", "SingleStack"].contains(&p)
    {
        errs.push(not_supported(
            &policy.path,
            p,
            &["PreferDualStack", "RequireDualStack", "SingleStack"],
        ));
    }
    let mut invalid_ips = false;
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && *ip == "None" {
            if ips.len() > 1 {
                invalid_ips = true;
                errs.push(invalid(
                    &ips_node.path,
                    shown(),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        if let Some(msg) = formats::is_valid_ip(ip) {
            invalid_ips = true;
            errs.push(invalid(&index(&ips_node.path, i), *ip, &msg));
        }
    }
    if ips.len() > 2 {
        errs.push(invalid(&ips_node.path, shown(), "may only hold up to 2 values"));
    }
    if invalid_ips {
        return;
    }
    if ips.len() > 1 {
        let v6: BTreeSet<bool> = ips
            .iter()
            .filter_map(|ip| formats::parse_ip_sloppy(ip))
            .map(|ip| ip.is_v6())
            .collect();
        if v6.len() != 2 {
            errs.push(invalid(
                &ips_node.path,
                shown(),
                "may specify no more than one IP for each IP family",
            ));
        }
    }
    if !is_headless(spec) {
        let families = families.peek_strings();
        for (i, (ip, family)) in ips.iter().zip(families).enumerate() {
            let is_v6 = formats::parse_ip_sloppy(ip).is_some_and(|p| p.is_v6());
            if family == "IPv4" && is_v6 {
                errs.push(invalid(
                    &index(&ips_node.path, i),
                    *ip,
                    &format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            if family == "IPv6" && !is_v6 {
                errs.push(invalid(
                    &index(&ips_node.path, i),
                    *ip,
                    &format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
}

/// Go's `%#v` of the `core.ServicePort` key upstream uses for duplicate detection.
fn go_port_key(protocol: &str, port: i64) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:{}, Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
        go_quote(protocol),
        go_string_ptr(None)
    )
}

fn validate_node_ports(ports: &[Node], svc_type: &str, errs: &mut Errs) {
    fn protocol<'a>(p: &Node<'a>) -> &'a str {
        match p.field("protocol").peek_str() {
            "" => "TCP",
            p => p,
        }
    }
    if svc_type == "ClusterIP" {
        for port in ports {
            if port.field("nodePort").peek_int().unwrap_or(0) != 0 {
                errs.push(forbidden(
                    &port.field("nodePort").path,
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    let mut node_ports = BTreeSet::new();
    for port in ports {
        let np = port.field("nodePort");
        let n = np.int(errs).unwrap_or(0);
        if n != 0 && !node_ports.insert((protocol(port), n)) {
            errs.push(duplicate(&np.path, n));
        }
    }
    let mut seen = BTreeSet::new();
    for port in ports {
        let p = port.field("port").peek_int().unwrap_or(0);
        if !seen.insert((protocol(port), p)) {
            errs.push(duplicate(&port.path, raw(go_port_key(protocol(port), p))));
        }
    }
}

fn validate_load_balancer_fields(obj: &Node, spec: &Node, svc_type: &str, errs: &mut Errs) {
    let ranges = spec.field("loadBalancerSourceRanges");
    let range_list = ranges.strings(errs);
    if !range_list.is_empty() {
        let path = child("spec", "LoadBalancerSourceRanges");
        if svc_type != "LoadBalancer" {
            errs.push(forbidden(&path, "may only be used when `type` is 'LoadBalancer'"));
        }
        for (i, r) in range_list.iter().enumerate() {
            let r = r.trim();
            if let Some(msg) = formats::is_valid_cidr(r) {
                errs.push(invalid(&index(&path, i), r, &msg));
            }
        }
    } else {
        let annotation = obj
            .field("metadata")
            .field("annotations")
            .field("service.beta.kubernetes.io/load-balancer-source-ranges");
        if let Some(val) = annotation.value.and_then(serde_json::Value::as_str) {
            let path = key(
                "metadata.annotations",
                "service.beta.kubernetes.io/load-balancer-source-ranges",
            );
            if svc_type != "LoadBalancer" {
                errs.push(forbidden(&path, "may only be used when `type` is 'LoadBalancer'"));
            }
            let val = val.trim();
            if !val.is_empty() {
                for cidr in val.split(',') {
                    let cidr = cidr.trim();
                    if let Some(msg) = formats::is_valid_cidr(cidr) {
                        errs.push(invalid(&path, cidr, &msg));
                    }
                }
            }
        }
    }
    let allocate = spec.field("allocateLoadBalancerNodePorts");
    if allocate.present() && svc_type != "LoadBalancer" {
        errs.push(forbidden(
            &allocate.path,
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    let class = spec.field("loadBalancerClass");
    if let Some(c) = class.str(errs) {
        if svc_type == "LoadBalancer" {
            meta::validate_qualified_name(c, &class.path, errs);
        } else {
            errs.push(forbidden(&class.path, "may only be used when `type` is 'LoadBalancer'"));
        }
    }
}

fn validate_traffic_policies(spec: &Node, svc_type: &str, errs: &mut Errs) {
    let external_access = svc_type == "LoadBalancer" || svc_type == "NodePort" || spec.field("externalIPs").len() > 0;
    let etp = spec.field("externalTrafficPolicy");
    let e = etp.string(errs);
    if !external_access {
        if !e.is_empty() {
            errs.push(invalid(
                &etp.path,
                e,
                "may only be set for externally-accessible services",
            ));
        }
    } else if !e.is_empty() && e != "Cluster" && e != "Local" {
        errs.push(not_supported(&etp.path, e, &["Cluster", "Local"]));
    }
    let needs_health_check = svc_type == "LoadBalancer" && e == "Local";
    let hc = spec.field("healthCheckNodePort");
    let h = hc.int(errs).unwrap_or(0);
    if !needs_health_check && h != 0 {
        errs.push(invalid(
            &hc.path,
            h,
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        ));
    } else if needs_health_check && h != 0 {
        for msg in formats::is_valid_port_num(h) {
            errs.push(invalid(&hc.path, h, &msg));
        }
    }
    let itp = spec.field("internalTrafficPolicy");
    if let Some(i) = itp.str(errs)
        && i != "Cluster"
        && i != "Local"
    {
        errs.push(not_supported(&itp.path, i, &["Cluster", "Local"]));
    }
    let distribution = spec.field("trafficDistribution");
    if let Some(d) = distribution.str(errs)
        && d != "PreferClose"
    {
        errs.push(not_supported(&distribution.path, d, &["PreferClose"]));
    }
}

/// Cluster IPs and families may not change (unless to/from ExternalName), and a
/// LoadBalancer's class and health check port stay put.
fn validate_update(spec: &Node, old: &Node, errs: &mut Errs) {
    let (new_type, old_type) = (service_type(spec), service_type(old));
    if new_type == "ExternalName" || old_type == "ExternalName" {
        return;
    }
    let (new_ips, old_ips) = (cluster_ips(spec), cluster_ips(old));
    if !(new_ips.is_empty() || is_headless(spec) && is_headless(old)) {
        let path = spec.field("clusterIPs").path;
        let shown = || raw(go_string_slice(Some(&new_ips)));
        if new_ips.len() == old_ips.len() {
            for (i, ip) in old_ips.iter().enumerate() {
                if new_ips[i] != *ip {
                    errs.push(invalid(&index(&path, i), shown(), "may not change once set"));
                }
            }
        } else if !old_ips.is_empty() && new_ips[0] != old_ips[0] {
            errs.push(invalid(&index(&path, 0), shown(), "may not change once set"));
        }
    }
    if new_type == "LoadBalancer" && old_type == "LoadBalancer" {
        let (class, old_class) = (spec.field("loadBalancerClass"), old.field("loadBalancerClass"));
        if class.value != old_class.value {
            let shown = class
                .value
                .and_then(serde_json::Value::as_str)
                .map_or(raw("null"), Into::into);
            errs.push(invalid(&class.path, shown, "may not change once set"));
        }
        let local = |s: &Node| s.field("externalTrafficPolicy").peek_str() == "Local";
        let (hc, old_hc) = (
            spec.field("healthCheckNodePort").peek_int().unwrap_or(0),
            old.field("healthCheckNodePort").peek_int().unwrap_or(0),
        );
        if local(spec) && local(old) && hc != 0 && hc != old_hc {
            errs.push(forbidden(&spec.field("healthCheckNodePort").path, "field is immutable"));
        }
    }
}
