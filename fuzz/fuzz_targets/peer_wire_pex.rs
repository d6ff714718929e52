#![no_main]
libfuzzer_sys::fuzz_target!(|d: &[u8]| mycel_peer_wire::fuzzing::pex(d));
