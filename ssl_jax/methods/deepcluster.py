"""DeepCluster v1 (Caron et al., 2018): k-means pseudo-labels, re-made every epoch.

At the start of every epoch (:func:`epoch_start`, a host hook the train loop
calls): extract features of the unlabelled train set, PCA-whiten and
L2-normalise them, run k-means (:mod:`ssl_jax.evaluation.clustering`), take the
assignments as pseudo-labels, re-initialise the classification head and its
optimiser moments. During the epoch (:func:`train_step`): cross-entropy on the
pseudo-labels, with batches that sample the non-empty clusters uniformly
(:func:`train_batches`). The assignments live in the train state, so a run
resumed mid-epoch continues with the same pseudo-labels and batches.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from sklearn import metrics as skmetrics

from ssl_jax import errors
from ssl_jax import models
from ssl_jax.data import augment
from ssl_jax.data import batching
from ssl_jax.data import input_pipeline
from ssl_jax.evaluation import clustering
from ssl_jax.evaluation import probe
from ssl_jax.methods import base
from ssl_jax.methods import shared
from ssl_jax.methods.base import TrainState


def defaults() -> ml_collections.ConfigDict:
  """``config.deepcluster``."""
  c = ml_collections.ConfigDict()
  c.num_clusters = 100  # k of the per-epoch k-means.
  c.pca_dim = 128  # PCA-whitened dimensions before clustering.
  c.kmeans_iters = 30  # Lloyd iterations per epoch.
  return c


def check_config(config: ml_collections.ConfigDict) -> None:
  """One-line errors for ``config.deepcluster`` and the data it needs."""
  dc = config.deepcluster
  if not (isinstance(dc.num_clusters, int) and dc.num_clusters >= 2):
    raise errors.ConfigError(
        f'deepcluster.num_clusters={dc.num_clusters!r} must be an integer >= 2.'
    )
  if not (isinstance(dc.pca_dim, int) and dc.pca_dim >= 1):
    raise errors.ConfigError(
        f'deepcluster.pca_dim={dc.pca_dim!r} must be a positive integer.'
    )
  if config.data.cache is False:
    raise errors.ConfigError(
        'data.cache=False: deepcluster re-extracts features of the whole '
        'train split every epoch; set --config.data.cache=True.'
    )


class DeepClusterModel(nn.Module):
  """Encoder, a k-way cluster classifier and an online probe.

  Attributes:
    encoder: images -> features (clustered, and evaluated).
    num_clusters: outputs of the re-initialised head.
    num_classes: classes of the online probe (stop-gradient features).
  """

  encoder: nn.Module
  num_clusters: int
  num_classes: int

  @nn.compact
  def __call__(self, x, train: bool = True):
    features = self.encoder(x, train=train)
    f32 = features.astype(jnp.float32)
    return {
        'features': features,
        'logits': nn.Dense(self.num_clusters, name='head')(f32),
        'probe_logits': nn.Dense(self.num_classes, name='probe')(
            jax.lax.stop_gradient(f32)
        ),
    }


def build_model(
    config: ml_collections.ConfigDict, num_classes: int
) -> nn.Module:
  """Encoder + ``deepcluster.num_clusters``-way head + online probe."""
  return DeepClusterModel(
      models.get_encoder(config), config.deepcluster.num_clusters, num_classes
  )


def init_extra(config, params, batch_stats, data) -> dict[str, Any]:
  """The pseudo-label of every train example (set by :func:`epoch_start`)."""
  del config, params, batch_stats
  return {'assignments': jnp.zeros((len(data['train']),), jnp.int32)}


def reset_head(state: TrainState, key: jax.Array) -> TrainState:
  """Re-initialises ``params['head']`` and zeroes its optimiser moments.

  Args:
    state: the train state.
    key: the PRNG key of the new head.

  Returns:
    The state with a fresh head (same init as the model's) and the head's
    entries of every params-shaped optimiser statistic set to zero.
  """
  head = state.params['head']
  num_in, num_out = head['kernel'].shape
  fresh = nn.Dense(num_out).init(key, jnp.zeros((1, num_in)))['params']

  def zero_head(path, leaf):
    in_head = any(
        isinstance(p, jax.tree_util.DictKey) and p.key == 'head' for p in path
    )
    return jnp.zeros_like(leaf) if in_head else leaf

  opt_state = jax.tree_util.tree_map_with_path(zero_head, state.opt_state)
  params = dict(
      state.params,
      head=jax.tree.map(lambda new, old: new.astype(old.dtype), fresh, head),
  )
  return state.replace(params=params, opt_state=opt_state)


def cluster_features(
    features: np.ndarray, key: jax.Array, config: ml_collections.ConfigDict
):
  """PCA-whitens, L2-normalises and k-means-clusters ``features``.

  Args:
    features: float [N, D] encoder features.
    key: PRNG key of the k-means.
    config: the experiment config (``deepcluster``).

  Returns:
    ``(assignments int32 [N], number of empty clusters re-seeded)``.
  """
  dc = config.deepcluster
  x = clustering.pca_whiten_normalize(features, dc.pca_dim, seed=config.seed)
  assignments, _, reseeded = clustering.kmeans(
      key, jnp.asarray(x), dc.num_clusters, dc.kmeans_iters
  )
  return np.asarray(assignments), int(reseeded)


def epoch_start(
    state: TrainState,
    epoch: int,
    *,
    model: nn.Module,
    config: ml_collections.ConfigDict,
    data: dict[str, Any],
    mesh: jax.sharding.Mesh,
) -> tuple[TrainState, dict[str, float]]:
  """Re-clusters the train set and re-initialises the head (host hook).

  Args:
    state: the train state at the first step of ``epoch``.
    epoch: the epoch about to start.
    model: the :class:`DeepClusterModel`.
    config: the experiment config.
    data: ``{'train': Split}`` (cached images).
    mesh: the device mesh.

  Returns:
    The new state and metrics: the NMI with the previous epoch's assignments
    (from epoch 1), with the true labels where known, cluster sizes and how
    many empty clusters were re-seeded.
  """
  split = data['train']
  if len(split) < config.deepcluster.num_clusters:
    raise input_pipeline.DataError(
        f'deepcluster.num_clusters={config.deepcluster.num_clusters} is more '
        f'than the {len(split)} train images; lower --config.deepcluster.'
        'num_clusters.'
    )
  if split.images is None:
    raise errors.DataError(
        'deepcluster clusters the whole train split each epoch and needs it'
        f' decoded in RAM, but its {len(split)} images do not fit'
        f' data.memory_budget_gb={config.data.memory_budget_gb:g}; raise'
        ' --config.data.memory_budget_gb, or set --config.data.cache=True.'
    )
  features = probe.extract_features(
      model,
      {'params': state.params, 'batch_stats': state.batch_stats},
      split.images,
      image_size=config.image_size,
      batch_size=config.probe.batch_size,
      mesh=mesh,
  )
  key = jax.random.fold_in(jax.random.key(config.seed), epoch)
  assignments, reseeded = cluster_features(features, key, config)
  sizes = np.bincount(assignments, minlength=config.deepcluster.num_clusters)
  metrics = {
      'deepcluster/reseeded_clusters': float(reseeded),
      'deepcluster/nonempty_clusters': float((sizes > 0).sum()),
      'deepcluster/largest_cluster_fraction': float(
          sizes.max() / len(assignments)
      ),
  }
  if epoch > 0:
    previous = np.asarray(jax.device_get(state.extra['assignments']))
    metrics['deepcluster/nmi_previous_epoch'] = float(
        skmetrics.normalized_mutual_info_score(previous, assignments)
    )
  if split.labels is not None and (split.labels >= 0).all():
    metrics['deepcluster/nmi_labels'] = float(
        skmetrics.normalized_mutual_info_score(split.labels, assignments)
    )
  state = reset_head(state, jax.random.fold_in(key, 1))
  return state.replace(extra={'assignments': jnp.asarray(assignments)}), metrics


def epoch_indices(
    assignments: np.ndarray, seed: int, epoch: int, num_samples: int
) -> np.ndarray:
  """The epoch's sample order: a pure function of seed, epoch and assignments."""
  return clustering.uniform_cluster_indices(
      assignments, num_samples, [seed, epoch, 3]
  )


def train_batches(
    *,
    state: TrainState,
    start_step: int,
    config: ml_collections.ConfigDict,
    data: dict[str, Any],
    sharding: jax.sharding.NamedSharding,
):
  """Batches of the current epoch, sampling the clusters uniformly.

  Args:
    state: the train state (its ``extra['assignments']``).
    start_step: the first step to produce.
    config: the experiment config.
    data: ``{'train': Split}``.
    sharding: the data-axis sharding.

  Returns:
    An iterator of ``{'image', 'label', 'pseudo_label'}`` global batches that
    ends with the epoch (the loop re-clusters, then asks again).
  """
  split, batch = data['train'], config.batch_size
  steps_per_epoch = len(split) // batch
  epoch = start_step // steps_per_epoch
  assignments = np.asarray(jax.device_get(state.extra['assignments']))
  order = epoch_indices(
      assignments, config.seed, epoch, steps_per_epoch * batch
  )

  read = functools.partial(
      _read_step,
      order=order,
      assignments=assignments,
      first_step=epoch * steps_per_epoch,
      batch=batch,
      process_index=jax.process_index(),
      process_count=jax.process_count(),
  )
  return batching.global_batches(
      read,
      start_step=start_step,
      sharding=sharding,
      prefetch=config.data.prefetch,
      stop_step=(epoch + 1) * steps_per_epoch,
      splits=(split,),
  )


def _read_step(splits, step, *, order, assignments, first_step, batch, **kw):
  """The epoch's batch of ``step`` (picklable: it may run in workers)."""
  (split,) = splits
  i = step - first_step
  idx = batching.process_slice(order[i * batch : (i + 1) * batch], **kw)
  return dict(split.read(idx), pseudo_label=assignments[idx])


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
  """Cross-entropy on the cluster pseudo-labels of one augmented view.

  Args:
    state: the replicated train state.
    batch: ``{'image', 'label', 'pseudo_label'}``, sharded over the data axis.
    key: the PRNG key of this step.
    model: the :class:`DeepClusterModel`.
    tx: the optimiser.
    config: the experiment config.
    schedule: the LR schedule (for logging only).

  Returns:
    The new state and a dict of scalar metrics.
  """
  x = augment.augment_batch(
      key, batch['image'], config.augment.view1, shared.train_view_size(config)
  )
  targets = batch['pseudo_label']

  def loss_fn(params):
    out, new_vars = model.apply(
        {'params': params, 'batch_stats': state.batch_stats},
        x,
        train=True,
        mutable=['batch_stats'],
    )
    loss, acc = shared.probe_loss(out['logits'], targets)
    p_loss, p_acc = shared.probe_loss(out['probe_logits'], batch['label'])
    metrics = {
        'loss': loss,
        'pseudo_label_accuracy': acc,
        'online_probe/loss': p_loss,
        'online_probe/accuracy': p_acc,
    }
    total = loss + (p_loss if config.online_probe else 0.0)
    return total, (new_vars.get('batch_stats', {}), metrics)

  grads, (batch_stats, metrics) = jax.grad(loss_fn, has_aux=True)(state.params)
  return shared.apply_gradients(
      state, grads, batch_stats, tx=tx, schedule=schedule, metrics=metrics
  )


def example_batch(
    config: ml_collections.ConfigDict,
    rng: np.random.Generator,
    num_classes: int,
    channels: int,
) -> dict[str, np.ndarray]:
  """A random batch with cluster pseudo-labels (benchmarks and tests)."""
  batch = base.labelled_batch(config, rng, num_classes, channels)
  batch['pseudo_label'] = (
      rng.integers(0, num_classes, batch['label'].shape, dtype=np.int32)
      % config.deepcluster.num_clusters
  )
  return batch


METHOD = base.Method(
    name='deepcluster',
    build_model=build_model,
    train_step=train_step,
    section='deepcluster',
    defaults=defaults,
    check_config=check_config,
    structural_fields=('deepcluster.num_clusters',),
    init_extra=init_extra,
    train_batches=train_batches,
    epoch_start=epoch_start,
    example_batch=example_batch,
)
