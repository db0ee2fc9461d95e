"""`psweep.psweep`, the module psweep's code lives in, under our name: `runner.sweep.psweep`.

psweep's package re-exports its module `psweep.psweep`, so scripts may write `ps.psweep.run` or
`from psweep.psweep import run`. Here every name resolves to the same object in `runner.sweep`.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    import runner.sweep

    if name.startswith("__"):  # this module's own attributes (__path__, __spec__, ...)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        return getattr(runner.sweep, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    import runner.sweep

    return dir(runner.sweep)
