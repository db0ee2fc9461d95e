"""A stand-in for a training script: prints its steps and the GPUs it was given.

    run launch-script --runs=10 --profiles configs/config.json local-gpu configs/dummytrain.py --steps=10
"""

import argparse
import os
import time

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=10)
parser.add_argument("--lr", type=float, default=0.01)
args = parser.parse_args()
print(f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}", flush=True)
loss = 1.0
for step in range(1, args.steps + 1):
    loss *= 1 - args.lr
    print(f"step {step}/{args.steps} loss {loss:.4f}", flush=True)
    time.sleep(0.01)
