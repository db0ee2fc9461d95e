"""What psweep-pull and psweep-push share: the remote path, the rsync options, running commands.

psweep 0.16 ships both as shell scripts; these do the same without a shell in between, so folder
names and options with spaces or quotes arrive as written.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence

DEFAULT_RSYNC_OPTS = ("-rptgoD", "-vP")  # -a without -l: links are not copied (see the help)
CALC_DIR = "calc"
EXCLUDE_FILE = "rsync.exclude"
RULES_FILES = ("rsync.rules", "rsync.filter")
EXIT_INTERRUPTED = 130

HELP = """\
rsync {what} a remote host using the same path names: the current folder, taken
relative to your home folder, names the same folder under your home on the remote host.
In /home/user42/path/to/my_study,

  {prog} hpc.machine.edu

syncs {example}.
A folder outside your home is used as an absolute path on both machines.

The rsync options are {defaults} (-a/--archive without -l/--links: symbolic
links are skipped, since links to absolute paths on one machine are often meaningless on the
other), then the RSYNC_OPTIONs given after HOST, e.g. -n (dry run: always a good first try),
-l (copy links as links), -L (copy what links point to), --exclude-from=FILE,
--filter='merge FILE'. Rules files in the current folder are added when they exist:
{excl} and rsync.exclude as --exclude-from=FILE, rsync.rules and rsync.filter as
--filter='merge FILE'.
"""


def make_parser(prog: str, what: str, example: str, excl: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=HELP.format(
            prog=prog,
            what=what,
            example=example,
            excl=excl,
            defaults=" ".join(DEFAULT_RSYNC_OPTS),
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("host", metavar="HOST", help="remote host, as ssh and rsync take it")
    parser.add_argument(
        "rsync_opts",
        metavar="RSYNC_OPTION",
        nargs=argparse.REMAINDER,
        help="further rsync options, added to the defaults",
    )
    return parser


def current_dir() -> str:
    """The current folder as the shell's `pwd` shows it (keeping symbolic links in the path)."""
    pwd = os.environ.get("PWD")
    try:
        if pwd and os.path.isabs(pwd) and os.path.samefile(pwd, os.curdir):
            return pwd
    except OSError:
        pass
    return os.getcwd()


def remote_base(cwd: str, home: str | None) -> str:
    """`cwd` relative to `home` when it is inside it (relative paths start at the remote home
    folder), "." for `home` itself, else `cwd` unchanged."""
    if home:
        home = home.rstrip("/") or "/"
        if cwd == home:
            return "."
        prefix = home if home.endswith("/") else home + "/"
        if cwd.startswith(prefix):
            return cwd[len(prefix) :]
    return cwd


def rsync_options(extra: Sequence[str], exclude_file: str) -> list[str]:
    """The defaults, `extra`, then the rules files found in the current folder."""
    opts = [*DEFAULT_RSYNC_OPTS, *extra]
    for name in (exclude_file, EXCLUDE_FILE):
        if os.path.lexists(name):
            opts.append(f"--exclude-from={name}")
    for name in RULES_FILES:
        if os.path.lexists(name):
            opts.append(f"--filter=merge {name}")
    return opts


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """The arguments; a missing or odd HOST is a usage error (exit status 2)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        parser.error(f"HOST is required, e.g. {parser.prog} hpc.machine.edu")
    if argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        parser.error(f"HOST comes first, got {argv[0]!r}; rsync options go after HOST")
    args = parser.parse_args(argv)
    host = args.host
    if not host or host.startswith("-") or any(c.isspace() for c in host):
        parser.error(f"HOST must be a host name such as hpc.machine.edu or user@host, got {host!r}")
    return args


def execute(argv: Sequence[str]) -> int:
    """Print the command as psweep does (`executing: ...`), run it; its exit status."""
    print(f"executing: {shlex.join(argv)}", flush=True)
    return subprocess.run(list(argv)).returncode


def run_commands(prog: str, commands: Sequence[Sequence[str]]) -> int:
    """Run `commands` in order until one fails; its exit status, 2 if a program is missing."""
    try:
        for argv in commands:
            status = execute(argv)
            if status != 0:
                return status
        return 0
    except FileNotFoundError as ex:
        print(f"{prog}: error: {ex.filename}: not found; install it or fix PATH", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
