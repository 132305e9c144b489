"""``python -m data_prep <dataset> --out DIR ...``: one subcommand per dataset module (``--help`` on each)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Subcommand -> module. Each module has a docstring (the help), add_arguments(parser) and run(args) -> int.
COMMANDS = {
    "synthetic_flowers": "data_prep.synthetic",
    "flowers102": "data_prep.flowers102",
    "cub200": "data_prep.cub200",
    "cifar10": "data_prep.cifar10",
    "embed": "data_prep.embed",
}
# The failures a user can fix (a bad checksum, a missing raw file, an unsafe archive, a bad value): one line each.
USER_ERRORS = (OSError, ValueError, RuntimeError)
DEBUG_VARIABLE = "T2I_DEBUG"


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The CLI; with ``only``, just that subcommand (some modules load TensorFlow: import what is used)."""
    parser = argparse.ArgumentParser(
        prog="python -m data_prep",
        description="Download, verify and prepare datasets into the course's prepared format "
                    "(docs/data_format.md). Re-running over a finished dataset does nothing.",
    )
    parser.add_argument("--debug", action="store_true",
                        help=f"show the full traceback of an error (or set {DEBUG_VARIABLE}=1)")
    debug = argparse.ArgumentParser(add_help=False)  # so that --debug also works after the dataset
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True, metavar="<dataset>")
    for name, module_name in COMMANDS.items():
        if only is not None and name != only:
            continue
        module = importlib.import_module(module_name)
        doc = (module.__doc__ or "").strip()
        sub = commands.add_parser(name, help=doc.splitlines()[0] if doc else name, description=doc,
                                  formatter_class=argparse.RawDescriptionHelpFormatter, parents=[debug])
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv=None) -> int:
    """Run one subcommand; a user's error is one ``error: ...`` line on stderr and exit status 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((arg for arg in argv if arg in COMMANDS), None)
    args = build_parser(command).parse_args(argv)
    try:
        return args.run(args)
    except USER_ERRORS as error:
        if args.debug or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
