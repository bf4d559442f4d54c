//! A schema registry of a test's own: the development registry
//! (`dev-registry`, built with the workspace) on a free port, reading the
//! schemas topic the test names, which the test stops and starts again: an
//! outage, or a lagging replica (an empty schemas topic, so every id is a
//! 404) that catches up (started again on the real one).

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::Stack;

/// The registry's process and address.
pub struct OwnRegistry {
    /// Its base URL, `http://127.0.0.1:<port>`.
    pub url: String,
    port: u16,
    brokers: String,
    binary: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl OwnRegistry {
    /// Starts a registry on `stack`'s broker reading `schemas_topic`
    /// (`_schemas` is the shared registry's), and waits until it listens.
    pub fn start(stack: &Stack, schemas_topic: &str) -> Self {
        let port = crate::free_port();
        let log = std::env::temp_dir().join(format!(
            "estate-registry-{port}-{}.log",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
        let mut registry = Self {
            url: format!("http://127.0.0.1:{port}"),
            port,
            brokers: stack.brokers.clone(),
            binary: stack.bin_dir.join("dev-registry"),
            log,
            child: None,
        };
        registry.start_reading(schemas_topic);
        registry
    }

    /// Stops the registry (SIGKILL: its clients see connections refused).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// (Re)starts the registry on the same port, reading `schemas_topic`.
    pub fn start_reading(&mut self, schemas_topic: &str) {
        self.stop();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the registry log");
        let child = Command::new(&self.binary)
            .env("REGISTRY__LISTEN", format!("127.0.0.1:{}", self.port))
            .env("REGISTRY__KAFKA__BROKERS", &self.brokers)
            .env("REGISTRY__SCHEMAS_TOPIC", schemas_topic)
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("start dev-registry");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "own registry not listening in 60 s: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.log);
    }
}
