"""cifar_utils: data, models, training, metrics and plots for the CIFAR-10 notebooks."""
from .config import TrainConfig, recipe_config
from .data import CLASSES, load_cifar10, stratified_split
from .errors import CifarError, ConfigError, DatasetError
from .inference import evaluate
from .models import available_models, build_model
from .training import fit

__all__ = ["CLASSES", "load_cifar10", "stratified_split", "CifarError", "ConfigError", "DatasetError",
           "available_models", "build_model", "TrainConfig", "recipe_config", "evaluate", "fit"]
__version__ = "0.1.0"
