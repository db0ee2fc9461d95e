"""GPUs: what NVML (or the fake) reports, slots and pools, and admission by memory."""

from __future__ import annotations

import os
from typing import Mapping

from runner.gpu.query import FAKE_GPUS_ENV, GpuQuery, NvmlGpus


def open_gpus(environ: Mapping[str, str] = os.environ) -> GpuQuery:
    """The machine's GPUs: fake ones from `$RUNNER_FAKE_GPUS` (a JSON file), else NVML.

    Raises GpuUnavailable with the reason when there is no GPU information at all.
    """
    path = environ.get(FAKE_GPUS_ENV)
    if path:
        from runner.gpu.fake import FakeGpus

        return FakeGpus.load(path)
    return NvmlGpus()
