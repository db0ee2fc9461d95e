"""How a command is bound to GPUs: the environment variables CUDA reads."""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"
CUDA_DEVICE_ORDER = "CUDA_DEVICE_ORDER"
PCI_BUS_ID = "PCI_BUS_ID"


def gpu_environment(base: Mapping[str, str], gpus: Optional[Sequence[str]]) -> Dict[str, str]:
    """The environment of a command bound to `gpus` (None: leave the GPU variables alone)."""
    env = dict(base)
    if gpus is not None:
        env[CUDA_VISIBLE_DEVICES] = ",".join(gpus)
        env[CUDA_DEVICE_ORDER] = PCI_BUS_ID
    return env
