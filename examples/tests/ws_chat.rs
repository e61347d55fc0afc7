//! The websocket chat (`examples::ws_chat`) driven by three real websocket clients (awc):
//! alice, bob and carol join the room `lobby`, alice and bob send 20 lines between them, carol
//! then stops answering pings and is dropped by her session's heartbeat. From the causal log
//! (JSON lines, read with `causal_log`):
//!
//! * each line alice sent → the chat server → bob's session delivering it is a chain of
//!   happened-before (by vector clocks), and so for carol's;
//! * the two deliveries of one line (to bob and to carol) are concurrent;
//! * no event belongs to the shared `external` process (nothing was misattributed) and there is
//!   no `scope.unscoped` report;
//! * `causal-log check` passes, and the diagram is drawn.
//!
//! Every wait is a deadline on an event (a line received, a stream closed); the heartbeat is
//! shortened through `ChatConfig` (50 ms pings, 300 ms timeout), so the test takes about a second.

#[allow(dead_code)] // only `RemovedOnSuccess` is used here
mod support;
use actix_coord::trace::CausalLayer;
use awc::ws::{Frame, Message};
use examples::ws_chat::{self, ChatConfig};
use futures_util::{SinkExt, StreamExt};
use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};

/// How long any one expected event may take.
const WAIT: Duration = Duration::from_secs(10);

/// One websocket client: its received text lines, and a channel to send frames.
struct Client {
    name: &'static str,
    out: mpsc::UnboundedSender<Message>,
    lines: mpsc::UnboundedReceiver<String>,
    /// Every text line received so far.
    seen: Vec<String>,
    /// Whether the reader answers the server's pings.
    answer_pings: Rc<Cell<bool>>,
}

impl Client {
    async fn connect(addr: SocketAddr, name: &'static str) -> Client {
        let (_resp, framed) = awc::Client::new()
            .ws(format!("ws://{addr}/ws?name={name}"))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{name} cannot connect: {e}"));
        let (mut sink, mut stream) = framed.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        actix_rt::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                if sink.send(m).await.is_err() {
                    break;
                }
            }
        });
        let (line_tx, lines) = mpsc::unbounded_channel();
        let answer_pings = Rc::new(Cell::new(true));
        let answer = answer_pings.clone();
        let pong = out.clone();
        actix_rt::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                match frame {
                    Frame::Text(t) => {
                        let _ = line_tx.send(String::from_utf8_lossy(&t).into_owned());
                    }
                    Frame::Ping(p) if answer.get() => {
                        let _ = pong.send(Message::Pong(p));
                    }
                    Frame::Close(_) => break,
                    _ => {}
                }
            }
            // Dropping `line_tx` ends `lines`: the connection is closed.
        });
        Client {
            name,
            out,
            lines,
            seen: Vec::new(),
            answer_pings,
        }
    }

    fn say(&self, text: &str) {
        self.out
            .send(Message::Text(text.to_owned().into()))
            .unwrap_or_else(|_| panic!("{} is disconnected", self.name));
    }

    /// Waits for a line equal to `want` (counting those already seen).
    async fn expect(&mut self, want: &str) {
        self.expect_count(want, 1).await
    }

    /// Waits until `n` lines equal to `want` have been received in all.
    async fn expect_count(&mut self, want: &str, n: usize) {
        let deadline = Instant::now() + WAIT;
        while self.seen.iter().filter(|l| *l == want).count() < n {
            match timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(l)) => self.seen.push(l),
                Ok(None) => panic!("{} closed while waiting for {want:?}", self.name),
                Err(_) => panic!(
                    "{} did not receive {want:?} ×{n} within {WAIT:?}; got {:?}",
                    self.name, self.seen
                ),
            }
        }
    }

    /// Waits until the server closes the connection.
    async fn expect_closed(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            match timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(l)) => self.seen.push(l),
                Ok(None) => return,
                Err(_) => panic!("{} was not disconnected within {WAIT:?}", self.name),
            }
        }
    }
}

