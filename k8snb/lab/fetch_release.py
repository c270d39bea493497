"""`python -m k8snb.lab.fetch_release`: cache the lab's binaries from the official release assets
only, never building from source. Binder's postBuild runs it: the image has no Go, so a missing
asset must fail the image build with one clear line instead of falling back to a build.

    python -m k8snb.lab.fetch_release --nodes kwok --link-kubectl ~/.local/bin
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import K8snbError
from . import binaries


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m k8snb.lab.fetch_release", description=__doc__.splitlines()[0])
    p.add_argument("--nodes", choices=["kwok", "real"], default="kwok")
    p.add_argument("--version", help="Kubernetes version (default: the pin in versions.env)")
    p.add_argument("--link-kubectl", metavar="DIR", help="put a kubectl symlink into DIR")
    args = p.parse_args(argv)
    names = binaries.CONTROL_PLANE + (binaries.KWOK if args.nodes == "kwok" else binaries.NODE)
    try:
        got = binaries.fetch_release(names, version=args.version)
    except K8snbError as exc:
        print(f"k8snb: {exc}", file=sys.stderr)
        return 1
    print(f"k8snb lab: {', '.join(names)} for Kubernetes {got.version} ready in {got.directory}")
    if args.link_kubectl:
        target = Path(args.link_kubectl).expanduser()
        target.mkdir(parents=True, exist_ok=True)
        link = target / "kubectl"
        link.unlink(missing_ok=True)
        link.symlink_to(got["kubectl"])
        print(f"k8snb lab: kubectl -> {link}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
