//! The core (`v1`) kinds: Pod, ConfigMap, Secret, Service, Namespace, Node,
//! volumes and claims, quotas, endpoints, events, ...

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::field::{
    Errs, child, duplicate, duplicate_because, forbidden, go_quote, go_string_slice, index, invalid, key,
    not_supported, raw, required, too_long,
};
use super::formats;
use super::json::{Node, diff, same};
use super::meta::{self, MetaRules, NameRule};
use super::pod::{self, PodOpts};
use super::quantity::Quantity;
use super::resources;
use super::volumes;
use super::{Input, meta_create_or_update, meta_full};

const MAX_SECRET_SIZE: usize = 1024 * 1024;
const SUBDOMAIN: MetaRules = MetaRules::kube(NameRule::Subdomain);

pub(super) fn validate_pod(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    let metadata = obj.field("metadata");
    if let Some(old) = input.old() {
        meta::validate_object_meta_update(&metadata, &old.field("metadata"), SUBDOMAIN, errs);
    }
    meta::validate_object_meta(&metadata, SUBDOMAIN, errs);
    let name = metadata.field("name").peek_str();
    let spec = obj.field("spec");
    pod::validate_pod_annotations(&metadata.field("annotations"), &spec, errs);
    pod::validate_pod_spec(&spec, name, PodOpts { is_pod: true }, errs);
    pod::validate_pod_only(&spec, input.old.is_none(), errs);
    if let Some(old) = input.old() {
        let old_annotations = old.field("metadata").field("annotations");
        pod::validate_pod_annotation_updates(&metadata.field("annotations"), &old_annotations, errs);
        pod::validate_pod_spec_update(&spec, &old.field("spec"), errs);
    }
}

pub(super) fn validate_pod_template(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    meta_create_or_update(input, SUBDOMAIN, errs);
    pod::validate_pod_template_spec(&obj.field("template"), errs);
}

pub(super) fn validate_replication_controller(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    meta_create_or_update(input, SUBDOMAIN, errs);
    let spec = obj.field("spec").object(errs);
    let min_ready = spec.field("minReadySeconds");
    meta::validate_nonnegative(&min_ready.path, min_ready.int(errs).unwrap_or(0), errs);
    let selector_node = spec.field("selector");
    let selector = selector_node.string_map(errs);
    let template = spec.field("template").object(errs);
    let template_labels = template.field("metadata").field("labels").peek_string_map();
    let selector = match selector.filter(|s| !s.is_empty()) {
        Some(s) => Some(s),
        None => template_labels.clone().filter(|l| !l.is_empty()),
    };
    if selector.is_none() {
        errs.push(required(&selector_node.path, ""));
    }
    let replicas = spec.field("replicas");
    meta::validate_nonnegative(&replicas.path, replicas.int(errs).unwrap_or(1), errs);
    if !template.present() {
        errs.push(required(&template.path, ""));
        return;
    }
    if let Some(selector) = &selector {
        let labels = template_labels.clone().unwrap_or_default();
        if selector.iter().any(|(k, v)| labels.get(k) != Some(v)) {
            errs.push(invalid(
                &child(&template.path, "metadata.labels"),
                raw(super::field::go_string_map(template_labels.as_ref())),
                "`selector` does not match template `labels`",
            ));
        }
    }
    pod::validate_pod_template_spec(&template, errs);
    super::apps::require_always_restart(&template, errs);
    let deadline = template.field("spec").field("activeDeadlineSeconds");
    if deadline.present() {
        errs.push(forbidden(
            &deadline.path,
            "activeDeadlineSeconds in ReplicationController is not Supported",
        ));
    }
}

fn validate_data_keys(node: &Node, errs: &mut Errs) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for (k, value) in node.entries(errs) {
        for msg in formats::is_config_map_key(k) {
            errs.push(invalid(&value.path, k, &msg));
        }
        keys.insert(k.to_string());
    }
    keys
}

pub(super) fn validate_config_map(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    if let Some(old) = input.old() {
        meta::validate_object_meta_update(&obj.field("metadata"), &old.field("metadata"), SUBDOMAIN, errs);
        if old.field("immutable").peek_bool() {
            if !obj.field("immutable").peek_bool() {
                errs.push(forbidden("immutable", "field is immutable when `immutable` is set"));
            }
            for field in ["data", "binaryData"] {
                if !same(obj.field(field).value, old.field(field).value) {
                    errs.push(forbidden(field, "field is immutable when `immutable` is set"));
                }
            }
        }
    }
    meta::validate_object_meta(&obj.field("metadata"), SUBDOMAIN, errs);
    let data = obj.field("data");
    let binary = obj.field("binaryData");
    let binary_keys: BTreeSet<&str> = binary
        .as_map()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let mut total = 0usize;
    for (k, value) in data.entries(errs) {
        for msg in formats::is_config_map_key(k) {
            errs.push(invalid(&value.path, k, &msg));
        }
        if binary_keys.contains(k) {
            errs.push(invalid(&value.path, k, "duplicate of key present in binaryData"));
        }
        total += value.string(errs).len();
    }
    for (k, value) in binary.entries(errs) {
        for msg in formats::is_config_map_key(k) {
            errs.push(invalid(&value.path, k, &msg));
        }
        total += decoded_len(&value, errs);
    }
    obj.field("immutable").bool(errs);
    if total > MAX_SECRET_SIZE {
        errs.push(too_long("[]", MAX_SECRET_SIZE));
    }
}

