"""Builds tollgate._native through CMake on the repository root (two levels up), with the
SDK linked statically. Environment:
  TOLLGATE_SOURCE_DIR    the repository root (default: ../.. from this file)
  TOLLGATE_PY_BUILD_DIR  the CMake build tree, reused between builds (default: ROOT/build-python)
  TOLLGATE_JOBS          parallel compile jobs (default: 2)
"""

import os
import shutil
import subprocess
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.environ.get("TOLLGATE_SOURCE_DIR") or os.path.join(HERE, "..", ".."))


class CMakeExtension(Extension):
    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        if not os.path.exists(os.path.join(ROOT, "sdk", "include", "tollgate", "limiter.h")):
            raise RuntimeError(f"the Tollgate sources are not at {ROOT}; set TOLLGATE_SOURCE_DIR")
        build_dir = os.path.abspath(
            os.environ.get("TOLLGATE_PY_BUILD_DIR") or os.path.join(ROOT, "build-python"))
        jobs = os.environ.get("TOLLGATE_JOBS", "2")
        # The base interpreter, not the venv's symlink: one cache serves every venv of it.
        python = os.path.realpath(sys.executable)
        subprocess.check_call([
            "cmake", "-S", ROOT, "-B", build_dir,
            "-DCMAKE_BUILD_TYPE=Release",
            "-DTOLLGATE_BUILD_TESTS=OFF", "-DTOLLGATE_BUILD_BENCH=OFF",
            "-DTOLLGATE_BUILD_PYTHON=ON",
            f"-DPython_EXECUTABLE={python}",
        ])
        subprocess.check_call(["cmake", "--build", build_dir, "--target", "_native", "-j", jobs])
        built = os.path.join(build_dir, "bindings", "python",
                             "_native" + sysconfig.get_config_var("EXT_SUFFIX"))
        if not os.path.exists(built):
            raise RuntimeError(f"CMake did not produce {built}")
        dest = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(built, dest)


setup(ext_modules=[CMakeExtension("tollgate._native")], cmdclass={"build_ext": CMakeBuild})
