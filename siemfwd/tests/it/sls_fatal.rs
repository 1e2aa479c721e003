//! Each fatal Log Service error stops siemfwd with one line that says what to
//! fix and a non-zero exit: a wrong AccessKey secret (SignatureNotMatch), an
//! unknown AccessKey ID (InvalidAccessKeyId; `Unauthorized` gets the same
//! line, unit-tested), an unknown project, an unknown logstore, no room for
//! another consumer group, a missing group with `create_group = false`, and a
//! RAM policy that lets the key join the group but not read.

use crate::sls_support;

use std::time::Duration;

use sls_support::*;

/// Run siemfwd with `config_text` and return (exit code, last stderr line).
fn run_expecting_failure(config_text: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, config_text).unwrap();
    let mut child = crate::support::siemfwd::hermetic()
        .args(["run", "-c"])
        .arg(&cfg)
        .env_remove("SLS_ENDPOINT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Fatal errors must end the program promptly; a hang fails the test.
    let done = wait_until(Duration::from_secs(30), || child.try_wait().ok().flatten());
    if done.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        done.is_some(),
        "siemfwd (pid {pid}) did not stop:\n{stderr}"
    );
    let last = stderr.lines().last().unwrap_or_default().to_owned();
    (out.status.code(), last, stderr)
}

fn cfg(
    endpoint: &str,
    ak: &str,
    secret: &str,
    project: &str,
    logstore: &str,
    extra: &str,
) -> String {
    format!(
        r#"[source]
type = "sls"
[source.sls]
endpoint = "{endpoint}"
access_key_id = "{ak}"
access_key_secret = "{secret}"
project = "{project}"
logstore = "{logstore}"
consumer_group = "cg"
{extra}
[sink]
type = "tcp"
address = "127.0.0.1:9"
"#
    )
}

