//! `ingest-send`: posts a fixture or any file to a running ingest as one of
//! its configured sources, signed for that source's checks with the secrets
//! of the same config file. What a provider's "send a test event" does.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use ingest::settings::IngestSettings;

/// Posts FILE to a running ingest as SOURCE, signed exactly as that source's
/// checks require (HMAC, Standard Webhooks, bearer token and Immoteur
/// headers, secret token), using the first secret of each check from the
/// ingest config file (and its INGEST__* environment overrides).
///
/// Example:
///   ingest-send --source immoteur tests/fixtures/immoteur/property-notification.json
///
/// Prints the HTTP status and the response body; exits 1 unless the answer
/// is a 2xx. A `source-address` check cannot be signed for: send from an
/// allowed address.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// Name of the configured source to send as (the URL segment).
    #[arg(long, short)]
    source: String,
    /// The body to send, byte for byte.
    file: PathBuf,
    /// Ingest's TOML settings file (the one the running ingest uses).
    #[arg(long, env = "INGEST_CONFIG", default_value = "config/ingest.toml")]
    config: PathBuf,
    /// Ingest's base URL; by default `http://` + the config's `listen`.
    #[arg(long)]
    url: Option<String>,
    /// Content type of the request.
    #[arg(long, default_value = "application/json")]
    content_type: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings: IngestSettings = common::config::load("INGEST", Some(&args.config))?;
    let source = settings
        .sources
        .iter()
        .find(|s| s.name == args.source)
        .with_context(|| {
            let names: Vec<&str> = settings.sources.iter().map(|s| s.name.as_str()).collect();
            format!(
                "no source `{}` in {} (configured: {})",
                args.source,
                args.config.display(),
                names.join(", ")
            )
        })?;
    let body = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let now_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .context("the clock is before 1970")?;
    let env = |name: &str| std::env::var(name).ok();
    let signed = ingest::send::sign(source, &body, now_secs, &env)?;
    let base = args
        .url
        .unwrap_or_else(|| format!("http://{}", settings.listen));
    let mut url = reqwest::Url::parse(&format!(
        "{}/webhooks/{}",
        base.trim_end_matches('/'),
        source.name
    ))
    .with_context(|| format!("`{base}` is not a URL"))?;
    if !signed.query.is_empty() {
        let _ = url.query_pairs_mut().extend_pairs(&signed.query);
    }
    let mut request = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?
        .post(url)
        .header("content-type", &args.content_type)
        .body(body);
    for (name, value) in &signed.headers {
        request = request.header(name, value);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach {base}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    println!("{status}\n{text}");
    if !status.is_success() {
        std::process::exit(1);
    }
    Ok(())
}
