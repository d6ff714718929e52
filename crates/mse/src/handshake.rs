//! The MSE handshake state machine, both roles.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha1::{Digest, Sha1};

use crate::cipher::{Cipher, Rc4Stream};
use crate::dh::KeyPair;
use crate::{CryptoSet, Method, INITIATOR_SYNC_WINDOW, KEY_LEN, MAX_IA, MAX_PAD, RESPONDER_SYNC_WINDOW};

/// Which side of the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A: dialed the connection, knows the info-hash.
    Initiator,
    /// B: accepted the connection, learns the info-hash from the handshake.
    Responder,
}

/// Why a handshake failed. Every error is final: the connection should be closed.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum MseError {
    /// The peer's Diffie-Hellman public key is outside 2..=P-2.
    #[error("degenerate Diffie-Hellman public key")]
    BadPublicKey,
    /// The synchronisation pattern (`HASH('req1', S)` for the responder, the encrypted VC
    /// for the initiator) was not within the bytes the spec allows.
    #[error("no MSE sync pattern within {window} bytes (not an MSE handshake, or a wrong key)")]
    NoSync {
        /// Bytes scanned.
        window: usize,
    },
    /// `HASH('req2', SKEY) xor HASH('req3', S)` matches none of the info-hashes served.
    #[error("the MSE handshake names an info-hash not served here")]
    UnknownInfoHash,
    /// The decrypted verification constant is not eight zero bytes.
    #[error("bad MSE verification constant")]
    BadVerificationConstant,
    /// The initiator offers no method the responder allows.
    #[error("no common MSE method: offered {offered:#x}, allowed {allowed:#x}")]
    NoCommonMethod {
        /// `crypto_provide`.
        offered: u32,
        /// The responder's allowed set.
        allowed: u32,
    },
    /// The responder selected something that is not exactly one offered method.
    #[error("bad MSE crypto_select {select:#x} (offered {offered:#x})")]
    BadSelect {
        /// `crypto_select`.
        select: u32,
        /// `crypto_provide`.
        offered: u32,
    },
    /// PadC or PadD is longer than 512 bytes.
    #[error("MSE padding of {len} bytes (at most 512)")]
    PadTooLong {
        /// The announced length.
        len: usize,
    },
    /// The initial payload is longer than [`MAX_IA`].
    #[error("MSE initial payload of {len} bytes (at most {MAX_IA})")]
    PayloadTooLong {
        /// The announced length.
        len: usize,
    },
    /// Bytes were fed after the handshake failed or finished.
    #[error("the MSE handshake is over")]
    Over,
}

/// A finished handshake.
#[derive(Debug)]
pub struct Established {
    /// The method in use from here on.
    pub method: Method,
    /// The info-hash (SKEY) the initiator asked for.
    pub info_hash: [u8; 20],
    /// Bytes of the BitTorrent stream that arrived with the handshake, decrypted: the
    /// initial payload IA (responder), then anything after the handshake.
    pub payload: Vec<u8>,
    /// The RC4 streams for the rest of the connection; `Some` when `method` is RC4.
    pub cipher: Option<Cipher>,
}

/// The MSE handshake, for one connection and one role; see the crate docs for the
/// calling contract. Never panics on any input; bytes in any chunking give the same result.
pub struct Handshake {
    role: Role,
    keys: KeyPair,
    rng: ChaCha8Rng,
    /// Initiator: the info-hash; responder: the candidates.
    skeys: Vec<[u8; 20]>,
    /// Initiator: `crypto_provide`; responder: the allowed methods.
    methods: CryptoSet,
    /// Responder: the method taken when the initiator offers both.
    prefer: Method,
    /// Received and not yet consumed.
    buf: Vec<u8>,
    out: Vec<u8>,
    state: State,
    /// Set once the peer's key is in: (S, streams in the handshake's directions).
    secret: Option<[u8; KEY_LEN]>,
    send: Option<Rc4Stream>,
    recv: Option<Rc4Stream>,
    info_hash: [u8; 20],
    offered: u32,
    /// Initiator: the responder's encrypted VC.
    sync_vc: [u8; 8],
    payload: Vec<u8>,
    done: Option<Established>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the peer's 96-byte public key.
    PeerKey,
    /// Responder: scanning for `HASH('req1', S)`.
    SyncReq1,
    /// Responder: waiting for `HASH('req2', SKEY) xor HASH('req3', S)`.
    Skey,
    /// Responder: VC, crypto_provide, len(PadC).
    Provide,
    /// Responder: PadC and len(IA).
    PadC(usize),
    /// Responder: IA (step 4 already sent).
    Ia(usize, Method),
    /// Initiator: scanning for the encrypted VC.
    SyncVc,
    /// Initiator: crypto_select, len(PadD).
    Select,
    /// Initiator: PadD.
    PadD(usize, Method),
    Done,
    Failed,
}

