//! An actix-web websocket chat wrapped with actix-coord: actix's public `websocket-chat`
//! example (a chat server actor with rooms, one session actor per websocket with heartbeats),
//! with the edits that make every actor a causal process. Each edit is marked `actix-coord:`
//! and listed in docs/guide.md ("Migrating an application").
//!
//! Protocol (as in the original): a text frame is a chat line for the session's room;
//! `/join ROOM` moves the session to `ROOM` (answered `joined`), `/list` lists the rooms,
//! `/name NAME` sets the name shown before the session's lines. The session pings its client
//! every [`ChatConfig::heartbeat`] and drops it when no ping or pong came back for
//! [`ChatConfig::client_timeout`]. `GET /ws?name=NAME` opens a session (its process is named
//! `session-NAME` in the causal log); `GET /count` gives the number of visitors.
//!
//! The session logs `say` (a line it got from its client) and `deliver` (a line it passes to
//! its client) as `tracing` events with a `text` field: they are local events of the session's
//! process in the causal log.

use actix::prelude::*;
use actix_coord::intercept::{CausalContext, CausalRecipient}; // actix-coord: imports
use actix_coord::ws::{SessionProcess, WsBuilder}; // actix-coord: imports
use actix_web::{App, Error, HttpRequest, HttpResponse, HttpServer, web};
use actix_web_actors::ws;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// The chat server (was `server.rs`).

/// A chat line for a session's client.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ChatLine(pub String);

/// A new session; answered with its id.
#[derive(Message)]
#[rtype(usize)]
pub struct Connect {
    /// The session. actix-coord: was `Recipient<ChatLine>`.
    pub addr: CausalRecipient<ChatLine>,
}

/// A session is gone.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    /// The session's id.
    pub id: usize,
}

/// A chat line from a session, for its room.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ClientMessage {
    /// The sending session.
    pub id: usize,
    /// The line.
    pub msg: String,
    /// The room.
    pub room: String,
}

/// The list of rooms.
pub struct ListRooms;

impl actix::Message for ListRooms {
    type Result = Vec<String>;
}

/// A session moves to a room (created if needed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Join {
    /// The session's id.
    pub id: usize,
    /// The room.
    pub name: String,
}

/// The chat server: sessions and rooms (the original's `ChatServer`; ids come from a counter
/// instead of a random number generator).
pub struct ChatServer {
    /// actix-coord: was `HashMap<usize, Recipient<ChatLine>>`.
    sessions: HashMap<usize, CausalRecipient<ChatLine>>,
    rooms: HashMap<String, HashSet<usize>>,
    next_id: usize,
    visitor_count: Arc<AtomicUsize>,
}

impl ChatServer {
    /// A server with the room `main`.
    pub fn new(visitor_count: Arc<AtomicUsize>) -> ChatServer {
        let mut rooms = HashMap::new();
        rooms.insert("main".to_owned(), HashSet::new());
        ChatServer {
            sessions: HashMap::new(),
            rooms,
            next_id: 1,
            visitor_count,
        }
    }

    /// Sends `message` to every session in `room` but `skip_id`.
    fn send_message(&self, room: &str, message: &str, skip_id: usize) {
        if let Some(sessions) = self.rooms.get(room) {
            for id in sessions {
                if *id != skip_id
                    && let Some(addr) = self.sessions.get(id)
                {
                    addr.do_send(ChatLine(message.to_owned()));
                }
            }
        }
    }
}

impl Actor for ChatServer {
    type Context = CausalContext<Self>; // actix-coord: was `Context<Self>`
}

impl Handler<Connect> for ChatServer {
    type Result = usize;

    // actix-coord: `&mut Self::Context` here and below (was `&mut Context<Self>`).
    fn handle(&mut self, msg: Connect, _: &mut Self::Context) -> Self::Result {
        self.send_message("main", "Someone joined", 0);
        let id = self.next_id;
        self.next_id += 1;
        self.sessions.insert(id, msg.addr);
        self.rooms.entry("main".to_owned()).or_default().insert(id);
        let count = self.visitor_count.fetch_add(1, Ordering::SeqCst);
        self.send_message("main", &format!("Total visitors {}", count + 1), 0);
        id
    }
}

impl Handler<Disconnect> for ChatServer {
    type Result = ();

