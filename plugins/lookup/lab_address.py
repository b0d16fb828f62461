"""lab_address: the IP address of a lab container on its network, for SSH.

    ansible_host: "{{ lookup('lab_address', 'tblab-app1') }}"

Each host names its own container literally, so that delegate_to reaches the
right one. The engine is $LAB_ENGINE (podman by default). An address is asked
once per ansible-playbook run: it is kept in the run's local temporary
directory, which every worker process shares and ansible removes at exit (the
engine would otherwise be asked on every task of every host).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile

from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = """
name: lab_address
short_description: IP address of a lab container
description: Asks the container engine (LAB_ENGINE, default podman) for the container's address on its network.
options:
  _terms:
    description: Container names.
    required: true
"""


def _cache_file(engine: str) -> str:
    return os.path.join(C.DEFAULT_LOCAL_TMP, f"lab_address.{engine}.json")


def _cached(engine: str) -> dict[str, str]:
    try:
        with open(_cache_file(engine)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _remember(engine: str, name: str, address: str) -> None:
    known = {**_cached(engine), name: address}
    fd, tmp = tempfile.mkstemp(dir=C.DEFAULT_LOCAL_TMP)
    with os.fdopen(fd, "w") as f:
        json.dump(known, f)
    os.replace(tmp, _cache_file(engine))


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        engine = os.environ.get("LAB_ENGINE", "podman")
        known = _cached(engine)
        out = []
        for name in terms:
            if name in known:
                out.append(known[name])
                continue
            proc = subprocess.run(
                [engine, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name],
                capture_output=True, text=True, check=False,
            )
            addresses = proc.stdout.split()
            if proc.returncode != 0 or not addresses:
                raise AnsibleError(f"lab_address: container {name} has no address ({proc.stderr.strip() or 'not on a network'}): is the lab up?")
            _remember(engine, name, addresses[0])
            out.append(addresses[0])
        return out
