//! The optional data directory, so an emulator survives a restart.
//!
//! Layout: `meta.json` holds projects, logstores, shards (ranges, cursor bases, expiry
//! point, parents) and consumer groups with their checkpoints; it is rewritten atomically
//! (temp file + rename) after every metadata change. Log groups are appended to
//! `data/<project>/<logstore>/<shard>.groups` as records of `receive_time: i64 LE`,
//! `len: u32 LE`, `bytes`; the file is the authority on how many groups a shard has, so a
//! crash between a data append and a metadata save loses nothing already acknowledged.
//! Live consumers are not persisted: after a restart they re-join with an empty heartbeat
//! (a non-empty one gets `NotExistConsumerWithBody`, as after a timeout).

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::group::{Checkpoint, ConsumerGroup};
use crate::store::{Logstore, Project, Shard, Store, StoredGroup};

#[derive(Serialize, Deserialize)]
struct MetaFile {
    version: u32,
    projects: BTreeMap<String, MetaProject>,
}

#[derive(Serialize, Deserialize)]
struct MetaProject {
    logstores: BTreeMap<String, MetaLogstore>,
}

#[derive(Serialize, Deserialize)]
struct MetaLogstore {
    ttl_days: u32,
    next_shard_id: u32,
    shards: Vec<MetaShard>,
    groups: Vec<MetaGroup>,
}

#[derive(Serialize, Deserialize)]
struct MetaShard {
    id: u32,
    readonly: bool,
    begin_key: String,
    end_key: String,
    create_time: i64,
    base: i64,
    first: usize,
    parents: Vec<u32>,
}

#[derive(Serialize, Deserialize)]
struct MetaGroup {
    name: String,
    timeout: u32,
    order: bool,
    checkpoints: BTreeMap<u32, Checkpoint>,
}

/// An open data directory.
pub(crate) struct DataDir {
    root: PathBuf,
    files: Mutex<HashMap<(String, String, u32), File>>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::DataDir {
        path: path.to_owned(),
        source,
    }
}

impl DataDir {
    fn shard_path(&self, project: &str, logstore: &str, shard: u32) -> PathBuf {
        self.root
            .join("data")
            .join(project)
            .join(logstore)
            .join(format!("{shard}.groups"))
    }

    /// Opens (creating if needed) `root` and loads its state.
    pub(crate) fn open(root: &Path) -> Result<(Self, Store), Error> {
        fs::create_dir_all(root).map_err(io_err(root))?;
        let dir = Self {
            root: root.to_owned(),
            files: Mutex::new(HashMap::new()),
        };
        let meta_path = root.join("meta.json");
        let mut store = Store::default();
        let text = match fs::read(&meta_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((dir, store)),
            Err(e) => return Err(io_err(&meta_path)(e)),
        };
        let meta: MetaFile = serde_json::from_slice(&text).map_err(|e| Error::Corrupt {
            path: meta_path.clone(),
            reason: e.to_string(),
        })?;
        for (pname, p) in meta.projects {
            let mut project = Project::default();
            for (lname, l) in p.logstores {
                let mut shards = BTreeMap::new();
                for s in l.shards {
                    let key = |k: &str| {
                        u128::from_str_radix(k, 16).map_err(|_| Error::Corrupt {
                            path: meta_path.clone(),
                            reason: format!("bad hash key {k:?}"),
                        })
                    };
                    let mut shard = Shard {
                        id: s.id,
                        readonly: s.readonly,
                        begin_key: key(&s.begin_key)?,
                        end_key: key(&s.end_key)?,
                        create_time: s.create_time,
                        base: s.base,
                        first: 0,
                        groups: dir.read_groups(&dir.shard_path(&pname, &lname, s.id))?,
                        parents: s.parents,
                    };
                    shard.expire_before(s.first);
                    shards.insert(s.id, shard);
                }
                let groups = l
                    .groups
                    .into_iter()
                    .map(|g| {
                        (
                            g.name.clone(),
                            ConsumerGroup::restore(&g.name, g.timeout, g.order, g.checkpoints),
                        )
                    })
                    .collect();
                let mut ls = Logstore::new(1);
                ls.shards = shards;
                ls.groups = groups;
                ls.next_shard_id = l.next_shard_id;
                ls.ttl_days = l.ttl_days;
                project.logstores.insert(lname, ls);
            }
            store.projects.insert(pname, project);
        }
        Ok((dir, store))
    }

