"""deploy/lint/schemas.py: the schemas kubeconform reads reject what the API server would drop."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "lint" / "schemas.py"

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            apiVersion: {type: string}
            kind: {type: string}
            metadata: {type: object}
            spec:
              type: object
              properties:
                port: {x-kubernetes-int-or-string: true}
                operator: {type: string, enum: [=, "!="]}
                extra: {type: object, x-kubernetes-preserve-unknown-fields: true, properties: {a: {type: string}}}
    - name: v0
      served: false
      storage: false
      schema: {openAPIV3Schema: {type: object}}
"""


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("lint_schemas", SCRIPT)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _widget(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec}


def test_a_crd_becomes_a_strict_schema_per_served_version(tmp_path: Path) -> None:
    (tmp_path / "crd.yaml").write_text(CRD, encoding="utf-8")
    assert _script().crds(tmp_path / "out", [tmp_path / "crd.yaml"]) == 1
    assert [p.name for p in (tmp_path / "out" / "example.com").iterdir()] == ["widget_v1.json"]
    schema = json.loads((tmp_path / "out" / "example.com" / "widget_v1.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    for good in (_widget(port=8080), _widget(port="ops"), _widget(operator="="), _widget(extra={"b": 1})):
        validator.validate(good)
    for bad in (_widget(prot=8080), _widget(port=1.5), {**_widget(), "status2": {}}):
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(bad)


def test_kubernetes_schemas_refer_to_their_definitions_beside_them(tmp_path: Path) -> None:
    source = tmp_path / "v1.34.0-local-strict"
    source.mkdir()
    definitions = {
        "$id": "https://kubernetes.io/api/_definitions.json",
        "$defs": {"Meta": {"type": "object"}},
    }
    kind = {
        "$id": "https://kubernetes.io/api/thing/v1",
        "properties": {"metadata": {"$ref": "/api/_definitions.json#/$defs/Meta"}},
    }
    (source / "_definitions.json").write_text(json.dumps(definitions), encoding="utf-8")
    (source / "thing-v1.json").write_text(json.dumps(kind), encoding="utf-8")
    assert _script().kubernetes(source, tmp_path / "out") == 2
    converted = json.loads((tmp_path / "out" / "thing-v1.json").read_text(encoding="utf-8"))
    assert "$id" not in converted
    assert converted["properties"]["metadata"]["$ref"] == "_definitions.json#/$defs/Meta"
    assert "$id" not in json.loads((tmp_path / "out" / "_definitions.json").read_text(encoding="utf-8"))


def test_a_source_without_definitions_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"_definitions\.json"):
        _script().kubernetes(tmp_path, tmp_path / "out")
