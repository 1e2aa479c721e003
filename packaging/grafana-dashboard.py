#!/usr/bin/env python3
"""The Grafana dashboard for siemfwd's metrics, written as code so that its 20-odd panels stay
consistent (one data source variable, one instance filter, one rate interval).

    python3 packaging/grafana-dashboard.py > packaging/grafana-dashboard.json

tests/it/prometheus.rs checks that the JSON is this script's output, and evaluates every query
on a real Prometheus scraping siemfwd (each must have data).
"""
import json
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'instance=~"$instance"'
panels = []
y = 0
pid = 0
def panel(title, kind, targets, w=12, h=8, unit=None, desc="", x=None, extra=None):
    global y, pid, cur_x
    pid += 1
    p = {"id": pid, "type": kind, "title": title, "description": desc, "datasource": DS,
         "gridPos": {"h": h, "w": w, "x": x if x is not None else 0, "y": y},
         "targets": [{"datasource": DS, "expr": e, "legendFormat": l, "refId": chr(65 + i)}
                     for i, (e, l) in enumerate(targets)],
         "fieldConfig": {"defaults": {}, "overrides": []}, "options": {}}
    if unit:
        p["fieldConfig"]["defaults"]["unit"] = unit
    if kind == "timeseries":
        p["fieldConfig"]["defaults"]["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never"}
        p["options"] = {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}}
    if kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "background", "graphMode": "none"}
    if extra:
        for k, v in extra.items():
            p["fieldConfig"]["defaults"][k] = v
    panels.append(p)
    return p
