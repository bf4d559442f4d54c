//! How to run one isolated copy of the pipeline next to others on the same
//! broker and PostgreSQL server: the environment that points each service
//! at its own topic prefix, consumer groups, database and ports. The test
//! harness and the bench command both launch their pipelines with it, so
//! the two never disagree on how a service is configured. The variable
//! names are the services' settings (`<SERVICE>__<FIELD>`), which
//! `tests/compose_file.rs` checks against the config structs.

/// The services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// HTTP ingest.
    Ingest,
    /// Normalize.
    Normalize,
    /// Dedupe.
    Dedupe,
    /// The state writer (`properties.events` → `properties.latest`).
    StateWriter,
    /// PostgreSQL sink.
    Sink,
    /// Fluximmo enrichment (`properties.events` → `properties.normalized`);
    /// not in [`Service::ALL`]: it needs an API key and an API to call.
    Enrich,
}

impl Service {
    /// Every service, in pipeline order (the state writer and the sink
    /// both read `properties.events`).
    pub const ALL: [Service; 5] = [
        Service::Ingest,
        Service::Normalize,
        Service::Dedupe,
        Service::StateWriter,
        Service::Sink,
    ];

    /// Binary name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Normalize => "normalize",
            Self::Dedupe => "dedupe",
            Self::StateWriter => "state-writer",
            Self::Sink => "sink",
            Self::Enrich => "enrich",
        }
    }

    /// The prefix of its settings' environment variables (`STATE_WRITER`
    /// for `STATE_WRITER__KAFKA__BROKERS`).
    pub fn env_prefix(self) -> String {
        self.name().replace('-', "_").to_ascii_uppercase()
    }

    /// Whether it is a consumer stage (a consumer group).
    pub fn is_consumer(self) -> bool {
        self != Self::Ingest
    }

    /// The setting naming the address of its operator endpoints
    /// (`/metrics` and health): ingest's `admin_listen`, a consumer stage's
    /// `metrics_listen`.
    pub fn admin_listen_var(self) -> String {
        match self {
            Self::Ingest => "INGEST__ADMIN_LISTEN".into(),
            _ => format!("{}__METRICS_LISTEN", self.env_prefix()),
        }
    }

    /// The path of its health endpoint on that address.
    pub fn health_path(self) -> &'static str {
        match self {
            Self::Ingest => "healthz",
            _ => "health",
        }
    }
}

/// Where one isolated pipeline lives.
#[derive(Debug, Clone)]
pub struct IsolatedPipeline {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Prefix of every topic, and of every consumer group.
    pub topic_prefix: String,
    /// Schema registry base URL.
    pub registry_url: String,
    /// The sink's PostgreSQL connection string.
    pub database_url: String,
    /// Ingest's listen address.
    pub ingest_listen: String,
    /// Path of ingest's sources file.
    pub ingest_config: String,
}

impl IsolatedPipeline {
    /// The environment of `service`; it serves `/metrics` and its health
    /// endpoint on `metrics_listen` when given (its configured default
    /// otherwise).
    pub fn env(&self, service: Service, metrics_listen: Option<&str>) -> Vec<(String, String)> {
        let upper = service.env_prefix();
        let mut vars = vec![
            (format!("{upper}__KAFKA__BROKERS"), self.brokers.clone()),
            (
                format!("{upper}__TOPICS__PREFIX"),
                self.topic_prefix.clone(),
            ),
        ];
        if service == Service::Ingest {
            vars.push(("INGEST__LISTEN".into(), self.ingest_listen.clone()));
            vars.push(("INGEST_CONFIG".into(), self.ingest_config.clone()));
        } else {
            vars.push((
                format!("{upper}__GROUP"),
                format!("{}{}", self.topic_prefix, service.name()),
            ));
        }
        if let Some(listen) = metrics_listen {
            vars.push((service.admin_listen_var(), listen.to_string()));
        }
        if matches!(
            service,
            Service::Normalize | Service::StateWriter | Service::Sink | Service::Enrich
        ) {
            vars.push((
                format!("{upper}__SCHEMA_REGISTRY_URL"),
                self.registry_url.clone(),
            ));
        }
        if service == Service::Sink {
            vars.push(("SINK__DATABASE_URL".into(), self.database_url.clone()));
        }
        vars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline() -> IsolatedPipeline {
        IsolatedPipeline {
            brokers: "b:9092".into(),
            topic_prefix: "t1.".into(),
            registry_url: "http://r".into(),
            database_url: "host=h dbname=d".into(),
            ingest_listen: "127.0.0.1:1".into(),
            ingest_config: "/x/ingest.toml".into(),
        }
    }

    #[test]
    fn each_service_gets_its_own_prefixed_group_and_only_what_it_reads() {
        let sink = pipeline().env(Service::Sink, Some("127.0.0.1:2"));
        for expected in [
            ("SINK__KAFKA__BROKERS", "b:9092"),
            ("SINK__TOPICS__PREFIX", "t1."),
            ("SINK__GROUP", "t1.sink"),
            ("SINK__METRICS_LISTEN", "127.0.0.1:2"),
            ("SINK__SCHEMA_REGISTRY_URL", "http://r"),
            ("SINK__DATABASE_URL", "host=h dbname=d"),
        ] {
            assert!(
                sink.iter()
                    .any(|(k, v)| (k.as_str(), v.as_str()) == expected),
                "{expected:?} missing from {sink:?}"
            );
        }
        let dedupe = pipeline().env(Service::Dedupe, None);
        assert_eq!(dedupe.len(), 3, "{dedupe:?}");
        let state_writer = pipeline().env(Service::StateWriter, None);
        for expected in [
            ("STATE_WRITER__GROUP", "t1.state-writer"),
            ("STATE_WRITER__SCHEMA_REGISTRY_URL", "http://r"),
        ] {
            assert!(
                state_writer
                    .iter()
                    .any(|(k, v)| (k.as_str(), v.as_str()) == expected),
                "{expected:?} missing from {state_writer:?}"
            );
        }
        let ingest = pipeline().env(Service::Ingest, None);
        assert!(ingest.iter().all(|(k, _)| k.starts_with("INGEST")));
        assert!(!ingest.iter().any(|(k, _)| k.ends_with("__GROUP")));
    }
}
