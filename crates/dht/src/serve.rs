//! Answering queries from other nodes.

use std::net::SocketAddr;
use std::time::Instant;

use mycel_items::{ImmutableItem, MutableItem};
use mycel_krpc::{Body, ErrorBody, Message, Method, NodeId, PutArgs, Query, Response, Want};

use crate::items::{PutRefused, StoredItem};
use crate::node::Node;
use crate::peers::StoreOutcome;
use crate::Transmit;

/// Info-hashes in one `sample_infohashes` answer (BEP 51): 400 bytes, leaving room for the
/// nodes in a datagram under ~1200 bytes.
const MAX_SAMPLES: usize = 20;
/// The `interval` we ask indexers to wait: samples are drawn afresh for every query, so a
/// short one; BEP 51 allows 0 to 21600.
const SAMPLE_INTERVAL_SECS: i64 = 60;

impl Node {
    /// Answers one query (the caller has already rate-limited and decoded it).
    pub(crate) fn answer(&mut self, now: Instant, from: SocketAddr, tx: &[u8], q: Query<'_>) {
        self.stats.queries_in.count(&q.method);
        // BEP 42: a node whose id does not match its address gets no write token.
        let trusted = !self.cfg.enforce_node_id || crate::secure_id::is_secure_id(&q.id, from.ip());
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
                let token = trusted.then_some(&token[..]);
                return self.reply(from, tx, Body::Response(Response { token, ..resp }));
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
            Method::Get { target, seq, want } => return self.answer_get(now, from, tx, target, seq, want, trusted),
            Method::Put(put) => return self.answer_put(now, from, tx, put),
            Method::SampleInfohashes { target, want } => {
                self.fill_nodes(now, &target.0, from, want, &mut resp);
                let (sample, total) = self.store.sample(MAX_SAMPLES, &mut self.rng);
                let samples: Vec<u8> = sample.iter().flat_map(|ih| ih.0).collect();
                resp.samples = Some(&samples);
                resp.interval = Some(SAMPLE_INTERVAL_SECS);
                resp.num = Some(i64::try_from(total).unwrap_or(i64::MAX));
                return self.reply(from, tx, Body::Response(resp));
            }
            Method::Unknown { .. } => {
                return self.send_error(from, tx, mycel_krpc::ERROR_METHOD_UNKNOWN, b"method unknown");
            }
        }
        self.reply(from, tx, Body::Response(resp));
    }

    /// BEP 44 `get`: a token, the closest nodes, and the item when we hold it (for a mutable
    /// item with `seq` given, only the seq unless ours is newer).
    #[allow(clippy::too_many_arguments)]
    fn answer_get(
        &mut self,
        now: Instant,
        from: SocketAddr,
        tx: &[u8],
        target: NodeId,
        seq: Option<i64>,
        want: Want,
        trusted: bool,
    ) {
        let token = self.tokens.make(from.ip());
        let mut resp = Response::with_id(self.id);
        self.fill_nodes(now, &target.0, from, want, &mut resp);
        resp.token = trusted.then_some(&token[..]);
        // Copied out of the store (at most ~1 KB) so `reply` can borrow `self` mutably.
        let held = self.items.get(now, &target.0).cloned();
        match &held {
            None => {}
            Some(StoredItem::Immutable(item)) => resp.v = Some(item.value()),
            Some(StoredItem::Mutable(item)) => {
                resp.seq = Some(item.seq());
                if seq.is_none_or(|s| item.seq() > s) {
                    resp.v = Some(item.value());
                    resp.k = Some(*item.public_key());
                    resp.sig = Some(*item.signature());
                }
            }
        }
        self.reply(from, tx, Body::Response(resp));
    }

    /// BEP 44 `put`: token, then the item's own validity (205, 207, 206), then the store's
    /// rules (301, 302). Nothing stored changes unless every check passes.
    fn answer_put(&mut self, now: Instant, from: SocketAddr, tx: &[u8], put: PutArgs<'_>) {
        if !self.tokens.check(from.ip(), put.token) {
            return self.send_error(from, tx, mycel_krpc::ERROR_PROTOCOL, b"bad token");
        }
        if self.cfg.durable_items {
            return self.answer_durable_put(now, from, tx, put);
        }
        let cap = self.cfg.max_items;
        let outcome = match put.mutable {
            None => ImmutableItem::new(put.v.to_vec()).map(|item| {
                self.item_writes.push_stored(StoredItem::Immutable(item.clone()), cap);
                self.items.put_immutable(now, item);
                Ok(())
            }),
            Some(m) => MutableItem::verify(m.k, m.salt.to_vec(), m.seq, put.v.to_vec(), m.sig).map(|item| {
                let copy = item.clone();
                let stored = self.items.put_mutable(now, item, m.cas);
                if stored.is_ok() {
                    self.item_writes.push_stored(StoredItem::Mutable(copy), cap);
                }
                stored
            }),
        };
        self.answer_put_outcome(from, tx, outcome);
    }

    /// A `put` with [`Config::durable_items`](crate::Config::durable_items): the same checks
    /// (a mutable item against the newest version accepted, stored or not), then the item
    /// waits for its write to disk and is answered by `handle_items_written`.
    fn answer_durable_put(&mut self, now: Instant, from: SocketAddr, tx: &[u8], put: PutArgs<'_>) {
        let outcome = match put.mutable {
            None => ImmutableItem::new(put.v.to_vec()).map(|item| Ok(StoredItem::Immutable(item))),
            Some(m) => MutableItem::verify(m.k, m.salt.to_vec(), m.seq, put.v.to_vec(), m.sig).map(|item| {
                let newer = self.item_writes.newest_mutable(&item.target());
                self.items.check_mutable(now, newer, &item, m.cas).map(|()| StoredItem::Mutable(item))
            }),
        };
        match outcome {
            Ok(Ok(item)) => self.queue_durable_put(from, tx, item),
            Ok(Err(refused)) => self.answer_put_outcome(from, tx, Ok(Err(refused))),
            Err(e) => self.answer_put_outcome(from, tx, Err(e)),
        }
    }

    fn answer_put_outcome(
        &mut self,
        from: SocketAddr,
        tx: &[u8],
        outcome: Result<Result<(), PutRefused>, mycel_items::ItemError>,
    ) {
        match outcome {
            Err(e) => self.send_error(from, tx, e.code(), e.to_string().as_bytes()),
            Ok(Err(PutRefused::CasMismatch)) => {
                self.send_error(from, tx, mycel_krpc::ERROR_CAS_MISMATCH, b"cas mismatch, re-read and try again")
            }
            Ok(Err(PutRefused::SeqTooLow)) => {
                self.send_error(from, tx, mycel_krpc::ERROR_SEQ_TOO_LOW, b"sequence number less than current")
            }
            Ok(Ok(())) => self.reply(from, tx, Body::Response(Response::with_id(self.id))),
        }
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
