"""What an evaluator sees of a run: :class:`Context`.

Frozen features of the probe's train and test splits are extracted once per
context, on first use, and shared by every evaluator. The splits are cached
in RAM where they fit ``data.memory_budget_gb`` and streamed from their
source otherwise: evaluators use the features and labels held here, and read
the few images a picture needs with :meth:`Context.train_images` and
:meth:`Context.test_images`.
"""

import dataclasses
import functools
import os
from typing import Any, Callable, Optional, Union

import jax
import ml_collections
import numpy as np

from ssl_jax.data import input_pipeline
from ssl_jax.evaluation import features as features_lib
from ssl_jax.evaluation import knn as knn_lib


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
    host_crop: the run cuts its training crops on the host
      (``data.host_crop``): augmented evaluation views are cut likewise.
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
  host_crop: bool = False

  @property
  def info(self) -> dict[str, Any]:
    """Facts about the run's dataset (``num_classes``, ``class_names``)."""
    return input_pipeline.dataset_info(
        self.config.dataset, self.config.data_dir, self.config.data.classes
    )

  @property
  def out_dir(self) -> str:
    """``WORKDIR/eval``: pictures and fine-tune workdirs."""
    return os.path.join(self.workdir, 'eval')

  @functools.cached_property
  def probe_train(self) -> input_pipeline.Split:
    """The split probes are fitted on: cached where it fits, else streamed."""
    split = self.train_split
    if split is None:
      split = self.load(self.config.data.probe_train_split, cache=None)
    return _labelled(split)

  @functools.cached_property
  def probe_test(self) -> input_pipeline.Split:
    """The split probes are reported on, never chosen on."""
    return _labelled(self.load(self.config.data.probe_test_split, cache=None))

  def features(
      self,
      images: Union[np.ndarray, input_pipeline.Split],
      variables=None,
  ) -> Union[np.ndarray, features_lib.Extracted]:
    """Frozen features of uint8 ``images``, or of a split's labelled records.

    Args:
      images: uint8 [N, H, W, C], or a split (cached or streamed).
      variables: the encoder's variables (default: the evaluated ones).

    Returns:
      [N, D] features for an array; for a split, the features, labels and
      record indices of its labelled good records. Features are
      ``probe.feature_dtype``.
    """
    kwargs = dict(
        image_size=self.config.image_size,
        batch_size=self.config.probe.batch_size,
        mesh=self.mesh,
        dtype=self.config.probe.feature_dtype,
    )
    variables = self.variables if variables is None else variables
    if isinstance(images, input_pipeline.Split):
      return features_lib.extract(
          self.model, variables, images, **kwargs
      ).labelled()
    return features_lib.extract_features(
        self.model, variables, images, **kwargs
    )

  @functools.cached_property
  def train_data(self) -> features_lib.Extracted:
    """Features, labels and records of :attr:`probe_train`, computed once."""
    return self.features(self.probe_train)

  @functools.cached_property
  def test_data(self) -> features_lib.Extracted:
    """Features, labels and records of :attr:`probe_test`, computed once."""
    return self.features(self.probe_test)

  @property
  def train_features(self) -> np.ndarray:
    """[N, D] features of :attr:`probe_train`'s labelled records."""
    return self.train_data.features

  @property
  def train_labels(self) -> np.ndarray:
    """[N] labels of the rows of :attr:`train_features`."""
    return self.train_data.labels

  @property
  def test_features(self) -> np.ndarray:
    """[M, D] features of :attr:`probe_test`'s labelled records."""
    return self.test_data.features

  @property
  def test_labels(self) -> np.ndarray:
    """[M] labels of the rows of :attr:`test_features`."""
    return self.test_data.labels

  def train_images(self, rows: np.ndarray) -> np.ndarray:
    """uint8 images of rows of :attr:`train_features`, read on demand."""
    return _read(self.probe_train, self.train_data.indices, rows)

  def test_images(self, rows: np.ndarray) -> np.ndarray:
    """uint8 images of rows of :attr:`test_features`, read on demand."""
    return _read(self.probe_test, self.test_data.indices, rows)

  @functools.cached_property
  def knn_scores(self) -> np.ndarray:
    """Weighted kNN class scores of the test features, computed once."""
    cfg = self.config.evals.knn
    return knn_lib.knn_scores(
        self.train_features,
        self.train_labels,
        self.test_features,
        num_classes=self.info['num_classes'],
        k=cfg.k,
        temperature=cfg.temperature,
    )

  def save_picture(self, name: str, image: np.ndarray) -> None:
    """Writes ``image`` to TensorBoard as ``eval/name`` (if there is a writer)."""
    if self.writer is not None:
      self.writer.write_images(self.step, {f'eval/{name}': image[None]})


def _labelled(split: input_pipeline.Split) -> input_pipeline.Split:
  """A cached split without its unlabelled records; a streamed one as is.

  A streamed split's unlabelled records are dropped as its features are
  extracted (:meth:`Context.features`), so it is never read twice; where its
  sources know their labels (folders), a split with none fails here, before
  any image is read.

  Raises:
    input_pipeline.DataError: the split has no labelled record.
  """
  if split.images is not None:
    return input_pipeline.labelled_only(split)
  if all(hasattr(s, 'labels') for s in split.sources):
    if not any((s.labels >= 0).any() for s in split.sources):
      raise input_pipeline.DataError(
          f'split {split.name!r} of {split.dataset or "the dataset"} has no '
          'labelled images, and the evaluations need labels: put its images '
          'in class folders, or name labelled splits in --config.data.'
          'probe_train_split and --config.data.probe_test_split.'
      )
  return split


def _read(split, indices: np.ndarray, rows: np.ndarray) -> np.ndarray:
  rows = np.asarray(rows)
  images = split.read(indices[rows.ravel()])['image']
  return images.reshape(rows.shape + images.shape[1:])
