//! The `[source.sls]` table, owned by the Log Service source; `config`
//! composes it into the whole configuration.

use serde::Deserialize;

use crate::units::{ByteSize, HumanDuration, Secret};

/// Where a shard starts when the consumer group has no checkpoint for it
/// (a checkpoint, when there is one, always wins).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartPosition {
    /// The oldest data still kept (the seed program's effective default).
    #[default]
    Begin,
    /// Only data written from now on.
    End,
    /// The first log group received at or after `source.sls.start_time`.
    Time,
}

/// The request signature version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthVersion {
    /// HMAC-SHA1, every SDK's default.
    #[default]
    V1,
    /// SLS4-HMAC-SHA256; needs `source.sls.region`.
    V4,
}

/// Where the AccessKey comes from (`source.sls.credentials`); the sources
/// and the lookup are described in docs/configuration.md, "Credentials".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialsFrom {
    /// The keys this table sets, else the lookup Alibaba's credential
    /// libraries make: environment AccessKey, RRSA (OIDC), the ECS
    /// instance's RAM role, a credentials URI.
    #[default]
    Auto,
    /// `access_key_id` / `access_key_secret` (+ `security_token`).
    AccessKey,
    /// RRSA on ACK: `AssumeRoleWithOIDC` with a token file.
    Oidc,
    /// The ECS instance's RAM role, from its metadata service.
    EcsRamRole,
    /// `credentials_uri`.
    Uri,
}

/// The `[source.sls]` table: a Log Service consumer group. Defaults follow
/// Alibaba's `LogHubConfig` except where noted in docs/configuration.md.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlsSourceConfig {
    /// Endpoint, e.g. `cn-hangzhou.log.aliyuncs.com` (`SLS_ENDPOINT`).
    pub endpoint: String,
    /// AccessKey ID (`SLS_AK_ID`).
    pub access_key_id: String,
    /// AccessKey secret (`SLS_AK_KEY`); never printed.
    pub access_key_secret: Secret,
    /// STS security token, for temporary AccessKeys; never printed.
    pub security_token: Secret,
    /// Request signature: `v1` (default) or `v4`.
    pub auth_version: AuthVersion,
    /// Region for v4 signatures, e.g. `cn-hangzhou`.
    pub region: String,
    /// Project (`SLS_PROJECT`).
    pub project: String,
    /// Logstore (`SLS_LOGSTORE`).
    pub logstore: String,
    /// Consumer group (`SLS_CG`).
    pub consumer_group: String,
    /// This process's name in the group; must be unique per process.
    /// Empty: `{hostname}-{pid}`.
    pub consumer_name: String,
    /// Create the consumer group if it does not exist (else stop with an
    /// error).
    pub create_group: bool,
    /// The group's `order` flag: after a split or merge, read a child shard
    /// only once its parents are finished.
    pub in_order: bool,
    /// How often to heartbeat (shard assignment comes with the answer).
    pub heartbeat_interval: HumanDuration,
    /// The group's timeout: a consumer silent this long loses its shards.
    /// Unset: twice `heartbeat_interval`, as Alibaba's Python consumer sets it.
    pub heartbeat_timeout: Option<HumanDuration>,
    /// Longest wait between two pulls of a shard that has no new data: a
    /// shard quiet for a while is pulled every `poll_interval` at first, then
    /// the wait doubles up to this. A shard with data is pulled again at once.
    pub fetch_interval: HumanDuration,
    /// Wait between two pulls of a shard that had data recently and has
    /// nothing new now: the floor of the delay from write to SIEM.
    pub poll_interval: HumanDuration,
    /// How often each held shard's lag is measured (GetCursor `end`, and
    /// GetCursorTime while behind): the per-shard lag series and the
    /// progress line. `0s`: never.
    pub lag_interval: HumanDuration,
    /// Most log groups asked for per PullLogs (1–1000); the count actually
    /// asked for adapts to `fetch_bytes`.
    pub max_fetch_log_groups: u32,
    /// Decompressed bytes one PullLogs aims at. PullLogs takes only a count
    /// of log groups, so the count is derived from the last pull's average
    /// group size; each shard holds about one pull decompressed and the next
    /// compressed, so this × shards is the source's share of memory.
    pub fetch_bytes: ByteSize,
    /// Decompressed bytes of PullLogs a process keeps in flight ahead of the
    /// one pull every shard has, shared by all its shards: what lets a shard
    /// read from far away keep pace (`source/sls/prefetch.rs`). 0: never
    /// more than one pull per shard.
    pub prefetch_bytes: ByteSize,
    /// Where a shard without a checkpoint starts.
    pub start_position: StartPosition,
    /// With `start_position = "time"`: RFC 3339 time or Unix seconds.
    pub start_time: String,
    /// Compression asked for in PullLogs: `lz4` or `zstd`.
    pub compression: super::Compression,
    /// Timeout of one HTTP request to Log Service.
    pub request_timeout: HumanDuration,
    /// Idle HTTP connections kept in the pool shared by every shard.
    pub pool_max_idle: usize,
    /// A URL that answers with temporary credentials (Alibaba's JSON form:
    /// `AccessKeyId`, `AccessKeySecret`, `SecurityToken`, `Expiration`),
    /// fetched again before they expire; instead of `access_key_id` and
    /// `access_key_secret`. Empty: none.
    pub credentials_uri: String,
    /// Where the AccessKey comes from; `auto` (default) looks.
    pub credentials: CredentialsFrom,
    /// The ECS RAM role's name (`ALIBABA_CLOUD_ECS_METADATA`). Empty: the
    /// one attached to the instance.
    pub ecs_ram_role: String,
    /// The instance metadata service's base URL.
    pub metadata_endpoint: String,
    /// RRSA: the RAM role's ARN (`ALIBABA_CLOUD_ROLE_ARN`).
    pub oidc_role_arn: String,
    /// RRSA: the OIDC provider's ARN (`ALIBABA_CLOUD_OIDC_PROVIDER_ARN`).
    pub oidc_provider_arn: String,
    /// RRSA: the file holding the OIDC token (`ALIBABA_CLOUD_OIDC_TOKEN_FILE`).
    pub oidc_token_file: String,
    /// RRSA: the session name ActionTrail shows
    /// (`ALIBABA_CLOUD_ROLE_SESSION_NAME`). Empty: `siemfwd-{hostname}`.
    pub role_session_name: String,
    /// STS's base URL for RRSA. Empty: `https://sts.aliyuncs.com`, or the
    /// region's (`ALIBABA_CLOUD_STS_REGION`, `ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED`).
    pub sts_endpoint: String,
    /// Rule-based consumption: an SPL statement the server applies before
    /// sending (`* | where "event.eventRW" = 'Write'`); only what it keeps
    /// leaves Log Service. Empty: none.
    pub query: String,
    /// Rule-based consumption through a consume processor defined on the
    /// server, by name. Empty: none. Not together with `query`.
    pub processor: String,
    /// Several logstores in one process (`[[source.sls.logstores]]`): each
    /// entry is this table with the entry's keys over it (filled in by
    /// `config::expand_logstores` before the entries are read). Empty: the
    /// table itself is the one logstore.
    pub logstores: Vec<SlsSourceConfig>,
}

