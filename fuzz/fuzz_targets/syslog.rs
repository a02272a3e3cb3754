#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| vane::fuzzing::syslog(data));
