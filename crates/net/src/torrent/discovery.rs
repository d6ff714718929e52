//! Peer discovery through mycel's DHT: `get_peers` and `announce_peer` for every id of the
//! torrent (v1 hash, truncated v2 hash), repeated with a growing interval.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{GetPeersItem, Handle, InfoHash};

/// First retry interval; doubles up to [`MAX_INTERVAL`].
const FIRST_INTERVAL: Duration = Duration::from_secs(2);
/// Longest interval between rounds (BEP 5 peers expire after 30 minutes or so).
const MAX_INTERVAL: Duration = Duration::from_secs(300);

/// Starts the discovery loop; peers found are sent to `out`. Abort the handle to stop it.
pub(crate) fn spawn(dht: Handle, ids: Vec<[u8; 20]>, port: u16, out: mpsc::Sender<Vec<SocketAddr>>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = FIRST_INTERVAL;
        loop {
            for id in &ids {
                let ih = InfoHash(*id);
                let mut stream = dht.get_peers(ih).await;
                while let Some(item) = stream.next().await {
                    match item {
                        GetPeersItem::Peers(p) => {
                            if out.send(p).await.is_err() {
                                return;
                            }
                        }
                        GetPeersItem::Done(_) => break,
                    }
                }
                if let Err(e) = dht.announce(ih, Some(port)).await {
                    tracing::debug!(error = %e, "announce failed");
                }
            }
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(MAX_INTERVAL);
        }
    })
}
