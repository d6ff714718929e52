//! The BEP 44 item store: immutable and mutable items put to us by others, bounded in count
//! and bytes, each kept for the item TTL (2 hours by default) after its last put.
//!
//! Invariants: `bytes` is the sum of [`cost`] over the entries; `by_age` holds exactly one
//! `(touched, tiebreak)` key per entry; a failed put changes nothing. When full, the entry put
//! least recently makes room (the oldest is the most likely to have been re-published
//! elsewhere, or abandoned); an attacker who floods us evicts items younger than the TTL, a
//! trade-off documented in docs/KEYS.md (the cap protects memory first).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mycel_items::{ImmutableItem, MutableItem};

/// An item as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredItem {
    /// An immutable item.
    Immutable(ImmutableItem),
    /// A mutable item.
    Mutable(MutableItem),
}

impl StoredItem {
    /// Where it is stored.
    pub fn target(&self) -> [u8; 20] {
        match self {
            StoredItem::Immutable(i) => i.target(),
            StoredItem::Mutable(m) => m.target(),
        }
    }
}

/// Why a mutable put was refused after its signature verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PutRefused {
    /// `cas` did not match the stored seq (301).
    CasMismatch,
    /// The seq is lower than the stored one, or equal with another value (302).
    SeqTooLow,
}

struct Entry {
    item: StoredItem,
    touched: Instant,
    tiebreak: u64,
}

/// Bookkeeping cost of an entry beyond its payload: key, signature, map nodes.
const ENTRY_OVERHEAD: usize = 160;

fn cost(item: &StoredItem) -> usize {
    ENTRY_OVERHEAD
        + match item {
            StoredItem::Immutable(i) => i.value().len(),
            StoredItem::Mutable(m) => m.value().len() + m.salt().len(),
        }
}

pub(crate) struct ItemStore {
    entries: BTreeMap<[u8; 20], Entry>,
    by_age: BTreeMap<(Instant, u64), [u8; 20]>,
    bytes: usize,
    next_tiebreak: u64,
    max_items: usize,
    max_bytes: usize,
    ttl: Duration,
}

