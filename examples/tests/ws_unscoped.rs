//! A websocket session that sends outside its process scope is reported, not silently
//! attributed to the shared `external` process.
//!
//! The session here takes the old explicit path: an `ExplicitProcess` field and
//! `stamped_handlers!`, started with actix-web-actors' own `ws::start` (not
//! `actix_coord::ws::start`), and no `enter()` guard in `started` or `StreamHandler::handle`.
//! So its `Register` and `Say` sends are made outside any process scope. The first stamped
//! message it handles shows that its process was not current: the causal log gets a
//! `scope.unscoped` event of the session, and `causal-log check` fails with a `scope` error.
//! (The other way to get this wrong — holding a `SessionProcess` and starting with
//! actix-web-actors' `ws::start` — does not compile: see the `compile_fail` example in
//! `actix_coord::ws`.)

#[allow(dead_code)] // only `RemovedOnSuccess` is used here
mod support;
use actix::prelude::*;
use actix_coord::intercept::{CausalContext, CausalRecipient, ExplicitProcess};
use actix_coord::trace::CausalLayer;
use actix_web::{App, Error, HttpRequest, HttpResponse, HttpServer, web};
use actix_web_actors::ws;
use awc::ws::{Frame, Message as WsMessage};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::time::{Instant, timeout_at};

#[derive(Message)]
#[rtype(result = "()")]
struct Line(String);

#[derive(Message)]
#[rtype(result = "()")]
struct Register(CausalRecipient<Line>);

#[derive(Message)]
#[rtype(result = "()")]
struct Say(String);

/// Echoes every line to every registered session.
#[derive(Default)]
struct Hub {
    sessions: Vec<CausalRecipient<Line>>,
}
impl Actor for Hub {
    type Context = CausalContext<Self>;
}
impl Handler<Register> for Hub {
    type Result = ();
    fn handle(&mut self, m: Register, _: &mut Self::Context) {
        self.sessions.push(m.0);
    }
}
impl Handler<Say> for Hub {
    type Result = ();
    fn handle(&mut self, m: Say, _: &mut Self::Context) {
        for s in &self.sessions {
            s.do_send(Line(m.0.clone()));
        }
    }
}

/// The mistake: an explicit process, but the session is not run inside it.
struct Session {
    hub: Addr<Hub>,
    process: ExplicitProcess,
}
impl Actor for Session {
    type Context = ws::WebsocketContext<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        // No `let _in = self.process.enter();`: this send is made outside the process scope.
        self.hub.do_send(Register(ctx.address().into()));
    }
}
impl Handler<Line> for Session {
    type Result = ();
    fn handle(&mut self, m: Line, ctx: &mut Self::Context) {
        ctx.text(m.0);
    }
}
actix_coord::stamped_handlers!(Session, process; Line);
impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Session {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        match msg {
            Ok(ws::Message::Text(t)) => self.hub.do_send(Say(t.to_string())), // unscoped too
            Ok(ws::Message::Close(r)) => {
                ctx.close(r);
                ctx.stop();
            }
            _ => {}
        }
    }
}

async fn route(
    req: HttpRequest,
    stream: web::Payload,
    hub: web::Data<Addr<Hub>>,
) -> Result<HttpResponse, Error> {
    let session = Session {
        hub: hub.get_ref().clone(),
        process: ExplicitProcess::with_name("unscoped-session"),
    };
    ws::start(session, &req, stream) // actix-web-actors' own start
}

#[test]
fn a_session_sending_outside_its_process_scope_is_reported_and_check_fails() {
    let dir = std::env::temp_dir().join(format!("actix-coord-ws-unscoped-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _removed = support::RemovedOnSuccess(dir.clone());
    std::fs::create_dir_all(&dir).unwrap();
    let jsonl = dir.join("unscoped.jsonl");
    let (layer, guard) = CausalLayer::builder().jsonl_path(&jsonl).build().unwrap();
    use tracing_subscriber::prelude::*;
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).unwrap();

    actix::System::new().block_on(async {
        let hub = CausalContext::start(Hub::default());
        let data = web::Data::new(hub);
        let http = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/ws", web::get().to(route))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let addr = http.addrs()[0];
        let running = http.run();
        let server = running.handle();
        actix_rt::spawn(running);

        let (_resp, mut framed) = awc::Client::new()
            .ws(format!("ws://{addr}/ws"))
            .connect()
            .await
            .unwrap();
        framed.send(WsMessage::Text("hello".into())).await.unwrap();
        // The echo comes back through the hub as a stamped `Line`: the session handles it.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match timeout_at(deadline, framed.next()).await {
                Ok(Some(Ok(Frame::Text(t)))) if &t[..] == b"hello" => break,
                Ok(Some(Ok(_))) => {}
                other => panic!("no echo: {other:?}"),
            }
        }
        framed.send(WsMessage::Close(None)).await.unwrap();
        while let Ok(Some(Ok(_))) = timeout_at(deadline, framed.next()).await {}
        server.stop(false).await;
    });
    guard.close().unwrap();

    let log = causal_log::Log::read_paths(&[&jsonl]).unwrap();
    let evs = log.events();
    // The session's sends went out as `external` — the misattribution being reported.
    let ext = log
        .host_id("external")
        .expect("the session's sends are external's");
    assert!(
        log.host_events(ext).iter().any(|&i| evs[i].kind == "send"),
        "the unscoped sends are attributed to external"
    );
    // … and reported: a `scope.unscoped` event of the session's process …
    let reported: Vec<usize> = (0..evs.len())
        .filter(|&i| evs[i].kind == actix_coord::intercept::UNSCOPED)
        .collect();
    assert_eq!(reported.len(), 1, "reported once per process");
    assert_eq!(log.host_name(evs[reported[0]].host), "unscoped-session");
    // … that `causal-log check` reports as an error.
    let report = log.check();
    assert!(!report.is_clean(), "check must fail:\n{report}");
    assert!(report.has(causal_log::Rule::Scope), "{report}");
    let scope: Vec<String> = report
        .errors()
        .filter(|f| f.rule == causal_log::Rule::Scope)
        .map(ToString::to_string)
        .collect();
    assert_eq!(scope.len(), 1, "{report}");
    println!("{}", scope[0]);
}
