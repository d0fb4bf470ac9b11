# Builds the compiled hot path `_fastblocks` only; the project's metadata lives in pyproject.toml.
#
# How the system libraries are found (we link them, we never vendor their sources), in this order,
# for liblz4 and for libxxhash each:
#   1. an environment prefix: REPLICADESK_LZ4_PREFIX / REPLICADESK_XXHASH_PREFIX, a directory with
#      include/ (lz4.h / xxhash.h) and lib/ (liblz4.so / libxxhash.so) below it;
#   2. pkg-config, under the names `liblz4` and `libxxhash`;
#   3. otherwise the build stops with an error naming the Debian package to install
#      (liblz4-dev / libxxhash-dev) or the variable to set.
#
# libxxhash builds that carry the x86 runtime dispatcher (Debian's does) export
# XXH3_128bits_dispatch, which picks AVX2/AVX-512 code when the CPU has it: the same digests,
# 16 -> 41 GB/s on a cached 1 MiB block here. A link test finds it; without it we call the plain
# XXH3_128bits (REPLICADESK_XXH_NO_DISPATCH=1 forces that).
#
# Every extension is compiled with -O3 and OpenMP (-fopenmp at compile and link time): one call on
# a batch of blocks spreads the blocks over all cores (OMP_NUM_THREADS caps the thread count).
# The .pyx files use typed memoryviews and the buffer protocol, not numpy's C API, so no numpy
# include directory is needed.

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from typing import Any

from setuptools import Extension, setup

LIBRARIES = {
    # key: (environment variable, pkg-config name, library to link, Debian package)
    "lz4": ("REPLICADESK_LZ4_PREFIX", "liblz4", "lz4", "liblz4-dev"),
    "xxhash": ("REPLICADESK_XXHASH_PREFIX", "libxxhash", "xxhash", "libxxhash-dev"),
}

OPENMP_AND_OPTIMISE = ["-O3", "-fopenmp"]
OPENMP_LINK = ["-fopenmp"]


def _pkg_config(package: str, option: str) -> list[str] | None:
    """Return pkg-config's answer for `package`, or None if pkg-config or the package is absent."""
    pkg_config = shutil.which(os.environ.get("PKG_CONFIG", "pkg-config"))
    if pkg_config is None:
        return None
    try:
        result = subprocess.run(
            [pkg_config, option, package], capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    if result.returncode != 0:
        return None
    return shlex.split(result.stdout)


def lib_ext_kwargs(key: str) -> dict[str, list[Any]]:
    """Compiler and linker arguments for one system library: prefix, then pkg-config, then fail."""
    env_var, pc_name, lib_name, debian_pkg = LIBRARIES[key]
    prefix = os.environ.get(env_var)
    if prefix:
        include_dir = os.path.join(prefix, "include")
        lib_dir = os.path.join(prefix, "lib")
        if not os.path.isdir(include_dir):
            sys.exit(f"{env_var}={prefix}: {include_dir} does not exist")
        return {
            "include_dirs": [include_dir],
            "library_dirs": [lib_dir],
            "runtime_library_dirs": [lib_dir],
            "libraries": [lib_name],
        }
    cflags = _pkg_config(pc_name, "--cflags")
    libs = _pkg_config(pc_name, "--libs")
    if cflags is not None and libs is not None:
        return {
            "include_dirs": [flag[2:] for flag in cflags if flag.startswith("-I")],
            "library_dirs": [flag[2:] for flag in libs if flag.startswith("-L")],
            "libraries": [flag[2:] for flag in libs if flag.startswith("-l")] or [lib_name],
        }
    sys.exit(
        f"{pc_name} not found: "
        f"install the Debian package {debian_pkg} (apt-get install {debian_pkg}) "
        f"or set {env_var}"
    )


def links(kwargs: dict[str, list[Any]], source: str) -> bool:
    """True if `source` compiles and links as a program against the library in `kwargs`."""
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.errors import CompileError, LinkError
    from setuptools._distutils.sysconfig import customize_compiler

    compiler = new_compiler()
    customize_compiler(compiler)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as probe:
            probe.write(source)
        try:
            objects = compiler.compile([path], output_dir=tmp, include_dirs=kwargs["include_dirs"])
            compiler.link_executable(
                objects,
                os.path.join(tmp, "probe"),
                libraries=kwargs["libraries"],
                library_dirs=kwargs["library_dirs"],
            )
        except (CompileError, LinkError):
            return False
    return True


def xxhash_kwargs() -> dict[str, list[Any]]:
    kwargs = lib_ext_kwargs("xxhash")
    probe = (
        "#include <xxhash.h>\n#include <xxh_x86dispatch.h>\n"
        'int main(void) { return (int)XXH3_128bits_dispatch("", 0).low64; }\n'
    )
    if os.environ.get("REPLICADESK_XXH_NO_DISPATCH") != "1" and links(kwargs, probe):
        kwargs["define_macros"] = [("REPLICADESK_XXH_X86DISPATCH", "1")]
    return kwargs


def merge(*parts: dict[str, list[Any]]) -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {}
    for part in parts:
        for name, values in part.items():
            merged.setdefault(name, [])
            merged[name].extend(v for v in values if v not in merged[name])
    return merged


def extensions() -> list[Extension]:
    from Cython.Build import cythonize

    common = {
        "extra_compile_args": OPENMP_AND_OPTIMISE,
        "extra_link_args": OPENMP_LINK,
    }
    modules = [
        Extension(
            "_fastblocks.digest",
            ["_fastblocks/digest.pyx"],
            **merge(xxhash_kwargs(), common),
        ),
        Extension(
            "_fastblocks.lz4block",
            ["_fastblocks/lz4block.pyx"],
            **merge(lib_ext_kwargs("lz4"), common),
        ),
    ]
    return cythonize(
        modules,
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "initializedcheck": False,
            "cdivision": True,
            "embedsignature": True,
            "autotestdict": False,
        },
    )


setup(ext_modules=extensions())