/// The bytes of a base64 value (`[]byte` fields are base64 in JSON).
fn decode_base64(s: &str) -> Result<Vec<u8>, usize> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    let bytes = s.as_bytes();
    let mut padding = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                padding += 1;
                if bytes[i..].iter().any(|&b| b != b'=') || padding > 2 {
                    return Err(i);
                }
                continue;
            }
            b'\r' | b'\n' => continue,
            _ => return Err(i),
        };
        if padding > 0 {
            return Err(i);
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    let len = bytes.iter().filter(|c| !matches!(c, b'\r' | b'\n')).count();
    if len % 4 != 0 {
        return Err(len);
    }
    Ok(out)
}

fn decoded(value: &Node, errs: &mut Errs) -> Option<Vec<u8>> {
    let s = value.str(errs)?;
    match decode_base64(s) {
        Ok(bytes) => Some(bytes),
        Err(at) => {
            errs.push(invalid(
                &value.path,
                "<secret contents redacted>",
                &format!("illegal base64 data at input byte {at}"),
            ));
            None
        }
    }
}

fn decoded_len(value: &Node, errs: &mut Errs) -> usize {
    decoded(value, errs).map(|b| b.len()).unwrap_or(0)
}

/// A Secret's data as bytes, `stringData` merged in (as upstream's conversion does).
fn secret_data(obj: &Node, errs: &mut Errs) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (k, value) in obj.field("data").entries(errs) {
        out.insert(k.to_string(), decoded(&value, errs).unwrap_or_default());
    }
    for (k, value) in obj.field("stringData").entries(errs) {
        out.insert(k.to_string(), value.string(errs).as_bytes().to_vec());
    }
    out
}

pub(super) fn validate_secret(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    let secret_type = match obj.field("type").string(errs) {
        "" => "Opaque",
        t => t,
    };
    if let Some(old) = input.old() {
        meta::validate_object_meta_update(&obj.field("metadata"), &old.field("metadata"), SUBDOMAIN, errs);
        let old_type = match old.field("type").peek_str() {
            "" => "Opaque",
            t => t,
        };
        if secret_type != old_type {
            errs.push(invalid("type", secret_type, "field is immutable"));
        }
        if old.field("immutable").peek_bool() {
            if !obj.field("immutable").peek_bool() {
                errs.push(forbidden("immutable", "field is immutable when `immutable` is set"));
            }
            let mut scratch = Vec::new();
            if secret_data(&obj, &mut scratch) != secret_data(&old, &mut scratch) {
                errs.push(forbidden("data", "field is immutable when `immutable` is set"));
            }
        }
    }
    meta::validate_object_meta(&obj.field("metadata"), SUBDOMAIN, errs);
    validate_data_keys(&obj.field("data"), errs);
    let mut string_keys = Vec::new();
    for (k, value) in obj.field("stringData").entries(errs) {
        if obj.field("data").field(k).present() {
            continue;
        }
        for msg in formats::is_config_map_key(k) {
            errs.push(invalid(&key("data", k), k, &msg));
        }
        string_keys.push((k, value));
    }
    let data = secret_data(&obj, errs);
    if data.values().map(Vec::len).sum::<usize>() > MAX_SECRET_SIZE {
        errs.push(too_long("data", MAX_SECRET_SIZE));
    }
    obj.field("immutable").bool(errs);
    validate_secret_type(&obj, secret_type, &data, errs);
}

