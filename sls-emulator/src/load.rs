//! Synthetic load: realistic audit events (10–30 fields, 200–1000 bytes by default) in log
//! groups spread round-robin over shards, generated from a seed so runs repeat exactly.
//!
//! Field order and names follow what security audit sources typically emit (who, what,
//! where, outcome); the free-text `message` field absorbs the size target, so a log's
//! size (sum of key and value bytes) lands inside `[min_size, max_size]` whenever the
//! chosen fields fit.

use crate::proto::{Content, Log, LogGroup, LogTag};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadSpec {
    /// Total logs.
    pub logs: u64,
    /// Logs per log group (the unit a cursor counts).
    pub logs_per_group: u32,
    /// Smallest log size in bytes (keys + values).
    pub min_size: usize,
    /// Largest log size in bytes.
    pub max_size: usize,
    /// Fewest fields per log.
    pub min_fields: usize,
    /// Most fields per log.
    pub max_fields: usize,
    /// RNG seed.
    pub seed: u64,
    /// `__time__` of the first log; later logs advance one second per 1000 logs.
    pub start_time: u32,
    /// Group topic.
    pub topic: String,
    /// What a log looks like.
    pub shape: Shape,
}

/// The shape of generated logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Shape {
    /// Flat audit events: `min_fields`–`max_fields` fields, `min_size`–`max_size` bytes.
    #[default]
    Flat,
    /// ActionTrail as Log Service delivers it: the whole event one JSON string in the
    /// field `event` (nested `userIdentity`, `requestParameters`, …; ~0.8–1.2 KB), for
    /// `parse_json` and rules. The size and field ranges do not apply.
    ActionTrail,
}

impl Default for LoadSpec {
    fn default() -> Self {
        Self {
            logs: 10_000,
            logs_per_group: 100,
            min_size: 200,
            max_size: 1000,
            min_fields: 10,
            max_fields: 30,
            seed: 1,
            start_time: 1_700_000_000,
            topic: "audit".into(),
            shape: Shape::Flat,
        }
    }
}

const EVENT_TYPES: &[&str] = &[
    "user_login",
    "user_logout",
    "file_read",
    "file_write",
    "process_start",
    "network_connect",
    "privilege_change",
    "config_change",
    "api_call",
    "policy_violation",
];
const USERS: &[&str] = &[
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "svc-backup",
    "root",
];
const ACTIONS: &[&str] = &["allow", "deny", "alert", "drop"];
const RESULTS: &[&str] = &["success", "failure", "partial"];
const SEVERITIES: &[&str] = &["low", "medium", "high", "critical", "info"];
const PROTOCOLS: &[&str] = &["tcp", "udp", "https", "ssh", "rdp", "dns"];
const REGIONS: &[&str] = &[
    "cn-hangzhou",
    "cn-shanghai",
    "ap-southeast-1",
    "eu-central-1",
    "us-west-1",
];
const PROCESSES: &[&str] = &[
    "sshd", "nginx", "java", "python3", "bash", "systemd", "kubelet", "postgres",
];
const WORDS: &[&str] = &[
    "request", "denied", "session", "opened", "closed", "token", "expired", "access", "granted",
    "policy", "rule", "matched", "user", "from", "host", "remote", "audit", "record", "changed",
    "value",
];

/// Field names in the order a log uses them; each log takes a prefix, then `message`.
const FIELDS: &[&str] = &[
    "event_id",
    "event_type",
    "user",
    "src_ip",
    "dst_ip",
    "action",
    "result",
    "severity",
    "host",
    "process",
    "pid",
    "src_port",
    "dst_port",
    "protocol",
    "session_id",
    "tenant",
    "region",
    "bytes_in",
    "bytes_out",
    "url",
    "user_agent",
    "file_path",
    "cmdline",
    "parent_process",
    "rule_id",
    "policy",
    "device_id",
    "mfa",
    "geo",
];

fn pick<'a>(rng: &mut fastrand::Rng, xs: &[&'a str]) -> &'a str {
    xs[rng.usize(..xs.len())]
}

