# The demo with all three detectors: VOC Faster R-CNN and COCO RetinaNet and Mask R-CNN, 3 seeds each (27 transfer
# runs to the demo's 9). Its work dir is the demo's, so a finished demo's pretraining and VOC runs are reused.
_base_ = ['./demo_synthetic.py']

detectors = None  # every detector of the suites
results_dir = 'results/demo_full'
