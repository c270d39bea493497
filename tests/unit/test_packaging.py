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


def _env_deps(path: Path) -> tuple[dict[str, str], list[str]]:
    """(conda dependencies by PyPI name, the pip section's lines as written)."""
    env = yaml.safe_load(path.read_text())
    deps, pip = {}, []
    for d in env["dependencies"]:
        if isinstance(d, str):
            name, spec = _name_and_spec(d.replace("=", "==", 1) if re.match(r"^[\w.-]+=[^=<>]", d) else d)
            deps[CONDA_TO_PYPI.get(name, name)] = spec
        elif isinstance(d, dict) and "pip" in d:
            pip.extend(d["pip"])
    return deps, pip


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_lists_every_runtime_dependency_with_the_same_bounds():
    wanted = dict(_name_and_spec(r) for r in _pyproject()["project"]["dependencies"])
    conda, pip = _env_deps(ROOT / "environment.yml")
    from_pip = dict(_name_and_spec(r) for r in pip if not r.startswith("-"))
    assert not set(conda) & set(from_pip), "a package listed both for conda and for pip"
    listed = {**conda, **from_pip}
    for name, spec in wanted.items():
        assert name in listed, f"environment.yml lacks {name}"
        assert listed[name] == spec, f"{name}: pyproject says {spec!r}, environment.yml {listed[name]!r}"
    assert conda["python"] == "==3.11"
    # conda-forge has no python-kubernetes 37 (newest 36.0.2): the course's client comes from PyPI.
    assert "kubernetes" in from_pip and "kubernetes" not in conda
    assert "-e ." in pip


def test_binder_environment_mirrors_the_root_one():
    root = yaml.safe_load((ROOT / "environment.yml").read_text())
    binder = yaml.safe_load((ROOT / "binder" / "environment.yml").read_text())
    assert binder["channels"] == root["channels"]
    root_conda, root_pip = _env_deps(ROOT / "environment.yml")
    binder_conda, binder_pip = _env_deps(ROOT / "binder" / "environment.yml")
    assert binder_conda == root_conda
    # The package itself is installed by postBuild, once the repository is in place.
    assert binder_pip == [r for r in root_pip if r != "-e ."]
    assert "pip install" in (ROOT / "binder" / "postBuild").read_text()


# --- the repository slug: one place, README follows it -------------------------------------------
BADGE = ("[![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/{slug}/HEAD"
         "?urlpath=lab/tree/notebooks/00_setup.ipynb)")


def repository_slug() -> str:
    return _pyproject()["tool"]["k8snb"]["repository"].strip()


def test_readme_links_follow_the_one_repository_slug():
    slug = repository_slug()
    readme = (ROOT / "README.md").read_text()
    binder_links = re.findall(r"mybinder\.org/v2/gh/([^/\s)]+/[^/\s)]+)", readme)
    if not slug:
        assert not binder_links, f"README links a Binder repository ({binder_links}) but no slug is set"
        assert "[tool.k8snb]" in readme and 'repository = "owner/name"' in readme, \
            "README must say how to set the repository slug"
        return
    assert re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", slug), f"not an owner/name slug: {slug!r}"
    assert BADGE.format(slug=slug) in readme, f"put this badge in README's Binder section:\n{BADGE.format(slug=slug)}"
    assert set(binder_links) == {slug}
    # Any other link to a GitHub repository of the course's owner must be the course's.
    owner = slug.split("/")[0]
    others = set(re.findall(rf"github\.com/({re.escape(owner)}/[A-Za-z0-9_.-]+)", readme))
    assert others <= {slug}, f"README links {others - {slug}}, not {slug}"


def test_public_surface_is_importable_and_documented():
    readme = (ROOT / "README.md").read_text()
    for name in k8snb.__all__:
        assert hasattr(k8snb, name), name
        if callable(getattr(k8snb, name)) and not isinstance(getattr(k8snb, name), type):
            assert f"`{name}" in readme, f"README does not document k8snb.{name}"
