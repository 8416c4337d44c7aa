//! The manifest loader and validator on arbitrary bytes: no panic, bounded time and memory.
//! Run with `cargo +nightly fuzz run manifest` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let source = labctl::manifest::Source::from_text("fuzz.yaml", text.into_owned());
    let (manifest, _) = labctl::manifest::parse(&source);
    if let Some(manifest) = manifest {
        let _ = labctl::validate::validate(&manifest, &labctl::validate::Context::default());
    }
});
