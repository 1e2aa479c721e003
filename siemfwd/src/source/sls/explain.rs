//! What to fix, in siemfwd's words.
//!
//! The Log Service client (`sls-client`) classifies its errors — retry or
//! stop, the key refused, the RAM action denied — and knows nothing of
//! where its settings came from. A person reading a fatal error wants the
//! setting to change, by the name they wrote it under: `SLS_AK_ID`,
//! `source.sls.logstore`. This file turns the client's errors into those
//! lines: [`explain`] for what the server refused, [`keyed`] for a client
//! setting it could not use.

use super::Error;

/// The one line a fatal answer of Log Service becomes, naming what to
/// change; any other error as it was. `project`, `logstore` and `group`
/// are what the user configured.
pub fn explain(e: Error, project: &str, logstore: &str, group: &str) -> Error {
    // A RAM policy without the action: the key itself is fine.
    if let Some(action) = e.denied_action() {
        let action = if action.is_empty() { "a call" } else { action };
        let code = e.code().unwrap_or_default();
        return Error::Fatal(format!(
            "SLS refused {action} to this AccessKey ({code}: its RAM policy does not \
             allow it): grant it — a consumer needs log:GetCursorOrData, log:ListShards, \
             log:ListConsumerGroup, log:CreateConsumerGroup, log:UpdateConsumerGroup, \
             log:ConsumerGroupHeartBeat, log:ConsumerGroupUpdateCheckPoint and \
             log:GetConsumerGroupCheckPoint on the logstore"
        ));
    }
    if let Error::NoCredentials { tried } = &e {
        return Error::Fatal(format!(
            "no credentials found: set source.sls.access_key_id and access_key_secret \
             (SLS_AK_ID, SLS_AK_KEY) or choose a source with source.sls.credentials \
             (docs/configuration.md, \"Credentials\"); the lookup tried: {tried}"
        ));
    }
    let Some(code) = e.code() else {
        return e;
    };
    let line = match code {
        "Unauthorized" | "SignatureNotMatch" | "InvalidAccessKeyId" => format!(
            "SLS rejected the AccessKey ({code}): check SLS_AK_ID / SLS_AK_KEY \
             (source.sls.access_key_id / source.sls.access_key_secret)"
        ),
        "ProjectNotExist" | "ProjectNotExists" => format!(
            "SLS project \"{project}\" does not exist ({code}): check SLS_PROJECT \
             (source.sls.project) and SLS_ENDPOINT (the project's region)"
        ),
        "LogStoreNotExist" => format!(
            "SLS logstore \"{logstore}\" does not exist in project \"{project}\" \
             ({code}): check SLS_LOGSTORE (source.sls.logstore)"
        ),
        "ConsumerGroupQuotaExceed" => format!(
            "SLS logstore \"{logstore}\" has no room for consumer group \"{group}\" \
             ({code}): delete an unused consumer group or reuse one (SLS_CG / \
             source.sls.consumer_group)"
        ),
        "RequestTimeTooSkewed" => format!(
            "SLS says this host's clock is more than 15 minutes off ({code}): fix the \
             clock (NTP)"
        ),
        _ => return e,
    };
    Error::Fatal(line)
}

/// A setting the client could not use, under its key in siemfwd's
/// configuration (`endpoint` → `source.sls.endpoint`; the client's user
/// agent is made of `consumer_name`).
pub(crate) fn keyed(e: Error) -> Error {
    match e {
        Error::Config { key, problem } => {
            let ours = if key == "user_agent" {
                "consumer_name"
            } else {
                &key
            };
            Error::Config {
                key: format!("source.sls.{ours}"),
                problem,
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_plg(e: Error) -> String {
        explain(e, "p", "l", "g").to_string()
    }

    fn api(status: u16, code: &str, message: &str) -> Error {
        Error::Api {
            what: "PullLogs shard 0".into(),
            status,
            code: code.into(),
            message: message.into(),
            request_id: String::new(),
        }
    }

    #[test]
    fn a_rejected_key_names_the_variables_and_keys_in_one_line() {
        let line = in_plg(api(401, "SignatureNotMatch", "m"));
        assert_eq!(
            line,
            "SLS rejected the AccessKey (SignatureNotMatch): check SLS_AK_ID / SLS_AK_KEY \
             (source.sls.access_key_id / source.sls.access_key_secret)"
        );
        let line = in_plg(api(404, "LogStoreNotExist", "m"));
        assert!(
            line.contains("\"l\"") && line.contains("SLS_LOGSTORE"),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn a_denied_action_is_explained_as_the_policy_not_the_key() {
        let denied = api(
            401,
            "Unauthorized",
            "denied by sts or ram, action: log:GetCursorOrData, resource: acs:log:x",
        );
        let line = in_plg(denied);
        assert!(
            line.starts_with("SLS refused log:GetCursorOrData to this AccessKey (Unauthorized"),
            "{line}"
        );
        let other = in_plg(api(401, "Unauthorized", "m"));
        assert!(other.starts_with("SLS rejected the AccessKey"), "{other}");
        let unnamed = in_plg(api(
            401,
            "Unauthorized",
            "denied by sts or ram, action: , x",
        ));
        assert!(
            unnamed.starts_with("SLS refused a call to this AccessKey"),
            "{unnamed}"
        );
    }

    #[test]
    fn an_empty_lookup_says_which_keys_give_a_key() {
        let e = Error::NoCredentials {
            tried: "the ECS RAM role: no role".into(),
        };
        let line = in_plg(e);
        assert!(
            line.starts_with("no credentials found: set source.sls.access_key_id"),
            "{line}"
        );
        assert!(
            line.ends_with("the lookup tried: the ECS RAM role: no role"),
            "{line}"
        );
    }

    #[test]
    fn what_is_not_for_a_person_stays_as_it_was() {
        let busy = explain(api(503, "ServerBusy", "m"), "p", "l", "g");
        assert_eq!(busy.code(), Some("ServerBusy"));
    }

    #[test]
    fn client_settings_get_siemfwd_keys() {
        let e = keyed(Error::Config {
            key: "user_agent".into(),
            problem: "x".into(),
        });
        assert_eq!(e.to_string(), "source.sls.consumer_name: x");
        let e = keyed(Error::Config {
            key: "endpoint".into(),
            problem: "x".into(),
        });
        assert_eq!(e.to_string(), "source.sls.endpoint: x");
    }
}
