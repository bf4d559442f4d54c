//! The registry's state, kept in memory: subjects, versions, schema ids and
//! the BACKWARD compatibility decisions. Pure logic, no IO.
//!
//! A registration happens in two steps so that nothing is remembered before
//! Kafka has acknowledged it: [`Store::prepare_register`] decides (existing id,
//! incompatible, or a new [`StoredRecord`] with its id and version), the caller
//! writes that record to the `_schemas` topic, and only then
//! [`Store::apply`] adds it. Restoring at start feeds the topic's records to
//! [`Store::restore`], which applies them with compaction semantics (the last
//! value of a key wins, a tombstone removes it), so replaying the topic
//! reproduces the state that was served before.
//!
//! Schema identity: two schema texts are the same schema when their parsed
//! forms serialize to the same normalized JSON (whitespace, key order and
//! redundant forms such as `{"type": "string"}` vs `"string"` do not matter),
//! with the same type and references. This is deliberately finer than Avro's
//! Parsing Canonical Form, which drops `logicalType`, `default`, `doc` and
//! `aliases`: merging `long` with `timestamp-millis`, or two schemas that
//! differ only in defaults, under one id would hand readers the wrong schema.

use std::collections::{BTreeMap, HashMap};

use apache_avro::Schema;
use apache_avro::error::CompatibilityError;
use apache_avro::schema::{Name, UnionSchema};
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use serde::{Deserialize, Serialize};

/// The only schema type this registry supports.
pub const AVRO: &str = "AVRO";

/// The compatibility level every subject has (it cannot be changed).
pub const COMPATIBILITY_LEVEL: &str = "BACKWARD";

/// A reference from one schema to a schema registered under another subject
/// (Confluent's `references` entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    /// The name the referencing schema uses (an Avro full name).
    pub name: String,
    /// The subject the referenced schema is registered under.
    pub subject: String,
    /// Its version under that subject.
    pub version: u32,
}

/// The body of a register, lookup or compatibility request.
///
/// Unknown fields (`metadata`, `ruleSet`, `id`, ...) are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaRequest {
    /// The schema, as a JSON text.
    pub schema: String,
    /// `AVRO` when absent.
    #[serde(default)]
    pub schema_type: Option<String>,
    /// Schemas this one refers to.
    #[serde(default)]
    pub references: Option<Vec<Reference>>,
}

impl SchemaRequest {
    /// A request for an Avro schema without references.
    pub fn avro(schema: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            schema_type: None,
            references: None,
        }
    }

    fn schema_type(&self) -> &str {
        self.schema_type.as_deref().unwrap_or(AVRO)
    }

    fn references(&self) -> &[Reference] {
        self.references.as_deref().unwrap_or_default()
    }
}

fn default_schema_type() -> String {
    AVRO.to_string()
}

/// One registration as stored in the `_schemas` topic (the record value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecord {
    /// Subject.
    pub subject: String,
    /// Version under the subject, from 1.
    pub version: u32,
    /// Global schema id, from 1.
    pub id: u32,
    /// The schema text as first registered under this id.
    pub schema: String,
    /// Schema type (`AVRO`).
    #[serde(rename = "schemaType", default = "default_schema_type")]
    pub schema_type: String,
    /// References of the schema.
    #[serde(default)]
    pub references: Vec<Reference>,
}

impl StoredRecord {
    /// The record's key in the `_schemas` topic.
    pub fn key(&self) -> RecordKey {
        RecordKey {
            subject: self.subject.clone(),
            version: self.version,
        }
    }
}

/// The key of a record in the `_schemas` topic: one subject version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordKey {
    /// Subject.
    pub subject: String,
    /// Version under the subject.
    pub version: u32,
}

/// A schema as registered under a subject, in the REST API's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubjectVersion {
    /// Subject.
    pub subject: String,
    /// Version under the subject.
    pub version: u32,
    /// Global schema id.
    pub id: u32,
    /// The schema text.
    pub schema: String,
    /// Only present when not `AVRO`.
    #[serde(rename = "schemaType", skip_serializing_if = "is_avro")]
    pub schema_type: String,
    /// Only present when non-empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
}

/// A schema looked up by id, in the REST API's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaById {
    /// The schema text.
    pub schema: String,
    /// Only present when not `AVRO`.
    #[serde(rename = "schemaType", skip_serializing_if = "is_avro")]
    pub schema_type: String,
    /// Only present when non-empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
}

fn is_avro(schema_type: &str) -> bool {
    schema_type == AVRO
}

/// A version selector: a number or `latest` (also spelled `-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    /// The newest version.
    Latest,
    /// A given version.
    Number(u32),
}

impl VersionSpec {
    /// Parses `latest`, `-1` or a positive integer.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        if text == "latest" || text == "-1" {
            return Ok(Self::Latest);
        }
        match text.parse::<u32>() {
            Ok(n) if n >= 1 && i32::try_from(n).is_ok() => Ok(Self::Number(n)),
            _ => Err(StoreError::InvalidVersion(text.to_string())),
        }
    }
}

