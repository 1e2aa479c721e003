//! Consumer-group APIs (protocol notes §2.6): create, list, update, delete, heartbeat,
//! checkpoint get/update. Bodies are bare JSON arrays where the SDKs send and expect them.

use std::time::Instant;

use serde_json::{json, Value};

use super::shards::with_logstore;
use super::{Reply, Req};
use crate::error::ApiError;
use crate::store::{self, unix_now_us};
use crate::Shared;

fn json_invalid(msg: impl Into<String>) -> ApiError {
    ApiError::new(400, "JsonInfoInvalid", msg)
}

fn timeout_of(v: &Value) -> Result<Option<u32>, ApiError> {
    match v.get("timeout") {
        None | Some(Value::Null) => Ok(None),
        Some(t) => t
            .as_u64()
            .filter(|t| *t > 0 && *t <= u64::from(u32::MAX))
            .map(|t| Some(t as u32))
            .ok_or_else(|| json_invalid("timeout must be a positive integer (seconds)")),
    }
}

fn order_of(v: &Value) -> Result<Option<bool>, ApiError> {
    match v.get("order") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(json_invalid("order must be a boolean")),
    }
}

pub(super) fn list(shared: &Shared, req: &Req, ls: &str) -> Result<Reply, ApiError> {
    with_logstore(shared, req, ls, |l| {
        let v: Vec<Value> = l
            .groups
            .values()
            .map(|g| json!({"name": g.name, "timeout": g.timeout_secs, "order": g.order}))
            .collect();
        Ok(Reply::json(&Value::Array(v)))
    })
}

pub(super) fn create(shared: &Shared, req: &Req, ls: &str) -> Result<Reply, ApiError> {
    let body = req.json()?;
    let name = body
        .get("consumerGroup")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| json_invalid("consumerGroup is required"))?
        .to_owned();
    let timeout = timeout_of(&body)?.ok_or_else(|| json_invalid("timeout is required"))?;
    let order = order_of(&body)?.unwrap_or(false);
    with_logstore(shared, req, ls, |l| {
        l.create_group(&name, timeout, order, shared.config.group_quota)
    })?;
    shared.save_meta(&shared.lock());
    Ok(Reply::empty())
}

pub(super) fn update(shared: &Shared, req: &Req, ls: &str, cg: &str) -> Result<Reply, ApiError> {
    let body = req.json()?;
    let timeout = timeout_of(&body)?;
    let order = order_of(&body)?;
    with_logstore(shared, req, ls, |l| {
        let g = l.groups.get_mut(cg).ok_or_else(|| ApiError::no_group(cg))?;
        if let Some(t) = timeout {
            g.timeout_secs = t;
        }
        if let Some(o) = order {
            g.order = o;
        }
        Ok(())
    })?;
    shared.save_meta(&shared.lock());
    Ok(Reply::empty())
}

pub(super) fn delete(shared: &Shared, req: &Req, ls: &str, cg: &str) -> Result<Reply, ApiError> {
    with_logstore(shared, req, ls, |l| {
        l.groups
            .remove(cg)
            .map(|_| ())
            .ok_or_else(|| ApiError::no_group(cg))
    })?;
    shared.save_meta(&shared.lock());
    Ok(Reply::empty())
}

pub(super) fn get_checkpoints(
    shared: &Shared,
    req: &Req,
    ls: &str,
    cg: &str,
) -> Result<Reply, ApiError> {
    let only: Option<u32> = match req.q("shard") {
        None | Some("") => None,
        Some(s) => Some(
            s.parse()
                .map_err(|_| ApiError::param(format!("invalid shard {s:?}")))?,
        ),
    };
    with_logstore(shared, req, ls, |l| {
        let g = l.groups.get(cg).ok_or_else(|| ApiError::no_group(cg))?;
        let v: Vec<Value> = l
            .shards
            .keys()
            .filter(|id| only.map_or(true, |o| o == **id))
            .map(|id| match g.checkpoints().get(id) {
                Some(c) => json!({"shard": id, "checkpoint": c.cursor, "updateTime": c.update_time_us, "consumer": c.consumer}),
                None => json!({"shard": id, "checkpoint": "", "updateTime": 0, "consumer": ""}),
            })
            .collect();
        Ok(Reply::json(&Value::Array(v)))
    })
}

pub(super) fn heartbeat(shared: &Shared, req: &Req, ls: &str, cg: &str) -> Result<Reply, ApiError> {
    let consumer = req
        .q("consumer")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::param("consumer is required"))?;
    let held: Vec<u32> = match req.json()? {
        Value::Null => Vec::new(),
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok()))
            .collect::<Option<Vec<u32>>>()
            .ok_or_else(|| json_invalid("heartbeat body must be an array of shard ids"))?,
        // The docs' (unused by any SDK) object form.
        Value::Object(o) => o
            .get("shards")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok()))
                    .collect()
            })
            .ok_or_else(|| json_invalid("heartbeat body must be an array of shard ids"))?,
        _ => return Err(json_invalid("heartbeat body must be an array of shard ids")),
    };
    let got = with_logstore(shared, req, ls, |l| {
        store::heartbeat(l, cg, consumer, &held, Instant::now())
    })?;
    Ok(Reply::json(&json!(got)))
}

pub(super) fn update_checkpoint(
    shared: &Shared,
    req: &Req,
    ls: &str,
    cg: &str,
) -> Result<Reply, ApiError> {
    let consumer = req.q("consumer").unwrap_or("");
    let force = req
        .q("forceSuccess")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let body = req.json()?;
    let shard = body
        .get("shard")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| json_invalid("shard is required"))?;
    let checkpoint = body
        .get("checkpoint")
        .and_then(Value::as_str)
        .ok_or_else(|| json_invalid("checkpoint is required"))?;
    let result = with_logstore(shared, req, ls, |l| {
        if !l.shards.contains_key(&shard) {
            return Err(ApiError::new(
                404,
                "ShardNotExist",
                format!("shard {shard} does not exist"),
            ));
        }
        let g = l.groups.get_mut(cg).ok_or_else(|| ApiError::no_group(cg))?;
        g.update_checkpoint(
            consumer,
            force,
            shard,
            checkpoint,
            unix_now_us(),
            Instant::now(),
        )
    });
    shared.record_checkpoint_update(crate::CheckpointUpdate {
        project: req.project.clone().unwrap_or_default(),
        logstore: ls.to_owned(),
        group: cg.to_owned(),
        shard,
        consumer: consumer.to_owned(),
        cursor: checkpoint.trim().to_owned(),
        force,
        refused: result.as_ref().err().map(|e| e.code.to_string()),
    });
    result?;
    shared.save_meta(&shared.lock());
    Ok(Reply::empty())
}
