//! Cluster DNS of `capstan server`, queried over UDP on loopback: Services,
//! headless Services with StatefulSet pods (on hollow nodes, so the real
//! EndpointSlice controller publishes them), SRV, ExternalName, pod names,
//! NXDOMAIN with SOA, and forwarding to an upstream — a stub on loopback,
//! never the host's resolver.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{Cluster, free_port};
use hickory_server::proto::op::{Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::rdata::A;
use hickory_server::proto::rr::{Name, RData, Record, RecordType};

/// A DNS answer, reduced to what the tests compare.
#[derive(Debug)]
struct Reply {
    code: ResponseCode,
    answers: Vec<String>,
    soa: bool,
}

fn query(server: SocketAddr, name: &str, kind: RecordType) -> Reply {
    let mut message = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    socket.send_to(&message.to_vec().unwrap(), server).unwrap();
    let mut buffer = [0u8; 4096];
    let (n, _) = socket.recv_from(&mut buffer).expect("a DNS answer");
    let reply = Message::from_vec(&buffer[..n]).unwrap();
    let answers = reply
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::A(a) => a.0.to_string(),
            RData::CNAME(c) => format!("CNAME {}", c.0),
            RData::SRV(s) => format!("SRV {} {}", s.port, s.target),
            other => format!("{other:?}"),
        })
        .collect();
    Reply {
        code: reply.metadata.response_code,
        answers,
        soa: reply.authorities.iter().any(|r| r.record_type() == RecordType::SOA),
    }
}

fn rand_id() -> u16 {
    (std::process::id() as u16)
        .wrapping_mul(31)
        .wrapping_add(Instant::now().elapsed().subsec_nanos() as u16)
}

/// Polls until `check` passes on the answer (the zone follows watches).
fn eventually(server: SocketAddr, name: &str, kind: RecordType, check: impl Fn(&Reply) -> bool) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = query(server, name, kind);
        if check(&reply) || Instant::now() > deadline {
            return reply;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An upstream resolver on loopback that answers every A query with 192.0.2.7.
fn stub_upstream() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let address = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok((n, from)) = socket.recv_from(&mut buffer) {
            let Ok(request) = Message::from_vec(&buffer[..n]) else {
                continue;
            };
            let mut reply = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
            reply.metadata = Metadata::response_from_request(&request.metadata);
            for q in &request.queries {
                reply.add_query(q.clone());
                reply.add_answer(Record::from_rdata(q.name().clone(), 30, RData::A(A::new(192, 0, 2, 7))));
            }
            let _ = socket.send_to(&reply.to_vec().unwrap(), from);
        }
    });
    address
}

const HEADLESS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: postgres}]
"#;

