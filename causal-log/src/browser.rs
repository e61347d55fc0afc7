//! End-to-end checks of the HTML diagram in headless Chromium, for tests.
//!
//! The page selects an event itself when opened with `#selftest=host:k` (it dispatches a real
//! click on the dot); Chromium's `--dump-dom` then prints the DOM after that click, and
//! [`read_dom`] reads back every event's classes and vector clock so a test can check that the
//! highlighted past, future and concurrent events match the clocks.
//!
//! ```no_run
//! use causal_log::browser;
//! let Some(chromium) = browser::chromium() else { return Ok(()) }; // skip without a browser
//! let dom = browser::click_and_dump(&chromium, "target/tour/tour.html".as_ref(), "Cook#1:3",
//!     Some("target/tour/tour.png".as_ref()))?;
//! let seen = browser::read_dom(&dom)?;
//! assert_eq!(seen.lanes, seen.hosts.len());
//! seen.check_highlighting()?;
//! # Ok::<(), causal_log::browser::BrowserError>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use regex::Regex;

/// Why a browser check failed.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    /// Chromium could not be started.
    #[error("cannot start {path}: {source}")]
    Spawn {
        /// The browser binary.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written or read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Chromium ran longer than allowed and was killed.
    #[error("chromium did not finish within {0:?}")]
    Timeout(Duration),
    /// Chromium exited with an error.
    #[error("chromium failed ({status}): {stderr}")]
    Failed {
        /// The exit status.
        status: String,
        /// The end of its standard error.
        stderr: String,
    },
    /// The DOM is not what the page should produce.
    #[error("DOM check failed: {0}")]
    Dom(String),
}

/// The Chromium binary: `$CHROMIUM` if set, else the first of `/usr/bin/chromium`,
/// `/usr/bin/chromium-browser`, `/usr/bin/google-chrome` that exists.
pub fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

const TIMEOUT: Duration = Duration::from_secs(25);

fn file_url(html: &Path, hash: &str) -> Result<String, BrowserError> {
    let abs = std::fs::canonicalize(html)?;
    let mut url = String::from("file://");
    for b in abs.to_string_lossy().bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                url.push(b as char)
            }
            _ => url.push_str(&format!("%{b:02X}")),
        }
    }
    url.push('#');
    for b in hash.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b':' | b'=' => {
                url.push(b as char)
            }
            _ => url.push_str(&format!("%{b:02X}")),
        }
    }
    Ok(url)
}

