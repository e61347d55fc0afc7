//! A small actix-web app with a causal actor, written from the README's quick start: what
//! `.ci/run` builds against a fresh resolution of actix-coord's dependencies.

use actix::prelude::*;
use actix_coord::CausalContext;
use actix_coord::trace::CausalLayer;
use actix_web::{App, HttpServer, web};
use tracing_subscriber::{filter::LevelFilter, prelude::*};

/// Counts visits.
#[derive(Message)]
#[rtype(result = "u64")]
struct Visit;

/// A causal actor behind the web handlers.
#[derive(Default)]
struct Counter {
    visits: u64,
}

impl Actor for Counter {
    type Context = CausalContext<Self>;
}

impl Handler<Visit> for Counter {
    type Result = u64;
    fn handle(&mut self, _: Visit, ctx: &mut Self::Context) -> u64 {
        self.visits += 1;
        tracing::info!(clock = ?ctx.clocks().vector, "visit {}", self.visits);
        self.visits
    }
}

async fn index(counter: web::Data<Addr<Counter>>) -> String {
    match counter.send(Visit).await {
        Ok(n) => format!("visit {n}\n"),
        Err(e) => format!("error: {e}\n"),
    }
}

fn main() -> std::io::Result<()> {
    let (layer, guard) = CausalLayer::builder().jsonl_path("run.jsonl").build()?;
    let console = tracing_subscriber::fmt::layer().with_filter(LevelFilter::INFO);
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(layer).with(console),
    )
    .map_err(std::io::Error::other)?;
    actix_web::rt::System::new().block_on(async {
        let counter = web::Data::new(CausalContext::start(Counter::default()));
        HttpServer::new(move || {
            App::new()
                .app_data(counter.clone())
                .route("/", web::get().to(index))
        })
        .bind(("127.0.0.1", 0))?
        .run()
        .await
    })?;
    guard.close()
}