fn validate_secret_type(obj: &Node, secret_type: &str, data: &BTreeMap<String, Vec<u8>>, errs: &mut Errs) {
    let need = |k: &str, errs: &mut Errs| {
        if !data.contains_key(k) {
            errs.push(required(&key("data", k), ""));
            return false;
        }
        true
    };
    let need_json = |k: &str, errs: &mut Errs| {
        if need(k, errs)
            && let Some(bytes) = data.get(k)
            && let Err(e) = serde_json::from_slice::<serde_json::Map<String, Value>>(bytes)
        {
            errs.push(invalid(&key("data", k), "<secret contents redacted>", &e.to_string()));
        }
    };
    match secret_type {
        "kubernetes.io/service-account-token" => {
            let annotation = obj
                .field("metadata")
                .field("annotations")
                .field("kubernetes.io/service-account.name");
            if annotation.peek_str().is_empty() {
                errs.push(required(
                    &key("metadata.annotations", "kubernetes.io/service-account.name"),
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" => need_json(".dockercfg", errs),
        "kubernetes.io/dockerconfigjson" => need_json(".dockerconfigjson", errs),
        "kubernetes.io/basic-auth" if !data.contains_key("username") && !data.contains_key("password") => {
            need("username", errs);
            need("password", errs);
        }
        "kubernetes.io/ssh-auth" if data.get("ssh-privatekey").is_none_or(Vec::is_empty) => {
            errs.push(required(&key("data", "ssh-privatekey"), ""));
        }
        "kubernetes.io/tls" => {
            need("tls.crt", errs);
            need("tls.key", errs);
        }
        _ => {}
    }
}

pub(super) fn validate_namespace(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    let rules = MetaRules::kube(NameRule::Label);
    match input.old() {
        Some(old) => meta::validate_object_meta_update(&obj.field("metadata"), &old.field("metadata"), rules, errs),
        None => {
            meta::validate_object_meta(&obj.field("metadata"), rules, errs);
            let finalizers = obj.field("spec").field("finalizers");
            for f in finalizers.items(errs) {
                meta::validate_finalizer_name(f.string(errs), &finalizers.path, errs);
            }
        }
    }
}

pub(super) fn validate_service_account(input: &Input, errs: &mut Errs) {
    meta_full(input, SUBDOMAIN, errs);
}

/// `ValidateNonSpecialIP` / `ValidateEndpointIP`.
pub(super) fn validate_non_special_ip(ip: &str, path: &str, errs: &mut Errs) {
    let Some(parsed) = formats::parse_ip_sloppy(ip) else {
        errs.push(invalid(path, ip, "must be a valid IP address"));
        return;
    };
    if parsed.is_unspecified() {
        errs.push(invalid(path, ip, &format!("may not be unspecified ({ip})")));
    }
    if parsed.is_loopback() {
        errs.push(invalid(
            path,
            ip,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    if parsed.is_link_local_unicast() {
        errs.push(invalid(
            path,
            ip,
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    if parsed.is_link_local_multicast() {
        errs.push(invalid(
            path,
            ip,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
}

pub(super) fn validate_ip(node: &Node, errs: &mut Errs) -> bool {
    let ip = node.string(errs);
    match formats::is_valid_ip(ip) {
        Some(msg) => {
            errs.push(invalid(&node.path, ip, &msg));
            false
        }
        None => true,
    }
}

pub(super) fn validate_endpoints(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    meta_full(input, SUBDOMAIN, errs);
    for subset in obj.field("subsets").items(errs) {
        let subset = subset.object(errs);
        let addresses = subset.field("addresses");
        let not_ready = subset.field("notReadyAddresses");
        if addresses.len() == 0 && not_ready.len() == 0 {
            errs.push(required(
                &subset.path,
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for list in [addresses, not_ready] {
            for address in list.items(errs) {
                validate_endpoint_address(&address.object(errs), errs);
            }
        }
        let ports = subset.field("ports");
        let require_name = ports.len() > 1;
        for port in ports.items(errs) {
            validate_endpoint_port(&port.object(errs), require_name, errs);
        }
    }
}

fn validate_endpoint_address(address: &Node, errs: &mut Errs) {
    let ip = address.field("ip");
    validate_ip(&ip, errs);
    let hostname = address.field("hostname");
    let h = hostname.string(errs);
    if !h.is_empty() {
        meta::validate_dns_label(h, &hostname.path, errs);
    }
    let node_name = address.field("nodeName");
    if let Some(n) = node_name.str(errs) {
        meta::validate_name_field(&node_name, NameRule::Subdomain, n, errs);
    }
    validate_non_special_ip(ip.peek_str(), &ip.path, errs);
}

fn validate_endpoint_port(port: &Node, require_name: bool, errs: &mut Errs) {
    let name = port.field("name");
    let n = name.string(errs);
    if require_name && n.is_empty() {
        errs.push(required(&name.path, ""));
    } else if !n.is_empty() {
        meta::validate_dns_label(n, &name.path, errs);
    }
    let number = port.field("port");
    let p = number.int(errs).unwrap_or(0);
    for msg in formats::is_valid_port_num(p) {
        errs.push(invalid(&number.path, p, &msg));
    }
    pod::validate_protocol(&port.field("protocol"), errs);
    let app = port.field("appProtocol");
    if let Some(a) = app.str(errs) {
        meta::validate_qualified_name(a, &app.path, errs);
    }
}

/// Core Events (and `events.k8s.io` Events, whose fields are mapped to core's names).
pub(super) fn validate_event(input: &Input, strict: bool, errs: &mut Errs) {
    let obj = input.object();
    let field = |core: &'static str, events: &'static str| -> Node {
        let node = obj.field(if strict { events } else { core });
        Node::new(node.value, core)
    };
    let involved = field("involvedObject", "regarding").object(errs);
    let namespace = obj.field("metadata").field("namespace").peek_str();
    let involved_ns = involved.field("namespace");
    let ns = involved_ns.string(errs);
    let event_time = obj.field("eventTime").string(errs);
    let mismatch = |errs: &mut Errs| {
        errs.push(invalid(
            "involvedObject.namespace",
            ns,
            "does not match event.namespace",
        ));
    };
    if event_time.is_empty() {
        if ns.is_empty() {
            if !namespace.is_empty() && namespace != "default" {
                mismatch(errs);
            }
        } else if namespace != ns {
            mismatch(errs);
        }
    } else {
        if ns.is_empty() && namespace != "default" && namespace != "kube-system" {
            mismatch(errs);
        }
        validate_event_reporting(&obj, &field("message", "note"), errs);
    }
    for msg in formats::is_dns1123_subdomain(namespace) {
        errs.push(invalid("namespace", namespace, &msg));
    }
    if strict {
        validate_strict_event(input, &field, errs);
    } else {
        meta::validate_object_meta(&obj.field("metadata"), MetaRules::generic(NameRule::PathSegment), errs);
    }
}

fn validate_event_reporting(obj: &Node, message: &Node, errs: &mut Errs) {
    let controller = obj.field("reportingController").string(errs);
    if controller.is_empty() {
        errs.push(required("reportingController", ""));
    }
    meta::validate_qualified_name(controller, "reportingController", errs);
    for (field, limit) in [("reportingInstance", 128usize), ("action", 128), ("reason", 128)] {
        let value = obj.field(field).string(errs);
        if value.is_empty() {
            errs.push(required(field, ""));
        }
        if value.len() > limit {
            errs.push(invalid(field, "", &format!("can have at most {limit} characters")));
        }
    }
    if message.string(errs).len() > 1024 {
        errs.push(invalid("message", "", "can have at most 1024 characters"));
    }
}

fn validate_strict_event<'a>(
    input: &Input<'a>,
    field: &dyn Fn(&'static str, &'static str) -> Node<'a>,
    errs: &mut Errs,
) {
    let obj = input.object();
    meta::validate_object_meta(&obj.field("metadata"), SUBDOMAIN, errs);
    let series = obj.field("series").object(errs);
    if series.present()
        && input
            .old()
            .is_none_or(|old| !same(series.value, old.field("series").value))
    {
        if series.field("count").int(errs).unwrap_or(0) < 2 {
            errs.push(invalid("series.count", "", "should be at least 2"));
        }
        if series.field("lastObservedTime").string(errs).is_empty() {
            errs.push(required("series.lastObservedTime", ""));
        }
    }
    if input.old.is_some() {
        return;
    }
    if obj.field("eventTime").peek_str().is_empty() {
        errs.push(required("eventTime", ""));
    }
    let event_type = obj.field("type").string(errs);
    if event_type != "Normal" && event_type != "Warning" {
        errs.push(invalid("type", "", &format!("has invalid value: {event_type}")));
    }
    for (core, events) in [
        ("firstTimestamp", "deprecatedFirstTimestamp"),
        ("lastTimestamp", "deprecatedLastTimestamp"),
    ] {
        if !field(core, events).peek_str().is_empty() {
            errs.push(invalid(core, "", "needs to be unset"));
        }
    }
    if field("count", "deprecatedCount").peek_int().unwrap_or(0) != 0 {
        errs.push(invalid("count", "", "needs to be unset"));
    }
    let source = field("source", "deprecatedSource");
    if !source.field("component").peek_str().is_empty() || !source.field("host").peek_str().is_empty() {
        errs.push(invalid("source", "", "needs to be unset"));
    }
}

fn go_taint(t: &Node) -> String {
    format!(
        "core.Taint{{Key:{}, Value:{}, Effect:{}, TimeAdded:(*v1.Time)(nil)}}",
        go_quote(t.field("key").peek_str()),
        go_quote(t.field("value").peek_str()),
        go_quote(t.field("effect").peek_str())
    )
}

/// Node taints, reported under `metadata.taints` as upstream does.
fn validate_node_taints(node: &Node, errs: &mut Errs) {
    let mut seen: BTreeSet<(&str, &str)> = BTreeSet::new();
    for (i, t) in node.items(errs).iter().enumerate() {
        let t = t.object(errs);
        let path = index("metadata.taints", i);
        let k = t.field("key").string(errs);
        meta::validate_label_name(&child(&path, "key"), k, errs);
        let value = t.field("value").string(errs);
        let msgs = formats::is_label_value(value);
        if !msgs.is_empty() {
            errs.push(invalid(&child(&path, "value"), value, &msgs.join(";")));
        }
        let effect = t.field("effect").string(errs);
        pod::validate_taint_effect(effect, false, &child(&path, "effect"), errs);
        if !seen.insert((effect, k)) {
            errs.push(duplicate_because(
                &path,
                raw(go_taint(&t)),
                "taints must be unique by key and effect pair",
            ));
        }
    }
}

pub(super) fn validate_node(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    let spec = obj.field("spec").object(errs);
    match input.old() {
        None => meta::validate_object_meta(&obj.field("metadata"), MetaRules::kube(NameRule::Subdomain), errs),
        Some(old) => {
            meta::validate_object_meta_update(&obj.field("metadata"), &old.field("metadata"), SUBDOMAIN, errs);
            validate_node_update(&spec, &old.field("spec"), errs);
        }
    }
    validate_node_taints(&spec.field("taints"), errs);
    for section in ["capacity", "allocatable"] {
        let list = obj.field("status").field(section);
        for (name, q) in resources::quantities(&list, errs) {
            resources::validate_quantity_value(&name, &q, &format!("status.{section}.{name}"), errs);
        }
    }
    if input.old.is_none() {
        validate_pod_cidrs(&spec.field("podCIDRs"), errs);
    }
}

fn validate_pod_cidrs(node: &Node, errs: &mut Errs) {
    let cidrs = node.strings(errs);
    for (i, c) in cidrs.iter().enumerate() {
        if let Some(msg) = formats::is_valid_cidr(c) {
            errs.push(invalid(&index(&node.path, i), *c, &msg));
        }
    }
    if cidrs.len() > 1 {
        let families: BTreeSet<bool> = cidrs
            .iter()
            .filter_map(|c| formats::parse_cidr_sloppy(c))
            .map(|(ip, _)| ip.is_v6())
            .collect();
        if families.len() != 2 || cidrs.len() > 2 {
            errs.push(invalid(
                &node.path,
                raw(go_string_slice(Some(&cidrs))),
                "may specify no more than one CIDR for each IP family",
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, c) in cidrs.iter().enumerate() {
            if !seen.insert(*c) {
                errs.push(duplicate(&index(&node.path, i), *c));
            }
        }
    }
}

fn validate_node_update(spec: &Node, old: &Node, errs: &mut Errs) {
    let old_cidrs = old.field("podCIDRs").peek_strings();
    if !old_cidrs.is_empty() && spec.field("podCIDRs").peek_strings() != old_cidrs {
        errs.push(forbidden(
            "spec.podCIDRs",
            "node updates may not change podCIDR except from \"\" to valid",
        ));
    }
    let old_provider = old.field("providerID").peek_str();
    if !old_provider.is_empty() && spec.field("providerID").peek_str() != old_provider {
        errs.push(forbidden(
            "spec.providerID",
            "node updates may not change providerID except from \"\" to valid",
        ));
    }
    if spec.field("externalID").peek_str() != old.field("externalID").peek_str() {
        errs.push(forbidden("spec.externalID", "may not be updated"));
    }
}

pub(super) fn validate_persistent_volume(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    meta_full(input, SUBDOMAIN, errs);
    let spec = obj.field("spec").object(errs);
    let modes = spec.field("accessModes");
    if modes.len() == 0 {
        errs.push(required(&modes.path, ""));
    }
    volumes::validate_access_modes(&modes, errs);
    let capacity = spec.field("capacity");
    let quantities = resources::quantities(&capacity, errs);
    if quantities.is_empty() {
        errs.push(required(&capacity.path, ""));
    }
    if !quantities.contains_key("storage") || quantities.len() > 1 {
        let shown = capacity
            .value
            .map(Value::to_string)
            .unwrap_or_else(|| "core.ResourceList(nil)".into());
        errs.push(not_supported(&capacity.path, raw(shown), &["storage"]));
    }
    for (name, q) in &quantities {
        let path = key(&capacity.path, name);
        if q.value() < 0 {
            errs.push(invalid(
                &path,
                i64::try_from(q.value()).unwrap_or(i64::MIN),
                "must be a valid resource quantity",
            ));
        }
        resources::validate_positive_quantity(q, &path, errs);
    }
    let reclaim = spec.field("persistentVolumeReclaimPolicy");
    if let Some(r) = reclaim.str(errs)
        && !r.is_empty()
        && !["Delete", "Recycle", "Retain"].contains(&r)
    {
        errs.push(not_supported(&reclaim.path, r, &["Delete", "Recycle", "Retain"]));
    }
    let affinity = spec.field("nodeAffinity");
    let has_affinity = affinity.present() && validate_volume_node_affinity(&affinity, errs);
    let source = volumes::validate_pv_source(&spec, errs);
    if source == Some("local") && !has_affinity {
        errs.push(required(&affinity.path, "Local volume requires node affinity"));
    }
    if source == Some("hostPath")
        && reclaim.peek_str() == "Recycle"
        && clean_path(spec.field("hostPath").field("path").peek_str()) == "/"
    {
        errs.push(forbidden(
            &reclaim.path,
            "may not be 'recycle' for a hostPath mount of '/'",
        ));
    }
    let class = spec.field("storageClassName");
    let c = class.string(errs);
    if !c.is_empty() {
        meta::validate_name_field(&class, NameRule::Subdomain, c, errs);
    }
    let mode = spec.field("volumeMode");
    if let Some(m) = mode.str(errs)
        && !["Block", "Filesystem"].contains(&m)
    {
        errs.push(not_supported(&mode.path, m, &["Block", "Filesystem"]));
    }
    if let Some(old) = input.old() {
        validate_pv_update(&spec, &old.field("spec"), errs);
    }
}

/// `validateVolumeNodeAffinity`: returns whether an affinity is specified.
fn validate_volume_node_affinity(affinity: &Node, errs: &mut Errs) -> bool {
    let affinity = affinity.object(errs);
    let required_terms = affinity.field("required");
    if required_terms.present() {
        pod::validate_node_selector(&required_terms.object(errs), errs);
    } else {
        errs.push(required(&required_terms.path, "must specify required node constraints"));
    }
    true
}

/// Go's `path.Clean`, enough to tell whether a path is the root.
fn clean_path(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

fn validate_pv_update(spec: &Node, old: &Node, errs: &mut Errs) {
    let source = |n: &Node| -> Value {
        let mut map = serde_json::Map::new();
        for (s, _) in volumes::PV_SOURCES {
            if let Some(v) = n.field(s).value {
                map.insert((*s).to_string(), v.clone());
            }
        }
        Value::Object(map)
    };
    let (new_source, old_source) = (source(spec), source(old));
    if !same(Some(&new_source), Some(&old_source)) {
        errs.push(forbidden(
            "spec.persistentvolumesource",
            &format!(
                "spec.persistentvolumesource is immutable after creation\n{}",
                diff(Some(&old_source), Some(&new_source))
            ),
        ));
    }
    let (mode, old_mode) = (spec.field("volumeMode"), old.field("volumeMode"));
    if !same(mode.value, old_mode.value) {
        let shown = mode.value.and_then(Value::as_str).map_or(raw("null"), |m| m.into());
        errs.push(invalid("volumeMode", shown, "field is immutable"));
    }
}

pub(super) fn validate_persistent_volume_claim(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    meta_full(input, SUBDOMAIN, errs);
    volumes::validate_pvc_spec(&obj.field("spec"), errs);
    if let Some(old) = input.old() {
        validate_pvc_update(&obj, &old, errs);
    }
}

fn validate_pvc_update(new: &Node, old: &Node, errs: &mut Errs) {
    let (Some(new_spec), Some(old_spec)) = (new.field("spec").value, old.field("spec").value) else {
        return;
    };
    let mut munged = new_spec.clone();
    let mut old_munged = old_spec.clone();
    if let (Some(n), Some(o)) = (munged.as_object_mut(), old_munged.as_object_mut()) {
        if old.field("spec").field("volumeName").peek_str().is_empty() {
            n.remove("volumeName");
            o.remove("volumeName");
        }
        if new.field("status").field("phase").peek_str() == "Bound" {
            for m in [&mut *n, &mut *o] {
                if let Some(requests) = m
                    .get_mut("resources")
                    .and_then(|r| r.get_mut("requests"))
                    .and_then(Value::as_object_mut)
                {
                    requests.remove("storage");
                }
                m.remove("volumeAttributesClassName");
            }
        }
        if o.get("storageClassName").is_none() {
            n.remove("storageClassName");
        }
    }
    if !same(Some(&munged), Some(&old_munged)) {
        errs.push(forbidden(
            "spec",
            &format!(
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n{}",
                diff(Some(&old_munged), Some(&munged))
            ),
        ));
    }
    let storage = |n: &Node| {
        super::quantity::Quantity::from_json(
            n.field("spec")
                .field("resources")
                .field("requests")
                .field("storage")
                .value?,
        )
        .and_then(Result::ok)
    };
    if let (Some(now), Some(before)) = (storage(new), storage(old))
        && now.cmp(&before) == std::cmp::Ordering::Less
    {
        let status = super::quantity::Quantity::from_json(
            old.field("status")
                .field("capacity")
                .field("storage")
                .value
                .unwrap_or(&Value::Null),
        )
        .and_then(Result::ok);
        if status.is_none_or(|s| now.cmp(&s) != std::cmp::Ordering::Greater) {
            errs.push(forbidden(
                "spec.resources.requests.storage",
                "field can not be less than status.capacity",
            ));
        }
    }
}

pub(super) fn validate_limit_range(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    meta_full(input, SUBDOMAIN, errs);
    let mut types = BTreeSet::new();
    for limit in obj.field("spec").field("limits").items(errs) {
        let limit = limit.object(errs);
        let type_node = limit.field("type");
        let t = type_node.string(errs);
        validate_limit_type(t, &type_node.path, errs);
        if !types.insert(t) {
            errs.push(duplicate(&type_node.path, t));
        }
        validate_limit_item(&limit, t, errs);
    }
}

fn validate_limit_type(t: &str, path: &str, errs: &mut Errs) {
    let before = errs.len();
    meta::validate_qualified_name(t, path, errs);
    if errs.len() == before && !t.contains('/') && !["Pod", "Container", "PersistentVolumeClaim"].contains(&t) {
        errs.push(invalid(path, t, "must be a standard limit type or fully qualified"));
    }
}

fn validate_limit_item(limit: &Node, t: &str, errs: &mut Errs) {
    let mut lists: BTreeMap<&str, BTreeMap<String, Quantity>> = BTreeMap::new();
    for section in ["max", "min", "default", "defaultRequest", "maxLimitRequestRatio"] {
        let node = limit.field(section);
        if t == "Pod" && (section == "default" || section == "defaultRequest") {
            if node.len() > 0 {
                errs.push(forbidden(&node.path, "may not be specified when `type` is 'Pod'"));
            }
            continue;
        }
        for (name, _) in node.peek_string_map().unwrap_or_default() {
            let path = key(&node.path, name);
            if t == "Pod" || t == "Container" {
                resources::validate_container_resource_name(name, &path, errs);
            } else {
                resources::validate_resource_name(name, &path, errs);
            }
        }
        lists.insert(section, resources::quantities(&node, errs));
    }
    if t == "PersistentVolumeClaim" && !lists["min"].contains_key("storage") && !lists["max"].contains_key("storage") {
        errs.push(required(
            &limit.field("limits").path,
            "either minimum or maximum storage value is required, but neither was provided",
        ));
    }
    let keys: BTreeSet<&String> = lists.values().flat_map(BTreeMap::keys).collect();
    for k in keys {
        let get = |s: &str| lists.get(s).and_then(|m| m.get(k));
        let at = |s: &str| key(&limit.field(s).path, k);
        let gt = |a: &Quantity, b: &Quantity| a.cmp(b) == std::cmp::Ordering::Greater;
        if let (Some(min), Some(max)) = (get("min"), get("max"))
            && gt(min, max)
        {
            errs.push(invalid(
                &at("min"),
                raw(min.go_repr()),
                &format!(
                    "min value {} is greater than max value {}",
                    min.canonical(),
                    max.canonical()
                ),
            ));
        }
        if let (Some(min), Some(dr)) = (get("min"), get("defaultRequest"))
            && gt(min, dr)
        {
            errs.push(invalid(
                &at("defaultRequest"),
                raw(dr.go_repr()),
                &format!(
                    "min value {} is greater than default request value {}",
                    min.canonical(),
                    dr.canonical()
                ),
            ));
        }
        if let (Some(dr), Some(max)) = (get("defaultRequest"), get("max"))
            && gt(dr, max)
        {
            errs.push(invalid(
                &at("defaultRequest"),
                raw(dr.go_repr()),
                &format!(
                    "default request value {} is greater than max value {}",
                    dr.canonical(),
                    max.canonical()
                ),
            ));
        }
        if let (Some(dr), Some(d)) = (get("defaultRequest"), get("default"))
            && gt(dr, d)
        {
            errs.push(invalid(
                &at("defaultRequest"),
                raw(dr.go_repr()),
                &format!(
                    "default request value {} is greater than default limit value {}",
                    dr.canonical(),
                    d.canonical()
                ),
            ));
        }
        if let (Some(min), Some(d)) = (get("min"), get("default"))
            && gt(min, d)
        {
            errs.push(invalid(
                &at("default"),
                raw(min.go_repr()),
                &format!(
                    "min value {} is greater than default value {}",
                    min.canonical(),
                    d.canonical()
                ),
            ));
        }
        if let (Some(d), Some(max)) = (get("default"), get("max"))
            && gt(d, max)
        {
            errs.push(invalid(
                &at("default"),
                raw(max.go_repr()),
                &format!(
                    "default value {} is greater than max value {}",
                    d.canonical(),
                    max.canonical()
                ),
            ));
        }
        if let Some(ratio) = get("maxLimitRequestRatio") {
            validate_limit_ratio(ratio, get("min"), get("max"), &at("maxLimitRequestRatio"), errs);
        }
    }
}

/// The burst ratio must be at least 1 and, with min and max set, at most max/min.
fn validate_limit_ratio(ratio: &Quantity, min: Option<&Quantity>, max: Option<&Quantity>, path: &str, errs: &mut Errs) {
    let Ok(one) = Quantity::parse("1") else { return };
    if ratio.cmp(&one) == std::cmp::Ordering::Less {
        let msg = format!("ratio {} is less than 1", ratio.canonical());
        errs.push(invalid(path, raw(ratio.go_repr()), &msg));
    }
    let (Some(min), Some(max)) = (min, max) else { return };
    const MAX_MILLI: i128 = (i64::MAX / 1000) as i128;
    let small = ratio.value() < MAX_MILLI && min.value() < MAX_MILLI && max.value() < MAX_MILLI;
    let (ratio_value, min_value, max_value) = if small {
        (
            ratio.milli_value() as f64 / 1000.0,
            min.milli_value(),
            max.milli_value(),
        )
    } else {
        (ratio.value() as f64, min.value(), max.value())
    };
    let limit = max_value as f64 / min_value as f64;
    if ratio_value > limit {
        let msg = format!(
            "ratio {} is greater than max/min = {}",
            ratio.canonical(),
            go_float(limit)
        );
        errs.push(invalid(path, raw(ratio.go_repr()), &msg));
    }
}

/// Go's `%f` rendering of a float.
fn go_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_string()
    } else if f.is_infinite() {
        if f > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{f:.6}")
    }
}

const QUOTA_SCOPES: &[&str] = &[
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
    "VolumeAttributesClass",
];

pub(super) fn validate_resource_quota(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    meta_create_or_update(input, SUBDOMAIN, errs);
    let spec = obj.field("spec").object(errs);
    let mut sections = vec![spec.field("hard")];
    if input.old.is_none() {
        sections.push(obj.field("status").field("hard"));
        sections.push(obj.field("status").field("used"));
    }
    for section in sections {
        for (name, value) in section.entries(errs) {
            validate_quota_resource_name(name, &value.path, errs);
            if let Some(q) = resources::quantity(&value, errs) {
                resources::validate_quantity_value(name, &q, &value.path, errs);
            }
        }
    }
    let scopes = spec.field("scopes");
    let list = scopes.strings(errs);
    let shown = || {
        raw(format!(
            "[]core.ResourceQuotaScope{{{}}}",
            list.iter().map(|s| go_quote(s)).collect::<Vec<_>>().join(", ")
        ))
    };
    for scope in &list {
        if !QUOTA_SCOPES.contains(scope) {
            errs.push(invalid(&scopes.path, shown(), "unsupported scope"));
        }
    }
    let has = |a: &str| list.contains(&a);
    if (has("BestEffort") && has("NotBestEffort")) || (has("Terminating") && has("NotTerminating")) {
        errs.push(invalid(&scopes.path, shown(), "conflicting scopes"));
    }
    if let Some(old) = input.old() {
        let old_scopes: BTreeSet<&str> = old.field("spec").field("scopes").peek_strings().into_iter().collect();
        let new_scopes: BTreeSet<&str> = list.iter().copied().collect();
        if old_scopes != new_scopes {
            errs.push(invalid(&scopes.path, shown(), "field is immutable"));
        }
    }
}

fn validate_quota_resource_name(name: &str, path: &str, errs: &mut Errs) {
    resources::validate_resource_name(name, path, errs);
    const QUOTA: &[&str] = &[
        "pods",
        "services",
        "replicationcontrollers",
        "resourcequotas",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "services.nodeports",
        "services.loadbalancers",
        "cpu",
        "memory",
        "ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.ephemeral-storage",
        "requests.storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
    ];
    if !name.contains('/')
        && !QUOTA.contains(&name)
        && !name.starts_with("requests.hugepages-")
        && !name.starts_with("hugepages-")
        && !name.starts_with("count/")
    {
        errs.push(invalid(path, name, "must be a standard resource for quota"));
    }
}

pub(super) use super::service::validate_service;
