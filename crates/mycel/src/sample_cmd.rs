//! `mycel dht sample ADDR`: BEP 51 `sample_infohashes` against one node.

use std::process::ExitCode;

use anyhow::{bail, Result};
use mycel_net::NetError;
use serde::Serialize;

use crate::cli::SampleArgs;
use crate::dht_cmd::OneShot;
use crate::output;

/// What `mycel dht sample` prints.
#[derive(Debug, Serialize)]
struct SampleOutput {
    addr: String,
    id: String,
    /// Whether the node answered with BEP 51 fields at all.
    supported: bool,
    interval: Option<i64>,
    num: Option<i64>,
    samples: Vec<String>,
    nodes: Vec<String>,
}

/// `mycel dht sample`.
pub async fn sample(args: SampleArgs) -> Result<ExitCode> {
    let node = OneShot::start(&args.common, "sample", false, Some(args.addr)).await?;
    let target = match args.target {
        Some(t) => t,
        None => {
            let mut id = [0u8; 20];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
            mycel_net::NodeId(id)
        }
    };
    let answer = node.within("sample_infohashes", node.handle.sample_infohashes(args.addr, target)).await;
    node.stop().await;
    let s = match answer? {
        Ok(s) => s,
        Err(NetError::NoAnswer { addr }) => bail!("no answer from {addr}"),
        Err(e) => return Err(e.into()),
    };
    let out = SampleOutput {
        addr: s.node.addr.to_string(),
        id: s.node.id.to_hex(),
        supported: s.interval.is_some() || s.num.is_some(),
        interval: s.interval,
        num: s.num,
        samples: s.samples.iter().map(|ih| hex_of(&ih.0)).collect(),
        nodes: s.nodes.iter().map(|n| n.addr.to_string()).collect(),
    };
    if args.common.json {
        output::json(&out)?;
    } else if !out.supported {
        output::line(&format!("{} answered without BEP 51 fields: it does not support sample_infohashes", out.addr))?;
    } else {
        for sample in &out.samples {
            output::line(sample)?;
        }
        eprintln!(
            "mycel: {} of {} info-hashes; ask again in {} s",
            out.samples.len(),
            out.num.unwrap_or(0),
            out.interval.unwrap_or(0)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
