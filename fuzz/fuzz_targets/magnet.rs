#![no_main]
libfuzzer_sys::fuzz_target!(|d: &[u8]| mycel_metainfo::fuzzing::magnet(d));
