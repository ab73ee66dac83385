"""Backbones, the classifier (backbone -> dropout -> linear head), training and inference; the
encoder registry (``moco``, ``imagenet``, ``hf:...``) and its on-disk feature cache."""

from medactive.models.backbones import BACKBONES, CompactCNN, ResNet18, build_backbone
from medactive.models.classifier import Classifier, build_classifier, images_to_tensor
from medactive.models.device import autocast, seed_everything, select_device
from medactive.models.encoders import ENCODERS, EncoderSpec, check_encoder
from medactive.models.features import EncodedPool, encode_pool, own_features
from medactive.models.head import HeadConfig, fit_head, head_proba
from medactive.models.training import (
    TrainConfig,
    TrainHistory,
    extract_features,
    fit_classifier,
    make_augmentation,
    predict_proba,
)

__all__ = [
    "BACKBONES",
    "ENCODERS",
    "Classifier",
    "CompactCNN",
    "EncodedPool",
    "EncoderSpec",
    "HeadConfig",
    "ResNet18",
    "TrainConfig",
    "TrainHistory",
    "autocast",
    "build_backbone",
    "build_classifier",
    "check_encoder",
    "encode_pool",
    "extract_features",
    "fit_classifier",
    "fit_head",
    "head_proba",
    "images_to_tensor",
    "make_augmentation",
    "own_features",
    "predict_proba",
    "seed_everything",
    "select_device",
]
