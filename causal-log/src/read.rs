//! Readers: actix-coord JSON lines, ShiViz (regex header) and GoVector (two-line) logs.

use std::borrow::Cow;
use std::sync::Arc;

use regex::Regex;
use serde::Deserialize;
use serde::de::{self, Visitor};
use serde_json::{Map, Value};

use crate::check::{Finding, Rule, Severity};
use crate::model::{Event, HostId, LOCAL, LogBuilder, Source};

/// ShiViz's default parsing regex, which actix-coord's trace layer writes.
pub const SHIVIZ_DEFAULT_REGEX: &str = r"(?<event>.*)\n(?<host>\S*) (?<clock>{.*})";
/// The regex of GoVector's logs: the host and clock line, then the event line.
pub const GOVECTOR_REGEX: &str = r"(?<host>\S*) (?<clock>{.*})\n(?<event>.*)";

/// The format of one input file, recognised from its first non-empty line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// actix-coord's JSON lines: the first line is a JSON object.
    JsonLines,
    /// ShiViz: the first line is the parsing regex (with named groups), the second the
    /// executions delimiter.
    ShiViz,
    /// GoVector: `<host> {clock}` lines each followed by the event's text.
    GoVector,
}

/// Why a log could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error("{file}: cannot read: {reason}")]
    Io {
        /// The file, as given.
        file: String,
        /// The operating system's message.
        reason: String,
    },
    /// A line is malformed: bad JSON, a missing key, a clock that is not an object of counters,
    /// text that is not UTF-8.
    #[error("{file}:{line}: {reason}")]
    Syntax {
        /// The file, as given.
        file: String,
        /// The 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The first line is neither a JSON object, a ShiViz regex header nor a GoVector line.
    #[error(
        "{file}:{line}: unknown log format (expected JSON lines, a ShiViz regex header or a GoVector `host {{clock}}` line)"
    )]
    UnknownFormat {
        /// The file, as given.
        file: String,
        /// The 1-based line that was examined.
        line: usize,
    },
    /// The ShiViz header's regex does not compile or lacks the `host` or `clock` group.
    #[error("{file}:1: bad ShiViz regex: {reason}")]
    Regex {
        /// The file, as given.
        file: String,
        /// What is wrong.
        reason: String,
    },
}

/// Checks that `bytes` are UTF-8, naming the first bad line otherwise.
///
/// A character cut at the very end of the file (a torn last line) is left out: the line it
/// ends is then reported as torn by the parser.
pub(crate) fn utf8<'a>(file: &str, bytes: &'a [u8]) -> Result<&'a str, ReadError> {
    std::str::from_utf8(bytes).or_else(|e| {
        let at = e.valid_up_to();
        if e.error_len().is_none() {
            // Only an incomplete sequence at the end: the valid prefix is all of the rest.
            if let Ok(t) = std::str::from_utf8(&bytes[..at]) {
                return Ok(t);
            }
        }
        Err(ReadError::Syntax {
            file: file.to_owned(),
            line: 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count(),
            reason: "not valid UTF-8".into(),
        })
    })
}

/// Recognises the format of a file from its first non-empty line.
pub fn detect(text: &str) -> Option<(Format, usize)> {
    let (n, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| !l.trim().is_empty())?;
    let l = line.trim_end_matches('\r');
    let t = l.trim_start();
    let f = if t.starts_with('{') {
        Format::JsonLines
    } else if l.contains("(?<") || l.contains("(?P<") {
        Format::ShiViz
    } else if is_govector_line(l) {
        Format::GoVector
    } else {
        return None;
    };
    Some((f, n + 1))
}

fn is_govector_line(l: &str) -> bool {
    match l.split_once(' ') {
        Some((host, rest)) => {
            !host.is_empty()
                && !host.chars().any(char::is_whitespace)
                && rest.starts_with('{')
                && rest.trim_end().ends_with('}')
        }
        None => false,
    }
}

