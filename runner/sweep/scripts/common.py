"""What the psweep-* console scripts share: argument choices and the error edge."""

from __future__ import annotations

import argparse
import pickle
import sys
from typing import Callable, Sequence

from runner.errors import RunnerError

ORIENTS = ("split", "records", "index", "columns", "values")
EXIT_ERROR = 2


def run_main(
    parser: argparse.ArgumentParser,
    func: Callable[[argparse.Namespace], int],
    argv: Sequence[str] | None,
) -> int:
    """Parse `argv`, call `func`; expected errors become one line `<prog>: error: ...`, exit 2."""
    args = parser.parse_args(argv)
    try:
        return func(args)
    except BrokenPipeError:
        sys.stderr.close()  # the reader (head, less) left; nothing more to say
        return 0
    except (RunnerError, OSError, pickle.UnpicklingError, EOFError) as ex:
        print(f"{parser.prog}: error: {ex}", file=sys.stderr)
        return EXIT_ERROR
