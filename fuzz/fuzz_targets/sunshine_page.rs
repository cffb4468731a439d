//! Sunshine list queries: `page[after]`, `page[size]`, `filter[types]` and the SDKs' JSON
//! `page={…}` / `filter={…}` forms.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let _ = latchkey::sunshine::api::list_params(Some(query));
});
