"""Supervised baseline: cross-entropy on the labelled split, same encoders and views."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from ssl_jax import models
from ssl_jax.data import augment
from ssl_jax.data import input_pipeline
from ssl_jax.evaluation import features
from ssl_jax.evaluation import probe
from ssl_jax.methods import base
from ssl_jax.methods import shared
from ssl_jax.methods.base import TrainState


class SupervisedModel(nn.Module):
  """Encoder, optional dropout, linear classifier.

  Attributes:
    encoder: images -> features.
    num_classes: classifier outputs.
    dropout: dropout rate on the features (training only).
  """

  encoder: nn.Module
  num_classes: int
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool = True):
    features = self.encoder(x, train=train)
    h = nn.Dropout(self.dropout, deterministic=not train)(features)
    logits = nn.Dense(self.num_classes, name='head')(h.astype(jnp.float32))
    return {'features': features, 'logits': logits}


def build_model(
    config: ml_collections.ConfigDict, num_classes: int
) -> nn.Module:
  """Returns the supervised model for ``config``."""
  return SupervisedModel(
      models.get_encoder(config), num_classes, config.model.dropout
  )


def prepare_data(
    config: ml_collections.ConfigDict, train_split, load
) -> dict[str, Any]:
  """Trains on a class-balanced ``data.label_fraction`` of the train split.

  Args:
    config: the experiment config.
    train_split: the loaded ``data.train_split``; every image needs a label.
    load: unused.

  Returns:
    ``{'train': the labelled subset}``.

  Raises:
    input_pipeline.DataError: the split has unlabelled images.
  """
  del load
  if train_split.labels is None or (train_split.labels < 0).any():
    raise input_pipeline.DataError(
        f'method={config.method!r} needs labels, but data.train_split='
        f'{config.data.train_split!r} has unlabelled images; use a labelled '
        "split such as 'train'."
    )
  return {
      'train': input_pipeline.labelled_subset(
          train_split,
          config.data.label_fraction,
          config.seed,
          config.data.labels_per_class,
      )
  }


def train_step(
    state: TrainState,
    batch: dict[str, jax.Array],
    key: jax.Array,
    *,
    model: nn.Module,
    tx: optax.GradientTransformation,
    config: ml_collections.ConfigDict,
    schedule: optax.Schedule,
) -> tuple[TrainState, dict[str, Any]]:
  """One cross-entropy step on one augmented view (``config.augment.view1``).

  Args:
    state: the replicated train state.
    batch: ``{'image': uint8 [B,H,W,C], 'label': int32 [B]}``, all labelled.
    key: the PRNG key of this step (augmentation and dropout).
    model: the module from :func:`build_model`.
    tx: the optimiser.
    config: the experiment config.
    schedule: the LR schedule (for logging only).

  Returns:
    The new state and a dict of scalar metrics.
  """
  aug_key, dropout_key = jax.random.split(key)
  x = augment.augment_batch(
      aug_key,
      batch['image'],
      config.augment.view1,
      shared.train_view_size(config),
  )
  labels = batch['label']

  def loss_fn(params):
    out, new_vars = model.apply(
        {'params': params, 'batch_stats': state.batch_stats},
        x,
        train=True,
        mutable=['batch_stats'],
        rngs={'dropout': dropout_key},
    )
    loss, acc = shared.probe_loss(out['logits'], labels)
    return loss, (
        new_vars.get('batch_stats', {}),
        {'loss': loss, 'accuracy': acc},
    )

  grads, (batch_stats, metrics) = jax.grad(loss_fn, has_aux=True)(state.params)
  return shared.apply_gradients(
      state, grads, batch_stats, tx=tx, schedule=schedule, metrics=metrics
  )


def evaluate(
    model: nn.Module,
    variables: dict[str, Any],
    *,
    test_split,
    config: ml_collections.ConfigDict,
    mesh,
    num_classes: int,
    class_names=None,
) -> dict[str, float]:
  """The trained classifier's figures on the test split.

  Args:
    model: the module from :func:`build_model`.
    variables: ``{'params', 'batch_stats'}``.
    test_split: the test :class:`input_pipeline.Split` (cached or streamed).
    config: the experiment config.
    mesh: the device mesh.
    num_classes: number of classes.
    class_names: optional class names.

  Returns:
    ``classifier/test_*`` metrics (accuracy, top-5, per-class P/R/F1).
  """
  test = features.extract(
      model,
      variables,
      test_split,
      image_size=config.image_size,
      batch_size=config.probe.batch_size,
      mesh=mesh,
      output='logits',
  ).labelled()
  return probe.classification_metrics(
      test.features, test.labels, num_classes, class_names, 'classifier/test_'
  )


METHOD = base.Method(
    name='supervised',
    build_model=build_model,
    train_step=train_step,
    uses_labels=True,
    prepare_data=prepare_data,
    evaluate=evaluate,
)
