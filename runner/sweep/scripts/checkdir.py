"""psweep-checkdir: compare `<calc_dir>/<pset_id>` folders with the database."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

from runner.sweep.scripts.common import run_main


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="psweep-checkdir",
        description=(
            "Check a calc dir for consistency with its database (CALC_DIR/database.pk): print JSON "
            '{"db_not_disk": [pset ids without a folder], '
            '"disk_not_db": [folders not in the database]}.'
        ),
    )
    parser.add_argument("calc_dir", metavar="CALC_DIR")
    return parser


def run_checkdir(args: argparse.Namespace) -> int:
    import runner.sweep as ps

    out = ps.check_calc_dir(
        args.calc_dir, ps.df_read(os.path.join(args.calc_dir, ps.DATABASE_BASENAME))
    )
    print(json.dumps({key: sorted(val) for key, val in out.items()}))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(make_parser(), run_checkdir, argv)


if __name__ == "__main__":
    sys.exit(main())
