"""setuptools' PEP 517 backend, without the notice it prints on every editable install.

incdyn's packages are its top-level folders mapped by ``package-dir`` (pyproject.toml), so
setuptools installs them editable through a meta path finder and announces it with a
``BuildBackendWarning: Editable installation`` block (``!! ... with strategy, WheelFile(...)``),
which pip shows on each ``pip install -e .``. The notice warns of a folder named like the
package (``incdyn/``) shadowing it; incdyn has none. Every hook is setuptools.build_meta's; the
editable build alone runs with that one notice filtered out.
"""

import warnings

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 (the PEP 517 hooks)
from setuptools.warnings import InformationOnly


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Editable installation", InformationOnly)
        return _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)