fn run(chromium: &Path, args: &[String], stdout: Option<&Path>) -> Result<(), BrowserError> {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let profile = std::env::temp_dir().join(format!(
        "causal-log-chromium-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile)?;
    let err_path = profile.join("stderr.txt");
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .stdin(Stdio::null())
    .stderr(std::fs::File::create(&err_path)?);
    match stdout {
        Some(p) => cmd.stdout(std::fs::File::create(p)?),
        None => cmd.stdout(Stdio::null()),
    };
    let mut child = cmd.spawn().map_err(|source| BrowserError::Spawn {
        path: chromium.to_owned(),
        source,
    })?;
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&profile);
            return Err(BrowserError::Timeout(TIMEOUT));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&profile);
    if !status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(BrowserError::Failed {
            status: status.to_string(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    Ok(())
}

/// Opens `html` in headless Chromium with `#selftest=<event>` (the page clicks that event) and
/// returns the DOM after the click; with `screenshot`, also saves a PNG of the page with the
/// event selected. Each run uses a fresh profile and is killed after 25 s.
pub fn click_and_dump(
    chromium: &Path,
    html: &Path,
    event: &str,
    screenshot: Option<&Path>,
) -> Result<String, BrowserError> {
    let out = html.with_extension("dom.html");
    let url = file_url(html, &format!("selftest={event}"))?;
    run(chromium, &["--dump-dom".into(), url], Some(&out))?;
    let dom = std::fs::read_to_string(&out)?;
    if let Some(png) = screenshot {
        let url = file_url(html, &format!("select={event}"))?;
        let png = std::env::current_dir()?.join(png);
        run(
            chromium,
            &[
                format!("--screenshot={}", png.display()),
                "--window-size=1400,900".into(),
                "--hide-scrollbars".into(),
                url,
            ],
            None,
        )?;
    }
    Ok(dom)
}

/// One event dot as found in the DOM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomEvent {
    /// `data-id`.
    pub id: String,
    /// `data-host`.
    pub host: String,
    /// `data-k`: the event's own counter.
    pub k: u64,
    /// `data-clock`, parsed.
    pub clock: BTreeMap<String, u64>,
    /// The `class` attribute's words.
    pub classes: BTreeSet<String>,
}

/// What [`read_dom`] found in a dumped page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomView {
    /// Number of lanes (`g.lane`).
    pub lanes: usize,
    /// Distinct hosts of the event dots.
    pub hosts: BTreeSet<String>,
    /// Every event dot.
    pub events: Vec<DomEvent>,
    /// The selected event's id (class `sel`), if any.
    pub selected: Option<String>,
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// Reads lanes and event dots (with their classes and clocks) from a dumped DOM.
pub fn read_dom(dom: &str) -> Result<DomView, BrowserError> {
    let tag = Regex::new(r"<(circle|g)\s([^>]*)>").expect("valid regex");
    let attr = Regex::new(r#"([\w:-]+)="([^"]*)""#).expect("valid regex");
    let mut lanes = 0;
    let mut events = Vec::new();
    for c in tag.captures_iter(dom) {
        let attrs: BTreeMap<&str, String> = attr
            .captures_iter(&c[2])
            .map(|a| (a.get(1).expect("g1").as_str(), unescape(&a[2])))
            .collect();
        let classes: BTreeSet<String> = attrs
            .get("class")
            .map(|c| c.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        if &c[1] == "g" {
            if classes.contains("lane") {
                lanes += 1;
            }
            continue;
        }
        if !classes.contains("ev") {
            continue;
        }
        let get = |k: &str| {
            attrs
                .get(k)
                .cloned()
                .ok_or_else(|| BrowserError::Dom(format!("event dot without {k}")))
        };
        let clock: BTreeMap<String, u64> = serde_json::from_str(&get("data-clock")?)
            .map_err(|e| BrowserError::Dom(format!("bad data-clock: {e}")))?;
        events.push(DomEvent {
            id: get("data-id")?,
            host: get("data-host")?,
            k: get("data-k")?
                .parse()
                .map_err(|_| BrowserError::Dom("bad data-k".into()))?,
            clock,
            classes,
        });
    }
    let hosts = events.iter().map(|e| e.host.clone()).collect();
    let selected = events
        .iter()
        .find(|e| e.classes.contains("sel"))
        .map(|e| e.id.clone());
    Ok(DomView {
        lanes,
        hosts,
        events,
        selected,
    })
}

impl DomView {
    /// The ids of dots carrying `class`.
    pub fn with_class(&self, class: &str) -> BTreeSet<String> {
        self.events
            .iter()
            .filter(|e| e.classes.contains(class))
            .map(|e| e.id.clone())
            .collect()
    }

    /// Checks that one event is selected and that every other dot is marked `past`, `future`
    /// or `conc` exactly as the vector clocks say.
    pub fn check_highlighting(&self) -> Result<(), BrowserError> {
        let sel_id = self
            .selected
            .as_ref()
            .ok_or_else(|| BrowserError::Dom("no event is selected".into()))?;
        let a = self
            .events
            .iter()
            .find(|e| &e.id == sel_id)
            .expect("selected is an event");
        for b in &self.events {
            if b.id == a.id {
                continue;
            }
            let want = if a.clock.get(&b.host).copied().unwrap_or(0) >= b.k {
                "past"
            } else if b.clock.get(&a.host).copied().unwrap_or(0) >= a.k {
                "future"
            } else {
                "conc"
            };
            if !b.classes.contains(want) {
                return Err(BrowserError::Dom(format!(
                    "{} should be marked {want} relative to {}, has classes {:?}",
                    b.id, a.id, b.classes
                )));
            }
        }
        Ok(())
    }
}
