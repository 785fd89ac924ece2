"""Checkpoint files laid out exactly as each public release saves them, with random weights.

Each builder takes the network to transfer (``net``) and a second, different random network of the same depth
(``other``) that stands for every other copy the file holds (momentum/EMA encoder, DINO student): taking the wrong
one fails the exact comparison. Layouts were read from each project's own model and save code (named per builder);
heads are built from real torch modules with their real key names but small widths, to keep the files small.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torch.nn as nn
import torchvision

Obj = dict
Builder = Callable[[torchvision.models.ResNet, torchvision.models.ResNet], Obj]


def _sd(module: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    return {f"{prefix}{k}": v for k, v in module.state_dict().items()}


def trunk(net: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """The ResNet without fc (what every method that replaces fc by a head or Identity saves)."""
    return {f"{prefix}{k}": v for k, v in net.state_dict().items() if not k.startswith("fc.")}


def without_num_batches_tracked(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A plain dict (no ``_metadata``), as files saved before PyTorch 0.4.1 are."""
    return {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}


def _mlp(dims: list[int], last_bn: bool, bias: bool = False, bn_affine_last: bool = False) -> nn.Sequential:
    """Linear/BatchNorm1d/ReLU stack as MoCo v3's ``_build_mlp`` and Barlow Twins' projector build it."""
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1], bias=bias))
        if i < len(dims) - 2:
            layers += [nn.BatchNorm1d(dims[i + 1]), nn.ReLU()]
        elif last_bn:
            layers.append(nn.BatchNorm1d(dims[i + 1], affine=bn_affine_last))
    return nn.Sequential(*layers)


def _feat(net: torchvision.models.ResNet) -> int:
    return net.fc.in_features


def mixbench_moco(net, other) -> Obj:
    """Our MoCo v2 checkpoint (mmengine Runner): encoder_q/encoder_k with the fc.0/fc.2 MLP, queue."""
    head = nn.Sequential(nn.Linear(_feat(net), 32), nn.ReLU(), nn.Linear(32, 16))
    return {
        "meta": {"epoch": 2},
        "state_dict": {
            **trunk(net, "encoder_q."), **_sd(head, "encoder_q.fc."),
            **trunk(other, "encoder_k."), **_sd(head, "encoder_k.fc."),
            "queue": torch.randn(16, 8), "queue_ptr": torch.zeros(1, dtype=torch.long),
        },
        "message_hub": {},
    }


def moco_public(net, other) -> Obj:
    """facebookresearch/moco main_moco.py: DDP-wrapped MoCo (module.encoder_q/encoder_k, queue)."""
    head = nn.Sequential(nn.Linear(_feat(net), 32), nn.ReLU(), nn.Linear(32, 16))
    return {
        "epoch": 200, "arch": "resnet50", "optimizer": {"state": {}, "param_groups": []},
        "state_dict": {
            **trunk(net, "module.encoder_q."), **_sd(head, "module.encoder_q.fc."),
            **trunk(other, "module.encoder_k."), **_sd(head, "module.encoder_k.fc."),
            "module.queue": torch.randn(16, 8), "module.queue_ptr": torch.zeros(1, dtype=torch.long),
        },
    }


def moco_v3(net, other) -> Obj:
    """facebookresearch/moco-v3 moco/builder.py MoCo_ResNet: fc = 2-layer BN MLP (last BN without affine),
    predictor = 2-layer MLP without last BN; main_moco.py saves the DDP model plus optimizer and AMP scaler."""
    proj, pred = _mlp([_feat(net), 32, 16], last_bn=True), _mlp([16, 32, 16], last_bn=False)
    return {
        "epoch": 100, "arch": "resnet50", "optimizer": {"state": {}, "param_groups": []},
        "scaler": {"scale": 65536.0, "growth_factor": 2.0},
        "state_dict": {
            **trunk(net, "module.base_encoder."), **_sd(proj, "module.base_encoder.fc."),
            **trunk(other, "module.momentum_encoder."), **_sd(proj, "module.momentum_encoder.fc."),
            **_sd(pred, "module.predictor."),
        },
    }


def simsiam(net, other) -> Obj:
    """facebookresearch/simsiam simsiam/builder.py: encoder.fc = Linear-BN-ReLU-Linear-BN-ReLU-fc-BN(affine=False);
    predictor Linear-BN-ReLU-Linear(bias). One encoder, so ``other`` is not in the file."""
    d = _feat(net)
    fc = nn.Sequential(nn.Linear(d, d, bias=False), nn.BatchNorm1d(d), nn.ReLU(), nn.Linear(d, d, bias=False),
                       nn.BatchNorm1d(d), nn.ReLU(), nn.Linear(d, 16), nn.BatchNorm1d(16, affine=False))
    pred = nn.Sequential(nn.Linear(16, 8, bias=False), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 16))
    return {
        "epoch": 100, "arch": "resnet50", "optimizer": {"state": {}, "param_groups": []},
        "state_dict": {**trunk(net, "module.encoder."), **_sd(fc, "module.encoder.fc."),
                       **_sd(pred, "module.predictor.")},
    }


