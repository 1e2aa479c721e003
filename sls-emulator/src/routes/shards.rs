//! ListShards, GetCursor, GetCursorTime, PullLogs and shard split/merge/delete
//! (protocol notes §2.1–§2.4, §2.7).

use bytes::Bytes;
use serde_json::json;

use super::{Reply, Req};
use crate::compress::Compression;
use crate::cursor;
use crate::error::ApiError;
use crate::proto;
use crate::spl::Spl;
use crate::store::{Logstore, Pulled};
use crate::Shared;

/// Runs `f` on the logstore under the store lock (auto-creating it when configured).
pub(super) fn with_logstore<T>(
    shared: &Shared,
    req: &Req,
    ls: &str,
    f: impl FnOnce(&mut Logstore) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let project = req.project()?;
    super::check_name(project)?;
    super::check_name(ls)?;
    let mut store = shared.lock();
    let result = f(store.logstore_mut(project, ls, shared.auto_shards())?);
    shared.save_if_created(&mut store);
    result
}

fn shard_list(ls: &Logstore) -> serde_json::Value {
    serde_json::Value::Array(
        ls.shards
            .values()
            .map(|s| {
                json!({
                    "shardID": s.id,
                    "status": if s.readonly { "readonly" } else { "readwrite" },
                    "inclusiveBeginKey": s.begin_hex(),
                    "exclusiveEndKey": s.end_hex(),
                    "createTime": s.create_time,
                })
            })
            .collect(),
    )
}

pub(super) fn list_shards(shared: &Shared, req: &Req, ls: &str) -> Result<Reply, ApiError> {
    with_logstore(shared, req, ls, |l| Ok(Reply::json(&shard_list(l))))
}

pub(super) fn get_cursor(shared: &Shared, req: &Req, ls: &str, id: u32) -> Result<Reply, ApiError> {
    let from = req
        .q("from")
        .ok_or_else(|| ApiError::param("Parameter From is not valid"))?;
    let pos = with_logstore(shared, req, ls, |l| {
        l.shard_mut(id, shared.config.ttl)?.cursor_for(from)
    })?;
    Ok(Reply::json(&json!({ "cursor": cursor::encode(pos) })))
}

pub(super) fn get_cursor_time(
    shared: &Shared,
    req: &Req,
    ls: &str,
    id: u32,
) -> Result<Reply, ApiError> {
    let c = req
        .q("cursor")
        .ok_or_else(|| ApiError::cursor("cursor is required"))?;
    let t = with_logstore(shared, req, ls, |l| {
        l.shard_mut(id, shared.config.ttl)?.cursor_time(c)
    })?;
    Ok(Reply::json(&json!({ "cursor_time": t })))
}

pub(super) fn pull_logs(shared: &Shared, req: &Req, ls: &str, id: u32) -> Result<Reply, ApiError> {
    let c = req
        .q("cursor")
        .ok_or_else(|| ApiError::cursor("cursor is required"))?;
    let count = match req.q("count") {
        None => 1000,
        Some(n) => n
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::param("ParameterCount should be in [0-1000]"))?,
    };
    let end_cursor = req
        .q("end_cursor")
        .or_else(|| req.q("endCursor"))
        .filter(|s| !s.is_empty());
    // Rule-based consumption: `query` (SPL), or a named consume `processor`.
    let spl = match (
        req.q("query").filter(|q| !q.trim().is_empty()),
        req.q("processor").filter(|p| !p.is_empty()),
    ) {
        (None, None) => None,
        (Some(query), None) => Some(Spl::parse(query)?),
        (None, Some(name)) => {
            let text = shared.config.processors.get(name).ok_or_else(|| {
                ApiError::new(
                    404,
                    "ConsumeProcessorNotExist",
                    format!("consume processor {name} does not exist"),
                )
            })?;
            Some(Spl::parse(text)?)
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::param("query and processor cannot both be set"));
        }
    };
    let Pulled {
        mut groups,
        mut next,
        end,
    } = with_logstore(shared, req, ls, |l| {
        l.shard_mut(id, shared.config.ttl)?
            .pull(c, count, end_cursor)
    })?;
    let keep = shared.faults.pull_keep(groups.len());
    if keep < groups.len() {
        next -= (groups.len() - keep) as i64;
        groups.truncate(keep);
    }
    // What the statement scanned, before it filtered: the throttling figures.
    let scanned = spl.as_ref().map(|_| {
        let listed = |g: &Bytes| 1 + prost::encoding::encoded_len_varint(g.len() as u64) + g.len();
        (groups.len(), groups.iter().map(listed).sum::<usize>())
    });
    let mut lines = None;
    if let Some(spl) = &spl {
        let applied = spl.apply(&groups)?;
        lines = Some((
            applied.scanned_lines,
            applied.result_lines,
            applied.failed_lines,
        ));
        groups = applied.groups;
    }
    // Build and compress outside the store lock.
    let mut raw = Vec::with_capacity(groups.iter().map(|g| g.len() + 6).sum());
    for g in &groups {
        proto::append_group_to_list(&mut raw, g);
    }
    let compression = Compression::negotiate(req.header("accept-encoding"));
    let body = if raw.is_empty() {
        Vec::new()
    } else {
        compression.compress(&raw)
    };
    let mut headers = vec![
        ("x-log-cursor", cursor::encode(next)),
        ("x-log-count", groups.len().to_string()),
        ("x-log-bodyrawsize", raw.len().to_string()),
        (
            "x-log-end-of-cursor",
            if next >= end { "1" } else { "0" }.to_owned(),
        ),
    ];
    if let Some(ct) = compression.header_value() {
        headers.push(("x-log-compresstype", ct.to_owned()));
    }
    if let (Some((count, size)), Some((scanned, result, failed))) = (scanned, lines) {
        headers.push(("x-log-rawdatacount", count.to_string()));
        headers.push(("x-log-rawdatasize", size.to_string()));
        headers.push(("x-log-rawdatalines", scanned.to_string()));
        headers.push(("x-log-resultlines", result.to_string()));
        headers.push(("x-log-failedlines", failed.to_string()));
    } else if !groups.is_empty() {
        // Per-group cursors exist only without a statement (protocol notes §2.4).
        headers.push(("x-log-read-last-cursor", (next - 1).to_string()));
    }
    Ok(Reply {
        status: 200,
        content_type: Some("application/x-protobuf"),
        headers,
        body: Bytes::from(body),
    })
}

pub(super) fn split_or_merge(
    shared: &Shared,
    req: &Req,
    ls: &str,
    id: u32,
) -> Result<Reply, ApiError> {
    let reply = with_logstore(shared, req, ls, |l| {
        match req.q("action") {
            Some("split") => l.split(id, req.q("key").unwrap_or(""))?,
            Some("merge") => l.merge(id)?,
            other => return Err(ApiError::param(format!("unsupported action {other:?}"))),
        }
        Ok(Reply::json(&shard_list(l)))
    })?;
    shared.save_meta(&shared.lock());
    Ok(reply)
}

pub(super) fn delete_shard(
    shared: &Shared,
    req: &Req,
    ls: &str,
    id: u32,
) -> Result<Reply, ApiError> {
    with_logstore(shared, req, ls, |l| {
        let s = l.shards.get(&id).ok_or_else(|| ApiError::no_shard(id))?;
        if !s.readonly {
            return Err(ApiError::param(format!(
                "shard {id} is not readonly and cannot be deleted"
            )));
        }
        l.shards.remove(&id);
        Ok(())
    })?;
    shared.save_meta(&shared.lock());
    Ok(Reply::empty())
}
