//! A fault-injecting TCP proxy between one stage and the broker, for the
//! exactly-once tests: it forwards Kafka frames both ways and, on the
//! test's command, delays them ([`FaultProxy::set_delay`]), cuts every
//! open connection ([`FaultProxy::cut_all`]), cuts the next connection
//! that carries a given request, before it reaches the broker or after it
//! did but before its answer comes back ([`FaultProxy::cut_next`]: a
//! produce stored but never acknowledged, mid-batch), holds everything for
//! a while, like a network that drops packets until it heals
//! ([`FaultProxy::black_hole`]), and restores normal service
//! ([`FaultProxy::restore`]).
//!
//! **How a stage's traffic is made to go through it.** A Kafka client
//! contacts its bootstrap address once, then connects to the addresses the
//! cluster advertises in its Metadata and FindCoordinator answers; a plain
//! TCP proxy is therefore bypassed right after bootstrap. The alternatives
//! were weighed against the local broker, nisshi 0.8.1:
//! - `--advertised-listener-url` pointing at the proxy would send *every*
//!   client of that broker through the proxy, not one chosen stage;
//! - a second nisshi process on the same sqlite storage, advertising the
//!   proxy, would make two brokers share one database file, a set-up
//!   nisshi's sqlite engine is not tested for (its multi-broker mode is the
//!   postgres one), and the faults would then depend on it;
//! - librdkafka has no client-side address rewriting (`broker.address.family`
//!   only picks IPv4 or IPv6; `connect_cb`/`resolve_cb` exist in C but not in
//!   the stage binaries, and would need code in the stages under test).
//!
//! So the proxy speaks just enough of the protocol ([`frames`]): it reads
//! whole frames, remembers which requests were Metadata or FindCoordinator,
//! and rewrites the broker ports in their answers to its own port. A stage
//! started with its brokers at the proxy ([`crate::Pipeline::spawn_through`])
//! learns only the proxy's address, so all its connections (producer,
//! consumer, group coordinator, lag sampler) go through it, while every
//! other stage and the test's own clients talk to the broker directly.
//!
//! Limits: one upstream broker (every advertised broker is rewritten to the
//! proxy, which forwards all to that one: right for the single local
//! broker, wrong for a multi-broker cluster); the proxy listens on
//! 127.0.0.1 and rewrites ports only, so the broker must advertise a
//! loopback host; no TLS or SASL; a delay applies per frame, so it also
//! slows a connection's throughput; a black hole holds frames (as TCP
//! retransmission would) rather than losing them, so a client sees a long
//! silence, and a connection cut, not corrupt data.

pub mod frames;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use frames::RequestHeader;

/// Largest frame forwarded (a fetch answer can hold many MiB).
const MAX_FRAME: usize = 256 * 1024 * 1024;

/// Where [`FaultProxy::cut_next`] cuts the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutPoint {
    /// Before the request reaches the broker: it is never processed.
    BeforeRequest,
    /// After the broker got the request, before its answer reaches the
    /// client: processed (a produce is stored) but never acknowledged.
    BeforeResponse,
}

/// The faults in force, seen by every connection.
#[derive(Debug, Clone, Default)]
struct Faults {
    /// Added before each frame is forwarded.
    delay: Duration,
    /// Nothing is forwarded, and no new connection reaches the broker,
    /// until then.
    black_hole_until: Option<Instant>,
    /// Connections opened before the latest change of it are cut.
    generation: u64,
}

/// State shared by the accept loop, the connections and the test.
struct Control {
    upstream: String,
    port: u16,
    faults: watch::Sender<Faults>,
    armed_cut: Mutex<Option<(i16, CutPoint)>>,
    cuts: watch::Sender<u64>,
    open: AtomicU64,
    accepted: AtomicU64,
    requests: Mutex<HashMap<i16, u64>>,
    /// The most requests ever sent and not yet answered at once on one
    /// connection that carried a produce.
    most_unanswered_on_producers: AtomicU64,
}

impl Control {
    fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        mutex.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a forwarded request; takes the armed cut if it matches.
    fn on_request(&self, api_key: i16) -> Option<CutPoint> {
        *Self::lock(&self.requests).entry(api_key).or_default() += 1;
        let mut armed = Self::lock(&self.armed_cut);
        match *armed {
            Some((key, point)) if key == api_key => {
                *armed = None;
                Some(point)
            }
            _ => None,
        }
    }

    fn cut_fired(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }
}