def swav(net, other) -> Obj:
    """facebookresearch/swav: the hub file is the DDP model's state_dict (module.), torchvision names plus
    projection_head (Linear-BN-ReLU-Linear) and prototypes (Linear without bias)."""
    head = nn.Sequential(nn.Linear(_feat(net), 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 16))
    return {**trunk(net, "module."), **_sd(head, "module.projection_head."),
            "module.prototypes.weight": torch.randn(30, 16)}


def dino_backbone(net, other) -> Obj:
    """facebookresearch/dino dino_resnet50_pretrain.pth: the teacher backbone, fc = Identity (no fc keys)."""
    return trunk(net)


def dino_full(net, other) -> Obj:
    """facebookresearch/dino main_dino.py save_dict: DDP-wrapped MultiCropWrapper(backbone, DINOHead) for student
    and teacher, plus optimizer, epoch, args (an argparse.Namespace) and the loss's center."""
    head = nn.Sequential(nn.Linear(_feat(net), 32), nn.GELU(), nn.Linear(32, 16))
    # last_layer = nn.utils.weight_norm(nn.Linear(...)): saved as weight_g (norms) and weight_v (directions)
    head_sd = {**_sd(head, "mlp."), "last_layer.weight_g": torch.rand(20, 1),
               "last_layer.weight_v": torch.randn(20, 16)}
    return {
        "teacher": {**trunk(net, "module.backbone."), **{f"module.head.{k}": v for k, v in head_sd.items()}},
        "student": {**trunk(other, "module.backbone."), **{f"module.head.{k}": v for k, v in head_sd.items()}},
        "optimizer": {"state": {}, "param_groups": []}, "epoch": 800,
        "args": argparse.Namespace(arch="resnet50", out_dim=60000, momentum_teacher=0.996),
        "dino_loss": {"center": torch.zeros(1, 16)},
    }


def barlow_backbone(net, other) -> Obj:
    """facebookresearch/barlowtwins resnet50.pth = model.module.backbone.state_dict() (fc = Identity)."""
    return trunk(net)


def barlow_full(net, other) -> Obj:
    """facebookresearch/barlowtwins main.py checkpoint.pth: dict(epoch, model=DDP state_dict, optimizer);
    projector Linear(bias=False)-BN-ReLU stack, bn = BatchNorm1d(affine=False). One network."""
    proj = _mlp([_feat(net), 32, 32, 16], last_bn=False)
    bn = nn.BatchNorm1d(16, affine=False)
    return {"epoch": 1000, "optimizer": {"state": {}, "param_groups": []},
            "model": {**trunk(net, "module.backbone."), **_sd(proj, "module.projector."), **_sd(bn, "module.bn.")}}


def densecl_training(net, other) -> Obj:
    """WXinlong/DenseCL openselfsup/models/densecl.py under mmcv's Runner: encoder_q = Sequential(backbone, neck),
    backbone = encoder_q[0] (the same module twice), encoder_k its momentum copy, queue/queue2 and pointers."""
    neck = {"mlp.0.weight": torch.randn(32, _feat(net)), "mlp.0.bias": torch.randn(32),
            "mlp.2.weight": torch.randn(16, 32), "mlp.2.bias": torch.randn(16),
            "mlp2.0.weight": torch.randn(32, _feat(net), 1, 1), "mlp2.2.weight": torch.randn(16, 32, 1, 1)}
    return {
        "meta": {"epoch": 200, "mmcv_version": "0.3.0"}, "optimizer": {"state": {}, "param_groups": []},
        "state_dict": {
            **trunk(net, "encoder_q.0."), **{f"encoder_q.1.{k}": v for k, v in neck.items()},
            **trunk(other, "encoder_k.0."), **{f"encoder_k.1.{k}": v for k, v in neck.items()},
            **trunk(net, "backbone."),
            "queue": torch.randn(16, 8), "queue_ptr": torch.zeros(1, dtype=torch.long),
            "queue2": torch.randn(16, 8), "queue2_ptr": torch.zeros(1, dtype=torch.long),
        },
    }


def densecl_extracted(net, other) -> Obj:
    """DenseCL's tools/extract_backbone_weights.py: {'state_dict': backbone keys with 'backbone.' removed}."""
    return {"state_dict": trunk(net)}


