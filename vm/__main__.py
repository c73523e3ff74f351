"""`python3 -m vm ...` = `d4c vm ...` (handy before the package is installed)."""

import argparse
import sys

from vm.cli import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="d4c")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["vm", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
