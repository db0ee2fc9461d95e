"""The files on disk: the atomic writer and locks, a sweep's output directory, a runfile's directory, and the states read back from them."""
