//! The items phase of `mycel demo`: one node stores a small value under each of the three
//! key kinds (CHK, SSK, KSK; see docs/KEYS.md), and other nodes read each one back and
//! check it.

use std::time::Duration;

use mycel_dht::NodeId;
use mycel_items::{ImmutableItem, Keypair, MutableItem};
use mycel_net::Handle;
use rand::seq::index::sample;
use rand::{Rng, RngCore};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::item_cmd::{chosen, Key};
use crate::output::millis;

/// Nodes that read each item back.
const READERS: usize = 3;
/// Upper bound for each put and get.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// The SSK's name (its salt).
const SSK_NAME: &str = "demo";
/// The seq the SSK and KSK are stored with (fresh keys: the first version).
const SEQ: i64 = 1;

/// What the items phase reports.
#[derive(Debug, Serialize)]
pub struct ItemsReport {
    /// The node that stored the items.
    pub writer: usize,
    /// The nodes that read them back.
    pub readers: Vec<usize>,
    /// One entry per key kind: CHK, SSK, KSK.
    pub items: Vec<ItemReport>,
    /// Median put time, milliseconds.
    pub put_ms: f64,
    /// Median get time, milliseconds.
    pub get_ms: f64,
    /// What went wrong, one line each.
    pub failures: Vec<String>,
}

/// One stored item.
#[derive(Debug, Serialize)]
pub struct ItemReport {
    /// `chk`, `ssk` or `ksk`.
    pub kind: &'static str,
    /// How a user names it: hex target, PUBKEY/NAME, or the words.
    pub key: String,
    /// The DHT target, hex.
    pub target: String,
    /// Nodes that acknowledged the put.
    pub stored: usize,
    /// Nodes the put was sent to.
    pub sent: usize,
    pub put_ms: f64,
    /// Readers that got back exactly the stored value (and seq).
    pub read_back: usize,
}

/// One item to store: its key, and what it is stored as.
struct Planned {
    key: Key,
    value: Vec<u8>,
    signer: Option<Keypair>,
}

