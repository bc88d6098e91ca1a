"""Builds csl_ext and its compiled ops, csl_ext._C.

A CUDAExtension when nvcc and a CUDA build of torch are found, else a
CppExtension; FORCE_CUDA=1 / FORCE_CUDA=0 overrides the detection. A CUDA
build also runs its CPU kernels on a machine without a GPU.

    pip install --no-build-isolation .          # uses the installed torch
    FORCE_CUDA=0 pip install --no-build-isolation -e .
"""

import glob
import os
import sys
import sysconfig

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))
# nvcc's flags. No --use_fast_math: it turns the soft cap's tanh into
# tanh.approx.f32 (~5e-4 relative error), which the float32 results must not
# carry; python_tests/ops/test_cuda_build_flags.py compiles the shared math
# with these flags and checks the PTX.
NVCC_FLAGS = ["-O3"]


def _cuda_home():
    for candidate in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if candidate and os.path.exists(os.path.join(candidate, "bin", "nvcc")):
            return candidate
    return None


def _want_cuda(torch):
    forced = os.environ.get("FORCE_CUDA")
    if forced is not None:
        return forced == "1"
    return torch.version.cuda is not None and _cuda_home() is not None


def _pip_cuda_dirs():
    """Headers and libraries of the pip CUDA wheels (e.g. cusparse.h), which
    torch's headers include but nvcc's own tree may lack."""
    root = os.path.join(sysconfig.get_paths()["purelib"], "nvidia", "cu13")
    if not os.path.isdir(root):
        return [], []
    return [os.path.join(root, "include")], [os.path.join(root, "lib")]


def _extensions():
    # Imported here so that `setup.py --version` works without torch.
    import torch
    from torch.utils import cpp_extension

    with_cuda = _want_cuda(torch)
    if with_cuda:
        home = _cuda_home()
        if home is None:
            sys.exit("FORCE_CUDA=1 but no nvcc was found: set CUDA_HOME")
        os.environ.setdefault("CUDA_HOME", home)
        cpp_extension.CUDA_HOME = home
        # Without a GPU torch would compile for every architecture it knows;
        # each one re-parses the sources. sm_75 (T4), sm_80 (A100) and sm_90
        # (H100 / H200) with PTX, which the driver JIT-compiles for newer GPUs.
        # Override as usual.
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "7.5;8.0;9.0+PTX")

    sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/ops/*.cpp") + glob.glob("csrc/ops/cpu/*.cpp"))
    # The CPU epilogue's loops vectorise with `omp simd` and without trapping math, which blocks
    # if-converting the clamps (torch builds so too). -fopenmp: at::parallel_for is a header template
    # that runs serially unless _OPENMP is defined; it links the libgomp.so.1 torch already loaded.
    cxx_flags = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
    define_macros = []
    include_dirs = [os.path.join(ROOT, "csrc")]
    library_dirs = []
    if with_cuda:
        sources += sorted(glob.glob("csrc/ops/cuda/*.cpp") + glob.glob("csrc/ops/cuda/*.cu"))
        define_macros.append(("WITH_CUDA", None))
        extra_inc, extra_lib = _pip_cuda_dirs()
        include_dirs += extra_inc
        library_dirs += extra_lib
        extension = cpp_extension.CUDAExtension
        extra = {"cxx": cxx_flags, "nvcc": NVCC_FLAGS}
    else:
        extension = cpp_extension.CppExtension
        extra = {"cxx": cxx_flags}
    print(f"csl_ext: building the {'CUDA' if with_cuda else 'CPU-only'} extension", file=sys.stderr)
    ext = extension(
        name="csl_ext._C",
        sources=sources,
        include_dirs=include_dirs,
        library_dirs=library_dirs,
        define_macros=define_macros,
        extra_compile_args=extra,
        extra_link_args=["-fopenmp"],
        py_limited_api=False,
    )
    return [ext], {"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)}


ext_modules, cmdclass = _extensions()

setup(
    name="csl_ext",
    version="0.1.0",
    description="Contrastive self-supervised learning with fused C++/CUDA ops and DALI augmentation",
    packages=find_packages(include=["csl_ext", "csl_ext.*"]),
    python_requires=">=3.10",
    # scikit-learn ships csl-train's default dataset (digits); the [train] extra
    # only adds logs and progress bars, which training does without
    install_requires=["torch>=2.4", "torchvision", "numpy", "scikit-learn"],
    extras_require={
        "dali": ["nvidia-dali-cuda130"],
        "train": ["tqdm", "tensorboard", "matplotlib"],
        "test": ["pytest", "pytest-benchmark"],
    },
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    entry_points={"console_scripts": ["csl-train=csl_ext.cli:main", "csl-ablate=csl_ext.ablate:main"]},
)
