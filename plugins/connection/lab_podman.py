"""containers.podman.podman with pipelining, for the lab fleet.

The collection's plugin runs `podman exec` without `-i`, so it cannot feed a
module on stdin and Ansible falls back to copying every module into the
container first (three extra podman calls per task). Passing stdin through
makes pipelining work: one `podman exec -i` per task.
"""

from __future__ import annotations

DOCUMENTATION = """
name: lab_podman
short_description: Run tasks in podman containers, with pipelining
description:
  - The containers.podman.podman connection plus pipelining (C(podman exec -i)).
author: token-billing provisioning
extends_documentation_fragment:
  - connection_pipelining
options:
  remote_addr:
    description: The ID or name of the container.
    default: inventory_hostname
    vars:
      - name: ansible_host
      - name: inventory_hostname
      - name: ansible_podman_host
  remote_user:
    description: User inside the container.
    vars:
      - name: ansible_user
  podman_executable:
    description: podman binary.
    default: podman
    vars:
      - name: ansible_podman_executable
    env:
      - name: ANSIBLE_PODMAN_EXECUTABLE
  podman_extra_args:
    description: Extra arguments passed to podman.
    default: ''
    vars:
      - name: ansible_podman_extra_args
    env:
      - name: ANSIBLE_PODMAN_EXTRA_ARGS
"""

from ansible_collections.containers.podman.plugins.connection.podman import Connection as PodmanConnection  # noqa: E402


class Connection(PodmanConnection):
    transport = "lab_podman"
    has_pipelining = True

    def _podman(self, cmd, cmd_args=None, in_data=None, use_container_id=True):
        if in_data is not None and isinstance(cmd, list) and cmd[:1] == ["exec"]:
            cmd = ["exec", "-i", *cmd[1:]]
        return super()._podman(cmd, cmd_args, in_data, use_container_id)
