//! A local Alibaba Cloud Log Service (SLS) emulator, faithful enough that Alibaba's own
//! Python SDK (`aliyun-log-python-sdk`) runs against it unchanged.
//!
//! siemfwd's main source is SLS, which cannot be reached from tests, benchmarks or an
//! offline laptop. This crate speaks the real HTTP protocol (the project's protocol notes,
//! `sls-protocol.md`): signed requests, cursors, PullLogs with lz4/zstd/deflate bodies,
//! PutLogs, and consumer groups with server-side shard assignment and checkpoints.
//!
//! # Brief overview
//!
//! - [`EmulatorConfig`] (or [`Emulator::builder`]) says where to listen, which AccessKeys to
//!   accept, which logstores to create, where to persist, and which faults to inject.
//! - [`start`] binds and serves in the background, returning a [`RunningEmulator`]: its
//!   address and endpoint, a [`Faults`] handle (with counts of the faults that fired),
//!   direct store helpers (create logstores, append log groups without HTTP, read
//!   checkpoints and the log of checkpoint updates with refusals, expire consumers or
//!   cursors) and [`RunningEmulator::shutdown`].
//! - Modules: `auth` (v1/v4 signatures), `cursor`, `proto`, `compress`, `store` (shards and
//!   data), `group` (consumer-group state machine), `faults`, `persist` (data directory),
//!   `load` (synthetic audit events), `server` + `routes` (HTTP).
//!
//! Wire-encoding code here is deliberately independent of siemfwd's SLS client: a shared
//! bug would hide itself, while Alibaba's SDK run against this emulator keeps it honest.

#![deny(missing_docs)]

pub mod auth;
pub mod compress;
pub mod cursor;
mod error;
pub mod faults;
pub mod group;
pub mod load;
mod persist;
pub mod proto;
mod routes;
mod server;
pub mod spl;
pub mod store;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use error::{ApiError, Error};
pub use faults::{FaultConfig, FaultCounts, Faults};
pub use group::{Assign, Checkpoint};
pub use load::{LoadSpec, Shape};

/// Which requests are accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// Accept every request, signed or not.
    #[default]
    Disabled,
    /// Require a valid v1 or v4 signature by one of these AccessKeyId → secret pairs.
    Keys(HashMap<String, String>),
}

/// A logstore to create at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogstoreSpec {
    /// Project name.
    pub project: String,
    /// Logstore name.
    pub logstore: String,
    /// Number of read-write shards.
    pub shards: u32,
}

impl std::str::FromStr for LogstoreSpec {
    type Err = String;

    /// Parses `project/logstore:shards` (`:shards` optional, default 2).
    fn from_str(s: &str) -> Result<Self, String> {
        let (path, shards) = match s.rsplit_once(':') {
            Some((p, n)) => (
                p,
                n.parse::<u32>()
                    .map_err(|_| format!("{s:?}: shard count {n:?} is not a number"))?,
            ),
            None => (s, 2),
        };
        let (project, logstore) = path
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: expected project/logstore[:shards]"))?;
        if project.is_empty() || logstore.is_empty() || shards == 0 {
            return Err(format!(
                "{s:?}: expected project/logstore[:shards] with shards >= 1"
            ));
        }
        Ok(Self {
            project: project.to_owned(),
            logstore: logstore.to_owned(),
            shards,
        })
    }
}

/// Everything the emulator runs with.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Listening address; port 0 picks an ephemeral port.
    pub addr: SocketAddr,
    /// Signature checking.
    pub auth: Auth,
    /// Create projects and logstores on first use (with `default_shards` shards).
    pub auto_create: bool,
    /// Shards of an auto-created logstore.
    pub default_shards: u32,
    /// Project used when the Host header has no project label (bare IP or `localhost`).
    pub default_project: Option<String>,
    /// Consumer groups allowed per logstore (`ConsumerGroupQuotaExceed` beyond).
    pub group_quota: usize,
    /// Logstores created at start.
    pub logstores: Vec<LogstoreSpec>,
    /// Persist data and state here; `None` keeps everything in memory.
    pub data_dir: Option<PathBuf>,
    /// Data older than this (by receive time) expires; its cursors become invalid.
    pub ttl: Option<Duration>,
    /// Refuse v1 requests whose `Date` is further than this from the server clock
    /// (`RequestTimeTooSkewed`); `None` disables the check.
    pub max_clock_skew: Option<Duration>,
    /// Initial fault settings.
    pub faults: FaultConfig,
    /// Consume processors by name (PullLogs `processor=`): each an SPL statement of the
    /// subset in [`spl`].
    pub processors: std::collections::BTreeMap<String, String>,
    /// How long the temporary AccessKeys the emulator issues stay valid (from its
    /// metadata service, its STS and `GET /_emulator/credentials`).
    pub credential_ttl: Duration,
    /// The RAM role its metadata service says the instance has.
    pub ecs_role: String,
    /// What its STS accepts in `AssumeRoleWithOIDC`.
    pub oidc: OidcTrust,
}