/// What a registration request amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// The schema is already registered under the subject: answer its id.
    Existing {
        /// The schema id.
        id: u32,
        /// The version under the subject.
        version: u32,
    },
    /// A new version: store this record, then [`Store::apply`] it.
    New(StoredRecord),
}

impl Registration {
    /// The schema id to answer with.
    pub fn id(&self) -> u32 {
        match self {
            Self::Existing { id, .. } => *id,
            Self::New(record) => record.id,
        }
    }
}

/// The answer of a compatibility check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompatibilityReport {
    /// Whether the schema could be registered.
    pub is_compatible: bool,
    /// Why not, when it is not.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<String>,
}

/// Everything that can go wrong, each with its Confluent error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The subject has no versions.
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    /// The subject has no such version.
    #[error("Version {version} not found for subject '{subject}'.")]
    VersionNotFound {
        /// Subject.
        subject: String,
        /// The version asked for.
        version: u32,
    },
    /// No schema has this id.
    #[error("Schema {0} not found")]
    SchemaIdNotFound(u32),
    /// The schema is not registered under the subject.
    #[error("Schema not found under subject '{0}'")]
    SchemaNotInSubject(String),
    /// The schema does not parse.
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    /// Only AVRO is supported.
    #[error("Invalid schema: schema type `{0}` is not supported by dev-registry (only AVRO)")]
    UnsupportedSchemaType(String),
    /// Not `latest` nor a positive integer.
    #[error(
        "The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
    )]
    InvalidVersion(String),
    /// The schema cannot read data written with the latest version.
    #[error(
        "Schema being registered is incompatible with an earlier schema for subject \"{subject}\" (version {version}, compatibility BACKWARD), details: {}",
        .messages.join("; ")
    )]
    Incompatible {
        /// Subject.
        subject: String,
        /// The version checked against.
        version: u32,
        /// What is incompatible.
        messages: Vec<String>,
    },
    /// A stored record contradicts the state (only while restoring).
    #[error(
        "stored record for subject '{subject}' version {version} (id {id}) conflicts: {reason}"
    )]
    Conflict {
        /// Subject of the record.
        subject: String,
        /// Version of the record.
        version: u32,
        /// Id of the record.
        id: u32,
        /// What it contradicts.
        reason: String,
    },
}

impl StoreError {
    /// The Confluent `error_code`; the HTTP status is its first three digits.
    pub fn error_code(&self) -> u32 {
        match self {
            Self::SubjectNotFound(_) => 40401,
            Self::VersionNotFound { .. } => 40402,
            Self::SchemaIdNotFound(_) | Self::SchemaNotInSubject(_) => 40403,
            Self::InvalidSchema(_) | Self::UnsupportedSchemaType(_) => 42201,
            Self::InvalidVersion(_) => 42202,
            Self::Incompatible { .. } => 409,
            Self::Conflict { .. } => 50001,
        }
    }
}

/// What [`Store::restore`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Records applied.
    pub applied: usize,
    /// Records superseded by a later value of the same key, or deleted.
    pub superseded: usize,
    /// Records that could not be applied, with the reason.
    pub rejected: Vec<String>,
}

/// One schema, by id.
#[derive(Debug, Clone)]
struct Entry {
    schema: String,
    schema_type: String,
    references: Vec<Reference>,
    /// Identity key (see the module docs).
    identity: String,
    /// Self-contained form used for compatibility checks.
    resolved: Schema,
}

/// A parsed request.
struct Parsed {
    identity: String,
    resolved: Schema,
}

/// The whole registry state.
#[derive(Debug, Clone)]
pub struct Store {
    by_id: BTreeMap<u32, Entry>,
    by_identity: HashMap<String, u32>,
    /// Versions of each subject, ascending: (version, id).
    subjects: BTreeMap<String, Vec<(u32, u32)>>,
    next_id: u32,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// An empty registry; the first id will be 1.
    pub fn new() -> Self {
        Self {
            by_id: BTreeMap::new(),
            by_identity: HashMap::new(),
            subjects: BTreeMap::new(),
            next_id: 1,
        }
    }

    /// Number of distinct schemas (ids).
    pub fn schema_count(&self) -> usize {
        self.by_id.len()
    }

    /// Number of subject versions.
    pub fn version_count(&self) -> usize {
        self.subjects.values().map(Vec::len).sum()
    }

