"""csl_ext: contrastive self-supervised learning with fused C++/CUDA ops.

The five parts of Falcon & Cho (2020), "A Framework for Contrastive
Self-Supervised Learning and Designing a New Approach"
(https://arxiv.org/abs/2009.00104): augmentation (csl_ext.augment), encoders
(csl_ext.encoders), representation extraction (csl_ext.tasks), similarity and
losses (csl_ext.losses over csl_ext.ops), composed into methods
(csl_ext.methods).
"""

from csl_ext import ops  # noqa: F401  (registers autograd and fake kernels)
from csl_ext._extension import has_cuda_kernels, has_extension

__version__ = "0.1.0"
__all__ = ["has_extension", "has_cuda_kernels", "__version__"]
