//! The configuration file (TOML) and its validation: any file is a clear error or a config.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("latchkey-fuzz-{}.toml", std::process::id()));
    if std::fs::write(&path, data).is_ok() {
        let _ = latchkey::Config::load(Some(&path), std::iter::empty());
    }
});
