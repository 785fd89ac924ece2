"""Every transfer config loads and states the paper's protocol (section 4.3); the reference numbers are the paper's.

Nothing here trusts our own code to read the configs: the values are read straight from mmengine's Config.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[2]
PAPER_CONFIGS = sorted((REPO / "configs/transfer").glob("[vc]*/*.py"))
DEMO_CONFIGS = sorted((REPO / "configs/transfer/demo").glob("*.py"))
ALL_CONFIGS = PAPER_CONFIGS + DEMO_CONFIGS


def load(path: Path) -> Config:
    return Config.fromfile(str(path))


def train_datasets(cfg: Config) -> list[dict]:
    ds = cfg.train_dataloader.dataset
    if ds.type == "RepeatDataset":
        ds = ds.dataset
    return list(ds.datasets) if ds.type == "ConcatDataset" else [ds]


def resize_scale(pipeline: list[dict]) -> tuple[int, int]:
    return tuple(next(t["scale"] for t in pipeline if t["type"] == "Resize"))


def effective_epochs(cfg: Config) -> int:
    ds = cfg.train_dataloader.dataset
    return cfg.train_cfg.max_epochs * (ds.times if ds.type == "RepeatDataset" else 1)


def strings(obj) -> list[str]:
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in strings(v)]
    if isinstance(obj, (list, tuple)):
        return [s for v in obj for s in strings(v)]
    return [obj] if isinstance(obj, str) else []


def test_config_set_is_complete():
    names = {p.name for p in PAPER_CONFIGS}
    for det, data in (("faster-rcnn", "voc0712"), ("retinanet", "coco"), ("mask-rcnn", "coco")):
        for bn in ("frozen", "finetune"):
            assert f"{det}_r50_fpn_{bn}-bn_1x_{data}.py" in names
    assert len(DEMO_CONFIGS) == 6


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=lambda p: p.name)
def test_bn_neck_heads_and_no_checkpoint(path: Path):
    cfg = load(path)
    bb = cfg.model.backbone
    if "frozen-bn" in path.name:  # paper: "we fix all BN parameters"
        assert bb.norm_cfg == dict(type="BN", requires_grad=False) and bb.norm_eval is True
    else:  # paper: fine-tune BN "to calibrate the distributions" (SyncBN across GPUs)
        assert bb.norm_cfg == dict(type="SyncBN", requires_grad=True) and bb.norm_eval is False
    assert bb.frozen_stages == -1  # all layers fine-tuned
    # No norm in the neck or any newly initialised layer, stated explicitly.
    assert "norm_cfg" in cfg.model.neck and cfg.model.neck.norm_cfg is None
    heads = [cfg.model[k] for k in ("bbox_head",) if k in cfg.model]
    heads += [cfg.model.roi_head[k] for k in ("bbox_head", "mask_head") if "roi_head" in cfg.model
              and k in cfg.model.roi_head]
    # The one exception: the CPU demo's RetinaNet towers carry GroupNorm (configs/transfer/demo/_base_/cpu_demo.py).
    demo_retina_gn = dict(type="GN", num_groups=32, requires_grad=True)
    expected_norm = demo_retina_gn if path in DEMO_CONFIGS and "retinanet" in path.name else None
    assert heads and all("norm_cfg" in h and h.norm_cfg == expected_norm for h in heads)
    # Checkpoints are injected by the runner, never written in a config.
    assert bb.init_cfg is None and cfg.load_from is None
    assert not [s for s in strings(cfg.to_dict()) if s.endswith((".pth", ".pkl")) or "://" in s]


@pytest.mark.parametrize("path", [p for p in PAPER_CONFIGS if "voc" in p.name], ids=lambda p: p.name)
def test_voc_protocol(path: Path):
    cfg = load(path)
    sets = train_datasets(cfg)
    assert [(d.data_prefix.sub_data_root, d.ann_file) for d in sets] == [
        ("VOC2007/", "VOC2007/ImageSets/Main/trainval.txt"), ("VOC2012/", "VOC2012/ImageSets/Main/trainval.txt")]
    assert cfg.test_dataloader.dataset.ann_file == "VOC2007/ImageSets/Main/test.txt"
    assert all(resize_scale(d.pipeline) == (1000, 600) for d in sets)
    assert resize_scale(cfg.test_dataloader.dataset.pipeline) == (1000, 600)
    assert effective_epochs(cfg) == 12  # RepeatDataset(times=3) x 4 epochs
    assert cfg.model.roi_head.bbox_head.num_classes == 20
    assert cfg.test_evaluator.type == "VOCRecallMetric" and cfg.test_evaluator.eval_mode == "11points"
    assert cfg.optim_wrapper.optimizer.lr == 0.01 and cfg.train_dataloader.batch_size == 2


@pytest.mark.parametrize("path", [p for p in PAPER_CONFIGS if "coco" in p.name], ids=lambda p: p.name)
def test_coco_protocol(path: Path):
    cfg = load(path)
    (train,) = train_datasets(cfg)
    assert train.ann_file == "annotations/instances_train2017.json"
    assert cfg.test_dataloader.dataset.ann_file == "annotations/instances_val2017.json"
    assert resize_scale(train.pipeline) == (1333, 800)
    assert resize_scale(cfg.test_dataloader.dataset.pipeline) == (1333, 800)
    assert effective_epochs(cfg) == 12
    assert cfg.optim_wrapper.optimizer.lr == 0.02  # paper: "initial learning rate is set to 0.02"
    assert cfg.param_scheduler[-1].milestones == [8, 11]  # mmdet's 1x schedule
    head = cfg.model.bbox_head if "retinanet" in path.name else cfg.model.roi_head.bbox_head
    assert head.num_classes == 80
    metric = cfg.test_evaluator.metric
    assert (metric == "bbox") if "retinanet" in path.name else (list(metric) == ["bbox", "segm"])


def _flat(obj, prefix=""):
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in _flat(val, f"{prefix}{key}.").items()}
    if isinstance(obj, (list, tuple)):
        return {k: v for i, val in enumerate(obj) for k, v in _flat(val, f"{prefix}{i}.").items()}
    return {prefix[:-1]: obj}


@pytest.mark.parametrize("path", DEMO_CONFIGS, ids=lambda p: p.name)
def test_demo_config_changes_only_scale_schedule_widths_depth_data(path: Path):
    paper = REPO / "configs/transfer" / ("voc0712" if "voc" in path.name else "coco") / path.name.replace(
        "r18", "r50").replace("demo", "1x")
    demo, ref = _flat(load(path).to_dict()), _flat(load(paper).to_dict())
    changed = {k for k in demo.keys() | ref.keys() if demo.get(k) != ref.get(k)}  # absent == None
    allowed = ("model.backbone.depth", "model.neck.in_channels", "model.neck.out_channels",
               "model.rpn_head.in_channels", "model.rpn_head.feat_channels",
               "model.roi_head.bbox_roi_extractor.out_channels",
               "model.roi_head.mask_roi_extractor.out_channels", "model.roi_head.bbox_head.in_channels",
               "model.roi_head.bbox_head.fc_out_channels", "model.roi_head.mask_head.in_channels",
               "model.roi_head.mask_head.conv_out_channels", "model.roi_head.mask_head.num_convs",
               "model.bbox_head.in_channels",
               "model.bbox_head.feat_channels", "model.bbox_head.norm_cfg", "model.bbox_head.num_classes",
               "model.train_cfg.rpn_proposal.",
               "model.train_cfg.rcnn.sampler.num", "model.test_cfg.rpn.", "model.test_cfg.score_thr",
               "model.test_cfg.rcnn.max_per_img",
               "optim_wrapper.clip_grad.", "val_cfg", "val_evaluator", "data_root", "img_scale", "max_epochs",
               "train_cfg.", "param_scheduler.", "optim_wrapper.optimizer.lr", "default_hooks.",
               "train_pipeline", "test_pipeline", "train_dataloader.", "val_dataloader", "test_dataloader.",
               "train_dataloader.dataset.times", "demo_")
    assert not [k for k in changed if not k.startswith(allowed)], "demo config changes more than its scale"
    # Within the data loaders only scale, data root, workers, batch, min box size and repetition may change.
    loader_keys = [k for k in changed if k.startswith(("train_dataloader.", "test_dataloader."))]
    assert load(path).val_dataloader is None  # no validation pass: the runner's test pass is the evaluation
    ok = ("scale", "data_root", "num_workers", "persistent_workers", "batch_size", "min_size", "bbox_min_size", "times")
    assert [k for k in loader_keys if not (k.rsplit(".", 1)[-1] in ok or ".scale." in k
                                           or ".dataset.metainfo.classes." in k)] == []
    cfg = load(path)
    assert cfg.model.backbone.depth == 18
    # The demo widths (cpu_demo.py): FPN and every head 128 wide, RoI box FCs 512, 2 mask convs; RetinaNet: GN
    # towers, 3 epochs with one lr step after the second.
    assert cfg.model.neck.out_channels == 128
    if "retinanet" in path.name:
        head = cfg.model.bbox_head
        assert (head.in_channels, head.feat_channels, head.stacked_convs) == (128, 128, 4)
        assert head.norm_cfg.type == "GN" and cfg.train_cfg.max_epochs == 3
        assert cfg.optim_wrapper.optimizer.lr == 0.005 and cfg.optim_wrapper.clip_grad.max_norm == 35
        # 6-way head over exactly the categories the synthetic COCO holds, in train and test
        from mixbench.synthetic import COCO_CLASSES_USED

        assert head.num_classes == len(COCO_CLASSES_USED)
        for loader in (cfg.train_dataloader, cfg.test_dataloader):
            assert tuple(loader.dataset.metainfo.classes) == COCO_CLASSES_USED
        step = cfg.param_scheduler[-1]
        assert step.type == "MultiStepLR" and step.milestones == [2] and step.gamma == 0.1
    else:
        roi = cfg.model.roi_head
        assert cfg.model.rpn_head.feat_channels == roi.bbox_roi_extractor.out_channels == 128
        assert roi.bbox_head.in_channels == 128 and roi.bbox_head.fc_out_channels == 512
        if "mask" in path.name:
            assert roi.mask_roi_extractor.out_channels == roi.mask_head.conv_out_channels == 128
            assert roi.mask_head.num_convs == 2
        assert cfg.train_cfg.max_epochs == 1 and len(cfg.param_scheduler) == 1
        assert cfg.optim_wrapper.optimizer.lr == 0.0025


def test_pipeline_configs_load():
    from mixbench.pipeline import load_pipeline_config

    # ablation_*.py configs are `mixbench ablation`'s (tests/test_ablation.py), not pipelines
    for path in sorted(p for p in (REPO / "configs/pipeline").glob("*.py") if not p.name.startswith("ablation")):
        cfg = load_pipeline_config(path)
        assert cfg["bn_modes"] and cfg["pretrain"]
        names = [e["name"] for e in cfg["pretrain"]]
        assert len(names) == len(set(names)) >= 2  # MoCo vs MoCo + mixtures
    demo = load_pipeline_config(None)
    assert demo["random_init"] and set(demo["suites"]) == {"voc", "coco"} and demo["synthetic"]["preset"] == "demo"


def test_a_pipeline_runs_the_detectors_it_names_and_says_which_it_leaves_out(tmp_path):
    from mixbench.pipeline import PipelineError, load_pipeline_config
    from mixbench.transfer.suites import suite_configs

    every = suite_configs(["voc", "coco"], ["frozen"], "demo")
    assert [p.name.split("_")[0] for p in every] == ["faster-rcnn", "retinanet", "mask-rcnn"]
    only = suite_configs(["voc", "coco"], ["frozen"], "demo", ["mask-rcnn", "faster-rcnn"])
    assert only == [every[0], every[2]]

    demo = load_pipeline_config(None)  # the 10-minute demo: VOC Faster R-CNN only, the full demo all three
    assert [p.name for modes in demo["_transfer_configs"].values() for p in modes["frozen"]] == [every[0].name]
    full = load_pipeline_config("configs/pipeline/demo_full_synthetic.py")
    assert [p for modes in full["_transfer_configs"].values() for p in modes["frozen"]] == every
    assert full["work_dir"] == demo["work_dir"] and full["results_dir"] != demo["results_dir"]

    wrong = tmp_path / "wrong.py"
    wrong.write_text("_base_ = ['%s']\ndetectors = ['faster-rcnn', 'yolo']\n"
                     % (REPO / "configs/pipeline/demo_synthetic.py"))
    with pytest.raises(PipelineError, match=r"wrong\.py: unknown detector \['yolo'\]"):
        load_pipeline_config(wrong)
