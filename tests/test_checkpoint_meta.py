"""Checkpoint metadata records: the stored form is plain data, read back field by field, mistakes named."""

from __future__ import annotations

import pytest

from mixbench.base.checkpoint_meta import ConvertMeta, MetaError, PretrainMeta

# The stored form of a MoCo checkpoint's meta['mixbench'], written out by hand.
MOCO = {
    "method": "moco", "arch": "resnet18", "width": 1.0, "feature_dim": 512,
    "pixel_mean": [123.675, 116.28, 103.53], "pixel_std": [58.395, 57.12, 57.375], "color": None,
    "mixture": {"global": {"n": 4, "p": 0.5}, "region": None}, "config_name": "moco_r18",
    "moco": {"dim": 128, "K": 4096, "m": 0.999, "T": 0.2, "mlp": True},
}
CONVERT = {
    "source_sha256": "ab" * 32, "source_file": "epoch_1.pth", "source_layout": "mixbench-moco", "arch": "resnet18",
    "depth": 18, "pixel_mean": [123.675, 116.28, 103.53], "pixel_std": [58.395, 57.12, 57.375], "to_rgb": True,
    "mixbench": MOCO, "notes": ["a note"], "previous": None, "detectron2_cfg": None,
}


def test_stored_form_round_trips_and_names_the_method_settings():
    meta = PretrainMeta.from_dict(MOCO, "epoch_1.pth")
    assert meta.settings == MOCO["moco"] and meta.config_name == "moco_r18" and meta.feature_dim == 512
    assert meta.to_dict() == MOCO
    conv = ConvertMeta.from_dict(CONVERT, "m.pth")
    assert conv.mixbench == meta and conv.to_dict() == CONVERT


def test_live_models_write_the_stored_form():
    import mixbench.pretrain.registry  # noqa: F401  (the models' default preprocessors must be registered)
    from mixbench.pretrain.cmc import CMC
    from mixbench.pretrain.moco import MoCo

    moco = MoCo(arch="resnet18", dim=16, K=32, mlp=True).mixbench_meta()
    assert moco.to_dict()["moco"] == {"dim": 16, "K": 32, "m": moco.settings["m"], "T": moco.settings["T"],
                                      "mlp": True}
    assert PretrainMeta.from_dict(moco.to_dict()) == moco
    cmc = CMC(arch="resnet18", width=0.5, dim=16, K=8, n_data=32).mixbench_meta()
    assert cmc.to_dict()["cmc"]["K"] == 8 and cmc.color["space"] == "ycbcr"
    assert PretrainMeta.from_dict(cmc.to_dict()) == cmc


@pytest.mark.parametrize("change, message", [
    ({"feature_dim": "512"}, r"\['feature_dim'\] is '512'; expected an integer or None"),
    ({"pixel_mean": [1.0, 2.0]}, r"\['pixel_mean'\] is \[1.0, 2.0\]; expected a list of 3 numbers or None"),
    ({"width": True}, r"\['width'\] is True; expected a number"),
    ({"moco": [1]}, r"\['moco'\] is \[1\]; expected a dict"),
    ({"mixtrue": {}}, r" has unknown keys \['mixtrue'\]"),
])
def test_mistyped_or_unknown_fields_are_named(change, message):
    with pytest.raises(MetaError, match=r"^epoch_1.pth: meta\['mixbench'\]" + message):
        PretrainMeta.from_dict({**MOCO, **change}, "epoch_1.pth")


def test_required_fields():
    with pytest.raises(MetaError, match=r"lacks \['method'\]"):
        PretrainMeta.from_dict({"arch": "resnet18"}, "x.pth")
    with pytest.raises(MetaError, match=r"m.pth: meta\['mixbench_convert'\] lacks \['depth'\]"):
        ConvertMeta.from_dict({k: v for k, v in CONVERT.items() if k != "depth"}, "m.pth")
    with pytest.raises(MetaError, match=r"\['notes'\] is 'x'; expected a list of strings"):
        ConvertMeta.from_dict({**CONVERT, "notes": "x"}, "m.pth")
