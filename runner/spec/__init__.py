"""What users write, read and checked: the YAML config and its expansion into tasks, runfiles,
gridspecs and profiles."""
