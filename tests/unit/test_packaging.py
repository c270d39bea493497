"""The project's front door stays consistent: environment files agree with pyproject.toml."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

import k8snb

ROOT = Path(__file__).resolve().parents[2]
#: conda-forge names that differ from PyPI's.
CONDA_TO_PYPI = {"python-kubernetes": "kubernetes"}


def _name_and_spec(req: str) -> tuple[str, str]:
    m = re.match(r"^([A-Za-z0-9_.-]+)\s*(.*)$", req.strip())
    assert m, req
    return m.group(1).lower(), m.group(2).replace(" ", "")


def _conda_deps(path: Path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    deps = {}
    for d in env["dependencies"]:
        if isinstance(d, str):
            name, spec = _name_and_spec(d.replace("=", "==", 1) if re.match(r"^[\w.-]+=[^=<>]", d) else d)
            deps[CONDA_TO_PYPI.get(name, name)] = spec
    return deps


def test_environment_yml_lists_every_runtime_dependency_with_the_same_bounds():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = dict(_name_and_spec(r) for r in pyproject["project"]["dependencies"])
    conda = _conda_deps(ROOT / "environment.yml")
    for name, spec in wanted.items():
        assert name in conda, f"environment.yml lacks {name}"
        assert conda[name] == spec, f"{name}: pyproject says {spec!r}, environment.yml {conda[name]!r}"
    assert conda["python"] == "==3.11"


def test_binder_environment_mirrors_the_root_one():
    root = yaml.safe_load((ROOT / "environment.yml").read_text())
    binder = yaml.safe_load((ROOT / "binder" / "environment.yml").read_text())
    assert binder["channels"] == root["channels"]
    assert binder["dependencies"] == [d for d in root["dependencies"] if isinstance(d, str)]
    assert "pip install" in (ROOT / "binder" / "postBuild").read_text()


def test_public_surface_is_importable_and_documented():
    readme = (ROOT / "README.md").read_text()
    for name in k8snb.__all__:
        assert hasattr(k8snb, name), name
        if callable(getattr(k8snb, name)) and not isinstance(getattr(k8snb, name), type):
            assert f"`{name}" in readme, f"README does not document k8snb.{name}"
