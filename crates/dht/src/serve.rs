//! Answering queries from other nodes.

use std::net::SocketAddr;
use std::time::Instant;

use mycel_krpc::{Body, ErrorBody, Message, Method, Query, Response, Want};

use crate::node::Node;
use crate::peers::StoreOutcome;
use crate::Transmit;

impl Node {
    /// Answers one query (the caller has already rate-limited and decoded it).
    pub(crate) fn answer(&mut self, now: Instant, from: SocketAddr, tx: &[u8], q: Query<'_>) {
        let c = &mut self.stats.queries_in;
        match &q.method {
            Method::Ping => c.ping += 1,
            Method::FindNode { .. } => c.find_node += 1,
            Method::GetPeers { .. } => c.get_peers += 1,
            Method::AnnouncePeer { .. } => c.announce_peer += 1,
            Method::Unknown { .. } => c.other += 1,
        }
        let mut resp = Response::with_id(self.id);
        match q.method {
            Method::Ping => {}
            Method::FindNode { target, want } => self.fill_nodes(now, &target.0, from, want, &mut resp),
            Method::GetPeers { info_hash, want } => {
                let token = self.tokens.make(from.ip());
                let values = self.store.get(now, &info_hash, self.cfg.max_values_per_response, &mut self.rng);
                if values.is_empty() {
                    self.fill_nodes(now, &info_hash.0, from, want, &mut resp);
                } else {
                    resp.values = values;
                }
                return self.reply(from, tx, Body::Response(Response { token: Some(&token), ..resp }));
            }
            Method::AnnouncePeer { info_hash, port, implied_port, token } => {
                if !self.tokens.check(from.ip(), token) {
                    return self.send_error(from, tx, mycel_krpc::ERROR_PROTOCOL, b"bad token");
                }
                let port = if implied_port { from.port() } else { port };
                if port == 0 {
                    return self.send_error(from, tx, mycel_krpc::ERROR_PROTOCOL, b"bad port");
                }
                let peer = SocketAddr::new(from.ip(), port);
                if self.store.store(now, info_hash, peer) == StoreOutcome::TooManyInfoHashes {
                    return self.send_error(from, tx, mycel_krpc::ERROR_SERVER, b"peer store full");
                }
            }
            Method::Unknown { .. } => {
                return self.send_error(from, tx, mycel_krpc::ERROR_METHOD_UNKNOWN, b"method unknown");
            }
        }
        self.reply(from, tx, Body::Response(resp));
    }

    /// The k closest nodes for a `find_node` or `get_peers` answer, split by address family
    /// (BEP 32: without `want`, the family of the querier's address).
    fn fill_nodes(&self, now: Instant, target: &[u8; 20], from: SocketAddr, want: Want, resp: &mut Response<'_>) {
        let (n4, n6) = if want.n4 || want.n6 { (want.n4, want.n6) } else { (from.is_ipv4(), from.is_ipv6()) };
        if n4 {
            resp.nodes = self.table.closest_where(target, self.cfg.k, now, SocketAddr::is_ipv4);
        }
        if n6 {
            resp.nodes6 = self.table.closest_where(target, self.cfg.k, now, SocketAddr::is_ipv6);
        }
    }

    pub(crate) fn reply(&mut self, to: SocketAddr, tx: &[u8], body: Body<'_>) {
        let msg = Message {
            tx,
            version: self.cfg.version.as_ref().map(|v| &v[..]),
            ip: Some(to),
            read_only: self.cfg.read_only,
            body,
        };
        let mut payload = Vec::with_capacity(msg.encoded_len());
        msg.encode(&mut payload);
        self.transmits.push_back(Transmit { dst: to, payload });
    }

    pub(crate) fn send_error(&mut self, to: SocketAddr, tx: &[u8], code: i64, text: &[u8]) {
        self.stats.errors_out += 1;
        self.reply(to, tx, Body::Error(ErrorBody { code, message: text }));
    }
}
