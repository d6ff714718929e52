#![no_main]
libfuzzer_sys::fuzz_target!(|d: &[u8]| {
    mycel_mse::fuzzing::handshake(d);
});
