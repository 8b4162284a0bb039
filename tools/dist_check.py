"""Check the built distributions: ``python tools/dist_check.py dist [--install DIR]``.

- the wheel and the sdist each hold ``py.typed`` and every zoo weight/metadata file
  of the source tree, and the wheel's version is the package's;
- with ``--install DIR``: the wheel is installed alone into ``DIR`` (``--no-deps``,
  offline) and, from a folder outside the source tree with ``DIR`` first on
  ``PYTHONPATH``, ``captum-ho --version`` must print that version and
  ``captum-ho demo`` must write its two figures; the check also asserts that the
  package was imported from ``DIR``, not from the source tree.

Exit status 0 when everything holds; the first failure is printed and exits 1.
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from typing import List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = "captum_higher_order"


def expected_files() -> List[str]:
    """Package-relative paths that every distribution must contain."""
    zoo = sorted(
        os.path.relpath(p, ROOT).replace(os.sep, "/")
        for pattern in ("*.pt", "*.json")
        for p in glob.glob(os.path.join(ROOT, PKG, "zoo", pattern))
    )
    return [f"{PKG}/py.typed"] + zoo


def version() -> str:
    namespace: dict = {}
    with open(os.path.join(ROOT, PKG, "version.py")) as f:
        exec(f.read(), namespace)
    return namespace["__version__"]


def fail(message: str) -> None:
    print(f"dist-check FAILED: {message}")
    sys.exit(1)


def check_archives(dist: str) -> str:
    wheels = glob.glob(os.path.join(dist, "*.whl"))
    sdists = glob.glob(os.path.join(dist, "*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        fail(f"expected one wheel and one sdist in {dist}, found {wheels + sdists}")
    want = expected_files()
    if len(want) < 5:
        fail(f"the source tree has too few zoo files: {want}")
    with zipfile.ZipFile(wheels[0]) as z:
        names = set(z.namelist())
    missing = [w for w in want if w not in names]
    if missing:
        fail(f"{os.path.basename(wheels[0])} lacks {missing}")
    if f"-{version()}-" not in os.path.basename(wheels[0]):
        fail(f"wheel {os.path.basename(wheels[0])} is not version {version()}")
    with tarfile.open(sdists[0]) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    missing = [w for w in want + ["README.md", "CHANGELOG.md", "LICENSE"] if w not in names]
    if missing:
        fail(f"{os.path.basename(sdists[0])} lacks {missing}")
    print(f"dist-check: {os.path.basename(wheels[0])} and {os.path.basename(sdists[0])} "
          f"hold py.typed and {len(want) - 1} zoo files")
    return wheels[0]


def check_install(wheel: str, target: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-index", "--target", target, wheel], check=True)
    env = dict(os.environ, PYTHONPATH=os.path.abspath(target), MPLBACKEND="Agg")
    scripts = os.path.join(os.path.abspath(target), "bin")
    with tempfile.TemporaryDirectory() as cwd:
        where = subprocess.run(
            [sys.executable, "-c", f"import {PKG}; print({PKG}.__file__)"],
            cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout.strip()
        if not where.startswith(os.path.abspath(target)):
            fail(f"the package was imported from {where}, not from the installed wheel")
        cli = [os.path.join(scripts, "captum-ho")]
        if not os.path.exists(cli[0]):
            cli = [sys.executable, "-m", f"{PKG}.cli"]
        out = subprocess.run(cli + ["--version"], cwd=cwd, env=env, capture_output=True,
                             text=True)
        if out.returncode != 0 or version() not in out.stdout:
            fail(f"`captum-ho --version` printed {out.stdout + out.stderr!r}, not {version()}")
        demo = subprocess.run(cli + ["demo", "--out", "demo_out", "--quiet"], cwd=cwd,
                              env=env, capture_output=True, text=True)
        pngs = sorted(os.listdir(os.path.join(cwd, "demo_out"))) if demo.returncode == 0 else []
        if demo.returncode != 0 or len(pngs) != 2:
            fail(f"`captum-ho demo` from the wheel: exit {demo.returncode}, wrote {pngs}\n"
                 f"{demo.stderr[-2000:]}")
    print(f"dist-check: the wheel installed alone runs `captum-ho --version` ({version()}) "
          f"and `captum-ho demo` (wrote {pngs})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dist", help="folder with the wheel and the sdist")
    parser.add_argument("--install", metavar="DIR", help="install the wheel here and run it")
    args = parser.parse_args()
    wheel = check_archives(args.dist)
    if args.install:
        check_install(wheel, args.install)


if __name__ == "__main__":
    main()
