//! The DNS server proper: hickory-server reads queries from the UDP socket
//! and TCP listener, and [`Handler`] answers each from the index (names of
//! the cluster) or from the upstream resolvers (every other name).

use std::sync::{Arc, RwLock};

use hickory_proto::op::{Edns, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{Name, Record};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use super::answer::{Answer, Zone};
use super::index::Index;
use super::upstream::Upstream;

pub struct Handler {
    pub zone: Zone,
    pub index: Arc<RwLock<Index>>,
    pub upstream: Upstream,
}

impl Handler {
    /// The reply to the request's one question, and whether this server is
    /// the authority for it.
    async fn reply(&self, request: &Request) -> (Answer, bool) {
        let Ok(info) = request.request_info() else {
            return (code(ResponseCode::FormErr), false);
        };
        if request.metadata.message_type != MessageType::Query
            || request.metadata.op_code != OpCode::Query
        {
            return (code(ResponseCode::NotImp), false);
        }
        let name: Name = info.query.name().into();
        let rtype = info.query.query_type();
        let local = {
            let index = self.index.read().unwrap_or_else(|e| e.into_inner());
            self.zone.answer(&index, &name, rtype)
        };
        match local {
            Some(mut answer) => {
                if let Some(target) = answer.chase.take() {
                    let outside = self.upstream.answer(target, rtype).await;
                    answer.answers.extend(outside.answers);
                }
                (answer, true)
            }
            None => (self.upstream.answer(name, rtype).await, false),
        }
    }
}

fn code(code: ResponseCode) -> Answer {
    Answer {
        code,
        ..Answer::default()
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let (answer, authoritative) = self.reply(request).await;
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = authoritative;
        metadata.recursion_available = true;
        metadata.response_code = answer.code;
        // A client that speaks EDNS gets EDNS back, with the payload size it
        // offered (long UDP answers are cut to it and marked truncated).
        let edns = request.edns.as_ref().map(|asked| {
            let mut edns = Edns::new();
            edns.set_max_payload(asked.max_payload().max(512));
            edns
        });
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(edns) = &edns {
            builder.edns(edns);
        }
        let no_records: &[Record] = &[];
        let response = builder.build(
            metadata,
            answer.answers.iter(),
            no_records.iter(),
            answer.soa.iter(),
            answer.additionals.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!("cluster DNS: sending a reply failed: {e}");
                let mut header = Metadata::response_from_request(&request.metadata);
                header.response_code = ResponseCode::ServFail;
                ResponseInfo::from(hickory_proto::op::Header {
                    metadata: header,
                    counts: Default::default(),
                })
            }
        }
    }
}
