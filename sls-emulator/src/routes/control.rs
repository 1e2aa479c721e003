//! The emulator's own control endpoints under `/_emulator/`, so faults and forced expiry can
//! be driven while the binary runs (the library exposes the same through
//! `RunningEmulator`). They need no signature and are never subject to injected faults, so a
//! test can always turn faults off again.

use std::time::Duration;

use serde_json::{json, Value};

use super::{Reply, Req};
use crate::error::ApiError;
use crate::group::Assign;
use crate::Shared;

/// Path prefix of the control endpoints.
pub(crate) const CONTROL_PREFIX: &str = "/_emulator/";

fn field<'a>(body: &'a Value, name: &str) -> Result<&'a str, ApiError> {
    body.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::param(format!("{name} (string) is required")))
}

fn rate(body: &Value, name: &str, current: f64) -> Result<f64, ApiError> {
    match body.get(name) {
        None => Ok(current),
        Some(v) => v
            .as_f64()
            .filter(|r| (0.0..=1.0).contains(r))
            .ok_or_else(|| ApiError::param(format!("{name} must be a number in [0, 1]"))),
    }
}

fn millis(body: &Value, name: &str, current: Duration) -> Result<Duration, ApiError> {
    match body.get(name) {
        None => Ok(current),
        Some(v) => v
            .as_u64()
            .map(Duration::from_millis)
            .ok_or_else(|| ApiError::param(format!("{name} must be milliseconds"))),
    }
}

fn faults_json(shared: &Shared) -> Value {
    let f = shared.faults.get();
    let n = shared.faults.counts();
    json!({
        "latency_ms": f.latency.as_millis() as u64,
        "jitter_ms": f.latency_jitter.as_millis() as u64,
        "slow_rate": f.slow_rate,
        "slow_ms": f.slow.as_millis() as u64,
        "server_error_rate": f.server_error_rate,
        "read_throttle_rate": f.read_throttle_rate,
        "write_throttle_rate": f.write_throttle_rate,
        "reset_rate": f.reset_rate,
        "short_pull_rate": f.short_pull_rate,
        "identity_error_rate": f.identity_error_rate,
        "fired": {
            "slowed": n.slowed,
            "resets": n.resets,
            "server_errors": n.server_errors,
            "read_throttles": n.read_throttles,
            "write_throttles": n.write_throttles,
            "short_pulls": n.short_pulls,
            "identity_errors": n.identity_errors,
        },
    })
}

fn status(shared: &Shared) -> Value {
    let store = shared.lock();
    let now = std::time::Instant::now();
    let projects: serde_json::Map<String, Value> = store
        .projects
        .iter()
        .map(|(pn, p)| {
            let logstores: serde_json::Map<String, Value> = p
                .logstores
                .iter()
                .map(|(ln, l)| {
                    let shards: Vec<Value> = l
                        .shards
                        .values()
                        .map(|s| {
                            json!({
                                "shard": s.id,
                                "status": if s.readonly { "readonly" } else { "readwrite" },
                                "groups": s.groups.len() - s.first,
                                "begin": crate::cursor::encode(s.begin_position()),
                                "end": crate::cursor::encode(s.end_position()),
                            })
                        })
                        .collect();
                    let groups: serde_json::Map<String, Value> = l
                        .groups
                        .values()
                        .map(|g| {
                            let mut g = g.clone();
                            g.expire(now);
                            let assignment: serde_json::Map<String, Value> = g
                                .assignment()
                                .iter()
                                .map(|(id, a)| {
                                    let v = match a {
                                        Assign::Held(c) => json!({"held_by": c}),
                                        Assign::Transfer { from, to } => {
                                            json!({"held_by": from, "transfer_to": to})
                                        }
                                    };
                                    (id.to_string(), v)
                                })
                                .collect();
                            let checkpoints: serde_json::Map<String, Value> = g
                                .checkpoints()
                                .iter()
                                .map(|(id, c)| {
                                    (
                                        id.to_string(),
                                        json!({"checkpoint": c.cursor, "consumer": c.consumer}),
                                    )
                                })
                                .collect();
                            (
                                g.name.clone(),
                                json!({
                                    "timeout": g.timeout_secs,
                                    "order": g.order,
                                    "consumers": g.consumers().collect::<Vec<_>>(),
                                    "assignment": assignment,
                                    "checkpoints": checkpoints,
                                }),
                            )
                        })
                        .collect();
                    (
                        ln.clone(),
                        json!({"shards": shards, "consumer_groups": groups}),
                    )
                })
                .collect();
            (pn.clone(), json!({"logstores": logstores}))
        })
        .collect();
    json!({"projects": projects})
}

