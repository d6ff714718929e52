//! BEP 44 items of the sizes the storage figures are quoted for, shared by the memory bench
//! (crates/dht) and the disk bench (crates/net, which includes this file by path).

use mycel_dht::{ImmutableItem, Keypair, MutableItem, StoredItem};

/// Makes item number `i` of one kind.
pub type Make = fn(&Keypair, usize) -> StoredItem;

/// A bencoded string of exactly `len` bytes (`len` >= 3).
pub fn value(len: usize, i: usize) -> Vec<u8> {
    let mut body = len - 2;
    while body + body.to_string().len() + 1 > len {
        body -= 1;
    }
    let mut v = format!("{body}:").into_bytes();
    let tag = format!("{i:08}");
    v.extend(tag.bytes().cycle().take(body));
    assert_eq!(v.len(), len);
    v
}

pub fn small_mutable(key: &Keypair, i: usize) -> StoredItem {
    let salt = format!("salt{i:012}").into_bytes();
    StoredItem::Mutable(MutableItem::sign(key, salt, 1, value(100, i)).expect("valid item"))
}

#[allow(dead_code)] // the disk bench does not use it
pub fn small_immutable(_: &Keypair, i: usize) -> StoredItem {
    StoredItem::Immutable(ImmutableItem::new(value(100, i)).expect("valid item"))
}

pub fn max_immutable(_: &Keypair, i: usize) -> StoredItem {
    StoredItem::Immutable(ImmutableItem::new(value(1000, i)).expect("valid item"))
}

pub fn max_mutable(key: &Keypair, i: usize) -> StoredItem {
    let salt = format!("{i:064}").into_bytes();
    StoredItem::Mutable(MutableItem::sign(key, salt, 1, value(1000, i)).expect("valid item"))
}
