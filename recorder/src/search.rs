//! Why: auditors search every recording for text that appeared on screen or was typed, but
//! session content must not sit in clear at rest for the sake of an index. Each recording gets
//! (1) a Bloom filter of keyed hashes (HMAC-SHA256 under the server's search key) of the words
//! it contains, which says nothing without the key, and (2) its text lines with their times,
//! which the server stores encrypted. A query hashes its words, keeps the recordings whose
//! filter has them all, and only then decrypts those recordings' lines to find the hits.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::event::{RecordedEvent, Timed};
use crate::export::TypedCommands;

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
    let (mut output, mut typed) = (OutputLines::default(), TypedCommands::default());
    let (mut out, mut commands) = (Vec::new(), Vec::new());
    for e in events {
        output.feed(e, &mut out);
        typed.feed(e, &mut commands);
    }
    output.finish(&mut out);
    out.extend(commands.into_iter().map(|(t_ms, text)| Line {
        t_ms,
        text,
        typed: true,
    }));
    out.sort_by_key(|l| l.t_ms);
    out
}

/// Screen output split into lines, one event at a time: it holds only the line being drawn.
#[derive(Default)]
pub struct OutputLines {
    cur: Vec<char>,
    col: usize,
    cur_t: Option<u64>,
    esc: Esc,
}

impl OutputLines {
    /// Appends to `out` the lines that `e` completes.
    pub fn feed(&mut self, e: &Timed, out: &mut Vec<Line>) {
        let RecordedEvent::Output(b) = &e.event else {
            return;
        };
        for ch in String::from_utf8_lossy(b).chars() {
            match self.esc {
                Esc::Start => {
                    self.esc = match ch {
                        '[' => Esc::Csi,
                        ']' => Esc::Osc,
                        '(' | ')' | '#' => Esc::OneMore,
                        _ => Esc::None,
                    };
                    continue;
                }
                Esc::OneMore => {
                    self.esc = Esc::None;
                    continue;
                }
                Esc::Csi => {
                    if ('@'..='~').contains(&ch) {
                        self.esc = Esc::None;
                    }
                    continue;
                }
                Esc::Osc => {
                    if ch == '\u{7}' || ch == '\u{9c}' {
                        self.esc = Esc::None;
                    } else if ch == '\u{1b}' {
                        self.esc = Esc::OneMore;
                    }
                    continue;
                }
                Esc::None => {}
            }
            match ch {
                '\u{1b}' => self.esc = Esc::Start,
                '\n' => self.finish(out),
                '\r' => self.col = 0,
                '\u{8}' => self.col = self.col.saturating_sub(1),
                c if c.is_control() => {}
                c => {
                    self.cur_t.get_or_insert(e.t_ms);
                    if self.col < self.cur.len() {
                        self.cur[self.col] = c;
                    } else if self.cur.len() < MAX_LINE {
                        self.cur.push(c);
                    }
                    self.col += 1;
                }
            }
        }
    }

    /// Ends the line being drawn (at a newline, or at the end of the recording).
    pub fn finish(&mut self, out: &mut Vec<Line>) {
        let text: String = self.cur.iter().collect::<String>().trim_end().to_string();
        if !text.trim().is_empty() {
            out.push(Line {
                t_ms: self.cur_t.unwrap_or(0),
                text,
                typed: false,
            });
        }
        self.cur.clear();
        self.col = 0;
        self.cur_t = None;
    }
}

/// The lines of one segment are sealed and stored together once their text reaches this size:
/// indexing a recording of any length holds one segment, and a search opens one at a time.
pub const SEGMENT_TEXT: usize = 1024 * 1024;

/// Builds a recording's search index one event at a time: the Bloom filter of the whole
/// recording and its lines in segments of about [`SEGMENT_TEXT`], in time order within each.
/// Memory is one segment and its words, whatever the length of the recording.
pub struct Indexer<'k> {
    key: &'k [u8; 32],
    bits: Vec<u8>,
    output: OutputLines,
    typed: TypedCommands,
    commands: Vec<(u64, String)>,
    segment: Vec<Line>,
    segment_text: usize,
    /// Words already in the filter, for this segment only (hashing is the costly part).
    seen: std::collections::HashSet<String>,
    lines: u64,
}

