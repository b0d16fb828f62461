"""Mitogen's linear strategy, loaded from the project venv (requirements.txt pins mitogen).

ansible.cfg selects it; ANSIBLE_STRATEGY=linear runs plain Ansible instead.
"""

import ansible_mitogen.loaders
import ansible_mitogen.strategy

Base = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, Base):  # type: ignore[misc,valid-type]
    pass