    fn handle(&mut self, msg: Disconnect, _: &mut Self::Context) {
        let mut rooms: Vec<String> = Vec::new();
        if self.sessions.remove(&msg.id).is_some() {
            for (name, sessions) in &mut self.rooms {
                if sessions.remove(&msg.id) {
                    rooms.push(name.to_owned());
                }
            }
        }
        for room in rooms {
            self.send_message(&room, "Someone disconnected", 0);
        }
    }
}

impl Handler<ClientMessage> for ChatServer {
    type Result = ();

    fn handle(&mut self, msg: ClientMessage, _: &mut Self::Context) {
        self.send_message(&msg.room, msg.msg.as_str(), msg.id);
    }
}

impl Handler<ListRooms> for ChatServer {
    type Result = MessageResult<ListRooms>;

    fn handle(&mut self, _: ListRooms, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.rooms.keys().cloned().collect())
    }
}

impl Handler<Join> for ChatServer {
    type Result = ();

    fn handle(&mut self, msg: Join, _: &mut Self::Context) {
        let Join { id, name } = msg;
        let mut rooms = Vec::new();
        for (n, sessions) in &mut self.rooms {
            if sessions.remove(&id) {
                rooms.push(n.to_owned());
            }
        }
        for room in rooms {
            self.send_message(&room, "Someone disconnected", 0);
        }
        self.rooms.entry(name.clone()).or_default().insert(id);
        self.send_message(&name, "Someone connected", id);
    }
}

// ---------------------------------------------------------------------------------------------
// The session (was `session.rs`).

/// Heartbeat settings (the original's constants `HEARTBEAT_INTERVAL`, 5 s, and
/// `CLIENT_TIMEOUT`, 10 s; configurable here so that a test can shorten them).
#[derive(Clone, Copy, Debug)]
pub struct ChatConfig {
    /// How often a session pings its client.
    pub heartbeat: Duration,
    /// How long a session waits for a ping or pong before it drops its client.
    pub client_timeout: Duration,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(5),
            client_timeout: Duration::from_secs(10),
        }
    }
}

/// One websocket connection.
pub struct WsChatSession {
    /// Unique session id (given by the server).
    pub id: usize,
    /// The last ping or pong from the client.
    pub hb: Instant,
    /// The joined room.
    pub room: String,
    /// The peer's name.
    pub name: Option<String>,
    /// The chat server.
    pub addr: Addr<ChatServer>,
    /// Heartbeat settings.
    pub config: ChatConfig,
    /// actix-coord: the session's process (only `actix_coord::ws::start` makes one).
    pub process: SessionProcess,
}

impl WsChatSession {
    /// Pings the client every `heartbeat`, and stops when it has not answered for
    /// `client_timeout`.
    fn hb(&self, ctx: &mut ws::WebsocketContext<Self>) {
        ctx.run_interval(self.config.heartbeat, |act, ctx| {
            if Instant::now().duration_since(act.hb) > act.config.client_timeout {
                tracing::info!(session = act.id, "heartbeat failed, disconnecting");
                act.addr.do_send(Disconnect { id: act.id });
                ctx.stop();
                return;
            }
            ctx.ping(b"");
        });
    }
}

impl Actor for WsChatSession {
    type Context = ws::WebsocketContext<Self>; // kept

    fn started(&mut self, ctx: &mut Self::Context) {
        self.hb(ctx);
        let addr = ctx.address();
        self.addr
            .send(Connect {
                addr: addr.into(), // actix-coord: was `addr.recipient()`
            })
            .into_actor(self)
            .then(|res, act, ctx| {
                match res {
                    Ok(res) => act.id = res,
                    _ => ctx.stop(),
                }
                fut::ready(())
            })
            .wait(ctx);
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        self.addr.do_send(Disconnect { id: self.id });
        Running::Stop
    }
}

impl Handler<ChatLine> for WsChatSession {
    type Result = ();

    fn handle(&mut self, msg: ChatLine, ctx: &mut Self::Context) {
        tracing::info!(text = %msg.0, "deliver");
        ctx.text(msg.0);
    }
}

