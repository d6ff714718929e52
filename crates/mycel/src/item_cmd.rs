//! `mycel keygen`, `mycel dht put` and `mycel dht get`: small values in the DHT (BEP 44)
//! under Freenet's three key kinds (see docs/KEYS.md).
//!
//! - CHK, `--immutable`: the key is the SHA-1 of the value; printed as 40 hex digits.
//! - SSK, `--key KEYFILE --name NAME`: a mutable item signed with the key, salt = NAME;
//!   printed as `PUBKEY/NAME`. The seq is one more than the highest valid one found.
//! - KSK, `--keyword WORDS`: a mutable item signed with a key pair derived from the words.
//!   Anyone who knows the words can write, so a reader takes the version most nodes hold
//!   (then the newest) and is told that the value is not authenticated.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use mycel_dht::{ItemGetResult, ItemKind, ItemPutResult, NodeId, StoredItem};
use mycel_items::{ImmutableItem, ItemError, Keypair, MutableItem, MAX_SALT_LEN, MAX_VALUE_LEN};
use serde::Serialize;

use crate::cli::{ItemGetArgs, ItemPutArgs, KeygenArgs};
use crate::dht_cmd::OneShot;
use crate::{output, UsageError};

/// Size of a key file: the ed25519 secret seed.
const KEY_FILE_LEN: u64 = 32;

const KSK_WARNING: &str =
    "mycel: warning: a keyword (KSK) value is not authenticated: anyone who knows the words can write one";

/// Which key an item lives under (also used by `mycel demo`).
pub(crate) enum Key {
    Chk([u8; 20]),
    Ssk { public: [u8; 32], name: String },
    Ksk { words: String, keypair: Keypair },
}

impl Key {
    pub(crate) fn target(&self) -> [u8; 20] {
        match self {
            Key::Chk(t) => *t,
            Key::Ssk { public, name } => mycel_items::mutable_target(public, name.as_bytes()),
            Key::Ksk { keypair, .. } => mycel_items::mutable_target(&keypair.public_key(), b""),
        }
    }

    pub(crate) fn kind(&self) -> ItemKind {
        match self {
            Key::Chk(_) => ItemKind::Immutable,
            Key::Ssk { name, .. } => ItemKind::Mutable { salt: name.as_bytes().to_vec() },
            Key::Ksk { .. } => ItemKind::Mutable { salt: Vec::new() },
        }
    }

    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Key::Chk(_) => "chk",
            Key::Ssk { .. } => "ssk",
            Key::Ksk { .. } => "ksk",
        }
    }

    /// The salt a mutable item under this key is signed with (the SSK's name; none for a KSK).
    pub(crate) fn salt(&self) -> Vec<u8> {
        match self {
            Key::Ssk { name, .. } => name.as_bytes().to_vec(),
            Key::Chk(_) | Key::Ksk { .. } => Vec::new(),
        }
    }

    /// How a user names it again: hex target, PUBKEY/NAME, or the words.
    pub(crate) fn display(&self) -> String {
        match self {
            Key::Chk(t) => hex::encode(t),
            Key::Ssk { public, name } => format!("{}/{name}", hex::encode(public)),
            Key::Ksk { words, .. } => mycel_items::normalize_keyword(words),
        }
    }
}

