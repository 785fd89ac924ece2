"""What the converter reads, as data: layout names, which encoder each takes, and the public releases per layout.

Kept free of torch (and of the rules, which need it) so that the command line can offer ``--layout`` choices and
print ``--list-layouts`` without importing torch. ``mixbench.convert.sources`` builds its layout registry from
``LAYOUTS`` here and fails at import if a name has no key map, so the two cannot drift apart.

Encoder choices follow each method's own evaluation code (the file and argument are named in ``encoder``): the
network that the authors' linear evaluation / detection transfer loads is the one taken; every other copy
(momentum/EMA encoder, DINO student, heads, queues) is dropped by a named rule.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LAYOUTS", "RELEASES", "LayoutInfo", "Release", "layout_table", "release_rows"]


@dataclass(frozen=True)
class LayoutInfo:
    """A key layout the converter detects: what identifies it and which encoder it takes."""

    name: str
    keys: str  # the keys that identify it (what detection looks at)
    encoder: str  # the encoder taken, and the method's own convention that says so


@dataclass(frozen=True)
class Release:
    """A public checkpoint file (or our own) and the layout it is detected as."""

    release: str
    layout: str  # a LAYOUTS name
    tested: str  # the test that converts a fixture built in exactly this file's layout


_RELEASE_TEST = "tests/convert/test_convert_releases.py"

LAYOUTS: dict[str, LayoutInfo] = {
    info.name: info
    for info in (
        LayoutInfo("mixbench-mmdet", "state_dict: ResNet keys + meta['mixbench_convert']",
                   "the file as is (our own converter output; re-conversion is idempotent)"),
        LayoutInfo("mixbench-moco", "state_dict: encoder_q.*, encoder_k.*, queue",
                   "encoder_q (query, trained by gradient); encoder_k is its momentum copy"),
        LayoutInfo("mixbench-cmc", "state_dict: encoder_l.*, encoder_ab.*",
                   "both halves, folded into one RGB ResNet (convert/cmc_fold.py)"),
        LayoutInfo("moco-public", "state_dict: module.encoder_q.*, module.encoder_k.*, module.queue",
                   "encoder_q, as MoCo's convert-pretrain-to-detectron2.py and main_lincls.py keep it"),
        LayoutInfo("moco-v3", "state_dict: module.base_encoder.*, module.momentum_encoder.*, module.predictor.*",
                   "base_encoder, as MoCo v3's main_lincls.py loads it; momentum_encoder dropped"),
        LayoutInfo("simsiam", "state_dict: module.encoder.* (fc = 3-layer BN projector), module.predictor.*",
                   "encoder (SimSiam has one encoder; main_lincls.py keeps module.encoder minus fc)"),
        LayoutInfo("swav", "module.conv1.weight ... + module.projection_head.*, module.prototypes*",
                   "the one network (SwAV has no momentum copy); eval_linear.py strips module."),
        LayoutInfo("dino-full", "teacher: module.backbone.*/head.*, student: the same",
                   "teacher, DINO's default checkpoint_key='teacher' (eval_linear.py); student dropped"),
        LayoutInfo("barlow-full", "model: module.backbone.*, module.projector.*, module.bn.*",
                   "backbone, what Barlow Twins saves as resnet50.pth (one shared network)"),
        LayoutInfo("solo-learn", "state_dict: backbone.* + momentum_backbone.*/projector.*/classifier.*",
                   "backbone (online), as solo-learn's main_linear.py loads it; momentum_backbone dropped"),
        LayoutInfo("vissl", "classy_state_dict.base_model.model: trunk._feature_blocks.*, heads.*",
                   "trunk (VISSL's feature extractor); heads dropped"),
        LayoutInfo("mmselfsup", "state_dict: backbone.* (+ neck/head, momentum_encoder/encoder_q/encoder_k copies)",
                   "backbone, what mmselfsup's extract-backbone tool keeps; EMA copies dropped"),
        LayoutInfo("torchvision", "conv1.weight, layerN.* (optionally module.-prefixed, under state_dict/model)",
                   "the file is the backbone; fc dropped"),
        LayoutInfo("cmc-official", "[encoder.module.]l_to_ab.*, ab_to_l.*",
                   "refused: its two halves keep full 64-channel stems and were fed Lab (see the message)"),
    )
}

RELEASES: tuple[Release, ...] = (
    Release("mixbench MoCo pretraining checkpoint (ours)", "mixbench-moco", _RELEASE_TEST),
    Release("mixbench CMC pretraining checkpoint (ours)", "mixbench-cmc", "tests/convert/test_convert_cmc_fold.py"),
    Release("mixbench mmdet output (ours, converted again)", "mixbench-mmdet",
            "tests/convert/test_convert_roundtrip.py::test_idempotent_reconversion"),
    Release("MoCo v1/v2 (moco_v2_800ep_pretrain.pth.tar)", "moco-public", _RELEASE_TEST),
    Release("MoCo v3 ResNet-50 (r-50-1000ep.pth.tar)", "moco-v3", _RELEASE_TEST),
    Release("SimSiam (checkpoint_0099.pth.tar)", "simsiam", _RELEASE_TEST),
    Release("SwAV (swav_800ep_pretrain.pth.tar)", "swav", _RELEASE_TEST),
    Release("DINO ResNet-50 backbone (dino_resnet50_pretrain.pth)", "torchvision", _RELEASE_TEST),
    Release("DINO ResNet-50 full checkpoint (teacher + student)", "dino-full", _RELEASE_TEST),
    Release("Barlow Twins backbone (resnet50.pth)", "torchvision", _RELEASE_TEST),
    Release("Barlow Twins full checkpoint (checkpoint.pth)", "barlow-full", _RELEASE_TEST),
    Release("DenseCL / OpenSelfSup training checkpoint", "mmselfsup", _RELEASE_TEST),
    Release("DenseCL / OpenSelfSup extracted backbone (densecl_r50_imagenet_200ep.pth)", "torchvision",
            _RELEASE_TEST),
    Release("VISSL (model_final_checkpoint_phase*.torch)", "vissl", _RELEASE_TEST),
    Release("solo-learn (Lightning .ckpt)", "solo-learn", _RELEASE_TEST),
    Release("mmselfsup 1.x / mmpretrain model-zoo checkpoint", "mmselfsup", _RELEASE_TEST),
    Release("torchvision, new style (resnet50-11ad3fa6.pth)", "torchvision", _RELEASE_TEST),
    Release("torchvision classic, no num_batches_tracked (resnet50-19c8e357.pth)", "torchvision", _RELEASE_TEST),
    Release("timm ResNet-50 (torchvision names, no num_batches_tracked)", "torchvision", _RELEASE_TEST),
    Release("official CMC (HobbitLong/CMC)", "cmc-official", "tests/convert/test_convert_errors.py"),
)


def release_rows() -> list[tuple[str, str, str, str]]:
    """(release, detected as, encoder taken, tested by) for every release, in ``RELEASES`` order."""
    return [(r.release, r.layout, LAYOUTS[r.layout].encoder, r.tested) for r in RELEASES]


def layout_table(fmt: str = "simple") -> str:
    """The release -> layout table (``tabulate`` format ``fmt``; 'github' for the README)."""
    from tabulate import tabulate

    return tabulate(release_rows(), headers=["release", "detected as", "encoder taken", "tested"], tablefmt=fmt)