/// Serves one control request.
pub(crate) fn control(shared: &Shared, req: &Req) -> Result<Reply, ApiError> {
    let what = req
        .path
        .trim_start_matches(CONTROL_PREFIX)
        .trim_end_matches('/');
    match (req.method.as_str(), what) {
        ("GET", "credentials") => super::identity::credentials_uri(shared),
        ("GET", "faults") => Ok(Reply::json(&faults_json(shared))),
        ("PUT" | "POST", "faults") => {
            let body = req.json()?;
            let mut f = shared.faults.get();
            f.latency = millis(&body, "latency_ms", f.latency)?;
            f.latency_jitter = millis(&body, "jitter_ms", f.latency_jitter)?;
            f.slow_rate = rate(&body, "slow_rate", f.slow_rate)?;
            f.slow = millis(&body, "slow_ms", f.slow)?;
            f.server_error_rate = rate(&body, "server_error_rate", f.server_error_rate)?;
            f.read_throttle_rate = rate(&body, "read_throttle_rate", f.read_throttle_rate)?;
            f.write_throttle_rate = rate(&body, "write_throttle_rate", f.write_throttle_rate)?;
            f.reset_rate = rate(&body, "reset_rate", f.reset_rate)?;
            f.short_pull_rate = rate(&body, "short_pull_rate", f.short_pull_rate)?;
            f.identity_error_rate = rate(&body, "identity_error_rate", f.identity_error_rate)?;
            shared.faults.set(f);
            Ok(Reply::json(&faults_json(shared)))
        }
        ("POST", "keys") => {
            let body = req.json()?;
            let ak = field(&body, "access_key_id")?;
            let mut said = serde_json::Map::new();
            if let Some(enabled) = body.get("enabled") {
                let enabled = enabled
                    .as_bool()
                    .ok_or_else(|| ApiError::param("enabled must be true or false"))?;
                let was = shared.set_key_enabled(ak, enabled);
                said.insert("was_enabled".into(), json!(was));
                said.insert("enabled".into(), json!(enabled));
            }
            if let Some(deny) = body.get("deny") {
                let actions: Vec<&str> = deny
                    .as_array()
                    .and_then(|a| a.iter().map(Value::as_str).collect())
                    .ok_or_else(|| ApiError::param("deny must be a list of RAM actions"))?;
                shared.deny_actions(ak, &actions);
                said.insert("deny".into(), json!(actions));
            }
            if said.is_empty() {
                return Err(ApiError::param(
                    "say enabled (true or false), deny ([actions]) or both",
                ));
            }
            Ok(Reply::json(&Value::Object(said)))
        }
        ("POST", "expire-consumer") => {
            let body = req.json()?;
            let known = shared.expire_consumer(
                field(&body, "project")?,
                field(&body, "logstore")?,
                field(&body, "group")?,
                field(&body, "consumer")?,
            );
            Ok(Reply::json(&json!({ "expired": known })))
        }
        ("POST", "expire-groups") => {
            let body = req.json()?;
            let shard = body
                .get("shard")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| ApiError::param("shard (integer) is required"))?;
            let count = body
                .get("count")
                .and_then(Value::as_u64)
                .ok_or_else(|| ApiError::param("count (integer) is required"))?;
            let begin = shared.expire_groups(
                field(&body, "project")?,
                field(&body, "logstore")?,
                shard,
                count as usize,
            )?;
            Ok(Reply::json(
                &json!({ "begin": crate::cursor::encode(begin) }),
            ))
        }
        ("GET", "status") => Ok(Reply::json(&status(shared))),
        ("GET", "checkpoint-updates") => {
            let v: Vec<Value> = shared
                .checkpoint_updates()
                .into_iter()
                .map(|u| {
                    json!({
                        "project": u.project,
                        "logstore": u.logstore,
                        "group": u.group,
                        "shard": u.shard,
                        "consumer": u.consumer,
                        "checkpoint": u.cursor,
                        "force": u.force,
                        "refused": u.refused,
                    })
                })
                .collect();
            Ok(Reply::json(&Value::Array(v)))
        }
        _ => Err(ApiError::new(
            404,
            "RequestURINotFound",
            format!("no control endpoint {} {}", req.method, req.path),
        )),
    }
}
