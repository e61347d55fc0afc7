//! Writers: merged JSON lines and ShiViz.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::model::{Event, Log};
use crate::read::SHIVIZ_DEFAULT_REGEX;

impl Log {
    fn clock_json(&self, e: &Event) -> String {
        let mut out = String::new();
        self.push_clock(&mut out, e);
        out
    }

    /// Writes a clock as a JSON object with keys sorted by host name (host ids are in name
    /// order).
    fn push_clock(&self, out: &mut String, e: &Event) {
        out.push('{');
        for (k, &(h, v)) in e.clock.iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            push_str_json(out, self.host_name(h));
            out.push(':');
            push_u64(out, v);
        }
        out.push('}');
    }

    /// The events as actix-coord JSON lines, in [`Log::order`]. Lamport times missing from the
    /// input are computed; clock keys are sorted.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::with_capacity(self.events().len() * 200);
        for &i in self.order() {
            let e = &self.events()[i];
            out.push_str("{\"host\":");
            push_str_json(&mut out, self.host_name(e.host));
            if let Some(p) = &e.process {
                out.push_str(",\"process\":");
                push_str_json(&mut out, p);
            }
            out.push_str(",\"kind\":");
            push_str_json(&mut out, &e.kind);
            out.push_str(",\"event\":");
            push_str_json(&mut out, &e.text);
            out.push_str(",\"clock\":");
            self.push_clock(&mut out, e);
            out.push_str(",\"lamport\":");
            push_u64(&mut out, self.lamport(i));
            if let Some(h) = e.hlc {
                out.push_str(",\"hlc\":");
                push_u64(&mut out, h);
            }
            if let Some(x) = &e.msg {
                out.push_str(",\"msg\":");
                push_str_json(&mut out, x);
            }
            if let Some(x) = &e.peer {
                out.push_str(",\"peer\":");
                push_str_json(&mut out, x);
            }
            if !e.fields.is_empty() {
                out.push_str(",\"fields\":");
                push_map_sorted(&mut out, &e.fields);
            }
            out.push_str("}\n");
        }
        out
    }

    /// The events as a ShiViz log with the default regex, in [`Log::order`].
    pub fn to_shiviz(&self) -> String {
        let mut out = String::with_capacity(self.events().len() * 100);
        out.push_str(SHIVIZ_DEFAULT_REGEX);
        out.push_str("\n\n");
        for &i in self.order() {
            let e = &self.events()[i];
            let text = e.text.replace(['\n', '\r'], " ");
            let _ = writeln!(
                out,
                "{text}\n{} {}",
                self.host_name(e.host),
                self.clock_json(e)
            );
        }
        out
    }
}

pub(crate) fn push_str_json(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(s).expect("a string serialises"));
    }
}

/// Writes a JSON value with object keys sorted, whatever serde_json's map order.
pub(crate) fn push_value_sorted(out: &mut String, v: &Value) {
    match v {
        Value::Object(m) => push_map_sorted(out, m),
        Value::Array(a) => {
            out.push('[');
            for (k, x) in a.iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                push_value_sorted(out, x);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn push_map_sorted(out: &mut String, m: &Map<String, Value>) {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    out.push('{');
    for (k, key) in keys.into_iter().enumerate() {
        if k > 0 {
            out.push(',');
        }
        push_str_json(out, key);
        out.push(':');
        push_value_sorted(out, &m[key]);
    }
    out.push('}');
}

fn push_u64(out: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&buf[i..]).expect("digits"));
}
