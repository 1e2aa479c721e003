//! Request routing (protocol notes §2): method + path + the `type`/`action` query parameter
//! select one API. Each API lives in a submodule by concern: `shards` (ListShards,
//! GetCursor, GetCursorTime, PullLogs, split/merge/delete), `logs` (PutLogs), `groups`
//! (consumer groups), `admin` (projects and logstores), `control` (the emulator's own
//! `/_emulator/` endpoints: faults, forced expiry, status), `identity` (the metadata
//! service, STS and credentials URI that temporary keys come from).

mod admin;
mod control;
mod groups;
pub(crate) mod identity;
mod logs;
mod shards;

use bytes::Bytes;

use crate::error::ApiError;
use crate::faults::RequestKind;
use crate::Shared;

pub(crate) use control::{control, CONTROL_PREFIX};
pub(crate) use logs::append_groups;

/// A parsed request.
#[derive(Debug)]
pub(crate) struct Req {
    pub method: String,
    pub path: String,
    /// From the Host header's first label, or the configured default.
    pub project: Option<String>,
    /// Form-decoded query pairs.
    pub query: Vec<(String, String)>,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Req {
    pub(crate) fn q(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn project(&self) -> Result<&str, ApiError> {
        self.project.as_deref().ok_or_else(|| {
            ApiError::new(
                400,
                "MissingHost",
                "no project in the Host header and no default project configured",
            )
        })
    }

    /// The body as JSON (an empty body reads as `null`).
    pub(crate) fn json(&self) -> Result<serde_json::Value, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::new(400, "JsonInfoInvalid", format!("body is not JSON: {e}")))
    }
}

/// A successful reply.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Reply {
    pub(crate) fn empty() -> Self {
        Self {
            status: 200,
            content_type: None,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub(crate) fn json(v: &serde_json::Value) -> Self {
        Self {
            status: 200,
            content_type: Some("application/json"),
            headers: Vec::new(),
            body: Bytes::from(v.to_string()),
        }
    }
}

/// The project named by a Host value: its first DNS label, unless the host is a bare IP
/// address or `localhost` (then `None`: use the default project). Any `:port` is ignored.
pub(crate) fn project_from_host(host: &str) -> Option<String> {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':')
            .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(h, _)| h)
    };
    if name.is_empty()
        || name.parse::<std::net::IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
    {
        return None;
    }
    let (first, rest) = name.split_once('.')?;
    (!first.is_empty() && !rest.is_empty()).then(|| first.to_owned())
}

/// Project and logstore names double as directory names in the data directory, so only
/// the characters SLS allows (letters, digits, `-`, `_`) are accepted.
pub(crate) fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::param(format!(
            "invalid project or logstore name {name:?}"
        )))
    }
}

/// Which fault class a request belongs to.
pub(crate) fn request_kind(req: &Req) -> RequestKind {
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["logstores", _, "shards", _]) if matches!(req.q("type"), Some("log" | "logs")) => {
            RequestKind::Read
        }
        ("POST", ["logstores", _]) | ("POST", ["logstores", _, "shards", "lb" | "route"]) => {
            RequestKind::Write
        }
        _ => RequestKind::Other,
    }
}

fn shard_id(s: &str) -> Result<u32, ApiError> {
    s.parse()
        .map_err(|_| ApiError::param(format!("invalid shard id {s:?}")))
}

/// A request path's non-empty segments.
fn segments(path: &str) -> Vec<&str> {
    path.trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect()
}

/// The RAM action a request needs (`log:PullLogs` is `log:GetCursorOrData`, as
/// in Log Service's RAM policies), for denied actions (`/_emulator/keys`).
pub(crate) fn action(req: &Req) -> &'static str {
    let segs = segments(&req.path);
    match (req.method.as_str(), segs.as_slice()) {
        ("POST", []) => "log:CreateProject",
        ("GET", ["logstores"]) => "log:ListLogStores",
        ("POST", ["logstores"]) => "log:CreateLogStore",
        ("GET", ["logstores", _]) => "log:GetLogStore",
        ("DELETE", ["logstores", _]) => "log:DeleteLogStore",
        ("POST", ["logstores", _, ..]) if segs.get(2) != Some(&"consumergroups") => {
            if segs.len() == 4 && !matches!(segs[3], "lb" | "route") {
                match req.q("action") {
                    Some("merge") => "log:MergeShards",
                    _ => "log:SplitShard",
                }
            } else {
                "log:PostLogStoreLogs"
            }
        }
        ("GET", ["logstores", _, "shards"]) => "log:ListShards",
        ("GET", ["logstores", _, "shards", _]) => "log:GetCursorOrData",
        ("DELETE", ["logstores", _, "shards", _]) => "log:DeleteShard",
        ("GET", ["logstores", _, "consumergroups"]) => "log:ListConsumerGroup",
        ("POST", ["logstores", _, "consumergroups"]) => "log:CreateConsumerGroup",
        ("PUT", ["logstores", _, "consumergroups", _]) => "log:UpdateConsumerGroup",
        ("DELETE", ["logstores", _, "consumergroups", _]) => "log:DeleteConsumerGroup",
        ("GET", ["logstores", _, "consumergroups", _]) => "log:GetConsumerGroupCheckPoint",
        ("POST", ["logstores", _, "consumergroups", _]) => match req.q("type") {
            Some("heartbeat") => "log:ConsumerGroupHeartBeat",
            Some("checkpoint") => "log:ConsumerGroupUpdateCheckPoint",
            _ => "log:Unknown",
        },
        _ => "log:Unknown",
    }
}