fn assert_fatal(config_text: &str, expected: &str) {
    let (code, last, all) = run_expecting_failure(config_text);
    assert!(matches!(code, Some(c) if c != 0), "exit {code:?}\n{all}");
    assert_eq!(last, format!("siemfwd: error: {expected}"), "\n{all}");
    assert_eq!(
        all.matches("siemfwd: error:").count(),
        1,
        "exactly one error line\n{all}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_says_check_the_access_key() {
    let emu = emulator(2).await;
    let text = cfg(&emu.endpoint(), AK_ID, "wrong", PROJECT, LOGSTORE, "");
    tokio::task::block_in_place(|| {
        assert_fatal(
            &text,
            "SLS rejected the AccessKey (SignatureNotMatch): check SLS_AK_ID / SLS_AK_KEY \
             (source.sls.access_key_id / source.sls.access_key_secret)",
        )
    });
    // The secret never appears.
    let (_, _, all) = tokio::task::block_in_place(|| run_expecting_failure(&text));
    assert!(
        !all.contains(AK_SECRET) && !all.contains("\"wrong\""),
        "{all}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_access_key_id_says_check_the_access_key() {
    let emu = emulator(2).await;
    let text = cfg(&emu.endpoint(), "nobody", AK_SECRET, PROJECT, LOGSTORE, "");
    tokio::task::block_in_place(|| {
        assert_fatal(
            &text,
            "SLS rejected the AccessKey (InvalidAccessKeyId): check SLS_AK_ID / SLS_AK_KEY \
             (source.sls.access_key_id / source.sls.access_key_secret)",
        )
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_project_and_logstore_name_what_to_fix() {
    let emu = sls_emulator::Emulator::builder()
        .access_key(AK_ID, AK_SECRET)
        .logstore(PROJECT, LOGSTORE, 2)
        .auto_create(false)
        .start()
        .await
        .unwrap();
    let text = cfg(&emu.endpoint(), AK_ID, AK_SECRET, "nope", LOGSTORE, "");
    tokio::task::block_in_place(|| {
        assert_fatal(
            &text,
            "SLS project \"nope\" does not exist (ProjectNotExist): check SLS_PROJECT \
             (source.sls.project) and SLS_ENDPOINT (the project's region)",
        )
    });
    let text = cfg(&emu.endpoint(), AK_ID, AK_SECRET, PROJECT, "nope", "");
    tokio::task::block_in_place(|| {
        assert_fatal(
            &text,
            "SLS logstore \"nope\" does not exist in project \"proj\" (LogStoreNotExist): \
             check SLS_LOGSTORE (source.sls.logstore)",
        )
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_quota_exceeded_says_delete_or_reuse_a_group() {
    let emu = sls_emulator::Emulator::builder()
        .access_key(AK_ID, AK_SECRET)
        .logstore(PROJECT, LOGSTORE, 2)
        .group_quota(0)
        .start()
        .await
        .unwrap();
    let text = cfg(&emu.endpoint(), AK_ID, AK_SECRET, PROJECT, LOGSTORE, "");
    tokio::task::block_in_place(|| {
        assert_fatal(
            &text,
            "SLS logstore \"store\" has no room for consumer group \"cg\" \
             (ConsumerGroupQuotaExceed): delete an unused consumer group or reuse one \
             (SLS_CG / source.sls.consumer_group)",
        )
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_group_with_create_group_false_is_refused() {
    let emu = emulator(2).await;
    let text = cfg(
        &emu.endpoint(),
        AK_ID,
        AK_SECRET,
        PROJECT,
        LOGSTORE,
        "create_group = false",
    );
    tokio::task::block_in_place(|| {
        assert_fatal(
            &text,
            "consumer group \"cg\" does not exist in logstore \"store\" and \
             source.sls.create_group = false: create it, or set create_group = true",
        )
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_secret_is_a_configuration_error_before_any_request() {
    let emu = emulator(2).await;
    let text = cfg(&emu.endpoint(), AK_ID, "", PROJECT, LOGSTORE, "");
    let (code, last, _) = tokio::task::block_in_place(|| run_expecting_failure(&text));
    assert_eq!(code, Some(2));
    assert!(
        last.contains("source.sls.access_key_secret: required (or set SLS_AK_KEY)"),
        "{last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_with_v4_signatures_says_check_the_access_key() {
    let emu = emulator(2).await;
    let text = cfg(
        &emu.endpoint(),
        AK_ID,
        "wrong",
        PROJECT,
        LOGSTORE,
        "auth_version = \"v4\"\nregion = \"cn-hangzhou\"",
    );
    tokio::task::block_in_place(|| {
        assert_fatal(
            &text,
            "SLS rejected the AccessKey (SignatureNotMatch): check SLS_AK_ID / SLS_AK_KEY \
             (source.sls.access_key_id / source.sls.access_key_secret)",
        )
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_denies_reads_stops_at_start_naming_the_action() {
    // The group accepts the key (its actions are allowed), the first read does not: the
    // configuration is wrong, not a key changed mid-run — fatal, with what to grant.
    let emu = emulator(2).await;
    load(&emu, 2, 0, 100, 50);
    emu.deny_actions(AK_ID, &["log:GetCursorOrData"]);
    let text = cfg(&emu.endpoint(), AK_ID, AK_SECRET, PROJECT, LOGSTORE, "");
    tokio::task::block_in_place(|| {
        assert_fatal(
            &text,
            "SLS refused log:GetCursorOrData to this AccessKey (Unauthorized: its RAM policy \
             does not allow it): grant it — a consumer needs log:GetCursorOrData, \
             log:ListShards, log:ListConsumerGroup, log:CreateConsumerGroup, \
             log:UpdateConsumerGroup, log:ConsumerGroupHeartBeat, \
             log:ConsumerGroupUpdateCheckPoint and log:GetConsumerGroupCheckPoint on the logstore",
        )
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_denies_heartbeats_stops_at_start_naming_the_action() {
    let emu = emulator(2).await;
    emu.deny_actions(AK_ID, &["log:ConsumerGroupHeartBeat"]);
    let text = cfg(&emu.endpoint(), AK_ID, AK_SECRET, PROJECT, LOGSTORE, "");
    let (code, last, all) = tokio::task::block_in_place(|| run_expecting_failure(&text));
    assert!(matches!(code, Some(c) if c != 0), "exit {code:?}\n{all}");
    assert!(
        last.starts_with(
            "siemfwd: error: SLS refused log:ConsumerGroupHeartBeat to this AccessKey"
        ),
        "{all}"
    );
}