/// `mycel keygen --out KEYFILE`.
pub fn keygen(args: KeygenArgs) -> Result<ExitCode> {
    let mut seed = [0u8; 32];
    rand::RngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut seed)
        .map_err(|e| anyhow!("OS random generator failed: {e}"))?;
    let keypair = Keypair::from_seed(seed);
    write_key_file(&args.out, &seed)?;
    let public = hex::encode(keypair.public_key());
    if args.json {
        output::json(&serde_json::json!({ "key_file": args.out, "public_key": public }))?;
    } else {
        output::line(&format!("wrote {} (keep it secret); public key {public}", args.out.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn write_key_file(path: &Path, seed: &[u8; 32]) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("cannot create key file {}", path.display()))?;
    file.write_all(seed).and_then(|()| file.sync_all()).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Reads a key file, refusing one of the wrong size or readable by others.
fn read_key_file(path: &Path) -> Result<Keypair> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read key file {}", path.display()))?;
    if meta.len() != KEY_FILE_LEN {
        return Err(UsageError(format!(
            "{} is {} bytes, not a key file (a key file from 'mycel keygen' holds exactly {KEY_FILE_LEN} bytes)",
            path.display(),
            meta.len()
        ))
        .into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(UsageError(format!(
                "key file {} has permissions {mode:03o}; others can read it. Run: chmod 600 {}",
                path.display(),
                path.display()
            ))
            .into());
        }
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read key file {}", path.display()))?;
    let seed: [u8; 32] = bytes.try_into().map_err(|_| anyhow!("{} changed while reading", path.display()))?;
    Ok(Keypair::from_seed(seed))
}

/// VALUE or @FILE, as a bencoded string, refused when over 1000 bytes.
fn read_value(arg: &str) -> Result<Vec<u8>> {
    let data = match arg.strip_prefix('@') {
        Some(path) => std::fs::read(path).with_context(|| format!("cannot read {path}"))?,
        None => arg.as_bytes().to_vec(),
    };
    match ImmutableItem::from_bytes(&data) {
        Ok(item) => Ok(item.value().to_vec()),
        Err(ItemError::ValueTooBig { len }) => Err(UsageError(format!(
            "the value is {} bytes ({len} bencoded), but a DHT item holds at most {MAX_VALUE_LEN} bytes; \
             share larger content as a torrent with 'mycel share PATH' and put its magnet link here instead",
            data.len()
        ))
        .into()),
        Err(e) => Err(e.into()),
    }
}

/// What `mycel dht put` prints.
#[derive(Debug, Serialize)]
struct PutOutput {
    kind: &'static str,
    key: String,
    target: String,
    seq: Option<i64>,
    stored: usize,
    sent: usize,
    refused: Vec<Refusal>,
    timed_out: usize,
    messages: usize,
    duration_ms: f64,
}

#[derive(Debug, Serialize)]
struct Refusal {
    addr: String,
    code: i64,
}

/// `mycel dht put`.
pub async fn put(args: ItemPutArgs) -> Result<ExitCode> {
    let value = read_value(&args.value)?;
    let key = if args.immutable {
        Key::Chk(mycel_items::immutable_target(&value))
    } else if let Some(words) = &args.keyword {
        eprintln!("{KSK_WARNING}");
        Key::Ksk { words: words.clone(), keypair: Keypair::from_keyword(words) }
    } else {
        let (Some(path), Some(name)) = (&args.key, &args.name) else {
            return Err(
                UsageError("'mycel dht put' needs --immutable, --keyword WORDS, or --key and --name".into()).into()
            );
        };
        if name.len() > MAX_SALT_LEN {
            return Err(
                UsageError(format!("--name is {} bytes; at most {MAX_SALT_LEN} are allowed", name.len())).into()
            );
        }
        let keypair = read_key_file(path)?;
        Key::Ssk { public: keypair.public_key(), name: name.clone() }
    };
    let signer = match (&key, &args.key) {
        (Key::Ksk { keypair, .. }, _) => Some(keypair.clone()),
        (Key::Ssk { .. }, Some(path)) => Some(read_key_file(path)?),
        _ => None,
    };
    let node = OneShot::start(&args.common, "put", true, None).await?;
    let outcome = async {
        match signer {
            None => {
                let item = ImmutableItem::new(value)?;
                let result = node.within("the put", node.handle.put_immutable(item)).await??;
                Ok::<_, anyhow::Error>((None, result))
            }
            Some(keypair) => {
                // seq: one more than the highest valid version the closest nodes hold.
                let found = node
                    .within("reading the current version", node.handle.get_item(NodeId(key.target()), key.kind()))
                    .await??;
                let current = found.versions.iter().map(|v| v.item.seq()).max();
                let seq = current.map_or(1, |s| s.saturating_add(1));
                let item = MutableItem::sign(&keypair, key.salt(), seq, value)?;
                let cas = if args.cas { current } else { None };
                let result = node.within("the put", node.handle.put_mutable(item, cas)).await??;
                Ok((Some(seq), result))
            }
        }
    }
    .await;
    node.stop().await;
    let (seq, result) = outcome?;
    let out = put_output(&key, seq, &result);
    if args.common.json {
        output::json(&out)?;
    } else {
        output::line(&key.display())?;
        eprintln!(
            "mycel: stored on {} of {} node{}{}",
            out.stored,
            out.sent,
            output::plural(out.sent),
            refusals_text(&out.refused)
        );
    }
    if out.stored == 0 {
        eprintln!("error: no node stored the value");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn put_output(key: &Key, seq: Option<i64>, result: &ItemPutResult) -> PutOutput {
    PutOutput {
        kind: key.kind_name(),
        key: key.display(),
        target: hex::encode(result.target.0),
        seq,
        stored: result.stored.len(),
        sent: result.sent,
        refused: result.refused.iter().map(|(n, code)| Refusal { addr: n.addr.to_string(), code: *code }).collect(),
        timed_out: result.timed_out,
        messages: result.lookup.messages_sent,
        duration_ms: output::millis(result.lookup.duration),
    }
}

fn refusals_text(refused: &[Refusal]) -> String {
    if refused.is_empty() {
        return String::new();
    }
    let list: Vec<String> = refused.iter().map(|r| format!("{} ({})", r.addr, error_name(r.code))).collect();
    format!("; refused by {}", list.join(", "))
}

fn error_name(code: i64) -> String {
    match code {
        202 => "202 server error: the node could not store it".into(),
        205 => "205 value too big".into(),
        206 => "206 invalid signature".into(),
        207 => "207 salt too big".into(),
        301 => "301 cas mismatch: someone wrote a newer version; read it and try again".into(),
        302 => "302 sequence number less than current".into(),
        code => format!("error {code}"),
    }
}

/// What `mycel dht get` prints.
#[derive(Debug, Serialize)]
struct GetOutput {
    kind: &'static str,
    key: String,
    target: String,
    found: bool,
    /// The value as text when it is a bencoded string (lossy UTF-8), else its bencoding.
    value: Option<String>,
    /// The raw value bytes (the string's content, or the bencoding), hex.
    value_hex: Option<String>,
    seq: Option<i64>,
    agreeing: usize,
    versions: usize,
    invalid: usize,
    authenticated: bool,
    messages: usize,
    responses: usize,
    duration_ms: f64,
}

/// `mycel dht get`.
pub async fn get(args: ItemGetArgs) -> Result<ExitCode> {
    let key = match (&args.keyword, &args.key) {
        (Some(words), _) => {
            eprintln!("{KSK_WARNING}");
            Key::Ksk { words: words.clone(), keypair: Keypair::from_keyword(words) }
        }
        (None, Some(key)) => parse_key(key)?,
        (None, None) => return Err(UsageError("'mycel dht get' needs KEY or --keyword WORDS".into()).into()),
    };
    let node = OneShot::start(&args.common, "get", true, None).await?;
    let outcome = node.within("the get", node.handle.get_item(NodeId(key.target()), key.kind())).await;
    node.stop().await;
    let result = outcome??;
    let out = get_output(&key, &result);
    if args.common.json {
        output::json(&out)?;
    } else if let Some(bytes) = chosen_value(&key, &result) {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&string_content(&bytes).unwrap_or(bytes))?;
        stdout.write_all(b"\n")?;
    }
    if !out.found {
        eprintln!("error: no valid value found under {}", key.display());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// A CHK (40 hex) or an SSK (64 hex, optionally `/NAME`).
fn parse_key(s: &str) -> Result<Key> {
    let (public, name) = match s.split_once('/') {
        Some((public, name)) => (public, Some(name)),
        None => (s, None),
    };
    let bad = || UsageError(format!("'{s}' is not a key: expected 40 hex digits (CHK) or PUBKEY/NAME (SSK)"));
    match (public.len(), name) {
        (40, None) => {
            let t: [u8; 20] = hex::decode(public).ok().and_then(|b| b.try_into().ok()).ok_or_else(bad)?;
            Ok(Key::Chk(t))
        }
        (64, name) => {
            let p: [u8; 32] = hex::decode(public).ok().and_then(|b| b.try_into().ok()).ok_or_else(bad)?;
            Ok(Key::Ssk { public: p, name: name.unwrap_or_default().to_owned() })
        }
        _ => Err(bad().into()),
    }
}

/// The value to show: the immutable value; for an SSK the highest valid seq; for a KSK the
/// version most nodes hold, then the newest (a squatter cannot outvote the honest holders
/// without also controlling the closest nodes).
pub(crate) fn chosen(key: &Key, r: &ItemGetResult) -> Option<(Vec<u8>, Option<i64>, usize)> {
    match (&r.item, key) {
        (Some(StoredItem::Immutable(i)), _) => Some((i.value().to_vec(), None, r.agreeing)),
        (Some(StoredItem::Mutable(_)), Key::Ksk { .. }) => {
            let best = r.versions.iter().max_by_key(|v| (v.nodes, v.item.seq()))?;
            Some((best.item.value().to_vec(), Some(best.item.seq()), best.nodes))
        }
        (Some(StoredItem::Mutable(m)), _) => Some((m.value().to_vec(), Some(m.seq()), r.agreeing)),
        (None, _) => None,
    }
}

fn chosen_value(key: &Key, r: &ItemGetResult) -> Option<Vec<u8>> {
    chosen(key, r).map(|(v, _, _)| v)
}

fn get_output(key: &Key, r: &ItemGetResult) -> GetOutput {
    let chosen = chosen(key, r);
    let raw = chosen.as_ref().map(|(v, _, _)| string_content(v).unwrap_or_else(|| v.clone()));
    GetOutput {
        kind: key.kind_name(),
        key: key.display(),
        target: hex::encode(r.target.0),
        found: chosen.is_some(),
        value: raw.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()),
        value_hex: raw.as_ref().map(hex::encode),
        seq: chosen.as_ref().and_then(|(_, s, _)| *s),
        agreeing: chosen.as_ref().map_or(0, |(_, _, n)| *n),
        versions: r.versions.len(),
        invalid: r.invalid,
        authenticated: !matches!(key, Key::Ksk { .. }),
        messages: r.lookup.messages_sent,
        responses: r.lookup.responses,
        duration_ms: output::millis(r.lookup.duration),
    }
}

/// The content of a bencoded string (`<len>:<bytes>`), or `None` for other values.
fn string_content(v: &[u8]) -> Option<Vec<u8>> {
    let colon = v.iter().position(|&b| b == b':')?;
    let len: usize = std::str::from_utf8(&v[..colon]).ok()?.parse().ok()?;
    let rest = &v[colon + 1..];
    (rest.len() == len && v[0].is_ascii_digit()).then(|| rest.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse() {
        assert!(matches!(parse_key(&"ab".repeat(20)), Ok(Key::Chk(_))));
        let ssk = parse_key(&format!("{}/my name", "cd".repeat(32))).expect("ssk");
        assert!(matches!(&ssk, Key::Ssk { name, .. } if name == "my name"));
        assert!(parse_key("xyz").is_err());
        assert!(parse_key(&"zz".repeat(20)).is_err());
    }

    #[test]
    fn values_over_the_limit_point_to_share() {
        let big = "x".repeat(997);
        let e = read_value(&big).expect_err("too big");
        assert!(e.to_string().contains("mycel share"), "{e}");
        assert_eq!(read_value("hi").expect("small"), b"2:hi");
    }

    #[test]
    fn key_files_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k");
        write_key_file(&path, &[7; 32]).expect("write");
        assert_eq!(read_key_file(&path).expect("read").seed(), [7; 32]);
        assert!(write_key_file(&path, &[8; 32]).is_err(), "never overwrites");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            let e = read_key_file(&path).expect_err("readable by others");
            assert!(e.to_string().contains("chmod 600"), "{e}");
        }
        let short = dir.path().join("short");
        std::fs::write(&short, [1; 31]).expect("write");
        assert!(read_key_file(&short).expect_err("wrong size").to_string().contains("31 bytes"));
    }

    #[test]
    fn string_values_are_unwrapped() {
        assert_eq!(string_content(b"5:hello"), Some(b"hello".to_vec()));
        assert_eq!(string_content(b"i5e"), None);
        assert_eq!(string_content(b"d1:ai1ee"), None);
    }
}
