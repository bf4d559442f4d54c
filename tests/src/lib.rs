//! Test harness: isolated pipelines on the shared local stack.
//!
//! `scripts/test.sh` starts the real infrastructure once (nisshi broker,
//! PostgreSQL, the development registry) and passes its addresses in
//! `ESTATE_TEST_*` variables. Each test then starts its own [`Pipeline`]:
//! its own topic prefix, consumer groups and database, and its own five
//! service processes, which it can kill (`SIGKILL`) and restart. Tests
//! therefore run in parallel without seeing each other's records.

pub mod exactly_once;
pub mod fault_proxy;
pub mod fluximmo_api;
#[cfg(test)]
mod hand_kept_lists;
pub mod history;
pub mod latest_states;
pub mod legit_probe;
pub mod otlp;
pub mod own_registry;
pub mod trickle;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::isolated_pipeline::IsolatedPipeline;
use common::topics::TopicNames;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// The shared infrastructure, from the environment `scripts/test.sh` sets.
#[derive(Debug, Clone)]
pub struct Stack {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Schema registry base URL.
    pub registry_url: String,
    /// PostgreSQL port on 127.0.0.1.
    pub pg_port: u16,
    /// Directory holding the built binaries.
    pub bin_dir: PathBuf,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the integration tests through scripts/test.sh, which starts the local stack")
    })
}

impl Stack {
    /// Reads the stack's addresses from the environment.
    pub fn from_env() -> Self {
        Self {
            brokers: env("ESTATE_TEST_BROKERS"),
            registry_url: env("ESTATE_TEST_REGISTRY"),
            pg_port: env("ESTATE_TEST_PG_PORT")
                .parse()
                .expect("ESTATE_TEST_PG_PORT is a port"),
            bin_dir: PathBuf::from(env("ESTATE_TEST_BIN_DIR")),
        }
    }

    /// A PostgreSQL connection string for `dbname` as `user`.
    pub fn pg_url(&self, user: &str, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} dbname={dbname}",
            self.pg_port
        )
    }
}

pub use common::isolated_pipeline::Service;

/// The development secret of the test pipelines' `generic` source.
pub const GENERIC_SECRET: &str = "test-generic-secret";
/// Fluximmo's token (source `fluximmo`, query parameter `token`).
pub const FLUXIMMO_TOKEN: &str = "test-fluximmo-token";
/// Immoteur's current bearer token (label `current`, source `immoteur`).
pub const IMMOTEUR_TOKEN: &str = "test-immoteur-token";
/// Standard Webhooks secret, label `current` (source `standard`).
pub const STANDARD_SECRET: &str = "whsec_dGVzdC1zdGFuZGFyZC13ZWJob29rcy1rZXk=";
/// Standard Webhooks secret still active during a rotation, label `previous`.
pub const STANDARD_PREVIOUS_SECRET: &str = "whsec_dGVzdC1zdGFuZGFyZC13ZWJob29rcy1vbGQ=";
/// Stream.estate's documented sending addresses.
pub const STREAM_ESTATE_ADDRESSES: [&str; 2] = ["178.238.226.136", "144.76.91.183"];
/// The test pipelines' header and body read deadlines, ms.
pub const READ_TIMEOUT_MS: u64 = 1500;
/// Every secret the test config holds, to prove none leaks into a response.
pub const ALL_SECRETS: [&str; 5] = [
    GENERIC_SECRET,
    FLUXIMMO_TOKEN,
    IMMOTEUR_TOKEN,
    STANDARD_SECRET,
    STANDARD_PREVIOUS_SECRET,
];

