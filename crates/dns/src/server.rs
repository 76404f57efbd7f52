//! The DNS server: names under the cluster domain are answered from the
//! [`Zone`](crate::records::Zone), authoritatively; every other name is
//! forwarded as-is to the configured upstream resolvers (tests point these
//! at a stub on loopback — never the host's resolver).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Header, HeaderCounts, Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, SOA, SRV};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use crate::records::{self, Answer, QueryType};
use crate::watch::{SharedClients, SharedZone};

/// CoreDNS's kubernetes plugin answers with a 5 s TTL.
pub const TTL: u32 = 5;

/// How long a forwarded query may take.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Handler {
    pub zone: SharedZone,
    pub clients: SharedClients,
    /// The cluster domain, lowercase, without a trailing dot.
    pub domain: String,
    pub upstreams: Vec<SocketAddr>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, response: R) -> ResponseInfo {
        if !self
            .clients
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .allows(request.src().ip())
        {
            tracing::debug!(source = %request.src(), "cluster DNS: refused a client outside the cluster");
            return reply_error(request, response, ResponseCode::Refused).await;
        }
        let Ok(info) = request.request_info() else {
            return reply_error(request, response, ResponseCode::FormErr).await;
        };
        let name = info.query.name().to_string().trim_end_matches('.').to_lowercase();
        if name == self.domain || name.ends_with(&format!(".{}", self.domain)) {
            self.answer(request, response, &name, info.query.query_type()).await
        } else {
            self.forward(request, response).await
        }
    }
}

impl Handler {
    async fn answer<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response: R,
        name: &str,
        qtype: RecordType,
    ) -> ResponseInfo {
        let record_type = qtype;
        let qtype = match qtype {
            RecordType::A => QueryType::A,
            RecordType::AAAA => QueryType::Aaaa,
            RecordType::SRV => QueryType::Srv,
            RecordType::CNAME => QueryType::Cname,
            _ => QueryType::Other,
        };
        let answer = self
            .zone
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .lookup(&self.domain, name, qtype);
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;
        let (answers, soa) = match answer {
            Answer::Records(found) => {
                let mut answers: Vec<Record> = found.iter().filter_map(to_record).collect();
                answers.extend(self.chase_outside(found.last(), record_type).await);
                (answers, Vec::new())
            }
            Answer::NoData => (Vec::new(), vec![self.soa()]),
            Answer::NxDomain => {
                metadata.response_code = ResponseCode::NXDomain;
                (Vec::new(), vec![self.soa()])
            }
        };
        let message =
            MessageResponseBuilder::from_message_request(request).build(metadata, answers.iter(), [], soa.iter(), []);
        match response.send_response(message).await {
            Ok(info) => info,
            Err(err) => {
                tracing::debug!(%err, "cluster DNS: sending an answer");
                failed(request)
            }
        }
    }

    /// CoreDNS's SOA for the cluster zone: `ns.dns.<domain>`, `hostmaster.<domain>`.
    fn soa(&self) -> Record {
        let name = |n: &str| Name::from_ascii(format!("{n}.")).unwrap_or_default();
        let serial = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
        let soa = SOA::new(
            name(&format!("ns.dns.{}", self.domain)),
            name(&format!("hostmaster.{}", self.domain)),
            serial,
            7200,
            1800,
            86400,
            TTL,
        );
        Record::from_rdata(name(&self.domain), TTL, RData::SOA(soa))
    }

    /// An ExternalName pointing outside the cluster domain is resolved
    /// upstream, as CoreDNS does: stub resolvers in pods do not follow a
    /// bare CNAME. Nothing is added when no upstream answers.
    async fn chase_outside(&self, last: Option<&records::Record>, qtype: RecordType) -> Vec<Record> {
        let Some(records::Record::Cname { target, .. }) = last else {
            return Vec::new();
        };
        if !matches!(qtype, RecordType::A | RecordType::AAAA) {
            return Vec::new();
        }
        let Ok(name) = Name::from_ascii(format!("{target}.")) else {
            return Vec::new();
        };
        let mut query = Message::new(rand::random(), MessageType::Query, OpCode::Query);
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(name, qtype));
        let Ok(bytes) = query.to_vec() else {
            return Vec::new();
        };
        for upstream in &self.upstreams {
            match exchange(*upstream, &bytes).await {
                Ok(reply) => return reply.answers,
                Err(err) => tracing::debug!(%upstream, %err, "cluster DNS: upstream failed"),
            }
        }
        Vec::new()
    }

    /// Relays the query to the first upstream that answers.
    async fn forward<R: ResponseHandler>(&self, request: &Request, mut response: R) -> ResponseInfo {
        for upstream in &self.upstreams {
            match exchange(*upstream, request.as_slice()).await {
                Ok(answer) => {
                    let message = MessageResponseBuilder::from_message_request(request).build(
                        answer.metadata,
                        answer.answers.iter(),
                        answer.authorities.iter(),
                        [],
                        answer.additionals.iter(),
                    );
                    return match response.send_response(message).await {
                        Ok(info) => info,
                        Err(_) => failed(request),
                    };
                }
                Err(err) => tracing::debug!(%upstream, %err, "cluster DNS: upstream failed"),
            }
        }
        reply_error(request, response, ResponseCode::ServFail).await
    }
}

async fn exchange(upstream: SocketAddr, query: &[u8]) -> std::io::Result<Message> {
    let local: SocketAddr = match upstream.ip() {
        IpAddr::V4(_) => "0.0.0.0:0".parse().expect("literal"),
        IpAddr::V6(_) => "[::]:0".parse().expect("literal"),
    };
    let socket = tokio::net::UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buffer = vec![0u8; 4096];
    let length = tokio::time::timeout(UPSTREAM_TIMEOUT, socket.recv(&mut buffer))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))??;
    Message::from_vec(&buffer[..length])
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
}

async fn reply_error<R: ResponseHandler>(request: &Request, mut response: R, code: ResponseCode) -> ResponseInfo {
    let message = MessageResponseBuilder::from_message_request(request).error_msg(&request.metadata, code);
    response
        .send_response(message)
        .await
        .unwrap_or_else(|_| failed(request))
}

fn failed(request: &Request) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

fn to_record(record: &records::Record) -> Option<Record> {
    let name = |n: &str| Name::from_ascii(format!("{n}.")).ok();
    Some(match record {
        records::Record::Address { name: owner, ip } => {
            let rdata = match ip {
                IpAddr::V4(v4) => RData::A(A(*v4)),
                IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
            };
            Record::from_rdata(name(owner)?, TTL, rdata)
        }
        records::Record::Cname { name: owner, target } => {
            Record::from_rdata(name(owner)?, TTL, RData::CNAME(CNAME(name(target)?)))
        }
        records::Record::Srv {
            name: owner,
            port,
            target,
        } => {
            // CoreDNS: priority 0, weight 100 split over the records.
            Record::from_rdata(name(owner)?, TTL, RData::SRV(SRV::new(0, 100, *port, name(target)?)))
        }
    })
}
