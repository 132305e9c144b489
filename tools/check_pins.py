"""Check that every installed package a constraints file pins is still at its pinned version.

`make test-colab` runs it after installing the kit the way the notebooks' setup cell does on Colab (no constraints):
if the kit's install upgraded or downgraded one of Colab's own packages, a student's Colab would change the same
way, and this says which ones.

    python -m tools.check_pins constraints-colab.txt
"""

import argparse
import re
import sys
from importlib import metadata
from pathlib import Path


def _name(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path):
    pins = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[_name(name.split("[")[0])] = version.split(";")[0].strip()
    return pins


def moved(pins):
    """(name, pinned, installed) for each installed distribution whose version differs from its pin."""
    out = []
    for dist in metadata.distributions():
        name = _name(dist.metadata["Name"])
        # A local label (torch's +cu130) is the same release as the pin.
        if name in pins and dist.version.split("+")[0] != pins[name]:
            out.append((name, pins[name], dist.version))
    return sorted(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("constraints")
    args = parser.parse_args(argv)
    changes = moved(read_pins(args.constraints))
    for name, pinned, installed in changes:
        print(f"{name}: {installed} installed, {args.constraints} pins {pinned}")
    if changes:
        print(f"error: the install changed {len(changes)} of the pinned packages", file=sys.stderr)
        return 1
    print(f"every installed package {args.constraints} pins is at its version")
    return 0


if __name__ == "__main__":
    sys.exit(main())
