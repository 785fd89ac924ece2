"""Key maps as data: ordered rename/drop rules for every source layout and the detectron2 target.

A rule is ``(name, pattern, repl, reason)``: ``pattern`` must match the WHOLE key (``re.fullmatch``); the
first rule that matches decides; ``repl`` is a ``re`` template for the new key, or ``None`` to drop it.
A key no rule matches is an error, never silently ignored: that is the whole point (mmengine's
``PretrainedInit`` loads with ``strict=False`` and only warns about keys it did not use).

Backbone keys are torchvision's ResNet names, which are also mmdet's/mmcls's ``ResNet`` names
(``conv1``, ``bn1``, ``layerX.Y.convK``, ``layerX.Y.bnK``, ``layerX.Y.downsample.{0,1}``); only fc differs.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from mixbench.convert.errors import ConversionError

__all__ = [
    "BACKBONE_KEY",
    "BARLOW_FULL_RULES",
    "CMC_RULES",
    "DETECTRON2_RULES",
    "DINO_FULL_RULES",
    "MMDET_RULES",
    "MMSELFSUP_RULES",
    "MOCO_PUBLIC_RULES",
    "MOCO_RULES",
    "MOCO_V3_RULES",
    "MappingResult",
    "Rule",
    "SIMSIAM_RULES",
    "SOLO_LEARN_RULES",
    "SWAV_RULES",
    "TORCHVISION_RULES",
    "VISSL_RULES",
    "apply_rules",
]


@dataclass(frozen=True)
class Rule:
    """One rename (``repl`` a ``re`` template) or drop (``repl=None``) rule, with the reason it exists."""

    name: str
    pattern: str
    repl: str | None
    reason: str


# One torchvision ResNet backbone tensor name (no fc). Bottleneck has conv/bn 1-3, BasicBlock 1-2.
_BN = r"(?:weight|bias|running_mean|running_var|num_batches_tracked)"
BACKBONE_KEY = (
    rf"(?:conv1\.weight|bn1\.{_BN}"
    rf"|layer[1-4]\.\d+\.(?:conv[1-3]\.weight|bn[1-3]\.{_BN}|downsample\.0\.weight|downsample\.1\.{_BN}))"
)


def _backbone_under(prefix: str, name: str, reason: str, out_prefix: str = "") -> Rule:
    """Keep ``<prefix><backbone key>`` as ``<out_prefix><backbone key>``."""
    return Rule(name, rf"{re.escape(prefix)}({BACKBONE_KEY})", rf"{out_prefix}\1", reason)


# A plain torchvision ResNet state_dict (torchvision's model zoo, a supervised training script, our own
# torchvision output). ``module.`` is what nn.DataParallel/DDP prepend when the wrapper itself is saved.
TORCHVISION_RULES: tuple[Rule, ...] = (
    Rule("drop_fc", r"(?:module\.)?fc\..+", None, "classifier head: not part of a detection backbone"),
    _backbone_under("module.", "strip_module", "nn.DataParallel/DDP prefix of a wrapped model"),
    _backbone_under("", "backbone", "already torchvision ResNet names"),
)

# Our own mmdet output ({'state_dict': backbone, 'meta': ...}): final names already (idempotent).
MMDET_RULES: tuple[Rule, ...] = (
    _backbone_under("", "backbone", "mixbench mmdet output: already torchvision/mmdet ResNet names"),
)

# This project's MoCo pretraining checkpoint: mmengine Runner state_dict of the MoCo module.
MOCO_RULES: tuple[Rule, ...] = (
    Rule(
        "drop_head_q",
        r"encoder_q\.fc\..+",
        None,
        "MoCo projection head (Linear for v1, MLP fc.0/fc.2 for v2): trained for the contrastive loss only",
    ),
    _backbone_under(
        "encoder_q.",
        "encoder_q",
        "query encoder = the backbone trained by gradient (what MoCo's own converter keeps)",
    ),
    Rule(
        "drop_encoder_k",
        r"encoder_k\..+",
        None,
        "key encoder: a momentum (EMA) copy of the query encoder, never what MoCo transfers",
    ),
    Rule(
        "drop_queue",
        r"queue(?:_ptr)?",
        None,
        "MoCo's queue of K negative features and its pointer: not weights",
    ),
)

# The MoCo authors' released checkpoints (also Un-Mix): DDP-wrapped, so everything is under ``module.``.
MOCO_PUBLIC_RULES: tuple[Rule, ...] = (
    Rule(
        "drop_head_q",
        r"module\.encoder_q\.fc\..+",
        None,
        "MoCo projection head (Linear for v1, MLP fc.0/fc.2 for v2): trained for the contrastive loss only",
    ),
    _backbone_under(
        "module.encoder_q.",
        "encoder_q",
        "query encoder = the backbone trained by gradient (as in MoCo's convert-pretrain-to-detectron2)",
    ),
    Rule(
        "drop_encoder_k",
        r"module\.encoder_k\..+",
        None,
        "key encoder: a momentum (EMA) copy of the query encoder, never what MoCo transfers",
    ),
    Rule("drop_queue", r"module\.queue(?:_ptr)?", None, "MoCo's queue of negative features and its pointer"),
)

# mmselfsup 0.x/1.x and mmpretrain algorithms: ``backbone.`` is mmcls's ResNet (torchvision names).
MMSELFSUP_RULES: tuple[Rule, ...] = (
    _backbone_under(
        "backbone.", "backbone", "the algorithm's backbone (mmcls ResNet, torchvision key names)"
    ),
    Rule(
        "drop_momentum_encoder",
        r"momentum_encoder\..+",
        None,
        "mmselfsup 1.x/mmpretrain momentum encoder: EMA copy of backbone+neck (MoCo v2, BYOL, ...)",
    ),
    Rule("drop_target_net", r"target_net\..+", None, "mmselfsup 0.x BYOL target network: EMA copy"),
    Rule("drop_encoder_k", r"encoder_k\..+", None, "mmselfsup 0.x MoCo key encoder: EMA copy"),
    Rule(
        "drop_encoder_q",
        r"(?:encoder_q|online_net)\..+",
        None,
        "mmselfsup 0.x registers the same backbone+neck twice (encoder_q/online_net = Sequential(backbone, "
        "neck)); the backbone.* copy is the one kept",
    ),
    Rule("drop_neck", r"neck\..+", None, "projection neck: trained for the pretext loss only"),
    Rule("drop_head", r"head\..+", None, "pretext loss head (some versions keep the MoCo queue here)"),
    Rule(
        "drop_queue",
        r"queue2?(?:_ptr)?",
        None,
        "MoCo's queue of negative features and its pointer (DenseCL adds queue2 for its dense features)",
    ),
    Rule("drop_data_preprocessor", r"data_preprocessor\..+", None, "normalisation constants, not weights"),
)

_MODULE = r"(?:module\.)?"  # DDP's prefix: present when the wrapped model was saved, absent otherwise


def _backbone_under_any(prefix: str, name: str, reason: str) -> tuple[Rule, Rule]:
    """Keep ``[module.]<prefix><backbone key>``: the same network saved with or without its DDP wrapper."""
    return (
        _backbone_under(f"module.{prefix}", f"{name}_ddp", f"{reason} (saved DDP-wrapped)"),
        _backbone_under(prefix, name, reason),
    )


# facebookresearch/moco-v3 main_moco.py: torch.save({'state_dict': model.state_dict(), ...}) of the DDP-wrapped
# MoCo_ResNet: base_encoder and momentum_encoder are torchvision ResNets whose fc is the projection MLP
# (Linear/BatchNorm1d stack), predictor a second MLP. main_lincls.py keeps module.base_encoder minus fc.
MOCO_V3_RULES: tuple[Rule, ...] = (
    Rule(
        "drop_projector",
        rf"{_MODULE}base_encoder\.fc\..+",
        None,
        "MoCo v3 projection MLP (Linear + BatchNorm1d layers in fc): trained for the contrastive loss only",
    ),
    *_backbone_under_any("base_encoder.", "base_encoder", "base encoder = the one trained by gradient"),
    Rule(
        "drop_momentum_encoder",
        rf"{_MODULE}momentum_encoder\..+",
        None,
        "momentum encoder: an EMA copy of base_encoder (with its own fc MLP); MoCo v3 transfers base_encoder",
    ),
    Rule("drop_predictor", rf"{_MODULE}predictor\..+", None, "MoCo v3 prediction MLP on the base branch"),
)

# facebookresearch/simsiam builder.py: one torchvision ResNet as ``encoder`` whose fc was replaced by the
# 3-layer projector (Linear, BatchNorm1d, ReLU, ..., BatchNorm1d(affine=False)), plus ``predictor``.
SIMSIAM_RULES: tuple[Rule, ...] = (
    Rule(
        "drop_projector",
        rf"{_MODULE}encoder\.fc\..+",
        None,
        "SimSiam projector (3 Linear + BatchNorm1d layers in fc): trained for the loss only",
    ),
    *_backbone_under_any("encoder.", "encoder", "SimSiam's only encoder (shared by both views)"),
    Rule("drop_predictor", rf"{_MODULE}predictor\..+", None, "SimSiam prediction MLP"),
)

# facebookresearch/swav src/resnet50.py: torchvision names (its extra ConstantPad2d(1) + conv1 padding 2 equals
# torchvision's padding 3 with zeros, and has no weights) plus projection_head (MLP) and prototypes (one
# Linear, or MultiPrototypes' prototypes.prototypesN). Saved DDP-wrapped: everything under module.
SWAV_RULES: tuple[Rule, ...] = (
    Rule("drop_projection_head", rf"{_MODULE}projection_head\..+", None, "SwAV projection MLP"),
    Rule("drop_prototypes", rf"{_MODULE}prototypes\..+", None, "SwAV prototype vectors (the clustering layer)"),
    *_backbone_under_any("", "backbone", "SwAV's only network, torchvision names"),
)

# facebookresearch/dino main_dino.py save_dict: {'student': ..., 'teacher': ..., 'optimizer', 'epoch', 'args',
# 'dino_loss'}; each network is MultiCropWrapper(backbone, DINOHead) and, for a ResNet (it has BatchNorm), both
# are DDP-wrapped (module.). ``sources`` puts the two side by side as teacher.* / student.*.
DINO_FULL_RULES: tuple[Rule, ...] = (
    Rule(
        "teacher_ddp",
        rf"teacher\.module\.backbone\.({BACKBONE_KEY})",
        r"\1",
        "DINO teacher backbone (DDP-wrapped, as main_dino.py saves a ResNet); eval_linear.py's default "
        "checkpoint_key='teacher'",
    ),
    Rule(
        "teacher",
        rf"teacher\.backbone\.({BACKBONE_KEY})",
        r"\1",
        "DINO teacher backbone (eval_linear.py's default checkpoint_key='teacher')",
    ),
    Rule("drop_teacher_head", rf"teacher\.{_MODULE}head\..+", None, "DINO projection head (MLP + last_layer)"),
    Rule(
        "drop_student",
        r"student\..+",
        None,
        "DINO student: trained by gradient, but DINO evaluates and releases the teacher (its EMA)",
    ),
)

# facebookresearch/barlowtwins main.py checkpoint.pth: {'epoch', 'model': model.state_dict(), 'optimizer'} of
# the DDP-wrapped BarlowTwins: backbone (torchvision ResNet, fc = Identity), projector, bn (BatchNorm1d without
# affine, normalising the embeddings). The released resnet50.pth is model.module.backbone: torchvision layout.
BARLOW_FULL_RULES: tuple[Rule, ...] = (
    *_backbone_under_any("backbone.", "backbone", "Barlow Twins' one network (released as resnet50.pth)"),
    Rule("drop_projector", rf"{_MODULE}projector\..+", None, "Barlow Twins projector MLP"),
    Rule(
        "drop_bn",
        rf"{_MODULE}bn\..+",
        None,
        "BatchNorm1d(affine=False) on the embeddings before the cross-correlation: part of the loss",
    ),
)

# vturrisi/solo-learn: a Lightning checkpoint whose state_dict is the method module: backbone (fc = Identity),
# classifier (the online linear probe on detached features), projector/predictor/prototypes/head per method,
# and for momentum methods momentum_backbone/momentum_projector/momentum_classifier/momentum_head, queue.
SOLO_LEARN_RULES: tuple[Rule, ...] = (
    _backbone_under("backbone.", "backbone", "online backbone, what solo-learn's main_linear.py loads"),
    Rule(
        "drop_momentum",
        r"momentum_(?:backbone|projector|classifier|head)\..+",
        None,
        "momentum (EMA) copies of backbone/projector/classifier/head",
    ),
    Rule(
        "drop_heads",
        r"(?:projector|predictor|head|prototypes)(?:\..+)?",
        None,
        "method heads: projector, predictor, DINO head, SwAV/DeepCluster prototypes (pretext loss only)",
    ),
    Rule(
        "drop_classifier",
        r"classifier\.(?:weight|bias)",
        None,
        "online linear classifier trained on detached features during pretraining (monitoring only)",
    ),
    Rule(
        "drop_queue",
        r"queue(?:_ptr|_y)?|local_memory_(?:index|embeddings)",
        None,
        "MoCo/NNCLR queues and their pointer, DeepCluster v2's memory bank: not weights",
    ),
)

# facebookresearch/vissl: checkpoint['classy_state_dict']['base_model']['model'] = {'trunk': ..., 'heads': ...};
# its ResNeXt trunk keeps torchvision's modules in an nn.ModuleDict named _feature_blocks. ``sources`` flattens
# the two dicts to trunk.* / heads.*.
VISSL_RULES: tuple[Rule, ...] = (
    _backbone_under("trunk._feature_blocks.", "trunk", "VISSL trunk: torchvision modules in _feature_blocks"),
    Rule("drop_heads", r"heads\..+", None, "VISSL heads (projection MLP, prototypes or linear classifier)"),
)

# This project's CMC checkpoint: two half-width ResNets. The halves keep separate prefixes here;
# ``convert.cmc_fold`` places them block-diagonally into one RGB ResNet.
CMC_RULES: tuple[Rule, ...] = (
    Rule("drop_heads", r"encoder_(?:l|ab)\.fc\..+", None, "CMC projection heads of the two views"),
    _backbone_under(
        "encoder_l.", "encoder_l", "L (Y) view half: first half of every folded channel dim", "l."
    ),
    _backbone_under(
        "encoder_ab.", "encoder_ab", "CbCr view half: second half of every folded channel dim", "ab."
    ),
    Rule("drop_memory", r"(?!encoder_).+", None, "CMC memory bank / contrast buffers (not weights)"),
)


def _detectron2_rules() -> tuple[Rule, ...]:
    """The MoCo authors' convert-pretrain-to-detectron2.py renaming, as full-key rules.

    Theirs is a chain of ``str.replace``: keys without ``layer`` get ``stem.``; ``layerN`` -> ``res{N+1}``;
    ``bnK`` -> ``convK.norm``; ``downsample.0`` -> ``shortcut``; ``downsample.1`` -> ``shortcut.norm``.
    A regex cannot add 1 to N, hence one rule per stage (generated, still plain data).
    """
    rules = [
        Rule("stem_conv", r"conv1\.weight", "stem.conv1.weight", "detectron2 BasicStem"),
        Rule(
            "stem_norm", rf"bn1\.({_BN})", r"stem.conv1.norm.\1", "detectron2 puts the stem BN inside conv1"
        ),
    ]
    for n in range(1, 5):
        stage = f"res{n + 1}"  # detectron2 counts the stem as res1
        rules += [
            Rule(
                f"{stage}_conv",
                rf"layer{n}\.(\d+)\.conv([1-3])\.weight",
                rf"{stage}.\1.conv\2.weight",
                f"layer{n} is detectron2's {stage}",
            ),
            Rule(
                f"{stage}_norm",
                rf"layer{n}\.(\d+)\.bn([1-3])\.({_BN})",
                rf"{stage}.\1.conv\2.norm.\3",
                "detectron2 Conv2d carries its norm: bnK -> convK.norm",
            ),
            Rule(
                f"{stage}_shortcut",
                rf"layer{n}\.(\d+)\.downsample\.0\.weight",
                rf"{stage}.\1.shortcut.weight",
                "projection shortcut conv",
            ),
            Rule(
                f"{stage}_shortcut_norm",
                rf"layer{n}\.(\d+)\.downsample\.1\.({_BN})",
                rf"{stage}.\1.shortcut.norm.\2",
                "projection shortcut BN",
            ),
        ]
    return tuple(rules)


DETECTRON2_RULES: tuple[Rule, ...] = _detectron2_rules()


@dataclass
class MappingResult:
    """Tensors after renaming, the per-key log ``(old, new or None, rule name)`` and the count per rule."""

    tensors: dict[str, torch.Tensor]
    log: list[tuple[str, str | None, str]]
    counts: Counter

    def dropped(self) -> list[tuple[str, str]]:
        return [(old, rule) for old, new, rule in self.log if new is None]


def apply_rules(
    state_dict: Mapping[str, object], rules: tuple[Rule, ...], where: str = "checkpoint"
) -> MappingResult:
    """Rename/drop every key by the first matching rule; any key no rule matches is an error.

    Args:
        state_dict: source tensors by key.
        rules: ordered rules (first match wins).
        where: names the file in error messages.

    Raises:
        ConversionError: unmatched keys (listed), two keys renamed to one, or a non-tensor.
    """
    compiled = [(r, re.compile(r.pattern)) for r in rules]
    out: dict[str, torch.Tensor] = {}
    log: list[tuple[str, str | None, str]] = []
    counts: Counter = Counter()
    unmatched: list[str] = []
    for key, value in state_dict.items():
        for rule, rx in compiled:
            m = rx.fullmatch(key)
            if m is None:
                continue
            new = None if rule.repl is None else m.expand(rule.repl)
            if new is not None:
                if not isinstance(value, torch.Tensor):
                    raise ConversionError(f"{where}: {key!r} holds a {type(value).__name__}, not a tensor")
                if new in out:
                    raise ConversionError(
                        f"{where}: rule {rule.name!r} maps a second key to {new!r} ({key!r})"
                    )
                out[new] = value
            log.append((key, new, rule.name))
            counts[rule.name] += 1
            break
        else:
            unmatched.append(key)
    if unmatched:
        names = ", ".join(r.name for r in rules)
        raise ConversionError(
            f"{where}: {len(unmatched)} key(s) match no rename or drop rule (rules: {names}); "
            f"first: {unmatched[:8]}. Nothing is ignored silently: a key that is neither a ResNet weight nor "
            "a known non-backbone part means the file is not the layout it was taken for."
        )
    return MappingResult(out, log, counts)
