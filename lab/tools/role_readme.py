#!/usr/bin/env python3
"""Write the variables table of roles/<role>/README.md from meta/argument_specs.yml.

The README's text above the line '## Variables' is kept; the table below it is
rewritten. Usage: python lab/tools/role_readme.py [ROLE ...]
"""

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
MARK = "## Variables"


def cell(value: object) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool | int | float):
        text = str(value).lower() if isinstance(value, bool) else str(value)
    else:
        text = yaml.safe_dump(value, default_flow_style=True).strip()
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(options: dict) -> str:
    rows = ["| variable | default | type | description |", "|---|---|---|---|"]
    for name, spec in options.items():
        default = "**required**" if spec.get("required") else f"`{cell(spec.get('default', ''))}`"
        kind = spec.get("type", "str") + (f" of {spec['elements']}" if spec.get("elements") else "")
        if spec.get("choices"):
            kind += " (" + ", ".join(map(str, spec["choices"])) + ")"
        desc = " ".join(spec["description"]) if isinstance(spec["description"], list) else spec["description"]
        rows.append(f"| `{name}` | {default} | {kind} | {cell(desc)} |")
    return "\n".join(rows) + "\n"


def main(names: list[str]) -> None:
    for role in names or sorted(p.name for p in (ROOT / "roles").iterdir()):
        specs = yaml.safe_load((ROOT / "roles" / role / "meta/argument_specs.yml").read_text())["argument_specs"]
        readme = ROOT / "roles" / role / "README.md"
        head = readme.read_text().split(MARK)[0].rstrip() + "\n\n" if readme.exists() else (
            f"# {role}\n\n{specs['main']['short_description']}\n\n")
        readme.write_text(head + MARK + "\n\n" + table(specs["main"]["options"]))


if __name__ == "__main__":
    main(sys.argv[1:])
