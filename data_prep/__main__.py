"""``python -m data_prep <dataset> --out DIR ...``: one subcommand per dataset module (``--help`` on each)."""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand -> module. Each module has a docstring (the help), add_arguments(parser) and run(args) -> int.
COMMANDS = {
    "synthetic_flowers": "data_prep.synthetic",
    "embed": "data_prep.embed",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m data_prep",
        description="Download, verify and prepare datasets into the course's prepared format "
                    "(docs/data_format.md). Re-running over a finished dataset does nothing.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="<dataset>")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        doc = (module.__doc__ or "").strip()
        sub = commands.add_parser(name, help=doc.splitlines()[0] if doc else name, description=doc,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