/// The test pipelines' ingest config: one source per provider.
///
/// - `generic`: generic HMAC with [`GENERIC_SECRET`];
/// - `generic-traced`: the same, trusted for tracing (`trust_traceparent`);
/// - `generic-limited`, `generic-capped`: the same, with a rate limit of one
///   request per 1,000 s, and one request in flight at most;
/// - `fluximmo`: secret token in the `token` query parameter;
/// - `stream-estate`: the documented addresses, with 127.0.0.1 as a trusted
///   proxy (tests send `X-Forwarded-For`);
/// - `stream-estate-direct`: the same addresses, no trusted proxy;
/// - `immoteur`: bearer token (the Immoteur headers are implied);
/// - `standard`: Standard Webhooks, two active secrets (rotation).
pub fn ingest_config() -> String {
    let [se1, se2] = STREAM_ESTATE_ADDRESSES;
    format!(
        r#"
# Short read deadlines so the slow-client tests run quickly.
body_read_timeout_ms = {READ_TIMEOUT_MS}
header_read_timeout_ms = {READ_TIMEOUT_MS}

[[sources]]
name = "generic"
provider = "generic"
[[sources.checks]]
kind = "hmac-sha256"
secrets = [{{ label = "test", value = "{GENERIC_SECRET}" }}]

# The same check, trusted for tracing: a sender's `traceparent` becomes
# the parent of ingest's span instead of a link.
[[sources]]
name = "generic-traced"
provider = "generic"
trust_traceparent = true
[[sources.checks]]
kind = "hmac-sha256"
secrets = [{{ label = "test", value = "{GENERIC_SECRET}" }}]

# The same check, with a rate limit of one request per 1,000 s.
[[sources]]
name = "generic-limited"
provider = "generic"
rate_limit = {{ per_second = 0.001, burst = 1 }}
[[sources.checks]]
kind = "hmac-sha256"
secrets = [{{ label = "test", value = "{GENERIC_SECRET}" }}]

# The same check, one request at a time.
[[sources]]
name = "generic-capped"
provider = "generic"
max_in_flight = 1
[[sources.checks]]
kind = "hmac-sha256"
secrets = [{{ label = "test", value = "{GENERIC_SECRET}" }}]

[[sources]]
name = "fluximmo"
provider = "fluximmo"
[[sources.checks]]
kind = "secret-token"
query = "token"
tokens = [{{ label = "current", value = "{FLUXIMMO_TOKEN}" }}]

[[sources]]
name = "stream-estate"
provider = "stream-estate"
[[sources.checks]]
kind = "source-address"
allow = ["{se1}/32", "{se2}"]
trusted_proxies = ["127.0.0.1/32"]

[[sources]]
name = "stream-estate-direct"
provider = "stream-estate"
[[sources.checks]]
kind = "source-address"
allow = ["{se1}/32", "{se2}"]

[[sources]]
name = "immoteur"
provider = "immoteur"
[[sources.checks]]
kind = "bearer"
tokens = [{{ label = "current", value = "{IMMOTEUR_TOKEN}" }}]

[[sources]]
name = "standard"
provider = "standard-webhooks"
[[sources.checks]]
kind = "standard-webhooks"
secrets = [
  {{ label = "current", value = "{STANDARD_SECRET}" }},
  {{ label = "previous", value = "{STANDARD_PREVIOUS_SECRET}" }},
]
"#
    )
}

/// Asserts a JSON error answer: its status, its `error` code, and that no
/// configured secret appears in it; returns the body.
pub async fn assert_error(
    response: reqwest::Response,
    status: u16,
    error: &str,
) -> serde_json::Value {
    assert_eq!(response.status(), status);
    let body: serde_json::Value = response.json().await.expect("a JSON error body");
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["error"], error, "{body}");
    let text = body.to_string();
    for secret in ALL_SECRETS {
        assert!(!text.contains(secret), "a secret leaked: {text}");
    }
    body
}

/// One isolated pipeline.
pub struct Pipeline {
    /// The shared infrastructure.
    pub stack: Stack,
    /// Topic names (with this pipeline's prefix).
    pub topics: TopicNames,
    /// This pipeline's database.
    pub database: String,
    /// Base URL of this pipeline's ingest.
    pub ingest_url: String,
    ingest_port: u16,
    dir: PathBuf,
    children: HashMap<Service, Child>,
    /// Extra instances of a service (scaling and rebalancing tests).
    others: Vec<(Service, Child)>,
    /// Environment added to every service this pipeline starts.
    extra_env: Vec<(String, String)>,
    /// The `/metrics` port of each consumer stage's first instance.
    metrics_ports: HashMap<Service, u16>,
    http: reqwest::Client,
}

/// Events `0..events` spread over `properties` properties round-robin
/// (event `i` is about property `i % properties`): the newest event of
/// each property, by index.
pub fn newest_event_per_property(events: usize, properties: usize) -> Vec<usize> {
    (0..properties)
        .map(|p| ((events - 1 - p) / properties) * properties + p)
        .collect()
}

/// Current Unix time in seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A generic `property.created` envelope numbered `i` under `tag`: event id
/// `evt_<tag>_<i>` (dedupe key `generic:evt_<tag>_<i>`), property
/// `prop_<tag>_<i>`, a price that differs per webhook.
pub fn numbered_webhook(tag: &str, i: usize) -> Vec<u8> {
    format!(
        r#"{{"id":"evt_{tag}_{i}","type":"property.created","created":"2024-05-01T10:00:00Z",
           "data":{{"property":{{"id":"prop_{tag}_{i}","price":{price}}}}}}}"#,
        price = 200_000 + i,
    )
    .into_bytes()
}

/// Reads a fixture from `tests/fixtures/`.
pub fn fixture(path: &str) -> Vec<u8> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", full.display()))
}

/// A free port per consumer stage, none equal to ingest's or each other's
/// (the kernel may hand out a port again until something binds it).
fn distinct_metrics_ports(ingest_port: u16) -> HashMap<Service, u16> {
    let mut taken = vec![ingest_port];
    Service::ALL
        .into_iter()
        .chain([Service::Enrich])
        .map(|service| {
            let port = std::iter::repeat_with(free_port)
                .find(|port| !taken.contains(port))
                .expect("a free port");
            taken.push(port);
            (service, port)
        })
        .collect()
}

/// A port free now for a service to listen on. Chosen below the kernel's
/// ephemeral range (32768 and up): a port from that range, released here,
/// can be taken by any outgoing connection (every Kafka client makes many)
/// before the service binds it. Never the same port twice in one process.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    // 20000..25000 holds none of the stack's ports (15432, 18081, 19092,
    // 25432, 28081, 29092); each test process starts at its own place.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 50) as u16 * 100,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..5_000 {
        let port = 20_000 + (NEXT.fetch_add(1, Ordering::SeqCst) - 20_000) % 5_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

