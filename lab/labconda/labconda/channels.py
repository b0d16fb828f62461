"""Channel name <-> URL resolution (channel_alias, custom_channels, defaults)."""
from __future__ import annotations

import os
from urllib.parse import urlparse

from .config import Config

SUBDIRS = ("linux-64", "noarch")


def channel_urls(cfg: Config, spec: str) -> list[str]:
    """Base URLs (without subdir) a channel spec stands for."""
    spec = str(spec).strip().rstrip("/")
    if spec == "defaults":
        out = []
        for c in cfg["default_channels"]:
            out.extend(channel_urls(cfg, str(c)))
        return out
    if "://" in spec:
        return [spec]
    if spec.startswith(("/", "./", "../", "~")):
        return ["file://" + os.path.abspath(os.path.expanduser(spec))]
    custom = cfg["custom_channels"] or {}
    first = spec.split("/")[0]
    if spec in custom:
        return [f"{str(custom[spec]).rstrip('/')}/{spec}"]
    if first in custom:
        return [f"{str(custom[first]).rstrip('/')}/{spec}"]
    return [f"{cfg['channel_alias']}/{spec}"]


def resolve_channels(cfg: Config, specs: list[str]) -> list[str]:
    out: list[str] = []
    for s in specs:
        for u in channel_urls(cfg, s):
            if u not in out:
                out.append(u)
    return out


def canonical_name(cfg: Config, url: str) -> str:
    """The short name conda shows for a channel URL (conda-forge, pkgs/main, or the URL)."""
    url = url.rstrip("/")
    for sd in SUBDIRS:
        if url.endswith("/" + sd):
            url = url[: -len(sd) - 1]
    custom = cfg["custom_channels"] or {}
    for name, base in custom.items():
        if url == f"{str(base).rstrip('/')}/{name}":
            return name
    for c in cfg["default_channels"]:
        if url == str(c).rstrip("/"):
            p = urlparse(url).path.strip("/")
            return p if p else url
    alias = cfg["channel_alias"].rstrip("/")
    if url.startswith(alias + "/"):
        return url[len(alias) + 1:]
    return url
