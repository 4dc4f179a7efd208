//! Why: the Telnet protocol (RFC 854) as a sans-I/O state machine, so it can be fuzzed and
//! tested byte by byte without a socket. Bytes from the target go in; terminal data and the
//! replies the protocol owes the target come out. It negotiates what a terminal gateway
//! needs (ECHO and SUPPRESS-GO-AHEAD from the server; NAWS, TERMINAL-TYPE, BINARY and SGA on
//! our side, BINARY on theirs) and refuses every other option, without negotiation loops: a
//! request to enter a mode already in force is not acknowledged (RFC 854), and the answer
//! to a request we made ourselves is not answered again (RFC 1143's "want" states, kept
//! to the cases a client meets).
//!
//! Bounds: subnegotiations longer than `MAX_SUBNEGOTIATION` are cut (the rest skipped), so
//! hostile input cannot grow memory; replies are at most a few bytes per input byte plus
//! one terminal-type or window-size report per request.

pub const IAC: u8 = 255;
pub const DONT: u8 = 254;
pub const DO: u8 = 253;
pub const WONT: u8 = 252;
pub const WILL: u8 = 251;
pub const SB: u8 = 250;
pub const SE: u8 = 240;

/// Option codes (IANA "Telnet Options").
pub mod opt {
    pub const BINARY: u8 = 0;
    pub const ECHO: u8 = 1;
    pub const SGA: u8 = 3;
    pub const TTYPE: u8 = 24;
    pub const NAWS: u8 = 31;
}

const TTYPE_IS: u8 = 0;
const TTYPE_SEND: u8 = 1;
pub const MAX_SUBNEGOTIATION: usize = 512;
/// What we call ourselves in TERMINAL-TYPE (RFC 1091 asks for upper case).
pub const TERMINAL_TYPE: &[u8] = b"XTERM-256COLOR";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Data,
    /// A CR arrived while the server is not in binary mode: a following NUL is dropped
    /// (RFC 854's "CR NUL" means a bare carriage return).
    Cr,
    Iac,
    /// IAC WILL/WONT/DO/DONT, waiting for the option byte.
    Negotiate(u8),
    Sub,
    SubIac,
}

/// One Telnet connection's protocol state (client side).
pub struct TelnetProtocol {
    state: State,
    sub: Vec<u8>,
    sub_overflow: bool,
    /// Options in force on our side (we WILL) and on the server's side (it WILL).
    ours: [bool; 256],
    theirs: [bool; 256],
    /// Requests we sent and the server has not answered yet.
    asked_ours: [bool; 256],
    asked_theirs: [bool; 256],
    cols: u16,
    rows: u16,
}

impl TelnetProtocol {
    pub fn new(cols: u16, rows: u16) -> Self {
        TelnetProtocol {
            state: State::Data,
            sub: Vec::new(),
            sub_overflow: false,
            ours: [false; 256],
            theirs: [false; 256],
            asked_ours: [false; 256],
            asked_theirs: [false; 256],
            cols,
            rows,
        }
    }

    /// Whether the server said it echoes what we type.
    pub fn server_echoes(&self) -> bool {
        self.theirs[opt::ECHO as usize]
    }

    pub fn ours_enabled(&self, option: u8) -> bool {
        self.ours[option as usize]
    }

    pub fn theirs_enabled(&self, option: u8) -> bool {
        self.theirs[option as usize]
    }

    /// Options we enable on our side when the server asks (DO).
    fn we_support(option: u8) -> bool {
        matches!(option, opt::NAWS | opt::TTYPE | opt::BINARY | opt::SGA)
    }

    /// Options we accept on the server's side when it offers them (WILL).
    fn they_may(option: u8) -> bool {
        matches!(option, opt::ECHO | opt::SGA | opt::BINARY)
    }

    /// What a client says first: it wants no go-aheads and offers its window size.
    pub fn start(&mut self, reply: &mut Vec<u8>) {
        reply.extend_from_slice(&[IAC, DO, opt::SGA, IAC, WILL, opt::NAWS]);
        self.asked_theirs[opt::SGA as usize] = true;
        self.asked_ours[opt::NAWS as usize] = true;
    }

