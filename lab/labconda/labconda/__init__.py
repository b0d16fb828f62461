"""labconda: the lab's test double of the conda CLI, built on py-rattler.

It is NOT Anaconda's conda. It implements the subset of conda's command line
(see conda-cli-contract.md) that the project's Ansible roles use, with the same
exit codes, JSON shapes and error texts, on top of the real conda ecosystem
engine py-rattler (solve, package cache, install).
"""
try:
    from ._version import __version__
except ImportError:  # running from the source tree
    __version__ = "26.7.1"

LAB_DOUBLE_NOTE = (
    "labconda is a lab test double of the conda CLI built on py-rattler; "
    "it is not Anaconda's conda and implements only the subcommands the "
    "project's roles use."
)