/// Routes a request to its API.
pub(crate) fn dispatch(shared: &Shared, req: &Req) -> Result<Reply, ApiError> {
    let segs = segments(&req.path);
    let m = req.method.as_str();
    match (m, segs.as_slice()) {
        ("POST", []) => admin::create_project(shared, req),
        ("GET", ["logstores"]) => admin::list_logstores(shared, req),
        ("POST", ["logstores"]) => admin::create_logstore(shared, req),
        ("GET", ["logstores", ls]) => admin::get_logstore(shared, req, ls),
        ("DELETE", ["logstores", ls]) => admin::delete_logstore(shared, req, ls),
        ("POST", ["logstores", ls]) => logs::put_logs(shared, req, ls, None),
        ("GET", ["logstores", ls, "shards"]) => shards::list_shards(shared, req, ls),
        ("POST", ["logstores", ls, "shards", "lb"]) => logs::put_logs(shared, req, ls, None),
        ("POST", ["logstores", ls, "shards", "route"]) => {
            let key = req
                .q("key")
                .ok_or_else(|| ApiError::param("route requires a key"))?;
            logs::put_logs(shared, req, ls, Some(key))
        }
        ("GET", ["logstores", ls, "shards", id]) => {
            let id = shard_id(id)?;
            match req.q("type") {
                Some("cursor") => shards::get_cursor(shared, req, ls, id),
                Some("cursor_time") => shards::get_cursor_time(shared, req, ls, id),
                Some("log" | "logs") => shards::pull_logs(shared, req, ls, id),
                other => Err(ApiError::param(format!(
                    "unsupported type {other:?} for a shard GET"
                ))),
            }
        }
        ("POST", ["logstores", ls, "shards", id]) => {
            shards::split_or_merge(shared, req, ls, shard_id(id)?)
        }
        ("DELETE", ["logstores", ls, "shards", id]) => {
            shards::delete_shard(shared, req, ls, shard_id(id)?)
        }
        ("GET", ["logstores", ls, "consumergroups"]) => groups::list(shared, req, ls),
        ("POST", ["logstores", ls, "consumergroups"]) => groups::create(shared, req, ls),
        ("PUT", ["logstores", ls, "consumergroups", cg]) => groups::update(shared, req, ls, cg),
        ("DELETE", ["logstores", ls, "consumergroups", cg]) => groups::delete(shared, req, ls, cg),
        ("GET", ["logstores", ls, "consumergroups", cg]) => {
            groups::get_checkpoints(shared, req, ls, cg)
        }
        ("POST", ["logstores", ls, "consumergroups", cg]) => match req.q("type") {
            Some("heartbeat") => groups::heartbeat(shared, req, ls, cg),
            Some("checkpoint") => groups::update_checkpoint(shared, req, ls, cg),
            other => Err(ApiError::param(format!(
                "unsupported type {other:?} for a consumer group POST"
            ))),
        },
        _ => Err(ApiError::new(
            404,
            "RequestURINotFound",
            format!("the emulator does not implement {m} {}", req.path),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_is_the_first_label_of_the_host() {
        assert_eq!(project_from_host("proj.127.0.0.1").as_deref(), Some("proj"));
        assert_eq!(
            project_from_host("proj.localhost:18080").as_deref(),
            Some("proj")
        );
        assert_eq!(
            project_from_host("p.cn-hangzhou.log.aliyuncs.com").as_deref(),
            Some("p")
        );
        assert_eq!(project_from_host("127.0.0.1:8080"), None);
        assert_eq!(project_from_host("localhost"), None);
        assert_eq!(project_from_host("[::1]:80"), None);
    }

    #[test]
    fn names_that_could_escape_the_data_directory_are_refused() {
        assert!(check_name("my-store_1").is_ok());
        assert!(check_name("..").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name("").is_err());
    }
}