def vissl(net, other) -> Obj:
    """facebookresearch/vissl: classy_state_dict.base_model.model = {trunk: ResNeXt trunk (_feature_blocks
    ModuleDict), heads: ModuleList of heads (a SwAV head: projection_head + prototypes0)}."""
    heads = {"0.projection_head.0.weight": torch.randn(32, _feat(net)), "0.projection_head.0.bias": torch.randn(32),
             "0.prototypes0.weight": torch.randn(30, 32)}
    return {
        "phase_idx": 799, "iteration_num": 10, "train_phase_idx": 399, "iteration": 10,
        "type": "consolidated",
        "classy_state_dict": {
            "train": True,
            "base_model": {"model": {"trunk": trunk(net, "_feature_blocks."), "heads": heads}, "meta": {}},
            "optimizer": {"state": {}, "param_groups": []},
            "loss": {"queue": torch.zeros(1)},
        },
    }


def solo_learn(net, other) -> Obj:
    """vturrisi/solo-learn (BYOL): Lightning checkpoint; state_dict of the method module: backbone (fc = Identity),
    classifier (online linear probe), projector, predictor and the momentum_* copies."""
    proj = _mlp([_feat(net), 32, 16], last_bn=False, bias=True)
    pred = _mlp([16, 32, 16], last_bn=False, bias=True)
    return {
        "epoch": 399, "global_step": 1000, "pytorch-lightning_version": "2.0.2",
        "state_dict": {
            **trunk(net, "backbone."), "classifier.weight": torch.randn(100, _feat(net)),
            "classifier.bias": torch.randn(100), **_sd(proj, "projector."), **_sd(pred, "predictor."),
            **trunk(other, "momentum_backbone."), **_sd(proj, "momentum_projector."),
        },
        "loops": {}, "callbacks": {}, "optimizer_states": [], "lr_schedulers": [],
    }


def mmselfsup(net, other) -> Obj:
    """mmselfsup 1.x / mmpretrain MoCo v2: backbone, neck, momentum_encoder = Sequential(backbone, neck) EMA."""
    return {
        "meta": {"epoch": 200},
        "state_dict": {
            **trunk(net, "backbone."), "neck.mlp.0.weight": torch.randn(32, _feat(net)),
            "neck.mlp.2.weight": torch.randn(16, 32), **trunk(other, "momentum_encoder.module.0."),
            "momentum_encoder.steps": torch.tensor(5), "queue": torch.randn(16, 8),
            "queue_ptr": torch.zeros(1, dtype=torch.long), "data_preprocessor.mean": torch.zeros(3, 1, 1),
        },
    }


def torchvision_new(net, other) -> Obj:
    """torchvision's model zoo (new style): the model's state_dict, with fc and num_batches_tracked."""
    return net.state_dict()


def torchvision_classic(net, other) -> Obj:
    """torchvision's classic resnet50-19c8e357.pth: saved before num_batches_tracked existed, with fc."""
    return without_num_batches_tracked(net.state_dict())


def timm(net, other) -> Obj:
    """timm ResNets use torchvision's names; many of its files carry no num_batches_tracked."""
    return without_num_batches_tracked(net.state_dict())


# release (convert.catalog.RELEASES) -> (builder, arch); ResNet-50 where depth matters for the release
FIXTURES: dict[str, tuple[Builder, str]] = {
    "mixbench MoCo pretraining checkpoint (ours)": (mixbench_moco, "resnet18"),
    "MoCo v1/v2 (moco_v2_800ep_pretrain.pth.tar)": (moco_public, "resnet18"),
    "MoCo v3 ResNet-50 (r-50-1000ep.pth.tar)": (moco_v3, "resnet50"),
    "SimSiam (checkpoint_0099.pth.tar)": (simsiam, "resnet18"),
    "SwAV (swav_800ep_pretrain.pth.tar)": (swav, "resnet18"),
    "DINO ResNet-50 backbone (dino_resnet50_pretrain.pth)": (dino_backbone, "resnet18"),
    "DINO ResNet-50 full checkpoint (teacher + student)": (dino_full, "resnet18"),
    "Barlow Twins backbone (resnet50.pth)": (barlow_backbone, "resnet18"),
    "Barlow Twins full checkpoint (checkpoint.pth)": (barlow_full, "resnet18"),
    "DenseCL / OpenSelfSup training checkpoint": (densecl_training, "resnet18"),
    "DenseCL / OpenSelfSup extracted backbone (densecl_r50_imagenet_200ep.pth)": (densecl_extracted, "resnet18"),
    "VISSL (model_final_checkpoint_phase*.torch)": (vissl, "resnet18"),
    "solo-learn (Lightning .ckpt)": (solo_learn, "resnet18"),
    "mmselfsup 1.x / mmpretrain model-zoo checkpoint": (mmselfsup, "resnet18"),
    "torchvision, new style (resnet50-11ad3fa6.pth)": (torchvision_new, "resnet18"),
    "torchvision classic, no num_batches_tracked (resnet50-19c8e357.pth)": (torchvision_classic, "resnet50"),
    "timm ResNet-50 (torchvision names, no num_batches_tracked)": (timm, "resnet18"),
}
