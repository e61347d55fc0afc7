//! Fuzzes the handshake decoder (the only decoder an unauthenticated peer reaches). Well-formed
//! messages must re-encode to the same bytes.
#![no_main]

use actix_coord::net::wire::Handshake;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = Handshake::decode(data) {
        assert_eq!(h.encode(), data, "re-encoding differs");
    }
});