fn value(rng: &mut fastrand::Rng, field: &str) -> String {
    match field {
        "event_id" | "session_id" | "device_id" => {
            format!("{:016x}{:016x}", rng.u64(..), rng.u64(..))
        }
        "event_type" => pick(rng, EVENT_TYPES).into(),
        "user" => pick(rng, USERS).into(),
        "src_ip" | "dst_ip" => format!("10.{}.{}.{}", rng.u8(..), rng.u8(..), rng.u8(1..255)),
        "action" => pick(rng, ACTIONS).into(),
        "result" => pick(rng, RESULTS).into(),
        "severity" => pick(rng, SEVERITIES).into(),
        "host" => format!("host-{:03}.prod.example.com", rng.u16(..1000)),
        "process" | "parent_process" => pick(rng, PROCESSES).into(),
        "pid" => rng.u32(1..65536).to_string(),
        "src_port" | "dst_port" => rng.u16(1..=65535).to_string(),
        "protocol" => pick(rng, PROTOCOLS).into(),
        "tenant" => format!("tenant-{}", rng.u8(..20)),
        "region" => pick(rng, REGIONS).into(),
        "bytes_in" | "bytes_out" => rng.u32(..10_000_000).to_string(),
        "url" => format!(
            "/api/v{}/{}/{}",
            rng.u8(1..4),
            pick(rng, WORDS),
            rng.u32(..100_000)
        ),
        "user_agent" => format!(
            "Mozilla/5.0 (X11; Linux x86_64) client/{}.{}",
            rng.u8(..10),
            rng.u8(..100)
        ),
        "file_path" => format!("/var/lib/{}/{}.dat", pick(rng, WORDS), rng.u32(..1_000_000)),
        "cmdline" => format!(
            "{} --{} {}",
            pick(rng, PROCESSES),
            pick(rng, WORDS),
            pick(rng, WORDS)
        ),
        "rule_id" => format!("R-{:05}", rng.u32(..100_000)),
        "policy" => format!("{}-{}", pick(rng, WORDS), pick(rng, WORDS)),
        "mfa" => if rng.bool() { "true" } else { "false" }.into(),
        _ => format!(
            "{:.4},{:.4}",
            rng.f64() * 180.0 - 90.0,
            rng.f64() * 360.0 - 180.0
        ),
    }
}

fn message(rng: &mut fastrand::Rng, len: usize) -> String {
    let mut s = String::with_capacity(len + 12);
    while s.len() < len {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(pick(rng, WORDS));
    }
    s.truncate(len.max(1));
    s
}

/// One audit event with `__time__` = `time`.
pub fn audit_event(rng: &mut fastrand::Rng, spec: &LoadSpec, time: u32) -> Log {
    let max_fields = spec.max_fields.clamp(1, FIELDS.len() + 1);
    let min_fields = spec.min_fields.clamp(1, max_fields);
    let n = rng.usize(min_fields..=max_fields);
    let target = rng.usize(spec.min_size.min(spec.max_size)..=spec.max_size.max(spec.min_size));
    let mut contents: Vec<Content> = FIELDS[..n - 1]
        .iter()
        .map(|f| Content {
            key: f.as_bytes().to_vec(),
            value: value(rng, f).into_bytes(),
        })
        .collect();
    let used: usize = contents
        .iter()
        .map(|c| c.key.len() + c.value.len())
        .sum::<usize>()
        + "message".len();
    contents.push(Content {
        key: b"message".to_vec(),
        value: message(rng, target.saturating_sub(used)).into_bytes(),
    });
    Log {
        time,
        contents,
        time_ns: Some(rng.u32(..1_000_000_000)),
    }
}

const TRAIL_EVENTS: &[(&str, &str, &str)] = &[
    ("ConsoleSignin", "signin.aliyun.com", "ims"),
    ("DescribeInstances", "ecs.aliyuncs.com", "Ecs"),
    ("StopInstance", "ecs.aliyuncs.com", "Ecs"),
    ("CreateAccessKey", "ram.aliyuncs.com", "Ram"),
    ("AttachPolicyToUser", "ram.aliyuncs.com", "Ram"),
    ("ListUsers", "ram.aliyuncs.com", "Ram"),
    ("PutBucketAcl", "oss.aliyuncs.com", "Oss"),
    ("GetLogStore", "log.aliyuncs.com", "Sls"),
];
const TRAIL_REGIONS: &[&str] = &["cn-hangzhou", "cn-shanghai", "cn-beijing", "ap-southeast-1"];
const TRAIL_USERS: &[&str] = &["alice", "bob.chen", "ops-automation", "root", "müller"];

fn guid(rng: &mut fastrand::Rng) -> String {
    format!(
        "{:08X}-{:04X}-{:04X}-{:04X}-{:012X}",
        rng.u32(..),
        rng.u16(..),
        rng.u16(..),
        rng.u16(..),
        rng.u64(..1 << 48)
    )
}

