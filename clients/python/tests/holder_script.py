"""A holder for the SIGKILL test: acquires a lease with an action (heartbeat running), records
a checkpoint, prints the lease as one JSON line, then sleeps until it is killed.

Usage: python3 holder_script.py <base_url> <path> <kind> <holder>
"""

import json
import sys
import time

from lease_client import LeaseClient


def main() -> None:
    base_url, path, kind, holder = sys.argv[1:5]
    client = LeaseClient(base_url)
    with client.lease([path], holder=holder, ttl_ms=1000, action={"kind": kind, "payload": {"step": 1}}) as held:
        held.checkpoint({"step": "half-done"})
        # Wait for the checkpoint to ride a heartbeat, then say who we are.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and (held.lease.get("action") or {}).get("progress") is None:
            time.sleep(0.05)
        print(json.dumps(held.lease), flush=True)
        time.sleep(600)


if __name__ == "__main__":
    main()
