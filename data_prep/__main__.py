"""``python -m data_prep <dataset> --out DIR ...``: one subcommand per dataset module (``--help`` on each)."""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand -> module. Each module has a docstring (the help), add_arguments(parser) and run(args) -> int.
COMMANDS = {
    "synthetic_flowers": "data_prep.synthetic",
    "flowers102": "data_prep.flowers102",
    "cub200": "data_prep.cub200",
    "cifar10": "data_prep.cifar10",
    "embed": "data_prep.embed",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The CLI; with ``only``, just that subcommand (some modules load TensorFlow: import what is used)."""
    parser = argparse.ArgumentParser(
        prog="python -m data_prep",
        description="Download, verify and prepare datasets into the course's prepared format "
                    "(docs/data_format.md). Re-running over a finished dataset does nothing.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="<dataset>")
    for name, module_name in COMMANDS.items():
        if only is not None and name != only:
            continue
        module = importlib.import_module(module_name)
        doc = (module.__doc__ or "").strip()
        sub = commands.add_parser(name, help=doc.splitlines()[0] if doc else name, description=doc,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv and argv[0] in COMMANDS else None
    args = build_parser(command).parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
