#!/usr/bin/env python3
"""Write ActionTrail-like audit events as NDJSON (one JSON object a line:
__time__, __topic__, __source__, __tag__:*, then the fields in order).

Two shapes of the same events:
- flat (default): the event's fields already split (`event.eventName`, ...),
  examples/logs/actiontrail.ndjson;
- `--raw`: as Log Service really delivers ActionTrail, the whole event one JSON
  string in the field `event` (with `eventRW`), for `parse_json`:
  examples/logs/actiontrail-raw.ndjson.

Deterministic (fixed seed), so the samples in the repository can be rebuilt
byte for byte:
  python3 scripts/gen-sample-logs.py > examples/logs/actiontrail.ndjson
  python3 scripts/gen-sample-logs.py --raw > examples/logs/actiontrail-raw.ndjson
"""
import json
import random
import sys

rng = random.Random(20261130)
START = 1_795_000_000  # 2026-11-18

USERS = [
    ("RAMUser", "alice", "2087341"), ("RAMUser", "bob.chen", "2087342"),
    ("RAMUser", "王伟", "2087343"), ("AssumedRole", "ops-automation", "3003001"),
    ("root-account", "root", "1000001"), ("RAMUser", "müller", "2087344"),
]
EVENTS = [
    ("ConsoleSignin", "signin.aliyun.com", "ConsoleSignin", "ims"),
    ("DescribeInstances", "ecs.aliyuncs.com", "ApiCall", "Ecs"),
    ("StopInstance", "ecs.aliyuncs.com", "ApiCall", "Ecs"),
    ("CreateAccessKey", "ram.aliyuncs.com", "ApiCall", "Ram"),
    ("AttachPolicyToUser", "ram.aliyuncs.com", "ApiCall", "Ram"),
    ("AuthorizeSecurityGroup", "ecs.aliyuncs.com", "ApiCall", "Ecs"),
    ("PutBucketAcl", "oss.aliyuncs.com", "ApiCall", "Oss"),
    ("DeleteLogStore", "log.aliyuncs.com", "ApiCall", "Sls"),
]
REGIONS = ["cn-hangzhou", "cn-shanghai", "cn-beijing", "ap-southeast-1", "eu-central-1"]
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "aliyun-cli/3.0.220 (linux; amd64) Go/1.22",
    "AlibabaCloud (Linux; x64) Python/3.11.7 Core/2.16.0 python-requests/2.32",
    "Terraform/1.9.8 terraform-provider-alicloud/1.235.0",
]


def event(i):
    t = START + i * 7 + rng.randint(0, 6)
    kind, user, uid = rng.choice(USERS)
    name, source, etype, service = rng.choice(EVENTS)
    region = rng.choice(REGIONS)
    ip = f"{rng.choice([47, 101, 121, 198])}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    failed = rng.random() < 0.12
    rec = {
        "__time__": str(t),
        "__topic__": "actiontrail_audit_event",
        "__source__": "actiontrail",
        "__tag__:__receive_time__": str(t + rng.randint(1, 4)),
        "event.eventId": "%08X-%04X-%04X-%04X-%012X" % tuple(rng.getrandbits(b) for b in (32, 16, 16, 16, 48)),
        "event.eventName": name,
        "event.eventSource": source,
        "event.eventType": etype,
        "event.eventVersion": "1",
        "event.acsRegion": region,
        "event.requestId": "%08X-%04X-%04X-%04X-%012X" % tuple(rng.getrandbits(b) for b in (32, 16, 16, 16, 48)),
        "event.serviceName": service,
        "event.sourceIpAddress": ip,
        "event.userAgent": rng.choice(AGENTS),
        "event.userIdentity.type": kind,
        "event.userIdentity.accountId": "1234567890123456",
        "event.userIdentity.principalId": uid,
        "event.userIdentity.userName": user,
        "event.eventTime": f"{t}",
        "event.isGlobal": "false",
    }
    if name == "ConsoleSignin":
        rec["event.additionalEventData.loginAccount"] = f"{user}@1234567890123456.onaliyun.com"
        rec["event.additionalEventData.MFAUsed"] = rng.choice(["true", "false"])
    if name in ("DescribeInstances", "StopInstance"):
        rec["event.requestParameters.RegionId"] = region
        rec["event.requestParameters.InstanceId"] = "i-bp1%014x" % rng.getrandbits(56)
    if name == "AuthorizeSecurityGroup":
        rec["event.requestParameters.PortRange"] = rng.choice(["22/22", "3389/3389", "1/65535"])
        rec["event.requestParameters.SourceCidrIp"] = rng.choice(["0.0.0.0/0", "10.0.0.0/8"])
    if failed:
        rec["event.errorCode"] = rng.choice(["Forbidden.RAM", "InvalidAccessKeyId.NotFound", "Throttling.User"])
        rec["event.errorMessage"] = "User not authorized to operate on the specified resource.\nRequestId: " + rec["event.requestId"]
    return rec


def raw(rec):
    """The same event as Log Service delivers ActionTrail: `event` one JSON string."""
    out, ev = {}, {}
    for k, v in rec.items():
        if not k.startswith("event."):
            out[k] = v
            continue
        node = ev
        *parents, leaf = k[len("event."):].split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    ev["eventRW"] = "Read" if ev["eventName"].startswith("Describe") else "Write"
    ev["isGlobal"] = ev["isGlobal"] == "true"
    out["event"] = json.dumps(ev, ensure_ascii=False, separators=(",", ":"))
    return out


def main():
    args = [a for a in sys.argv[1:] if a != "--raw"]
    shape = raw if "--raw" in sys.argv[1:] else (lambda r: r)
    n = int(args[0]) if args else 200
    for i in range(n):
        sys.stdout.write(json.dumps(shape(event(i)), ensure_ascii=False, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
