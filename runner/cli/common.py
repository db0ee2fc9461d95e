"""What every subcommand shares: exit statuses, one-line errors, signal handling."""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
import signal
import sys
from typing import Any, Callable, Iterator, List, NoReturn, Optional, Sequence

EXIT_OK = 0  # every selected command done (now or earlier)
EXIT_FAILED = 1  # a command failed
EXIT_USAGE = 2  # bad input: usage, config or environment
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with errors on one line: `run: error: ... (see run --help)`, exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(EXIT_USAGE)


def grace_seconds(text: str) -> float:
    """argparse type of `--grace`: a finite number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a finite number of seconds, 0 or "
                                         f"more")
    return value


def add_verbosity_arguments(parser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true",
                       help="print only the header, failures and the summary")
    group.add_argument("-v", "--verbose", action="store_true",
                       help="also print when each command starts, and every log path")


def verbosity(args) -> int:
    return 0 if args.quiet else 2 if args.verbose else 1


def print_error(message: str, prog: str = "run") -> None:
    sys.stderr.write(f"{prog}: error: {message}\n")


def command(func: Callable[[List[str]], int]) -> Callable[[Optional[Sequence[str]]], int]:
    """Wrap a subcommand's main: library errors become one line and exit status 2."""

    @functools.wraps(func)
    def main(argv: Optional[Sequence[str]] = None) -> int:
        from runner.errors import RunnerError

        try:
            return func(list(sys.argv[1:] if argv is None else argv))
        except RunnerError as e:
            print_error(str(e))
            return EXIT_USAGE
        except SystemExit as e:  # argparse: --help, or a usage error it has already printed
            return e.code if isinstance(e.code, int) else EXIT_USAGE
        except KeyboardInterrupt:
            sys.stderr.write("run: interrupted\n")
            return EXIT_INTERRUPTED
        except BrokenPipeError:  # `run status | head`: the reader left; say nothing more
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_FAILED

    return main


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[int], None]) -> Iterator[None]:
    """Call `stop(signum)` on Ctrl-C, SIGTERM and SIGHUP while the block runs."""
    previous = {}
    for sig in STOP_SIGNALS:
        try:
            previous[sig] = signal.signal(sig, lambda signum, frame: stop(signum))
        except ValueError:  # not the main thread
            pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def finite(value: Any) -> Any:
    """`value` with NaN and infinities as None, for strict JSON (which has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    return value


def plural(count: int, word: str) -> str:
    """'1 task', '2 tasks'."""
    return f"{count} {word}" + ("" if count == 1 else "s")


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
