"""The seed README's `run.py`: prints its param and the GPUs its slot gave it."""

import os
import sys
import time

print(f"param {sys.argv[1]} on CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}")
time.sleep(0.2)