    /// Decides what registering `request` under `subject` means, without
    /// changing anything.
    pub fn prepare_register(
        &self,
        subject: &str,
        request: &SchemaRequest,
    ) -> Result<Registration, StoreError> {
        let parsed = self.parse(request)?;
        if let Some((version, id)) = self.find_in_subject(subject, &parsed.identity) {
            return Ok(Registration::Existing { id, version });
        }
        let latest = self.subjects.get(subject).and_then(|v| v.last()).copied();
        if let Some((version, latest_id)) = latest {
            let writer = &self.entry(latest_id)?.resolved;
            let messages = backward_messages(writer, &parsed.resolved);
            if !messages.is_empty() {
                return Err(StoreError::Incompatible {
                    subject: subject.to_string(),
                    version,
                    messages,
                });
            }
        }
        let version = latest.map_or(1, |(v, _)| v + 1);
        let record = match self.by_identity.get(&parsed.identity) {
            Some(&id) => {
                let entry = self.entry(id)?;
                StoredRecord {
                    subject: subject.to_string(),
                    version,
                    id,
                    schema: entry.schema.clone(),
                    schema_type: entry.schema_type.clone(),
                    references: entry.references.clone(),
                }
            }
            None => StoredRecord {
                subject: subject.to_string(),
                version,
                id: self.next_id,
                schema: request.schema.clone(),
                schema_type: AVRO.to_string(),
                references: request.references().to_vec(),
            },
        };
        Ok(Registration::New(record))
    }

    /// Adds a stored (acknowledged) record. Applying the same record twice
    /// is a no-op; returns whether anything changed.
    pub fn apply(&mut self, record: &StoredRecord) -> Result<bool, StoreError> {
        let conflict = |reason: String| StoreError::Conflict {
            subject: record.subject.clone(),
            version: record.version,
            id: record.id,
            reason,
        };
        if record.id == 0 || record.version == 0 {
            return Err(conflict("ids and versions start at 1".into()));
        }
        let request = SchemaRequest {
            schema: record.schema.clone(),
            schema_type: Some(record.schema_type.clone()),
            references: Some(record.references.clone()),
        };
        let parsed = self.parse(&request).map_err(|e| conflict(e.to_string()))?;
        if let Some(entry) = self.by_id.get(&record.id)
            && entry.identity != parsed.identity
        {
            return Err(conflict(format!(
                "id {} already names a different schema",
                record.id
            )));
        }
        let versions = self.subjects.get(&record.subject);
        if let Some(&(_, id)) = versions.and_then(|v| v.iter().find(|(v, _)| *v == record.version))
        {
            return if id == record.id {
                Ok(false)
            } else {
                Err(conflict(format!("the version already has id {id}")))
            };
        }
        if let Some(&(latest, _)) = versions.and_then(|v| v.last())
            && latest > record.version
        {
            return Err(conflict(format!(
                "the subject already has a later version {latest}"
            )));
        }
        let _ = self.by_id.entry(record.id).or_insert_with(|| Entry {
            schema: record.schema.clone(),
            schema_type: AVRO.to_string(),
            references: record.references.clone(),
            identity: parsed.identity.clone(),
            resolved: parsed.resolved,
        });
        let _ = self.by_identity.entry(parsed.identity).or_insert(record.id);
        self.subjects
            .entry(record.subject.clone())
            .or_default()
            .push((record.version, record.id));
        self.note_id_used(record.id);
        Ok(true)
    }

    /// Makes sure `id` is never handed out again (after a write whose
    /// outcome is unknown, so a record that did land is never contradicted).
    pub fn note_id_used(&mut self, id: u32) {
        self.next_id = self.next_id.max(id.saturating_add(1));
    }

    /// Rebuilds state from the `_schemas` topic's records in offset order:
    /// `None` is a tombstone. The last value of each key wins, as after
    /// compaction; the survivors are applied in the order they were written.
    pub fn restore(
        &mut self,
        records: impl IntoIterator<Item = (RecordKey, Option<StoredRecord>)>,
    ) -> RestoreReport {
        let records: Vec<(RecordKey, Option<StoredRecord>)> = records.into_iter().collect();
        let mut last: HashMap<&RecordKey, usize> = HashMap::new();
        for (index, (key, _)) in records.iter().enumerate() {
            let _ = last.insert(key, index);
        }
        let mut report = RestoreReport::default();
        for (index, (key, value)) in records.iter().enumerate() {
            let Some(record) = value else {
                continue;
            };
            if last.get(key) != Some(&index) {
                report.superseded += 1;
                continue;
            }
            if record.key() != *key {
                report.rejected.push(format!(
                    "record key {key:?} does not match its value ({:?})",
                    record.key()
                ));
                continue;
            }
            match self.apply(record) {
                Ok(_) => report.applied += 1,
                Err(e) => report.rejected.push(e.to_string()),
            }
        }
        report
    }

    /// Finds `request` under `subject` (the lookup endpoint).
    pub fn lookup(
        &self,
        subject: &str,
        request: &SchemaRequest,
    ) -> Result<SubjectVersion, StoreError> {
        if !self.subjects.contains_key(subject) {
            return Err(StoreError::SubjectNotFound(subject.to_string()));
        }
        let parsed = self.parse(request)?;
        let (version, _) = self
            .find_in_subject(subject, &parsed.identity)
            .ok_or_else(|| StoreError::SchemaNotInSubject(subject.to_string()))?;
        self.version(subject, VersionSpec::Number(version))
    }

    /// One version of a subject.
    pub fn version(&self, subject: &str, spec: VersionSpec) -> Result<SubjectVersion, StoreError> {
        let (version, id) = self.resolve_version(subject, spec)?;
        let entry = self.entry(id)?;
        Ok(SubjectVersion {
            subject: subject.to_string(),
            version,
            id,
            schema: entry.schema.clone(),
            schema_type: entry.schema_type.clone(),
            references: entry.references.clone(),
        })
    }

