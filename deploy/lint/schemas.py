"""JSON schemas for kubeconform, made from the sources the registries carry (no GitHub download).

    schemas.py kubernetes SOURCE_DIR OUT_DIR   Kubernetes' built-in kinds
    schemas.py crds OUT_DIR CRD.yaml...        custom resources, from their CustomResourceDefinitions

kubernetes: kubernetes-validate (PyPI) ships one directory per Kubernetes version, each kind as
``<kind>-<group>-<version>.json`` (kubeconform's naming) with ``$ref``s to a shared
``_definitions.json`` under an ``$id`` on kubernetes.io. kubeconform resolves references against
the file it loaded, so the copy drops the ``$id``s and makes the references relative to the file.

crds: each served version's ``openAPIV3Schema`` becomes ``<group>/<kind>_<version>.json`` (the
layout kubeconform's ``{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}`` template expects),
strict like ``-strict``: an object with ``properties`` accepts no other key unless the CRD says
so (the API server would prune it silently), and ``x-kubernetes-int-or-string`` becomes a type.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

DEFINITIONS = "_definitions.json"
ABSOLUTE_DEFINITIONS = f"/api/{DEFINITIONS}"


def _relative_refs(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _relative_refs(v) for k, v in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith(ABSOLUTE_DEFINITIONS):
            out["$ref"] = ref.removeprefix("/api/")
        return out
    if isinstance(node, list):
        return [_relative_refs(v) for v in node]
    return node


def kubernetes(source: Path, out: Path) -> int:
    files = sorted(source.glob("*.json"))
    if not any(f.name == DEFINITIONS for f in files):
        raise SystemExit(f"schemas: no {DEFINITIONS} in {source}")
    out.mkdir(parents=True, exist_ok=True)
    for path in files:
        schema = _relative_refs(json.loads(path.read_text(encoding="utf-8")))
        schema.pop("$id", None)
        (out / path.name).write_text(json.dumps(schema), encoding="utf-8")
    return len(files)


class _CrdLoader(yaml.SafeLoader):
    """YAML 1.1 reads a bare ``=`` (an enum value of the CRDs' operators) as the ``value`` tag."""


_CrdLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def _strict(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items()}
        if out.pop("x-kubernetes-int-or-string", False):
            out.pop("type", None)
            out["oneOf"] = [{"type": "string"}, {"type": "integer"}]
        if "properties" in out and "additionalProperties" not in out:
            preserve = out.get("x-kubernetes-preserve-unknown-fields", False)
            out["additionalProperties"] = bool(preserve)
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


def crds(out: Path, sources: list[Path]) -> int:
    written = 0
    for path in sources:
        for doc in yaml.load_all(path.read_text(encoding="utf-8"), Loader=_CrdLoader):  # SafeLoader + one tag
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            kind = spec["names"]["kind"].lower()
            for version in spec["versions"]:
                if not version.get("served", True):
                    continue
                schema = _strict(version["schema"]["openAPIV3Schema"])
                target = out / spec["group"] / f"{kind}_{version['name']}.json"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(json.dumps(schema), encoding="utf-8")
                written += 1
    if not written:
        raise SystemExit("schemas: no CustomResourceDefinition found")
    return written


def main(argv: list[str]) -> int:
    match argv:
        case ["kubernetes", source, out]:
            count = kubernetes(Path(source), Path(out))
        case ["crds", out, *sources] if sources:
            count = crds(Path(out), [Path(s) for s in sources])
        case _:
            print(__doc__, file=sys.stderr)
            return 2
    print(f"schemas: {count} written to {argv[-1] if argv[0] == 'kubernetes' else argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
