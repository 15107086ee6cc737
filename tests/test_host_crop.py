"""Host crops: boxes as the device draws them, JPEG draft decoding, splits."""

import io
import os

import jax
import numpy as np
from PIL import Image
from PIL import JpegImagePlugin
import pytest
from scipy import stats

from ssl_jax import errors
from ssl_jax.data import augment
from ssl_jax.data import crop
from ssl_jax.data import host_crop
from ssl_jax.data import input_pipeline
from ssl_jax.data import memory
from ssl_jax.methods import shared


def _photo(height, width, seed=0):
  """A smooth random image: JPEG compresses it like a photo."""
  rng = np.random.default_rng(seed)
  small = rng.random((height // 16 + 2, width // 16 + 2, 3)) * 255
  img = Image.fromarray(small.astype(np.uint8)).resize(
      (width, height), Image.BICUBIC
  )
  return np.asarray(img)


def _jpeg(pixels, exif=None):
  buf = io.BytesIO()
  kwargs = {'exif': exif} if exif is not None else {}
  Image.fromarray(pixels).save(buf, 'JPEG', quality=90, **kwargs)
  return buf.getvalue()


def _folder(root, sizes_per_class, seed=0):
  rng = np.random.default_rng(seed)
  for split, count in (('train', sizes_per_class), ('val', 2)):
    for name in ('a', 'b'):
      os.makedirs(os.path.join(root, split, name), exist_ok=True)
      for i in range(count):
        h, w = int(rng.integers(90, 200)), int(rng.integers(90, 200))
        Image.fromarray(_photo(h, w, seed=i)).save(
            os.path.join(root, split, name, f'{i}.JPEG'), quality=90
        )
  return str(root)


SIMCLR = host_crop.CropSpec(32, (0.08, 1.0), (3 / 4, 4 / 3))
TORCH = host_crop.CropSpec(
    32, (0.08, 1.0), (3 / 4, 4 / 3), family='torchvision'
)


@pytest.mark.parametrize('spec', [SIMCLR, TORCH], ids=lambda s: s.family)
def test_boxes_follow_the_device_draw(spec):
  # Area fraction and aspect ratio of host boxes vs the on-device draw.
  height, width, n = 120, 90, 3000
  host = np.array([
      host_crop.draw_box(host_crop.record_rng(0, 0, i), height, width, spec)
      for i in range(n)
  ])
  keys = jax.random.split(jax.random.key(0), n)
  if spec.family == 'torchvision':
    device = jax.vmap(
        lambda k: crop.torchvision_crop_box(
            k, height, width, spec.scale, spec.ratio
        )
    )(keys)
    device = np.asarray(device, np.float64)
  else:  # The simclr draw's sides, computed as crop.random_resized_crop does.
    u = jax.vmap(lambda k: jax.random.uniform(k, (2,)))(keys)
    area = height * width * (spec.scale[0] + u[:, 0] * np.ptp(spec.scale))
    aspect = np.exp(
        np.log(spec.ratio[0]) + u[:, 1] * np.log(spec.ratio[1] / spec.ratio[0])
    )
    h = np.clip(np.sqrt(area / aspect), 1, height)
    w = np.clip(np.sqrt(area * aspect), 1, width)
    device = np.stack([np.zeros(n), np.zeros(n), h, w], 1)
  for col in (2, 3):
    assert stats.ks_2samp(host[:, col], device[:, col]).pvalue > 1e-3
  assert (host[:, 0] + host[:, 2] <= height + 1e-9).all()
  assert (host[:, 1] + host[:, 3] <= width + 1e-9).all()


def test_crops_are_a_pure_function_of_seed_step_and_record():
  data = _jpeg(_photo(150, 200))
  draw = lambda *key: host_crop.random_crops(
      data, [SIMCLR, TORCH], host_crop.record_rng(*key), 3
  )
  first, again, other = draw(0, 5, 7), draw(0, 5, 7), draw(0, 6, 7)
  assert [x.shape for x in first] == [(32, 32, 3)] * 2
  np.testing.assert_array_equal(first[0], again[0])
  np.testing.assert_array_equal(first[1], again[1])
  assert not np.array_equal(first[0], other[0])


def test_draft_decoding_is_used_and_matches_a_full_decode(monkeypatch):
  pixels = _photo(1200, 1600)
  data = _jpeg(pixels)
  spec = host_crop.CropSpec(64, (0.5, 1.0), (3 / 4, 4 / 3))
  asked = []
  draft = JpegImagePlugin.JpegImageFile.draft

  def record(img, mode, size):
    asked.append(size)
    return draft(img, mode, size)

  monkeypatch.setattr(JpegImagePlugin.JpegImageFile, 'draft', record)
  out = host_crop.random_crops(data, [spec], host_crop.record_rng(0, 0, 0))[0]
  # Crops of >= half the area need a fraction of the 1600 px: a draft scale.
  assert asked and asked[0][0] < 1600 / 2
  full = Image.open(io.BytesIO(data))
  full.load()
  top, left, h, w = host_crop.draw_box(
      host_crop.record_rng(0, 0, 0), 1200, 1600, spec
  )
  ref = np.asarray(
      full.resize((64, 64), Image.BILINEAR, box=(left, top, left + w, top + h))
  )
  assert np.abs(out.astype(float) - ref).mean() < 2.0


def test_exif_rotated_images_are_cropped_upright():
  pixels = _photo(100, 160)
  exif = Image.Exif()
  exif[0x0112] = 6  # Rotated 90 degrees: shown 160 tall, 100 wide.
  data = _jpeg(pixels, exif)
  out = host_crop.center_crop(data, 50, fraction=1.0)
  upright = np.rot90(pixels, -1)  # What exif_transpose shows.
  top = (160 - 100) // 2
  ref = np.asarray(
      Image.fromarray(np.ascontiguousarray(upright[top : top + 100])).resize(
          (50, 50), Image.BILINEAR
      )
  )
  assert np.abs(out.astype(float) - ref).mean() < 4.0


def test_center_crop_is_resize_256_then_central_224_in_proportion():
  # 256 x 320 at 56 px: the shorter side resized to 64 (56 / 0.875), then
  # the central 56 x 56; the offsets are whole pixels at both scales.
  data = _jpeg(_photo(256, 320))
  out = host_crop.center_crop(data, 56, fraction=0.875)
  short = np.asarray(Image.open(io.BytesIO(data)).resize((80, 64)))
  ref = short[4:60, 12:68]
  assert out.shape == (56, 56, 3)
  assert np.abs(out.astype(float) - ref).mean() < 2.0


@pytest.mark.usefixtures('small_reads_in_workers')
def test_split_reads_host_crops_alike_in_workers_and_here(tmp_path):
  root = _folder(tmp_path / 'inet', 6)
  read = lambda workers: input_pipeline.load_split(
      'folder',
      'train',
      root,
      cache=None,
      workers=workers,
      crops=(SIMCLR, TORCH),
      seed=3,
  ).read(np.arange(8), step=11)
  here, there = read(1), read(2)
  assert set(here) == {'crops', 'label'}
  assert [c.shape for c in here['crops']] == [(8, 32, 32, 3)] * 2
  for a, b in zip(here['crops'], there['crops']):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(here['label'], there['label'])


def test_eval_split_with_crop_fraction_caches_when_it_fits(tmp_path):
  root = _folder(tmp_path / 'inet', 2)
  split = input_pipeline.load_split(
      'folder', 'val', root, cache=None, resize=40, crop_fraction=0.875
  )
  assert split.images is not None and split.images.shape == (4, 40, 40, 3)
  tiny = input_pipeline.load_split(
      'folder',
      'val',
      root,
      cache=None,
      resize=40,
      crop_fraction=0.875,
      memory_budget_gb=1e-9,
  )
  assert tiny.images is None and tiny.read(np.arange(2))['image'].shape == (
      2,
      40,
      40,
      3,
  )


def test_truncated_jpeg_follows_bad_images(tmp_path):
  root = _folder(tmp_path / 'inet', 3)
  bad = os.path.join(root, 'train', 'a', '1.JPEG')
  with open(bad, 'rb') as f:
    data = f.read()
  with open(bad, 'wb') as f:
    f.write(data[: len(data) // 3])
  load = lambda how: input_pipeline.load_split(
      'folder',
      'train',
      root,
      cache=False,
      workers=1,
      crops=(SIMCLR,),
      bad_images=how,
  )
  with pytest.raises(errors.DataError, match=r'1\.JPEG.*bad_images=skip'):
    load('error').read(np.arange(6))
  split = load('skip')
  batch = split.read(np.arange(6))
  assert batch['crops'][0].shape == (6, 32, 32, 3) and split.num_skipped == 1


def test_views_of_host_crops_is_the_device_view_without_its_crop():
  rng = np.random.default_rng(0)
  crops = rng.integers(0, 256, (4, 16, 16, 3), np.uint8)
  view = augment.view_config(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0))
  key = jax.random.key(3)
  # Compiled whole: op by op, every op compiles on its own.
  views_of = jax.jit(lambda batch, k: shared.views_of(batch, k, (view,), 16))
  (host,) = views_of({'crops': (crops,)}, key)
  (device,) = views_of({'image': crops}, key)
  np.testing.assert_allclose(host, device, atol=1e-5)


def test_memory_choices_name_the_field():
  assert memory.choose_cache(None, 'train', 10, (32, 32, 3), 1.0)
  assert not memory.choose_cache(None, 'train', 10**6, (224, 224, 3), 1.0)
  assert not memory.choose_cache(None, 'train', 10, None, 1.0)
  assert memory.choose_cache(True, 'train', 10**9, (224, 224, 3), 1e-6)
  with pytest.raises(errors.ConfigError, match='data.memory_budget_gb=0.001'):
    memory.check_stream_budget(256, 2 * 224 * 224 * 3, 2, 0.001)


def test_host_crop_resolves_automatically():
  resolve = host_crop.resolve
  assert resolve(None, (None, None, 3), 224, 0, True)
  assert resolve(None, (1000, 800, 3), 224, 0, True)
  assert not resolve(None, (32, 32, 3), 32, 0, True)  # CIFAR.
  assert not resolve(None, (96, 96, 3), 96, 0, True)  # STL-10.
  assert not resolve(None, (None, None, 3), 96, 96, True)  # data.resize.
  assert not resolve(None, (None, None, 3), 224, 0, False)  # Device only.
  assert resolve(True, (32, 32, 3), 32, 0, True)


@pytest.fixture(scope='module')
def tfds_dir(tmp_path_factory):
  """A tiny prepared tfds cifar10 (the real array_record path)."""
  from ssl_jax.tools import prepare_data  # pylint: disable=g-import-not-at-top
  from tests import test_prepare_data  # pylint: disable=g-import-not-at-top

  root = tmp_path_factory.mktemp('tfds_host')
  npz = test_prepare_data._write_npz(root / 'tiny.npz')  # pylint: disable=protected-access
  prepare_data.prepare_cifar10_from_npz(
      os.fspath(npz), os.fspath(root / 'tfds')
  )
  return os.fspath(root / 'tfds')


def test_tfds_records_are_host_cropped_from_their_encoded_bytes(tfds_dir):
  spec = host_crop.CropSpec(16, (0.2, 1.0), (3 / 4, 4 / 3))
  split = input_pipeline.load_split(
      'cifar10', 'train', tfds_dir, cache=None, crops=(spec, spec), seed=1
  )
  batch = split.read(np.arange(4), step=2)
  assert [c.shape for c in batch['crops']] == [(4, 16, 16, 3)] * 2
  plain = input_pipeline.load_split('cifar10', 'train', tfds_dir, cache=True)
  np.testing.assert_array_equal(batch['label'], plain.labels[:4])


def test_class_subset_of_a_tfds_split_renumbers_its_labels(tfds_dir, tmp_path):
  names = tmp_path / 'classes.txt'
  names.write_text('dog\ncat\n')
  info = input_pipeline.dataset_info('cifar10', tfds_dir, os.fspath(names))
  assert info['class_names'] == ('cat', 'dog') and info['num_classes'] == 2
  every = input_pipeline.load_split('cifar10', 'train', tfds_dir, cache=True)
  subset = input_pipeline.load_split(
      'cifar10', 'train', tfds_dir, cache=True, classes=os.fspath(names)
  )
  cat, dog = 3, 5  # cifar10's label numbers.
  want = every.labels[np.isin(every.labels, (cat, dog))]
  np.testing.assert_array_equal(subset.labels, (want == dog).astype(np.int32))
  unknown = tmp_path / 'unknown.txt'
  unknown.write_text('cat\nunicorn\n')
  with pytest.raises(errors.DataError, match="names 1 classes.*'unicorn'"):
    input_pipeline.dataset_info('cifar10', tfds_dir, os.fspath(unknown))


def test_folder_class_subset_keeps_only_those_classes(tmp_path):
  root = _folder(tmp_path / 'inet', 2)
  names = tmp_path / 'classes.txt'
  names.write_text('b\n')
  split = input_pipeline.load_split(
      'folder', 'val', root, cache=True, resize=20, classes=os.fspath(names)
  )
  assert len(split) == 2 and (split.labels == 0).all()
