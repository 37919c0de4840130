#!/usr/bin/env python3
"""Checks docker-compose.yml without a Docker engine: against the Compose Specification JSON
schema (compose-spec.json beside this file, see README.md here for its origin), and for the
shape the deployment promises (two replicas sharing the keys volume, PostgreSQL with a health
check, a proxy whose config names both replicas). Broken variants of the file must fail, so a
validator that accepts anything cannot pass.

Usage: python3 tests/compose/validate.py [docker-compose.yml]
"""

import copy
import json
import pathlib
import sys

import jsonschema
import yaml

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
REPLICAS = ("oidc-a", "oidc-b")


def schema_errors(doc, validator):
    return sorted(
        (f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(doc)),
    )


def mounts(service):
    return [v if isinstance(v, str) else f"{v.get('source')}:{v.get('target')}" for v in service.get("volumes", [])]


def shape_errors(doc):
    """What the deployment needs beyond a valid file."""
    errors = []
    services = doc.get("services", {})
    for name in ("postgres", "init", "proxy", *REPLICAS):
        if name not in services:
            errors.append(f"service `{name}` is missing")
    if errors:
        return errors
    if "healthcheck" not in services["postgres"]:
        errors.append("postgres needs a healthcheck (the replicas wait for it)")
    if "keys" not in (doc.get("volumes") or {}):
        errors.append("the named volume `keys` is missing")
    for name in REPLICAS:
        s = services[name]
        depends = s.get("depends_on") or {}
        if not isinstance(depends, dict) or depends.get("init", {}).get("condition") != "service_completed_successfully":
            errors.append(f"{name} must wait for `init` to finish (migrations and keys made once)")
        if not any(m.startswith("keys:/keys") for m in mounts(s)):
            errors.append(f"{name} must mount the shared `keys` volume at /keys")
        env = s.get("environment", {})
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        for key in ("TGOIDC_ISSUER", "TGOIDC_DATABASE_URL", "TGOIDC_KEYS_DIR", "TGOIDC_TELEGRAM__BOT_TOKEN_FILE"):
            if key not in env:
                errors.append(f"{name} must set {key}")
        if not str(env.get("TGOIDC_DATABASE_URL", "")).startswith("postgres://"):
            errors.append(f"{name} must use PostgreSQL: replicas cannot share a SQLite file")
        if "build" in s and not (ROOT / s["build"] if isinstance(s["build"], str) else ROOT / s["build"].get("context", ".")).joinpath("Dockerfile").exists():
            errors.append(f"{name} builds from a directory without a Dockerfile")
    issuers = {str(services[n].get("environment", {}).get("TGOIDC_ISSUER")) for n in REPLICAS}
    if len(issuers) != 1:
        errors.append("the replicas must share one issuer")
    for mount in mounts(services["proxy"]):
        source = mount.split(":", 1)[0]
        if source.startswith("./") and source.endswith("Caddyfile"):
            path = ROOT / source
            if not path.exists():
                errors.append(f"the proxy's config {source} does not exist")
            else:
                text = path.read_text()
                for name in REPLICAS:
                    if f"{name}:8080" not in text:
                        errors.append(f"{source} does not send traffic to {name}")
            break
    else:
        errors.append("the proxy must mount its Caddyfile from deploy/")
    return errors


def broken_variants(doc):
    """Each must be refused: by the schema, or by the shape check."""
    def variant(change):
        d = copy.deepcopy(doc)
        change(d)
        return d

    return [
        ("a misspelt service key", variant(lambda d: d["services"]["oidc-a"].update(imagee="x"))),
        ("ports as a string", variant(lambda d: d["services"]["proxy"].update(ports="80:80"))),
        ("an unknown depends_on condition", variant(
            lambda d: d["services"]["oidc-b"]["depends_on"]["postgres"].update(condition="service_ready"))),
        ("an unknown top-level key", variant(lambda d: d.update(service={}))),
        ("a healthcheck with a bad field", variant(
            lambda d: d["services"]["postgres"]["healthcheck"].update(intervall="5s"))),
        ("a replica without the keys volume", variant(lambda d: d["services"]["oidc-b"].update(volumes=[]))),
        ("only one replica", variant(lambda d: d["services"].pop("oidc-b"))),
        ("a replica that does not wait for init", variant(
            lambda d: d["services"]["oidc-a"]["depends_on"].pop("init"))),
    ]


def main():
    path = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docker-compose.yml"
    schema = json.loads((HERE / "compose-spec.json").read_text())
    # The draft the schema names in `$schema` (its http URL is not in jsonschema's registry).
    jsonschema.Draft201909Validator.check_schema(schema)
    validator = jsonschema.Draft201909Validator(schema)
    doc = yaml.safe_load(path.read_text())

    passed = failed = 0
    errors = schema_errors(doc, validator) + shape_errors(doc)
    if errors:
        failed += 1
        print(f"FAIL {path.name}:", *errors, sep="\n  ")
    else:
        passed += 1
        print(f"ok   {path.name} is a valid Compose file with the promised shape")
    for what, broken in broken_variants(doc):
        found = schema_errors(broken, validator) + shape_errors(broken)
        if found:
            passed += 1
            print(f"ok   refused {what}: {found[0]}")
        else:
            failed += 1
            print(f"FAIL accepted {what}")
    print(f"compose: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