#[test]
fn three_clients_chat_one_is_dropped_by_the_heartbeat_and_the_log_shows_causality() {
    let dir = std::env::temp_dir().join(format!("actix-coord-ws-chat-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _removed = support::RemovedOnSuccess(dir.clone());
    std::fs::create_dir_all(&dir).unwrap();
    let jsonl = dir.join("ws_chat.jsonl");
    let (layer, guard) = CausalLayer::builder()
        .jsonl_path(&jsonl)
        .shiviz_path(dir.join("ws_chat.log"))
        .build()
        .unwrap();
    use tracing_subscriber::prelude::*;
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).unwrap();

    let config = ChatConfig {
        heartbeat: Duration::from_millis(50),
        client_timeout: Duration::from_millis(300),
    };
    actix::System::new().block_on(async move {
        let chat = ws_chat::start("127.0.0.1:0".parse().unwrap(), config).unwrap();
        assert_ne!(chat.addr.port(), 0, "the bound port is reported");
        let server = chat.server.clone();
        actix_rt::spawn(chat.running);

        // Join one at a time: each join is seen by those already in the room, so all three are
        // in before the first line.
        let mut alice = Client::connect(chat.addr, "alice").await;
        alice.say("/join lobby");
        alice.expect("joined").await;
        let mut bob = Client::connect(chat.addr, "bob").await;
        bob.say("/join lobby");
        bob.expect("joined").await;
        alice.expect("Someone connected").await;
        let mut carol = Client::connect(chat.addr, "carol").await;
        carol.say("/join lobby");
        carol.expect("joined").await;
        alice.expect_count("Someone connected", 2).await;
        bob.expect("Someone connected").await;

        // 20 lines, alternating senders.
        for k in 0..10 {
            alice.say(&format!("alice-{k}"));
            bob.say(&format!("bob-{k}"));
        }
        for k in 0..10 {
            bob.expect(&format!("alice-{k}")).await;
            carol.expect(&format!("alice-{k}")).await;
            alice.expect(&format!("bob-{k}")).await;
            carol.expect(&format!("bob-{k}")).await;
        }
        assert!(
            !alice.seen.iter().any(|l| l.starts_with("alice-")),
            "a sender does not get its own lines"
        );

        // Carol stops answering pings: her session's heartbeat drops her.
        carol.answer_pings.set(false);
        carol.expect_closed().await;
        for p in [&mut alice, &mut bob] {
            p.expect("Someone disconnected").await;
        }

        // The others leave; then the web server stops.
        for p in [&mut alice, &mut bob] {
            let _ = p.out.send(Message::Close(None));
            p.expect_closed().await;
        }
        server.stop(false).await;
    });
    guard.close().unwrap();

    let log = causal_log::Log::read_paths(&[&jsonl]).unwrap();
    let host = |name: &str| {
        log.host_id(name)
            .unwrap_or_else(|| panic!("no host {name} in {:?}", log.hosts()))
    };
    let (alice, bob, carol) = (
        host("session-alice"),
        host("session-bob"),
        host("session-carol"),
    );
    let server = log
        .hosts_by_name()
        .into_iter()
        .find(|&h| log.host_name(h).starts_with("ChatServer"))
        .expect("the chat server's process is in the log");
    let evs = log.events();
    let find = |h, what: &str, text: &str| -> usize {
        *log.host_events(h)
            .iter()
            .find(|&&i| evs[i].text == what && evs[i].field_str("text").as_deref() == Some(text))
            .unwrap_or_else(|| panic!("no {what} {text:?} at {}", log.host_name(h)))
    };
    for k in 0..10 {
        for (from, to) in [(alice, [bob, carol]), (bob, [alice, carol])] {
            let text = format!("{}-{k}", &log.host_name(from)["session-".len()..]);
            let say = find(from, "say", &text);
            let got: Vec<usize> = to.iter().map(|&h| find(h, "deliver", &text)).collect();
            for &d in &got {
                // client → its session → server → the other session, in happened-before.
                assert!(
                    log.host_events(server)
                        .iter()
                        .any(|&j| { log.happened_before(say, j) && log.happened_before(j, d) }),
                    "{} → server → {} is not a happened-before chain",
                    log.describe(say),
                    log.describe(d)
                );
            }
            assert!(
                log.concurrent(got[0], got[1]),
                "the two deliveries of {text:?} are concurrent: {} and {}",
                log.describe(got[0]),
                log.describe(got[1])
            );
        }
    }
    // The server's stamped sends name their destination's type.
    assert!(
        log.host_events(server)
            .iter()
            .any(|&i| evs[i].text == "send ChatLine to WsChatSession"),
        "a send to a session names it"
    );
    // Carol's heartbeat failure is her session's event, and the server heard her leave.
    let dropped = log
        .host_events(carol)
        .iter()
        .copied()
        .find(|&i| evs[i].text == "heartbeat failed, disconnecting")
        .expect("carol's session logs the heartbeat failure");
    assert!(
        log.host_events(server).iter().any(|&j| {
            evs[j].kind == "receive"
                && evs[j].text.contains("Disconnect")
                && log.happened_before(dropped, j)
        }),
        "the server received carol's Disconnect after her heartbeat failed"
    );
    // Nothing was attributed to the shared external process, and no scope was reported.
    assert!(
        log.host_id("external")
            .is_none_or(|h| log.host_events(h).is_empty()),
        "events of `external`: {:?}",
        log.host_id("external").map(|h| log
            .host_events(h)
            .iter()
            .map(|&i| log.describe(i))
            .collect::<Vec<_>>())
    );
    assert!(
        evs.iter()
            .all(|e| e.kind != actix_coord::intercept::UNSCOPED)
    );
    let report = log.check();
    assert!(report.is_clean(), "causal-log check:\n{report}");
    let svg = dir.join("ws_chat.svg");
    log.write_diagram(&svg, &causal_log::draw::DrawOptions::default())
        .unwrap();
    assert!(std::fs::metadata(&svg).unwrap().len() > 1000);
}

/// The `ws_chat` binary binds a free port and prints it first; a client joins through it.
#[test]
fn the_binary_prints_its_bound_address_and_serves_it() {
    use std::io::BufRead;
    let dir = std::env::temp_dir().join(format!("actix-coord-ws-bin-{}", std::process::id()));
    let _removed = support::RemovedOnSuccess(dir.clone());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ws_chat"))
        .arg("--out")
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(WAIT)
        .expect("the binary prints its address");
    let addr: SocketAddr = first
        .strip_prefix("listening on ws://")
        .and_then(|a| a.strip_suffix("/ws"))
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .parse()
        .unwrap();
    assert_ne!(addr.port(), 0);
    actix::System::new().block_on(async move {
        let mut c = Client::connect(addr, "dora").await;
        c.say("/list");
        c.expect("main").await;
    });
    let _ = child.kill();
    let _ = child.wait();
}
