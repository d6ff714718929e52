//! A sans-IO Mainline DHT node (BEP 5) that stores and fetches BEP 44 items.
//!
//! The node is a plain state machine: it never reads a clock, touches a socket or draws from
//! the OS random generator. The driver (`mycel-net`) or the simulator feeds it datagrams and
//! timeouts and drains its outputs. See [`Node`] for the calling contract.

mod config;
mod durable;
mod event;
#[doc(hidden)]
pub mod fuzzing;
mod identity;
mod item_ops;
mod items;
mod lookup;
mod node;
mod path;
mod peers;
mod ratelimit;
mod reach;
mod republish;
mod routing;
mod rtt;
mod search;
pub mod secure_id;
mod serve;
mod stats;
mod token;

pub use config::{Config, ReachProbe};
pub use event::{Event, LookupKind, LookupResult, QueryId, Transmit};
pub use item_ops::{ItemGetResult, ItemKind, ItemPutResult, ItemVersion};
pub use items::StoredItem;
pub use mycel_items::{ImmutableItem, ItemError, Keypair, MutableItem};
pub use mycel_krpc::{InfoHash, NodeId, NodeInfo};
pub use node::Node;
pub use routing::{NodeState, RoutingTable};
pub use stats::{DropCounts, MethodCounts, Stats};