/// The role, OIDC provider and token the emulator's STS accepts (a real STS checks the
/// token's signature against the provider's keys; the emulator compares it whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcTrust {
    /// The role's ARN.
    pub role_arn: String,
    /// The OIDC provider's ARN.
    pub provider_arn: String,
    /// The one token accepted.
    pub token: String,
}

impl Default for OidcTrust {
    fn default() -> Self {
        Self {
            role_arn: "acs:ram::1000000000000000:role/siemfwd-emulator".to_owned(),
            provider_arn: "acs:ram::1000000000000000:oidc-provider/ack-rrsa-emulator".to_owned(),
            token: "emulator-oidc-token".to_owned(),
        }
    }
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            auth: Auth::Disabled,
            auto_create: true,
            default_shards: 2,
            default_project: None,
            group_quota: 30,
            logstores: Vec::new(),
            data_dir: None,
            ttl: None,
            max_clock_skew: Some(Duration::from_secs(15 * 60)),
            faults: FaultConfig::default(),
            processors: std::collections::BTreeMap::new(),
            credential_ttl: Duration::from_secs(3600),
            ecs_role: "siemfwd-emulator".to_owned(),
            oidc: OidcTrust::default(),
        }
    }
}

/// Entry point for the builder.
#[derive(Debug)]
pub struct Emulator;

impl Emulator {
    /// A builder with the defaults of [`EmulatorConfig::default`].
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder {
            config: EmulatorConfig::default(),
        }
    }
}

/// Builds an [`EmulatorConfig`] and starts it.
#[derive(Debug, Clone)]
pub struct EmulatorBuilder {
    config: EmulatorConfig,
}

impl EmulatorBuilder {
    /// Listen on `addr` (e.g. `127.0.0.2:80` for the Python SDK's bare-IP endpoint form).
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.config.addr = addr;
        self
    }

    /// Accept this AccessKey (turns signature checking on).
    pub fn access_key(mut self, id: &str, secret: &str) -> Self {
        match &mut self.config.auth {
            Auth::Keys(keys) => {
                keys.insert(id.to_owned(), secret.to_owned());
            }
            Auth::Disabled => {
                self.config.auth = Auth::Keys(HashMap::from([(id.to_owned(), secret.to_owned())]))
            }
        }
        self
    }

    /// Accept every request without checking signatures (the default).
    pub fn no_auth(mut self) -> Self {
        self.config.auth = Auth::Disabled;
        self
    }

    /// Create `project/logstore` with `shards` shards at start.
    pub fn logstore(mut self, project: &str, logstore: &str, shards: u32) -> Self {
        self.config.logstores.push(LogstoreSpec {
            project: project.into(),
            logstore: logstore.into(),
            shards,
        });
        self
    }

    /// Auto-create projects and logstores on first use (default on).
    pub fn auto_create(mut self, on: bool) -> Self {
        self.config.auto_create = on;
        self
    }

    /// Shards of auto-created logstores.
    pub fn default_shards(mut self, n: u32) -> Self {
        self.config.default_shards = n;
        self
    }

    /// Project for requests whose Host has no project label.
    pub fn default_project(mut self, project: &str) -> Self {
        self.config.default_project = Some(project.to_owned());
        self
    }

    /// Consumer groups allowed per logstore.
    pub fn group_quota(mut self, n: usize) -> Self {
        self.config.group_quota = n;
        self
    }

    /// Persist to `dir`.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.data_dir = Some(dir.into());
        self
    }

    /// Expire data older than `ttl`.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config.ttl = Some(ttl);
        self
    }

    /// A consume processor named `name` running the SPL statement `spl` (PullLogs
    /// `processor=name`).
    pub fn processor(mut self, name: &str, spl: &str) -> Self {
        self.config
            .processors
            .insert(name.to_owned(), spl.to_owned());
        self
    }

    /// The RAM role the metadata service reports.
    pub fn ecs_role(mut self, role: &str) -> Self {
        self.config.ecs_role = role.to_owned();
        self
    }

    /// What STS accepts in `AssumeRoleWithOIDC`.
    pub fn oidc(mut self, trust: OidcTrust) -> Self {
        self.config.oidc = trust;
        self
    }

    /// How long temporary AccessKeys (metadata service, STS, `GET /_emulator/credentials`)
    /// stay valid.
    pub fn credential_ttl(mut self, ttl: Duration) -> Self {
        self.config.credential_ttl = ttl;
        self
    }

    /// Initial faults.
    pub fn faults(mut self, faults: FaultConfig) -> Self {
        self.config.faults = faults;
        self
    }

    /// The configuration built so far.
    pub fn build(self) -> EmulatorConfig {
        self.config
    }

    /// Starts the emulator.
    ///
    /// # Errors
    /// See [`start`].
    pub async fn start(self) -> Result<RunningEmulator, Error> {
        start(self.config).await
    }
}

