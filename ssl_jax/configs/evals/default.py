"""The evaluations of a trained encoder (``config.evals``), each with its settings.

Run at the end of pretraining (those enabled), or on any finished workdir:

  python -m ssl_jax.tools.evaluate --workdir=DIR [--evals=configs/evals/full.py]
      [--evals.knn.k=20 ...]

Nothing is chosen on the test split: L2 strengths, C values and every other
choice use a validation part carved from the labelled train split.
"""

import ml_collections

from ssl_jax.evaluation import evaluators


def get_config() -> ml_collections.ConfigDict:
  """Returns the default evaluations: cheap frozen-feature ones on, training ones off."""
  e = ml_collections.ConfigDict()
  e.knn = ml_collections.ConfigDict()
  e.knn.enabled = True  # Weighted cosine kNN on frozen features.
  e.knn.k = 200
  e.knn.temperature = 0.1
  e.knn.every_steps = 0  # > 0: online kNN monitor during pretraining.
  e.knn.monitor_bank = 5000  # Monitor: train images in the bank...
  # ...and other train images queried (never test).
  e.knn.monitor_queries = 1000

  e.sklearn_probe = ml_collections.ConfigDict()
  e.sklearn_probe.enabled = False  # scikit-learn LogisticRegression probe.
  e.sklearn_probe.c_grid = (
      0.01,
      0.1,
      1.0,
      10.0,
  )  # Inverse L2, chosen on validation.
  # Train images used (seeded subset; lbfgs is O(N)).
  e.sklearn_probe.max_train = 10000
  e.sklearn_probe.max_iter = 1000

  e.embedding = ml_collections.ConfigDict()
  # Silhouette, Dunn, k-means NMI/ARI of test embeddings.
  e.embedding.enabled = True
  e.embedding.max_points = 5000

  e.pictures = ml_collections.ConfigDict()
  # t-SNE, neighbour grid, confusion matrix, curves (PNG).
  e.pictures.enabled = True
  e.pictures.tsne_points = 2000
  e.pictures.tsne_steps = ()  # Extra checkpoint steps shown beside the final one.
  e.pictures.queries = 8  # Neighbour grid rows (test images)...
  e.pictures.neighbours = 10  # ...and their nearest train images.

  e.finetune = ml_collections.ConfigDict()
  e.finetune.enabled = False  # Whole encoder + new head on few labels.
  e.finetune.label_fractions = (0.01, 0.1)  # Class-balanced shares of train.
  e.finetune.labels_per_class = ()  # And/or N images per class, e.g. (10, 100).
  e.finetune.seeds = (0, 1, 2)  # Each seed picks its own subset; mean +- std.
  e.finetune.num_steps = 300
  e.finetune.batch_size = 256  # Capped at the labelled subset's size.
  e.finetune.optimizer = 'adam'
  e.finetune.learning_rate = 1e-3  # Cosine decay after a 5 % warmup.
  e.finetune.weight_decay = 0.0
  e.finetune.dropout = 0.0
  e.finetune.frozen = True  # Also probe frozen features on the same labels.

  e.transfer = ml_collections.ConfigDict()
  e.transfer.enabled = False  # Probe (and fine-tune) on other datasets.
  # 'name' or 'name:train_split:test_split' (tfds split syntax, e.g. uc_merced's
  # 'uc_merced:train[:80%]:train[80%:]'); images are resized to the encoder's
  # image_size and converted to its channels.
  e.transfer.targets = ()
  # tfds data_dir of the targets ('': config.data_dir).
  e.transfer.data_dir = ''
  e.transfer.finetune = False
  e.transfer.finetune_steps = 300

  # Evaluators registered from outside ssl_jax bring their own settings.
  for name, settings in evaluators.SETTINGS.items():
    e[name] = settings()
  return e