impl Handshake {
    /// The initiator for `skey` (the info-hash it wants), offering `provide`; `seed` is
    /// fresh randomness for its private key and padding. Its first bytes (Ya, PadA) are
    /// ready in [`Handshake::poll_transmit`].
    pub fn initiator(skey: [u8; 20], provide: CryptoSet, seed: [u8; 32]) -> Self {
        let mut h = Handshake::new(Role::Initiator, vec![skey], provide, Method::Rc4, seed);
        h.info_hash = skey;
        h.send_key_and_pad();
        h
    }

    /// The responder, serving the info-hashes `skeys` (v1 and truncated v2 ids), allowing
    /// `allowed` and taking `prefer` when the initiator offers both; `seed` is fresh
    /// randomness for its private key and padding.
    pub fn responder(skeys: Vec<[u8; 20]>, allowed: CryptoSet, prefer: Method, seed: [u8; 32]) -> Self {
        Handshake::new(Role::Responder, skeys, allowed, prefer, seed)
    }

    fn new(role: Role, skeys: Vec<[u8; 20]>, methods: CryptoSet, prefer: Method, seed: [u8; 32]) -> Self {
        let mut rng = ChaCha8Rng::from_seed(seed);
        let mut private = [0u8; 20];
        rng.fill_bytes(&mut private);
        Handshake {
            role,
            keys: KeyPair::new(&private),
            rng,
            skeys,
            methods,
            prefer,
            buf: Vec::new(),
            out: Vec::new(),
            state: State::PeerKey,
            secret: None,
            send: None,
            recv: None,
            info_hash: [0; 20],
            offered: 0,
            sync_vc: [0; 8],
            payload: Vec::new(),
            done: None,
        }
    }

    /// Feeds bytes from the peer. An error is final (later calls return [`MseError::Over`]).
    pub fn handle_bytes(&mut self, data: &[u8]) -> Result<(), MseError> {
        if matches!(self.state, State::Done | State::Failed) {
            return Err(MseError::Over);
        }
        self.buf.extend_from_slice(data);
        let r = self.advance();
        if r.is_err() {
            self.state = State::Failed;
            self.buf = Vec::new();
        }
        r
    }