/// A running proxy; dropping it cuts every connection.
pub struct FaultProxy {
    address: SocketAddr,
    control: Arc<Control>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`
    /// (`host:port` of the broker). Runs on the current tokio runtime.
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy's port");
        let address = listener.local_addr().expect("the proxy's address");
        let control = Arc::new(Control {
            upstream: upstream.to_string(),
            port: address.port(),
            faults: watch::Sender::new(Faults::default()),
            armed_cut: Mutex::new(None),
            cuts: watch::Sender::new(0),
            open: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            requests: Mutex::new(HashMap::new()),
            most_unanswered_on_producers: AtomicU64::new(0),
        });
        let accepting = Arc::clone(&control);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let _ = accepting.accepted.fetch_add(1, Ordering::SeqCst);
                drop(tokio::spawn(serve(Arc::clone(&accepting), client)));
            }
        });
        Self {
            address,
            control,
            accept,
        }
    }

    /// The address to give a client as its bootstrap servers.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Delays every frame by `delay` before forwarding it (both ways).
    pub fn set_delay(&self, delay: Duration) {
        self.control.faults.send_modify(|f| f.delay = delay);
    }

    /// Forwards nothing for `duration`: open connections hold what they
    /// read, new ones are accepted but not connected to the broker. Then
    /// everything flows again.
    pub fn black_hole(&self, duration: Duration) {
        let until = Instant::now() + duration;
        self.control
            .faults
            .send_modify(|f| f.black_hole_until = Some(until));
    }

    /// Ends a black hole and removes the delay.
    pub fn restore(&self) {
        self.control.faults.send_modify(|f| {
            f.delay = Duration::ZERO;
            f.black_hole_until = None;
        });
    }

    /// Cuts every open connection; returns how many were open.
    pub fn cut_all(&self) -> u64 {
        let open = self.control.open.load(Ordering::SeqCst);
        self.control.faults.send_modify(|f| f.generation += 1);
        open
    }

    /// Cuts the next connection that sends a request of `api_key`
    /// ([`frames::PRODUCE`], ...) at `point`. One cut per call; a later
    /// call replaces one that has not fired yet.
    pub fn cut_next(&self, api_key: i16, point: CutPoint) {
        *Control::lock(&self.control.armed_cut) = Some((api_key, point));
    }

    /// Waits until `n` cuts armed by [`Self::cut_next`] have fired in all
    /// (at most `timeout`); returns whether they did.
    pub async fn wait_for_cuts(&self, n: u64, timeout: Duration) -> bool {
        let mut cuts = self.control.cuts.subscribe();
        tokio::time::timeout(timeout, cuts.wait_for(|fired| *fired >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Connections accepted since the start.
    pub fn connections(&self) -> u64 {
        self.control.accepted.load(Ordering::SeqCst)
    }

    /// The most requests a producer connection ever had sent and not yet
    /// answered at once (counted from its first produce): 1 when the client
    /// keeps one request in flight, up to its pipelining limit otherwise.
    pub fn most_unanswered_on_producers(&self) -> u64 {
        self.control
            .most_unanswered_on_producers
            .load(Ordering::SeqCst)
    }

    /// Requests of `api_key` forwarded (or cut) since the start.
    pub fn requests(&self, api_key: i16) -> u64 {
        Control::lock(&self.control.requests)
            .get(&api_key)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        let _ = self.cut_all();
    }
}

/// One client connection, until it closes, fails or is cut.
async fn serve(control: Arc<Control>, mut client: TcpStream) {
    let mut faults = control.faults.subscribe();
    let generation = faults.borrow().generation;
    let _ = client.set_nodelay(true);
    // Cut means reset, as a failed network path looks to a client.
    let _ = client.set_zero_linger();
    hold(&mut faults).await;
    let Ok(mut upstream) = TcpStream::connect(&control.upstream).await else {
        return;
    };
    let _ = upstream.set_nodelay(true);
    let _ = control.open.fetch_add(1, Ordering::SeqCst);
    let connection = Connection {
        control: &control,
        pending: Mutex::new(HashMap::new()),
        cut_before: Mutex::new(None),
        unanswered: AtomicU64::new(0),
        carried_produce: std::sync::atomic::AtomicBool::new(false),
    };
    let (mut client_read, mut client_write) = client.split();
    let (mut upstream_read, mut upstream_write) = upstream.split();
    tokio::select! {
        _ = connection.pump(&mut client_read, &mut upstream_write, faults.clone(), Connection::on_request) => {}
        _ = connection.pump(&mut upstream_read, &mut client_write, faults.clone(), Connection::on_response) => {}
        () = cut_when_generation_changes(faults, generation) => {}
    }
    // A connection that closed before the answer its cut waits for did not
    // cut anything: the next request of that kind takes the cut instead.
    let unfired = Control::lock(&connection.cut_before).take();
    if let Some((_, api_key)) = unfired {
        let mut armed = Control::lock(&control.armed_cut);
        if armed.is_none() {
            *armed = Some((api_key, CutPoint::BeforeResponse));
        }
    }
    let _ = control.open.fetch_sub(1, Ordering::SeqCst);
}

/// What one connection remembers between its two directions.
struct Connection<'a> {
    control: &'a Control,
    /// Requests whose answers carry broker addresses, by correlation id.
    pending: Mutex<HashMap<i32, RequestHeader>>,
    /// The request (correlation id, API key) whose answer cuts the
    /// connection.
    cut_before: Mutex<Option<(i32, i16)>>,
    /// Requests read from the client and not yet answered.
    unanswered: AtomicU64,
    /// Whether the client sent a produce on this connection.
    carried_produce: std::sync::atomic::AtomicBool,
}

/// What to do with a frame read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Forward it (after the faults in force).
    Forward,
    /// Cut the connection instead (an armed cut fired).
    Cut,
}

impl Connection<'_> {
    /// Client → broker: remembers the requests whose answers carry broker
    /// addresses, and fires an armed cut.
    fn on_request(&self, frame: &mut [u8]) -> std::io::Result<Flow> {
        let header = frames::request_header(frame).map_err(invalid)?;
        let unanswered = self.unanswered.fetch_add(1, Ordering::SeqCst) + 1;
        if header.api_key == frames::PRODUCE {
            self.carried_produce.store(true, Ordering::SeqCst);
        }
        if self.carried_produce.load(Ordering::SeqCst) {
            let _ = self
                .control
                .most_unanswered_on_producers
                .fetch_max(unanswered, Ordering::SeqCst);
        }
        if frames::carries_addresses(header.api_key) {
            let _ = Control::lock(&self.pending).insert(header.correlation_id, header);
        }
        Ok(match self.control.on_request(header.api_key) {
            Some(CutPoint::BeforeRequest) => Flow::Cut,
            Some(CutPoint::BeforeResponse) => {
                *Control::lock(&self.cut_before) = Some((header.correlation_id, header.api_key));
                Flow::Forward
            }
            None => Flow::Forward,
        })
    }

    /// Broker → client: rewrites broker ports to the proxy's, and cuts
    /// before the answer an armed cut waits for.
    fn on_response(&self, frame: &mut [u8]) -> std::io::Result<Flow> {
        let correlation_id = frames::correlation_id(frame).map_err(invalid)?;
        let _ = self
            .unanswered
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        {
            let mut cut_before = Control::lock(&self.cut_before);
            if cut_before.is_some_and(|(id, _)| id == correlation_id) {
                *cut_before = None;
                return Ok(Flow::Cut);
            }
        }
        let request = Control::lock(&self.pending).remove(&correlation_id);
        if let Some(request) = request {
            let _ = frames::rewrite_ports(&request, frame, self.control.port).map_err(invalid)?;
        }
        Ok(Flow::Forward)
    }

    /// Forwards frames one way until the connection ends or is cut.
    async fn pump(
        &self,
        from: &mut (impl AsyncRead + Unpin),
        to: &mut (impl AsyncWrite + Unpin),
        mut faults: watch::Receiver<Faults>,
        on_frame: impl Fn(&Self, &mut [u8]) -> std::io::Result<Flow>,
    ) -> std::io::Result<()> {
        loop {
            let mut frame = read_frame(from).await?;
            if on_frame(self, &mut frame)? == Flow::Cut {
                self.control.cut_fired();
                return Ok(());
            }
            hold(&mut faults).await;
            write_frame(to, &frame).await?;
        }
    }
}

fn invalid(error: frames::Malformed) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string())
}

/// Waits out a black hole, then the delay.
async fn hold(faults: &mut watch::Receiver<Faults>) {
    loop {
        let (delay, until) = {
            let f = faults.borrow_and_update();
            (f.delay, f.black_hole_until)
        };
        match until {
            Some(until) if until > Instant::now() => {
                tokio::select! {
                    () = tokio::time::sleep_until(until) => {}
                    _ = faults.changed() => {}
                }
            }
            _ => {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                return;
            }
        }
    }
}

/// Resolves when [`FaultProxy::cut_all`] is called after `generation`
/// (or the proxy is gone).
async fn cut_when_generation_changes(mut faults: watch::Receiver<Faults>, generation: u64) {
    let _ = faults.wait_for(|f| f.generation != generation).await;
}

async fn read_frame(from: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Vec<u8>> {
    let length = from.read_i32().await?;
    let length = usize::try_from(length)
        .ok()
        .filter(|n| *n <= MAX_FRAME)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad frame length"))?;
    let mut frame = vec![0; length];
    let _ = from.read_exact(&mut frame).await?;
    Ok(frame)
}

async fn write_frame(to: &mut (impl AsyncWrite + Unpin), frame: &[u8]) -> std::io::Result<()> {
    let length = i32::try_from(frame.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "frame too long"))?;
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(frame);
    to.write_all(&out).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake broker: answers each request frame with its correlation id
    /// and the request's api key, and counts what it received.
    async fn fake_broker() -> (String, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let received = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&received);
        drop(tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let counter = Arc::clone(&counter);
                drop(tokio::spawn(async move {
                    while let Ok(frame) = read_frame(&mut socket).await {
                        let _ = counter.fetch_add(1, Ordering::SeqCst);
                        let mut answer = frame[4..8].to_vec();
                        answer.extend_from_slice(&frame[..2]);
                        if write_frame(&mut socket, &answer).await.is_err() {
                            return;
                        }
                    }
                }));
            }
        }));
        (address, received)
    }

    fn request(api_key: i16, correlation_id: i32) -> Vec<u8> {
        let mut frame = api_key.to_be_bytes().to_vec();
        frame.extend_from_slice(&9i16.to_be_bytes());
        frame.extend_from_slice(&correlation_id.to_be_bytes());
        frame
    }

    async fn round_trip(client: &mut TcpStream, api_key: i16, id: i32) -> std::io::Result<Vec<u8>> {
        write_frame(client, &request(api_key, id)).await?;
        read_frame(client).await
    }

    #[tokio::test]
    async fn frames_flow_are_held_by_a_black_hole_and_flow_again() {
        let (upstream, received) = fake_broker().await;
        let proxy = FaultProxy::start(&upstream).await;
        let mut client = TcpStream::connect(proxy.address()).await.expect("connect");
        let answer = round_trip(&mut client, frames::PRODUCE, 1)
            .await
            .expect("answer");
        assert_eq!(&answer[..4], &1i32.to_be_bytes());
        proxy.black_hole(Duration::from_millis(600));
        let started = Instant::now();
        let answer = round_trip(&mut client, frames::FETCH, 2)
            .await
            .expect("answer");
        assert_eq!(&answer[..4], &2i32.to_be_bytes());
        assert!(started.elapsed() >= Duration::from_millis(550), "held");
        let answer = round_trip(&mut client, frames::FETCH, 3)
            .await
            .expect("answer");
        assert_eq!(&answer[..4], &3i32.to_be_bytes(), "flows again");
        assert_eq!(received.load(Ordering::SeqCst), 3);
        assert_eq!(
            (
                proxy.requests(frames::PRODUCE),
                proxy.requests(frames::FETCH)
            ),
            (1, 2)
        );
    }

    #[tokio::test]
    async fn a_cut_before_the_answer_lets_the_broker_see_the_request() {
        let (upstream, received) = fake_broker().await;
        let proxy = FaultProxy::start(&upstream).await;
        let mut client = TcpStream::connect(proxy.address()).await.expect("connect");
        let _ = round_trip(&mut client, frames::FETCH, 1)
            .await
            .expect("answer");
        proxy.cut_next(frames::PRODUCE, CutPoint::BeforeResponse);
        let _ = round_trip(&mut client, frames::FETCH, 2)
            .await
            .expect("not cut");
        assert!(
            round_trip(&mut client, frames::PRODUCE, 3).await.is_err(),
            "the answer never comes"
        );
        assert!(proxy.wait_for_cuts(1, Duration::from_secs(5)).await);
        assert_eq!(received.load(Ordering::SeqCst), 3, "the broker got it");
        let mut again = TcpStream::connect(proxy.address()).await.expect("connect");
        let _ = round_trip(&mut again, frames::PRODUCE, 4)
            .await
            .expect("one cut only");
        assert_eq!(proxy.cut_all(), 1);
        assert!(
            round_trip(&mut again, frames::FETCH, 5).await.is_err(),
            "cut"
        );
    }
}