pub(crate) fn parse_into(b: &mut LogBuilder, file: &str, text: &str) -> Result<(), ReadError> {
    let file_arc: Arc<str> = Arc::from(file);
    match detect(text) {
        None if text.trim().is_empty() => Ok(()),
        None => Err(ReadError::UnknownFormat {
            file: file.into(),
            line: 1 + text.lines().take_while(|l| l.trim().is_empty()).count(),
        }),
        Some((Format::JsonLines, _)) => parse_jsonl(b, &file_arc, text),
        Some((Format::ShiViz, first)) => {
            let mut lines = text.split_inclusive('\n');
            // Skip blank lines before the header, then the header and the delimiter line.
            let mut offset = 0;
            for _ in 0..first - 1 {
                offset += lines.next().map_or(0, str::len);
            }
            let header = lines.next().unwrap_or("");
            offset += header.len();
            let delim = lines.next().unwrap_or("");
            offset += delim.len();
            let re = header.trim_end_matches(['\n', '\r']);
            let delim = delim.trim();
            if !delim.is_empty() {
                b.notes.push(Finding {
                    severity: Severity::Warning,
                    rule: Rule::Input,
                    message: format!(
                        "{file}:{}: executions delimiter `{delim}` ignored: the file is read as one execution",
                        first + 1
                    ),
                });
            }
            parse_regex(b, &file_arc, text, offset, first + 2, re)
        }
        Some((Format::GoVector, _)) => parse_regex(b, &file_arc, text, 0, 1, GOVECTOR_REGEX),
    }
}

/// A string borrowed from the input when it has no escapes.
struct Str<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// A clock object, entries kept in input order.
struct RawClock<'a>(Vec<(Cow<'a, str>, u64)>);

impl<'de: 'a, 'a> Deserialize<'de> for RawClock<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawClock<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a clock: an object of host names to non-negative integers")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::with_capacity(m.size_hint().unwrap_or(8));
                while let Some((k, n)) = m.next_entry::<Str<'a>, u64>()? {
                    v.push((k.0, n));
                }
                Ok(RawClock(v))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    host: Str<'a>,
    #[serde(default)]
    process: Option<String>,
    #[serde(default, borrow)]
    kind: Option<Str<'a>>,
    #[serde(default)]
    event: Option<String>,
    #[serde(borrow)]
    clock: RawClock<'a>,
    #[serde(default)]
    lamport: Option<u64>,
    #[serde(default)]
    hlc: Option<u64>,
    #[serde(default)]
    msg: Option<String>,
    #[serde(default)]
    peer: Option<String>,
    #[serde(default)]
    fields: Option<Map<String, Value>>,
}

fn syntax(file: &str, line: usize, reason: impl Into<String>) -> ReadError {
    ReadError::Syntax {
        file: file.into(),
        line,
        reason: reason.into(),
    }
}

fn json_reason(e: &serde_json::Error) -> String {
    let s = e.to_string();
    let msg = match s.rfind(" at line ") {
        Some(k) => &s[..k],
        None => &s,
    };
    format!("{msg} (column {})", e.column())
}

/// The warning for a torn last line: what a writer killed mid-line (`kill -9`, a crash, a full
/// disk) leaves at the end of its file.
pub(crate) fn torn_note(file: &str, line: usize, what: &str) -> Finding {
    Finding {
        severity: Severity::Warning,
        rule: Rule::Input,
        message: format!(
            "{file}:{line}: torn last line skipped ({what}; the file ends mid-line, as a writer killed while writing leaves it)"
        ),
    }
}

