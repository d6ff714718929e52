//! Ground truth: the set of live, reachable, honest nodes, sorted by id, and the questions a
//! lookup is judged by (the k XOR-closest nodes to a key; the k ring successors of a key).

use std::net::SocketAddr;

use mycel_krpc::NodeInfo;

/// Live honest public nodes sorted by id.
#[derive(Debug, Default, Clone)]
pub struct Oracle {
    nodes: Vec<([u8; 20], u32)>,
}

fn bit(id: &[u8; 20], i: usize) -> bool {
    id[i / 8] & (0x80 >> (i % 8)) != 0
}

fn xor_cmp(a: &[u8; 20], b: &[u8; 20], target: &[u8; 20]) -> std::cmp::Ordering {
    for i in 0..20 {
        let (x, y) = (a[i] ^ target[i], b[i] ^ target[i]);
        if x != y {
            return x.cmp(&y);
        }
    }
    std::cmp::Ordering::Equal
}

impl Oracle {
    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Adds a node (no-op if present).
    pub fn insert(&mut self, id: [u8; 20], index: u32) {
        if let Err(pos) = self.nodes.binary_search(&(id, index)) {
            self.nodes.insert(pos, (id, index));
        }
    }

    /// Removes a node (no-op if absent).
    pub fn remove(&mut self, id: [u8; 20], index: u32) {
        if let Ok(pos) = self.nodes.binary_search(&(id, index)) {
            self.nodes.remove(pos);
        }
    }

    /// The `k` nodes XOR-closest to `target`, nearest first, leaving out `except`.
    pub fn xor_closest(&self, target: &[u8; 20], k: usize, except: Option<u32>) -> Vec<([u8; 20], u32)> {
        let mut out = Vec::with_capacity(k + 1);
        collect(&self.nodes, target, 0, k + 1, &mut out);
        out.retain(|e| Some(e.1) != except);
        out.truncate(k);
        out
    }

    /// The `k` ring successors of `key` (the first id ≥ key, wrapping), leaving out `except`.
    pub fn successors(&self, key: &[u8; 20], k: usize, except: Option<u32>) -> Vec<([u8; 20], u32)> {
        let n = self.nodes.len();
        let start = self.nodes.partition_point(|e| e.0 < *key);
        (0..n).map(|i| self.nodes[(start + i) % n]).filter(|e| Some(e.1) != except).take(k).collect()
    }

    /// A membership snapshot for the baselines: every node with its address, sorted by id.
    pub fn snapshot(&self, addr: impl Fn(u32) -> SocketAddr) -> Vec<NodeInfo> {
        self.nodes.iter().map(|(id, i)| NodeInfo { id: mycel_krpc::NodeId(*id), addr: addr(*i) }).collect()
    }
}

/// Appends to `out` the up to `need` entries of `slice` closest to `target`, nearest first.
/// `slice` is sorted and all its ids share their first `depth` bits.
fn collect(slice: &[([u8; 20], u32)], target: &[u8; 20], depth: usize, need: usize, out: &mut Vec<([u8; 20], u32)>) {
    if need == 0 || slice.is_empty() {
        return;
    }
    if slice.len() <= need || depth == 160 {
        let mut all = slice.to_vec();
        all.sort_by(|a, b| xor_cmp(&a.0, &b.0, target));
        out.extend(all.into_iter().take(need));
        return;
    }
    let split = slice.partition_point(|e| !bit(&e.0, depth));
    let (lo, hi) = slice.split_at(split);
    let (near, far) = if bit(target, depth) { (hi, lo) } else { (lo, hi) };
    let before = out.len();
    collect(near, target, depth + 1, need, out);
    let got = out.len() - before;
    collect(far, target, depth + 1, need - got, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn xor_closest_matches_brute_force() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut o = Oracle::default();
        let mut all = Vec::new();
        for i in 0..500u32 {
            let mut id: [u8; 20] = rng.gen();
            if i % 50 == 0 {
                id[0] = 0x42; // clusters sharing a prefix
            }
            o.insert(id, i);
            all.push((id, i));
        }
        for _ in 0..200 {
            let mut t: [u8; 20] = rng.gen();
            if rng.gen_bool(0.3) {
                t[0] = 0x42;
            }
            let except = Some(rng.gen_range(0..500));
            let got = o.xor_closest(&t, 8, except);
            let mut want: Vec<_> = all.iter().copied().filter(|e| Some(e.1) != except).collect();
            want.sort_by(|a, b| xor_cmp(&a.0, &b.0, &t));
            want.truncate(8);
            assert_eq!(got, want);
        }
        o.remove(all[0].0, 0);
        assert_eq!(o.len(), 499);
    }

    #[test]
    fn successors_wrap() {
        let mut o = Oracle::default();
        for (i, b) in [10u8, 20, 30].iter().enumerate() {
            o.insert([*b; 20], i as u32);
        }
        let ids = |v: Vec<([u8; 20], u32)>| v.iter().map(|e| e.0[0]).collect::<Vec<_>>();
        assert_eq!(ids(o.successors(&[15; 20], 2, None)), vec![20, 30]);
        assert_eq!(ids(o.successors(&[31; 20], 2, None)), vec![10, 20]);
        assert_eq!(ids(o.successors(&[20; 20], 3, Some(1))), vec![30, 10]);
    }
}
