//! Project and logstore management, enough for SDK scripts that create what they use:
//! CreateProject, ListLogStores, CreateLogStore, GetLogStore, DeleteLogStore.

use serde_json::{json, Value};

use super::{Reply, Req};
use crate::error::ApiError;
use crate::Shared;

pub(super) fn create_project(shared: &Shared, req: &Req) -> Result<Reply, ApiError> {
    let body = req.json()?;
    let name = body
        .get("projectName")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let name = match name {
        Some(n) => n,
        None => req.project()?.to_owned(),
    };
    super::check_name(&name)?;
    let mut store = shared.lock();
    if store.projects.contains_key(&name) {
        return Err(ApiError::new(
            400,
            "ProjectAlreadyExist",
            format!("project {name} already exists"),
        ));
    }
    store.create_project(&name);
    shared.save_meta(&store);
    Ok(Reply::empty())
}

fn project_exists_or_auto(shared: &Shared, project: &str) -> Result<(), ApiError> {
    let mut store = shared.lock();
    if shared.config.auto_create {
        store.create_project(project);
    }
    if store.projects.contains_key(project) {
        Ok(())
    } else {
        Err(ApiError::no_project(project))
    }
}

pub(super) fn list_logstores(shared: &Shared, req: &Req) -> Result<Reply, ApiError> {
    let project = req.project()?;
    project_exists_or_auto(shared, project)?;
    let store = shared.lock();
    let names: Vec<&String> = store
        .projects
        .get(project)
        .map(|p| p.logstores.keys().collect())
        .unwrap_or_default();
    Ok(Reply::json(
        &json!({"count": names.len(), "total": names.len(), "logstores": names}),
    ))
}

pub(super) fn create_logstore(shared: &Shared, req: &Req) -> Result<Reply, ApiError> {
    let project = req.project()?.to_owned();
    super::check_name(&project)?;
    let body = req.json()?;
    let name = body
        .get("logstoreName")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::new(400, "JsonInfoInvalid", "logstoreName is required"))?;
    super::check_name(name)?;
    let shards = body
        .get("shardCount")
        .and_then(Value::as_u64)
        .unwrap_or(2)
        .clamp(1, 256) as u32;
    let ttl = body.get("ttl").and_then(Value::as_u64).unwrap_or(30) as u32;
    project_exists_or_auto(shared, &project)?;
    let mut store = shared.lock();
    store.create_logstore(&project, name, shards)?;
    if let Ok(ls) = store.logstore_mut(&project, name, None) {
        ls.ttl_days = ttl;
    }
    shared.save_meta(&store);
    Ok(Reply::empty())
}

pub(super) fn get_logstore(shared: &Shared, req: &Req, ls: &str) -> Result<Reply, ApiError> {
    super::shards::with_logstore(shared, req, ls, |l| {
        Ok(Reply::json(&json!({
            "logstoreName": ls,
            "ttl": l.ttl_days,
            "shardCount": l.shards.values().filter(|s| !s.readonly).count(),
            "autoSplit": false,
            "maxSplitShard": 0,
            "appendMeta": false,
            "enable_tracking": false,
            "createTime": l.shards.values().map(|s| s.create_time).min().unwrap_or(0),
            "lastModifyTime": l.shards.values().map(|s| s.create_time).max().unwrap_or(0),
        })))
    })
}

pub(super) fn delete_logstore(shared: &Shared, req: &Req, ls: &str) -> Result<Reply, ApiError> {
    let project = req.project()?;
    let mut store = shared.lock();
    let p = store
        .projects
        .get_mut(project)
        .ok_or_else(|| ApiError::no_project(project))?;
    p.logstores
        .remove(ls)
        .ok_or_else(|| ApiError::no_logstore(ls))?;
    shared.save_meta(&store);
    Ok(Reply::empty())
}