/// Parses JSON lines; a large file is cut at line ends and parsed on all cores.
///
/// A last line that has no line end and is cut short (JSON that ends early) is a torn write:
/// it is skipped with a warning instead of failing the whole file.
fn parse_jsonl(b: &mut LogBuilder, file: &Arc<str>, text: &str) -> Result<(), ReadError> {
    let start = text.rfind('\n').map_or(0, |p| p + 1);
    let last = text[start..].trim();
    let text = if !last.is_empty() {
        match serde_json::from_str::<Line>(last) {
            Err(e) if e.is_eof() => {
                let line = 1 + text.as_bytes()[..start]
                    .iter()
                    .filter(|&&c| c == b'\n')
                    .count();
                b.notes.push(torn_note(file, line, &json_reason(&e)));
                &text[..start]
            }
            _ => text,
        }
    } else {
        text
    };
    let threads = if text.len() < 1 << 22 {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
    };
    // Most lines are 100 to 300 bytes: reserve for the common case.
    b.events.reserve(text.len() / 200 + 1);
    if threads == 1 {
        return parse_jsonl_lines(b, file, text, 1).map(|_| ());
    }
    let mut chunks = Vec::with_capacity(threads);
    let mut start = 0usize;
    for k in 1..=threads {
        let end = if k == threads {
            text.len()
        } else {
            let target = (text.len() * k / threads).max(start);
            text[target..]
                .find('\n')
                .map_or(text.len(), |p| target + p + 1)
        };
        chunks.push((start, end));
        start = end;
    }
    // Each chunk numbers its lines from 1; the offsets are added once all are parsed.
    let results: Vec<Result<(LogBuilder, usize), ReadError>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|&(a, z)| {
                let mut part = LogBuilder {
                    hosts: b.hosts.clone(),
                    index: b.index.clone(),
                    ..LogBuilder::default()
                };
                part.events.reserve((z - a) / 200 + 1);
                s.spawn(move || {
                    parse_jsonl_lines(&mut part, file, &text[a..z], 1).map(|n| (part, n))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("the parser does not panic"))
            .collect()
    });
    let mut offset = 0usize;
    for part in results {
        let (mut part, lines) = match part {
            Ok(p) => p,
            Err(ReadError::Syntax { file, line, reason }) => {
                return Err(ReadError::Syntax {
                    file,
                    line: line + offset,
                    reason,
                });
            }
            Err(e) => return Err(e),
        };
        let map: Vec<HostId> = part.hosts.iter().map(|n| b.host(n)).collect();
        let remap = map.iter().enumerate().any(|(i, h)| h.0 as usize != i);
        for e in &mut part.events {
            e.source.line += offset;
            if remap {
                e.host = map[e.host.0 as usize];
                for c in &mut e.clock {
                    c.0 = map[c.0.0 as usize];
                }
                e.clock.sort_unstable();
            }
        }
        b.events.append(&mut part.events);
        offset += lines;
    }
    Ok(())
}

/// Parses lines numbered from `first_line`; returns how many lines the text has.
fn parse_jsonl_lines(
    b: &mut LogBuilder,
    file: &Arc<str>,
    text: &str,
    first_line: usize,
) -> Result<usize, ReadError> {
    let mut count = 0;
    for (n, raw) in text.lines().enumerate() {
        count = n + 1;
        let line_no = n + first_line;
        let l = raw.trim();
        if l.is_empty() {
            continue;
        }
        let line: Line =
            serde_json::from_str(l).map_err(|e| syntax(file, line_no, json_reason(&e)))?;
        let host_name = line.host.0;
        if host_name.is_empty() || host_name.chars().any(char::is_whitespace) {
            return Err(syntax(
                file,
                line_no,
                "`host` is empty or contains whitespace",
            ));
        }
        let host = b.host(&host_name);
        let mut clock = Vec::with_capacity(line.clock.0.len());
        for (h, v) in line.clock.0 {
            if h.is_empty() {
                return Err(syntax(file, line_no, "clock entry with an empty host name"));
            }
            if v > 0 {
                clock.push((b.host(&h), v));
            }
        }
        clock.sort_unstable();
        b.events.push(Event {
            host,
            process: line.process,
            kind: line.kind.map_or_else(|| LOCAL.into(), |k| k.0.into_owned()),
            text: line.event.unwrap_or_default(),
            clock,
            lamport: line.lamport,
            hlc: line.hlc,
            msg: line.msg,
            peer: line.peer,
            fields: line.fields.unwrap_or_default(),
            source: Source {
                file: file.clone(),
                line: line_no,
            },
            rich: true,
        });
    }
    Ok(count)
}

fn clock_from(
    b: &mut LogBuilder,
    file: &str,
    line: usize,
    entries: impl Iterator<Item = (String, Value)>,
) -> Result<Vec<(HostId, u64)>, ReadError> {
    let mut clock = Vec::new();
    for (h, v) in entries {
        let Some(v) = v.as_u64() else {
            return Err(syntax(
                file,
                line,
                format!("clock entry `{h}` is not a non-negative integer: {v}"),
            ));
        };
        if h.is_empty() {
            return Err(syntax(file, line, "clock entry with an empty host name"));
        }
        if v > 0 {
            clock.push((b.host(&h), v));
        }
    }
    clock.sort_unstable();
    Ok(clock)
}

