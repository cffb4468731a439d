//! The `Authorization` value `/v1/authenticate` and every surface parse first: Basic, Bearer
//! or a bare token, and a JWT's header. Never panics, whatever the bytes.
#![no_main]

use latchkey::{crypto::jwt::decode_header, kernel::verify::Authorization};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(Authorization::Token(token)) = Authorization::parse(text) {
        let _ = decode_header(token);
    }
    let _ = decode_header(text);
});
