"""fastdream's differentiable ops over the compiled kernels; `fastdream.ops.reference` holds their PyTorch twins."""
from fastdream.ops.geometry import *  # noqa: F401,F403
from fastdream.ops.rendering import *  # noqa: F401,F403
from fastdream.ops.encoding import *  # noqa: F401,F403
from fastdream.ops.sampling import *  # noqa: F401,F403
from fastdream.ops import geometry as _geometry, rendering as _rendering, encoding as _encoding, sampling as _sampling

__all__ = [*_geometry.__all__, *_rendering.__all__, *_encoding.__all__, *_sampling.__all__]
