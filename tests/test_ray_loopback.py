"""A local search's Ray listens on loopback only: nothing of it is reachable from the machine's network."""

import ipaddress
import json
import subprocess
import sys

from tests.conftest import ROOT

# Run in a fresh process: the setting is read when Ray is imported. The listeners are read from /proc
# (Linux): every listening TCP socket held by the driver or a process it started.
PROBE = """
import json, os, socket, struct
from pathlib import Path
from tuner.commands.search import keep_local_ray_on_loopback
keep_local_ray_on_loopback()
import ray
from tuner.search.cluster import connect_ray
assert connect_ray(None)
ray.get(ray.remote(lambda: 1).remote())  # a worker process is up too

def descendants(pid):
    out = {pid}
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        for c in child.read_text().split():
            out |= descendants(int(c))
    return out

inodes = set()
for pid in descendants(os.getpid()):
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
listening = set()
for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
    for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
            raw = bytes.fromhex(fields[1].split(":")[0])
            words = struct.unpack("<" + "I" * (len(raw) // 4), raw)
            listening.add(socket.inet_ntop(family, struct.pack(">" + "I" * len(words), *words)))
ray.shutdown()
print(json.dumps(sorted(listening)))
"""


def test_a_local_ray_listens_on_loopback_only():
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    addresses = json.loads(done.stdout.strip().splitlines()[-1])
    assert addresses, "the probe saw Ray's listeners"
    for address in addresses:
        ip = ipaddress.ip_address(address)
        ip = ip.ipv4_mapped or ip if isinstance(ip, ipaddress.IPv6Address) else ip
        assert ip.is_loopback, f"Ray listens on {address}"
