//! Why: the RDP adapter is tested against a real xrdp. This drives `xrdp.sh` (beside this
//! file): one private xrdp per test process on a 127.0.0.1 port, for the machine users that
//! `sshd.rs` creates; a watchdog stops it when the process exits.

use std::process::Command;
use std::sync::OnceLock;

pub struct Xrdp {
    pub port: u16,
    /// `SHA256:...` of the server's TLS certificate.
    pub fingerprint: String,
}

/// Runs `tests/support/SCRIPT start ARGS...`; panics with its error output unless it
/// succeeds; returns what it printed.
fn start(script: &str, args: &[&str]) -> String {
    let path = format!("{}/tests/support/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("sh")
        .arg(&path)
        .arg("start")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{script}: {e}"));
    assert!(
        out.status.success(),
        "{script} start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn xrdp() -> &'static Xrdp {
    static X: OnceLock<Xrdp> = OnceLock::new();
    X.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("portcullis-xrdp-{}", std::process::id()));
        let pid = std::process::id().to_string();
        let text = start("xrdp.sh", &[dir.to_str().unwrap_or_default(), &pid]);
        let mut parts = text.split_whitespace();
        let port = parts
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("xrdp.sh start printed {text:?}"));
        Xrdp {
            port,
            fingerprint: parts.next().unwrap_or_default().to_string(),
        }
    })
}

/// The desktop the RDP tests expect: a solid root window of this colour, and an xterm
/// (black on white) at the top left that has the keyboard while the pointer is over it.
pub const ROOT_RGB: [u8; 3] = [0x3a, 0x6e, 0xa5];

pub const XSESSION: &str =
    "#!/bin/sh\nxsetroot -solid '#3a6ea5'\nexec xterm -geometry 80x24+0+0 -bg white -fg black\n";

/// A FreeRDP shadow server (NLA only) for one user with `password`; its port. Its desktop
/// is a solid `SHADOW_RGB`. Stopped when the test process exits.
pub fn nla_server(user: &str, password: &str) -> u16 {
    nla_server_at(user, password, None)
}

/// The same inside network namespace `netns`, listening on `addr`:3389.
pub fn nla_server_at(user: &str, password: &str, at: Option<(&str, &str)>) -> u16 {
    let dir = std::env::temp_dir().join(format!("portcullis-shadow-{}-{user}", std::process::id()));
    let (addr, netns) = at.unwrap_or(("127.0.0.1", ""));
    let pid = std::process::id().to_string();
    let text = start(
        "freerdp-shadow.sh",
        &[
            dir.to_str().unwrap_or_default(),
            &pid,
            user,
            password,
            addr,
            netns,
        ],
    );
    text.parse()
        .unwrap_or_else(|_| panic!("freerdp-shadow.sh start printed {text:?}"))
}

pub const SHADOW_RGB: [u8; 3] = [0x2e, 0x8b, 0x57];

/// A photograph-like picture (smooth light with grain: thousands of colours) as an XWD file,
/// which `xwud` shows pixel for pixel on a 24-bit desktop, and its pixels as RGB. `seed` makes
/// another picture (the light shifts, the grain changes).
pub fn photo_xwd(w: usize, h: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rgb = Vec::with_capacity(w * h * 3);
    let mut g: u64 = 0x2545_f491_4f6c_dd1d ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let shift = (seed * 37) as usize;
    for y in 0..h {
        for x in 0..w {
            g ^= g << 13;
            g ^= g >> 7;
            g ^= g << 17;
            let grain = (g % 24) as usize;
            rgb.extend_from_slice(&[
                ((x * 255 / w + shift) % 200 + grain) as u8,
                ((y * 255 / h) % 200 + grain) as u8,
                (((x + y) * 128 / (w + h) + shift / 2) % 200 + grain / 2) as u8,
            ]);
        }
    }
    let name = b"photo\0";
    // XWD version 7: ZPixmap, depth 24, MSB first, 32 bits per pixel, TrueColor.
    let (w32, h32) = (w as u32, h as u32);
    let header: [u32; 25] = [
        100 + name.len() as u32,
        7,
        2,
        24,
        w32,
        h32,
        0,
        1,
        32,
        1,
        32,
        32,
        w32 * 4,
        4,
        0xff_0000,
        0xff00,
        0xff,
        8,
        256,
        0,
        w32,
        h32,
        0,
        0,
        0,
    ];
    let mut file: Vec<u8> = header.iter().flat_map(|v| v.to_be_bytes()).collect();
    file.extend_from_slice(name);
    for p in rgb.chunks_exact(3) {
        file.extend_from_slice(&[0, p[0], p[1], p[2]]);
    }
    (file, rgb)
}

/// The picture in an XWD file as `xwd -root` writes it (ZPixmap, 32 bits per pixel,
/// TrueColor with 8-bit masks): width, height and RGB rows. None for anything else.
pub fn read_xwd(file: &[u8]) -> Option<(usize, usize, Vec<u8>)> {
    let field = |i: usize| -> Option<u32> {
        Some(u32::from_be_bytes(
            file.get(i * 4..i * 4 + 4)?.try_into().ok()?,
        ))
    };
    let (header, format, w, h) = (field(0)?, field(2)?, field(4)?, field(5)?);
    let (byte_order, bpp, line, ncolors) = (field(7)?, field(11)?, field(12)?, field(19)?);
    let masks = (field(14)?, field(15)?, field(16)?);
    if format != 2 || bpp != 32 {
        return None;
    }
    let shift = |m: u32| (m != 0).then(|| m.trailing_zeros());
    let (rs, gs, bs) = (shift(masks.0)?, shift(masks.1)?, shift(masks.2)?);
    let (w, h, line) = (w as usize, h as usize, line as usize);
    let data = file.get(header as usize + ncolors as usize * 12..)?;
    let mut rgb = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let b: [u8; 4] = data
                .get(y * line + x * 4..y * line + x * 4 + 4)?
                .try_into()
                .ok()?;
            let v = if byte_order == 0 {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            };
            rgb.extend_from_slice(&[(v >> rs) as u8, (v >> gs) as u8, (v >> bs) as u8]);
        }
    }
    Some((w, h, rgb))
}

#[cfg(test)]
mod xwd_tests {
    #[test]
    fn a_written_xwd_reads_back() {
        let (file, rgb) = super::photo_xwd(7, 5, 3);
        assert_eq!(super::read_xwd(&file), Some((7, 5, rgb)));
    }
}
