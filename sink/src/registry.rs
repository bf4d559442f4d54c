//! The sink's schema-registry client: the decoder built from the settings,
//! and a blocking fetch of one writer schema by id for
//! [`crate::writer_schemas::WriterSchemas`]. Every failure is returned as
//! text and cleared from the client's own cache (which otherwise keeps a
//! 404 forever), so the next attempt asks the registry again.

use std::time::Duration;

use apache_avro::Schema;
use schema_registry_converter::async_impl::avro::AvroDecoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use tokio::runtime::Handle;

/// Bound on one registry request.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A decoder for the registry at `url` (a trailing slash is dropped: the
/// client would ask for `//schemas/ids/…`).
pub fn decoder(url: &str) -> anyhow::Result<AvroDecoder> {
    let settings = SrSettings::new_builder(url.trim_end_matches('/').to_string())
        .no_proxy()
        .set_timeout(TIMEOUT)
        .build()
        .map_err(|e| anyhow::anyhow!("invalid schema registry settings: {e}"))?;
    Ok(AvroDecoder::new(settings))
}

/// The writer schema `id`, asked of the registry on `runtime`.
pub fn fetch(decoder: &AvroDecoder, runtime: &Handle, id: u32) -> Result<Schema, String> {
    runtime
        .block_on(decoder.get_schema(id))
        .map(|schema| schema.parsed.clone())
        .map_err(|e| {
            decoder.remove_errors_from_cache();
            format!("schema registry: {e}")
        })
}