def row(title):
    global y, pid
    pid += 1
    panels.append({"id": pid, "type": "row", "title": title, "collapsed": False, "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
    y += 1
RI = "$__rate_interval"
red_green = {"thresholds": {"mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}]}}
lag_thr = {"thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "orange", "value": 60}, {"color": "red", "value": 600}]}}

row("Health")
panel("Healthy", "stat", [(f'min(siemfwd_healthy{{{SEL}}})', "")], w=4, h=4, x=0,
      desc="1 while /health answers 200: the consumer group answers heartbeats and Log Service accepts the credentials.", extra=red_green)
panel("Shards assigned", "stat", [(f'min(siemfwd_source_assigned{{{SEL}}})', "")], w=4, h=4, x=4,
      desc="1 once the source has its shards (joined its group, or opened its files).", extra=red_green)
panel("SIEM unreachable for", "stat", [(f'max((time() - siemfwd_sink_down_since_timestamp_seconds{{{SEL}}}) and siemfwd_sink_down_since_timestamp_seconds{{{SEL}}} > 0) or vector(0)', "")],
      w=4, h=4, x=8, unit="s", desc="How long the sink has had no working connection (0: it has one).",
      extra={"thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}]}})
panel("Oldest unread", "stat", [(f'max(siemfwd_shard_lag_seconds{{{SEL}}})', "")], w=4, h=4, x=12, unit="s",
      desc="The largest lag of a held shard: seconds since the oldest log group not yet delivered and stored was received.", extra=lag_thr)
panel("Log groups behind", "stat", [(f'sum(siemfwd_shard_lag_log_groups{{{SEL}}})', "")], w=4, h=4, x=16,
      desc="Log groups between the stored positions and the shards' ends, over every held shard.")
panel("Version", "stat", [(f'count by (version) (siemfwd_build_info{{{SEL}}})', "{{version}}")], w=4, h=4, x=20,
      desc="Processes per siemfwd version.")
panels[-1]["options"]["textMode"] = "name"
y += 4

row("Throughput")
panel("Records per second", "timeseries", [
    (f'sum(rate(siemfwd_records_in_total{{{SEL}}}[{RI}]))', "read"),
    (f'sum(rate(siemfwd_messages_delivered_total{{{SEL}}}[{RI}]))', "delivered"),
    (f'sum(rate(siemfwd_records_filtered_total{{{SEL}}}[{RI}]))', "filtered (transforms)"),
    (f'sum(rate(siemfwd_records_dropped_total{{{SEL}}}[{RI}]))', "dropped (when_blocked = drop)"),
    (f'sum(rate(siemfwd_records_refused_total{{{SEL}}}[{RI}]))', "refused (formatter)"),
], x=0, unit="ops", desc="Read from the source, delivered to the SIEM (acknowledged), and the ones left out on purpose.")
panel("Bytes per second", "timeseries", [
    (f'sum(rate(siemfwd_bytes_in_total{{{SEL}}}[{RI}]))', "read (raw logs)"),
    (f'sum(rate(siemfwd_bytes_sent_total{{{SEL}}}[{RI}]))', "sent (messages)"),
    (f'sum(rate(siemfwd_bytes_delivered_total{{{SEL}}}[{RI}]))', "delivered (messages)"),
    (f'sum(rate(siemfwd_bytes_dropped_total{{{SEL}}}[{RI}]))', "dropped"),
], x=12, unit="Bps", desc="Raw log bytes read from the source; message bytes (without framing) written to the SIEM, acknowledged by it, and dropped.")
y += 8

row("Lag")
panel("Lag per shard (seconds)", "timeseries", [
    (f'siemfwd_shard_lag_seconds{{{SEL}}}', "{{logstore}} shard {{shard}}"),
], x=0, unit="s", desc="Per held shard, every source.sls.lag_interval: seconds since the oldest log group after the stored position was received. 0: everything written is delivered.")
panel("Lag per shard (log groups)", "timeseries", [
    (f'siemfwd_shard_lag_log_groups{{{SEL}}}', "{{logstore}} shard {{shard}}"),
], x=12, desc="Log groups between each held shard's stored position and its end.")
y += 8
panel("Records read per shard", "timeseries", [
    (f'sum by (logstore, shard) (rate(siemfwd_shard_records_in_total{{{SEL}}}[{RI}]))', "{{logstore}} shard {{shard}}"),
], x=0, unit="ops", desc="Which shards carry the load, and which process holds them.")
panel("Shards held per process", "timeseries", [
    (f'sum by (instance) (siemfwd_shard_held{{{SEL}}})', "{{instance}}"),
], x=12, desc="How the consumer group shares the shards; a step is a rebalance or a failover.")
y += 8

row("Checkpoints and the consumer group")
panel("Checkpoints per second", "timeseries", [
    (f'sum(rate(siemfwd_sls_checkpoints_committed_total{{{SEL}}}[{RI}]))', "committed"),
    (f'sum(rate(siemfwd_sls_checkpoint_failures_total{{{SEL}}}[{RI}]))', "failed"),
    (f'sum(rate(siemfwd_sls_heartbeat_failures_total{{{SEL}}}[{RI}]))', "heartbeat failures"),
], x=0, unit="ops")
panel("Checkpoint age per shard", "timeseries", [
    (f'siemfwd_shard_checkpoint_age_seconds{{{SEL}}}', "{{logstore}} shard {{shard}}"),
], x=12, unit="s", desc="Since this process last stored the shard's checkpoint; grows while nothing is delivered (an idle shard is committed on pipeline.checkpoint_interval too).")
y += 8

row("Sink and pipeline")
panel("In flight", "timeseries", [
    (f'sum(siemfwd_in_flight_bytes{{{SEL}}})', "in flight"),
    (f'sum(siemfwd_in_flight_budget_bytes{{{SEL}}})', "budget (pipeline.max_in_flight_bytes)"),
], x=0, unit="bytes", desc="Message bytes read and not yet delivered; at the budget, reading waits for the SIEM.")
panel("Retries, reconnects and changes to messages", "timeseries", [
    (f'sum(rate(siemfwd_reconnects_total{{{SEL}}}[{RI}]))', "reconnects"),
    (f'sum(rate(siemfwd_messages_resent_total{{{SEL}}}[{RI}]))', "messages resent"),
    (f'sum(rate(siemfwd_sls_request_retries_total{{{SEL}}}[{RI}]))', "Log Service requests retried"),
    (f'sum(rate(siemfwd_stream_truncated_total{{{SEL}}}[{RI}])) + sum(rate(siemfwd_udp_truncated_total{{{SEL}}}[{RI}]))', "truncated"),
    (f'sum(rate(siemfwd_newlines_escaped_total{{{SEL}}}[{RI}]))', "newlines escaped"),
    (f'sum(rate(siemfwd_header_fields_sanitized_total{{{SEL}}}[{RI}]))', "header fields sanitized"),
], x=12, unit="ops")
y += 8

row("Log Service reads")
panel("PullLogs per second", "timeseries", [
    (f'sum(rate(siemfwd_sls_pulls_total{{{SEL}}}[{RI}]))', "answered"),
    (f'sum(rate(siemfwd_sls_pulls_ahead_total{{{SEL}}}[{RI}]))', "ahead"),
    (f'sum(rate(siemfwd_sls_pulls_ahead_unused_total{{{SEL}}}[{RI}]))', "ahead, unused"),
    (f'sum(rate(siemfwd_sls_idle_waits_total{{{SEL}}}[{RI}]))', "idle waits"),
], x=0, unit="ops")
panel("Server-side rules (query / processor)", "timeseries", [
    (f'sum(rate(siemfwd_sls_scanned_lines_total{{{SEL}}}[{RI}]))', "scanned"),
    (f'sum(rate(siemfwd_sls_returned_lines_total{{{SEL}}}[{RI}]))', "returned"),
    (f'sum(rate(siemfwd_sls_failed_lines_total{{{SEL}}}[{RI}]))', "failed"),
], x=12, unit="ops", desc="With source.sls.query or processor: logs the server scanned, returned, and could not evaluate.")
y += 8

dash = {
    "__inputs": [],
    "title": "siemfwd",
    "uid": "siemfwd",
    "description": "siemfwd: Log Service (or files) to a SIEM over syslog. Metrics from [metrics] address (docs/configuration.md).",
    "tags": ["siemfwd", "syslog", "siem"],
    "timezone": "",
    "editable": True,
    "schemaVersion": 39,
    "version": 1,
    "refresh": "30s",
    "time": {"from": "now-6h", "to": "now"},
    "templating": {"list": [
        {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus", "current": {}, "hide": 0},
        {"name": "instance", "label": "Instance", "type": "query", "datasource": DS,
         "query": {"query": "label_values(siemfwd_build_info, instance)", "refId": "instance"},
         "definition": "label_values(siemfwd_build_info, instance)",
         "includeAll": True, "multi": True, "allValue": ".*", "current": {}, "refresh": 2, "hide": 0, "sort": 1},
    ]},
    "annotations": {"list": []},
    "panels": panels,
}
print(json.dumps(dash, indent=2))
