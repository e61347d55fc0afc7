//! The socket layer behind a small trait: real TCP ([`TokioTransport`]) or turmoil's simulated
//! network (`TurmoilTransport`, with the `turmoil` feature).

use futures_util::future::BoxFuture;
use std::io;
use tokio::io::{AsyncRead, AsyncWrite};

/// A connected byte stream.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// A boxed connected stream.
pub type BoxStream = Box<dyn Stream>;

/// A bound listening socket.
pub trait Listener: Send + 'static {
    /// Waits for the next incoming connection; returns it and the peer's address.
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, String)>>;
    /// The local address, as text.
    fn local_addr(&self) -> io::Result<String>;
}

/// How a node binds and dials: the only place sockets are made.
pub trait Transport: Send + Sync + 'static {
    /// Binds a listener at `addr` (`host:port`).
    fn bind(&self, addr: &str) -> BoxFuture<'static, io::Result<Box<dyn Listener>>>;
    /// Connects to `addr` (`host:port`).
    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>>;
}

/// Real TCP over `tokio::net`, with `TCP_NODELAY`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioTransport;

struct TokioListener(tokio::net::TcpListener);

impl Listener for TokioListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, String)>> {
        Box::pin(async move {
            let (s, a) = self.0.accept().await?;
            let _ = s.set_nodelay(true);
            Ok((Box::new(s) as BoxStream, a.to_string()))
        })
    }
    fn local_addr(&self) -> io::Result<String> {
        Ok(self.0.local_addr()?.to_string())
    }
}

impl Transport for TokioTransport {
    fn bind(&self, addr: &str) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        let addr = addr.to_owned();
        Box::pin(async move {
            let l = tokio::net::TcpListener::bind(addr).await?;
            Ok(Box::new(TokioListener(l)) as Box<dyn Listener>)
        })
    }
    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>> {
        let addr = addr.to_owned();
        Box::pin(async move {
            let s = tokio::net::TcpStream::connect(addr).await?;
            let _ = s.set_nodelay(true);
            Ok(Box::new(s) as BoxStream)
        })
    }
}

/// turmoil's simulated TCP (deterministic simulation tests). Addresses are `host:port` with
/// turmoil host names.
#[cfg(feature = "turmoil")]
#[derive(Debug, Clone, Copy, Default)]
pub struct TurmoilTransport;

#[cfg(feature = "turmoil")]
struct TurmoilListener(turmoil::net::TcpListener);

#[cfg(feature = "turmoil")]
impl Listener for TurmoilListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, String)>> {
        Box::pin(async move {
            let (s, a) = self.0.accept().await?;
            Ok((Box::new(s) as BoxStream, a.to_string()))
        })
    }
    fn local_addr(&self) -> io::Result<String> {
        Ok(self.0.local_addr()?.to_string())
    }
}

#[cfg(feature = "turmoil")]
impl Transport for TurmoilTransport {
    fn bind(&self, addr: &str) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        let addr = addr.to_owned();
        Box::pin(async move {
            let l = turmoil::net::TcpListener::bind(addr).await?;
            Ok(Box::new(TurmoilListener(l)) as Box<dyn Listener>)
        })
    }
    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>> {
        let addr = addr.to_owned();
        Box::pin(async move {
            let s = turmoil::net::TcpStream::connect(addr).await?;
            Ok(Box::new(s) as BoxStream)
        })
    }
}
