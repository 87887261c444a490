"""Manages keys in a PyKMIP server as a customer's administrator would.

usage: kmipctl.py HOST PORT CERT KEY CA COMMAND [ARGS]
  create LENGTH MASK POLICY ACTIVATE   prints the new key's unique identifier
                                       (MASK: comma-separated usage names,
                                       ACTIVATE: yes or no)
  activate UID
  revoke UID REASON                    REASON: compromise or superseded
  destroy UID
  wait-access UID allowed|denied       waits (up to 60 s) until Get Attributes
                                       of the key is allowed, or refused
"""
import sys
import time

from kmip import enums
from kmip.pie import exceptions
from kmip.core import objects as cobjects
from kmip.pie.client import ProxyKmipClient


def main(argv):
    host, port, cert, key, ca, command = argv[:6]
    args = argv[6:]
    client = ProxyKmipClient(
        hostname=host, port=int(port), cert=cert, key=key, ca=ca,
        config_file="/dev/null",
    )
    with client:
        if command == "create":
            length, mask, policy, activate = args
            # Not client.create, which always adds ENCRYPT and DECRYPT to
            # the usage mask.
            factory = client.attribute_factory
            attrs = [
                factory.create_attribute(
                    enums.AttributeType.CRYPTOGRAPHIC_ALGORITHM,
                    enums.CryptographicAlgorithm.AES),
                factory.create_attribute(
                    enums.AttributeType.CRYPTOGRAPHIC_LENGTH, int(length)),
                factory.create_attribute(
                    enums.AttributeType.CRYPTOGRAPHIC_USAGE_MASK,
                    [enums.CryptographicUsageMask[m]
                     for m in mask.split(",")]),
                factory.create_attribute(
                    enums.AttributeType.OPERATION_POLICY_NAME, policy),
            ]
            result = client.proxy.create(
                enums.ObjectType.SYMMETRIC_KEY,
                cobjects.TemplateAttribute(attributes=attrs))
            if result.result_status.value != enums.ResultStatus.SUCCESS:
                raise SystemExit("create: " + str(result.result_message))
            uid = result.uuid
            if activate == "yes":
                client.activate(uid)
            print(uid)
        elif command == "activate":
            client.activate(args[0])
        elif command == "revoke":
            reason = {
                "compromise": enums.RevocationReasonCode.KEY_COMPROMISE,
                "superseded": enums.RevocationReasonCode.SUPERSEDED,
            }[args[1]]
            client.revoke(reason, args[0])
        elif command == "destroy":
            client.destroy(args[0])
        elif command == "wait-access":
            uid, want = args
            deadline = time.time() + 60
            while True:
                try:
                    client.get_attributes(uid, ["State"])
                    allowed = True
                except exceptions.KmipOperationFailure as e:
                    if e.reason != enums.ResultReason.PERMISSION_DENIED:
                        raise
                    allowed = False
                if allowed == (want == "allowed"):
                    break
                if time.time() > deadline:
                    raise SystemExit("access still not " + want)
                time.sleep(0.05)
        else:
            raise SystemExit("unknown command " + command)


if __name__ == "__main__":
    main(sys.argv[1:])
