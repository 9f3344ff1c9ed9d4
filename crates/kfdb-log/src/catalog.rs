//! The topic catalog: names, ids, partition counts and config overrides, and a bounded cache of
//! them.
//!
//! Every broker caches the topics it uses; a deletion or change bumps `topics_version`, which
//! every broker watches (and polls every second), dropping its cache: a change made through one
//! broker is seen through every other within a second.
//!
//! A topic is created with three keys (name → id, uuid → id, id → metadata) and nothing per
//! partition: partition state appears on the first append, so an idle topic costs three keys.
//!
//! Topic ids come from blocks of `ID_BLOCK` ids that each broker reserves for itself in a small
//! transaction of its own, so no key is written by every CreateTopics: the shared counter is
//! written once per `ID_BLOCK` topics a broker creates. Ids are unique, not dense.
//!
//! Every change that is not idempotent recognises its own earlier attempt after a
//! `commit_unknown_result` (a created topic by the topic id it was given, a deletion by the
//! topic being gone, an update by the metadata it wrote), so a retried request never answers
//! TOPIC_ALREADY_EXISTS for the topic it just created.

use crate::clock::now_ms;
use crate::config::{self, BrokerDefaults};
use crate::error::{LogError, LogResult};
use crate::keys;
use crate::values::{self, TopicMeta};
use dashmap::DashMap;
use futures::future::{join_all, try_join_all};
use kfdb_kv::tuple::Uuid;
use kfdb_kv::{Database, RangeOption, Transaction};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Topics created per store transaction.
const CREATE_CHUNK: usize = 500;
/// Cached topics before the cache is emptied (bounded memory at any topic count: a few MB).
const CACHE_LIMIT: usize = 10_000;
/// Topic ids a broker reserves at a time.
const ID_BLOCK: i64 = 10_000;

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    /// The name.
    pub name: String,
    /// Partition count, -1 for `num.partitions`.
    pub partitions: i32,
    /// Replication factor, -1 for `default.replication.factor`.
    pub replication_factor: i16,
    /// Config overrides.
    pub configs: Vec<(String, String)>,
}

/// A topic named by its name or by its id.
#[derive(Debug, Clone, Copy)]
pub enum TopicId<'a> {
    /// By name.
    Name(&'a str),
    /// By topic id.
    Uuid(Uuid),
}

/// One change to a topic's configs (IncrementalAlterConfigs' operations; AlterConfigs is a list of
/// `Set` with `replace = true`).
#[derive(Debug, Clone)]
pub enum AlterOp {
    /// Set a value.
    Set(String, String),
    /// Remove the override (back to the default).
    Delete(String),
    /// Add to a list value.
    Append(String, String),
    /// Remove from a list value.
    Subtract(String, String),
}

/// Defaults the catalog applies to new topics (Kafka's broker configs).
#[derive(Debug, Clone)]
pub(crate) struct TopicDefaults {
    /// `auto.create.topics.enable`.
    pub auto_create: bool,
    /// `num.partitions`.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub replication_factor: i16,
    /// Broker configs given to `kfdb serve` that are defaults of topic configs
    /// (`log.retention.hours`, ...), by their broker names.
    pub broker_configs: Vec<(String, String)>,
}

#[derive(Default)]
struct TopicCache {
    by_name: DashMap<String, Arc<TopicMeta>>,
    by_uuid: DashMap<Uuid, Arc<TopicMeta>>,
}

impl TopicCache {
    fn get(&self, name: &str) -> Option<Arc<TopicMeta>> {
        self.by_name.get(name).map(|e| e.value().clone())
    }
    fn get_uuid(&self, uuid: &Uuid) -> Option<Arc<TopicMeta>> {
        self.by_uuid.get(uuid).map(|e| e.value().clone())
    }
    fn put(&self, t: Arc<TopicMeta>) {
        if self.by_name.len() >= CACHE_LIMIT {
            self.by_name.clear();
            self.by_uuid.clear();
        }
        self.by_uuid.insert(t.uuid, t.clone());
        self.by_name.insert(t.name.clone(), t);
    }
    fn len(&self) -> usize {
        self.by_name.len()
    }
    fn remove(&self, t: &TopicMeta) {
        self.by_name.remove(&t.name);
        self.by_uuid.remove(&t.uuid);
    }
}

