# CPU preset moco-mix_r18_synthetic with the device view pipeline: the workers only decode the JPEGs
# (torchvision.io); the data preprocessor makes both views of the whole batch (crop, flip, jitter, grayscale, blur:
# torchvision's distributions) before normalising and mixing.
# The device pipeline is these three keys together, all set here:
#   train_dataloader.dataset: worker_stage='decode' (or 'read': workers only read, nvjpeg decodes on a GPU), aug=None
#   train_dataloader.collate_fn: image_list_collate (images keep their own sizes until cropped)
#   model.data_preprocessor.device_views: dict(aug, size, n_views) - the augmentation and view size live here
#   mixbench demo-data data/demo && mixbench pretrain configs/pretrain/moco-mix_r18_synthetic_device-views.py
_base_ = "./moco-mix_r18_synthetic.py"

train_dataloader = dict(collate_fn=dict(type="image_list_collate"), dataset=dict(aug=None, worker_stage="decode"))
model = dict(data_preprocessor=dict(device_views=dict(aug="moco_v2", size=64, n_views=2)))
