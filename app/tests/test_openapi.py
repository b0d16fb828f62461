"""The served OpenAPI document is in sync with the Flask routes."""

from __future__ import annotations

import re

from .tb_testlib import Env


def _flask_routes(app: object) -> dict[tuple[str, str], str | None]:
    out: dict[tuple[str, str], str | None] = {}
    for rule in app.url_map.iter_rules():  # type: ignore[attr-defined]
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        view = app.view_functions[rule.endpoint]  # type: ignore[attr-defined]
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            out[(path, method.lower())] = getattr(view, "required_scope", None)
    return out


def test_openapi_matches_routes(env: Env) -> None:
    doc = env.client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    documented: dict[tuple[str, str], str | None] = {}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            documented[(path, method)] = op.get("x-required-scope")
            if op.get("x-required-scope"):
                assert op["security"] == [{"apiKey": []}]
                assert {"401", "403", "503"} <= set(op["responses"])
            # path parameters are declared
            for name in re.findall(r"{([a-z_]+)}", path):
                assert any(p["name"] == name and p["in"] == "path" for p in op["parameters"])
    assert documented == _flask_routes(env.app)


def test_openapi_refs_resolve(env: Env) -> None:
    doc = env.client.get("/openapi.json").get_json()
    text = str(doc)
    for ref in set(re.findall(r"#/components/schemas/([A-Za-z]+)", text)):
        assert ref in doc["components"]["schemas"], ref
    assert doc["info"]["version"] == __import__("token_billing").__version__
