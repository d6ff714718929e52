#![no_main]
libfuzzer_sys::fuzz_target!(|d: &[u8]| mycel_dht::fuzzing::datagrams(d));