impl Default for SlsSourceConfig {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            access_key_id: String::new(),
            access_key_secret: Secret::default(),
            security_token: Secret::default(),
            auth_version: AuthVersion::V1,
            region: String::new(),
            project: String::new(),
            logstore: String::new(),
            consumer_group: String::new(),
            consumer_name: String::new(),
            create_group: true,
            in_order: false,
            heartbeat_interval: HumanDuration(std::time::Duration::from_secs(20)),
            heartbeat_timeout: None,
            fetch_interval: HumanDuration(std::time::Duration::from_secs(1)),
            poll_interval: HumanDuration(std::time::Duration::from_millis(100)),
            lag_interval: HumanDuration(std::time::Duration::from_secs(15)),
            max_fetch_log_groups: 1000,
            fetch_bytes: ByteSize(256 << 10),
            prefetch_bytes: ByteSize(8 << 20),
            start_position: StartPosition::Begin,
            start_time: String::new(),
            compression: super::Compression::Lz4,
            request_timeout: HumanDuration(std::time::Duration::from_secs(60)),
            pool_max_idle: 32,
            credentials_uri: String::new(),
            credentials: CredentialsFrom::Auto,
            ecs_ram_role: String::new(),
            metadata_endpoint: "http://100.100.100.200".to_owned(),
            oidc_role_arn: String::new(),
            oidc_provider_arn: String::new(),
            oidc_token_file: String::new(),
            role_session_name: String::new(),
            sts_endpoint: String::new(),
            query: String::new(),
            processor: String::new(),
            logstores: Vec::new(),
        }
    }
}
