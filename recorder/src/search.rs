//! Why: auditors search every recording for text that appeared on screen or was typed, but
//! session content must not sit in clear at rest for the sake of an index. Each recording gets
//! (1) a Bloom filter of keyed hashes (HMAC-SHA256 under the server's search key) of the words
//! it contains, which says nothing without the key, and (2) its text lines with their times,
//! which the server stores encrypted. A query hashes its words, keeps the recordings whose
//! filter has them all, and only then decrypts those recordings' lines to find the hits.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::event::{RecordedEvent, Timed};

/// Filter size: 2^17 bits (16 KiB); with 4 probes and 5,000 distinct words the false-positive
/// rate is about 1 in 2,500 per word (a false positive only costs a decryption).
pub const BLOOM_BITS: usize = 1 << 17;
const PROBES: usize = 4;
/// Lines longer than this are cut (a `cat` of a minified file is not a line anyone searches).
const MAX_LINE: usize = 400;

/// A line of text and when it appeared; `typed` for keystrokes, not screen output.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Line {
    pub t_ms: u64,
    pub text: String,
    pub typed: bool,
}

/// The words of a text, as the index sees them: lower case, split on anything that is not a
/// letter, digit or one of `_-./@:`, trimmed of trailing punctuation, 2-64 characters.
pub fn words(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut out: Vec<String> = lower
        .split(|c: char| !(c.is_alphanumeric() || "_-./@:".contains(c)))
        .map(|w| w.trim_matches(|c: char| ".:-".contains(c)))
        .filter(|w| (2..=64).contains(&w.chars().count()))
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The lines of a terminal recording: output split into lines (escape sequences removed,
/// carriage returns and backspaces applied) and the typed command lines.
pub fn lines(events: &[Timed]) -> Vec<Line> {
    let mut out = Vec::new();
    let mut cur: Vec<char> = Vec::new();
    let mut col = 0usize;
    let mut cur_t: Option<u64> = None;
    let mut esc = Esc::None;
    let flush = |out: &mut Vec<Line>, cur: &mut Vec<char>, col: &mut usize, t: &mut Option<u64>| {
        let text: String = cur.iter().collect::<String>().trim_end().to_string();
        if !text.trim().is_empty() {
            out.push(Line {
                t_ms: t.unwrap_or(0),
                text,
                typed: false,
            });
        }
        cur.clear();
        *col = 0;
        *t = None;
    };
    for e in events {
        let RecordedEvent::Output(b) = &e.event else {
            continue;
        };
        for ch in String::from_utf8_lossy(b).chars() {
            match esc {
                Esc::Start => {
                    esc = match ch {
                        '[' => Esc::Csi,
                        ']' => Esc::Osc,
                        '(' | ')' | '#' => Esc::OneMore,
                        _ => Esc::None,
                    };
                    continue;
                }
                Esc::OneMore => {
                    esc = Esc::None;
                    continue;
                }
                Esc::Csi => {
                    if ('@'..='~').contains(&ch) {
                        esc = Esc::None;
                    }
                    continue;
                }
                Esc::Osc => {
                    if ch == '\u{7}' || ch == '\u{9c}' {
                        esc = Esc::None;
                    } else if ch == '\u{1b}' {
                        esc = Esc::OneMore;
                    }
                    continue;
                }
                Esc::None => {}
            }
            match ch {
                '\u{1b}' => esc = Esc::Start,
                '\n' => flush(&mut out, &mut cur, &mut col, &mut cur_t),
                '\r' => col = 0,
                '\u{8}' => col = col.saturating_sub(1),
                c if c.is_control() => {}
                c => {
                    cur_t.get_or_insert(e.t_ms);
                    if col < cur.len() {
                        cur[col] = c;
                    } else if cur.len() < MAX_LINE {
                        cur.push(c);
                    }
                    col += 1;
                }
            }
        }
    }
    flush(&mut out, &mut cur, &mut col, &mut cur_t);
    for (t_ms, text) in crate::export::typed_commands(events) {
        out.push(Line {
            t_ms,
            text,
            typed: true,
        });
    }
    out.sort_by_key(|l| l.t_ms);
    out
}

#[derive(Clone, Copy)]
enum Esc {
    None,
    Start,
    OneMore,
    Csi,
    Osc,
}

/// The keyed hash of one word.
pub fn term_hash(key: &[u8; 32], word: &str) -> [u8; 32] {
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(word.as_bytes());
    mac.finalize().into_bytes().into()
}

fn probes(h: &[u8; 32]) -> [usize; PROBES] {
    let mut p = [0usize; PROBES];
    for (i, slot) in p.iter_mut().enumerate() {
        let b = &h[i * 4..i * 4 + 4];
        *slot = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize % BLOOM_BITS;
    }
    p
}

/// A Bloom filter of keyed word hashes.
pub struct Bloom(pub Vec<u8>);

impl Bloom {
    pub fn build(key: &[u8; 32], lines: &[Line]) -> Bloom {
        let mut bits = vec![0u8; BLOOM_BITS / 8];
        let mut all: Vec<String> = lines.iter().flat_map(|l| words(&l.text)).collect();
        all.sort();
        all.dedup();
        for w in all {
            for p in probes(&term_hash(key, &w)) {
                bits[p / 8] |= 1 << (p % 8);
            }
        }
        Bloom(bits)
    }

    /// True when every hash may be in the recording (no false negatives).
    pub fn may_contain_all(&self, hashes: &[[u8; 32]]) -> bool {
        self.0.len() == BLOOM_BITS / 8
            && hashes.iter().all(|h| {
                probes(h)
                    .iter()
                    .all(|&p| self.0[p / 8] & (1 << (p % 8)) != 0)
            })
    }
}

/// The lines of a candidate recording that match the query: all its words, case-insensitive;
/// lines with the whole query as a phrase first.
pub fn matching<'a>(lines: &'a [Line], query: &str) -> Vec<&'a Line> {
    let q = query.trim().to_lowercase();
    let q_words = words(&q);
    let mut phrase = Vec::new();
    let mut all_words = Vec::new();
    for l in lines {
        let text = l.text.to_lowercase();
        if text.contains(&q) {
            phrase.push(l);
        } else if !q_words.is_empty() && q_words.iter().all(|w| text.contains(w.as_str())) {
            all_words.push(l);
        }
    }
    phrase.extend(all_words);
    phrase
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(t: u64, s: &str) -> Timed {
        Timed {
            t_ms: t,
            event: RecordedEvent::Output(s.as_bytes().to_vec()),
        }
    }

    #[test]
    fn lines_are_cleaned_of_escapes_and_overwrites() {
        let events = vec![
            out(0, "\x1b[01;32muser@h\x1b[00m:~$ "),
            Timed {
                t_ms: 100,
                event: RecordedEvent::Input {
                    by: "a".into(),
                    data: b"cat /etc/hosts\r".to_vec(),
                },
            },
            out(150, "cat /etc/hosts\r\n127.0.0.1 localhost\r\n"),
            out(
                900,
                "progress 10%\rprogress 100%\r\n\x1b]0;title\x07done\r\n",
            ),
        ];
        let l = lines(&events);
        let texts: Vec<(&str, bool)> = l.iter().map(|l| (l.text.as_str(), l.typed)).collect();
        assert!(
            texts.contains(&("user@h:~$ cat /etc/hosts", false)),
            "{texts:?}"
        );
        assert!(texts.contains(&("127.0.0.1 localhost", false)));
        assert!(texts.contains(&("progress 100%", false)));
        assert!(texts.contains(&("done", false)));
        assert!(texts.contains(&("cat /etc/hosts", true)));
        assert_eq!(
            l.iter()
                .find(|l| l.text == "127.0.0.1 localhost")
                .map(|l| l.t_ms),
            Some(150)
        );
    }

    #[test]
    fn the_filter_finds_every_word_and_rarely_a_missing_one() {
        let key = [3u8; 32];
        let lines: Vec<Line> = (0..3000)
            .map(|i| Line {
                t_ms: i,
                text: format!("word{i} common-{} /var/log/app{}.log", i % 7, i % 50),
                typed: false,
            })
            .collect();
        let bloom = Bloom::build(&key, &lines);
        for i in (0..3000).step_by(97) {
            assert!(bloom.may_contain_all(&[term_hash(&key, &format!("word{i}"))]));
        }
        assert!(bloom.may_contain_all(&[
            term_hash(&key, "/var/log/app7.log"),
            term_hash(&key, "common-3")
        ]));
        let false_hits = (0..2000)
            .filter(|i| bloom.may_contain_all(&[term_hash(&key, &format!("absent{i}"))]))
            .count();
        assert!(false_hits < 10, "{false_hits} false positives in 2000");
        // Another key: the same words do not match (the filter is useless without the key).
        let other = Bloom::build(&[4u8; 32], &lines);
        let hits = (0..100)
            .filter(|i| other.may_contain_all(&[term_hash(&key, &format!("word{i}"))]))
            .count();
        assert!(hits < 5);
        let m = matching(&lines, "WORD17 common-3");
        assert_eq!(m.first().map(|l| l.t_ms), Some(17));
    }
}
