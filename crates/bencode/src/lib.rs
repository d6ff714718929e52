//! Strict zero-copy bencode.
