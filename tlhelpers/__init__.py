"""tlhelpers: the helper package behind the transfer-learning course.

Each helper is first built by hand in a notebook, then used from here. Importing the
package does no heavy work (no device probing, no downloads, no data reads); it only sets
the thread policy (``tlh.set_threads``), so every notebook keeps its pace on shared cores.

The names below are what notebooks use. Building blocks no notebook calls
(``features.feature_model``, ``shifts.add_noise``, ``shifts.shift``) stay importable from
their modules.
"""
from .backbones import (EfficientNetLite0, SmallCNN, WeightsUnavailableError, imagenet_categories,
                        load_efficientnet_lite0, load_torchvision, preprocess)
from .batchnorm import recalibrate_bn
from .data import PHOTOS, as_tensors, few_shot, mnist5k, photo_crops, select_classes, uci_digits
from .env import available_cpus, device, doctor, seed_everything, set_threads, thread_count
from .features import body, extract_features, pool_features
from .measure import domain_classifier_accuracy, linear_probe, median_heuristic_gamma, mmd, transfer_gain
from .plots import (plot_confusion_matrix, plot_curves, plot_grid, plot_history, plot_topk, show_feature_maps,
                    show_filters, show_images)
from .shifts import fit_to_frame, invert, photo_background, render_digits, render_glyphs, rotate
from .surgery import (count_parameters, freeze, layer_names, param_groups, replace_head, trainable_parameters,
                      unfreeze)
from .train import History, accuracy, evaluate, fit, make_loader, train_one_epoch

__all__ = [
    "EfficientNetLite0", "SmallCNN", "WeightsUnavailableError", "imagenet_categories", "load_efficientnet_lite0",
    "load_torchvision", "preprocess",
    "PHOTOS", "as_tensors", "few_shot", "mnist5k", "photo_crops", "select_classes", "uci_digits",
    "available_cpus", "device", "doctor", "seed_everything", "set_threads", "thread_count",
    "body", "extract_features", "pool_features",
    "domain_classifier_accuracy", "linear_probe", "median_heuristic_gamma", "mmd", "transfer_gain",
    "fit_to_frame", "invert", "photo_background", "render_digits", "render_glyphs", "rotate",
    "plot_confusion_matrix", "plot_curves", "plot_grid", "plot_history", "plot_topk", "show_feature_maps",
    "show_filters", "show_images",
    "count_parameters", "freeze", "layer_names", "param_groups", "replace_head", "trainable_parameters", "unfreeze",
    "recalibrate_bn",
    "History", "accuracy", "evaluate", "fit", "make_loader", "train_one_epoch",
]
__version__ = "0.1.0"

set_threads()