/// One ActionTrail event as Log Service delivers it: `event` holds the JSON text.
pub fn actiontrail_event(rng: &mut fastrand::Rng, time: u32) -> Log {
    let (name, source, service) = TRAIL_EVENTS[rng.usize(..TRAIL_EVENTS.len())];
    let region = pick(rng, TRAIL_REGIONS);
    let user = pick(rng, TRAIL_USERS);
    let read = ["Describe", "List", "Get"]
        .iter()
        .any(|p| name.starts_with(p));
    let mut event = serde_json::json!({
        "eventId": guid(rng),
        "eventName": name,
        "eventRW": if read { "Read" } else { "Write" },
        "eventSource": source,
        "eventType": if name == "ConsoleSignin" { "ConsoleSignin" } else { "ApiCall" },
        "eventVersion": "1",
        "acsRegion": region,
        "requestId": guid(rng),
        "serviceName": service,
        "sourceIpAddress": format!("{}.{}.{}.{}", rng.u8(1..224), rng.u8(..), rng.u8(..), rng.u8(1..255)),
        "userAgent": format!("aliyun-cli/3.0.{} (linux; amd64) Go/1.22", rng.u8(..250)),
        "userIdentity": {
            "type": "RAMUser",
            "accountId": "1234567890123456",
            "principalId": format!("{}", 2_000_000 + rng.u32(..100_000)),
            "userName": user,
            "accessKeyId": format!("LTAI{:016x}", rng.u64(..)),
        },
        "eventTime": format!("{time}"),
        "isGlobal": false,
        "requestParameters": {
            "RegionId": region,
            "InstanceId": format!("i-bp1{:014x}", rng.u64(..1 << 56)),
            "ClientToken": guid(rng),
            "AcceptLanguage": "en-US",
        },
        "referencedResources": { "ACS::ECS::Instance": [format!("i-bp1{:014x}", rng.u64(..1 << 56))] },
    });
    if rng.u8(..100) < 12 {
        event["errorCode"] = "Forbidden.RAM".into();
        event["errorMessage"] = "User not authorized to operate on the specified resource.".into();
    }
    if name == "ConsoleSignin" {
        event["additionalEventData"] = serde_json::json!({
            "loginAccount": format!("{user}@1234567890123456.onaliyun.com"),
            "MFAUsed": if rng.bool() { "true" } else { "false" },
        });
    }
    Log {
        time,
        contents: vec![Content {
            key: b"event".to_vec(),
            value: event.to_string().into_bytes(),
        }],
        time_ns: Some(rng.u32(..1_000_000_000)),
    }
}

/// Generates `spec.logs` logs as groups, assigning groups to `shards` round-robin.
pub fn generate<'a>(
    spec: &'a LoadSpec,
    shards: &'a [u32],
) -> impl Iterator<Item = (u32, LogGroup)> + 'a {
    let mut rng = fastrand::Rng::with_seed(spec.seed);
    let per_group = u64::from(spec.logs_per_group.max(1));
    let groups = spec.logs.div_ceil(per_group);
    (0..groups).filter_map(move |g| {
        let shard = *shards.get((g % shards.len().max(1) as u64) as usize)?;
        let first = g * per_group;
        let n = per_group.min(spec.logs - first);
        let logs = (first..first + n)
            .map(|i| {
                let time = spec.start_time.saturating_add((i / 1000) as u32);
                match spec.shape {
                    Shape::Flat => audit_event(&mut rng, spec, time),
                    Shape::ActionTrail => actiontrail_event(&mut rng, time),
                }
            })
            .collect();
        Some((
            shard,
            LogGroup {
                logs,
                topic: Some(spec.topic.clone().into_bytes()),
                source: Some(format!("10.0.0.{}", g % 250 + 1).into_bytes()),
                log_tags: vec![LogTag {
                    key: b"__hostname__".to_vec(),
                    value: b"loadgen".to_vec(),
                }],
                ..Default::default()
            },
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_actiontrail_log_carries_its_event_as_json_text() {
        let spec = LoadSpec {
            logs: 50,
            shape: Shape::ActionTrail,
            ..LoadSpec::default()
        };
        let groups: Vec<_> = generate(&spec, &[0]).collect();
        let again: Vec<_> = generate(&spec, &[0]).collect();
        assert_eq!(groups, again, "deterministic for a seed");
        for (_, g) in &groups {
            for log in &g.logs {
                assert_eq!(log.contents.len(), 1);
                assert_eq!(log.contents[0].key, b"event");
                let event: serde_json::Value =
                    serde_json::from_slice(&log.contents[0].value).expect("JSON text");
                assert!(event["userIdentity"]["userName"].is_string());
                assert!(matches!(event["eventRW"].as_str(), Some("Read" | "Write")));
                let len = log.contents[0].value.len();
                assert!((600..1500).contains(&len), "{len}");
            }
        }
    }

    #[test]
    fn same_seed_same_data() {
        let spec = LoadSpec {
            logs: 250,
            ..Default::default()
        };
        let a: Vec<_> = generate(&spec, &[0, 1]).collect();
        let b: Vec<_> = generate(&spec, &[0, 1]).collect();
        assert_eq!(a, b);
        let other: Vec<_> = generate(
            &LoadSpec {
                seed: 2,
                ..spec.clone()
            },
            &[0, 1],
        )
        .collect();
        assert_ne!(a, other);
    }

    #[test]
    fn counts_shapes_and_sizes_hold() {
        let spec = LoadSpec {
            logs: 1001,
            logs_per_group: 100,
            ..Default::default()
        };
        let groups: Vec<_> = generate(&spec, &[3, 5, 7]).collect();
        assert_eq!(groups.len(), 11);
        assert_eq!(
            groups.iter().map(|(_, g)| g.logs.len()).sum::<usize>(),
            1001
        );
        assert_eq!(
            groups.iter().map(|(s, _)| *s).take(4).collect::<Vec<_>>(),
            vec![3, 5, 7, 3]
        );
        for (_, g) in &groups {
            for log in &g.logs {
                assert!(
                    (10..=30).contains(&log.contents.len()),
                    "{} fields",
                    log.contents.len()
                );
                let size: usize = log
                    .contents
                    .iter()
                    .map(|c| c.key.len() + c.value.len())
                    .sum();
                assert!((200..=1000).contains(&size), "size {size}");
            }
        }
    }
}
