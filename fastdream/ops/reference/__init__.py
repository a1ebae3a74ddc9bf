"""Pure-PyTorch twins of every fastdream op: the test oracle and the always-available fallback."""
from fastdream.ops.reference.geometry import *  # noqa: F401,F403
from fastdream.ops.reference.rendering import *  # noqa: F401,F403
from fastdream.ops.reference.encoding import *  # noqa: F401,F403
from fastdream.ops.reference.sampling import *  # noqa: F401,F403
from fastdream.ops.reference import geometry as _geometry, rendering as _rendering, encoding as _encoding, sampling as _sampling

__all__ = [*_geometry.__all__, *_rendering.__all__, *_encoding.__all__, *_sampling.__all__]
