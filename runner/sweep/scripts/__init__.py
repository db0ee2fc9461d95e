"""Console scripts psweep users know: psweep-db2json, psweep-db2table, psweep-checkdir.

Each module has `main(argv) -> int`; errors are printed as one line on stderr with exit status 2.
"""
