//! Why: logon scripts match patterns against target output after removing escape
//! sequences, and map matches back to raw bytes. Arbitrary output, in arbitrary reads, must
//! never panic the runner or grow its window beyond the bound.
#![no_main]

use std::sync::OnceLock;

use gateway::telnet::logon::{builtin, CompiledScript, LogonAction, LogonRun};
use libfuzzer_sys::fuzz_target;

/// Compiling the patterns is the slow part; do it once.
fn scripts() -> &'static Vec<CompiledScript> {
    static S: OnceLock<Vec<CompiledScript>> = OnceLock::new();
    S.get_or_init(|| {
        ["unix", "cisco"]
            .iter()
            .filter_map(|n| builtin(n)?.compile().ok())
            .collect()
    })
}

fuzz_target!(|input: &[u8]| {
    for compiled in scripts() {
        let mut run = LogonRun::new(compiled.clone());
        for chunk in input.split(|b| *b == 0xfe) {
            let mut next = chunk;
            loop {
                match run.feed(next) {
                    LogonAction::Matched { .. } => next = &[],
                    _ => break,
                }
            }
            let _ = run.last_output();
        }
    }
});
