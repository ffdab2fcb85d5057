"""Inner-problem task families for learned-optimizer training."""

from vograd.tasks.problems.autoencoder import ImageAutoencoderFamily
from vograd.tasks.problems.base import Batch, Params, Split, Task, TaskFamily
from vograd.tasks.problems.class_data import ClassData, build_class_data, load_class_data
from vograd.tasks.problems.class_pools import ClassPools, split_classes
from vograd.tasks.problems.conv import ConvFamily
from vograd.tasks.problems.conv6 import Conv6Family
from vograd.tasks.problems.conv_net import ConvNetFamily, conv2d
from vograd.tasks.problems.image_family import ImageBatch, ImageClassificationFamily, ImageTask
from vograd.tasks.problems.mlp import ImageMLPFamily
from vograd.tasks.problems.quadratic import QuadraticBatch, QuadraticFamily, QuadraticTask
from vograd.tasks.problems.tabular import TabularBatch, TabularMLPFamily, TabularTask

__all__ = [
    "Batch",
    "ClassData",
    "ClassPools",
    "Conv6Family",
    "ConvFamily",
    "ConvNetFamily",
    "ImageAutoencoderFamily",
    "ImageBatch",
    "ImageClassificationFamily",
    "ImageMLPFamily",
    "ImageTask",
    "Params",
    "QuadraticBatch",
    "QuadraticFamily",
    "QuadraticTask",
    "Split",
    "TabularBatch",
    "TabularMLPFamily",
    "TabularTask",
    "Task",
    "TaskFamily",
    "build_class_data",
    "conv2d",
    "load_class_data",
    "split_classes",
]
