#!/usr/bin/env python3
"""credentials.py - Alibaba's official credential library (PyPI `alibabacloud_credentials`,
unchanged) against the sls-emulator's metadata service and STS, then the keys it got used by
the official Log Service SDK to sign a request the emulator checks.

Run by tests/it/python_sdk.rs. EMULATOR is http://127.0.0.1:PORT.

  ecs EMULATOR             EcsRamRoleCredentialsProvider, hardened (IMDSv1 disabled), role
                           discovered. The library has no setting for the metadata host (it
                           is always 100.100.100.200), so its private attribute is set to the
                           emulator: the only line here that reaches into the library.
  oidc EMULATOR TOKENFILE ROLE PROVIDER
                           OIDCRoleArnCredentialsProvider with sts_endpoint = EMULATOR.

Prints one JSON line: the provider's name, the key id, and how many shards ListShards
(signed with the key and its token, through HTTP_PROXY = EMULATOR) returned; or, if the
library refused, {"error": message}.
"""
import json
import sys

from alibabacloud_credentials.provider import (EcsRamRoleCredentialsProvider,
                                               OIDCRoleArnCredentialsProvider)
from aliyun.log import LogClient


def provider(args):
    kind, emulator = args[0], args[1]
    if kind == "ecs":
        p = EcsRamRoleCredentialsProvider(disable_imds_v1=True, async_update_enabled=False)
        p._EcsRamRoleCredentialsProvider__metadata_service_host = emulator
        return p
    token_file, role, provider_arn = args[2], args[3], args[4]
    return OIDCRoleArnCredentialsProvider(role_arn=role, oidc_provider_arn=provider_arn,
                                          oidc_token_file_path=token_file,
                                          role_session_name="fidelity",
                                          sts_endpoint=emulator)


def main():
    args = sys.argv[1:]
    emulator = args[1]
    try:
        creds = provider(args).get_credentials()
    except Exception as e:  # the library's refusal, reported for the test to read
        print(json.dumps({"error": str(e)}))
        return
    endpoint = emulator.split("://", 1)[1]
    client = LogClient(endpoint, creds.get_access_key_id(), creds.get_access_key_secret(),
                       securityToken=creds.get_security_token())
    shards = client.list_shards("proj", "store").get_shards_info()
    print(json.dumps({"provider": creds.get_provider_name(),
                      "access_key_id": creds.get_access_key_id(),
                      "shards": len(shards)}))


if __name__ == "__main__":
    main()
