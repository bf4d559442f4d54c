//! Versioned migrations: `migrations/NNNN_name.sql`, applied in order at
//! start, each once, recorded in `schema_migrations`, under an advisory lock
//! so several sink instances starting together do not race.

use tokio_postgres::Client;

/// The migrations, in order (compiled in).
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (
        2,
        "provider_fields",
        include_str!("../migrations/0002_provider_fields.sql"),
    ),
    (
        3,
        "corrections",
        include_str!("../migrations/0003_corrections.sql"),
    ),
    (
        4,
        "properties_lineage",
        include_str!("../migrations/0004_properties_lineage.sql"),
    ),
    (
        5,
        "properties_fillfactor",
        include_str!("../migrations/0005_properties_fillfactor.sql"),
    ),
    (
        6,
        "prerelease_versions",
        include_str!("../migrations/0006_prerelease_versions.sql"),
    ),
    (
        7,
        "property_state",
        include_str!("../migrations/0007_property_state.sql"),
    ),
];

/// Arbitrary advisory lock id for migrations.
const LOCK_ID: i64 = 0x6573_7461_7465;

/// Applies pending migrations; returns how many were applied.
pub async fn apply(client: &mut Client) -> anyhow::Result<usize> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version integer PRIMARY KEY,
                 name text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    let _ = client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_ID])
        .await?;
    let result = apply_locked(client).await;
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_ID])
        .await?;
    result
}

async fn apply_locked(client: &mut Client) -> anyhow::Result<usize> {
    let applied: Vec<i32> = client
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut count = 0;
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        let tx = client.transaction().await?;
        tx.batch_execute(sql)
            .await
            .map_err(|e| anyhow::anyhow!("migration {version} ({name}) failed: {e}"))?;
        let _ = tx
            .execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[version, name],
            )
            .await?;
        tx.commit().await?;
        tracing::info!(version, name, "migration applied");
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_increasing_and_unique() {
        let versions: Vec<i32> = MIGRATIONS.iter().map(|m| m.0).collect();
        let mut sorted = versions.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(versions, sorted);
    }

    #[test]
    fn every_file_in_the_folder_is_listed_under_its_version_and_name() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(&folder)
            .expect("the migrations folder")
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS
            .iter()
            .map(|(version, name, _)| format!("{version:04}_{name}.sql"))
            .collect();
        assert_eq!(files, listed);
    }
}
