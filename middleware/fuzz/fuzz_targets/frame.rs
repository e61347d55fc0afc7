//! Fuzzes the frame decoder: the length-delimited framing with the cap, the frame body, the
//! differential vector decoder and the payload decoder. Well-formed frames must survive a
//! re-encoding unchanged.
#![no_main]

use actix_coord::net::wire::{self, Body, Frame, VectorDecoder};
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, LengthDelimitedCodec};

fuzz_target!(|data: &[u8]| {
    // As a stream of frames through the codec (cap 4 KiB), then each body.
    let mut codec = LengthDelimitedCodec::builder()
        .max_frame_length(4096)
        .new_codec();
    let mut buf = BytesMut::from(data);
    let mut dec = VectorDecoder::new();
    while let Ok(Some(body)) = codec.decode(&mut buf) {
        check(&body.freeze(), &mut dec);
    }
    // And the whole input as one body.
    check(&Bytes::copy_from_slice(data), &mut VectorDecoder::new());
});

fn check(body: &Bytes, dec: &mut VectorDecoder) {
    let Ok(frame) = Frame::decode(body) else {
        return;
    };
    // (Encodings are not all canonical: a vector entry may spell out a local id it could
    // inherit. Re-decoding must give the same frame.)
    let again = Frame::decode(&Bytes::from(frame.encode()));
    assert_eq!(again.as_ref(), Ok(&frame), "re-encoding changes the frame");
    if let Body::Message { stamp, payload, .. } | Body::Reply { stamp, payload, .. } = &frame.body {
        let _ = dec.decode(stamp);
        let _ = wire::decode_payload::<(u64, String, Vec<u32>)>(payload);
    }
}
