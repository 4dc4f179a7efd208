//! Why: the Telnet parser reads whatever a target (or anything pretending to be one) sends.
//! Arbitrary bytes, cut into arbitrary reads, interleaved with resizes and typed input, must
//! never panic, never produce more terminal data than came in, and keep replies bounded.
#![no_main]

use gateway::telnet::protocol::TelnetProtocol;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    if input.len() < 4 {
        return;
    }
    let cols = u16::from_be_bytes([input[0], input[1]]);
    let rows = u16::from_be_bytes([input[2], input[3]]);
    let mut p = TelnetProtocol::new(cols, rows);
    let mut start = Vec::new();
    p.start(&mut start);
    let mut rest = &input[4..];
    let (mut data, mut reply) = (Vec::new(), Vec::new());
    while !rest.is_empty() {
        // The first byte of each piece says how long the read is and what else happens.
        let ctl = rest[0];
        rest = &rest[1..];
        let n = (ctl as usize % 64 + 1).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        data.clear();
        reply.clear();
        p.receive(chunk, &mut data, &mut reply);
        assert!(data.len() <= chunk.len());
        // At most: a refusal per 3 bytes, or a terminal-type/window-size report per request.
        assert!(reply.len() <= 3 * chunk.len() + 32 * (chunk.len() / 3 + 1));
        if ctl & 0x80 != 0 {
            let mut out = Vec::new();
            p.resize(u16::from(ctl) * 7, u16::from(ctl) * 3, &mut out);
            assert!(out.len() <= 3 + 8 + 2);
        }
        if ctl & 0x40 != 0 {
            let mut out = Vec::new();
            p.encode_input(chunk, &mut out);
            assert!(out.len() <= 2 * chunk.len());
        }
    }
});
