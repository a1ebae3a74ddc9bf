"""The recipes the step benchmark times through Trainer.train_step: the default recipe, the peer renderers, and a
ladder of speed levers, each row adding one lever to the row before it."""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Variant", "VARIANTS", "LADDER", "FAST_VARIANTS", "EAGER", "COMPILED"]


@dataclass(frozen=True)
class Variant:
    """overrides: config dot-keys on top of the bench's base config; adds: the lever this row adds to `after`."""

    name: str
    overrides: dict = field(default_factory=dict)
    note: str = ""
    after: str | None = None
    adds: str | None = None
    cuda_only: bool = False  # a lever that does nothing on the CPU (the row then equals the one before)
    compiles: bool = False  # runs torch.compile: slow to warm up, kept in its own process by gpu_check.sh


_PLAIN = {"optim.fused": False, "guidance.channels_last": False, "train.cudnn_benchmark": False}
_FAST_RENDER = {"render.render_step_size": 0.02, "render.grid_resolution": 32}  # the `fast` preset's render
_TINY = {"guidance.encoder": "tiny"}
_GRAPHS = {"train.cuda_graphs": True}
_COMPILE = {"guidance.compile": True}

_LIST = [
    Variant("default", {}, "the default recipe (what `fastdream generate` runs): fastdream renderer, SD VAE encoder, "
            "bf16 autocast, fused Adam, channels_last, cudnn.benchmark, eager", after="lever_channels_last",
            adds="cudnn.benchmark"),
    Variant("torch_renderer", {"render.backend": "torch"}, "the default recipe with the PyTorch renderer"),
    Variant("nerfacc_renderer", {"render.backend": "nerfacc"}, "the default recipe with nerfacc's sampler and "
            "compositing (CUDA only, when importable)", cuda_only=True),
    Variant("lever_plain", dict(_PLAIN), "the default recipe without fused Adam, channels_last, cudnn.benchmark"),
    Variant("lever_fused_adam", {**_PLAIN, "optim.fused": True}, "+ fused Adam", after="lever_plain",
            adds="fused Adam", cuda_only=True),
    Variant("lever_channels_last", {"train.cudnn_benchmark": False}, "+ channels_last", after="lever_fused_adam",
            adds="channels_last", cuda_only=True),
    Variant("lever_tiny_encoder", dict(_TINY), "+ TAESD encoder (guidance.encoder=tiny): approximate latents, "
            "quality effect unmeasured", after="default", adds="tiny encoder"),
    Variant("lever_cuda_graphs", {**_TINY, **_GRAPHS}, "+ CUDA graph of the UNet CFG forward",
            after="lever_tiny_encoder", adds="CUDA graphs", cuda_only=True),
    Variant("fast", {**_TINY, **_GRAPHS, **_FAST_RENDER}, "the fast recipe without compile: tiny encoder, CUDA "
            "graphs, the fast preset's render (step 0.02, grid 32: half the samples per ray, coarser grid)",
            after="lever_cuda_graphs", adds="fast render settings"),
    Variant("fast_latent", {**_TINY, **_GRAPHS, **_FAST_RENDER, "guidance.latent_warmup": 1.0},
            "a latent warm-up step of the fast recipe ([rgb, opacity] fed as latents, no encoder): what the first "
            "guidance.latent_warmup share of steps costs", after="fast", adds="latent warm-up step"),
    Variant("lever_compile", {**_TINY, **_GRAPHS, **_COMPILE}, "+ torch.compile of the encoder and the UNet",
            after="lever_cuda_graphs", adds="torch.compile", cuda_only=True, compiles=True),
    Variant("fast_compile", {**_TINY, **_GRAPHS, **_COMPILE, **_FAST_RENDER}, "the fast recipe with torch.compile",
            after="fast", adds="torch.compile", cuda_only=True, compiles=True),
]
VARIANTS: dict[str, Variant] = {v.name: v for v in _LIST}
# The lever rows in the order the summary reports them, each with the row it adds to.
LADDER = ("lever_plain", "lever_fused_adam", "lever_channels_last", "default", "lever_tiny_encoder",
          "lever_cuda_graphs", "lever_compile", "fast", "fast_compile", "fast_latent")
FAST_VARIANTS = ("fast", "fast_compile")
EAGER = tuple(v.name for v in _LIST if not v.compiles)
COMPILED = tuple(v.name for v in _LIST if v.compiles)
