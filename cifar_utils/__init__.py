"""cifar_utils: data, models, training, metrics and plots for the CIFAR-10 notebooks."""

from .core.config import TrainConfig, recipe_config
from .core.data import CLASSES, load_cifar10, stratified_split
from .core.evaluation import evaluate
from .core.models import available_models, build_model
from .errors import CifarError, ConfigError, DatasetError
from .runs.training import fit

__all__ = [
    "CLASSES",
    "load_cifar10",
    "stratified_split",
    "CifarError",
    "ConfigError",
    "DatasetError",
    "available_models",
    "build_model",
    "TrainConfig",
    "recipe_config",
    "evaluate",
    "fit",
]
__version__ = "0.1.0"
