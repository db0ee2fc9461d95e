"""The dask engine: tasks on the workers of a dask.distributed scheduler (`engine`), what they
need and what the workers of `run worker` offer (`needs`), the function that runs a task on a
worker (`remote`), the workers of one machine (`nannies`), a submission's records (`records`)."""