/// One UpdateCheckPoint request the emulator answered, accepted or refused.
///
/// Why the emulator keeps them: whether a consumer that lost a shard had its later commits
/// refused, and whether any accepted commit ever moved a shard's checkpoint backwards, is
/// visible only in the sequence of updates; the stored checkpoint shows just the last one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointUpdate {
    /// Project.
    pub project: String,
    /// Logstore.
    pub logstore: String,
    /// Consumer group.
    pub group: String,
    /// Shard.
    pub shard: u32,
    /// The `consumer` query parameter (may be empty).
    pub consumer: String,
    /// The checkpoint sent.
    pub cursor: String,
    /// `forceSuccess=true`.
    pub force: bool,
    /// The error code when refused (`ConsumerNotMatch`, `ConsumerNotExist`, …), `None` when
    /// stored.
    pub refused: Option<String>,
}

/// Checkpoint updates kept (the oldest are dropped beyond this).
const CHECKPOINT_LOG_MAX: usize = 100_000;

/// State shared by the server tasks and the library handle.
pub(crate) struct Shared {
    pub(crate) store: Mutex<store::Store>,
    pub(crate) config: EmulatorConfig,
    pub(crate) faults: Arc<Faults>,
    pub(crate) request_seq: AtomicU64,
    pub(crate) persist: Option<persist::DataDir>,
    /// Every UpdateCheckPoint answered, oldest first (at most [`CHECKPOINT_LOG_MAX`]).
    pub(crate) checkpoint_log: Mutex<VecDeque<CheckpointUpdate>>,
    /// Temporary AccessKeys issued (`routes/identity.rs`), by id.
    pub(crate) temporary_keys: Mutex<std::collections::HashMap<String, TemporaryKey>>,
    /// The metadata service's session tokens, with their expiry.
    pub(crate) metadata_tokens: Mutex<std::collections::HashMap<String, std::time::SystemTime>>,
    /// AccessKey ids disabled as in the RAM console: refused with `401 Unauthorized` while
    /// their signatures are still right.
    pub(crate) disabled_keys: Mutex<std::collections::HashSet<String>>,
    /// RAM actions denied to an AccessKey id (`log:GetCursorOrData`, …): a policy that
    /// lacks them.
    pub(crate) denied_actions:
        Mutex<std::collections::HashMap<String, std::collections::BTreeSet<String>>>,
}

impl Shared {
    /// Disables (or enables again) an AccessKey id; returns whether it was enabled before.
    pub(crate) fn set_key_enabled(&self, access_key_id: &str, enabled: bool) -> bool {
        let mut disabled = self
            .disabled_keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let was = !disabled.contains(access_key_id);
        if enabled {
            disabled.remove(access_key_id);
        } else {
            disabled.insert(access_key_id.to_owned());
        }
        was
    }

    /// Sets the RAM actions denied to an AccessKey id (none: all allowed).
    pub(crate) fn deny_actions(&self, access_key_id: &str, actions: &[&str]) {
        let mut denied = self
            .denied_actions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if actions.is_empty() {
            denied.remove(access_key_id);
        } else {
            denied.insert(
                access_key_id.to_owned(),
                actions.iter().map(|a| (*a).to_owned()).collect(),
            );
        }
    }

    /// Whether `action` is denied to an AccessKey id.
    pub(crate) fn action_denied(&self, access_key_id: &str, action: &str) -> bool {
        self.denied_actions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(access_key_id)
            .is_some_and(|a| a.contains(action))
    }