    /// A schema by id.
    pub fn schema_by_id(&self, id: u32) -> Result<SchemaById, StoreError> {
        let entry = self.entry(id)?;
        Ok(SchemaById {
            schema: entry.schema.clone(),
            schema_type: entry.schema_type.clone(),
            references: entry.references.clone(),
        })
    }

    /// The subject versions a schema id is registered as.
    pub fn id_usages(&self, id: u32) -> Result<Vec<RecordKey>, StoreError> {
        let _ = self.entry(id)?;
        Ok(self
            .subjects
            .iter()
            .flat_map(|(subject, versions)| {
                versions
                    .iter()
                    .filter(|(_, i)| *i == id)
                    .map(|(version, _)| RecordKey {
                        subject: subject.clone(),
                        version: *version,
                    })
            })
            .collect())
    }

    /// All subjects, sorted.
    pub fn subjects(&self) -> Vec<String> {
        self.subjects.keys().cloned().collect()
    }

    /// The versions of a subject, ascending.
    pub fn versions(&self, subject: &str) -> Result<Vec<u32>, StoreError> {
        self.subjects
            .get(subject)
            .map(|v| v.iter().map(|(version, _)| *version).collect())
            .ok_or_else(|| StoreError::SubjectNotFound(subject.to_string()))
    }

    /// Whether `request` could be registered against `spec` of `subject`
    /// under BACKWARD. A subject without versions accepts anything.
    pub fn check_compatibility(
        &self,
        subject: &str,
        spec: VersionSpec,
        request: &SchemaRequest,
    ) -> Result<CompatibilityReport, StoreError> {
        let parsed = self.parse(request)?;
        if !self.subjects.contains_key(subject) {
            return Ok(CompatibilityReport {
                is_compatible: true,
                messages: Vec::new(),
            });
        }
        let (_, id) = self.resolve_version(subject, spec)?;
        let messages = backward_messages(&self.entry(id)?.resolved, &parsed.resolved);
        Ok(CompatibilityReport {
            is_compatible: messages.is_empty(),
            messages,
        })
    }

    fn entry(&self, id: u32) -> Result<&Entry, StoreError> {
        self.by_id.get(&id).ok_or(StoreError::SchemaIdNotFound(id))
    }

    fn resolve_version(&self, subject: &str, spec: VersionSpec) -> Result<(u32, u32), StoreError> {
        let versions = self
            .subjects
            .get(subject)
            .ok_or_else(|| StoreError::SubjectNotFound(subject.to_string()))?;
        let found = match spec {
            VersionSpec::Latest => versions.last(),
            VersionSpec::Number(n) => versions.iter().find(|(v, _)| *v == n),
        };
        found.copied().ok_or_else(|| match spec {
            VersionSpec::Number(version) => StoreError::VersionNotFound {
                subject: subject.to_string(),
                version,
            },
            VersionSpec::Latest => StoreError::SubjectNotFound(subject.to_string()),
        })
    }

    /// The newest version of `subject` whose schema has this identity.
    fn find_in_subject(&self, subject: &str, identity: &str) -> Option<(u32, u32)> {
        self.subjects
            .get(subject)?
            .iter()
            .rev()
            .copied()
            .find(|(_, id)| {
                self.by_id
                    .get(id)
                    .is_some_and(|entry| entry.identity == identity)
            })
    }

    /// Parses and resolves a schema with its references.
    fn parse(&self, request: &SchemaRequest) -> Result<Parsed, StoreError> {
        let schema_type = request.schema_type();
        if !schema_type.eq_ignore_ascii_case(AVRO) {
            return Err(StoreError::UnsupportedSchemaType(schema_type.to_string()));
        }
        let references = request.references();
        let (main, schemata) = if references.is_empty() {
            let main = Schema::parse_str(&request.schema)
                .map_err(|e| StoreError::InvalidSchema(e.to_string()))?;
            (main, Vec::new())
        } else {
            let texts = self.reference_texts(references)?;
            Schema::parse_str_with_list(&request.schema, &texts)
                .map_err(|e| StoreError::InvalidSchema(e.to_string()))?
        };
        let normalized = serde_json::to_value(&main)
            .map(|v| v.to_string())
            .map_err(|e| StoreError::InvalidSchema(e.to_string()))?;
        let references_json = serde_json::to_string(references)
            .map_err(|e| StoreError::InvalidSchema(e.to_string()))?;
        Ok(Parsed {
            identity: format!("{AVRO}\n{normalized}\n{references_json}"),
            resolved: expand(&main, &schemata),
        })
    }