#[test]
fn cluster_names_resolve_and_others_are_forwarded() {
    let dns = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let upstream = stub_upstream();
    let c = Cluster::start_with(&[
        "--dns-listen",
        &dns.to_string(),
        "--dns-upstream",
        &upstream.to_string(),
    ]);
    let info = c.ok(&["cluster-info"]);
    assert!(info.contains("KubeDNS is running at"), "{info}");
    assert_eq!(
        c.ok(&[
            "get",
            "service",
            "-n",
            "kube-system",
            "kube-dns",
            "-o",
            "jsonpath={.spec.clusterIP}"
        ]),
        "10.43.0.10"
    );
    let kubernetes = eventually(dns, "kubernetes.default.svc.cluster.local.", RecordType::A, |r| {
        !r.answers.is_empty()
    });
    assert_eq!(kubernetes.answers, ["10.43.0.1"]);

    c.ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    let web_ip = c.ok(&["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let web = eventually(dns, "web.default.svc.cluster.local.", RecordType::A, |r| {
        !r.answers.is_empty()
    });
    assert_eq!(web.answers, std::slice::from_ref(&web_ip));
    // Case does not matter; AAAA of an IPv4 Service is NOERROR with no answers.
    assert_eq!(
        query(dns, "WEB.Default.svc.Cluster.Local.", RecordType::A).answers,
        [web_ip]
    );
    let aaaa = query(dns, "web.default.svc.cluster.local.", RecordType::AAAA);
    assert_eq!(
        (aaaa.code, aaaa.answers.len(), aaaa.soa),
        (ResponseCode::NoError, 0, true)
    );
    let srv = query(dns, "_80-8080._tcp.web.default.svc.cluster.local.", RecordType::SRV);
    assert_eq!(srv.answers, ["SRV 80 web.default.svc.cluster.local."]);

    c.ok(&[
        "create",
        "service",
        "externalname",
        "ext",
        "--external-name=db.example.test",
    ]);
    let ext = eventually(dns, "ext.default.svc.cluster.local.", RecordType::A, |r| {
        !r.answers.is_empty()
    });
    // The target, outside the cluster, is resolved by the upstream (the stub).
    assert_eq!(ext.answers, ["CNAME db.example.test.", "192.0.2.7"]);

    let pod = query(dns, "10-42-0-12.default.pod.cluster.local.", RecordType::A);
    assert_eq!(pod.answers, ["10.42.0.12"]);

    let missing = query(dns, "nope.default.svc.cluster.local.", RecordType::A);
    assert_eq!((missing.code, missing.soa), (ResponseCode::NXDomain, true));

    let outside = query(dns, "outside.test.", RecordType::A);
    assert_eq!(
        (outside.code, outside.answers),
        (ResponseCode::NoError, vec!["192.0.2.7".to_string()])
    );
}

#[test]
fn headless_services_follow_their_endpoint_slices() {
    let dns = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let c = Cluster::start_with(&["--dns-listen", &dns.to_string(), "--dns-upstream", "127.0.0.1:9"]);
    let _nodes = c.simulate(2);
    c.ok_in(&["apply", "-f", "-"], HEADLESS);
    let both = eventually(dns, "db.default.svc.cluster.local.", RecordType::A, |r| {
        r.answers.len() == 2
    });
    assert_eq!(both.answers.len(), 2, "{both:?}");
    let db0_ip = c.ok(&["get", "pod", "db-0", "-o", "jsonpath={.status.podIP}"]);
    let db0 = eventually(dns, "db-0.db.default.svc.cluster.local.", RecordType::A, |r| {
        !r.answers.is_empty()
    });
    assert_eq!(db0.answers, [db0_ip]);
    let srv = query(dns, "_pg._tcp.db.default.svc.cluster.local.", RecordType::SRV);
    let mut targets = srv.answers.clone();
    targets.sort();
    assert_eq!(
        targets,
        [
            "SRV 5432 db-0.db.default.svc.cluster.local.",
            "SRV 5432 db-1.db.default.svc.cluster.local."
        ]
    );

    // Scaling down: the answer follows the EndpointSlice within a second.
    c.ok(&["scale", "statefulset", "db", "--replicas=1"]);
    let slice_changed = Instant::now() + Duration::from_secs(30);
    loop {
        let slices = c.get_json(&["get", "endpointslices", "-l", "kubernetes.io/service-name=db"]);
        let endpoints: usize = slices["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["endpoints"].as_array().map_or(0, Vec::len))
            .sum();
        if endpoints == 1 || Instant::now() > slice_changed {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let seen = Instant::now();
    let one = eventually(dns, "db.default.svc.cluster.local.", RecordType::A, |r| {
        r.answers.len() == 1
    });
    assert_eq!(one.answers.len(), 1, "{one:?}");
    assert!(seen.elapsed() < Duration::from_secs(1), "took {:?}", seen.elapsed());
    // No upstream answers (port 9 is discard): SERVFAIL, not a hang.
    assert_eq!(query(dns, "outside.test.", RecordType::A).code, ResponseCode::ServFail);
}