/// Runs the phase over the demo's DHT nodes (`nodes[i]` is node `i`).
pub async fn run(nodes: &[Handle], rng: &mut ChaCha8Rng) -> ItemsReport {
    let n = nodes.len();
    let writer = rng.gen_range(0..n);
    let readers: Vec<usize> =
        sample(rng, n - 1, READERS.min(n - 1)).iter().map(|j| if j >= writer { j + 1 } else { j }).collect();
    let tag = format!("{:016x}", rng.next_u64());
    let value = |kind: &str| bencoded(&format!("mycel demo {kind} item {tag}"));

    let chk_value = value("CHK");
    let mut ssk_seed = [0u8; 32];
    rng.fill_bytes(&mut ssk_seed);
    let ssk = Keypair::from_seed(ssk_seed);
    let words = format!("mycel demo {tag}");
    let ksk = Keypair::from_keyword(&words);
    let planned = [
        Planned { key: Key::Chk(mycel_items::immutable_target(&chk_value)), value: chk_value, signer: None },
        Planned {
            key: Key::Ssk { public: ssk.public_key(), name: SSK_NAME.to_owned() },
            value: value("SSK"),
            signer: Some(ssk),
        },
        Planned { key: Key::Ksk { words, keypair: ksk.clone() }, value: value("KSK"), signer: Some(ksk) },
    ];

    let mut failures = Vec::new();
    let mut items = Vec::new();
    // Store the three items concurrently from the writer.
    let mut puts = JoinSet::new();
    for (i, p) in planned.iter().enumerate() {
        let handle = nodes[writer].clone();
        let signed = match &p.signer {
            None => ImmutableItem::new(p.value.clone()).map(Err),
            Some(keypair) => MutableItem::sign(keypair, p.key.salt(), SEQ, p.value.clone()).map(Ok),
        };
        puts.spawn(async move {
            let outcome = match signed {
                Ok(Err(item)) => tokio::time::timeout(STEP_TIMEOUT, handle.put_immutable(item)).await,
                Ok(Ok(item)) => tokio::time::timeout(STEP_TIMEOUT, handle.put_mutable(item, None)).await,
                Err(e) => return (i, Err(e.to_string())),
            };
            (
                i,
                outcome
                    .map_err(|_| format!("no result in {STEP_TIMEOUT:?}"))
                    .and_then(|r| r.map_err(|e| e.to_string())),
            )
        });
    }
    let mut put_results = vec![None; planned.len()];
    while let Some(joined) = puts.join_next().await {
        match joined {
            Ok((i, Ok(result))) => put_results[i] = Some(result),
            Ok((i, Err(e))) => {
                failures.push(format!("node {writer} could not store the {}: {e}", label(&planned[i].key)))
            }
            Err(e) => failures.push(format!("an item put task failed: {e}")),
        }
    }

    // Read each one back from the readers, all concurrently.
    let mut gets = JoinSet::new();
    for (i, p) in planned.iter().enumerate() {
        for &reader in &readers {
            let (handle, target, kind) = (nodes[reader].clone(), NodeId(p.key.target()), p.key.kind());
            gets.spawn(
                async move { (i, reader, tokio::time::timeout(STEP_TIMEOUT, handle.get_item(target, kind)).await) },
            );
        }
    }
    let mut read_back = vec![0; planned.len()];
    let mut get_ms = Vec::new();
    while let Some(joined) = gets.join_next().await {
        let Ok((i, reader, outcome)) = joined else {
            failures.push("an item get task failed".to_owned());
            continue;
        };
        let p = &planned[i];
        match outcome {
            Ok(Ok(result)) => {
                get_ms.push(millis(result.lookup.duration));
                let want_seq = p.signer.as_ref().map(|_| SEQ);
                match chosen(&p.key, &result) {
                    Some((value, seq, _)) if value == p.value && seq == want_seq => read_back[i] += 1,
                    Some((value, seq, _)) => failures.push(format!(
                        "node {reader} read a different {}: {} (seq {seq:?}), stored {} (seq {want_seq:?})",
                        label(&p.key),
                        String::from_utf8_lossy(&value),
                        String::from_utf8_lossy(&p.value)
                    )),
                    None => failures.push(format!(
                        "node {reader} did not find the {} ({} responses, {} invalid)",
                        label(&p.key),
                        result.lookup.responses,
                        result.invalid
                    )),
                }
            }
            Ok(Err(e)) => failures.push(format!("node {reader} reading the {}: {e}", label(&p.key))),
            Err(_) => {
                failures.push(format!("node {reader} reading the {}: no result in {STEP_TIMEOUT:?}", label(&p.key)))
            }
        }
    }

    let mut put_ms = Vec::new();
    for (i, p) in planned.iter().enumerate() {
        let (stored, sent, ms) = match &put_results[i] {
            Some(r) => (r.stored.len(), r.sent, millis(r.lookup.duration)),
            None => (0, 0, 0.0),
        };
        if put_results[i].is_some() {
            put_ms.push(ms);
            if stored == 0 {
                failures.push(format!("no node stored the {} (sent to {sent})", label(&p.key)));
            }
        }
        items.push(ItemReport {
            kind: p.key.kind_name(),
            key: p.key.display(),
            target: hex::encode(p.key.target()),
            stored,
            sent,
            put_ms: ms,
            read_back: read_back[i],
        });
    }
    ItemsReport { writer, readers, items, put_ms: median(put_ms), get_ms: median(get_ms), failures }
}

impl ItemsReport {
    /// The line for the human-readable report.
    pub fn human(&self) -> String {
        let stored: Vec<String> = self.items.iter().map(|i| i.stored.to_string()).collect();
        let read: Vec<String> = self.items.iter().map(|i| i.read_back.to_string()).collect();
        format!(
            "items:         CHK, SSK and KSK stored on {} of the closest nodes by node {}, read back by {} of {} other nodes | put {:.1} ms, get {:.1} ms",
            stored.join("/"),
            self.writer,
            read.join("/"),
            self.readers.len(),
            self.put_ms,
            self.get_ms
        )
    }
}

/// `CHK`, `SSK` or `KSK` item, for messages.
fn label(key: &Key) -> String {
    format!("{} item", key.kind_name().to_uppercase())
}

/// `s` as a bencoded string, the form a DHT item value takes.
fn bencoded(s: &str) -> Vec<u8> {
    format!("{}:{s}", s.len()).into_bytes()
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[(v.len() - 1) / 2]
}
