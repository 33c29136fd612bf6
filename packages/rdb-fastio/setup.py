"""Only here because cffi's build hook needs setup(); all metadata is in pyproject.toml."""

from setuptools import setup

setup(
    cffi_modules=[
        "src/_rdb_fastio_cffi/build.py:ffibuilder",
        "src/_rdb_fastio_cffi/rebuild.py:ffibuilder",
        "src/_rdb_fastio_cffi/increment.py:ffibuilder",
    ]
)