impl<'k> Indexer<'k> {
    pub fn new(key: &'k [u8; 32]) -> Indexer<'k> {
        Indexer {
            key,
            bits: vec![0u8; BLOOM_BITS / 8],
            output: OutputLines::default(),
            typed: TypedCommands::default(),
            commands: Vec::new(),
            segment: Vec::new(),
            segment_text: 0,
            seen: Default::default(),
            lines: 0,
        }
    }

    /// Takes one event; returns a full segment when this event completes one.
    pub fn feed(&mut self, e: &Timed) -> Option<Vec<Line>> {
        let before = self.segment.len();
        self.output.feed(e, &mut self.segment);
        self.typed.feed(e, &mut self.commands);
        let typed = self.commands.drain(..).map(|(t_ms, text)| Line {
            t_ms,
            text,
            typed: true,
        });
        self.segment.extend(typed);
        self.add_words(before);
        (self.segment_text >= SEGMENT_TEXT).then(|| self.take_segment())
    }

    /// Ends the recording: the filter, the last segment (possibly empty) and the line count.
    pub fn finish(mut self) -> (Bloom, Vec<Line>, u64) {
        let before = self.segment.len();
        self.output.finish(&mut self.segment);
        self.add_words(before);
        let last = self.take_segment();
        (Bloom(self.bits), last, self.lines)
    }

    fn add_words(&mut self, from: usize) {
        for l in &self.segment[from..] {
            self.segment_text += l.text.len();
            self.lines += 1;
            for w in words(&l.text) {
                if !self.seen.contains(&w) {
                    for p in probes(&term_hash(self.key, &w)) {
                        self.bits[p / 8] |= 1 << (p % 8);
                    }
                    self.seen.insert(w);
                }
            }
        }
    }

    fn take_segment(&mut self) -> Vec<Line> {
        self.segment_text = 0;
        self.seen.clear();
        let mut segment = std::mem::take(&mut self.segment);
        segment.sort_by_key(|l| l.t_ms);
        segment
    }
}

#[derive(Clone, Copy, Default)]
enum Esc {
    #[default]
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
    let q = Query::new(query);
    let mut phrase = Vec::new();
    let mut all_words = Vec::new();
    for l in lines {
        match q.matches(l) {
            Some(Match::Phrase) => phrase.push(l),
            Some(Match::Words) => all_words.push(l),
            None => {}
        }
    }
    phrase.extend(all_words);
    phrase
}

/// A search query, lowered once for matching many lines.
pub struct Query {
    phrase: String,
    words: Vec<String>,
}

/// How a line matches a [`Query`]: the whole query as a phrase (ranked first), or all its
/// words somewhere in the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Match {
    Phrase,
    Words,
}

impl Query {
    pub fn new(query: &str) -> Query {
        let phrase = query.trim().to_lowercase();
        let words = words(&phrase);
        Query { phrase, words }
    }

    pub fn matches(&self, line: &Line) -> Option<Match> {
        let text = line.text.to_lowercase();
        if text.contains(&self.phrase) {
            Some(Match::Phrase)
        } else if !self.words.is_empty() && self.words.iter().all(|w| text.contains(w.as_str())) {
            Some(Match::Words)
        } else {
            None
        }
    }
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

    #[test]
    fn the_indexer_finds_what_the_whole_recording_reading_finds_in_bounded_segments() {
        // Output cut at arbitrary places (mid-line, mid-escape, mid-UTF-8) and typed commands
        // in between: segment by segment, the indexer yields exactly the lines and the filter
        // that reading the whole recording at once yields.
        let key = [9u8; 32];
        let mut text = String::new();
        for i in 0..120_000u32 {
            text.push_str(&format!(
                "\x1b[1mrow {i}\x1b[0m wört-{} progress 1%\rdone {i}\r\n",
                i % 13
            ));
        }
        let bytes = text.into_bytes();
        let mut events = Vec::new();
        let (mut at, mut t) = (0usize, 0u64);
        while at < bytes.len() {
            let n = (t as usize * 7919) % 5000 + 1;
            let end = (at + n).min(bytes.len());
            events.push(Timed {
                t_ms: t,
                event: RecordedEvent::Output(bytes[at..end].to_vec()),
            });
            if t % 50 == 0 {
                events.push(Timed {
                    t_ms: t,
                    event: RecordedEvent::Input {
                        by: "a".into(),
                        data: format!("typed-{t}\r").into_bytes(),
                    },
                });
            }
            at = end;
            t += 1;
        }
        let whole = lines(&events);
        let mut indexer = Indexer::new(&key);
        let mut segments = Vec::new();
        for e in &events {
            if let Some(s) = indexer.feed(e) {
                segments.push(s);
            }
        }
        let (bloom, last, count) = indexer.finish();
        segments.push(last);
        assert!(segments.len() >= 3, "{} segments", segments.len());
        for s in &segments[..segments.len() - 1] {
            let size: usize = s.iter().map(|l| l.text.len()).sum();
            assert!(
                (SEGMENT_TEXT..SEGMENT_TEXT + 64 * 1024).contains(&size),
                "{size}"
            );
            assert!(s.windows(2).all(|w| w[0].t_ms <= w[1].t_ms));
        }
        let mut streamed: Vec<Line> = segments.into_iter().flatten().collect();
        assert_eq!(count as usize, whole.len());
        let key_of = |l: &Line| (l.t_ms, l.typed, l.text.clone());
        streamed.sort_by_key(key_of);
        let mut expected = whole.clone();
        expected.sort_by_key(key_of);
        assert_eq!(streamed, expected);
        assert!(expected
            .iter()
            .any(|l| l.text.starts_with("done 119999") && l.text.ends_with("progress 1%")));
        assert_eq!(bloom.0, Bloom::build(&key, &whole).0);
    }
}
