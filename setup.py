import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "runner" / "__init__.py").read_text()).group(1)

SWEEP = ["pandas>=1.5", "joblib>=1.2", "jinja2>=3.0", "tabulate>=0.8.2"]
GPU = ["nvidia-ml-py>=12.535"]
REPORT = ["plotly>=5.0"]  # `run report` embeds the plotly.js that plotly.py ships
DASK = ["distributed>=2023.1"]  # --backend dask and run worker

setup(
    # `runner` on the package index is another project; the import package is `runner` and the
    # command `run` all the same
    name="sweep-runner",
    version=VERSION,
    description="Run a parameter space as tracked, resumable tasks packed onto GPUs: here, on "
                "several machines (dask) or on SLURM.",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",  # what the tests prove (PEP 678 notes, ...)
    packages=find_packages(include=["runner", "runner.*"]),
    package_data={"runner.report": ["page.html", "page.css", "page.js"]},
    install_requires=["PyYAML>=5.4"],
    extras_require={
        "sweep": SWEEP,
        "gpu": GPU,
        "report": REPORT,
        "dask": DASK,
        "test": SWEEP + GPU + REPORT + DASK + ["pytest>=7", "pytest-timeout>=2.1",
                                               "hypothesis>=6"],
    },
    entry_points={
        "console_scripts": [
            "run=runner.cli:main",
            "psweep-db2json=runner.sweep.scripts.db2json:main",
            "psweep-db2table=runner.sweep.scripts.db2table:main",
            "psweep-checkdir=runner.sweep.scripts.checkdir:main",
            "psweep-pull=runner.sweep.scripts.pull:main",
            "psweep-push=runner.sweep.scripts.push:main",
        ]
    },
)
