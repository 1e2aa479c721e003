#!/usr/bin/env python3
"""fidelity.py - drive Alibaba's unchanged aliyun-log-python-sdk against the sls-emulator.

Run by tests/it/python_sdk.rs; each subcommand is one SDK role. The SDK reaches the emulator
through its HTTP proxy setting: the caller sets HTTP_PROXY=http://127.0.0.1:PORT and passes
--endpoint 127.0.0.1:PORT, so `requests` sends absolute-form request lines
(`GET http://proj.127.0.0.1:PORT/logstores/... HTTP/1.1`) to the emulator, which takes the
project from the Host header. No SDK code is patched.

  put          PutLogs N logs (each with a unique `seq`) via /shards/lb and /shards/route
  consume      run a ConsumerWorker (with --query: rule-based); append "<shard>\t<seq>" per log
               to --out; SIGTERM = clean stop
  checkpoints  print the group's checkpoints and each shard's end cursor as JSON (SDK calls)
  shards       ListShards: print {"shards": N}, or the SDK's error {"status", "code"}
"""
import argparse
import hashlib
import json
import signal
import threading
import time

from aliyun.log import LogClient, LogException, LogItem, PutLogsRequest
from aliyun.log.auth import AUTH_VERSION_4
from aliyun.log.consumer import ConsumerProcessorBase, ConsumerWorker, CursorPosition, LogHubConfig
from aliyun.log.pulllog_response import PullLogResponse


def auth(a):
    """v1 signing by default; --v4 REGION switches to SLS4-HMAC-SHA256."""
    if a.v4:
        return {"auth_version": AUTH_VERSION_4, "region": a.v4}
    return {}


def client(a):
    return LogClient(a.endpoint, a.ak_id, a.ak_secret, **auth(a))


def cmd_put(a):
    c = client(a)
    seq = a.first
    sent = 0
    batch = 0
    while sent < a.logs:
        n = min(a.batch, a.logs - sent)
        items = []
        for _ in range(n):
            item = LogItem()
            item.set_time(int(time.time()))
            item.set_contents([("seq", str(seq)), ("kind", "fidelity"), ("pad", "x" * (seq % 50))])
            items.append(item)
            seq += 1
        # Alternate the load-balanced and the hash-routed forms; source set so the SDK does
        # not try to discover the local IP through DNS.
        hash_key = None if batch % 2 == 0 else hashlib.md5(str(batch).encode()).hexdigest()
        req = PutLogsRequest(a.project, a.logstore, "fidelity", "10.0.0.1", items, hashKey=hash_key,
                             compress=a.compress != "none",
                             compress_type=None if a.compress == "none" else a.compress)
        c.put_logs(req)
        sent += n
        batch += 1
    print(json.dumps({"sent": sent}))


class Recorder(ConsumerProcessorBase):
    lock = threading.Lock()

    def __init__(self, out):
        super(Recorder, self).__init__()
        self.out = out

    def process(self, log_groups, check_point_tracker):
        logs = PullLogResponse.loggroups_to_flattern_list(log_groups, time_as_str=True, decode_bytes=True)
        lines = "".join("%s\t%s\n" % (self.shard_id, log["seq"]) for log in logs)
        with Recorder.lock:
            with open(self.out, "a") as f:
                f.write(lines)
                f.flush()
        self.save_checkpoint(check_point_tracker)


def cmd_consume(a):
    rule = {"query": a.query} if a.query else {}
    option = LogHubConfig(
        a.endpoint, a.ak_id, a.ak_secret, a.project, a.logstore, a.group, a.name,
        cursor_position=CursorPosition.BEGIN_CURSOR,
        heartbeat_interval=a.heartbeat, data_fetch_interval=a.fetch_interval,
        accept_compress_type=a.compress, **rule, **auth(a)
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    worker = ConsumerWorker(Recorder, option, args=(a.out,))
    worker.start()
    print("consumer %s started" % a.name, flush=True)
    while not stop.is_set() and worker.is_alive():
        stop.wait(0.2)
    worker.shutdown()
    worker.join(60)
    print("consumer %s stopped" % a.name, flush=True)


def cmd_checkpoints(a):
    c = client(a)
    shards = c.list_shards(a.project, a.logstore).get_shards_info()
    ends = {}
    for s in shards:
        sid = s["shardID"]
        ends[str(sid)] = c.get_cursor(a.project, a.logstore, sid, "end").get_cursor()
    cps = c.get_check_point_fixed(a.project, a.logstore, a.group).get_consumer_group_check_points()
    groups = [g.get_consumer_group_name() for g in c.list_consumer_group(a.project, a.logstore).get_consumer_groups()]
    print(json.dumps({"ends": ends, "checkpoints": cps, "groups": groups}))


def cmd_shards(a):
    try:
        shards = client(a).list_shards(a.project, a.logstore).get_shards_info()
    except LogException as e:
        print(json.dumps({"status": e.resp_status, "code": e.get_error_code(),
                          "message": e.get_error_message()}))
        return
    print(json.dumps({"shards": len(shards)}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--ak-id", required=True)
    p.add_argument("--ak-secret", required=True)
    p.add_argument("--project", required=True)
    p.add_argument("--logstore", required=True)
    p.add_argument("--v4", metavar="REGION", help="sign with v4 for this region")
    sub = p.add_subparsers(dest="cmd", required=True)
    put = sub.add_parser("put")
    put.add_argument("--logs", type=int, required=True)
    put.add_argument("--first", type=int, default=0)
    put.add_argument("--batch", type=int, default=50)
    put.add_argument("--compress", choices=["lz4", "zstd", "none"], default="lz4")
    con = sub.add_parser("consume")
    con.add_argument("--group", required=True)
    con.add_argument("--name", required=True)
    con.add_argument("--out", required=True)
    con.add_argument("--heartbeat", type=int, default=1)
    con.add_argument("--fetch-interval", type=float, default=0.2)
    con.add_argument("--compress", choices=["lz4", "zstd"], default="lz4")
    con.add_argument("--query", help="SPL for rule-based consumption (the SDK's LogHubConfig query=)")
    cps = sub.add_parser("checkpoints")
    cps.add_argument("--group", required=True)
    sub.add_parser("shards")
    a = p.parse_args()
    {"put": cmd_put, "consume": cmd_consume, "checkpoints": cmd_checkpoints,
     "shards": cmd_shards}[a.cmd](a)


if __name__ == "__main__":
    main()
