"""Manages keys in a PyKMIP server as a customer's administrator would.

usage: kmipctl.py HOST PORT CERT KEY CA COMMAND [ARGS]
  create LENGTH MASK POLICY ACTIVATE   prints the new key's unique identifier
                                       (MASK: comma-separated usage names,
                                       ACTIVATE: yes or no)
  activate UID
  revoke UID REASON                    REASON: compromise or superseded
  destroy UID
"""
import sys

from kmip import enums
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
            uid = client.create(
                enums.CryptographicAlgorithm.AES, int(length),
                operation_policy_name=policy,
                cryptographic_usage_mask=[
                    enums.CryptographicUsageMask[m] for m in mask.split(",")
                ],
            )
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
        else:
            raise SystemExit("unknown command " + command)


if __name__ == "__main__":
    main(sys.argv[1:])