    /// Bytes to send to the peer, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
    }

    /// Whether the handshake finished (its result may already have been taken).
    pub fn is_established(&self) -> bool {
        self.state == State::Done
    }

    /// The result, once: after the handshake finished and its last bytes were taken with
    /// [`Handshake::poll_transmit`].
    pub fn poll_established(&mut self) -> Option<Established> {
        self.done.take()
    }

    /// Bytes held while waiting for more (bounded by the spec's windows).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Runs the state machine as far as the buffered bytes go.
    fn advance(&mut self) -> Result<(), MseError> {
        loop {
            let before = self.state;
            match self.state {
                State::PeerKey => self.on_peer_key()?,
                State::SyncReq1 => self.on_sync_req1()?,
                State::Skey => self.on_skey()?,
                State::Provide => self.on_provide()?,
                State::PadC(n) => self.on_pad_c(n)?,
                State::Ia(n, m) => self.on_ia(n, m)?,
                State::SyncVc => self.on_sync_vc()?,
                State::Select => self.on_select()?,
                State::PadD(n, m) => self.on_pad_d(n, m)?,
                State::Done | State::Failed => return Ok(()),
            }
            if self.state == before {
                return Ok(());
            }
        }
    }

    /// Takes `n` bytes off the front of the buffer, decrypted with the receive stream.
    fn take_decrypted(&mut self, n: usize) -> Option<Vec<u8>> {
        if self.buf.len() < n {
            return None;
        }
        let mut field: Vec<u8> = self.buf.drain(..n).collect();
        if let Some(r) = &mut self.recv {
            r.apply(&mut field);
        }
        Some(field)
    }

    fn send_key_and_pad(&mut self) {
        let public = self.keys.public;
        self.out.extend_from_slice(&public);
        self.push_pad(false);
    }

    /// Random padding of 0..=512 bytes; with `len_prefix` its length goes first
    /// (PadC/PadD), and both go through the send stream.
    fn push_pad(&mut self, len_prefix: bool) {
        let len = self.rng.gen_range(0..=MAX_PAD);
        let start = self.out.len();
        if len_prefix {
            self.out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        let pad_at = self.out.len();
        self.out.resize(pad_at + len, 0);
        if !len_prefix {
            // PadA/PadB travel in the clear: make them random. PadC/PadD are encrypted.
            self.rng.fill_bytes(&mut self.out[pad_at..]);
        }
        if len_prefix {
            self.encrypt_out_from(start);
        }
    }

    fn encrypt_out_from(&mut self, start: usize) {
        if let Some(s) = &mut self.send {
            s.apply(&mut self.out[start..]);
        }
    }

    fn on_peer_key(&mut self) -> Result<(), MseError> {
        if self.buf.len() < KEY_LEN {
            return Ok(());
        }
        let secret = self.keys.shared(&self.buf[..KEY_LEN]).ok_or(MseError::BadPublicKey)?;
        self.buf.drain(..KEY_LEN);
        self.secret = Some(secret);
        match self.role {
            Role::Responder => {
                self.send_key_and_pad();
                self.state = State::SyncReq1;
            }
            Role::Initiator => self.send_request(&secret),
        }
        Ok(())
    }

    /// Initiator, step 3: the sync hash, the obfuscated info-hash, the encrypted offer.
    fn send_request(&mut self, s: &[u8; KEY_LEN]) {
        let skey = self.info_hash;
        self.out.extend_from_slice(&hash(&[b"req1", s]));
        let (req2, req3) = (hash(&[b"req2", &skey]), hash(&[b"req3", s]));
        self.out.extend(req2.iter().zip(req3.iter()).map(|(a, b)| a ^ b));
        self.send = Some(Rc4Stream::new(&hash(&[b"keyA", s, &skey])));
        let mut recv = Rc4Stream::new(&hash(&[b"keyB", s, &skey]));
        let start = self.out.len();
        self.out.extend_from_slice(&[0u8; 8]);
        self.out.extend_from_slice(&self.methods.bits().to_be_bytes());
        self.encrypt_out_from(start);
        self.push_pad(true);
        // len(IA) = 0: the BitTorrent handshake follows the MSE one.
        let start = self.out.len();
        self.out.extend_from_slice(&[0, 0]);
        self.encrypt_out_from(start);
        // The peer's VC, encrypted, is the next 8 bytes of its stream: the sync pattern.
        let mut vc = [0u8; 8];
        recv.apply(&mut vc);
        self.sync_vc = vc;
        self.recv = Some(recv);
        self.state = State::SyncVc;
    }
}

impl Handshake {
    fn secret(&self) -> [u8; KEY_LEN] {
        self.secret.unwrap_or([0; KEY_LEN])
    }

    /// Responder, step 3: finds `HASH('req1', S)` after PadA.
    fn on_sync_req1(&mut self) -> Result<(), MseError> {
        let req1 = hash(&[b"req1", &self.secret()]);
        let window = &self.buf[..self.buf.len().min(RESPONDER_SYNC_WINDOW)];
        match find(window, &req1) {
            Some(i) => {
                self.buf.drain(..i + req1.len());
                self.state = State::Skey;
                Ok(())
            }
            None if self.buf.len() >= RESPONDER_SYNC_WINDOW => Err(MseError::NoSync { window: RESPONDER_SYNC_WINDOW }),
            None => Ok(()),
        }
    }

    /// Responder: which served info-hash the initiator wants; keys the streams.
    fn on_skey(&mut self) -> Result<(), MseError> {
        if self.buf.len() < 20 {
            return Ok(());
        }
        let s = self.secret();
        let req3 = hash(&[b"req3", &s]);
        let mut want = [0u8; 20];
        for (w, (x, r)) in want.iter_mut().zip(self.buf.iter().zip(req3.iter())) {
            *w = x ^ r;
        }
        let skey = *self.skeys.iter().find(|k| hash(&[b"req2", &k[..]]) == want).ok_or(MseError::UnknownInfoHash)?;
        self.buf.drain(..20);
        self.info_hash = skey;
        self.recv = Some(Rc4Stream::new(&hash(&[b"keyA", &s, &skey])));
        self.send = Some(Rc4Stream::new(&hash(&[b"keyB", &s, &skey])));
        self.state = State::Provide;
        Ok(())
    }

