"""Point every Colab badge and setup cell at one repository and ref: the ones in pyproject.toml.

    python -m tools.publish                                   # rewrite from pyproject.toml
    python -m tools.publish --repository https://github.com/me/t2i-course --ref v1.0   # a fork: update, rewrite
    python -m tools.publish --check                           # exit 1 if anything points elsewhere

`[tool.t2i-course]` in pyproject.toml is the one place the repository URL lives; this script copies it into the
notebooks' badges and setup cells and the README's Colab table.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"

BADGE_RE = re.compile(r"https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/[\w./-]+?/notebooks/")
INSTALL_RE = re.compile(r"git\+https://github\.com/[\w.-]+/[\w.-]+@[\w./-]+")


def course_source(pyproject: Path = PYPROJECT) -> tuple[str, str]:
    # A regex rather than tomllib, which Python 3.10 lacks; the two keys are written by this script anyway.
    section = pyproject.read_text().split("[tool.t2i-course]", 1)[1]
    repository = re.search(r'(?m)^repository = "(.*)"$', section).group(1)
    ref = re.search(r'(?m)^ref = "(.*)"$', section).group(1)
    return repository.rstrip("/"), ref


def colab_prefix(repository: str, ref: str) -> str:
    owner_repo = repository.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{owner_repo}/blob/{ref}/notebooks/"


def install_spec(repository: str, ref: str) -> str:
    return f"git+{repository}@{ref}"


def rewrite(text: str, repository: str, ref: str) -> str:
    text = BADGE_RE.sub(colab_prefix(repository, ref), text)
    return INSTALL_RE.sub(install_spec(repository, ref), text)


def targets(root: Path = ROOT) -> list[Path]:
    return sorted((root / "notebooks").glob("*.ipynb")) + [root / "README.md", root / "docs" / "instructors.md"]


def stale(root: Path = ROOT) -> list[Path]:
    repository, ref = course_source(root / "pyproject.toml")
    return [p for p in targets(root) if p.exists() and rewrite(p.read_text(), repository, ref) != p.read_text()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", help="e.g. https://github.com/you/t2i-course (stored in pyproject.toml)")
    parser.add_argument("--ref", help="branch or tag the notebooks install from (stored in pyproject.toml)")
    parser.add_argument("--check", action="store_true", help="only report files that point elsewhere")
    args = parser.parse_args(argv)
    if args.check:
        bad = stale()
        for path in bad:
            print(f"{path.relative_to(ROOT)} points at another repository or ref: run python -m tools.publish")
        return 1 if bad else 0
    if args.repository or args.ref:
        if args.repository and not args.repository.startswith("https://github.com/"):
            parser.error("--repository must be a https://github.com/OWNER/NAME URL (Colab opens GitHub notebooks)")
        text = PYPROJECT.read_text()
        if args.repository:
            text = re.sub(r'(?m)^repository = ".*"$', f'repository = "{args.repository.rstrip("/")}"', text)
        if args.ref:
            text = re.sub(r'(?m)^ref = ".*"$', f'ref = "{args.ref}"', text)
        PYPROJECT.write_text(text)
    repository, ref = course_source()
    for path in targets():
        if path.exists():
            path.write_text(rewrite(path.read_text(), repository, ref))
    print(f"notebooks and README now point at {repository} @ {ref}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