    /// The texts of the referenced schemas and of theirs, each once,
    /// dependencies first.
    fn reference_texts(&self, references: &[Reference]) -> Result<Vec<String>, StoreError> {
        fn visit(
            store: &Store,
            references: &[Reference],
            seen: &mut Vec<u32>,
            texts: &mut Vec<String>,
        ) -> Result<(), StoreError> {
            for reference in references {
                let (_, id) = store
                    .resolve_version(&reference.subject, VersionSpec::Number(reference.version))
                    .map_err(|_| {
                        StoreError::InvalidSchema(format!(
                            "reference `{}` points to subject '{}' version {}, which does not exist",
                            reference.name, reference.subject, reference.version
                        ))
                    })?;
                if seen.contains(&id) {
                    continue;
                }
                seen.push(id);
                let entry = store.entry(id)?;
                visit(store, &entry.references, seen, texts)?;
                texts.push(entry.schema.clone());
            }
            Ok(())
        }
        let mut seen = Vec::new();
        let mut texts = Vec::new();
        visit(self, references, &mut seen, &mut texts)?;
        Ok(texts)
    }
}

/// Why `reader` cannot read everything written with `writer`; empty when it can.
fn backward_messages(writer: &Schema, reader: &Schema) -> Vec<String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => Vec::new(),
        Ok(Compatibility::Partial) => vec![
            "the new schema can read only part of the data written with the latest version: \
             a union or enum of the latest version has branches or symbols the new schema cannot read"
                .to_string(),
        ],
        Err(e) => vec![describe(&e)],
    }
}

/// A readable description of a compatibility error (the library's own
/// message for a type change dumps both schemas in full).
fn describe(error: &CompatibilityError) -> String {
    match error {
        CompatibilityError::WrongType {
            writer_schema_type,
            reader_schema_type,
        } => format!(
            "type changed: data written as `{}` cannot be read as `{}`",
            kind_of(writer_schema_type),
            kind_of(reader_schema_type)
        ),
        CompatibilityError::FieldTypeMismatch(field, inner) => {
            format!("field '{field}': {}", describe(inner))
        }
        other => other.to_string(),
    }
}

/// The variant name at the start of a schema's `Debug` dump.
fn kind_of(debug: &str) -> String {
    let kind: String = debug
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if kind.is_empty() {
        debug.chars().take(40).collect()
    } else {
        kind.to_ascii_lowercase()
    }
}

/// A self-contained copy of `main` where every named-type reference is
/// replaced by its definition (except recursive ones), so the compatibility
/// checker compares definitions, not where each name happens to be defined
/// first.
fn expand(main: &Schema, schemata: &[Schema]) -> Schema {
    let mut definitions = HashMap::new();
    for schema in schemata.iter().chain(std::iter::once(main)) {
        collect_definitions(schema, &mut definitions);
    }
    expand_inner(main, &definitions, &mut Vec::new())
}

fn collect_definitions(schema: &Schema, definitions: &mut HashMap<Name, Schema>) {
    match schema {
        Schema::Ref { .. } => {}
        Schema::Record(record) => {
            let _ = definitions
                .entry(record.name.clone())
                .or_insert_with(|| schema.clone());
            for field in &record.fields {
                collect_definitions(&field.schema, definitions);
            }
        }
        Schema::Array(array) => collect_definitions(&array.items, definitions),
        Schema::Map(map) => collect_definitions(&map.types, definitions),
        Schema::Union(union) => {
            for variant in union.variants() {
                collect_definitions(variant, definitions);
            }
        }
        other => {
            if let Some(name) = other.name() {
                let _ = definitions
                    .entry(name.clone())
                    .or_insert_with(|| other.clone());
            }
        }
    }
}

