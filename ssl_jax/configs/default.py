"""Every config field, once, with its default. Other configs import and override.

Run any config as ``python main.py --config=configs/X.py --workdir=DIR`` and
override a field with ``--config.FIELD=VALUE`` (e.g. ``--config.batch_size=512``).
"""

import ml_collections

from ssl_jax import methods
from ssl_jax.configs.evals import default as evals_default
from ssl_jax.data import augment


def get_config() -> ml_collections.ConfigDict:
  """Returns the default config (SimCLR, ResNet-18, CIFAR-10)."""
  c = ml_collections.ConfigDict()
  c.method = 'simclr'  # Key of ssl_jax.methods.METHODS.
  c.encoder = 'resnet18'  # Key of ssl_jax.models.ENCODERS.
  # A tfds name, 'folder' (your images in data_dir) or 'sklearn_digits'
  # (installs with the project).
  c.dataset = 'cifar10'
  # tfds data_dir ('': ~/tensorflow_datasets), or the folder holding one
  # subfolder per split for dataset='folder'.
  c.data_dir = ''
  c.image_size = 32  # Encoder input side for evaluation (and training views).
  c.batch_size = 256  # Global batch (all devices and processes).
  # Epochs over config.data.train_split (may be fractional).
  c.num_epochs = 100.0
  c.learning_rate = 0.075  # Base LR, scaled by optimizer.lr_scaling.
  c.temperature = 0.5  # NT-Xent temperature.
  c.seed = 0  # Seeds init, data order and augmentation.
  c.init_from = ''  # Workdir of a finished run whose encoder to start from.

  # Activations and matmuls: 'float32' or 'bfloat16' (mixed precision: params,
  # optimiser state, BatchNorm statistics, logits and losses stay float32).
  c.dtype = 'float32'
  # Convolutions: 'xla' (XLA's own, every backend) or 'onednn' (oneDNN's on a
  # single CPU device; pip install -e ".[onednn]"; elsewhere XLA's are used).
  # results.json records what ran as train/cpu_convolutions.
  c.cpu_convolutions = 'xla'

  c.model = ml_collections.ConfigDict()
  c.model.width = 128  # ConvNet channels of all four conv layers...
  c.model.conv_widths = ()  # ...unless given per layer here, e.g. (64, 128, 256, 512).
  c.model.dense = 128  # ConvNet final dense width (0: none).
  c.model.cifar_stem = True  # ResNet: 3x3 stride-1 stem, no max-pool.
  # ViT: side of the square patches (4 for 32 px images, 8 or 16 for larger).
  c.model.patch_size = 4
  # ViT patch embedding init: 'lecun_normal' or 'xavier_uniform' (MoCo v3's).
  c.model.patch_init = 'lecun_normal'
  # ViT position embeddings: 'learned' or 'sincos' (fixed 2-D sin-cos, MoCo v3).
  c.model.position_embedding = 'learned'
  # Per-channel mean and std the encoder normalises its [0, 1] input by, as
  # the references' data pipelines do (e.g. CIFAR-10's); () leaves it as is.
  c.model.input_mean = ()
  c.model.input_std = ()
  c.model.dropout = 0.0  # Supervised: dropout before the classifier.

  c.projector = ml_collections.ConfigDict()
  c.projector.hidden_dims = (2048,)  # Hidden widths of the projection MLP.
  c.projector.out_dim = 128  # Projection output width.
  c.projector.use_bn = True  # BatchNorm in the projector.
  c.projector.out_bn = False  # BatchNorm (no scale, no bias) on its output.
  c.projector.out_bn_scale = False  # ...with a learned scale (SimCLR's).

  # Each method's own settings, under its section (config.barlow,
  # config.deepcluster, config.fixmatch, ...): see its module's defaults().
  for method in methods.METHODS.values():
    if method.section:
      c[method.section] = method.defaults()

  c.data = ml_collections.ConfigDict()
  # Split(s) for pretraining, joined by '+' ('unlabelled+train').
  c.data.train_split = 'train'
  c.data.probe_train_split = 'train'  # Labelled split for the linear probe.
  # Split the probe is reported on (never used to choose).
  c.data.probe_test_split = 'test'
  # Labelled fraction (class-balanced) for supervised/FixMatch.
  c.data.label_fraction = 1.0
  # If > 0: this many labelled images per class instead.
  c.data.labels_per_class = 0
  # FixMatch: split the labelled batches come from.
  c.data.labelled_split = 'train'
  # Decode each split once into host RAM: True, False (stream each batch from
  # the files), or None: cache where it fits data.memory_budget_gb.
  c.data.cache = ml_collections.config_dict.placeholder(bool)
  # Host memory the data may hold, GiB (0: half of this machine's RAM).
  c.data.memory_budget_gb = 0.0
  # Cut each view's random-resized crop on the host from the original image
  # (photos: ImageNet, your own) instead of on device from a stored size;
  # None: on where image sizes vary or exceed 2 x image_size, data.resize unset.
  c.data.host_crop = ml_collections.config_dict.placeholder(bool)
  # Host crops' evaluation view: the central share of the shorter side,
  # resized to image_size (0.875: 256 -> 224).
  c.data.eval_crop_fraction = 0.875
  # A subset of the classes: 'imagenet100' (solo-learn's) or a file of class
  # names ('': all).
  c.data.classes = ''
  c.data.prefetch = 2  # Batches prepared ahead by the host thread.
  # Resize every image to this side as read (0: keep; mixed sizes).
  c.data.resize = 0
  c.data.channels = 0  # Convert every image to 1 or 3 channels (0: keep).
  # Undecodable/wrong-shape record: 'error' names it; 'skip' drops and counts it.
  c.data.bad_images = 'error'
  # Processes decoding folder images (0: one per CPU core; 1: the main process).
  c.data.workers = 0

  c.augment = ml_collections.ConfigDict()
  # Side of the training views; 0: image_size. Smaller trains at lower resolution
  # and still evaluates at image_size (FixRes: random crops enlarge objects).
  c.augment.train_size = 0
  c.augment.view1 = augment.view_config(jitter_strength=0.5)
  c.augment.view2 = augment.view_config(jitter_strength=0.5)

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = 'lars'  # lars | sgd | adam | adamw.
  c.optimizer.lr_scaling = 'sqrt'  # linear (B/256) | sqrt (sqrt(B)) | none.
  c.optimizer.warmup_epochs = 10.0
  c.optimizer.weight_decay = 1e-6
  # Decay biases and norm parameters too (SGD/Adam(W); MoCo v3's ViT AdamW).
  c.optimizer.decay_bias_and_norm = False
  c.optimizer.momentum = 0.9  # LARS and SGD.
  c.optimizer.trust_coefficient = 1e-3  # LARS.
  # LARS as google-research/simclr runs it ('simclr': optax.lars) or as
  # solo-learn's LARSWrapper around SGD does ('solo_learn'); see optim.py.
  c.optimizer.lars_variant = 'simclr'
  # solo_learn LARS: clip each layer's rate at the scheduled one.
  c.optimizer.clip_lr = False
  # Weight decay at the last step, reached along a half cosine from
  # weight_decay (DINO: 0.04 -> 0.4); unset: constant.
  c.optimizer.weight_decay_end = ml_collections.config_dict.placeholder(float)
  # > 0: clip each parameter's gradient to this norm on its own (DINO: 3.0).
  c.optimizer.clip_grad_norm = 0.0
  c.optimizer.b1 = 0.9  # Adam(W).
  c.optimizer.b2 = 0.999  # Adam(W).
  # Multiplies the LR of biases and norm parameters (the 1-D leaves).
  c.optimizer.bias_norm_lr_scale = 1.0

  # NaN/Inf loss, gradient or params: 'stop' (keep the last good checkpoint)
  # or 'skip' the update and count it.
  c.nonfinite = 'stop'
  c.debug = ml_collections.ConfigDict()
  # Fault injection (tests): this step's loss sees NaN params.
  c.debug.nan_at_step = -1

  # Linear head on stop-gradient features, trained alongside.
  c.online_probe = True
  c.log_every_steps = 50  # Console/TensorBoard metrics cadence.
  c.checkpoint_every_steps = 500  # Also saved at the end of training.
  c.keep_checkpoints = 3  # Checkpoints kept in WORKDIR/checkpoints...
  # ...plus every step divisible by this (t-SNE over training).
  c.keep_checkpoints_every = 0

  c.probe = ml_collections.ConfigDict()
  # Final linear probe on frozen pre-projection features.
  c.probe.enabled = True
  # Also probe a randomly initialised encoder (reference).
  c.probe.random_init = True
  c.probe.l2_grid = (
      1e-5,
      1e-4,
      1e-3,
      1e-2,
  )  # L2 strengths, chosen on validation.
  # Part of the probe train split held out to choose l2.
  c.probe.val_fraction = 0.1
  c.probe.max_iters = 500  # L-BFGS iterations per fit.
  c.probe.batch_size = 512  # Feature-extraction and SGD batch (global).
  # 'features': softmax regression on frozen features extracted once;
  # 'augmented': ImageNet's linear evaluation, a head trained by SGD on
  # random-resized-crop + flip views through the frozen encoder.
  c.probe.protocol = 'features'
  # 'lbfgs', 'sgd' (minibatches of the stored features), or 'auto': L-BFGS
  # where its memory (docs/evaluation.md) fits data.memory_budget_gb.
  c.probe.solver = 'auto'
  # Dtype features are stored in: 'float32' or 'bfloat16' (half the memory).
  c.probe.feature_dtype = 'float32'
  c.probe.epochs = 100  # SGD passes over train ('sgd' solver, 'augmented').
  c.probe.sgd_lr = 0.1  # SGD learning rate at batch 256, scaled linearly.
  c.probe.momentum = 0.9  # SGD momentum; the LR decays along a cosine.
  c.probe.weight_decay = 0.0  # 'augmented' protocol's weight decay.

  # kNN, embedding metrics, pictures, few-label fine-tuning, transfer: see
  # configs/evals/default.py (also runnable later on the finished workdir).
  c.evals = evals_default.get_config()
  return c