    /// Whether an AccessKey id is disabled.
    pub(crate) fn key_disabled(&self, access_key_id: &str) -> bool {
        self.disabled_keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(access_key_id)
    }
}

/// A temporary AccessKey (an STS token) the emulator issued.
#[derive(Debug, Clone)]
pub(crate) struct TemporaryKey {
    pub(crate) secret: String,
    pub(crate) token: String,
    pub(crate) expires: std::time::SystemTime,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, store::Store> {
        // Store methods validate before they mutate, so a panic cannot leave half a change;
        // keep serving after one rather than poisoning every later request.
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn record_checkpoint_update(&self, update: CheckpointUpdate) {
        if let Some(code) = &update.refused {
            tracing::debug!(group = %update.group, shard = update.shard, consumer = %update.consumer, %code, "checkpoint refused");
        }
        let mut log = self
            .checkpoint_log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if log.len() >= CHECKPOINT_LOG_MAX {
            log.pop_front();
        }
        log.push_back(update);
    }

    pub(crate) fn checkpoint_updates(&self) -> Vec<CheckpointUpdate> {
        self.checkpoint_log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    pub(crate) fn auto_shards(&self) -> Option<u32> {
        self.config
            .auto_create
            .then_some(self.config.default_shards.max(1))
    }

    pub(crate) fn expire_consumer(
        &self,
        project: &str,
        logstore: &str,
        group: &str,
        consumer: &str,
    ) -> bool {
        let mut store = self.lock();
        let Ok(ls) = store.logstore_mut(project, logstore, None) else {
            return false;
        };
        let views = ls.shard_views();
        let Some(g) = ls.groups.get_mut(group) else {
            return false;
        };
        let known = g.remove_consumer(consumer);
        g.rebalance(&views);
        known
    }

    pub(crate) fn expire_groups(
        &self,
        project: &str,
        logstore: &str,
        shard: u32,
        n: usize,
    ) -> Result<i64, ApiError> {
        let mut store = self.lock();
        let ls = store.logstore_mut(project, logstore, None)?;
        let s = ls.shard_mut(shard, None)?;
        let keep_from = s.first + n;
        s.expire_before(keep_from);
        let begin = s.begin_position();
        self.save_meta(&store);
        Ok(begin)
    }

    /// Saves metadata if auto-creation added something since the last save.
    pub(crate) fn save_if_created(&self, store: &mut store::Store) {
        if store.created {
            store.created = false;
            self.save_meta(store);
        }
    }

    /// Saves metadata after a change, logging (not failing the request) on I/O errors.
    pub(crate) fn save_meta(&self, store: &store::Store) {
        if let Some(p) = &self.persist {
            if let Err(e) = p.save_meta(store) {
                tracing::error!(error = %e, "persisting emulator state failed");
            }
        }
    }
}

/// Starts the emulator in the background of the current tokio runtime.
///
/// # Errors
/// [`Error::Bind`] when the address cannot be bound, [`Error::DataDir`]/[`Error::Corrupt`]
/// when the data directory cannot be read, [`Error::Api`] when a configured logstore is
/// refused.
pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator, Error> {
    let (persist, mut store) = match &config.data_dir {
        Some(dir) => {
            let (p, s) = persist::DataDir::open(dir)?;
            (Some(p), s)
        }
        None => (None, store::Store::default()),
    };
    for spec in &config.logstores {
        routes::check_name(&spec.project).map_err(Error::Api)?;
        routes::check_name(&spec.logstore).map_err(Error::Api)?;
        store.create_project(&spec.project);
        let exists = store
            .projects
            .get(&spec.project)
            .is_some_and(|p| p.logstores.contains_key(&spec.logstore));
        if !exists {
            store.create_logstore(&spec.project, &spec.logstore, spec.shards)?;
        }
    }
    if let Some(p) = &persist {
        p.save_meta(&store)?;
    }
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|source| Error::Bind {
            addr: config.addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: config.addr,
        source,
    })?;
    let shared = Arc::new(Shared {
        store: Mutex::new(store),
        faults: Arc::new(Faults::new(config.faults.clone())),
        config,
        request_seq: AtomicU64::new(0),
        persist,
        checkpoint_log: Mutex::new(VecDeque::new()),
        temporary_keys: Mutex::new(std::collections::HashMap::new()),
        disabled_keys: Mutex::new(std::collections::HashSet::new()),
        denied_actions: Mutex::new(std::collections::HashMap::new()),
        metadata_tokens: Mutex::new(std::collections::HashMap::new()),
    });
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    tracker.spawn(server::serve(
        listener,
        shared.clone(),
        token.clone(),
        tracker.clone(),
    ));
    tracing::info!(%addr, "sls-emulator listening");
    Ok(RunningEmulator {
        addr,
        shared,
        token,
        tracker,
    })
}

/// Checkpoint of one shard as the emulator stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardCheckpoint {
    /// Shard id.
    pub shard: u32,
    /// Stored cursor, empty when never committed.
    pub checkpoint: String,
    /// Consumer named in the last update.
    pub consumer: String,
}

