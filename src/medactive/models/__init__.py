"""Backbones, the classifier (backbone -> dropout -> linear head), training and inference."""

from medactive.models.backbones import BACKBONES, CompactCNN, ResNet18, build_backbone
from medactive.models.classifier import Classifier, build_classifier, images_to_tensor
from medactive.models.device import autocast, seed_everything, select_device
from medactive.models.training import (
    HeadConfig,
    TrainConfig,
    TrainHistory,
    extract_features,
    fit_classifier,
    fit_head,
    head_proba,
    make_augmentation,
    predict_proba,
)

__all__ = [
    "BACKBONES",
    "Classifier",
    "CompactCNN",
    "HeadConfig",
    "ResNet18",
    "TrainConfig",
    "TrainHistory",
    "autocast",
    "build_backbone",
    "build_classifier",
    "extract_features",
    "fit_classifier",
    "fit_head",
    "head_proba",
    "images_to_tensor",
    "make_augmentation",
    "predict_proba",
    "seed_everything",
    "select_device",
]