    /// Responder: VC, crypto_provide, len(PadC).
    fn on_provide(&mut self) -> Result<(), MseError> {
        let Some(f) = self.take_decrypted(14) else { return Ok(()) };
        if f[..8] != [0u8; 8] {
            return Err(MseError::BadVerificationConstant);
        }
        self.offered = u32::from_be_bytes([f[8], f[9], f[10], f[11]]);
        let pad = usize::from(u16::from_be_bytes([f[12], f[13]]));
        if pad > MAX_PAD {
            return Err(MseError::PadTooLong { len: pad });
        }
        self.state = State::PadC(pad);
        Ok(())
    }

    /// Responder: PadC (dropped) and len(IA).
    fn on_pad_c(&mut self, pad: usize) -> Result<(), MseError> {
        let Some(f) = self.take_decrypted(pad + 2) else { return Ok(()) };
        let ia = usize::from(u16::from_be_bytes([f[pad], f[pad + 1]]));
        if ia > MAX_IA {
            return Err(MseError::PayloadTooLong { len: ia });
        }
        // Step 4 goes out now, not after IA: an initiator that writes IA separately
        // (libtorrent does) may have it held by Nagle until this side sends something.
        let common = self.offered & self.methods.bits();
        let method = [self.prefer, Method::Rc4, Method::Plaintext]
            .into_iter()
            .find(|m| common & m.bit() != 0)
            .ok_or(MseError::NoCommonMethod { offered: self.offered, allowed: self.methods.bits() })?;
        let start = self.out.len();
        self.out.extend_from_slice(&[0u8; 8]);
        self.out.extend_from_slice(&method.bit().to_be_bytes());
        self.encrypt_out_from(start);
        self.push_pad(true);
        self.state = State::Ia(ia, method);
        Ok(())
    }

    /// Responder: IA; the handshake is over.
    fn on_ia(&mut self, len: usize, method: Method) -> Result<(), MseError> {
        if let Some(ia) = self.take_decrypted(len) {
            self.payload = ia;
            self.finish(method);
        }
        Ok(())
    }

    /// Initiator, step 4: finds the responder's encrypted VC after PadB.
    fn on_sync_vc(&mut self) -> Result<(), MseError> {
        let window = &self.buf[..self.buf.len().min(INITIATOR_SYNC_WINDOW)];
        match find(window, &self.sync_vc) {
            Some(i) => {
                self.buf.drain(..i + 8);
                self.state = State::Select;
                Ok(())
            }
            None if self.buf.len() >= INITIATOR_SYNC_WINDOW => Err(MseError::NoSync { window: INITIATOR_SYNC_WINDOW }),
            None => Ok(()),
        }
    }

    /// Initiator: crypto_select and len(PadD).
    fn on_select(&mut self) -> Result<(), MseError> {
        let Some(f) = self.take_decrypted(6) else { return Ok(()) };
        let select = u32::from_be_bytes([f[0], f[1], f[2], f[3]]);
        let offered = self.methods.bits();
        let Some(method) = Method::from_bit(select) else {
            return Err(MseError::BadSelect { select, offered });
        };
        if offered & select == 0 {
            return Err(MseError::BadSelect { select, offered });
        }
        let pad = usize::from(u16::from_be_bytes([f[4], f[5]]));
        if pad > MAX_PAD {
            return Err(MseError::PadTooLong { len: pad });
        }
        self.state = State::PadD(pad, method);
        Ok(())
    }

    /// Initiator: PadD (dropped); the handshake is over.
    fn on_pad_d(&mut self, pad: usize, method: Method) -> Result<(), MseError> {
        if self.take_decrypted(pad).is_some() {
            self.finish(method);
        }
        Ok(())
    }

    /// Hands the rest of the buffer over as payload and keeps the streams if RC4 goes on.
    fn finish(&mut self, method: Method) {
        let mut rest = std::mem::take(&mut self.buf);
        let (send, recv) = (self.send.take(), self.recv.take());
        let cipher = match (method, send, recv) {
            (Method::Rc4, Some(encrypt), Some(mut decrypt)) => {
                decrypt.apply(&mut rest);
                Some(Cipher { encrypt, decrypt })
            }
            _ => None,
        };
        let mut payload = std::mem::take(&mut self.payload);
        payload.extend_from_slice(&rest);
        self.done = Some(Established { method, info_hash: self.info_hash, payload, cipher });
        self.state = State::Done;
    }
}

/// SHA-1 over the concatenation of `parts`.
fn hash(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Where `needle` starts in `hay`, if it does.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