/// A running emulator. Dropping it stops accepting connections too (via the token), but
/// call [`RunningEmulator::shutdown`] to wait for in-flight requests.
pub struct RunningEmulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    token: CancellationToken,
    tracker: TaskTracker,
}

impl std::fmt::Debug for RunningEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningEmulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

impl RunningEmulator {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ip:port`, the endpoint string for clients that reach it directly.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The fault settings, adjustable at run time.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Creates `project/logstore` with `shards` shards (the project too, if needed).
    ///
    /// # Errors
    /// `LogStoreAlreadyExist` or an invalid name.
    pub fn create_logstore(&self, project: &str, logstore: &str, shards: u32) -> Result<(), Error> {
        routes::check_name(project)?;
        routes::check_name(logstore)?;
        let mut store = self.shared.lock();
        store.create_project(project);
        store.create_logstore(project, logstore, shards.max(1))?;
        self.shared.save_meta(&store);
        Ok(())
    }

    /// Appends log groups to one shard without HTTP (fast loading). Returns the cursor
    /// position of the first appended group.
    ///
    /// # Errors
    /// Unknown project/logstore/shard, or a read-only shard.
    pub fn append(
        &self,
        project: &str,
        logstore: &str,
        shard: u32,
        groups: &[proto::LogGroup],
    ) -> Result<i64, Error> {
        let encoded: Vec<Bytes> = groups
            .iter()
            .map(|g| Bytes::from(g.encode_to_vec()))
            .collect();
        Ok(routes::append_groups(
            &self.shared,
            project,
            logstore,
            Some(shard),
            None,
            encoded,
        )?)
    }

    /// Writes synthetic audit events per `spec` (see [`load`]) straight into the store.
    /// Returns the number of logs written.
    ///
    /// # Errors
    /// As [`RunningEmulator::append`].
    pub fn load(&self, project: &str, logstore: &str, spec: &LoadSpec) -> Result<u64, Error> {
        let shards: Vec<u32> = {
            let mut store = self.shared.lock();
            let ls = store.logstore_mut(project, logstore, self.shared.auto_shards())?;
            let ids = ls
                .shards
                .values()
                .filter(|s| !s.readonly)
                .map(|s| s.id)
                .collect();
            self.shared.save_if_created(&mut store);
            ids
        };
        let mut written = 0;
        for (shard, group) in load::generate(spec, &shards) {
            written += group.logs.len() as u64;
            let encoded = vec![Bytes::from(group.encode_to_vec())];
            routes::append_groups(&self.shared, project, logstore, Some(shard), None, encoded)?;
        }
        Ok(written)
    }

    /// The checkpoints of a group (one entry per existing shard), or `None` if the group
    /// does not exist.
    pub fn checkpoints(
        &self,
        project: &str,
        logstore: &str,
        group: &str,
    ) -> Option<Vec<ShardCheckpoint>> {
        let mut store = self.shared.lock();
        let ls = store.logstore_mut(project, logstore, None).ok()?;
        let g = ls.groups.get(group)?;
        Some(
            ls.shards
                .keys()
                .map(|id| {
                    let cp = g.checkpoints().get(id);
                    ShardCheckpoint {
                        shard: *id,
                        checkpoint: cp.map(|c| c.cursor.clone()).unwrap_or_default(),
                        consumer: cp.map(|c| c.consumer.clone()).unwrap_or_default(),
                    }
                })
                .collect(),
        )
    }

    /// Every UpdateCheckPoint answered so far (the newest 100,000), oldest first, accepted
    /// and refused, for every group.
    pub fn checkpoint_updates(&self) -> Vec<CheckpointUpdate> {
        self.shared.checkpoint_updates()
    }

    /// The group's current assignment: shard → state, after expiring dead consumers.
    pub fn assignment(
        &self,
        project: &str,
        logstore: &str,
        group: &str,
    ) -> Option<BTreeMap<u32, Assign>> {
        let mut store = self.shared.lock();
        let ls = store.logstore_mut(project, logstore, None).ok()?;
        let g = ls.groups.get_mut(group)?;
        g.expire(std::time::Instant::now());
        Some(g.assignment().clone())
    }

    /// Live consumers of a group.
    pub fn consumers(&self, project: &str, logstore: &str, group: &str) -> Option<Vec<String>> {
        let mut store = self.shared.lock();
        let ls = store.logstore_mut(project, logstore, None).ok()?;
        let g = ls.groups.get_mut(group)?;
        g.expire(std::time::Instant::now());
        Some(g.consumers().map(str::to_owned).collect())
    }

    /// Disables an AccessKey id, as in the RAM console (`enabled = false`), or enables it
    /// again: requests it signs are refused with `401 Unauthorized` while it is disabled.
    /// Returns whether it was enabled before.
    pub fn set_key_enabled(&self, access_key_id: &str, enabled: bool) -> bool {
        self.shared.set_key_enabled(access_key_id, enabled)
    }

    /// Denies RAM actions (`log:GetCursorOrData` — GetCursor and PullLogs —,
    /// `log:ConsumerGroupUpdateCheckPoint`, …) to an AccessKey id, as a RAM policy without
    /// them would; an empty list allows everything again. Denied requests are refused with
    /// `401 Unauthorized` "denied by sts or ram, action: …".
    pub fn deny_actions(&self, access_key_id: &str, actions: &[&str]) {
        self.shared.deny_actions(access_key_id, actions);
    }

    /// Forces a consumer to expire now, as if it had missed its heartbeats. Returns whether
    /// it was known.
    pub fn expire_consumer(
        &self,
        project: &str,
        logstore: &str,
        group: &str,
        consumer: &str,
    ) -> bool {
        self.shared
            .expire_consumer(project, logstore, group, consumer)
    }

    /// Expires the oldest `n` retained log groups of a shard: their cursors become
    /// `InvalidCursor` and `begin` moves forward. Returns the new begin position.
    ///
    /// # Errors
    /// Unknown project/logstore/shard.
    pub fn expire_groups(
        &self,
        project: &str,
        logstore: &str,
        shard: u32,
        n: usize,
    ) -> Result<i64, Error> {
        Ok(self.shared.expire_groups(project, logstore, shard, n)?)
    }

    /// Splits a shard at `mid_key` (32 hex digits).
    ///
    /// # Errors
    /// As the SplitShard API.
    pub fn split_shard(
        &self,
        project: &str,
        logstore: &str,
        shard: u32,
        mid_key: &str,
    ) -> Result<(), Error> {
        let mut store = self.shared.lock();
        store
            .logstore_mut(project, logstore, None)?
            .split(shard, mid_key)?;
        self.shared.save_meta(&store);
        Ok(())
    }

    /// Merges a shard with its right neighbour.
    ///
    /// # Errors
    /// As the MergeShards API.
    pub fn merge_shard(&self, project: &str, logstore: &str, shard: u32) -> Result<(), Error> {
        let mut store = self.shared.lock();
        store.logstore_mut(project, logstore, None)?.merge(shard)?;
        self.shared.save_meta(&store);
        Ok(())
    }

    /// GetCursor without HTTP: `from` is `begin`, `end` or unix seconds (receive time).
    ///
    /// # Errors
    /// Unknown project/logstore/shard, or an invalid `from`.
    pub fn cursor(
        &self,
        project: &str,
        logstore: &str,
        shard: u32,
        from: &str,
    ) -> Result<String, Error> {
        let mut store = self.shared.lock();
        let ttl = self.shared.config.ttl;
        let pos = store
            .logstore_mut(project, logstore, None)?
            .shard_mut(shard, ttl)?
            .cursor_for(from)?;
        Ok(cursor::encode(pos))
    }

    /// Number of log groups currently retained per shard.
    pub fn shard_sizes(&self, project: &str, logstore: &str) -> Option<BTreeMap<u32, usize>> {
        let mut store = self.shared.lock();
        let ls = store.logstore_mut(project, logstore, None).ok()?;
        Some(
            ls.shards
                .values()
                .map(|s| (s.id, s.groups.len() - s.first))
                .collect(),
        )
    }

    /// Stops accepting connections, lets in-flight requests finish, and returns once every
    /// task has ended.
    pub async fn shutdown(self) {
        self.token.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Resolves when the emulator has been shut down (for the binary's `serve`).
    pub async fn wait(&self) {
        self.token.cancelled().await;
    }
}
