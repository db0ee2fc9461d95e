"""The subcommands of `run`: each a module of this package with a `main(argv) -> int`."""

# name -> (module, one-line help). Keep in the order `run --help` should list them.
SUBCOMMANDS = {
    "launch": ("runner.cli.launch", "run the commands of a runfile as tracked, resumable jobs"),
    "sweep": ("runner.cli.gridspec", "write the runfile of a gridspec (a grid of parameters)"),
    "status": ("runner.cli.status", "show every task's state in an output directory"),
    "results": ("runner.cli.results", "every task's params, state, timings and metrics as a table"),
    "report": ("runner.cli.report",
               "one HTML file with the table, plots, timeline and failures of a sweep"),
    "exec-task": ("runner.cli.exec_task", "run one task of a task table (used by remote engines)"),
    "cancel": ("runner.cli.cancel", "stop what runs for an output directory: a local run, "
                                    "cluster jobs"),
    "launch-script": ("runner.cli.launch_script",
                      "run a script with a profile: here, or as a cluster job"),
    "worker": ("runner.cli.worker", "start this machine's dask workers for --backend dask, one per "
                                    "GPU slot"),
    "gpus": ("runner.cli.gpus", "show the GPUs, their processes and which of our tasks run there"),
}
