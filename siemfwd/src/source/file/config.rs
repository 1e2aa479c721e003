//! The `[source.file]` table, owned by the file source; `config` composes
//! it into the whole configuration.

use std::path::PathBuf;

use serde::Deserialize;

use crate::units::{ByteSize, HumanDuration};

/// What a source does with an input it cannot parse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnMalformed {
    /// Report it (file and line), count it, go on.
    #[default]
    Skip,
    /// Report it, deliver and commit everything before it, and stop with an
    /// error.
    Stop,
}

/// The `[source.file]` table: NDJSON files, one shard each.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileSourceConfig {
    /// Files to read, or directories (every `*.ndjson`, `*.jsonl`, `*.json`
    /// and `*.log` file in them). `-` is standard input (never checkpointed).
    pub paths: Vec<String>,
    /// Where checkpoints are kept (one small file per input file).
    pub state_dir: PathBuf,
    /// What to do with a line that is not a JSON object.
    pub on_malformed: OnMalformed,
    /// Keep reading lines appended to the files (like `tail -f`) instead of
    /// stopping at the end.
    pub follow: bool,
    /// How often to look for new lines when following.
    pub poll_interval: HumanDuration,
    /// Longest line accepted; longer lines count as malformed.
    pub max_line: ByteSize,
}

impl Default for FileSourceConfig {
    fn default() -> Self {
        Self {
            paths: Vec::new(),
            state_dir: PathBuf::from("siemfwd-state"),
            on_malformed: OnMalformed::default(),
            follow: false,
            poll_interval: HumanDuration(std::time::Duration::from_millis(500)),
            max_line: ByteSize(16 << 20),
        }
    }
}
