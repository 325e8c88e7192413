"""Command line: ``seqlite train ...`` / ``python -m seqlite train ...``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    print("usage: seqlite {train,eval,demo} ...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