    /// Takes bytes from the target. Terminal data is appended to `data`, protocol replies
    /// (to be written to the target) to `reply`.
    pub fn receive(&mut self, input: &[u8], data: &mut Vec<u8>, reply: &mut Vec<u8>) {
        for &b in input {
            self.state = match self.state {
                State::Data => self.data_byte(b, data),
                State::Cr => {
                    if b == 0 {
                        State::Data
                    } else {
                        self.data_byte(b, data)
                    }
                }
                State::Iac => match b {
                    IAC => {
                        data.push(IAC);
                        State::Data
                    }
                    WILL | WONT | DO | DONT => State::Negotiate(b),
                    SB => {
                        self.sub.clear();
                        self.sub_overflow = false;
                        State::Sub
                    }
                    // NOP, GA, DM, BRK, IP, AO, AYT, EC, EL, SE out of place: nothing to do
                    // for a client that shows a terminal.
                    _ => State::Data,
                },
                State::Negotiate(verb) => {
                    self.negotiate(verb, b, reply);
                    State::Data
                }
                State::Sub => {
                    if b == IAC {
                        State::SubIac
                    } else {
                        self.sub_push(b);
                        State::Sub
                    }
                }
                State::SubIac => match b {
                    SE => {
                        self.subnegotiation(reply);
                        State::Data
                    }
                    IAC => {
                        self.sub_push(IAC);
                        State::Sub
                    }
                    // RFC 855: IAC followed by anything else inside SB ends it badly; treat
                    // it as the end and drop what we collected.
                    _ => {
                        self.sub.clear();
                        State::Data
                    }
                },
            };
        }
    }

    fn data_byte(&mut self, b: u8, data: &mut Vec<u8>) -> State {
        match b {
            IAC => State::Iac,
            b'\r' if !self.theirs[opt::BINARY as usize] => {
                data.push(b'\r');
                State::Cr
            }
            _ => {
                data.push(b);
                State::Data
            }
        }
    }

    fn sub_push(&mut self, b: u8) {
        if self.sub.len() < MAX_SUBNEGOTIATION {
            self.sub.push(b);
        } else {
            self.sub_overflow = true;
        }
    }

    fn subnegotiation(&mut self, reply: &mut Vec<u8>) {
        if self.sub_overflow {
            self.sub.clear();
            return;
        }
        if self.sub.as_slice() == [opt::TTYPE, TTYPE_SEND] && self.ours[opt::TTYPE as usize] {
            reply.extend_from_slice(&[IAC, SB, opt::TTYPE, TTYPE_IS]);
            reply.extend_from_slice(TERMINAL_TYPE);
            reply.extend_from_slice(&[IAC, SE]);
        }
        self.sub.clear();
    }

    fn negotiate(&mut self, verb: u8, option: u8, reply: &mut Vec<u8>) {
        let i = option as usize;
        match verb {
            WILL => {
                let asked = std::mem::take(&mut self.asked_theirs[i]);
                if self.theirs[i] {
                    return;
                }
                if Self::they_may(option) {
                    self.theirs[i] = true;
                    if !asked {
                        reply.extend_from_slice(&[IAC, DO, option]);
                    }
                } else {
                    reply.extend_from_slice(&[IAC, DONT, option]);
                }
            }
            WONT => {
                let asked = std::mem::take(&mut self.asked_theirs[i]);
                if self.theirs[i] {
                    self.theirs[i] = false;
                    reply.extend_from_slice(&[IAC, DONT, option]);
                } else if asked {
                    // Our request was refused: nothing more to say.
                }
            }
            DO => {
                let asked = std::mem::take(&mut self.asked_ours[i]);
                if self.ours[i] {
                    return;
                }
                if Self::we_support(option) {
                    self.ours[i] = true;
                    if !asked {
                        reply.extend_from_slice(&[IAC, WILL, option]);
                    }
                    if option == opt::NAWS {
                        self.window_size(reply);
                    }
                } else {
                    reply.extend_from_slice(&[IAC, WONT, option]);
                }
            }
            DONT => {
                self.asked_ours[i] = false;
                if self.ours[i] {
                    self.ours[i] = false;
                    reply.extend_from_slice(&[IAC, WONT, option]);
                }
            }
            _ => {}
        }
    }