fn expand_inner(
    schema: &Schema,
    definitions: &HashMap<Name, Schema>,
    enclosing: &mut Vec<Name>,
) -> Schema {
    match schema {
        Schema::Ref { name } => match definitions.get(name) {
            Some(definition) if !enclosing.contains(name) => {
                expand_inner(definition, definitions, enclosing)
            }
            _ => schema.clone(),
        },
        Schema::Record(record) => {
            enclosing.push(record.name.clone());
            let mut copy = record.clone();
            for field in &mut copy.fields {
                field.schema = expand_inner(&field.schema, definitions, enclosing);
            }
            let _ = enclosing.pop();
            Schema::Record(copy)
        }
        Schema::Array(array) => {
            let mut copy = array.clone();
            copy.items = Box::new(expand_inner(&array.items, definitions, enclosing));
            Schema::Array(copy)
        }
        Schema::Map(map) => {
            let mut copy = map.clone();
            copy.types = Box::new(expand_inner(&map.types, definitions, enclosing));
            Schema::Map(copy)
        }
        Schema::Union(union) => {
            let variants = union
                .variants()
                .iter()
                .map(|v| expand_inner(v, definitions, enclosing))
                .collect();
            UnionSchema::new(variants).map_or_else(|_| schema.clone(), Schema::Union)
        }
        _ => schema.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"Listing","namespace":"estate","fields":[
        {"name":"id","type":"string"},
        {"name":"price","type":"double"}]}"#;

    fn register(store: &mut Store, subject: &str, schema: &str) -> Result<u32, StoreError> {
        match store.prepare_register(subject, &SchemaRequest::avro(schema))? {
            Registration::Existing { id, .. } => Ok(id),
            Registration::New(record) => {
                assert!(store.apply(&record).expect("applies"));
                Ok(record.id)
            }
        }
    }

    fn with_fields(fields: &str) -> String {
        format!(r#"{{"type":"record","name":"Listing","namespace":"estate","fields":[{fields}]}}"#)
    }

    #[test]
    fn ids_start_at_one_and_identical_schemas_share_an_id_across_subjects() {
        let mut store = Store::new();
        assert_eq!(register(&mut store, "a-value", V1), Ok(1));
        // Same schema, other whitespace and key order, other subject.
        let reformatted = r#"{"namespace":"estate","name":"Listing","type":"record",
            "fields":[{"type":"string","name":"id"},{"name":"price","type":{"type":"double"}}]}"#;
        assert_eq!(register(&mut store, "b-value", reformatted), Ok(1));
        assert_eq!(store.schema_count(), 1);
        assert_eq!(store.versions("b-value"), Ok(vec![1]));
        // The stored text is the first one registered under the id.
        assert_eq!(store.schema_by_id(1).map(|s| s.schema), Ok(V1.to_string()));
        let other = r#"{"type":"record","name":"Other","fields":[{"name":"x","type":"int"}]}"#;
        assert_eq!(register(&mut store, "c-value", other), Ok(2));
    }

    #[test]
    fn registering_again_under_the_same_subject_adds_no_version() {
        let mut store = Store::new();
        assert_eq!(register(&mut store, "s", V1), Ok(1));
        assert_eq!(
            store.prepare_register("s", &SchemaRequest::avro(V1)),
            Ok(Registration::Existing { id: 1, version: 1 })
        );
        assert_eq!(store.versions("s"), Ok(vec![1]));
    }

    #[test]
    fn versions_increment_and_latest_follows() {
        let mut store = Store::new();
        let v2 = with_fields(
            r#"{"name":"id","type":"string"},{"name":"price","type":"double"},
               {"name":"city","type":["null","string"],"default":null}"#,
        );
        let v3 = with_fields(
            r#"{"name":"id","type":"string"},{"name":"price","type":"double"},
               {"name":"city","type":["null","string"],"default":null},
               {"name":"rooms","type":"int","default":0}"#,
        );
        assert_eq!(register(&mut store, "s", V1), Ok(1));
        assert_eq!(register(&mut store, "s", &v2), Ok(2));
        assert_eq!(register(&mut store, "s", &v3), Ok(3));
        assert_eq!(store.versions("s"), Ok(vec![1, 2, 3]));
        let latest = store.version("s", VersionSpec::Latest).expect("latest");
        assert_eq!((latest.version, latest.id), (3, 3));
        let second = store.version("s", VersionSpec::Number(2)).expect("v2");
        assert_eq!(second.schema, v2);
        assert_eq!(
            store.version("s", VersionSpec::Number(9)),
            Err(StoreError::VersionNotFound {
                subject: "s".into(),
                version: 9
            })
        );
        assert_eq!(
            store
                .version("nope", VersionSpec::Latest)
                .map_err(|e| e.error_code()),
            Err(40401)
        );
    }

    #[test]
    fn adding_an_optional_field_with_a_default_is_backward_compatible() {
        let mut store = Store::new();
        let _ = register(&mut store, "s", V1);
        let v2 = with_fields(
            r#"{"name":"id","type":"string"},{"name":"price","type":"double"},
               {"name":"city","type":["null","string"],"default":null}"#,
        );
        let report = store
            .check_compatibility("s", VersionSpec::Latest, &SchemaRequest::avro(&v2))
            .expect("checks");
        assert!(report.is_compatible, "{report:?}");
        assert_eq!(register(&mut store, "s", &v2), Ok(2));
    }

    #[test]
    fn adding_a_required_field_without_default_is_rejected() {
        let mut store = Store::new();
        let _ = register(&mut store, "s", V1);
        let v2 = with_fields(
            r#"{"name":"id","type":"string"},{"name":"price","type":"double"},
               {"name":"rooms","type":"int"}"#,
        );
        let err = register(&mut store, "s", &v2).expect_err("must be rejected");
        assert_eq!(err.error_code(), 409);
        assert!(err.to_string().contains("rooms"), "{err}");
        assert_eq!(store.versions("s"), Ok(vec![1]));
        let report = store
            .check_compatibility("s", VersionSpec::Latest, &SchemaRequest::avro(&v2))
            .expect("checks");
        assert!(!report.is_compatible);
        assert!(report.messages[0].contains("rooms"), "{report:?}");
    }

    #[test]
    fn removing_a_field_is_backward_compatible() {
        let mut store = Store::new();
        let _ = register(&mut store, "s", V1);
        let v2 = with_fields(r#"{"name":"id","type":"string"}"#);
        assert_eq!(register(&mut store, "s", &v2), Ok(2));
    }

    #[test]
    fn changing_a_type_is_rejected_with_a_short_message() {
        let mut store = Store::new();
        let _ = register(&mut store, "s", V1);
        let v2 = with_fields(r#"{"name":"id","type":"string"},{"name":"price","type":"int"}"#);
        let err = register(&mut store, "s", &v2).expect_err("must be rejected");
        let message = err.to_string();
        assert!(message.contains("field 'price'"), "{message}");
        assert!(message.contains("`double`"), "{message}");
        assert!(message.len() < 400, "{message}");
    }

    #[test]
    fn logical_types_and_defaults_make_distinct_schemas() {
        let mut store = Store::new();
        let plain = with_fields(r#"{"name":"at","type":"long"}"#);
        let logical =
            with_fields(r#"{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}}"#);
        assert_eq!(register(&mut store, "a", &plain), Ok(1));
        assert_eq!(register(&mut store, "b", &logical), Ok(2));
    }

    #[test]
    fn a_moved_named_type_definition_is_still_compatible() {
        let mut store = Store::new();
        let v1 = with_fields(
            r#"{"name":"home","type":{"type":"record","name":"Address","fields":[{"name":"city","type":"string"}]}},
               {"name":"work","type":"Address"}"#,
        );
        // Same data, but the definition now sits in the other field.
        let v2 = with_fields(
            r#"{"name":"work","type":{"type":"record","name":"Address","fields":[{"name":"city","type":"string"}]}},
               {"name":"home","type":"Address"}"#,
        );
        assert_eq!(register(&mut store, "s", &v1), Ok(1));
        assert_eq!(register(&mut store, "s", &v2), Ok(2));
    }

    #[test]
    fn invalid_schemas_and_other_types_are_42201() {
        let store = Store::new();
        for bad in [
            "not json",
            r#"{"type":"record","name":"X"}"#,
            r#"{"type":"nope"}"#,
        ] {
            let err = store
                .prepare_register("s", &SchemaRequest::avro(bad))
                .expect_err(bad);
            assert_eq!(err.error_code(), 42201, "{bad}: {err}");
        }
        let request = SchemaRequest {
            schema: r#"{"type":"object"}"#.into(),
            schema_type: Some("JSON".into()),
            references: None,
        };
        let err = store.prepare_register("s", &request).expect_err("json");
        assert_eq!(err.error_code(), 42201);
        assert!(err.to_string().contains("JSON"), "{err}");
    }

    #[test]
    fn lookup_finds_registered_schemas_only() {
        let mut store = Store::new();
        let _ = register(&mut store, "s", V1);
        let found = store.lookup("s", &SchemaRequest::avro(V1)).expect("found");
        assert_eq!(
            (found.subject.as_str(), found.version, found.id),
            ("s", 1, 1)
        );
        let other = with_fields(r#"{"name":"id","type":"string"}"#);
        assert_eq!(
            store
                .lookup("s", &SchemaRequest::avro(other))
                .map_err(|e| e.error_code()),
            Err(40403)
        );
        assert_eq!(
            store
                .lookup("t", &SchemaRequest::avro(V1))
                .map_err(|e| e.error_code()),
            Err(40401)
        );
    }

    #[test]
    fn compatibility_with_an_unknown_subject_is_true() {
        let store = Store::new();
        let report = store
            .check_compatibility("new", VersionSpec::Latest, &SchemaRequest::avro(V1))
            .expect("checks");
        assert!(report.is_compatible);
    }

    #[test]
    fn references_resolve_against_registered_subjects() {
        let mut store = Store::new();
        let address = r#"{"type":"record","name":"Address","namespace":"estate","fields":[{"name":"city","type":"string"}]}"#;
        assert_eq!(register(&mut store, "address", address), Ok(1));
        let listing = r#"{"type":"record","name":"Listing","namespace":"estate","fields":[{"name":"where","type":"estate.Address"}]}"#;
        let reference = Reference {
            name: "estate.Address".into(),
            subject: "address".into(),
            version: 1,
        };
        let request = SchemaRequest {
            schema: listing.into(),
            schema_type: None,
            references: Some(vec![reference.clone()]),
        };
        let Registration::New(record) = store.prepare_register("listing", &request).expect("ok")
        else {
            panic!("expected a new registration");
        };
        assert_eq!(record.references, vec![reference]);
        assert!(store.apply(&record).expect("applies"));
        // Without the reference the name is unknown.
        let err = store
            .prepare_register("other", &SchemaRequest::avro(listing))
            .expect_err("unresolved");
        assert_eq!(err.error_code(), 42201);
        // A reference to a missing version is reported as such.
        let missing = SchemaRequest {
            references: Some(vec![Reference {
                name: "estate.Address".into(),
                subject: "address".into(),
                version: 7,
            }]),
            ..request
        };
        let err = store
            .prepare_register("other", &missing)
            .expect_err("missing");
        assert!(err.to_string().contains("version 7"), "{err}");
    }

    #[test]
    fn version_specs_parse() {
        assert_eq!(VersionSpec::parse("latest"), Ok(VersionSpec::Latest));
        assert_eq!(VersionSpec::parse("-1"), Ok(VersionSpec::Latest));
        assert_eq!(VersionSpec::parse("3"), Ok(VersionSpec::Number(3)));
        for bad in ["0", "x", "-2", "4294967295"] {
            assert_eq!(
                VersionSpec::parse(bad).map_err(|e| e.error_code()),
                Err(42202),
                "{bad}"
            );
        }
    }

    /// Everything observable, for comparing two stores.
    fn observable(store: &Store) -> Vec<(String, u32, u32, String)> {
        store
            .subjects()
            .into_iter()
            .flat_map(|subject| {
                store
                    .versions(&subject)
                    .expect("versions")
                    .into_iter()
                    .map(move |v| (subject.clone(), v))
            })
            .map(|(subject, v)| {
                let sv = store.version(&subject, VersionSpec::Number(v)).expect("v");
                (subject, sv.version, sv.id, sv.schema)
            })
            .collect()
    }

    #[test]
    fn replaying_stored_records_reproduces_the_state() {
        let mut store = Store::new();
        let mut log: Vec<(RecordKey, Option<StoredRecord>)> = Vec::new();
        let v2 = with_fields(
            r#"{"name":"id","type":"string"},{"name":"price","type":"double"},
               {"name":"city","type":["null","string"],"default":null}"#,
        );
        let other = r#"{"type":"record","name":"Other","fields":[{"name":"x","type":"int"}]}"#;
        for (subject, schema) in [("a", V1), ("b", V1), ("a", v2.as_str()), ("c", other)] {
            if let Registration::New(record) = store
                .prepare_register(subject, &SchemaRequest::avro(schema))
                .expect("registers")
            {
                // Through JSON, as in the topic.
                let json = serde_json::to_vec(&record).expect("json");
                let back: StoredRecord = serde_json::from_slice(&json).expect("parses");
                log.push((back.key(), Some(back)));
                assert!(store.apply(&record).expect("applies"));
            }
        }
        let mut restored = Store::new();
        let report = restored.restore(log.clone());
        assert_eq!(report.applied, 4);
        assert!(report.rejected.is_empty(), "{report:?}");
        assert_eq!(observable(&restored), observable(&store));
        // Ids continue where they stopped.
        let next = with_fields(r#"{"name":"id","type":"string"}"#);
        assert_eq!(register(&mut restored, "d", &next), Ok(4));
        // Replaying twice changes nothing.
        let again = restored.clone().restore(log);
        assert!(again.rejected.is_empty(), "{again:?}");
    }

    #[test]
    fn replay_keeps_the_last_value_of_a_key_and_honours_tombstones() {
        let first = StoredRecord {
            subject: "s".into(),
            version: 1,
            id: 1,
            schema: V1.into(),
            schema_type: AVRO.into(),
            references: Vec::new(),
        };
        let other = with_fields(r#"{"name":"id","type":"string"}"#);
        let second = StoredRecord {
            id: 2,
            schema: other.clone(),
            ..first.clone()
        };
        let gone = StoredRecord {
            subject: "gone".into(),
            ..first.clone()
        };
        let mut store = Store::new();
        let report = store.restore(vec![
            (first.key(), Some(first.clone())),
            (gone.key(), Some(gone.clone())),
            (first.key(), Some(second)),
            (gone.key(), None),
        ]);
        assert_eq!(report.applied, 1, "{report:?}");
        assert_eq!(report.superseded, 2);
        assert_eq!(store.subjects(), vec!["s".to_string()]);
        let latest = store.version("s", VersionSpec::Latest).expect("latest");
        assert_eq!((latest.id, latest.schema), (2, other));
        // Only the surviving value of each key counts.
        assert_eq!(store.schema_count(), 1);
    }

    #[test]
    fn replay_rejects_contradicting_records() {
        let mut store = Store::new();
        let a = StoredRecord {
            subject: "a".into(),
            version: 1,
            id: 1,
            schema: V1.into(),
            schema_type: AVRO.into(),
            references: Vec::new(),
        };
        let b = StoredRecord {
            subject: "b".into(),
            schema: with_fields(r#"{"name":"id","type":"string"}"#),
            ..a.clone()
        };
        let broken = StoredRecord {
            subject: "c".into(),
            id: 3,
            schema: "{".into(),
            ..a.clone()
        };
        let report = store.restore(vec![
            (a.key(), Some(a.clone())),
            (b.key(), Some(b)),
            (broken.key(), Some(broken)),
        ]);
        assert_eq!(report.applied, 1);
        assert_eq!(report.rejected.len(), 2, "{report:?}");
        assert_eq!(store.subjects(), vec!["a".to_string()]);
    }

    #[test]
    fn a_failed_write_burns_its_id() {
        let mut store = Store::new();
        let Registration::New(record) = store
            .prepare_register("s", &SchemaRequest::avro(V1))
            .expect("ok")
        else {
            panic!("new expected");
        };
        store.note_id_used(record.id);
        assert_eq!(register(&mut store, "s", V1), Ok(2));
        assert_eq!(store.versions("s"), Ok(vec![1]));
    }
}
