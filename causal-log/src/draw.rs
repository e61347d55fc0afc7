//! Space-time diagrams: one lane per process, events as dots, arrows from sends to receives,
//! critical sections shaded, leader terms marked; long runs of local events collapsed.
//!
//! [`svg`] writes a standalone SVG; [`html`] a self-contained page (inline SVG and a small
//! script, no network) where clicking an event highlights its past, its future and the events
//! concurrent with it. Every event dot carries `data-id`, `data-host`, `data-k` and
//! `data-clock` (its vector clock as JSON), so a test can check the highlighting from the DOM.
//! Opening the page with `#select=host:k` selects that event; `#selftest=host:k` also writes
//! the outcome as JSON into `<pre id="selftest-result">`.
//!
//! ```
//! let log = causal_log::Log::parse_str("a.log", "a {\"a\":1}\nhello\n")?;
//! let page = causal_log::draw::html(&log, &causal_log::draw::DrawOptions::default());
//! assert!(page.contains("data-id=\"a:1\""));
//! # Ok::<(), causal_log::ReadError>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use crate::model::{Log, RECEIVE, SEND};
use actix_coord_proto::schema::{field, kind};

/// How to draw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrawOptions {
    /// Title shown above the diagram.
    pub title: String,
    /// Runs of at least this many consecutive local events on one host are drawn as one box
    /// (0: never collapse).
    pub collapse: usize,
}

impl Default for DrawOptions {
    /// Title "causal log", runs of 4 or more local events collapsed.
    fn default() -> Self {
        DrawOptions {
            title: "causal log".into(),
            collapse: 4,
        }
    }
}

const DX: usize = 18;
const LANE: usize = 46;
const LEFT: usize = 150;
const TOP: usize = 56;

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if (c as u32) < 0x20 && c != '\t' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// A displayed item: one event, or a collapsed run of local events (first..=last in the
/// host's sequence).
struct Item {
    host_row: usize,
    first: usize,
    last: usize,
    len: usize,
    col: usize,
}

struct Layout {
    items: Vec<Item>,
    item_of: Vec<usize>,
    rows: Vec<crate::HostId>,
    cols: usize,
}

fn notable(log: &Log, i: usize, has_receivers: &[bool]) -> bool {
    let e = &log.events()[i];
    !(e.kind == "local" || e.kind.is_empty())
        || e.kind == SEND
        || e.kind == RECEIVE
        || log.send_of(i).is_some()
        || has_receivers[i]
}

fn layout(log: &Log, opts: &DrawOptions) -> Layout {
    let n = log.events().len();
    let mut has_receivers = vec![false; n];
    for (s, _) in log.messages() {
        has_receivers[s] = true;
    }
    let rows = log.hosts_by_name();
    let mut items: Vec<Item> = Vec::new();
    let mut item_of = vec![usize::MAX; n];
    for (row, &h) in rows.iter().enumerate() {
        let seq = log.host_events(h);
        let mut k = 0;
        while k < seq.len() {
            let mut j = k;
            while j < seq.len() && !notable(log, seq[j], &has_receivers) {
                j += 1;
            }
            let run = j - k;
            if opts.collapse > 0 && run >= opts.collapse {
                for &i in &seq[k..j] {
                    item_of[i] = items.len();
                }
                items.push(Item {
                    host_row: row,
                    first: seq[k],
                    last: seq[j - 1],
                    len: run,
                    col: 0,
                });
                k = j;
            } else {
                let end = if run == 0 { k + 1 } else { j };
                for &i in &seq[k..end] {
                    item_of[i] = items.len();
                    items.push(Item {
                        host_row: row,
                        first: i,
                        last: i,
                        len: 1,
                        col: 0,
                    });
                }
                k = end;
            }
        }
    }
    // Columns: after the host's previous item and after the send of a receive.
    let mut done = vec![false; items.len()];
    let mut last_col: Vec<Option<usize>> = vec![None; rows.len()];
    let mut cols = 0;
    for &i in log.order() {
        let it = item_of[i];
        if done[it] {
            continue;
        }
        done[it] = true;
        let row = items[it].host_row;
        let mut col = last_col[row].map_or(0, |c| c + 1);
        if let Some(s) = log.send_of(i)
            && done[item_of[s]]
        {
            col = col.max(items[item_of[s]].col + 1);
        }
        items[it].col = col;
        last_col[row] = Some(col);
        cols = cols.max(col + 1);
    }
    Layout {
        items,
        item_of,
        rows,
        cols,
    }
}

