//! `allowed_hosts` entries and the URLs they are matched against: parsing never panics, and
//! a pattern that parses matches without panicking.
#![no_main]

use latchkey::egress::host_pattern::HostPattern;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, url) = text
        .split_once('\n')
        .unwrap_or((text, "https://example.com/a"));
    if let Ok(p) = HostPattern::parse(pattern)
        && let Ok(url) = url::Url::parse(url)
    {
        let _ = p.matches(&url);
    }
});
