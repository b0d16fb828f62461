"""lab_address: the IP address of a lab container on its network, for SSH.

    ansible_host: "{{ lookup('lab_address', 'tblab-app1') }}"

Each host names its own container literally, so that delegate_to reaches the
right one. The engine is $LAB_ENGINE (podman by default).
"""

from __future__ import annotations

import os
import subprocess

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


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        engine = os.environ.get("LAB_ENGINE", "podman")
        out = []
        for name in terms:
            proc = subprocess.run(
                [engine, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name],
                capture_output=True, text=True, check=False,
            )
            addresses = proc.stdout.split()
            if proc.returncode != 0 or not addresses:
                raise AnsibleError(f"lab_address: container {name} has no address ({proc.stderr.strip() or 'not on a network'}): is the lab up?")
            out.append(addresses[0])
        return out
