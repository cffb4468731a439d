//! An HTTP Request action's options as a caller sends them to `/api/v1/http_requests`: the
//! `<<…>>` references, the URL (references only in the query), headers and payload encodings,
//! and the token location formulas.
#![no_main]

use latchkey::egress::{request, template};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = template::references(text);
    if let Some(path) = request::location_path(text) {
        let _ = request::text_at(&serde_json::json!({"body": {"a": [1, "x"]}}), path);
    }
    if let Ok(options) = serde_json::from_str::<request::RequestOptions>(text) {
        let _ = options.target();
        let _ = options.references();
        let _ = options.build(&mut |r| {
            Ok(matches!(r, template::Reference::Credential(_)).then(|| "v&a l\u{fc}e".to_owned()))
        });
    }
});
