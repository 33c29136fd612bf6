"""Only here because cffi's build hook needs setup(); all metadata is in pyproject.toml."""

from setuptools import setup

setup(cffi_modules=["src/_rdiff_cffi/build.py:ffibuilder"])
