//! A plain-HTTP server of the OpenAPI documents and discovery only, to try
//! kubectl against them without the whole API server:
//!
//! ```text
//! cargo run -p capstan-openapi --example openapi_server -- 8099 &
//! kubectl --server http://127.0.0.1:8099 explain deployment.spec.strategy
//! ```
//!
//! It prints how long the documents took to build and how big they are.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use capstan_apimachinery::registry;
use serde_json::{Value, json};

fn main() -> std::io::Result<()> {
    let port = std::env::args().nth(1).unwrap_or_else(|| "8099".to_string());
    report_generation();
    let listener = TcpListener::bind(format!("127.0.0.1:{port}"))?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || {
            if let Err(e) = serve(stream) {
                eprintln!("connection error: {e}");
            }
        });
    }
    Ok(())
}

fn report_generation() {
    let start = Instant::now();
    capstan_openapi::warm_up();
    eprintln!("documents built in {:?}", start.elapsed());
    let index = capstan_openapi::v3_index();
    let paths = index["paths"].as_object().map(|p| p.len()).unwrap_or(0);
    let mut total = 0;
    for key in index["paths"].as_object().into_iter().flat_map(|p| p.keys()) {
        total += capstan_openapi::v3_document(key).map_or(0, |(bytes, _)| bytes.len());
    }
    let core = capstan_openapi::v3_document("api/v1").map_or(0, |(bytes, _)| bytes.len());
    let apps = capstan_openapi::v3_document("apis/apps/v1").map_or(0, |(bytes, _)| bytes.len());
    eprintln!("v3: {paths} documents, {total} bytes in all; api/v1 {core} bytes, apis/apps/v1 {apps} bytes");
    eprintln!("v2: {} bytes", capstan_openapi::v2_document().len());
}

/// Reads one request, answers it, closes the connection.
fn serve(stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut accept = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("accept")
        {
            accept = value.trim().to_string();
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
    eprintln!("{} [{accept}]", request_line.trim());
    let (status, content_type, body) = route(target);
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(&body)
}

fn route(target: &str) -> (&'static str, &'static str, Vec<u8>) {
    let path = target.split('?').next().unwrap_or("/");
    const JSON: &str = "application/json";
    if path == "/openapi/v2" {
        return ("200 OK", JSON, capstan_openapi::v2_document().to_vec());
    }
    if path == "/openapi/v3" {
        return ("200 OK", JSON, capstan_openapi::v3_index_bytes().0.to_vec());
    }
    if let Some((bytes, _)) = path.strip_prefix("/openapi/v3/").and_then(capstan_openapi::v3_document) {
        return ("200 OK", JSON, bytes.to_vec());
    }
    if path == "/version" {
        let version = serde_json::json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0"});
        return ("200 OK", JSON, version.to_string().into_bytes());
    }
    match discovery(path) {
        Some(doc) => ("200 OK", JSON, doc.to_string().into_bytes()),
        None => (
            "404 Not Found",
            JSON,
            br#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#.to_vec(),
        ),
    }
}

/// Legacy discovery from the registry: enough for kubectl to map kinds to
/// resources (it falls back from aggregated discovery by itself).
fn discovery(path: &str) -> Option<Value> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["api"] => Some(json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})),
        ["apis"] => Some(group_list()),
        ["api", "v1"] => Some(resource_list("", "v1")),
        ["apis", group, version] => Some(resource_list(group, version)),
        _ => None,
    }
}

fn group_list() -> Value {
    let groups: Vec<Value> = registry::groups()
        .iter()
        .filter(|g| !g.name.is_empty())
        .map(|g| {
            let versions: Vec<Value> = g
                .versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{}/{v}", g.name), "version": v}))
                .collect();
            json!({"name": g.name, "versions": versions, "preferredVersion": versions.first()})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for r in registry::resources_of(group, version) {
        resources.push(json!({
            "name": r.plural, "singularName": r.singular(), "namespaced": r.namespaced, "kind": r.kind,
            "verbs": r.verbs, "shortNames": r.short_names, "categories": r.categories,
        }));
        for sub in &r.subresources {
            resources.push(json!({
                "name": format!("{}/{}", r.plural, sub.name), "singularName": "", "namespaced": r.namespaced,
                "group": sub.group, "version": sub.version, "kind": sub.kind, "verbs": sub.verbs,
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}
