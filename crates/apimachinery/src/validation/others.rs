//! The smaller groups: networking, RBAC, policy, scheduling, coordination,
//! discovery and storage.

use std::collections::BTreeSet;

use serde_json::Value;

use super::apps::{not_over_100_percent, validate_int_or_percent};
use super::field::{
    Errs, child, duplicate, forbidden, go_quote, go_string_slice, invalid, not_supported, raw, required, too_long,
    too_many,
};
use super::formats;
use super::json::{Node, same};
use super::meta::{self, MetaRules, NameRule};
use super::pod;
use super::{Input, meta_create_or_update, meta_full};

const SUBDOMAIN: MetaRules = MetaRules::kube(NameRule::Subdomain);
const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];

pub(super) fn validate_ingress(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    meta_full(input, SUBDOMAIN, errs);
    let spec = obj.field("spec").object(errs);
    let rules = spec.field("rules");
    let backend = spec.field("defaultBackend").object(errs);
    if rules.len() == 0 && !backend.present() {
        errs.push(invalid(
            &spec.path,
            raw("[]networking.IngressRule(nil)"),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if backend.present() {
        validate_ingress_backend(&backend, errs);
    }
    for rule in rules.items(errs) {
        validate_ingress_rule(&rule.object(errs), errs);
    }
    for tls in spec.field("tls").items(errs) {
        let tls = tls.object(errs);
        for host in tls.field("hosts").items(errs) {
            let h = host.string(errs);
            let msgs = if h.contains('*') {
                formats::is_wildcard_dns1123_subdomain(h)
            } else {
                formats::is_dns1123_subdomain(h)
            };
            for msg in msgs {
                errs.push(invalid(&host.path, h, &msg));
            }
        }
        let secret = tls.field("secretName");
        let s = secret.string(errs);
        if !s.is_empty() {
            meta::validate_name_field(&secret, NameRule::Subdomain, s, errs);
        }
    }
    let class = spec.field("ingressClassName");
    if let Some(c) = class.str(errs) {
        meta::validate_name_field(&class, NameRule::Subdomain, c, errs);
    }
    let annotation = obj
        .field("metadata")
        .field("annotations")
        .field("kubernetes.io/ingress.class");
    if input.old.is_none() && class.present() && annotation.present() {
        errs.push(invalid(
            "annotations.kubernetes.io/ingress.class",
            annotation.peek_str(),
            "can not be set when the class field is also set",
        ));
    }
}

fn validate_ingress_rule(rule: &Node, errs: &mut Errs) {
    let host = rule.field("host");
    let h = host.string(errs);
    if !h.is_empty() {
        if formats::parse_ip_sloppy(h).is_some() {
            errs.push(invalid(&host.path, h, "must be a DNS name, not an IP address"));
        }
        let msgs = if h.contains('*') {
            formats::is_wildcard_dns1123_subdomain(h)
        } else {
            formats::is_dns1123_subdomain(h)
        };
        for msg in msgs {
            errs.push(invalid(&host.path, h, &msg));
        }
    }
    let http = rule.field("http").object(errs);
    if !http.present() {
        return;
    }
    let paths = http.field("paths");
    if paths.len() == 0 {
        errs.push(required(&paths.path, ""));
    }
    for path in paths.items(errs) {
        validate_http_path(&path.object(errs), errs);
    }
}

fn validate_http_path(path: &Node, errs: &mut Errs) {
    let path_type = path.field("pathType");
    let p_node = path.field("path");
    let p = p_node.string(errs);
    match path_type.str(errs) {
        None => {
            errs.push(required(&path_type.path, "pathType must be specified"));
            return;
        }
        Some("Exact" | "Prefix") => {
            if !p.starts_with('/') {
                errs.push(invalid(&p_node.path, p, "must be an absolute path"));
            }
            for seq in ["//", "/./", "/../", "%2f", "%2F"] {
                if p.contains(seq) {
                    errs.push(invalid(&p_node.path, p, &format!("must not contain '{seq}'")));
                }
            }
            for suffix in ["/..", "/."] {
                if p.ends_with(suffix) {
                    errs.push(invalid(&p_node.path, p, &format!("cannot end with '{suffix}'")));
                }
            }
        }
        Some("ImplementationSpecific") => {
            if !p.is_empty() && !p.starts_with('/') {
                errs.push(invalid(&p_node.path, p, "must be an absolute path"));
            }
        }
        Some(other) => errs.push(not_supported(&path_type.path, other, PATH_TYPES)),
    }
    validate_ingress_backend(&path.field("backend").object(errs), errs);
}

fn validate_ingress_backend(backend: &Node, errs: &mut Errs) {
    let resource = backend.field("resource").object(errs);
    let service = backend.field("service").object(errs);
    match (resource.present(), service.present()) {
        (true, true) => errs.push(invalid(
            &backend.path,
            "",
            "cannot set both resource and service backends",
        )),
        (true, false) => {
            let group = resource.field("apiGroup");
            if let Some(g) = group.str(errs) {
                meta::validate_dns_subdomain(g, &group.path, errs);
            }
            for field in ["kind", "name"] {
                let node = resource.field(field);
                let v = node.string(errs);
                if v.is_empty() {
                    errs.push(required(&node.path, &format!("{field} is required")));
                } else {
                    for msg in formats::path_segment_name(v, false) {
                        errs.push(invalid(&node.path, v, &msg));
                    }
                }
            }
        }
        (false, true) => validate_service_backend(backend, &service, errs),
        (false, false) => errs.push(invalid(&backend.path, "", "resource or service backend is required")),
    }
}

fn validate_service_backend(backend: &Node, service: &Node, errs: &mut Errs) {
    let name = service.field("name");
    let n = name.string(errs);
    if n.is_empty() {
        errs.push(required(&name.path, ""));
    } else {
        meta::validate_name_field(&name, NameRule::Dns1035, n, errs);
    }
    let port = service.field("port").object(errs);
    let port_name = port.field("name");
    let port_number = port.field("number");
    let pn = port_name.string(errs);
    let num = port_number.int(errs).unwrap_or(0);
    if !pn.is_empty() && num != 0 {
        errs.push(invalid(&backend.path, "", "cannot set both port name & port number"));
    } else if !pn.is_empty() {
        for msg in formats::is_valid_port_name(pn) {
            errs.push(invalid(&port_name.path, pn, &msg));
        }
    } else if num != 0 {
        for msg in formats::is_valid_port_num(num) {
            errs.push(invalid(&port_number.path, num, &msg));
        }
    } else {
        errs.push(required(&backend.path, "port name or number is required"));
    }
}

pub(super) fn validate_ingress_class(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    meta_full(input, SUBDOMAIN, errs);
    let spec = obj.field("spec").object(errs);
    let controller = spec.field("controller");
    let c = controller.string(errs);
    if c.len() > 250 {
        errs.push(too_long(&controller.path, 250));
    }
    if c.is_empty() {
        errs.push(required(&controller.path, ""));
    } else {
        for (bad, msg) in formats::is_domain_prefixed_path(c) {
            errs.push(invalid(&controller.path, bad, &msg));
        }
    }
    if let Some(old) = input.old() {
        let before = old.field("spec").field("controller").peek_str();
        if before != c {
            errs.push(invalid(&controller.path, c, "field is immutable"));
        }
    }
}

pub(super) fn validate_network_policy(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    meta_create_or_update(input, SUBDOMAIN, errs);
    let spec = obj.field("spec").object(errs);
    meta::validate_label_selector(&spec.field("podSelector"), errs);
    for (rules, peers) in [("ingress", "from"), ("egress", "to")] {
        for rule in spec.field(rules).items(errs) {
            let rule = rule.object(errs);
            for port in rule.field("ports").items(errs) {
                validate_policy_port(&port.object(errs), errs);
            }
            for peer in rule.field(peers).items(errs) {
                validate_policy_peer(&peer.object(errs), errs);
            }
        }
    }
    let types = spec.field("policyTypes");
    let list = types.strings(errs);
    if list.len() > 2 {
        errs.push(invalid(
            &types.path,
            raw(format!(
                "&{}",
                go_string_slice(Some(&list)).replace("[]string", "[]networking.PolicyType")
            )),
            "may not specify more than two policyTypes",
        ));
        return;
    }
    for (i, t) in list.iter().enumerate() {
        if *t != "Ingress" && *t != "Egress" {
            errs.push(not_supported(
                &super::field::index(&types.path, i),
                *t,
                &["Ingress", "Egress"],
            ));
        }
    }
}

fn validate_policy_port(port: &Node, errs: &mut Errs) {
    let protocol = port.field("protocol");
    if let Some(p) = protocol.str(errs)
        && !["TCP", "UDP", "SCTP"].contains(&p)
    {
        errs.push(not_supported(&protocol.path, p, &["TCP", "UDP", "SCTP"]));
    }
    let number = port.field("port");
    let end = port.field("endPort");
    let end_value = end.int(errs);
    match number.value {
        Some(Value::String(name)) => {
            if let Some(e) = end_value {
                errs.push(invalid(&end.path, e, "may not be specified when `port` is non-numeric"));
            }
            for msg in formats::is_valid_port_name(name) {
                errs.push(invalid(&number.path, name.as_str(), &msg));
            }
        }
        Some(v) => {
            let p = v.as_i64().unwrap_or(0);
            for msg in formats::is_valid_port_num(p) {
                errs.push(invalid(&number.path, p, &msg));
            }
            if let Some(e) = end_value {
                if e < p {
                    errs.push(invalid(&end.path, p, "must be greater than or equal to `port`"));
                }
                for msg in formats::is_valid_port_num(e) {
                    errs.push(invalid(&end.path, e, &msg));
                }
            }
        }
        None => {
            if let Some(e) = end_value {
                errs.push(invalid(
                    &end.path,
                    e,
                    "may not be specified when `port` is not specified",
                ));
            }
        }
    }
}

fn validate_policy_peer(peer: &Node, errs: &mut Errs) {
    let mut count = 0;
    for field in ["podSelector", "namespaceSelector"] {
        let selector = peer.field(field);
        if selector.present() {
            count += 1;
            meta::validate_label_selector(&selector, errs);
        }
    }
    let block = peer.field("ipBlock").object(errs);
    if block.present() {
        count += 1;
        validate_ip_block(&block, errs);
    }
    if count == 0 {
        errs.push(required(&peer.path, "must specify a peer"));
    } else if count > 1 && block.present() {
        errs.push(forbidden(&peer.path, "may not specify both ipBlock and another peer"));
    }
}

fn validate_ip_block(block: &Node, errs: &mut Errs) {
    let cidr = block.field("cidr");
    let c = cidr.string(errs);
    if c.is_empty() {
        errs.push(required(&cidr.path, ""));
        return;
    }
    let Some((ip, bits)) = formats::parse_cidr_sloppy(c) else {
        errs.push(invalid(&cidr.path, c, "not a valid CIDR"));
        return;
    };
    for except in block.field("except").items(errs) {
        let e = except.string(errs);
        let Some((eip, ebits)) = formats::parse_cidr_sloppy(e) else {
            errs.push(invalid(&except.path, e, "not a valid CIDR"));
            return;
        };
        if !cidr_contains(ip, bits, eip) || bits >= ebits {
            errs.push(invalid(&except.path, e, "must be a strict subset of `cidr`"));
        }
    }
}

fn cidr_contains(net: formats::IpKind, bits: u32, ip: formats::IpKind) -> bool {
    let to_u128 = |ip: formats::IpKind| match ip {
        formats::IpKind::V4(o) => (u128::from(u32::from_be_bytes(o)), 32),
        formats::IpKind::V6(v6) => (u128::from(v6), 128),
    };
    let ((n, nlen), (i, ilen)) = (to_u128(net), to_u128(ip));
    if nlen != ilen || bits > nlen {
        return false;
    }
    let shift = nlen - bits;
    shift >= 128 || (n >> shift) == (i >> shift)
}

fn validate_policy_rule(rule: &Node, namespaced: bool, errs: &mut Errs) {
    let verbs = rule.field("verbs");
    if verbs.len() == 0 {
        errs.push(required(&verbs.path, "verbs must contain at least one value"));
    }
    let urls = rule.field("nonResourceURLs");
    let url_list = urls.strings(errs);
    if !url_list.is_empty() {
        let shown = || raw(go_string_slice(Some(&url_list)));
        if namespaced {
            errs.push(invalid(
                &urls.path,
                shown(),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if rule.field("apiGroups").len() > 0
            || rule.field("resources").len() > 0
            || rule.field("resourceNames").len() > 0
        {
            errs.push(invalid(
                &urls.path,
                shown(),
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return;
    }
    if rule.field("apiGroups").len() == 0 {
        errs.push(required(
            &rule.field("apiGroups").path,
            "resource rules must supply at least one api group",
        ));
    }
    if rule.field("resources").len() == 0 {
        errs.push(required(
            &rule.field("resources").path,
            "resource rules must supply at least one resource",
        ));
    }
}

const RBAC_RULES: MetaRules = MetaRules::kube(NameRule::PathSegment);

/// Roles and ClusterRoles.
pub(super) fn validate_role(input: &Input, cluster: bool, errs: &mut Errs) {
    let obj = input.object();
    meta::validate_object_meta(&obj.field("metadata"), RBAC_RULES, errs);
    for rule in obj.field("rules").items(errs) {
        validate_policy_rule(&rule.object(errs), !cluster, errs);
    }
    let aggregation = obj.field("aggregationRule").object(errs);
    if cluster && aggregation.present() {
        let selectors = aggregation.field("clusterRoleSelectors");
        if selectors.len() == 0 {
            errs.push(required(
                "aggregationRule.clusterRoleSelectors",
                "at least one clusterRoleSelector required if aggregationRule is non-nil",
            ));
        }
        for selector in selectors.items(errs) {
            meta::validate_label_selector(&selector, errs);
        }
    }
    if let Some(old) = input.old() {
        meta::validate_object_meta_update(&obj.field("metadata"), &old.field("metadata"), RBAC_RULES, errs);
    }
}

fn go_role_ref(node: &Node) -> String {
    format!(
        "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
        go_quote(node.field("apiGroup").peek_str()),
        go_quote(node.field("kind").peek_str()),
        go_quote(node.field("name").peek_str())
    )
}

/// RoleBindings and ClusterRoleBindings.
pub(super) fn validate_role_binding(input: &Input, cluster: bool, errs: &mut Errs) {
    let obj = input.object();
    meta::validate_object_meta(&obj.field("metadata"), RBAC_RULES, errs);
    let role_ref = obj.field("roleRef").object(errs);
    let group = role_ref.field("apiGroup").string(errs);
    if group != "rbac.authorization.k8s.io" {
        errs.push(not_supported("roleRef.apiGroup", group, &["rbac.authorization.k8s.io"]));
    }
    let kind = role_ref.field("kind").string(errs);
    let kinds: &[&str] = if cluster {
        &["ClusterRole"]
    } else {
        &["Role", "ClusterRole"]
    };
    if !kinds.contains(&kind) {
        errs.push(not_supported("roleRef.kind", kind, kinds));
    }
    let name = role_ref.field("name").string(errs);
    if name.is_empty() {
        errs.push(required("roleRef.name", ""));
    } else {
        for msg in formats::path_segment_name(name, false) {
            errs.push(invalid("roleRef.name", name, &msg));
        }
    }
    for subject in obj.field("subjects").items(errs) {
        validate_subject(&subject.object(errs), !cluster, errs);
    }
    if let Some(old) = input.old() {
        meta::validate_object_meta_update(&obj.field("metadata"), &old.field("metadata"), RBAC_RULES, errs);
        let old_ref = old.field("roleRef");
        let fields = ["apiGroup", "kind", "name"];
        if fields
            .iter()
            .any(|f| role_ref.field(f).peek_str() != old_ref.field(f).peek_str())
        {
            errs.push(invalid("roleRef", raw(go_role_ref(&role_ref)), "cannot change roleRef"));
        }
    }
}

fn validate_subject(subject: &Node, namespaced: bool, errs: &mut Errs) {
    let name = subject.field("name");
    let n = name.string(errs);
    if n.is_empty() {
        errs.push(required(&name.path, ""));
    }
    let group = subject.field("apiGroup");
    let g = group.string(errs);
    match subject.field("kind").string(errs) {
        "ServiceAccount" => {
            if !n.is_empty() {
                meta::validate_name_field(&name, NameRule::Subdomain, n, errs);
            }
            if !g.is_empty() {
                errs.push(not_supported(&group.path, g, &[""]));
            }
            if !namespaced && subject.field("namespace").string(errs).is_empty() {
                errs.push(required(&subject.field("namespace").path, ""));
            }
        }
        "User" | "Group" => {
            if g != "rbac.authorization.k8s.io" {
                errs.push(not_supported(&group.path, g, &["rbac.authorization.k8s.io"]));
            }
        }
        other => errs.push(not_supported(
            &subject.field("kind").path,
            other,
            &["ServiceAccount", "User", "Group"],
        )),
    }
}

/// PodDisruptionBudgets: upstream's validator has no ObjectMeta part; the generic one applies.
pub(super) fn validate_pod_disruption_budget(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    let spec = obj.field("spec").object(errs);
    let min = spec.field("minAvailable");
    let max = spec.field("maxUnavailable");
    if min.present() && max.present() {
        errs.push(invalid(
            &spec.path,
            raw(go_pdb_spec(&spec)),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for node in [&min, &max] {
        if node.present() {
            validate_int_or_percent(node, errs);
            not_over_100_percent(node, errs);
        }
    }
    meta::validate_label_selector(&spec.field("selector"), errs);
    let policy = spec.field("unhealthyPodEvictionPolicy");
    if let Some(p) = policy.str(errs)
        && p != "AlwaysAllow"
        && p != "IfHealthyBudget"
    {
        errs.push(not_supported(&policy.path, p, &["AlwaysAllow", "IfHealthyBudget"]));
    }
    if errs.is_empty() {
        meta_create_or_update(input, MetaRules::generic(NameRule::PathSegment), errs);
    }
}

fn go_pdb_spec(spec: &Node) -> String {
    let ptr = |f: &str| {
        if spec.field(f).present() {
            "(*intstr.IntOrString)(0xc000000000)"
        } else {
            "(*intstr.IntOrString)(nil)"
        }
    };
    let selector = if spec.field("selector").present() {
        "(*v1.LabelSelector)(0xc000000000)"
    } else {
        "(*v1.LabelSelector)(nil)"
    };
    let policy = if spec.field("unhealthyPodEvictionPolicy").present() {
        "(*policy.UnhealthyPodEvictionPolicyType)(0xc000000000)"
    } else {
        "(*policy.UnhealthyPodEvictionPolicyType)(nil)"
    };
    format!(
        "policy.PodDisruptionBudgetSpec{{MinAvailable:{}, Selector:{selector}, MaxUnavailable:{}, UnhealthyPodEvictionPolicy:{policy}}}",
        ptr("minAvailable"),
        ptr("maxUnavailable")
    )
}

const HIGHEST_USER_PRIORITY: i64 = 1_000_000_000;

pub(super) fn validate_priority_class(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    let value = obj.field("value").int(errs).unwrap_or(0);
    match input.old() {
        None => {
            meta::validate_object_meta(&obj.field("metadata"), SUBDOMAIN, errs);
            let name = obj.field("metadata").field("name").peek_str();
            let global = obj.field("globalDefault").bool(errs).unwrap_or(false);
            if name.starts_with("system-") {
                if let Err(e) = known_system_priority_class(name, value, global) {
                    errs.push(forbidden(
                        "metadata.name",
                        &format!(
                            "priority class names with 'system-' prefix are reserved for system use only. error: {e}"
                        ),
                    ));
                }
            } else if value > HIGHEST_USER_PRIORITY {
                errs.push(forbidden(
                    "value",
                    &format!("maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"),
                ));
            }
            let policy = obj.field("preemptionPolicy");
            if let Some(p) = policy.str(errs) {
                pod::validate_preemption_policy(p, &policy.path, errs);
            }
        }
        Some(old) => {
            meta::validate_object_meta_update(&obj.field("metadata"), &old.field("metadata"), SUBDOMAIN, errs);
            if Some(value) != old.field("value").peek_int().or(Some(0)) {
                errs.push(forbidden("value", "may not be changed in an update."));
            }
            let policy = obj.field("preemptionPolicy");
            if !same(policy.value, old.field("preemptionPolicy").value) {
                let shown = policy.value.and_then(Value::as_str).map_or(raw("null"), Into::into);
                errs.push(invalid("preemptionPolicy", shown, "field is immutable"));
            }
        }
    }
}

fn known_system_priority_class(name: &str, value: i64, global: bool) -> Result<(), String> {
    let expected = match name {
        "system-node-critical" => 2_000_001_000,
        "system-cluster-critical" => 2_000_000_000,
        _ => return Err(format!("{name} is not a known system priority class")),
    };
    if value != expected {
        return Err(format!("value of {name} PriorityClass must be {expected}"));
    }
    if global {
        return Err(format!("globalDefault of {name} PriorityClass must be false"));
    }
    Ok(())
}

pub(super) fn validate_lease(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    meta_create_or_update(input, MetaRules::generic(NameRule::Subdomain), errs);
    let spec = obj.field("spec").object(errs);
    let duration = spec.field("leaseDurationSeconds");
    if let Some(d) = duration.int(errs)
        && d <= 0
    {
        errs.push(invalid(&duration.path, d, "must be greater than 0"));
    }
    let transitions = spec.field("leaseTransitions");
    if let Some(t) = transitions.int(errs)
        && t < 0
    {
        errs.push(invalid(&transitions.path, t, "must be greater than or equal to 0"));
    }
    let strategy = spec.field("strategy");
    let s = strategy.str(errs);
    if let Some(s) = s {
        let path = child(&strategy.path, "strategy");
        if s.contains('/') {
            meta::validate_qualified_name(s, &path, errs);
        } else if s != "OldestEmulationVersion" {
            errs.push(not_supported(&path, s, &["OldestEmulationVersion"]));
        }
    }
    let holder = spec.field("preferredHolder").string(errs);
    if !holder.is_empty() && s.is_none_or(str::is_empty) {
        errs.push(forbidden(
            &spec.field("preferredHolder").path,
            "may only be specified if `strategy` is defined",
        ));
    }
}

pub(super) fn validate_endpoint_slice(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    meta_full(input, SUBDOMAIN, errs);
    let address_type = obj.field("addressType");
    let t = address_type.string(errs);
    match t {
        "" => errs.push(required("addressType", "")),
        "FQDN" | "IPv4" | "IPv6" => {}
        other => errs.push(not_supported("addressType", other, &["FQDN", "IPv4", "IPv6"])),
    }
    let endpoints = obj.field("endpoints");
    if endpoints.len() > 1000 {
        errs.push(too_many("endpoints", endpoints.len(), 1000));
    } else {
        for endpoint in endpoints.items(errs) {
            validate_slice_endpoint(&endpoint.object(errs), t, errs);
        }
    }
    validate_slice_ports(&obj.field("ports"), errs);
    if let Some(old) = input.old() {
        let before = old.field("addressType").peek_str();
        if before != t {
            errs.push(invalid("addressType", t, "field is immutable"));
        }
    }
}

fn validate_slice_endpoint(endpoint: &Node, address_type: &str, errs: &mut Errs) {
    let addresses = endpoint.field("addresses");
    let list = addresses.items(errs);
    if list.is_empty() {
        errs.push(required(&addresses.path, "must contain at least 1 address"));
    } else if list.len() > 100 {
        errs.push(too_many(&addresses.path, list.len(), 100));
    }
    for address in &list {
        let a = address.string(errs);
        match address_type {
            "IPv4" | "IPv6" => {
                let parsed = formats::parse_ip_sloppy(a);
                let ok = match address_type {
                    "IPv4" => parsed.is_some_and(|p| !p.is_v6()),
                    _ => parsed.is_some_and(|p| p.is_v6()),
                };
                if !ok {
                    errs.push(invalid(
                        &address.path,
                        a,
                        &format!("must be a valid {address_type} address"),
                    ));
                }
                super::core::validate_non_special_ip(a, &address.path, errs);
            }
            "FQDN" => {
                if a.is_empty() {
                    errs.push(required(&address.path, ""));
                }
                for (bad, msg) in formats::is_fully_qualified_domain_name(a) {
                    errs.push(invalid(&address.path, bad, &msg));
                }
            }
            _ => {}
        }
    }
    let node_name = endpoint.field("nodeName");
    if let Some(n) = node_name.str(errs) {
        meta::validate_name_field(&node_name, NameRule::Subdomain, n, errs);
    }
    let topology = endpoint.field("deprecatedTopology");
    if topology.len() > 16 {
        errs.push(too_many(&topology.path, topology.len(), 16));
    }
    meta::validate_labels(&topology, errs);
    let hostname = endpoint.field("hostname");
    if let Some(h) = hostname.str(errs) {
        meta::validate_dns_label(h, &hostname.path, errs);
    }
    let zones = endpoint.field("hints").field("forZones");
    let mut seen = BTreeSet::new();
    for zone in zones.items(errs) {
        let name = zone.field("name");
        let n = name.string(errs);
        if !seen.insert(n) {
            errs.push(duplicate(&name.path, n));
        }
        for msg in formats::is_label_value(n) {
            errs.push(invalid(&name.path, n, &msg));
        }
    }
}

fn validate_slice_ports(ports: &Node, errs: &mut Errs) {
    if ports.len() > 20000 {
        errs.push(too_many(&ports.path, ports.len(), 20000));
        return;
    }
    let mut names = BTreeSet::new();
    for port in ports.items(errs) {
        let port = port.object(errs);
        let name = port.field("name");
        let n = name.string(errs);
        if !n.is_empty() {
            meta::validate_dns_label(n, &name.path, errs);
        }
        if !names.insert(n) {
            errs.push(duplicate(&name.path, n));
        }
        let protocol = port.field("protocol");
        match protocol.str(errs) {
            None => errs.push(required(&protocol.path, "")),
            Some(p) if !["SCTP", "TCP", "UDP"].contains(&p) => {
                errs.push(not_supported(&protocol.path, p, &["SCTP", "TCP", "UDP"]))
            }
            Some(_) => {}
        }
        let app = port.field("appProtocol");
        if let Some(a) = app.str(errs) {
            meta::validate_qualified_name(a, &app.path, errs);
        }
    }
}

pub(super) fn validate_storage_class(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    meta_create_or_update(input, SUBDOMAIN, errs);
    let provisioner = obj.field("provisioner");
    let p = provisioner.string(errs);
    if p.is_empty() {
        errs.push(required("provisioner", ""));
    } else {
        meta::validate_qualified_name(&p.to_lowercase(), "provisioner", errs);
    }
    let params = obj.field("parameters");
    let map = params.string_map(errs).unwrap_or_default();
    if map.len() > 512 {
        errs.push(too_long("parameters", 512));
    } else {
        let total: usize = map.iter().map(|(k, v)| k.len() + v.len()).sum();
        if map.keys().any(|k| k.is_empty()) {
            errs.push(invalid("parameters", "", "field can not be empty."));
        }
        if total > 256 * 1024 {
            errs.push(too_long("parameters", 256 * 1024));
        }
    }
    let reclaim = obj.field("reclaimPolicy");
    if let Some(r) = reclaim.str(errs)
        && !r.is_empty()
        && r != "Delete"
        && r != "Retain"
    {
        errs.push(not_supported("reclaimPolicy", r, &["Delete", "Retain"]));
    }
    let binding = obj.field("volumeBindingMode");
    if let Some(b) = binding.str(errs)
        && b != "Immediate"
        && b != "WaitForFirstConsumer"
    {
        errs.push(not_supported(
            "volumeBindingMode",
            b,
            &["Immediate", "WaitForFirstConsumer"],
        ));
    }
    if let Some(old) = input.old() {
        if !same(params.value, old.field("parameters").value) {
            errs.push(forbidden("parameters", "updates to parameters are forbidden."));
        }
        if p != old.field("provisioner").peek_str() {
            errs.push(forbidden("provisioner", "updates to provisioner are forbidden."));
        }
        if !same(reclaim.value, old.field("reclaimPolicy").value) {
            errs.push(forbidden("reclaimPolicy", "updates to reclaimPolicy are forbidden."));
        }
        if !same(binding.value, old.field("volumeBindingMode").value) {
            errs.push(invalid(
                "volumeBindingMode",
                binding.value.and_then(Value::as_str).map_or(raw("null"), Into::into),
                "field is immutable",
            ));
        }
    }
}