fn lane_bg(row: usize) -> &'static str {
    // Even rows shaded (a bit test: fine for any rust-version the workspace declares).
    if row & 1 == 0 { "#f4f4f4" } else { "#ffffff" }
}

fn palette(k: usize) -> &'static str {
    const P: [&str; 6] = [
        "#e6550d", "#3182bd", "#31a354", "#756bb1", "#636363", "#d6616b",
    ];
    P[k % P.len()]
}

/// The diagram as a standalone SVG document.
pub fn svg(log: &Log, opts: &DrawOptions) -> String {
    let l = layout(log, opts);
    let evs = log.events();
    let width = LEFT + (l.cols + 2) * DX;
    let height = TOP + l.rows.len() * LANE + 20;
    let x = |it: &Item| LEFT + DX + it.col * DX;
    let y = |row: usize| TOP + row * LANE + LANE / 2;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="spacetime" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    o.push_str(concat!(
        "<style>",
        ".lane-line{stroke:#999;stroke-width:1}",
        ".msg{stroke:#555;stroke-width:1;fill:none;marker-end:url(#arrow)}",
        ".ev{stroke:#222;stroke-width:1;cursor:pointer}.key{stroke:#222;stroke-width:1}",
        ".send{fill:#3182bd}.receive{fill:#31a354}.local{fill:#bbb}",
        ".lock{fill:#e6550d}.leader{fill:#756bb1}",
        ".run{fill:#ddd;stroke:#888}.section{opacity:0.25}",
        ".term{stroke:#756bb1;stroke-dasharray:4 3}",
        "</style>\n"
    ));
    o.push_str(r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>"##);
    o.push('\n');
    let _ = writeln!(
        o,
        r#"<text x="8" y="20" font-weight="bold">{}</text>"#,
        esc(&opts.title)
    );
    // Legend, under the title.
    o.push_str(r#"<g class="legend" font-size="10">"#);
    for (k, (class, label)) in [
        ("send", "send"),
        ("receive", "receive"),
        ("lock", "lock"),
        ("leader", "leader"),
        ("local", "local"),
    ]
    .into_iter()
    .enumerate()
    {
        let lx = 8 + (k % 2) * 62;
        let ly = 30 + (k / 2) * 11;
        let _ = write!(
            o,
            r#"<circle class="key {class}" cx="{}" cy="{}" r="4"/><text x="{}" y="{}">{label}</text>"#,
            lx + 4,
            ly,
            lx + 11,
            ly + 3
        );
    }
    o.push_str("</g>\n");

    // Lanes with their shaded critical sections.
    let mut res_color: BTreeMap<String, usize> = BTreeMap::new();
    for (row, &h) in l.rows.iter().enumerate() {
        let name = log.host_name(h);
        let top = TOP + row * LANE;
        let _ = writeln!(
            o,
            r#"<g class="lane" data-host="{n}"><rect class="lane-bg" x="0" y="{top}" width="{width}" height="{LANE}" fill="{bg}"/><line class="lane-line" x1="{LEFT}" y1="{yy}" x2="{width}" y2="{yy}"/>"#,
            n = esc(name),
            yy = y(row),
            bg = lane_bg(row),
        );
        let mut open: HashMap<String, (usize, u32)> = HashMap::new();
        let seq = log.host_events(h);
        let mut sections: Vec<(String, usize, usize)> = Vec::new();
        for &i in seq {
            let e = &evs[i];
            let r = e.field_str(field::RESOURCE).unwrap_or_default();
            match e.kind.as_str() {
                kind::LOCK_ENTER => {
                    let s = open.entry(r).or_insert((i, 0));
                    if s.1 == 0 {
                        s.0 = i;
                    }
                    s.1 += 1;
                }
                kind::LOCK_EXIT => {
                    if let Some(s) = open.get_mut(&r)
                        && s.1 > 0
                    {
                        s.1 -= 1;
                        if s.1 == 0 {
                            sections.push((r, s.0, i));
                        }
                    }
                }
                _ => {}
            }
        }
        let mut unclosed: Vec<(String, usize)> = open
            .into_iter()
            .filter(|(_, (_, d))| *d > 0)
            .map(|(r, (i, _))| (r, i))
            .collect();
        unclosed.sort();
        if let Some(&lastev) = seq.last() {
            for (r, i) in unclosed {
                sections.push((r, i, lastev));
            }
        }
        for (r, a, b) in sections {
            let k = res_color.len();
            let c = *res_color.entry(r.clone()).or_insert(k);
            let (xa, xb) = (x(&l.items[l.item_of[a]]), x(&l.items[l.item_of[b]]));
            let _ = writeln!(
                o,
                r#"<rect class="section" data-resource="{re}" x="{}" y="{}" width="{}" height="{}" fill="{}" rx="4"><title>critical section of {re}: {} .. {}</title></rect>"#,
                xa - 7,
                top + 6,
                xb - xa + 14,
                LANE - 12,
                palette(c),
                esc(&log.event_id(a)),
                esc(&log.event_id(b)),
                re = esc(&r)
            );
        }
        o.push_str("</g>\n");
    }

    // Leader terms: a dashed line at the first announcement of each term.
    let mut terms: BTreeMap<u64, usize> = BTreeMap::new();
    for &i in log.order() {
        let e = &evs[i];
        if e.kind == kind::LEADER_ELECTED
            && let Some(t) = e.field_u64(field::TERM)
        {
            terms.entry(t).or_insert(i);
        }
    }
    // Labels go on one of three rows, where they do not overlap the previous one.
    let mut label_end = [0usize; 3];
    for (t, i) in terms {
        let e = &evs[i];
        let leader = e
            .field_str(field::LEADER)
            .unwrap_or_else(|| log.host_name(e.host).to_owned());
        let xx = x(&l.items[l.item_of[i]]);
        let label = format!("term {} ({leader})", crate::show_term(t));
        let label_w = 7 * label.chars().count();
        let _ = write!(
            o,
            r##"<g class="term-mark" data-term="{t}"><title>{}</title><line class="term" x1="{xx}" y1="{}" x2="{xx}" y2="{}"/>"##,
            esc(&label),
            TOP - 8,
            height - 16,
        );
        if let Some(r) = (0..3).find(|&r| label_end[r] <= xx) {
            label_end[r] = xx + label_w + 8;
            let _ = write!(
                o,
                r##"<text x="{}" y="{}" fill="#756bb1" font-size="11">{}</text>"##,
                xx + 3,
                TOP - 36 + 13 * r,
                esc(&label)
            );
        }
        o.push_str("</g>\n");
    }

    // Messages.
    o.push_str("<g class=\"messages\">\n");
    for (s, r) in log.messages() {
        let (is, ir) = (&l.items[l.item_of[s]], &l.items[l.item_of[r]]);
        let (x1, y1, x2, y2) = (
            x(is) as f64,
            y(is.host_row) as f64,
            x(ir) as f64,
            y(ir.host_row) as f64,
        );
        // Stop the arrow at the receive dot's edge.
        let (dx, dy) = (x2 - x1, y2 - y1);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let (x2, y2) = (x2 - dx / len * 6.0, y2 - dy / len * 6.0);
        let _ = writeln!(
            o,
            r#"<line class="msg" data-from="{}" data-to="{}" x1="{x1}" y1="{y1}" x2="{x2:.1}" y2="{y2:.1}"/>"#,
            esc(&log.event_id(s)),
            esc(&log.event_id(r))
        );
    }
    o.push_str("</g>\n<g class=\"events\">\n");

    // Events and collapsed runs.
    for it in &l.items {
        let h = evs[it.first].host;
        let (xx, yy) = (x(it), y(it.host_row));
        if it.len > 1 {
            let (f, la) = (&evs[it.first], &evs[it.last]);
            let _ = writeln!(
                o,
                r#"<g class="run" data-host="{hn}" data-first="{}" data-last="{}" data-k-first="{}" data-k-last="{}" data-clock-first="{}" data-clock-last="{}"><rect x="{}" y="{}" width="16" height="14" rx="3"/><text x="{xx}" y="{}" font-size="9" text-anchor="middle">{}</text><title>{} local events {} .. {}</title></g>"#,
                esc(&log.event_id(it.first)),
                esc(&log.event_id(it.last)),
                f.own(),
                la.own(),
                esc(&clock_json(log, it.first)),
                esc(&clock_json(log, it.last)),
                xx - 8,
                yy - 7,
                yy + 3,
                it.len,
                it.len,
                esc(&log.event_id(it.first)),
                esc(&log.event_id(it.last)),
                hn = esc(log.host_name(h)),
            );
            continue;
        }
        let i = it.first;
        let e = &evs[i];
        let class = match e.kind.as_str() {
            SEND => "send",
            RECEIVE => "receive",
            k if k.starts_with(kind::LOCK_PREFIX) => "lock",
            k if k.starts_with(kind::LEADER_PREFIX) => "leader",
            _ => "local",
        };
        let id = log.event_id(i);
        let cj = clock_json(log, i);
        let _ = writeln!(
            o,
            r#"<circle class="ev {class}" cx="{xx}" cy="{yy}" r="5" data-id="{}" data-host="{}" data-k="{}" data-kind="{}" data-clock="{}"><title>{} {}&#10;{}&#10;{}</title></circle>"#,
            esc(&id),
            esc(log.host_name(h)),
            e.own(),
            esc(&e.kind),
            esc(&cj),
            esc(&id),
            esc(&e.kind),
            esc(&e.text),
            esc(&cj),
        );
    }
    o.push_str("</g>\n<g class=\"labels\">\n");
    for (row, &h) in l.rows.iter().enumerate() {
        let _ = writeln!(
            o,
            r##"<rect x="0" y="{}" width="{}" height="18" fill="{}"/><text x="8" y="{}">{}</text>"##,
            y(row) - 13,
            LEFT - 12,
            lane_bg(row),
            y(row) + 1,
            esc(log.host_name(h))
        );
    }
    o.push_str("</g>\n</svg>\n");
    o
}

fn clock_json(log: &Log, i: usize) -> String {
    let m: BTreeMap<&str, u64> = log.events()[i]
        .clock
        .iter()
        .map(|&(h, v)| (log.host_name(h), v))
        .collect();
    serde_json::to_string(&m).expect("clock serialises")
}

const SCRIPT: &str = r#"
(function () {
  var svg = document.querySelector('#diagram svg');
  var evs = Array.prototype.map.call(svg.querySelectorAll('.ev'), function (el) {
    return { el: el, id: el.getAttribute('data-id'), host: el.getAttribute('data-host'),
             k: +el.getAttribute('data-k'), clock: JSON.parse(el.getAttribute('data-clock')) };
  });
  var runs = Array.prototype.map.call(svg.querySelectorAll('.run'), function (el) {
    return { el: el, host: el.getAttribute('data-host'), kf: +el.getAttribute('data-k-first'),
             kl: +el.getAttribute('data-k-last'),
             cf: JSON.parse(el.getAttribute('data-clock-first')),
             cl: JSON.parse(el.getAttribute('data-clock-last')) };
  });
  var CLASSES = ['sel', 'past', 'future', 'conc', 'mixed'];
  function rel(a, b) {
    if (a === b) return 'sel';
    if ((a.clock[b.host] || 0) >= b.k) return 'past';
    if ((b.clock[a.host] || 0) >= a.k) return 'future';
    return 'conc';
  }
  function runRel(a, r) {
    var seen = a.clock[r.host] || 0;
    if (seen >= r.kl) return 'past';
    if ((r.cf[a.host] || 0) >= a.k) return 'future';
    if (seen < r.kf && (r.cl[a.host] || 0) < a.k) return 'conc';
    return 'mixed';
  }
  function select(a) {
    var out = { selected: a.id, lanes: svg.querySelectorAll('.lane').length,
                past: [], future: [], concurrent: [] };
    evs.forEach(function (b) {
      CLASSES.forEach(function (c) { b.el.classList.remove(c); });
      var r = rel(a, b);
      b.el.classList.add(r);
      if (r === 'past') out.past.push(b.id);
      if (r === 'future') out.future.push(b.id);
      if (r === 'conc') out.concurrent.push(b.id);
    });
    runs.forEach(function (r) {
      CLASSES.forEach(function (c) { r.el.classList.remove(c); });
      r.el.classList.add(runRel(a, r));
    });
    document.getElementById('info').textContent = a.id + ' (' + a.el.getAttribute('data-kind') +
      '): ' + out.past.length + ' in its past, ' + out.future.length + ' in its future, ' +
      out.concurrent.length + ' concurrent';
    return out;
  }
  evs.forEach(function (a) {
    a.el.addEventListener('click', function () { select(a); });
  });
  // Keep the lane names in view when scrolling sideways.
  var box = document.getElementById('diagram');
  var labels = svg.querySelector('.labels');
  box.addEventListener('scroll', function () {
    labels.setAttribute('transform', 'translate(' + box.scrollLeft + ',0)');
  });
  var m = /^#(select|selftest)=(.*)$/.exec(location.hash);
  if (m) {
    var id = decodeURIComponent(m[2]);
    var target = evs.filter(function (e) { return e.id === id; })[0];
    var res = document.getElementById('selftest-result');
    if (!target) {
      res.textContent = JSON.stringify({ error: 'no event ' + id });
    } else {
      var outcome = null;
      target.el.addEventListener('click', function () { outcome = select(target); }, { once: true });
      target.el.dispatchEvent(new MouseEvent('click', { bubbles: true }));
      if (m[1] === 'selftest') res.textContent = JSON.stringify(outcome);
      target.el.scrollIntoView({ block: 'center', inline: 'center' });
      labels.setAttribute('transform', 'translate(' + box.scrollLeft + ',0)');
    }
  }
})();
"#;

/// The diagram as a self-contained HTML page (inline SVG and script, no network access).
pub fn html(log: &Log, opts: &DrawOptions) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{t}</title>
<style>
body{{font-family:sans-serif;margin:0}}
header{{position:sticky;top:0;left:0;background:#fff;padding:6px 10px;border-bottom:1px solid #ccc;z-index:1}}
#diagram{{overflow:auto}}
.legend span{{display:inline-block;padding:1px 6px;margin-right:6px;border-radius:3px}}
.spacetime .ev.sel{{fill:#000;r:7px}}
.spacetime .ev.past{{fill:#2b8cbe;stroke:#08519c;stroke-width:2}}
.spacetime .ev.future{{fill:#dd3497;stroke:#7a0177;stroke-width:2}}
.spacetime .ev.conc{{fill:#fff;stroke:#999}}
.spacetime .run.past rect{{fill:#9ecae1}}.spacetime .run.future rect{{fill:#fcc5c0}}.spacetime .run.conc rect{{fill:#fff}}.spacetime .run.mixed rect{{fill:#eee;stroke-dasharray:2 2}}
#selftest-result{{display:none}}
</style></head>
<body>
<header><b>{t}</b> — {hosts} processes, {events} events, {msgs} messages. Click an event:
<span class="legend"><span style="background:#2b8cbe;color:#fff">past</span><span style="background:#dd3497;color:#fff">future</span><span style="border:1px solid #999">concurrent</span></span>
<span id="info"></span></header>
<div id="diagram">
"#,
        t = esc(&opts.title),
        hosts = log.hosts().len(),
        events = log.events().len(),
        msgs = log.messages().len()
    );
    o.push_str(&svg(log, opts));
    o.push_str("</div>\n<pre id=\"selftest-result\"></pre>\n<script>");
    o.push_str(SCRIPT);
    o.push_str("</script>\n</body></html>\n");
    o
}

impl Log {
    /// Writes the diagram to `path`: HTML if it ends in `.html` or `.htm`, else SVG.
    pub fn write_diagram(&self, path: impl AsRef<Path>, opts: &DrawOptions) -> std::io::Result<()> {
        let path = path.as_ref();
        let is_html = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm"));
        let text = if is_html {
            html(self, opts)
        } else {
            svg(self, opts)
        };
        std::fs::write(path, text)
    }
}
