"""podman exec through Mitogen, for the lab fleet.

Mitogen's own podman transport declares no options, so for a delegated task it
takes the target's address from the play context, untemplated (the lab's
ansible_host is a template). Declaring the options lets Ansible template them
like any connection's. Runs under the mitogen_linear strategy (ansible.cfg).
"""

from __future__ import annotations

DOCUMENTATION = """
name: lab_podman
short_description: Run tasks in podman containers through Mitogen
description:
  - One Python interpreter per container, kept for the whole run (C(podman exec -i)).
  - Needs the mitogen_linear strategy.
author: token-billing provisioning
options:
  host:
    description: The name or ID of the container.
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: delegated_vars['ansible_host']
  remote_user:
    description: User inside the container.
    vars:
      - name: ansible_user
"""

import ansible_mitogen.connection  # noqa: E402


class Connection(ansible_mitogen.connection.Connection):  # type: ignore[misc]
    transport = "podman"