/// Rewrites a ShiViz (JavaScript) regex for the `regex` crate: `(?<name>` becomes
/// `(?P<name>`, and braces that are not a counted repetition (`{.*}` in the default regex) are
/// escaped.
pub(crate) fn translate_regex(js: &str) -> String {
    let chars: Vec<char> = js.chars().collect();
    let mut out = String::with_capacity(js.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                out.push(c);
                if let Some(&d) = chars.get(i + 1) {
                    out.push(d);
                }
                i += 2;
                continue;
            }
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '(' if !in_class
                && chars.get(i + 1) == Some(&'?')
                && chars.get(i + 2) == Some(&'<')
                && chars
                    .get(i + 3)
                    .is_some_and(|c| c.is_ascii_alphabetic() || *c == '_') =>
            {
                out.push_str("(?P<");
                i += 3;
                continue;
            }
            '{' if !in_class => {
                // A counted repetition is `{n}`, `{n,}` or `{n,m}` after something repeatable.
                let rest: String = chars[i..].iter().take_while(|&&c| c != '}').collect();
                let body = &rest[1..];
                let closed = chars.len() > i + rest.chars().count();
                let counted = closed
                    && !body.is_empty()
                    && body.chars().all(|c| c.is_ascii_digit() || c == ',')
                    && body.chars().next().is_some_and(|c| c.is_ascii_digit())
                    && body.matches(',').count() <= 1
                    && i > 0
                    && !matches!(chars[i - 1], '(' | '|');
                if counted {
                    out.push_str(&rest);
                    out.push('}');
                    i += rest.chars().count() + 1;
                    continue;
                }
                out.push_str("\\{");
                i += 1;
                continue;
            }
            '}' if !in_class => {
                out.push_str("\\}");
                i += 1;
                continue;
            }
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    out
}

