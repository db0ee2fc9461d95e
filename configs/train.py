"""A stand-in for a training script: reads its flags, 'trains' briefly, writes metrics.json.

Runs anywhere (no GPU needed); prints the GPUs its slot gave it.
"""

import argparse
import json
import math
import os
import time

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--layers", type=int, default=2)
parser.add_argument("--optimizer", default="sgd")
parser.add_argument("--steps", type=int, default=5)
parser.add_argument("--out", required=True)
args = parser.parse_args()

print(f"training on CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}", flush=True)
loss = 1.0
for step in range(args.steps):
    loss *= 1 - min(args.lr, 0.5) / (1 + 0.1 * args.layers)
    print(f"step {step} loss {loss:.4f}", flush=True)
    time.sleep(0.05)
os.makedirs(args.out, exist_ok=True)
with open(os.path.join(args.out, "metrics.json"), "w") as f:
    json.dump({"loss": loss, "accuracy": 1 - loss / 2, "perplexity": math.exp(loss)}, f)
with open(os.path.join(args.out, "model.txt"), "w") as f:
    f.write(f"{args.optimizer} {args.layers} layers, lr {args.lr}\n")