// actix-coord: the server's lines arrive stamped (`Stamped<ChatLine>`), merged into the session.
actix_coord::stamped_handlers!(WsChatSession, process; ChatLine);

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsChatSession {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        let msg = match msg {
            Err(_) => {
                ctx.stop();
                return;
            }
            Ok(msg) => msg,
        };
        match msg {
            ws::Message::Ping(msg) => {
                self.hb = Instant::now();
                ctx.pong(&msg);
            }
            ws::Message::Pong(_) => {
                self.hb = Instant::now();
            }
            ws::Message::Text(text) => {
                let m = text.trim();
                if m.starts_with('/') {
                    let v: Vec<&str> = m.splitn(2, ' ').collect();
                    match v[0] {
                        "/list" => {
                            self.addr
                                .send(ListRooms)
                                .into_actor(self)
                                .then(|res, _, ctx| {
                                    if let Ok(rooms) = res {
                                        for room in rooms {
                                            ctx.text(room);
                                        }
                                    }
                                    fut::ready(())
                                })
                                .wait(ctx);
                        }
                        "/join" => {
                            if v.len() == 2 {
                                v[1].clone_into(&mut self.room);
                                self.addr.do_send(Join {
                                    id: self.id,
                                    name: self.room.clone(),
                                });
                                ctx.text("joined");
                            } else {
                                ctx.text("!!! room name is required");
                            }
                        }
                        "/name" => {
                            if v.len() == 2 {
                                self.name = Some(v[1].to_owned());
                            } else {
                                ctx.text("!!! name is required");
                            }
                        }
                        _ => ctx.text(format!("!!! unknown command: {m:?}")),
                    }
                } else {
                    let msg = match &self.name {
                        Some(name) => format!("{name}: {m}"),
                        None => m.to_owned(),
                    };
                    tracing::info!(text = %msg, "say");
                    self.addr.do_send(ClientMessage {
                        id: self.id,
                        msg,
                        room: self.room.clone(),
                    })
                }
            }
            ws::Message::Binary(_) => {}
            ws::Message::Close(reason) => {
                ctx.close(reason);
                ctx.stop();
            }
            ws::Message::Continuation(_) => {
                ctx.stop();
            }
            ws::Message::Nop => (),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The web application (was `main.rs`).

/// `GET /ws`: the websocket handshake, then a session.
async fn chat_route(
    req: HttpRequest,
    stream: web::Payload,
    srv: web::Data<Addr<ChatServer>>,
    config: web::Data<ChatConfig>,
) -> Result<HttpResponse, Error> {
    let name = req
        .query_string()
        .split('&')
        .find_map(|kv| kv.strip_prefix("name="))
        .map(|n| format!("session-{n}"));
    let mut builder = WsBuilder::new(); // actix-coord: the start call (was `ws::start(...)`)
    if let Some(name) = name {
        builder = builder.name(name);
    }
    let addr = srv.get_ref().clone();
    let config = **config;
    builder.start(&req, stream, move |process| WsChatSession {
        id: 0,
        hb: Instant::now(),
        room: "main".to_owned(),
        name: None,
        addr,
        config,
        process, // actix-coord: the session's process
    })
}

/// `GET /count`: the number of visitors.
async fn get_count(count: web::Data<AtomicUsize>) -> String {
    count.load(Ordering::SeqCst).to_string()
}

/// A running chat.
pub struct Chat {
    /// The address the server listens on (it binds the port it was given, 0 for any free one).
    pub addr: SocketAddr,
    /// Stops the web server.
    pub server: actix_web::dev::ServerHandle,
    /// The web server's future: await it (or spawn it) to serve.
    pub running: actix_web::dev::Server,
    /// The chat server actor.
    pub chat: Addr<ChatServer>,
}

/// Starts the chat server actor and binds the web server to `bind` (use port 0 for a free
/// port: [`Chat::addr`] says which one), with one worker thread. Call inside an actix system,
/// after installing the causal layer.
///
/// # Errors
/// When the address cannot be bound.
pub fn start(bind: SocketAddr, config: ChatConfig) -> std::io::Result<Chat> {
    let app_state = Arc::new(AtomicUsize::new(0));
    // actix-coord: was `ChatServer::new(app_state.clone()).start()`.
    let chat = CausalContext::start(ChatServer::new(app_state.clone()));
    let server_addr = chat.clone();
    let http = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::from(app_state.clone()))
            .app_data(web::Data::new(server_addr.clone()))
            .app_data(web::Data::new(config))
            .route("/count", web::get().to(get_count))
            .route("/ws", web::get().to(chat_route))
    })
    .workers(1)
    .disable_signals()
    .bind(bind)?;
    let addr = http.addrs()[0];
    let running = http.run();
    Ok(Chat {
        addr,
        server: running.handle(),
        running,
        chat,
    })
}
