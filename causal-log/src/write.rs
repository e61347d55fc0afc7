//! Writers: merged JSON lines and ShiViz.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::model::{Event, Log};
use crate::read::SHIVIZ_DEFAULT_REGEX;

impl Log {
    fn clock_json(&self, e: &Event) -> String {
        let m: BTreeMap<&str, u64> = e
            .clock
            .iter()
            .map(|&(h, v)| (self.host_name(h), v))
            .collect();
        serde_json::to_string(&m).expect("a map of strings to integers serialises")
    }

    /// The events as actix-coord JSON lines, in [`Log::order`]. Lamport times missing from the
    /// input are computed; clock keys are sorted.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
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
            out.push_str(&self.clock_json(e));
            let _ = write!(out, ",\"lamport\":{}", self.lamport(i));
            if let Some(h) = e.hlc {
                let _ = write!(out, ",\"hlc\":{h}");
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
                push_value_sorted(&mut out, &Value::Object(e.fields.clone()));
            }
            out.push_str("}\n");
        }
        out
    }

    /// The events as a ShiViz log with the default regex, in [`Log::order`].
    pub fn to_shiviz(&self) -> String {
        let mut out = String::new();
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
    out.push_str(&serde_json::to_string(s).expect("a string serialises"));
}

/// Writes a JSON value with object keys sorted, whatever serde_json's map order.
pub(crate) fn push_value_sorted(out: &mut String, v: &Value) {
    match v {
        Value::Object(m) => {
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
