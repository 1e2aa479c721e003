#!/usr/bin/env python3
"""The seed program: Alibaba's consumer-group sample "sync data to syslog", rebuilt for the
benchmark from its published description (project notes, shared/sls-protocol.md section 6).

It is deliberately the sample's shape, defects included, because the benchmark measures what
users run today: the official SDK's ConsumerWorker with a SyncData processor that flattens
every pulled batch, opens one new syslog connection per batch, writes one RFC 5424 message per
log with the SDK's own SyslogClientRFC5424 (LF framing, no STRUCTURED-DATA), closes the
connection and saves the checkpoint.

Settings come from the environment, as in the sample: SLS_ENDPOINT, SLS_AK_ID, SLS_AK_KEY,
SLS_PROJECT, SLS_LOGSTORE, SLS_CG. The sample keeps its syslog settings in a dict in the
source; here they come from SYSLOG_HOST, SYSLOG_PORT (514), SYSLOG_PROTOCOL (tcp | udp | tls),
SYSLOG_SEP (||), SYSLOG_CERT_PATH, SYSLOG_TIMEOUT (120), SYSLOG_FACILITY (1 = user),
SYSLOG_SEVERITY (6 = info), SYSLOG_HOSTNAME (this host's FQDN), SYSLOG_TAG (none) so the
benchmark can point it at its receiver without editing the file.
"""

import logging
import logging.handlers
import os
import signal
import socket
import sys
import time
from datetime import datetime

from aliyun.log import PullLogResponse
from aliyun.log.consumer import (ConsumerProcessorBase, ConsumerWorker, CursorPosition,
                                 LogHubConfig)
from aliyun.log.ext.syslogclient import SyslogClientRFC5424 as SyslogClient

root = logging.getLogger()
root.setLevel(logging.INFO)
_fmt = logging.Formatter('%(asctime)s %(threadName)s %(levelname)s %(message)s')
_file = logging.handlers.RotatingFileHandler(
    '{0}_{1}.log'.format(os.path.basename(__file__), os.getpid()),
    maxBytes=100 * 1024 * 1024, backupCount=5)
_file.setFormatter(_fmt)
root.addHandler(_file)
_err = logging.StreamHandler(sys.stderr)
_err.setFormatter(_fmt)
root.addHandler(_err)
logger = logging.getLogger(__name__)


class SyncData(ConsumerProcessorBase):
    """Ships every pulled batch to the syslog server, one connection per batch."""

    def __init__(self, target_setting=None):
        super(SyncData, self).__init__()
        assert target_setting, ValueError("You need to configure settings of remote target")
        assert isinstance(target_setting, dict), ValueError(
            "The settings should be dict to include necessary address and confidentials.")
        self.option = target_setting
        self.protocol = self.option['protocol']
        self.timeout = int(self.option.get('timeout', 120))
        self.sep = self.option.get('sep', "||")
        self.host = self.option["host"]
        self.port = int(self.option.get('port', 514))
        self.cert_path = self.option.get('cert_path', None)
        self.facility = int(self.option.get('facility', 1))
        self.severity = int(self.option.get('severity', 6))
        self.hostname = self.option.get('hostname') or socket.getfqdn()
        self.tag = self.option.get('tag') or None

        # One test connection; a failure here makes the worker give up.
        try:
            client = SyslogClient(self.host, self.port, proto=self.protocol,
                                  timeout=self.timeout, cert_path=self.cert_path)
            client.close()
        except Exception as ex:
            logger.error("fail to connect remote syslogserver, error: %s", ex)
            raise ex

    def process(self, log_groups, check_point_tracker):
        logs = PullLogResponse.loggroups_to_flattern_list(log_groups, time_as_str=True,
                                                          decode_bytes=True)
        logger.info("Get data from shard %s, log count: %s", self.shard_id, len(logs))
        try:
            with SyslogClient(self.host, self.port, proto=self.protocol, timeout=self.timeout,
                              cert_path=self.cert_path) as client:
                for log in logs:
                    timestamp = datetime.fromtimestamp(int(log[u'__time__']))
                    del log['__time__']
                    message = ''
                    for k, v in log.items():
                        message += u'{0}{1}={2}'.format(self.sep, k, v)
                    client.log(message, facility=self.facility, severity=self.severity,
                               timestamp=timestamp, program=self.tag, hostname=self.hostname)
        except Exception as err:
            logger.debug("Failed to connect to remote syslog server (%s). Exception: %s",
                         self.option, err)
            raise err
        logger.info("Complete send data to remote")
        self.save_checkpoint(check_point_tracker)

    def shutdown(self, check_point_tracker):
        self.save_checkpoint(check_point_tracker)


def get_option():
    endpoint = os.environ.get('SLS_ENDPOINT', '')
    access_key_id = os.environ.get('SLS_AK_ID', '')
    access_key = os.environ.get('SLS_AK_KEY', '')
    project = os.environ.get('SLS_PROJECT', '')
    logstore = os.environ.get('SLS_LOGSTORE', '')
    consumer_group = os.environ.get('SLS_CG', '')
    assert endpoint and access_key_id and access_key and project and logstore and consumer_group, \
        ValueError("endpoint/access_id/key/project/logstore/consumer_group name cannot be empty")

    consumer_name = "{0}-{1}".format(consumer_group, os.getpid())
    cursor_start_time = "2019-1-1 0:0:0+8:00"
    heartbeat_interval = 20
    data_fetch_interval = 1

    option = LogHubConfig(endpoint, access_key_id, access_key, project, logstore,
                          consumer_group, consumer_name,
                          cursor_position=CursorPosition.SPECIAL_TIMER_CURSOR,
                          cursor_start_time=cursor_start_time,
                          heartbeat_interval=heartbeat_interval,
                          data_fetch_interval=data_fetch_interval)

    settings = {
        "host": os.environ["SYSLOG_HOST"],
        "port": int(os.environ.get("SYSLOG_PORT", "514")),
        "protocol": os.environ.get("SYSLOG_PROTOCOL", "tcp"),
        "sep": os.environ.get("SYSLOG_SEP", "||"),
        "cert_path": os.environ.get("SYSLOG_CERT_PATH") or None,
        "timeout": int(os.environ.get("SYSLOG_TIMEOUT", "120")),
        "facility": int(os.environ.get("SYSLOG_FACILITY", "1")),
        "severity": int(os.environ.get("SYSLOG_SEVERITY", "6")),
        "hostname": os.environ.get("SYSLOG_HOSTNAME") or None,
        "tag": os.environ.get("SYSLOG_TAG") or None,
    }
    return option, settings


def main():
    option, settings = get_option()
    logger.info("*** start to consume data...")
    worker = ConsumerWorker(SyncData, option, args=(settings,))
    worker.start()

    # The sample sleeps, then shuts down; the benchmark stops it with SIGTERM instead.
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    while not stop:
        time.sleep(0.2)
    worker.shutdown()
    time.sleep(1)


if __name__ == '__main__':
    main()
