//! Running an emulator: [`serve`] on a thread of its own, and the [`instrument`] middleware
//! (latency, faults, request log).

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::faults::{FaultInjector, FaultKind};
use super::log::{LoggedRequest, RequestLog};

/// How long in-flight requests may finish after shutdown is asked before they are dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

/// Extra latency added before every request is answered. Cheap to clone (clones share it).
#[derive(Debug, Clone, Default)]
pub struct Latency {
    micros: Arc<AtomicU64>,
}

impl Latency {
    /// A latency of `latency`.
    pub fn new(latency: Duration) -> Self {
        let this = Self::default();
        this.set(latency);
        this
    }

    /// Sets the latency of the requests that arrive from now on.
    pub fn set(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.micros.store(micros, Ordering::SeqCst);
    }

    /// The current latency.
    pub fn get(&self) -> Duration {
        Duration::from_micros(self.micros.load(Ordering::SeqCst))
    }
}

/// Turns an injected fault into the emulated service's own response (status, headers and
/// error body in the service's shape).
pub type FaultRenderer = Arc<dyn Fn(&FaultKind) -> Response + Send + Sync>;

/// What [`instrument`] adds to an emulator's router. Cheap to clone.
#[derive(Clone)]
pub struct Instrumentation {
    /// The faults to inject.
    pub faults: FaultInjector,
    /// The latency added to every request.
    pub latency: Latency,
    /// Where every request is logged.
    pub log: RequestLog,
    /// How the emulated service answers an injected fault.
    pub renderer: FaultRenderer,
}

impl fmt::Debug for Instrumentation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instrumentation")
            .field("faults", &self.faults)
            .field("latency", &self.latency)
            .field("logged", &self.log.len())
            .finish_non_exhaustive()
    }
}

/// Wraps every route of `router` (and its fallback) so that each request, in this order:
/// is given its fault by the [`FaultInjector`] (decided on arrival), waits the current
/// [`Latency`], is answered by the fault or the route, and is logged in the [`RequestLog`]
/// with its final status.
pub fn instrument(router: Router, instrumentation: Instrumentation) -> Router {
    router.layer(axum::middleware::from_fn_with_state(instrumentation, middleware))
}

/// Logs its entry when dropped: on completion with the real status, or with 499 when the
/// client went away and the request future was dropped mid-way.
struct LogGuard {
    log: RequestLog,
    entry: Option<LoggedRequest>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some(mut entry) = self.entry.take() {
            entry.duration = entry.at.elapsed();
            self.log.push(entry);
        }
    }
}

async fn middleware(State(instrumentation): State<Instrumentation>, request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let fault = instrumentation.faults.decide(&method, &path);
    let mut guard = LogGuard {
        log: instrumentation.log.clone(),
        entry: Some(LoggedRequest { method, path, status: 499, at: Instant::now(), duration: Duration::ZERO, fault }),
    };
    let latency = instrumentation.latency.get();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let response = match fault {
        None => next.run(request).await,
        Some(FaultKind::Slow { delay }) => {
            tokio::time::sleep(delay).await;
            next.run(request).await
        }
        Some(kind @ FaultKind::Timeout { hold }) => {
            tokio::time::sleep(hold).await;
            (instrumentation.renderer)(&kind)
        }
        Some(kind) => (instrumentation.renderer)(&kind),
    };
    if let Some(entry) = guard.entry.as_mut() {
        entry.status = response.status().as_u16();
    }
    drop(guard);
    response
}

/// A running emulator server. Dropping it (or [`shutdown`](Self::shutdown)) stops the
/// server: new connections are refused, in-flight requests get a short grace period.
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle").field("addr", &self.addr).field("running", &self.thread.is_some()).finish()
    }
}

impl ServerHandle {
    /// The address the server listens on (`127.0.0.1:<port>`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and waits for its thread. Idempotent.
    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Serves `router` on `127.0.0.1` at a port the system chooses, on a thread of its own
/// with its own single-threaded tokio runtime, so it works the same from synchronous code,
/// from any tokio runtime flavour, and across runtimes (a test may start one emulator and
/// use it from several `#[tokio::test]`s).
///
/// # Errors
/// When the socket cannot be bound or the thread or runtime cannot be created.
pub fn serve(router: Router) -> io::Result<ServerHandle> {
    serve_with(|_| router)
}

/// As [`serve`], for a router that needs to know its own address (to write absolute
/// `href` and `next` links): `make` is called with the bound address before serving.
///
/// # Errors
/// As [`serve`].
pub fn serve_with(make: impl FnOnce(SocketAddr) -> Router) -> io::Result<ServerHandle> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let router = make(addr);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let thread = std::thread::Builder::new().name(format!("emulator-{}", addr.port())).spawn(move || {
        runtime.block_on(run(listener, router, stopped));
        runtime.shutdown_timeout(Duration::from_millis(100));
    })?;
    Ok(ServerHandle { addr, stop: Some(stop), thread: Some(thread) })
}

async fn run(listener: std::net::TcpListener, router: Router, stopped: tokio::sync::watch::Receiver<bool>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let mut graceful_signal = stopped.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        // An error means the handle was dropped without a send: stop as well.
        let _ = graceful_signal.wait_for(|stop| *stop).await;
    });
    let mut hard_signal = stopped;
    tokio::select! {
        _ = server => {}
        () = async move {
            let _ = hard_signal.wait_for(|stop| *stop).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {}
    }
}