    fn window_size(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[IAC, SB, opt::NAWS]);
        for v in [self.cols, self.rows] {
            for b in v.to_be_bytes() {
                out.push(b);
                if b == IAC {
                    out.push(IAC);
                }
            }
        }
        out.extend_from_slice(&[IAC, SE]);
    }

    /// The browser's window changed: remember it and, once NAWS is in force, report it.
    pub fn resize(&mut self, cols: u16, rows: u16, out: &mut Vec<u8>) {
        self.cols = cols;
        self.rows = rows;
        if self.ours[opt::NAWS as usize] {
            self.window_size(out);
        }
    }

    /// Encodes what the user typed for the wire: IAC doubled, and outside binary mode a bare
    /// CR sent as CR NUL (RFC 854), which is what Enter in a browser terminal produces.
    pub fn encode_input(&self, input: &[u8], out: &mut Vec<u8>) {
        let binary = self.ours[opt::BINARY as usize];
        let mut it = input.iter().peekable();
        while let Some(&b) = it.next() {
            match b {
                IAC => out.extend_from_slice(&[IAC, IAC]),
                b'\r' if !binary => {
                    out.push(b'\r');
                    if it.peek() != Some(&&b'\n') {
                        out.push(0);
                    }
                }
                _ => out.push(b),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(p: &mut TelnetProtocol, input: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let (mut data, mut reply) = (Vec::new(), Vec::new());
        p.receive(input, &mut data, &mut reply);
        (data, reply)
    }

    #[test]
    fn plain_data_passes_and_escaped_iac_is_one_byte() {
        let mut p = TelnetProtocol::new(80, 24);
        let (d, r) = feed(&mut p, b"hello \xff\xff world");
        assert_eq!(d, b"hello \xff world");
        assert!(r.is_empty());
    }

    #[test]
    fn cr_nul_becomes_cr_but_cr_lf_stays() {
        let mut p = TelnetProtocol::new(80, 24);
        let (d, _) = feed(&mut p, b"a\r\0b\r\nc");
        assert_eq!(d, b"a\rb\r\nc");
        // Split across reads as well.
        let (d1, _) = feed(&mut p, b"x\r");
        let (d2, _) = feed(&mut p, b"\0y");
        assert_eq!([d1, d2].concat(), b"x\ry");
    }

    #[test]
    fn accepts_echo_and_sga_refuses_the_rest_once() {
        let mut p = TelnetProtocol::new(80, 24);
        let (_, r) = feed(&mut p, &[IAC, WILL, opt::ECHO, IAC, WILL, 37, IAC, DO, 32]);
        assert_eq!(r, [IAC, DO, opt::ECHO, IAC, DONT, 37, IAC, WONT, 32]);
        assert!(p.server_echoes());
        // Repeating a request for a mode in force gets no answer (no loops).
        let (_, r) = feed(&mut p, &[IAC, WILL, opt::ECHO]);
        assert!(r.is_empty());
        // Turning echo off is acknowledged once.
        let (_, r) = feed(&mut p, &[IAC, WONT, opt::ECHO, IAC, WONT, opt::ECHO]);
        assert_eq!(r, [IAC, DONT, opt::ECHO]);
        assert!(!p.server_echoes());
    }

    #[test]
    fn our_own_requests_are_not_answered_twice() {
        let mut p = TelnetProtocol::new(100, 40);
        let mut start = Vec::new();
        p.start(&mut start);
        assert_eq!(start, [IAC, DO, opt::SGA, IAC, WILL, opt::NAWS]);
        // The server agrees to both: no WILL/DO echoed back, but the window size is sent.
        let (_, r) = feed(&mut p, &[IAC, WILL, opt::SGA, IAC, DO, opt::NAWS]);
        assert_eq!(r, [IAC, SB, opt::NAWS, 0, 100, 0, 40, IAC, SE]);
        assert!(p.theirs_enabled(opt::SGA) && p.ours_enabled(opt::NAWS));
    }

    #[test]
    fn naws_reports_resizes_and_escapes_255() {
        let mut p = TelnetProtocol::new(80, 24);
        let (_, r) = feed(&mut p, &[IAC, DO, opt::NAWS]);
        assert_eq!(
            r,
            [
                IAC,
                WILL,
                opt::NAWS,
                IAC,
                SB,
                opt::NAWS,
                0,
                80,
                0,
                24,
                IAC,
                SE
            ]
        );
        let mut out = Vec::new();
        p.resize(255, 300, &mut out);
        assert_eq!(out, [IAC, SB, opt::NAWS, 0, 255, 255, 1, 44, IAC, SE]);
    }

    #[test]
    fn no_window_size_before_naws_is_agreed() {
        let mut p = TelnetProtocol::new(80, 24);
        let mut out = Vec::new();
        p.resize(120, 50, &mut out);
        assert!(out.is_empty());
        let (_, r) = feed(&mut p, &[IAC, DO, opt::NAWS]);
        assert!(r.ends_with(&[IAC, SB, opt::NAWS, 0, 120, 0, 50, IAC, SE]));
    }

    #[test]
    fn terminal_type_is_reported_when_asked() {
        let mut p = TelnetProtocol::new(80, 24);
        let (_, r) = feed(&mut p, &[IAC, DO, opt::TTYPE]);
        assert_eq!(r, [IAC, WILL, opt::TTYPE]);
        let (d, r) = feed(&mut p, &[IAC, SB, opt::TTYPE, 1, IAC, SE, b'o', b'k']);
        let mut want = vec![IAC, SB, opt::TTYPE, 0];
        want.extend_from_slice(b"XTERM-256COLOR");
        want.extend_from_slice(&[IAC, SE]);
        assert_eq!(r, want);
        assert_eq!(d, b"ok");
    }

    #[test]
    fn terminal_type_is_not_sent_unless_agreed() {
        let mut p = TelnetProtocol::new(80, 24);
        let (_, r) = feed(&mut p, &[IAC, SB, opt::TTYPE, 1, IAC, SE]);
        assert!(r.is_empty());
    }

    #[test]
    fn oversized_subnegotiation_is_dropped_and_parsing_resumes() {
        let mut p = TelnetProtocol::new(80, 24);
        feed(&mut p, &[IAC, DO, opt::TTYPE]);
        let mut input = vec![IAC, SB, opt::TTYPE, 1];
        input.extend(std::iter::repeat_n(7u8, 10_000));
        input.extend_from_slice(&[IAC, SE]);
        input.extend_from_slice(b"after");
        let (d, r) = feed(&mut p, &input);
        assert_eq!(d, b"after");
        assert!(r.is_empty());
        assert!(p.sub.capacity() <= 2 * MAX_SUBNEGOTIATION);
    }

    #[test]
    fn input_is_escaped_for_the_wire() {
        let mut p = TelnetProtocol::new(80, 24);
        let mut out = Vec::new();
        p.encode_input(b"ls\r", &mut out);
        assert_eq!(out, b"ls\r\0");
        out.clear();
        p.encode_input(b"a\r\nb\xff", &mut out);
        assert_eq!(out, b"a\r\nb\xff\xff");
        // In binary mode a CR goes as is.
        feed(&mut p, &[IAC, DO, opt::BINARY]);
        out.clear();
        p.encode_input(b"x\r", &mut out);
        assert_eq!(out, b"x\r");
    }

    /// A cheap in-tree fuzz pass (the coverage-guided one is `scripts/fuzz.sh`): random
    /// bytes rich in IAC and verbs never panic, never produce more data than input, and keep
    /// replies proportionate.
    #[test]
    fn random_input_keeps_the_bounds() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2_000 {
            let mut p = TelnetProtocol::new(80, 24);
            let len = (next() % 300) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| match next() % 6 {
                    0 => IAC,
                    1 => [WILL, WONT, DO, DONT, SB, SE][(next() % 6) as usize],
                    2 => [0, 1, 3, 24, 31, 37][(next() % 6) as usize],
                    _ => next() as u8,
                })
                .collect();
            let (d, r) = feed(&mut p, &input);
            assert!(d.len() <= input.len());
            assert!(r.len() <= 3 * input.len() + 32 * (input.len() / 3 + 1));
            let mut out = Vec::new();
            p.encode_input(&input, &mut out);
            assert!(out.len() <= 2 * input.len());
        }
    }
}