impl ItemStore {
    pub fn new(max_items: usize, max_bytes: usize, ttl: Duration) -> Self {
        ItemStore {
            entries: BTreeMap::new(),
            by_age: BTreeMap::new(),
            bytes: 0,
            next_tiebreak: 0,
            max_items,
            max_bytes,
            ttl,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The live item under `target`.
    pub fn get(&self, now: Instant, target: &[u8; 20]) -> Option<&StoredItem> {
        self.entries.get(target).filter(|e| e.touched + self.ttl > now).map(|e| &e.item)
    }

    /// Stores an immutable item, or refreshes it when held.
    pub fn put_immutable(&mut self, now: Instant, item: ImmutableItem) {
        self.insert(now, StoredItem::Immutable(item));
    }

    /// Stores a mutable item if its seq moves forward (and `cas`, when given and something is
    /// held, matches the held seq). The same seq with the same value refreshes the entry.
    pub fn put_mutable(&mut self, now: Instant, item: MutableItem, cas: Option<i64>) -> Result<(), PutRefused> {
        self.check_mutable(now, None, &item, cas)?;
        self.insert(now, StoredItem::Mutable(item));
        Ok(())
    }

    /// Whether a mutable put would be stored: against `newer` (a version accepted but not yet
    /// stored) when given, else against the version held.
    pub fn check_mutable(
        &self,
        now: Instant,
        newer: Option<&MutableItem>,
        item: &MutableItem,
        cas: Option<i64>,
    ) -> Result<(), PutRefused> {
        let held = match newer {
            Some(m) => Some(m),
            None => match self.get(now, &item.target()) {
                Some(StoredItem::Mutable(m)) => Some(m),
                _ => None,
            },
        };
        if let Some(held) = held {
            if cas.is_some_and(|c| c != held.seq()) {
                return Err(PutRefused::CasMismatch);
            }
            let same = held.seq() == item.seq() && held.value() == item.value();
            if item.seq() < held.seq() || (item.seq() == held.seq() && !same) {
                return Err(PutRefused::SeqTooLow);
            }
        }
        Ok(())
    }

    /// Drops items not put again within the TTL.
    pub fn expire(&mut self, now: Instant) {
        while let Some((&(touched, _), &target)) = self.by_age.first_key_value() {
            if touched + self.ttl > now {
                break;
            }
            self.remove(&target);
        }
    }

    /// Every live item, for persistence and tests, in target order.
    pub fn items(&self, now: Instant) -> impl Iterator<Item = (&StoredItem, Instant)> + '_ {
        let ttl = self.ttl;
        self.entries.values().filter(move |e| e.touched + ttl > now).map(|e| (&e.item, e.touched))
    }

    fn insert(&mut self, now: Instant, item: StoredItem) {
        let target = item.target();
        self.remove(&target);
        let c = cost(&item);
        while !self.entries.is_empty() && (self.entries.len() >= self.max_items || self.bytes + c > self.max_bytes) {
            let Some((_, &oldest)) = self.by_age.first_key_value() else { break };
            self.remove(&oldest);
        }
        if self.max_items == 0 || c > self.max_bytes {
            return;
        }
        self.next_tiebreak += 1;
        let tiebreak = self.next_tiebreak;
        self.by_age.insert((now, tiebreak), target);
        self.bytes += c;
        self.entries.insert(target, Entry { item, touched: now, tiebreak });
    }

    fn remove(&mut self, target: &[u8; 20]) {
        if let Some(e) = self.entries.remove(target) {
            self.by_age.remove(&(e.touched, e.tiebreak));
            self.bytes -= cost(&e.item);
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests take an arbitrary origin for virtual time
mod tests {
    use super::*;
    use mycel_items::Keypair;

    fn imm(i: u32) -> ImmutableItem {
        ImmutableItem::new(format!("i{i}e").into_bytes()).expect("valid")
    }

    fn mutable(seq: i64, v: &str) -> MutableItem {
        MutableItem::sign(&Keypair::from_seed([9; 32]), vec![], seq, format!("{}:{v}", v.len()).into_bytes())
            .expect("valid")
    }

    #[test]
    fn bounded_by_count_oldest_evicted() {
        let t0 = Instant::now();
        let mut s = ItemStore::new(3, 1 << 20, Duration::from_secs(7200));
        for i in 0..5 {
            s.put_immutable(t0 + Duration::from_secs(i.into()), imm(i));
        }
        assert_eq!(s.len(), 3);
        assert!(s.get(t0, &imm(0).target()).is_none() && s.get(t0, &imm(1).target()).is_none());
        assert!(s.get(t0, &imm(4).target()).is_some());
        // A re-put refreshes: 2 becomes the youngest, so 3 goes next.
        s.put_immutable(t0 + Duration::from_secs(10), imm(2));
        s.put_immutable(t0 + Duration::from_secs(11), imm(9));
        assert!(s.get(t0, &imm(2).target()).is_some() && s.get(t0, &imm(3).target()).is_none());
    }

    #[test]
    fn bounded_by_bytes() {
        let t0 = Instant::now();
        let mut s = ItemStore::new(100, 2 * (ENTRY_OVERHEAD + 3), Duration::from_secs(7200));
        for i in 0..4 {
            s.put_immutable(t0, imm(i));
        }
        assert_eq!(s.len(), 2);
        assert_eq!(s.bytes(), 2 * (ENTRY_OVERHEAD + 3));
    }

    #[test]
    fn kept_for_the_ttl_then_expired() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(7200);
        let mut s = ItemStore::new(10, 1 << 20, ttl);
        s.put_immutable(t0, imm(1));
        s.expire(t0 + ttl - Duration::from_secs(1));
        assert!(s.get(t0 + ttl - Duration::from_secs(1), &imm(1).target()).is_some(), "kept 2 hours");
        assert!(s.get(t0 + ttl, &imm(1).target()).is_none());
        s.expire(t0 + ttl);
        assert_eq!((s.len(), s.bytes()), (0, 0));
    }

    #[test]
    fn mutable_seq_and_cas_rules() {
        let t0 = Instant::now();
        let mut s = ItemStore::new(10, 1 << 20, Duration::from_secs(7200));
        assert_eq!(s.put_mutable(t0, mutable(5, "a"), Some(99)), Ok(()), "cas ignored when nothing is held");
        assert_eq!(s.put_mutable(t0, mutable(4, "b"), None), Err(PutRefused::SeqTooLow));
        assert_eq!(s.put_mutable(t0, mutable(5, "b"), None), Err(PutRefused::SeqTooLow));
        assert_eq!(s.put_mutable(t0, mutable(5, "a"), None), Ok(()), "same seq and value refreshes");
        assert_eq!(s.put_mutable(t0, mutable(6, "c"), Some(4)), Err(PutRefused::CasMismatch));
        assert_eq!(s.put_mutable(t0, mutable(6, "c"), Some(5)), Ok(()));
        let Some(StoredItem::Mutable(m)) = s.get(t0, &mutable(1, "x").target()) else { panic!("held") };
        assert_eq!((m.seq(), m.value()), (6, &b"1:c"[..]));
        assert_eq!(s.len(), 1);
    }
}
