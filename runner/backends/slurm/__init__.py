"""SLURM: job arrays of tasks, the queue and accounting, and launch-script's sbatch jobs."""