/// Kafka's topic name rules: 1..=249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> LogResult<()> {
    let bad = |why: &str| LogError::InvalidTopic(format!("{name:?} {why}"));
    if name.is_empty() {
        return Err(bad("is empty"));
    }
    if name == "." || name == ".." {
        return Err(bad("is not allowed"));
    }
    if name.len() > 249 {
        return Err(bad("is longer than 249 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(bad(
            "has characters other than ASCII alphanumerics, '.', '_' and '-'",
        ));
    }
    Ok(())
}

/// A topic's metadata by internal id.
pub(crate) async fn read_meta(
    tx: &Transaction,
    tid: i64,
    snapshot: bool,
) -> LogResult<Option<TopicMeta>> {
    match tx.get(&keys::topic_meta(tid), snapshot).await? {
        Some(v) => Ok(Some(TopicMeta::decode(tid, &v)?)),
        None => Ok(None),
    }
}

/// A topic's metadata by name.
pub(crate) async fn meta_by_name(
    tx: &Transaction,
    name: &str,
    snapshot: bool,
) -> LogResult<Option<TopicMeta>> {
    match tx.get(&keys::topic_name(name), snapshot).await? {
        Some(v) => read_meta(tx, values::decode_topic_id(&v)?, snapshot).await,
        None => Ok(None),
    }
}

/// Tell every broker that a topic they may have cached changed (deleted, repartitioned or
/// reconfigured): they drop their caches (`watchers.rs`). A blind write, never a conflict; created
/// topics need none (nothing caches a topic that does not exist).
fn bump_topics_version(tx: &Transaction) {
    tx.atomic_op(
        &keys::topics_version(),
        &1i64.to_le_bytes(),
        kfdb_kv::MutationType::Add,
    );
}

/// See the module documentation.
pub struct TopicCatalog {
    db: Database,
    defaults: TopicDefaults,
    cache: TopicCache,
    /// This broker's reserved topic ids: `[next, end)`.
    ids: Mutex<(i64, i64)>,
    /// The broker defaults of topic configs last read, and whether they must be read again
    /// (set when `topics_version` moved: someone may have changed them).
    broker_defaults: Mutex<(Arc<BrokerDefaults>, bool)>,
}

impl TopicCatalog {
    pub(crate) fn new(db: Database, defaults: TopicDefaults) -> Self {
        let fixed = BrokerDefaults::from_broker_configs(&defaults.broker_configs);
        Self {
            db,
            defaults,
            cache: TopicCache::default(),
            ids: Mutex::new((0, 0)),
            broker_defaults: Mutex::new((
                Arc::new(BrokerDefaults {
                    dynamic: Vec::new(),
                    fixed,
                }),
                true,
            )),
        }
    }

    fn check_new_topic(&self, t: &NewTopic) -> LogResult<NewTopic> {
        validate_topic_name(&t.name)?;
        let partitions = if t.partitions == -1 {
            self.defaults.num_partitions
        } else {
            t.partitions
        };
        if partitions < 1 {
            return Err(LogError::InvalidPartitions(format!(
                "{partitions}: must be at least 1"
            )));
        }
        let rf = if t.replication_factor == -1 {
            self.defaults.replication_factor
        } else {
            t.replication_factor
        };
        if rf < 1 {
            return Err(LogError::InvalidReplicationFactor(format!(
                "{rf}: must be at least 1"
            )));
        }
        let mut configs = Vec::new();
        for (k, v) in &t.configs {
            configs.push((k.clone(), config::validate(k, v)?));
        }
        Ok(NewTopic {
            name: t.name.clone(),
            partitions,
            replication_factor: rf,
            configs,
        })
    }

