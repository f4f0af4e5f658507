"""Datasets in their published layouts (Cityscapes, ADE20K, COCO panoptic), augmentation, training
targets, and the synthetic Cityscapes-format generator used by tests and the demo."""