impl Pipeline {
    /// Creates topics and a database for `name`, and starts all five services.
    pub async fn start(name: &str) -> Self {
        Self::start_with(name, &Service::ALL, None, &[]).await
    }

    /// Like [`Pipeline::start`], with `env` added to every service
    /// (e.g. `("DEDUPE__TTL_SECS", "3")`).
    pub async fn start_with_env(name: &str, env: &[(&str, &str)]) -> Self {
        Self::start_with(name, &Service::ALL, None, env).await
    }

    /// Like [`Pipeline::start`] with only ingest running (for tests of the
    /// HTTP front door, which need no downstream stage).
    pub async fn start_ingest(name: &str) -> Self {
        Self::start_with(name, &[Service::Ingest], None, &[]).await
    }

    /// Like [`Pipeline::start_ingest`], with ingest configured by
    /// `ingest_config` (TOML) instead of [`ingest_config()`].
    pub async fn start_ingest_with_config(name: &str, ingest_config: &str) -> Self {
        Self::start_configured(name, &[Service::Ingest], None, &[], ingest_config).await
    }

    /// Creates topics and a database for `name` on `brokers` (the shared
    /// stack's broker if `None`), and starts `services` with `env` added.
    pub async fn start_with(
        name: &str,
        services: &[Service],
        brokers: Option<String>,
        env: &[(&str, &str)],
    ) -> Self {
        Self::start_configured(name, services, brokers, env, &ingest_config()).await
    }

