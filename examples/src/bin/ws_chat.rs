//! The websocket chat (actix's `websocket-chat` example wrapped with actix-coord, see
//! `examples::ws_chat`): serves `GET /ws?name=NAME` and `GET /count` until Ctrl-C, and writes
//! the causal log of every session and of the chat server.
//!
//! It binds `--bind` (default `127.0.0.1:0`: a free port) and prints the bound address as its
//! first line, `listening on ws://ADDR/ws`.
//!
//! ```text
//! cargo run -p examples --bin ws_chat -- --out target/ws_chat
//! ```

use actix_coord::trace::CausalLayer;
use clap::Parser;
use examples::ws_chat::{self, ChatConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

/// Command line.
#[derive(Parser, Debug)]
#[command(about = "A websocket chat whose actors write a causal log")]
struct Args {
    /// Address to listen on (port 0: a free port, printed on start).
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// Folder for the causal log (`ws_chat.jsonl`, `ws_chat.log` for ShiViz).
    #[arg(long, default_value = "target/ws_chat")]
    out: PathBuf,
    /// Milliseconds between a session's pings.
    #[arg(long, default_value_t = 5_000)]
    heartbeat_ms: u64,
    /// Milliseconds without a ping or pong after which a session drops its client.
    #[arg(long, default_value_t = 10_000)]
    client_timeout_ms: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.out)?;
    // actix-coord: the causal layer, installed beside a console layer before any actor starts.
    let (causal, guard) = CausalLayer::builder()
        .jsonl_path(args.out.join("ws_chat.jsonl"))
        .shiviz_path(args.out.join("ws_chat.log"))
        .build()?;
    // The console on stderr: stdout's first line is the address.
    let console = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(LevelFilter::INFO);
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(causal).with(console),
    )?;
    let config = ChatConfig {
        heartbeat: Duration::from_millis(args.heartbeat_ms),
        client_timeout: Duration::from_millis(args.client_timeout_ms),
    };
    actix::System::new().block_on(async move {
        let chat = ws_chat::start(args.bind, config)?;
        println!("listening on ws://{}/ws", chat.addr);
        let server = chat.server.clone();
        actix_rt::spawn(async move {
            let _ = actix_rt::signal::ctrl_c().await;
            server.stop(true).await;
        });
        chat.running.await
    })?;
    guard.close()?;
    Ok(())
}
