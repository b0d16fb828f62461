"""Installer back end: link the payload's packages into PREFIX with rattler.

Run by the .sh installer with the payload's own python (pkgs/python-*/bin/python3.11)
and PYTHONPATH pointing into the extracted py-rattler / pyyaml / labconda packages.
Fully offline: the packages are already extracted in <PREFIX>/pkgs.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import struct
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="labconda.installer")
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--payload", required=True, help="directory holding the extracted packages")
    ap.add_argument("--installer-name", default="LabConda")
    ap.add_argument("--installer-version", default="0")
    ap.add_argument("--cmd", default="installer")
    ap.add_argument("--update", action="store_true")
    ap.add_argument("--skip-scripts", action="store_true")
    args = ap.parse_args(argv)

    import rattler
    from rattler import PrefixRecord, RepoDataRecord

    prefix = os.path.abspath(args.prefix)
    pkgs = os.path.abspath(args.payload)
    dists = sorted(d for d in os.listdir(pkgs)
                   if os.path.isfile(os.path.join(pkgs, d, "info", "repodata_record.json")))
    recs_json = [json.loads(Path(pkgs, d, "info", "repodata_record.json").read_text()) for d in dists]
    # rattler's cache entries: <dist>/ + <dist>.lock (revision + sha256)
    for d, r in zip(dists, recs_json):
        with open(os.path.join(pkgs, d + ".lock"), "wb") as f:
            f.write(struct.pack(">Q", 1) + bytes.fromhex(r["sha256"]))
    urls = os.path.join(pkgs, "urls.txt")
    with open(urls, "a") as f:
        for r in recs_json:
            f.write(r["url"] + "\n")

    async def _records():
        out = []
        from rattler import PackageRecord
        for r in recs_json:
            pr = PackageRecord.from_index_json(
                os.path.join(pkgs, r["fn"][: -len(".conda")], "info", "index.json"),
                size=r.get("size"), sha256=r["sha256"], md5=r.get("md5"))
            out.append(RepoDataRecord(pr, r["fn"], r["url"], r["channel"]))
        return out

    records = asyncio.run(_records())
    installed = None
    old = {}
    if args.update and os.path.isdir(os.path.join(prefix, "conda-meta")):
        installed = []
        for f in sorted(os.listdir(os.path.join(prefix, "conda-meta"))):
            if f.endswith(".json"):
                pr = PrefixRecord.from_path(os.path.join(prefix, "conda-meta", f))
                installed.append(pr)
                old[pr.name.normalized] = pr
    had_tag = os.path.exists(os.path.join(prefix, "CACHEDIR.TAG"))
    asyncio.run(rattler.install(records, prefix, cache_dir=pkgs, installed_packages=installed,
                                execute_link_scripts=not args.skip_scripts and False, show_progress=False,
                                requested_specs=_specs(records)))
    if not had_tag and os.path.exists(os.path.join(prefix, "CACHEDIR.TAG")):
        os.unlink(os.path.join(prefix, "CACHEDIR.TAG"))

    # conda-meta/history: constructor's first block, then appended by later runs
    from . import __version__
    new = {r.name.normalized: r for r in records}
    lines = [f"==> {time.strftime('%Y-%m-%d %H:%M:%S')} <==", f"# cmd: {args.cmd} {'-u ' if args.update else ''}-p {prefix}".replace("  ", " "),
             f"# conda version: {__version__}"]

    def _d(r):
        return f"{r.name.normalized}-{r.version}-{r.build}"

    def _ch(r):
        ch = (r.channel or "").rstrip("/")
        return ch.rsplit("/", 1)[-1] if ch else "local"

    for n in sorted(set(old) | set(new)):
        o, nw = old.get(n), new.get(n)
        if o is not None and (nw is None or _d(o) != _d(nw)):
            lines.append(f"-{_ch(o)}/{o.subdir}::{_d(o)}")
    for n in sorted(new):
        o, nw = old.get(n), new[n]
        if o is None or _d(o) != _d(nw):
            lines.append(f"+{_ch(nw)}/{nw.subdir}::{_d(nw)}")
    lines.append(f"# update specs: {sorted(new)!r}")
    with open(os.path.join(prefix, "conda-meta", "history"), "a") as f:
        f.write("\n".join(lines) + "\n")
    explicit = ["# This file may be used to create an environment using:",
                "# $ conda create --name <env> --file <this file>",
                f"# created by {args.installer_name} {args.installer_version} (labconda lab double)",
                "# platform: linux-64", "@EXPLICIT"]
    explicit += [f"{r['url']}#sha256:{r['sha256']}" for r in sorted(recs_json, key=lambda r: r["name"])]
    Path(prefix, "conda-meta", "initial-state.explicit.txt").write_text("\n".join(explicit) + "\n")
    os.makedirs(os.path.join(prefix, "envs"), exist_ok=True)
    if os.geteuid() != 0:
        Path(prefix, ".nonadmin").touch()
    home = os.path.expanduser("~")
    try:
        os.makedirs(os.path.join(home, ".conda"), exist_ok=True)
    except OSError:
        pass
    for n in sorted(new):
        print(f"  {_d(new[n])}")
    return 0


def _specs(records):
    from rattler import MatchSpec
    try:  # py-rattler 0.28's install() wants the FFI objects behind MatchSpec here
        return [MatchSpec(r.name.normalized)._match_spec for r in records]
    except AttributeError:
        return None


if __name__ == "__main__":
    rc = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)  # see labconda.cli.main: avoid rattler crashes at interpreter finalization