    async fn start_configured(
        name: &str,
        services: &[Service],
        brokers: Option<String>,
        env: &[(&str, &str)],
        ingest_config: &str,
    ) -> Self {
        let mut stack = Stack::from_env();
        if let Some(brokers) = brokers {
            stack.brokers = brokers;
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let tag = format!("{}_{}", name.replace('-', "_"), &id[..8]);
        let topics = TopicNames {
            prefix: format!("t.{tag}."),
            ..TopicNames::default()
        };
        let dir = std::env::temp_dir().join(format!("estate-test-{tag}"));
        std::fs::create_dir_all(&dir).expect("create the test directory");
        let status = Command::new(stack.bin_dir.join("create-topics"))
            .args(["--brokers", &stack.brokers, "--prefix", &topics.prefix])
            .stdout(Stdio::null())
            .status()
            .expect("run create-topics");
        assert!(
            status.success(),
            "create-topics failed for {}",
            topics.prefix
        );
        let database = format!("t_{tag}");
        let (admin, connection) =
            tokio_postgres::connect(&stack.pg_url("postgres", "postgres"), tokio_postgres::NoTls)
                .await
                .expect("connect to the stack's PostgreSQL as postgres");
        let _conn = tokio::spawn(connection);
        admin
            .batch_execute(&format!("CREATE DATABASE {database} OWNER estate"))
            .await
            .expect("create the test database");
        let ingest_port = free_port();
        let ingest_config_path = dir.join("ingest.toml");
        std::fs::write(&ingest_config_path, ingest_config).expect("write the ingest config");
        let mut pipeline = Self {
            stack,
            topics,
            database,
            ingest_url: format!("http://127.0.0.1:{ingest_port}"),
            ingest_port,
            dir,
            children: HashMap::new(),
            others: Vec::new(),
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            metrics_ports: distinct_metrics_ports(ingest_port),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
        };
        for service in services {
            pipeline.spawn(*service);
        }
        pipeline.wait_ready().await;
        pipeline
    }

    fn env_for(&self, service: Service) -> Vec<(String, String)> {
        let pipeline = IsolatedPipeline {
            brokers: self.stack.brokers.clone(),
            topic_prefix: self.topics.prefix.clone(),
            registry_url: self.stack.registry_url.clone(),
            database_url: self.stack.pg_url("estate", &self.database),
            ingest_listen: format!("127.0.0.1:{}", self.ingest_port),
            ingest_config: self.dir.join("ingest.toml").display().to_string(),
        };
        let listen = self
            .metrics_ports
            .get(&service)
            .map(|port| format!("127.0.0.1:{port}"));
        let mut vars = pipeline.env(service, listen.as_deref());
        if service == Service::Sink {
            vars.push(("SINK__BATCH_MAX_WAIT_MS".into(), "20".into()));
        }
        vars
    }

    /// Starts `service` (logging to the test directory).
    pub fn spawn(&mut self, service: Service) {
        let child = self.launch(service, service.name(), &[]);
        let _ = self.children.insert(service, child);
    }

    /// Starts `service` (stopping it first if it runs) with every Kafka
    /// client of it going through `proxy`: its brokers are the proxy's
    /// address, and the proxy rewrites the addresses the broker advertises
    /// to its own ([`fault_proxy`]). The other services keep talking to the
    /// broker directly.
    pub fn spawn_through(&mut self, service: Service, proxy: &fault_proxy::FaultProxy) {
        self.kill(service);
        let brokers = (
            format!("{}__KAFKA__BROKERS", service.env_prefix()),
            proxy.address(),
        );
        let child = self.launch(service, service.name(), &[brokers]);
        let _ = self.children.insert(service, child);
    }

    /// Starts one more instance of `service` (same consumer group).
    pub fn spawn_another(&mut self, service: Service) {
        let n = self.others.iter().filter(|(s, _)| *s == service).count() + 2;
        let child = self.launch(service, &format!("{}-{n}", service.name()), &[]);
        self.others.push((service, child));
    }

    /// Stops the newest extra instance of `service`: with SIGTERM and a clean
    /// leave when `graceful`, else with SIGKILL.
    pub fn stop_another(&mut self, service: Service, graceful: bool) {
        let Some(index) = self.others.iter().rposition(|(s, _)| *s == service) else {
            panic!("no extra {} instance to stop", service.name());
        };
        let (_, mut child) = self.others.remove(index);
        if graceful {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// A command that runs `service` with this pipeline's environment, for
    /// tests that run a service to completion themselves.
    pub fn command(&self, service: Service) -> Command {
        let mut command = Command::new(self.stack.bin_dir.join(service.name()));
        let _ = command
            .envs(self.env_for(service))
            .envs(self.extra_env.iter().cloned());
        command
    }

    /// Starts `service`, logging to `<log_name>.log`, with `overrides`
    /// added to its environment last.
    fn launch(&self, service: Service, log_name: &str, overrides: &[(String, String)]) -> Child {
        let log_path = self.dir.join(format!("{log_name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open the service log");
        let mut command = self.command(service);
        if self.metrics_ports.contains_key(&service) && log_name != service.name() {
            // The first instance keeps its port across restarts (see
            // `env_for`); extra instances get their own.
            let _ = command.env(
                service.admin_listen_var(),
                format!("127.0.0.1:{}", free_port()),
            );
        }
        command
            .envs(overrides.iter().cloned())
            .env(
                "RUST_LOG",
                std::env::var("ESTATE_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", service.name()))
    }

    /// The `/metrics` URL of a consumer stage's first instance.
    pub fn metrics_url(&self, service: Service) -> String {
        self.admin_url(service, "metrics")
    }

    /// The health URL of a service's first instance (ingest's `/healthz`,
    /// a consumer stage's `/health`).
    pub fn health_url(&self, service: Service) -> String {
        self.admin_url(service, service.health_path())
    }

    /// Ingest's `/readyz`, on its operator address.
    pub fn ready_url(&self) -> String {
        self.admin_url(Service::Ingest, "readyz")
    }

    /// `path` on the operator port (metrics and health) of `service`.
    fn admin_url(&self, service: Service, path: &str) -> String {
        let port = self
            .metrics_ports
            .get(&service)
            .unwrap_or_else(|| panic!("{} has no /{path} endpoint", service.name()));
        format!("http://127.0.0.1:{port}/{path}")
    }

    /// Whether the first instance of `service` was started (and not killed).
    pub fn runs(&self, service: Service) -> bool {
        self.children.contains_key(&service)
    }

    /// Kills `service` with SIGKILL (a crash, not a clean stop).
    pub fn kill(&mut self, service: Service) {
        if let Some(mut child) = self.children.remove(&service) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM to `service` (a clean stop request); does not wait.
    pub fn send_sigterm(&self, service: Service) {
        self.send_signal(service, "TERM");
    }

    /// Sends `signal` (`STOP`, `CONT`, `TERM`...) to the first instance of
    /// `service`: `STOP` freezes it as a stalled process would be (no
    /// heartbeat, no poll), `CONT` lets it run on from where it was.
    pub fn send_signal(&self, service: Service, signal: &str) {
        let child = self.children.get(&service).expect("the service is running");
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "cannot send SIG{signal} to {}", service.name());
    }

    /// Waits (up to `timeout`) for `service` to exit; returns whether it
    /// exited successfully (a timeout kills it and returns false).
    pub async fn wait_exit(&mut self, service: Service, timeout: Duration) -> bool {
        self.wait_exit_status(service, timeout)
            .await
            .is_some_and(|status| status.success())
    }

    /// Waits (up to `timeout`) for `service` to exit; returns its exit
    /// status, or `None` if it was not running or did not exit in time (it
    /// is then killed).
    pub async fn wait_exit_status(
        &mut self,
        service: Service,
        timeout: Duration,
    ) -> Option<std::process::ExitStatus> {
        let mut child = self.children.remove(&service)?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills and starts `service` again; waits for ingest to be ready.
    pub async fn restart(&mut self, service: Service) {
        self.kill(service);
        self.spawn(service);
        if service == Service::Ingest {
            self.wait_ready().await;
        }
    }

    /// Waits until ingest answers `/readyz` with 200, or, without ingest,
    /// the first stage answers `/health` (30 s at most).
    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        // Ingest's readiness when it runs; otherwise the first stage's
        // health endpoint.
        let ready_url = if self.children.contains_key(&Service::Ingest) {
            self.ready_url()
        } else {
            let first = self.children.keys().next().copied();
            first.map_or_else(String::new, |s| self.health_url(s))
        };
        loop {
            if let Ok(r) = self.http.get(&ready_url).send().await
                && r.status().is_success()
            {
                return;
            }
            let exited = self.children.iter_mut().find_map(|(service, child)| {
                child
                    .try_wait()
                    .ok()
                    .flatten()
                    .map(|status| (*service, status))
            });
            if let Some((service, status)) = exited {
                panic!(
                    "{} exited at start ({status}):\n{}",
                    service.name(),
                    self.log_tail(service)
                );
            }
            assert!(
                Instant::now() < deadline,
                "not ready in 30 s ({ready_url}):\n{}",
                self.all_logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The whole log of a service's first instance.
    pub fn log(&self, service: Service) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}.log", service.name())))
            .unwrap_or_default()
    }

    /// Waits (up to `timeout`) until `service`'s log contains `needle`;
    /// returns whether it did.
    pub async fn wait_for_log(&self, service: Service, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.log(service).contains(needle) {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        true
    }

    /// Like [`Self::wait_for_log`], failing the test with every log when
    /// `needle` does not appear.
    pub async fn expect_log(&self, service: Service, needle: &str, timeout: Duration) {
        let found = self.wait_for_log(service, needle, timeout).await;
        assert!(
            found,
            "no `{needle}` in {}'s log:\n{}",
            service.name(),
            self.all_logs()
        );
    }

    /// The last lines of a service's log.
    pub fn log_tail(&self, service: Service) -> String {
        let text = self.log(service);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// All service logs' tails, for assertion messages.
    pub fn all_logs(&self) -> String {
        Service::ALL
            .iter()
            .chain(self.runs(Service::Enrich).then_some(&Service::Enrich))
            .map(|s| format!("--- {} ---\n{}", s.name(), self.log_tail(*s)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The ingest config file this pipeline's ingest runs with.
    pub fn ingest_config_path(&self) -> PathBuf {
        self.dir.join("ingest.toml")
    }

    /// A client for this pipeline's ingest, usable from other tasks.
    pub fn client(&self) -> IngestClient {
        IngestClient {
            http: self.http.clone(),
            url: self.ingest_url.clone(),
        }
    }

    /// POSTs `body` to `/webhooks/{source}` with `headers`.
    pub async fn post(
        &self,
        source: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> reqwest::Result<reqwest::Response> {
        self.client().post(source, headers, body).await
    }

    /// POSTs `body` to the generic source, signed now with the test secret.
    pub async fn post_generic(&self, body: &[u8]) -> reqwest::Result<reqwest::Response> {
        self.client().post_generic(body).await
    }

    /// Delivers `body` like a provider does: retries until a 200 (60 s at most).
    pub async fn deliver_generic(&self, body: &[u8]) {
        self.client().deliver_generic(body).await;
    }

    /// Three generic webhooks every stage counts differently: a property
    /// event, the same event again (dedupe drops it), and an event of no
    /// property (normalize dead-letters it). One row lands.
    pub async fn deliver_event_duplicate_and_dead_letter(&self) {
        let body = fixture("generic/property.created.json");
        self.deliver_generic(&body).await;
        self.deliver_generic(&body).await;
        self.deliver_generic(&fixture("generic/appointment.scheduled.json"))
            .await;
    }

    /// A connection to this pipeline's database.
    pub async fn db(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(
            &self.stack.pg_url("estate", &self.database),
            tokio_postgres::NoTls,
        )
        .await
        .expect("connect to the test database");
        let _conn = tokio::spawn(connection);
        client
    }

    /// Makes this pipeline's database unreachable (`allow`=false: new
    /// connections refused and existing ones terminated) or reachable again.
    /// Other pipelines sharing the PostgreSQL server are not affected.
    pub async fn set_database_reachable(&self, allow: bool) {
        let (admin, connection) = tokio_postgres::connect(
            &self.stack.pg_url("postgres", "postgres"),
            tokio_postgres::NoTls,
        )
        .await
        .expect("connect as postgres");
        let _conn = tokio::spawn(connection);
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {} ALLOW_CONNECTIONS {allow}",
                self.database
            ))
            .await
            .expect("alter database");
        if !allow {
            let _ = admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                    &[&self.database],
                )
                .await
                .expect("terminate the database's connections");
        }
    }

    /// Runs a `SELECT count(*) ...` and returns the count (0 if the table is not there yet).
    pub async fn count(&self, sql: &str) -> i64 {
        match self.db().await.query_one(sql, &[]).await {
            Ok(row) => row.get(0),
            Err(_) => 0,
        }
    }

    /// Polls `sql` until it returns `expected` (or `timeout` passes); returns the last count.
    pub async fn wait_for_count(&self, sql: &str, expected: i64, timeout: Duration) -> i64 {
        let deadline = Instant::now() + timeout;
        loop {
            let n = self.count(sql).await;
            if n == expected || Instant::now() >= deadline {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Produces `records` directly (to stage what a crashed service left behind).
    pub async fn produce(&self, records: &[common::produce::OutRecord]) {
        let producer: rdkafka::producer::FutureProducer = common::kafka::KafkaSettings {
            brokers: self.stack.brokers.clone(),
            ..common::kafka::KafkaSettings::default()
        }
        .producer()
        .create()
        .expect("producer");
        let _ = common::produce::send_all(&producer, records)
            .await
            .expect("records stored");
    }

    /// Waits until `topic` holds at least `n` records (or `timeout` passes); returns them.
    pub async fn wait_for_records(
        &self,
        topic: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<OwnedMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            let records = self.read_topic(topic);
            if records.len() >= n || Instant::now() >= deadline {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Asserts that `properties.events` holds exactly `expected` records with
    /// `expected` distinct dedupe keys: every event forwarded, none twice.
    pub fn assert_each_event_forwarded_once(&self, expected: usize) {
        let keys: Vec<String> = self
            .read_topic(&self.topics.events())
            .iter()
            .map(|m| header(m, "dedupe-key").expect("dedupe-key header on every event"))
            .collect();
        let unique: std::collections::HashSet<&String> = keys.iter().collect();
        assert_eq!(unique.len(), expected, "every event forwarded");
        assert_eq!(keys.len(), expected, "no event forwarded twice: {keys:?}");
    }

    /// Asserts that `properties` holds exactly the keys of `expected`, each
    /// at its expected price (the price of its newest event).
    pub async fn assert_property_prices(&self, expected: &HashMap<String, f64>) {
        let rows = self
            .db()
            .await
            .query("SELECT property_key, price FROM properties", &[])
            .await
            .expect("properties");
        assert_eq!(rows.len(), expected.len(), "one row per property");
        let wrong: Vec<(String, Option<f64>)> = rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, Option<f64>>(1)))
            .filter(|(key, price)| expected.get(key).copied() != *price)
            .collect();
        assert!(
            wrong.is_empty(),
            "properties not at their newest event: {wrong:?}"
        );
    }

    /// The one record on `webhooks.raw` (waits up to 10 s for it), after
    /// asserting it is the only one and its value is `body` byte for byte.
    pub async fn only_raw_record(&self, body: &[u8]) -> OwnedMessage {
        let mut records = self
            .wait_for_records(&self.topics.raw(), 1, Duration::from_secs(10))
            .await;
        assert_eq!(records.len(), 1, "exactly one record on webhooks.raw");
        let record = records.remove(0);
        assert_eq!(
            record.payload(),
            Some(body),
            "the value is the body byte for byte"
        );
        record
    }

    /// Asserts that nothing reached `webhooks.raw`.
    pub fn assert_raw_empty(&self) {
        assert!(
            self.read_topic(&self.topics.raw()).is_empty(),
            "refused requests must not reach webhooks.raw"
        );
    }

    /// Runs `normalize replay --id <id>` (then `args`) against this
    /// pipeline's topics and registry, to its end.
    pub fn normalize_replay(&self, id: &str, args: &[&str]) -> std::process::Output {
        let prefix = &self.topics.prefix;
        Command::new(self.stack.bin_dir.join("normalize"))
            .args(["replay", "--id", id])
            .args(args)
            .env("NORMALIZE__KAFKA__BROKERS", &self.stack.brokers)
            .env("NORMALIZE__TOPICS__PREFIX", prefix)
            .env("NORMALIZE__GROUP", format!("{prefix}normalize"))
            .env("NORMALIZE__SCHEMA_REGISTRY_URL", &self.stack.registry_url)
            .output()
            .expect("run normalize replay")
    }

    /// A dead letter on this pipeline's `webhooks.dlq` as an older
    /// normalize left it: `body` from `provider`, refused by `stage` for an
    /// unknown provider, from `webhooks.raw` partition 0 at offset 41, its
    /// metadata a header per field (what `normalize replay` re-drives).
    pub fn dead_letter(
        &self,
        provider: &str,
        stage: &str,
        body: Vec<u8>,
    ) -> common::produce::OutRecord {
        common::produce::OutRecord {
            topic: self.topics.dlq(),
            partition: Some(0),
            key: None,
            payload: Some(body),
            headers: Vec::new(),
        }
        .header("source", provider)
        .header("provider", provider)
        .header("received-at", (unix_now() * 1000).to_string())
        .header("error.stage", stage)
        .header("error.kind", "unknown_provider")
        .header(
            "error.message",
            format!("no parser for provider `{provider}`"),
        )
        .header("topic", self.topics.raw())
        .header("partition", "0")
        .header("offset", "41")
    }

    /// Registers the current `PropertyEvent` schema as this pipeline's
    /// `properties.events` value subject; its id.
    pub async fn register_event_schema(&self) -> u32 {
        let body: serde_json::Value = reqwest::Client::new()
            .post(format!(
                "{}/subjects/{}-value/versions",
                self.stack.registry_url,
                self.topics.events()
            ))
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .json(&serde_json::json!({ "schema": schemas::PROPERTY_EVENT_AVSC }))
            .send()
            .await
            .expect("the registry answers")
            .json()
            .await
            .expect("a JSON answer");
        body["id"]
            .as_u64()
            .and_then(|id| u32::try_from(id).ok())
            .unwrap_or_else(|| panic!("no schema id: {body}"))
    }

    /// `event` as dedupe forwards it, on partition 0 of this pipeline's
    /// `properties.events`, framed under `schema_id`.
    pub fn forwarded_event(
        &self,
        schema_id: u32,
        event: &schemas::PropertyEvent,
    ) -> common::produce::OutRecord {
        let datum = schemas::encode_datum(event).expect("the event encodes");
        common::produce::OutRecord {
            topic: self.topics.events(),
            partition: Some(0),
            key: Some(event.property_key.clone().into_bytes()),
            payload: Some(schemas::wire::frame(schema_id, &datum)),
            headers: vec![("dedupe-key".into(), event.dedupe_key.clone().into_bytes())],
        }
    }

    /// The records on this pipeline's DLQ that `stage` dead-lettered.
    pub fn dead_letters_of(&self, stage: &str) -> Vec<OwnedMessage> {
        self.read_topic(&self.topics.dlq())
            .into_iter()
            .filter(|m| header(m, "error.stage").as_deref() == Some(stage))
            .collect()
    }

    /// `GET <registry><path>` as JSON (e.g. `/schemas/ids/3`).
    pub async fn registry_get(&self, path: &str) -> serde_json::Value {
        reqwest::get(format!("{}{path}", self.stack.registry_url))
            .await
            .expect("the registry answers")
            .json()
            .await
            .expect("JSON")
    }

    /// The registry's latest version of `topic`'s value subject
    /// (`<topic>-value`, the topic-name strategy).
    pub async fn registered_value_schema(&self, topic: &str) -> serde_json::Value {
        self.registry_get(&format!("/subjects/{topic}-value/versions/latest"))
            .await
    }

    /// What a stock client we did not write makes of `topic`: Python's
    /// confluent-kafka `AvroDeserializer` (`tests/python/decode_topic.py`,
    /// `extra` its further arguments) reading `count` records, one JSON
    /// object per line; asserts it decoded them all.
    pub fn decoded_by_python(
        &self,
        topic: &str,
        count: usize,
        extra: &[&str],
    ) -> Vec<serde_json::Value> {
        let python = std::env::var("ESTATE_TEST_PYTHON")
            .expect("ESTATE_TEST_PYTHON is set by scripts/test.sh (confluent-kafka venv)");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/decode_topic.py");
        let output = Command::new(python)
            .arg(script)
            .args(["--brokers", &self.stack.brokers])
            .args(["--registry", &self.stack.registry_url])
            .args(["--topic", topic])
            .args(["--count", &count.to_string()])
            .args(extra)
            .output()
            .expect("run the Python decoder");
        assert!(
            output.status.success(),
            "Python AvroDeserializer failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
            .collect()
    }

    /// Every record currently on `topic`, all partitions, in partition then offset order.
    pub fn read_topic(&self, topic: &str) -> Vec<OwnedMessage> {
        read_topic(&self.stack.brokers, topic)
    }
}

/// Sends webhooks to one pipeline's ingest.
#[derive(Debug, Clone)]
pub struct IngestClient {
    http: reqwest::Client,
    url: String,
}

impl IngestClient {
    /// POSTs `body` to `/webhooks/{source}` with `headers`.
    pub async fn post(
        &self,
        source: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> reqwest::Result<reqwest::Response> {
        self.post_to(source, "", headers, body).await
    }

    /// POSTs `body` to `/webhooks/{source}?{query}` with `headers`.
    pub async fn post_to(
        &self,
        source: &str,
        query: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> reqwest::Result<reqwest::Response> {
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        let mut request = self
            .http
            .post(format!("{}/webhooks/{source}{query}", self.url))
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (k, v) in headers {
            request = request.header(*k, v);
        }
        request.send().await
    }

    /// POSTs `body` to the generic source, signed now with the test secret.
    pub async fn post_generic(&self, body: &[u8]) -> reqwest::Result<reqwest::Response> {
        let ts = unix_now().to_string();
        let sig = ingest::verify::hmac_timestamp::sign(GENERIC_SECRET.as_bytes(), &ts, body);
        self.post(
            "generic",
            &[("x-webhook-timestamp", ts), ("x-webhook-signature", sig)],
            body,
        )
        .await
    }

    /// Delivers every one of `bodies` to the generic source, like
    /// [`Self::deliver_generic`], from `senders` concurrent tasks that take
    /// them from the end of the list, each pausing `pause` after each
    /// delivery. The handle resolves when every body got its 200, and fails
    /// if a delivery did.
    pub fn deliver_all_generic(
        &self,
        bodies: Vec<Vec<u8>>,
        senders: usize,
        pause: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let queue = std::sync::Arc::new(tokio::sync::Mutex::new(bodies));
        let tasks: Vec<_> = (0..senders)
            .map(|_| {
                let (client, queue) = (self.clone(), std::sync::Arc::clone(&queue));
                tokio::spawn(async move {
                    loop {
                        let Some(body) = queue.lock().await.pop() else {
                            return;
                        };
                        client.deliver_generic(&body).await;
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        tokio::spawn(async move {
            for task in tasks {
                task.await.expect("a sender failed");
            }
        })
    }

    /// Delivers `body` like a provider does: retries on errors and 5xx until
    /// a 200 (60 s at most); any 4xx fails the test.
    pub async fn deliver_generic(&self, body: &[u8]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.post_generic(body).await {
                Ok(r) if r.status().is_success() => return,
                Ok(r) => assert!(
                    r.status().is_server_error(),
                    "delivery refused with {}: {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                ),
                Err(_) => {}
            }
            assert!(Instant::now() < deadline, "no 200 within 60 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Every record currently on `topic` (to the high watermarks read now).
pub fn read_topic(brokers: &str, topic: &str) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("reader");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .expect("topic metadata");
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut out = Vec::new();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(5))
            .expect("watermarks");
        if high <= low {
            continue;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(low))
            .expect("partition offset");
        consumer.assign(&tpl).expect("assign");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    let done = m.offset() >= high - 1;
                    out.push(m.detach());
                    if done {
                        break;
                    }
                }
                Some(Err(e)) => panic!("reading {topic}/{partition}: {e}"),
                None => {}
            }
        }
    }
    out
}

/// Asserts a raw record's key and its metadata fields (in its one
/// `ingest-meta` header, or a header each): `(name, Some(value))` must be
/// present with that value, `(name, None)` absent.
pub fn assert_record(
    message: &OwnedMessage,
    key_text: Option<&str>,
    expected: &[(&str, Option<&str>)],
) {
    assert_eq!(key(message).as_deref(), key_text, "record key");
    for (name, value) in expected {
        assert_eq!(
            raw_field(message, name).as_deref(),
            *value,
            "field `{name}`"
        );
    }
}

/// Field `name` of ingest's metadata on a raw record, read as every stage
/// reads it (`common::kafka::RawFields`).
pub fn raw_field(message: &OwnedMessage, name: &str) -> Option<String> {
    common::kafka::RawFields::of(message)
        .get(name)
        .map(str::to_string)
}

/// The names of a record's headers, in order.
pub fn header_names(message: &OwnedMessage) -> Vec<String> {
    use rdkafka::message::Headers;
    message
        .headers()
        .map(|headers| headers.iter().map(|h| h.key.to_string()).collect())
        .unwrap_or_default()
}

/// The key of a detached record, as text.
pub fn key(message: &OwnedMessage) -> Option<String> {
    message
        .key()
        .map(|k| String::from_utf8_lossy(k).into_owned())
}

/// A broker of a test's own (nisshi, sqlite storage in a temp directory),
/// which the test may kill and restart to simulate an outage.
pub struct OwnBroker {
    /// Its bootstrap address, `127.0.0.1:<port>`.
    pub brokers: String,
    port: u16,
    dir: PathBuf,
    storage: String,
    child: Option<Child>,
}

/// The options of the local stack's storage URL (`scripts/stack.sh`): one
/// compaction statement per sweep instead of one scan per key.
pub const STACK_STORAGE_OPTIONS: &str = "compaction=single";

impl OwnBroker {
    /// The nisshi binary: `ESTATE_TEST_NISSHI`, else where
    /// `scripts/install-broker.sh` caches it.
    fn binary() -> PathBuf {
        if let Ok(path) = std::env::var("ESTATE_TEST_NISSHI") {
            return PathBuf::from(path);
        }
        let cache = std::env::var("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(env("HOME")).join(".cache"));
        cache.join("estate-pipeline/nisshi-0.8.1/bin/nisshi")
    }

    /// Starts a broker on a free port, with the local stack's storage
    /// options, and waits until it accepts connections.
    pub fn start(name: &str) -> Self {
        Self::start_with_storage(name, STACK_STORAGE_OPTIONS)
    }

    /// [`Self::start`] with the storage URL options `options`
    /// (`sqlite://broker.db?<options>`).
    pub fn start_with_storage(name: &str, options: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "estate-broker-{name}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
        std::fs::create_dir_all(&dir).expect("create the broker directory");
        let port = free_port();
        let mut broker = Self {
            brokers: format!("127.0.0.1:{port}"),
            port,
            dir,
            storage: format!("sqlite://broker.db?{options}"),
            child: None,
        };
        broker.restart();
        broker
    }

    /// Kills the broker with SIGKILL (an outage, not a clean stop).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port and storage.
    pub fn restart(&mut self) {
        self.kill();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("broker.log"))
            .expect("open the broker log");
        let listener = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(Self::binary())
            .current_dir(&self.dir)
            .args([
                "broker",
                "--listener-url",
                &listener,
                "--advertised-listener-url",
                &listener,
                "--storage-engine",
                &self.storage,
            ])
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("start nisshi (set ESTATE_TEST_NISSHI to its path)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "own broker not listening in 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The value of header `name` on a detached record.
pub fn header(message: &OwnedMessage, name: &str) -> Option<String> {
    use rdkafka::message::Headers;
    let headers = message.headers()?;
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "service logs ({}):\n{}",
                self.dir.display(),
                self.all_logs()
            );
        }
        for (_, mut child) in self.children.drain().chain(self.others.drain(..)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
