"""What differs between the conda versions the roles drive."""

from __future__ import annotations


def conda_version(host, conda: str) -> tuple[int, ...]:
    return tuple(int(x) for x in host.check_output(f"{conda} --version").split()[-1].split(".")[:3])


def auto_activate_key(host, conda: str) -> str:
    """conda 25.5 renamed auto_activate_base to auto_activate; 25.1.1 knows only the old key."""
    return "auto_activate" if conda_version(host, conda) >= (25, 5) else "auto_activate_base"