fn parse_regex(
    b: &mut LogBuilder,
    file: &Arc<str>,
    text: &str,
    offset: usize,
    first_line: usize,
    js: &str,
) -> Result<(), ReadError> {
    let rx = format!("(?m){}", translate_regex(js));
    let re = Regex::new(&rx).map_err(|e| ReadError::Regex {
        file: file.to_string(),
        reason: e
            .to_string()
            .lines()
            .last()
            .unwrap_or("")
            .trim()
            .to_string(),
    })?;
    let names: Vec<&str> = re.capture_names().flatten().collect();
    for need in ["host", "clock"] {
        if !names.contains(&need) {
            return Err(ReadError::Regex {
                file: file.to_string(),
                reason: format!("no named group `{need}`"),
            });
        }
    }
    let body = &text[offset..];
    // Line numbers: count newlines incrementally as matches advance.
    let mut line = first_line;
    let mut at = 0usize;
    let mut covered = 0usize;
    let mut skipped: Vec<usize> = Vec::new();
    let advance = |to: usize, line: &mut usize, at: &mut usize| {
        *line += body.as_bytes()[*at..to]
            .iter()
            .filter(|&&c| c == b'\n')
            .count();
        *at = to;
    };
    for caps in re.captures_iter(body) {
        let m = caps.get(0).expect("group 0");
        if m.as_str().is_empty() {
            continue;
        }
        // Text between matches that is not blank was skipped (as ShiViz does): note it.
        let gap = &body[covered..m.start()];
        if !gap.trim().is_empty() {
            let mut l = line;
            let mut a = at;
            advance(covered, &mut l, &mut a);
            let lead = gap.len() - gap.trim_start().len();
            advance(covered + lead, &mut l, &mut a);
            skipped.push(l);
        }
        covered = m.end();
        let clock_m = caps.name("clock").expect("checked");
        advance(clock_m.start(), &mut line, &mut at);
        let host_m = caps.name("host").expect("checked");
        let host = host_m.as_str();
        if host.is_empty() {
            return Err(syntax(file, line, "empty host name"));
        }
        let clock_json: Map<String, Value> = serde_json::from_str(clock_m.as_str())
            .map_err(|e| syntax(file, line, format!("clock: {}", json_reason(&e))))?;
        let h = b.host(host);
        let clock = clock_from(b, file, line, clock_json.into_iter())?;
        let text = caps
            .name("event")
            .map_or("", |m| m.as_str())
            .trim_end_matches('\r');
        b.events.push(Event {
            host: h,
            process: None,
            kind: LOCAL.into(),
            text: text.to_owned(),
            clock,
            lamport: None,
            hlc: None,
            msg: None,
            peer: None,
            fields: Map::new(),
            source: Source {
                file: file.clone(),
                line,
            },
            rich: false,
        });
    }
    let tail = &body[covered..];
    let mut torn = None;
    if !tail.trim().is_empty() {
        let lead = tail.len() - tail.trim_start().len();
        let mut l = line;
        let mut a = at;
        advance(covered + lead, &mut l, &mut a);
        if body.ends_with('\n') {
            skipped.push(l);
        } else {
            // The file ends mid-line: the last event was cut off by a writer that died.
            torn = Some(l);
        }
    }
    if let Some(l) = torn {
        b.notes.push(torn_note(
            file,
            l,
            "an event without its complete clock line",
        ));
    }
    for l in skipped {
        b.notes.push(Finding {
            severity: Severity::Warning,
            rule: Rule::Input,
            message: format!("{file}:{l}: text not matched by the log's regex was skipped"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_regex_translates_and_compiles() {
        let t = translate_regex(SHIVIZ_DEFAULT_REGEX);
        assert_eq!(t, r"(?P<event>.*)\n(?P<host>\S*) (?P<clock>\{.*\})");
        Regex::new(&t).unwrap();
        assert_eq!(translate_regex(r"a{2,3}[{]"), r"a{2,3}[{]");
    }

    #[test]
    fn detects_formats() {
        assert_eq!(detect("{\"host\":1}\n").unwrap().0, Format::JsonLines);
        assert_eq!(detect(SHIVIZ_DEFAULT_REGEX).unwrap().0, Format::ShiViz);
        assert_eq!(
            detect("\nclient {\"client\":1}\n").unwrap(),
            (Format::GoVector, 2)
        );
        assert_eq!(detect("hello world"), None);
    }

    fn warnings(log: &crate::Log) -> Vec<String> {
        log.check()
            .warnings()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    }

    #[test]
    fn torn_last_json_line_is_skipped_with_a_warning() {
        let whole = "{\"host\":\"a\",\"clock\":{\"a\":1}}\n";
        let log =
            crate::Log::parse_str("f.jsonl", &format!("{whole}{{\"host\":\"a\",\"clo")).unwrap();
        assert_eq!(log.events().len(), 1);
        let w = warnings(&log);
        assert!(
            w[0].starts_with("warning[input]: f.jsonl:2: torn last line skipped"),
            "{w:?}"
        );
        // A broken line that is not the last, or that ends in a line end, is still an error.
        let err = crate::Log::parse_str("f.jsonl", &format!("{{\"host\":\"a\",\"clo\n{whole}"))
            .unwrap_err();
        assert!(matches!(err, ReadError::Syntax { line: 1, .. }), "{err}");
        let err = crate::Log::parse_str("f.jsonl", &format!("{whole}{{\"host\":\"a\",\"clo\n"))
            .unwrap_err();
        assert!(matches!(err, ReadError::Syntax { line: 2, .. }), "{err}");
        // Complete JSON without a final line end is a complete event.
        let log = crate::Log::parse_str("f.jsonl", whole.trim_end()).unwrap();
        assert_eq!((log.events().len(), warnings(&log).len()), (1, 0));
    }

    #[test]
    fn torn_shiviz_tail_and_cut_character_are_warnings() {
        let head = "(?<event>.*)\\n(?<host>\\S*) (?<clock>{.*})\n\nstart\na {\"a\":1}\n";
        let log = crate::Log::parse_str("f.log", &format!("{head}next\na {{\"a\":2,\"b")).unwrap();
        assert_eq!(log.events().len(), 1);
        let w = warnings(&log);
        assert!(
            w[0].starts_with("warning[input]: f.log:5: torn last line skipped"),
            "{w:?}"
        );
        // A multi-byte character cut at the end of the file.
        let dir = std::env::temp_dir().join(format!("causal-log-torn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("cut.jsonl");
        let mut bytes =
            b"{\"host\":\"a\",\"clock\":{\"a\":1}}\n{\"host\":\"a\",\"event\":\"".to_vec();
        bytes.extend_from_slice(&"→".as_bytes()[..2]);
        std::fs::write(&p, &bytes).unwrap();
        let log = crate::Log::read_paths(&[&p]).unwrap();
        assert_eq!(log.events().len(), 1);
        assert!(warnings(&log)[0].contains("cut.jsonl:2: torn last line skipped"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_clock_names_line() {
        let text = "(?<event>.*)\\n(?<host>\\S*) (?<clock>{.*})\n\nstart\na {\"a\":1}\nnext\na {\"a\":x}\n";
        let err = crate::Log::parse_str("f.log", text).unwrap_err();
        assert!(matches!(err, ReadError::Syntax { line: 6, .. }), "{err}");
    }
}
