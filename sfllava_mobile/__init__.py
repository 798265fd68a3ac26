"""sfllava-mobile: SlowFast-LLaVA video LLMs, from checkpoint to 4-bit on-device graphs.

Public API: :func:`load`, :mod:`presets`, :class:`SlowFastConfig`, :class:`ModelConfig`,
:mod:`ops` (``slowfast_pool``, ``slowfast_token_count``), :mod:`video`, :class:`VideoLLM`.
"""

import logging as _logging

# transformers imports torchao while building Qwen2; torchao then logs about CUDA-only kernels it
# cannot load on a CPU machine, and torch about pytree enums. Neither concerns this toolkit.
for _name in ("torchao", "torchao.kernel.intmm", "torch.utils._pytree"):
    _logging.getLogger(_name).setLevel(_logging.ERROR)

from . import presets  # noqa: E402
from .checkpoint import load, save  # noqa: E402
from .config import ModelConfig, SlowFastConfig  # noqa: E402
from .errors import CheckpointError, ConfigError, SfllavaError, VideoError  # noqa: E402

__version__ = "0.1.0"


def __getattr__(name):
    # VideoLLM pulls in transformers' model classes; import it only when asked for.
    if name == "VideoLLM":
        from .model import VideoLLM

        return VideoLLM
    raise AttributeError(name)


__all__ = ["CheckpointError", "ConfigError", "ModelConfig", "SfllavaError", "SlowFastConfig", "VideoError",
           "VideoLLM", "load", "presets", "save"]
