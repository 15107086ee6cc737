"""What an evaluator sees of a run: :class:`Context`.

Frozen features of the probe's train and test splits are extracted once per
context, on first use, and shared by every evaluator.
"""

import dataclasses
import functools
import os
from typing import Any, Callable, Optional

import jax
import ml_collections
import numpy as np

from ssl_jax.data import input_pipeline
from ssl_jax.evaluation import knn as knn_lib
from ssl_jax.evaluation import probe


@dataclasses.dataclass
class Context:
  """What every evaluator may use; features are computed on first use.

  Attributes:
    config: the run's config (``config.evals`` holds the evaluators' settings).
    workdir: the run's directory (fine-tunes and PNGs go below ``eval/``).
    model: the method's model.
    variables: ``{'params', 'batch_stats'}`` of the encoder evaluated.
    mesh: the device mesh.
    load: ``(split, cache) -> Split`` for the run's dataset.
    step: the checkpoint step evaluated.
    random_init: variables of the random-init reference encoder, if any.
    train_fn: ``(config, workdir) -> results``, the training entry point
      (``ssl_jax.training.train.train_and_evaluate``); fine-tunes run
      through it.
    restore: ``step -> variables`` of another checkpoint of the run.
    writer: optional :class:`ssl_jax.training.summary.Writer` for pictures.
    train_split: the labelled split features are fitted on (default: loaded).
  """

  config: ml_collections.ConfigDict
  workdir: str
  model: Any
  variables: dict[str, Any]
  mesh: jax.sharding.Mesh
  load: Callable[..., input_pipeline.Split]
  step: int = 0
  random_init: Optional[dict[str, Any]] = None
  train_fn: Optional[Callable[..., dict[str, Any]]] = None
  restore: Optional[Callable[[int], dict[str, Any]]] = None
  writer: Any = None
  train_split: Optional[input_pipeline.Split] = None

  @property
  def info(self) -> dict[str, Any]:
    """Facts about the run's dataset (``num_classes``, ``class_names``)."""
    return input_pipeline.dataset_info(
        self.config.dataset, self.config.data_dir
    )

  @property
  def out_dir(self) -> str:
    """``WORKDIR/eval``: pictures and fine-tune workdirs."""
    return os.path.join(self.workdir, 'eval')

  @functools.cached_property
  def probe_train(self) -> input_pipeline.Split:
    """The labelled split probes are fitted on (cached)."""
    split = self.train_split
    if split is None:
      split = self.load(self.config.data.probe_train_split, cache=True)
    return input_pipeline.labelled_only(split)

  @functools.cached_property
  def probe_test(self) -> input_pipeline.Split:
    """The split probes are reported on, never chosen on (cached)."""
    return input_pipeline.labelled_only(
        self.load(self.config.data.probe_test_split, cache=True)
    )

  def features(self, images: np.ndarray, variables=None) -> np.ndarray:
    """Frozen features of uint8 ``images``.

    Args:
      images: uint8 [N, H, W, C].
      variables: the encoder's variables (default: the evaluated ones).

    Returns:
      float32 [N, D].
    """
    return probe.extract_features(
        self.model,
        self.variables if variables is None else variables,
        images,
        image_size=self.config.image_size,
        batch_size=self.config.probe.batch_size,
        mesh=self.mesh,
    )

  @functools.cached_property
  def train_features(self) -> np.ndarray:
    """Features of :attr:`probe_train`, computed once."""
    return self.features(self.probe_train.images)

  @functools.cached_property
  def test_features(self) -> np.ndarray:
    """Features of :attr:`probe_test`, computed once."""
    return self.features(self.probe_test.images)

  @functools.cached_property
  def knn_scores(self) -> np.ndarray:
    """Weighted kNN class scores of the test features, computed once."""
    cfg = self.config.evals.knn
    return knn_lib.knn_scores(
        self.train_features,
        self.probe_train.labels,
        self.test_features,
        num_classes=self.info['num_classes'],
        k=cfg.k,
        temperature=cfg.temperature,
    )

  def save_picture(self, name: str, image: np.ndarray) -> None:
    """Writes ``image`` to TensorBoard as ``eval/name`` (if there is a writer)."""
    if self.writer is not None:
      self.writer.write_images(self.step, {f'eval/{name}': image[None]})
