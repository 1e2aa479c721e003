//! `siemfwd status`: the consumer group as the server sees it — each
//! shard's status, the consumer that committed last, the checkpoint, and
//! how far behind it is (log groups, and time since the oldest unread log
//! group was received).
//!
//! Calls: ListShards, GetCheckPoint (all shards), then per shard what
//! [`super::lag::measure`] asks (GetCursor `end`, and GetCursorTime at the
//! checkpoint when the shard is behind); a figure that cannot be known is
//! left out rather than guessed.

use serde::Serialize;

use super::Settings;
use sls_client::Client;
use sls_client::{Class, Error};
use sls_client::{Cursor, ShardId};

/// One shard's line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardStatus {
    /// Shard id.
    pub shard: u32,
    /// `readwrite` or `readonly`.
    pub status: String,
    /// The consumer that committed the checkpoint (empty: never).
    pub owner: String,
    /// The checkpoint (empty: none yet).
    pub checkpoint: String,
    /// The shard's end cursor.
    pub end_cursor: String,
    /// Log groups between the checkpoint and the end (`None`: unknown —
    /// no checkpoint, or cursors of an unexpected shape).
    pub lag_log_groups: Option<i64>,
    /// Seconds since the oldest unread log group was received (0 when
    /// caught up; `None`: unknown).
    pub lag_seconds: Option<i64>,
}

/// The group's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupStatus {
    /// Project.
    pub project: String,
    /// Logstore.
    pub logstore: String,
    /// Consumer group.
    pub consumer_group: String,
    /// One entry per shard.
    pub shards: Vec<ShardStatus>,
}

impl GroupStatus {
    /// Log groups behind over the shards whose lag is known, and the
    /// largest lag in seconds (`None`: no shard's is known).
    pub fn behind(&self) -> (u64, Option<i64>) {
        let groups = self
            .shards
            .iter()
            .filter_map(|s| s.lag_log_groups)
            .map(i64::unsigned_abs)
            .sum();
        let seconds = self.shards.iter().filter_map(|s| s.lag_seconds).max();
        (groups, seconds)
    }
}

/// Ask the server.
///
/// # Errors
/// Any failed call; fatal ones explained.
pub async fn collect(client: &Client, s: &Settings) -> Result<GroupStatus, Error> {
    let explain = |e: Error| {
        if e.class() == Class::Fatal {
            super::explain(e, &s.project, &s.logstore, &s.group)
        } else {
            e
        }
    };
    let shards = client.list_shards().await.map_err(explain)?;
    let checkpoints = match client.get_checkpoints(&s.group, None).await {
        Ok(c) => c,
        Err(e) if e.code() == Some("ConsumerGroupNotExist") => {
            return Err(Error::Fatal(format!(
                "consumer group \"{}\" does not exist in logstore \"{}\" (check SLS_CG / \
                 source.sls.consumer_group)",
                s.group, s.logstore
            )))
        }
        Err(e) => return Err(explain(e)),
    };
    let mut out = Vec::with_capacity(shards.len());
    for sh in &shards {
        let id = ShardId(sh.id);
        let cp = checkpoints.iter().find(|c| c.shard == sh.id);
        let checkpoint = cp.and_then(|c| Cursor::new(c.checkpoint.clone()));
        let (lag, end) = match &checkpoint {
            Some(c) => {
                let (lag, end) = super::lag::measure(client, id, c).await.map_err(explain)?;
                (Some(lag), end)
            }
            None => (None, client.get_cursor(id, "end").await.map_err(explain)?),
        };
        out.push(ShardStatus {
            shard: sh.id,
            status: sh.status.clone(),
            owner: cp.map(|c| c.consumer.clone()).unwrap_or_default(),
            checkpoint: checkpoint.map(|c| c.to_string()).unwrap_or_default(),
            end_cursor: end.to_string(),
            lag_log_groups: lag.and_then(|l| l.log_groups),
            lag_seconds: lag.and_then(|l| l.seconds),
        });
    }
    out.sort_by_key(|s| s.shard);
    Ok(GroupStatus {
        project: s.project.clone(),
        logstore: s.logstore.clone(),
        consumer_group: s.group.clone(),
        shards: out,
    })
}

fn opt(v: Option<i64>, unit: &str) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v}{unit}"))
}

/// The status as an aligned text table.
pub fn render_table(g: &GroupStatus) -> String {
    let mut rows = vec![[
        "SHARD".to_owned(),
        "STATUS".to_owned(),
        "OWNER".to_owned(),
        "CHECKPOINT".to_owned(),
        "LAG_GROUPS".to_owned(),
        "LAG_TIME".to_owned(),
    ]];
    for s in &g.shards {
        rows.push([
            s.shard.to_string(),
            s.status.clone(),
            if s.owner.is_empty() {
                "-".into()
            } else {
                s.owner.clone()
            },
            if s.checkpoint.is_empty() {
                "-".into()
            } else {
                s.checkpoint.clone()
            },
            opt(s.lag_log_groups, ""),
            opt(s.lag_seconds, "s"),
        ]);
    }
    let mut widths = [0usize; 6];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = format!(
        "project {}  logstore {}  consumer group {}\n",
        g.project, g.logstore, g.consumer_group
    );
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_and_shows_unknowns_as_dashes() {
        let g = GroupStatus {
            project: "p".into(),
            logstore: "l".into(),
            consumer_group: "g".into(),
            shards: vec![
                ShardStatus {
                    shard: 0,
                    status: "readwrite".into(),
                    owner: "host-1".into(),
                    checkpoint: "MTA=".into(),
                    end_cursor: "MTA=".into(),
                    lag_log_groups: Some(0),
                    lag_seconds: Some(0),
                },
                ShardStatus {
                    shard: 1,
                    status: "readwrite".into(),
                    owner: String::new(),
                    checkpoint: String::new(),
                    end_cursor: "MTA=".into(),
                    lag_log_groups: None,
                    lag_seconds: None,
                },
            ],
        };
        let t = render_table(&g);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[1],
            "SHARD  STATUS     OWNER   CHECKPOINT  LAG_GROUPS  LAG_TIME"
        );
        assert_eq!(
            lines[2],
            "0      readwrite  host-1  MTA=        0           0s"
        );
        assert_eq!(
            lines[3],
            "1      readwrite  -       -           -           -"
        );
    }
}
