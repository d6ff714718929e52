//! Torrent fixtures shared by the driver tests and the seeding-memory bench.

#![allow(dead_code)] // each includer uses a part

use std::path::Path;

use mycel_metainfo::{CreateOptions, Metainfo, TorrentBuilder, TorrentVersion};
use mycel_net::torrent::{Session, SessionConfig, SessionHandle};
use rand::{Rng, SeedableRng};

/// `len` pseudo-random bytes from `seed`.
pub fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.gen()).collect()
}

/// A single-file torrent of `data`.
pub fn torrent(data: &[u8], version: TorrentVersion, piece: u32) -> Metainfo {
    let opts = CreateOptions { version, piece_length: Some(piece), ..CreateOptions::default() };
    let mut b = TorrentBuilder::single_file("blob.bin", data.len() as u64, opts).unwrap();
    b.hash_all(|_, off, buf: &mut [u8]| -> Result<(), ()> {
        buf.copy_from_slice(&data[off as usize..off as usize + buf.len()]);
        Ok(())
    })
    .unwrap();
    Metainfo::from_bytes(&b.finish().unwrap()).unwrap()
}

/// A session listening on `ip`, port chosen by the OS.
pub async fn session(ip: &str, data_dir: Option<&Path>, limit: u64) -> SessionHandle {
    let mut cfg = SessionConfig::new(format!("{ip}:0").parse().unwrap());
    cfg.data_dir = data_dir.map(Path::to_path_buf);
    cfg.upload_limit = limit;
    cfg.disk_threads = 2;
    Session::start(cfg).await.unwrap()
}
