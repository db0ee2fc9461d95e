"""`run worker --scheduler ADDR [-r auto | -r 0 1 "2,3"]`: the dask workers of this machine for
`--backend dask`, one per slot, until Ctrl-C.

Each worker is a process of its own with one thread, pinned to its slot's GPUs
(`CUDA_VISIBLE_DEVICES`, `CUDA_DEVICE_ORDER=PCI_BUS_ID`) before it runs anything, named
`<host>/gpu-0`, `<host>/gpu-2,3` or `<host>/cpu-<k>`, and advertises its slot as dask resources
(its GPU count; with `--gpu-memory`, the memory per GPU it hands out to tasks that share it).
"""

from __future__ import annotations

import logging
import os
from typing import List

from runner.cli.common import (EXIT_FAILED, EXIT_OK, ArgumentParser, command, grace_seconds,
                               stop_on_signals)

SCHEDULER_VARIABLE = "DASK_SCHEDULER_ADDRESS"
FAKE_GPUS_ENV = "RUNNER_FAKE_GPUS"
DASK_NVML_VARIABLE = "DASK_DISTRIBUTED__DIAGNOSTICS__NVML"  # dask's GPU monitor, on or off


def make_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="run worker", description=__doc__.split("\n\n")[0],
                            epilog="exit status: 0 stopped by Ctrl-C or SIGTERM, 1 the workers "
                                   "ended on their own (the scheduler went away), 2 bad input")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help=f"the dask scheduler, e.g. tcp://head:8786 (default: "
                             f"${SCHEDULER_VARIABLE})")
    parser.add_argument("-r", "--resource", nargs="+", metavar="R", default=["auto"],
                        help="the slots, as `resource:` takes them: -r 0 1, -r 0,1 2,3, '' for "
                             "a slot without GPU; -r auto (the default): one per GPU NVML "
                             "reports, else one per CPU core")
    parser.add_argument("--gpu-memory", metavar="SIZE",
                        help="GPU memory per GPU that each worker hands out (e.g. 40GiB): tasks "
                             "with gpu_memory share its GPU up to this much")
    parser.add_argument("--grace", type=grace_seconds, default=10.0, metavar="SECONDS",
                        help="when stopping, seconds a task's command gets between SIGTERM and "
                             "SIGKILL (default: 10)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also show dask's own log lines (INFO)")
    return parser


@command
def main(argv: List[str]) -> int:
    from runner.backends.registry import load_engine
    from runner.cli.console import Console
    from runner.errors import UsageError
    from runner.spec.config import AUTO_RESOURCE, is_auto_resource, parse_resource_entry
    from runner.spec.settings import parse_memory

    args = make_parser().parse_args(argv)
    scheduler = args.scheduler or os.environ.get(SCHEDULER_VARIABLE)
    if not scheduler:
        raise UsageError(f"no scheduler: pass --scheduler tcp://HOST:8786 (the address `dask "
                         f"scheduler` prints) or set {SCHEDULER_VARIABLE}")
    gpu_memory = None
    if args.gpu_memory is not None:
        try:
            gpu_memory = parse_memory(args.gpu_memory)
        except ValueError as e:
            raise UsageError(f"--gpu-memory: {e}") from None
    if is_auto_resource(args.resource):
        resource = AUTO_RESOURCE
    else:
        try:
            resource = [parse_resource_entry(r) for r in args.resource]
        except ValueError as e:
            raise UsageError(f"-r: {e}; a slot is a GPU index (0), a group (0,1) or '' for no "
                             f"GPU") from None
    from runner.gpu.resources import plan_resources

    resources = plan_resources(resource, [])
    resources.close()
    if resource != AUTO_RESOURCE:
        check_gpus([g for slot in resources.slots for g in slot.gpus])
    console = Console(total=0)
    for notice in resources.notices:
        console.line(f"note: {notice}")
    if not args.verbose:  # dask's INFO lines, here and in the worker processes
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
        logging.getLogger("distributed").setLevel(logging.WARNING)
    if os.environ.get(FAKE_GPUS_ENV):  # dask's own GPU monitor would look for them in NVML
        os.environ[DASK_NVML_VARIABLE] = "False"
    engine = load_engine("dask")
    stops: List[int] = []

    def stop(signum: int) -> None:
        stops.append(signum)
        console.line("stopping the workers (their running tasks go back to the scheduler)"
                     if len(stops) == 1 else "killing the workers")
        engine.stop(kill=len(stops) > 1)

    with stop_on_signals(stop):
        ended = engine.run_workers(scheduler, resources.slots, gpu_memory, console, args.grace)
    if ended:
        console.line(ended)
        return EXIT_FAILED
    console.line("workers stopped")
    return EXIT_OK


def check_gpus(gpus: List[str]) -> None:
    """GPU indices of `-r` that the GPU information (NVML, or the fake) does not report are an
    error: a worker bound to a GPU that does not exist could not even start (dask's own GPU
    monitor asks NVML about it). Without GPU information there is nothing to check against."""
    from runner.errors import UsageError
    from runner.gpu import open_gpus
    from runner.gpu.query import GpuUnavailable

    try:
        query = open_gpus()
    except GpuUnavailable:
        return
    try:
        devices = query.devices()
    finally:
        query.close()
    known = {str(d.index) for d in devices}
    missing = sorted({g for g in gpus if g.isdigit() and g not in known}, key=int)
    if missing:
        listed = ", ".join(f"{d.index} ({d.name})" for d in devices) or "none"
        raise UsageError(f"-r: GPU {', '.join(missing)} is not on this machine; {query.source} "
                         f"reports {listed}")