    fn read_groups(&self, path: &Path) -> Result<Vec<StoredGroup>, Error> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(path)(e)),
        };
        let mut r = BufReader::new(file);
        let mut out = Vec::new();
        loop {
            let mut head = [0u8; 12];
            match r.read_exact(&mut head) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(io_err(path)(e)),
            }
            let (t, len) = head.split_at(8);
            let receive_time = i64::from_le_bytes(t.try_into().unwrap_or_default());
            let len = u32::from_le_bytes(len.try_into().unwrap_or_default()) as usize;
            let mut data = vec![0u8; len];
            if let Err(e) = r.read_exact(&mut data) {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    // A torn final record (crash mid-write): it was never acknowledged.
                    tracing::warn!(path = %path.display(), "ignoring a truncated final record");
                    break;
                }
                return Err(io_err(path)(e));
            }
            out.push(StoredGroup {
                receive_time,
                data: Bytes::from(data),
            });
        }
        Ok(out)
    }

    /// Appends groups to a shard's file.
    pub(crate) fn append_groups(
        &self,
        project: &str,
        logstore: &str,
        shard: u32,
        groups: &[StoredGroup],
    ) -> Result<(), Error> {
        let path = self.shard_path(project, logstore, shard);
        let mut files = self
            .files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (project.to_owned(), logstore.to_owned(), shard);
        if !files.contains_key(&key) {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(io_err(parent))?;
            }
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io_err(&path))?;
            files.insert(key.clone(), f);
        }
        let mut buf = Vec::with_capacity(groups.iter().map(|g| g.data.len() + 12).sum());
        for g in groups {
            buf.extend_from_slice(&g.receive_time.to_le_bytes());
            buf.extend_from_slice(&(g.data.len() as u32).to_le_bytes());
            buf.extend_from_slice(&g.data);
        }
        match files.get_mut(&key) {
            Some(f) => f.write_all(&buf).map_err(io_err(&path)),
            None => Ok(()),
        }
    }

    /// Rewrites `meta.json` from `store` and removes data files of logstores/shards that
    /// no longer exist (so a re-created logstore does not inherit old data).
    pub(crate) fn save_meta(&self, store: &Store) -> Result<(), Error> {
        let meta = MetaFile {
            version: 1,
            projects: store
                .projects
                .iter()
                .map(|(pn, p)| {
                    let logstores = p
                        .logstores
                        .iter()
                        .map(|(ln, l)| {
                            let shards = l
                                .shards
                                .values()
                                .map(|s| MetaShard {
                                    id: s.id,
                                    readonly: s.readonly,
                                    begin_key: s.begin_hex(),
                                    end_key: s.end_hex(),
                                    create_time: s.create_time,
                                    base: s.base,
                                    first: s.first,
                                    parents: s.parents.clone(),
                                })
                                .collect();
                            let groups = l
                                .groups
                                .values()
                                .map(|g| MetaGroup {
                                    name: g.name.clone(),
                                    timeout: g.timeout_secs,
                                    order: g.order,
                                    checkpoints: g.checkpoints().clone(),
                                })
                                .collect();
                            (
                                ln.clone(),
                                MetaLogstore {
                                    ttl_days: l.ttl_days,
                                    next_shard_id: l.next_shard_id,
                                    shards,
                                    groups,
                                },
                            )
                        })
                        .collect();
                    (pn.clone(), MetaProject { logstores })
                })
                .collect(),
        };
        let path = self.root.join("meta.json");
        let tmp = self.root.join("meta.json.tmp");
        let text = serde_json::to_vec_pretty(&meta).map_err(|e| Error::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        fs::write(&tmp, text).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        self.prune(store);
        Ok(())
    }

    fn prune(&self, store: &Store) {
        let mut files = self
            .files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        files.retain(|(p, l, s), _| {
            store
                .projects
                .get(p)
                .and_then(|p| p.logstores.get(l))
                .is_some_and(|l| l.shards.contains_key(s))
        });
        let data = self.root.join("data");
        let Ok(projects) = fs::read_dir(&data) else {
            return;
        };
        for p in projects.flatten() {
            let pname = p.file_name().to_string_lossy().into_owned();
            let Ok(stores) = fs::read_dir(p.path()) else {
                continue;
            };
            for l in stores.flatten() {
                let lname = l.file_name().to_string_lossy().into_owned();
                let ls = store
                    .projects
                    .get(&pname)
                    .and_then(|p| p.logstores.get(&lname));
                let Some(ls) = ls else {
                    let _ = fs::remove_dir_all(l.path());
                    continue;
                };
                let Ok(shard_files) = fs::read_dir(l.path()) else {
                    continue;
                };
                for f in shard_files.flatten() {
                    let name = f.file_name().to_string_lossy().into_owned();
                    let id = name
                        .strip_suffix(".groups")
                        .and_then(|n| n.parse::<u32>().ok());
                    if id.is_some_and(|id| !ls.shards.contains_key(&id)) {
                        let _ = fs::remove_file(f.path());
                    }
                }
            }
        }
    }
}