    /// `n` fresh topic ids from this broker's block, reserving blocks as needed.
    async fn take_ids(&self, n: usize) -> LogResult<Vec<i64>> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            {
                let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
                while out.len() < n && ids.0 < ids.1 {
                    out.push(ids.0);
                    ids.0 += 1;
                }
            }
            if out.len() == n {
                break;
            }
            let want = ID_BLOCK.max((n - out.len()) as i64);
            let (start, end) = self
                .db
                .run(|tx, _| async move {
                    let key = keys::topic_id_block();
                    let last = match tx.get(&key, false).await? {
                        Some(v) => values::decode_counter("topic id block", &v)?,
                        None => 0,
                    };
                    tx.set(&key, &values::encode_counter(last + want));
                    Ok::<_, LogError>((last + 1, last + want + 1))
                })
                .await?;
            // A block reserved twice after commit_unknown_result only skips ids; ids stay unique.
            *self.ids.lock().unwrap_or_else(|p| p.into_inner()) = (start, end);
        }
        Ok(out)
    }

    /// Create topics; one result per requested topic, in order. With `validate_only` nothing is
    /// written but every check (including "already exists") runs.
    pub async fn create(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<LogResult<Arc<TopicMeta>>> {
        let mut results: Vec<Option<LogResult<Arc<TopicMeta>>>> = vec![None; topics.len()];
        let mut valid = Vec::new();
        let mut seen = HashSet::new();
        for (i, t) in topics.iter().enumerate() {
            if !seen.insert(t.name.clone()) {
                results[i] = Some(Err(LogError::InvalidRequest(format!(
                    "topic {} named twice in one request",
                    t.name
                ))));
                continue;
            }
            match self.check_new_topic(t) {
                Ok(t) => valid.push((i, t)),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        let now = now_ms();
        // Ids and uuids are chosen before the store transactions, so that a retry of one writes
        // (and recognises) exactly what the first attempt did.
        let ids = if validate_only {
            Ok(vec![-1; valid.len()])
        } else {
            self.take_ids(valid.len()).await
        };
        let ids = match ids {
            Ok(ids) => ids,
            Err(e) => {
                for (i, _) in &valid {
                    results[*i] = Some(Err(e.clone()));
                }
                Vec::new()
            }
        };
        let metas: Vec<TopicMeta> = valid
            .iter()
            .zip(ids)
            .map(|((_, t), id)| TopicMeta {
                id,
                name: t.name.clone(),
                uuid: Uuid::new_v4(),
                partitions: t.partitions,
                replication_factor: t.replication_factor,
                configs: t.configs.clone(),
                created_ms: now,
            })
            .collect();
        let mut chunks: Vec<Vec<TopicMeta>> = Vec::new();
        let mut metas = metas.into_iter().peekable();
        while metas.peek().is_some() {
            chunks.push(metas.by_ref().take(CREATE_CHUNK).collect());
        }
        let outcomes: Vec<LogResult<Vec<LogResult<TopicMeta>>>> = if let [only] = &mut chunks[..] {
            // One transaction (most requests): part of the request, dropped with it.
            vec![create_chunk(self.db.clone(), std::mem::take(only), validate_only).await]
        } else {
            // Several run together, each as its own task: their names differ, so they never
            // conflict; their reads run on every runtime thread and their commits share the
            // store's group commits instead of waiting one by one. A task that panicked may or
            // may not have committed: answered as abandoned, like a lost response.
            let tasks = chunks
                .into_iter()
                .map(|chunk| tokio::spawn(create_chunk(self.db.clone(), chunk, validate_only)));
            join_all(tasks)
                .await
                .into_iter()
                .map(|joined| {
                    joined.unwrap_or_else(|e| {
                        Err(LogError::Abandoned(format!("topic creation task: {e}")))
                    })
                })
                .collect()
        };
        for (chunk, outcome) in valid.chunks(CREATE_CHUNK).zip(outcomes) {
            match outcome {
                Ok(metas) => {
                    // Not cached: a topic costs memory only once it is used (most of a million
                    // topics created at once stay idle).
                    for ((i, _), r) in chunk.iter().zip(metas) {
                        results[*i] = Some(r.map(Arc::new));
                    }
                }
                Err(e) => {
                    for (i, _) in chunk {
                        results[*i] = Some(Err(e.clone()));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(Err(LogError::InvalidRequest("not processed".into()))))
            .collect()
    }

    /// Forget every cached topic (another broker changed one), and the broker defaults.
    pub(crate) fn invalidate(&self) {
        self.cache.by_name.clear();
        self.cache.by_uuid.clear();
        self.broker_defaults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1 = true;
    }

    /// The broker defaults of topic configs in force: this broker's own settings, and the
    /// cluster-wide dynamic ones (read from the store again after any broker changed them).
    pub async fn broker_defaults(&self) -> LogResult<Arc<BrokerDefaults>> {
        let (current, stale) = self
            .broker_defaults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if !stale {
            return Ok(current);
        }
        let dynamic = self.dynamic_broker_configs().await?;
        let fresh = Arc::new(BrokerDefaults {
            dynamic: BrokerDefaults::from_broker_configs(&dynamic),
            fixed: current.fixed.clone(),
        });
        *self
            .broker_defaults
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = (fresh.clone(), false);
        Ok(fresh)
    }

    /// The cluster-wide dynamic broker configs, by their broker names (`log.retention.ms`).
    pub async fn dynamic_broker_configs(&self) -> LogResult<Vec<(String, String)>> {
        self.db
            .run(|tx, _| async move {
                match tx.get(&keys::broker_defaults(), false).await? {
                    Some(v) => values::decode_configs("broker defaults", &v),
                    None => Ok(Vec::new()),
                }
            })
            .await
    }

    /// Replace the cluster-wide dynamic broker configs; every broker follows within a second
    /// (`topics_version` moves).
    pub async fn set_dynamic_broker_configs(&self, configs: &[(String, String)]) -> LogResult<()> {
        let mut sorted = configs.to_vec();
        sorted.sort();
        let sorted = &sorted;
        self.db
            .run(|tx, _| async move {
                if sorted.is_empty() {
                    tx.clear(&keys::broker_defaults());
                } else {
                    tx.set(&keys::broker_defaults(), &values::encode_configs(sorted));
                }
                bump_topics_version(&tx);
                Ok::<_, LogError>(())
            })
            .await?;
        self.invalidate();
        Ok(())
    }

    /// Topics held in the metadata cache (at most `CACHE_LIMIT`; created topics are not cached
    /// until they are looked up).
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// A topic by name (from the cache when present).
    pub async fn get(&self, name: &str) -> LogResult<Option<Arc<TopicMeta>>> {
        if let Some(t) = self.cache.get(name) {
            return Ok(Some(t));
        }
        let found = self
            .db
            .run(|tx, _| async move { meta_by_name(&tx, name, true).await })
            .await?;
        Ok(found.map(|m| {
            let m = Arc::new(m);
            self.cache.put(m.clone());
            m
        }))
    }

    /// A topic by name, creating it with defaults when missing and `auto.create.topics.enable`.
    pub async fn get_or_create(&self, name: &str) -> LogResult<Option<Arc<TopicMeta>>> {
        if let Some(t) = self.get(name).await? {
            return Ok(Some(t));
        }
        if !self.defaults.auto_create {
            return Ok(None);
        }
        let spec = NewTopic {
            name: name.to_string(),
            partitions: -1,
            replication_factor: -1,
            configs: Vec::new(),
        };
        match self.create(vec![spec], false).await.pop() {
            Some(Ok(t)) => {
                tracing::info!(
                    topic = name,
                    partitions = t.partitions,
                    "auto-created topic"
                );
                Ok(Some(t))
            }
            Some(Err(LogError::TopicExists)) => self.get(name).await,
            Some(Err(e)) => Err(e),
            None => Ok(None),
        }
    }

    /// A topic by its Kafka topic id (from the cache when present).
    pub async fn get_by_uuid(&self, uuid: Uuid) -> LogResult<Option<Arc<TopicMeta>>> {
        if let Some(t) = self.cache.get_uuid(&uuid) {
            return Ok(Some(t));
        }
        let found = self
            .db
            .run(|tx, _| async move {
                match tx.get(&keys::topic_uuid(uuid), true).await? {
                    Some(v) => read_meta(&tx, values::decode_topic_id(&v)?, true).await,
                    None => Ok(None),
                }
            })
            .await?;
        Ok(found.map(|m| {
            let m = Arc::new(m);
            self.cache.put(m.clone());
            m
        }))
    }

    /// A topic by name or by Kafka topic id.
    pub async fn lookup(&self, id: TopicId<'_>) -> LogResult<Option<Arc<TopicMeta>>> {
        match id {
            TopicId::Name(n) => self.get(n).await,
            TopicId::Uuid(u) => self.get_by_uuid(u).await,
        }
    }

    /// A topic by its internal id (for naming committed offsets and transaction partitions).
    pub async fn get_by_tid(&self, tid: i64) -> LogResult<Option<Arc<TopicMeta>>> {
        let found = self
            .db
            .run(|tx, _| async move { read_meta(&tx, tid, true).await })
            .await?;
        Ok(found.map(Arc::new))
    }

    /// Up to `limit` topics in name order, starting after `after` (pagination).
    pub async fn list(&self, after: Option<&str>, limit: usize) -> LogResult<Vec<Arc<TopicMeta>>> {
        let (begin, end) = keys::topic_names();
        let begin = match after {
            Some(name) => kfdb_kv::key_after(&keys::topic_name(name)),
            None => begin,
        };
        let metas = self
            .db
            .run(|tx, _| {
                let (begin, end) = (begin.clone(), end.clone());
                async move {
                    let rows = tx
                        .get_range(&RangeOption::new(begin, end).limit(limit), true)
                        .await?;
                    let tids = rows
                        .kvs
                        .iter()
                        .map(|kv| values::decode_topic_id(&kv.value))
                        .collect::<LogResult<Vec<i64>>>()?;
                    let metas =
                        try_join_all(tids.iter().map(|tid| read_meta(&tx, *tid, true))).await?;
                    Ok::<_, LogError>(metas.into_iter().flatten().collect::<Vec<_>>())
                }
            })
            .await?;
        Ok(metas.into_iter().map(Arc::new).collect())
    }

    /// Delete a topic's metadata and all its data. The caller drops what this broker holds in
    /// memory for it (`Log::delete_topic`).
    pub(crate) async fn delete(&self, id: TopicId<'_>) -> LogResult<Arc<TopicMeta>> {
        let meta = self.lookup(id).await?.ok_or(LogError::UnknownTopic)?;
        let tid = meta.id;
        let meta_ref = &meta;
        self.db
            .run(|tx, maybe_committed| async move {
                if read_meta(&tx, tid, false).await?.is_none() {
                    // Gone: deleted by our own earlier attempt, or by someone else.
                    return if maybe_committed.0 {
                        Ok(())
                    } else {
                        Err(LogError::UnknownTopic)
                    };
                }
                tx.clear(&keys::topic_name(&meta_ref.name));
                tx.clear(&keys::topic_uuid(meta_ref.uuid));
                tx.clear(&keys::topic_meta(tid));
                for (b, e) in keys::topic_data(tid) {
                    tx.clear_range(&b, &e);
                }
                bump_topics_version(&tx);
                Ok(())
            })
            .await?;
        self.cache.remove(&meta);
        Ok(meta)
    }

    /// Rename a topic: one store transaction moves its name key and rewrites its metadata; its
    /// data, key index and committed offsets are keyed by the topic's id and stay where they
    /// are (O(1) at any size). Its uuid stays the same. `TopicExists` when `to` is taken.
    pub async fn rename(&self, from: &str, to: &str) -> LogResult<Arc<TopicMeta>> {
        validate_topic_name(to)?;
        if from == to {
            return Err(LogError::TopicExists);
        }
        let renamed = self
            .db
            .run(|tx, maybe_committed| async move {
                if let Some(taken) = meta_by_name(&tx, to, false).await? {
                    // Our own earlier attempt landed: the new name points at the old topic.
                    let ours = meta_by_name(&tx, from, false).await?.is_none();
                    if maybe_committed.0 && ours {
                        return Ok(taken);
                    }
                    return Err(LogError::TopicExists);
                }
                let mut meta = meta_by_name(&tx, from, false)
                    .await?
                    .ok_or(LogError::UnknownTopic)?;
                tx.clear(&keys::topic_name(from));
                tx.set(&keys::topic_name(to), &values::encode_topic_id(meta.id));
                meta.name = to.to_string();
                tx.set(&keys::topic_meta(meta.id), &meta.encode());
                bump_topics_version(&tx);
                Ok::<_, LogError>(meta)
            })
            .await?;
        self.invalidate();
        Ok(Arc::new(renamed))
    }

    /// Change a topic's metadata in one store transaction. After commit_unknown_result, finding
    /// the metadata this change wrote means it landed.
    async fn update(
        &self,
        name: &str,
        change: impl Fn(&mut TopicMeta) -> LogResult<()>,
        validate_only: bool,
    ) -> LogResult<Arc<TopicMeta>> {
        let change = &change;
        let written: Mutex<Option<TopicMeta>> = Mutex::new(None);
        let written = &written;
        let updated = self
            .db
            .run(|tx, maybe_committed| async move {
                let mut meta = meta_by_name(&tx, name, false)
                    .await?
                    .ok_or(LogError::UnknownTopic)?;
                let landed = written.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if maybe_committed.0 && landed.as_ref() == Some(&meta) {
                    return Ok(meta);
                }
                change(&mut meta)?;
                if !validate_only {
                    tx.set(&keys::topic_meta(meta.id), &meta.encode());
                    bump_topics_version(&tx);
                    *written.lock().unwrap_or_else(|p| p.into_inner()) = Some(meta.clone());
                }
                Ok::<_, LogError>(meta)
            })
            .await?;
        let updated = Arc::new(updated);
        if !validate_only {
            self.cache.put(updated.clone());
        }
        Ok(updated)
    }

    /// Grow a topic to `count` partitions.
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> LogResult<Arc<TopicMeta>> {
        self.update(
            name,
            |m| {
                if count <= m.partitions {
                    return Err(LogError::InvalidPartitions(format!(
                        "topic has {} partitions; the new count {count} must be larger",
                        m.partitions
                    )));
                }
                m.partitions = count;
                Ok(())
            },
            validate_only,
        )
        .await
    }

    /// Change a topic's config overrides. `replace`: the ops are the complete new set of
    /// overrides (AlterConfigs); otherwise they apply on top (IncrementalAlterConfigs).
    pub async fn alter_configs(
        &self,
        name: &str,
        ops: &[AlterOp],
        replace: bool,
        validate_only: bool,
    ) -> LogResult<Arc<TopicMeta>> {
        self.update(
            name,
            |m| {
                let mut configs = if replace {
                    Vec::new()
                } else {
                    m.configs.clone()
                };
                for op in ops {
                    apply_op(&mut configs, op)?;
                }
                m.configs = configs;
                Ok(())
            },
            validate_only,
        )
        .await
    }
}

/// One store transaction creating `metas` (or only checking, with `validate_only`).
async fn create_chunk(
    db: Database,
    metas: Vec<TopicMeta>,
    validate_only: bool,
) -> LogResult<Vec<LogResult<TopicMeta>>> {
    let metas = &metas;
    db.run(|tx, maybe_committed| async move {
        let name_keys: Vec<Vec<u8>> = metas.iter().map(|t| keys::topic_name(&t.name)).collect();
        let exists = try_join_all(name_keys.iter().map(|k| tx.get(k, false))).await?;
        let mut out = Vec::with_capacity(metas.len());
        for (meta, existing) in metas.iter().zip(exists) {
            if let Some(v) = existing {
                // After commit_unknown_result the topic may be the one we created.
                let ours = maybe_committed.0
                    && values::decode_topic_id(&v)? == meta.id
                    && read_meta(&tx, meta.id, false)
                        .await?
                        .is_some_and(|m| m.uuid == meta.uuid);
                out.push(if ours {
                    Ok(meta.clone())
                } else {
                    Err(LogError::TopicExists)
                });
                continue;
            }
            if !validate_only {
                tx.set(
                    &keys::topic_name(&meta.name),
                    &values::encode_topic_id(meta.id),
                );
                tx.set(
                    &keys::topic_uuid(meta.uuid),
                    &values::encode_topic_id(meta.id),
                );
                tx.set(&keys::topic_meta(meta.id), &meta.encode());
            }
            out.push(Ok(meta.clone()));
        }
        Ok::<_, LogError>(out)
    })
    .await
}

fn apply_op(configs: &mut Vec<(String, String)>, op: &AlterOp) -> LogResult<()> {
    let current = |configs: &Vec<(String, String)>, name: &str| -> String {
        configs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| config::lookup(name).map(|d| d.default.to_string()))
            .unwrap_or_default()
    };
    let (name, value) = match op {
        AlterOp::Set(k, v) => (k.clone(), Some(config::validate(k, v)?)),
        AlterOp::Delete(k) => {
            config::lookup(k)
                .ok_or_else(|| LogError::InvalidConfig(format!("unknown config {k}")))?;
            (k.clone(), None)
        }
        AlterOp::Append(k, v) | AlterOp::Subtract(k, v) => {
            let def = config::lookup(k)
                .ok_or_else(|| LogError::InvalidConfig(format!("unknown config {k}")))?;
            if def.kind != config::ConfigType::List {
                return Err(LogError::InvalidConfig(format!("{k} is not a list")));
            }
            let mut items: Vec<String> = current(configs, k)
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if matches!(op, AlterOp::Append(..)) {
                    if !items.iter().any(|i| i == item) {
                        items.push(item.to_string());
                    }
                } else {
                    items.retain(|i| i != item);
                }
            }
            (k.clone(), Some(config::validate(k, &items.join(","))?))
        }
    };
    configs.retain(|(k, _)| *k != name);
    if let Some(v) = value {
        configs.push((name, v));
        configs.sort();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_a-b").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("has space").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
    }

    #[test]
    fn incremental_ops_edit_lists() {
        let mut c = Vec::new();
        apply_op(
            &mut c,
            &AlterOp::Append("cleanup.policy".into(), "compact".into()),
        )
        .unwrap();
        assert_eq!(
            c,
            vec![("cleanup.policy".to_string(), "delete,compact".to_string())]
        );
        apply_op(
            &mut c,
            &AlterOp::Subtract("cleanup.policy".into(), "delete".into()),
        )
        .unwrap();
        assert_eq!(c[0].1, "compact");
        apply_op(&mut c, &AlterOp::Delete("cleanup.policy".into())).unwrap();
        assert!(c.is_empty());
        assert!(apply_op(&mut c, &AlterOp::Append("retention.ms".into(), "1".into())).is_err());
    }
}
