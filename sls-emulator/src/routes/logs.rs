//! PutLogs (protocol notes §2.5): `/shards/lb`, `/shards/route?key=` and the older plain
//! `/logstores/{ls}` form, with lz4/zstd/deflate bodies per `x-log-compresstype`.

use bytes::Bytes;
use prost::Message as _;

use super::{Reply, Req};
use crate::compress::Compression;
use crate::error::ApiError;
use crate::proto::LogGroupList;
use crate::store::{unix_now, validate_log_group};
use crate::Shared;

pub(super) fn put_logs(
    shared: &Shared,
    req: &Req,
    ls: &str,
    hash_key: Option<&str>,
) -> Result<Reply, ApiError> {
    let compression = Compression::from_header(req.header("x-log-compresstype").unwrap_or(""))
        .map_err(|e| ApiError::new(400, "InvalidCompressType", e.to_string()))?;
    let raw_size = match req.header("x-log-bodyrawsize") {
        None => None,
        Some(v) => Some(v.trim().parse::<usize>().map_err(|_| {
            ApiError::new(
                400,
                "InvalidBodyRawSize",
                format!("x-log-bodyrawsize {v:?} is not a size"),
            )
        })?),
    };
    if compression != Compression::None && raw_size.is_none() {
        return Err(ApiError::new(
            400,
            "MissingBodyRawSize",
            "x-log-bodyrawsize is required with x-log-compresstype",
        ));
    }
    let raw = compression
        .decompress(&req.body, raw_size)
        .map_err(|e| ApiError::new(400, "PostBodyUncompressError", e.to_string()))?;
    let groups: Vec<Bytes> = if req.header("x-log-mode") == Some("batch_group") {
        let list = LogGroupList::decode(raw.as_slice()).map_err(|e| {
            ApiError::new(
                400,
                "PostBodyInvalid",
                format!("body is not a LogGroupList: {e}"),
            )
        })?;
        list.log_groups
            .iter()
            .map(|g| Bytes::from(g.encode_to_vec()))
            .collect()
    } else {
        validate_log_group(&raw)?;
        vec![Bytes::from(raw)]
    };
    let project = req.project()?.to_owned();
    append_groups(shared, &project, ls, None, hash_key, groups)?;
    Ok(Reply::empty())
}

/// Appends encoded groups to a shard (given, or chosen by hash key / round-robin) and
/// persists them. Returns the position of the first group.
pub(crate) fn append_groups(
    shared: &Shared,
    project: &str,
    ls: &str,
    shard: Option<u32>,
    hash_key: Option<&str>,
    groups: Vec<Bytes>,
) -> Result<i64, ApiError> {
    super::check_name(project)?;
    super::check_name(ls)?;
    let mut store = shared.lock();
    store.logstore_mut(project, ls, shared.auto_shards())?;
    // Persist an auto-created logstore before its first data, so a restart finds both.
    shared.save_if_created(&mut store);
    let logstore = store.logstore_mut(project, ls, None)?;
    let id = match shard {
        Some(id) => {
            let s = logstore
                .shards
                .get(&id)
                .ok_or_else(|| ApiError::no_shard(id))?;
            if s.readonly {
                return Err(ApiError::param(format!("shard {id} is readonly")));
            }
            id
        }
        None => logstore.write_shard(hash_key)?,
    };
    let s = logstore
        .shards
        .get_mut(&id)
        .ok_or_else(|| ApiError::no_shard(id))?;
    let now = unix_now();
    let first_index = s.groups.len();
    let pos = s.append(groups, now);
    if let Some(p) = &shared.persist {
        if let Err(e) = p.append_groups(project, ls, id, &s.groups[first_index..]) {
            tracing::error!(error = %e, "persisting log groups failed");
            return Err(ApiError::new(
                500,
                "InternalServerError",
                format!("emulator could not persist: {e}"),
            ));
        }
    }
    Ok(pos)
}
