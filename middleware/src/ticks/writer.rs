//! The writer thread: formats records as JSON lines and ShiViz, off the actors' threads.

use super::TickRecord;
use crate::clock::ProcessId;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::io::{self, BufWriter, Write};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};

/// The ShiViz header: the parsing regex, then the (empty) execution delimiter.
pub(crate) const SHIVIZ_HEADER: &str = "(?<event>.*)\\n(?<host>\\S*) (?<clock>{.*})\n\n";

pub(crate) enum Msg {
    Record(Box<TickRecord>),
    Name(ProcessId, Arc<str>),
    Flush(Sender<()>),
    Shutdown,
}

pub(crate) struct Writer {
    jsonl: Option<BufWriter<Box<dyn Write + Send>>>,
    shiviz: Option<BufWriter<Box<dyn Write + Send>>>,
    names: HashMap<ProcessId, Arc<str>>,
}

impl Writer {
    pub(crate) fn new(
        jsonl: Option<Box<dyn Write + Send>>,
        shiviz: Option<Box<dyn Write + Send>>,
    ) -> io::Result<Self> {
        let mut shiviz = shiviz.map(BufWriter::new);
        if let Some(w) = shiviz.as_mut() {
            w.write_all(SHIVIZ_HEADER.as_bytes())?;
        }
        Ok(Self {
            jsonl: jsonl.map(BufWriter::new),
            shiviz,
            names: HashMap::new(),
        })
    }

    pub(crate) fn run(mut self, rx: Receiver<Msg>) -> io::Result<()> {
        let mut first_error: Option<io::Error> = None;
        while let Ok(msg) = rx.recv() {
            let r = match msg {
                Msg::Record(r) => self.write(&r),
                Msg::Name(p, n) => {
                    self.names.insert(p, n);
                    Ok(())
                }
                Msg::Flush(done) => {
                    let r = self.flush();
                    let _ = done.send(());
                    r
                }
                Msg::Shutdown => break,
            };
            if let Err(e) = r {
                first_error.get_or_insert(e);
            }
        }
        let r = self.flush();
        match first_error {
            Some(e) => Err(e),
            None => r,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(w) = self.jsonl.as_mut() {
            w.flush()?;
        }
        if let Some(w) = self.shiviz.as_mut() {
            w.flush()?;
        }
        Ok(())
    }

    fn name(&self, p: ProcessId) -> String {
        match self.names.get(&p) {
            Some(n) => n.to_string(),
            None => format!("p{p}"),
        }
    }

    fn write(&mut self, r: &TickRecord) -> io::Result<()> {
        self.names
            .entry(r.process)
            .or_insert_with(|| r.host.clone());
        let mut clock = Map::new();
        if r.vector.is_empty() {
            clock.insert(r.host.to_string(), r.event_number.into());
        } else {
            for (p, c) in r.vector.iter() {
                clock.insert(self.name(p), c.into());
            }
        }
        let peer = r.peer.map(|p| self.name(p));
        let msg = r
            .msg
            .map(|(from, seq)| format!("{}:{seq}", self.name(from)));
        let mut text = r.event.replace(['\n', '\r'], " ");
        if let Some(peer) = &peer {
            text.push_str(" from ");
            text.push_str(peer);
        }
        if let Some(w) = self.jsonl.as_mut() {
            let mut o = Map::new();
            o.insert("host".into(), r.host.to_string().into());
            o.insert("process".into(), r.process.to_string().into());
            o.insert("kind".into(), r.kind.as_str().into());
            o.insert("event".into(), text.clone().into());
            o.insert("clock".into(), Value::Object(clock.clone()));
            o.insert("lamport".into(), r.lamport.into());
            o.insert("hlc".into(), r.hlc.as_u64().into());
            if let Some(msg) = msg {
                o.insert("msg".into(), msg.into());
            }
            if let Some(peer) = peer {
                o.insert("peer".into(), peer.into());
            }
            let fields: Map<String, Value> = r
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect();
            o.insert("fields".into(), Value::Object(fields));
            serde_json::to_writer(&mut *w, &Value::Object(o))?;
            w.write_all(b"\n")?;
        }
        if let Some(w) = self.shiviz.as_mut() {
            writeln!(w, "{text}")?;
            writeln!(w, "{} {}", r.host, Value::Object(clock))?;
        }
        Ok(())
    }
}
