"""Typed doors to the two untyped libraries the deployment tests use: PyYAML (rendered manifests,
rules files) and kubernetes-validate (Kubernetes' own JSON schemas)."""

from __future__ import annotations

from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import yaml


class SchemaMissing(Exception):
    """kubernetes-validate has no schema for the object's kind and apiVersion."""


class Invalid(Exception):
    """The object breaks its kind's schema; the message names the field."""


def load_documents(text: str) -> list[dict[str, Any]]:
    """The non-empty YAML documents of a multi-document text, each a mapping."""
    documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    for doc in documents:
        if not isinstance(doc, dict):
            raise TypeError(f"a YAML document is a {type(doc).__name__}, not a mapping")
    return documents


def load_document(text: str) -> Any:
    """One YAML document, as PyYAML reads it."""
    return yaml.safe_load(text)


def validate(obj: dict[str, Any], kubernetes_version: str) -> None:
    """Check ``obj`` against the strict schema of its kind in that Kubernetes version (unknown
    fields are errors, as the API server's strict field validation makes them)."""
    try:
        kubernetes_validate.validate(obj, kubernetes_version, strict=True)
    except kubernetes_validate.SchemaNotFoundError as exc:
        raise SchemaMissing(exc.message) from None
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(part) for part in exc.path)
        raise Invalid(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {exc.message}") from None
