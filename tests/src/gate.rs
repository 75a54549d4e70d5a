//! A TCP proxy in front of a node that lets a client send a given number of
//! `settlement_submitTx` calls and then holds everything that client sends
//! (HTTP and WebSocket alike). Tests use it to stop a challenger at an
//! exact point of a game — after its dispute and first move, with its next
//! move stuck on the wire — however fast the game would otherwise run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const NEEDLE: &[u8] = b"settlement_submitTx";

/// The proxy; stops accepting when dropped (open connections live until
/// their peers close).
#[derive(Debug)]
pub struct SubmitGate {
    /// Where clients connect.
    pub addr: SocketAddr,
    seen: Arc<AtomicUsize>,
    held: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl SubmitGate {
    /// Proxies to `upstream`, forwarding the first `allowed` submissions.
    pub async fn start(upstream: SocketAddr, allowed: usize) -> SubmitGate {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind the gate");
        let addr = l.local_addr().expect("gate address");
        let (seen, held) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let (s, h) = (seen.clone(), held.clone());
        let task = tokio::spawn(async move {
            while let Ok((c, _)) = l.accept().await {
                let Ok(u) = TcpStream::connect(upstream).await else { continue };
                tokio::spawn(pipe(c, u, allowed, s.clone(), h.clone()));
            }
        });
        SubmitGate { addr, seen, held, task }
    }

    /// The proxy's `http://` URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Whether a submission beyond the allowed ones is being held.
    pub fn holding(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }

    /// Submissions seen so far (forwarded or held).
    pub fn seen(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }
}

impl Drop for SubmitGate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(c: TcpStream, u: TcpStream, allowed: usize, seen: Arc<AtomicUsize>, held: Arc<AtomicBool>) {
    let (mut cr, mut cw) = c.into_split();
    let (mut ur, mut uw) = u.into_split();
    let up = async move {
        let mut buf = vec![0u8; 64 << 10];
        // The last bytes of the previous read: a needle split across reads
        // is still counted, once.
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let mut hay = std::mem::take(&mut tail);
            hay.extend_from_slice(&buf[..n]);
            let hits = hay.windows(NEEDLE.len()).filter(|w| *w == NEEDLE).count();
            if hits > 0 && seen.fetch_add(hits, Ordering::SeqCst) + hits > allowed {
                held.store(true, Ordering::SeqCst);
                std::future::pending::<()>().await;
            }
            if uw.write_all(&buf[..n]).await.is_err() {
                return;
            }
            tail = hay[hay.len().saturating_sub(NEEDLE.len() - 1)..].to_vec();
        }
    };
    let down = async move {
        let _ = tokio::io::copy(&mut ur, &mut cw).await;
    };
    tokio::join!(up, down);
}

/// A TCP proxy that forwards everything except requests naming one of the
/// `withheld` methods: the connection carrying one is closed unanswered.
/// Tests use it to play a node that stops serving data once disputed.
#[derive(Debug)]
pub struct Withhold {
    /// Where clients connect.
    pub addr: SocketAddr,
    refused: Arc<AtomicUsize>,
    /// Set by [`Withhold::serve_again`]: everything passes from then on.
    serving: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Withhold {
    /// Proxies to `upstream`, refusing `withheld` methods (plain HTTP
    /// JSON-RPC; WebSocket frames from a client are masked and pass).
    pub async fn start(upstream: SocketAddr, withheld: &[&'static str]) -> Withhold {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let addr = l.local_addr().expect("proxy address");
        let refused = Arc::new(AtomicUsize::new(0));
        let serving = Arc::new(AtomicBool::new(false));
        let (r, sv, needles) = (refused.clone(), serving.clone(), withheld.to_vec());
        let task = tokio::spawn(async move {
            while let Ok((c, _)) = l.accept().await {
                let Ok(u) = TcpStream::connect(upstream).await else { continue };
                tokio::spawn(withhold_pipe(c, u, needles.clone(), r.clone(), sv.clone()));
            }
        });
        Withhold { addr, refused, serving, task }
    }

    /// Stops withholding: from now on every request passes, on new and
    /// open connections alike.
    pub fn serve_again(&self) {
        self.serving.store(true, Ordering::SeqCst);
    }

    /// The proxy's `http://` URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests refused so far.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

impl Drop for Withhold {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn withhold_pipe(
    c: TcpStream,
    u: TcpStream,
    needles: Vec<&'static str>,
    refused: Arc<AtomicUsize>,
    serving: Arc<AtomicBool>,
) {
    let (mut cr, mut cw) = c.into_split();
    let (mut ur, mut uw) = u.into_split();
    let up = async move {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            // A method name is in the first bytes of a request body; the
            // bodies here are small, so one read holds it.
            if !serving.load(Ordering::SeqCst)
                && needles.iter().any(|m| buf[..n].windows(m.len()).any(|w| w == m.as_bytes()))
            {
                refused.fetch_add(1, Ordering::SeqCst);
                return;
            }
            if uw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let down = async move {
        let _ = tokio::io::copy(&mut ur, &mut cw).await;
    };
    // Closing the upstream half is not enough: drop both on refusal.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}
