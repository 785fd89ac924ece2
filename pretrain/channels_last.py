"""``ChannelsLastModel``: a model built with its 4-d weights stored channels_last (NHWC).

Registered in mmengine's ``MODELS`` so a config (``train.py`` under ``--channels-last``) wraps any model as
``dict(type='ChannelsLastModel', model=<the model's config>)``.
"""

from __future__ import annotations

import torch
from mmengine.registry import MODELS
from torch import nn


@MODELS.register_module()
def ChannelsLastModel(model: dict) -> nn.Module:  # noqa: N802  (an mmengine registry type name)
    """Build ``model`` and store its 4-d weights channels_last, so convolutions run in that layout.

    A builder rather than a wrapper module: the state_dict keys, checkpoints and converters see the model itself.
    """
    return MODELS.build(model).to(memory_format=torch.channels_last)
