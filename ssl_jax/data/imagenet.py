"""ImageNet's class subsets: ImageNet-100 as solo-learn defines it.

``data.classes`` names a subset of a dataset's classes: ``'imagenet100'``
(solo-learn's list, ``solo/data/dataset_subset/imagenet100_classes.txt`` at
vturrisi/solo-learn@9187ea39c2c3, the 100 WordNet ids its ImageNet-100
tables use), or the path of a text file with class names separated by
whitespace. The subset applies alike to a folder in ImageNet's layout
(``train/<wnid>/``) and to tfds ``imagenet2012`` (whose label names are the
wnids).
"""

from typing import Optional

from ssl_jax import errors

# In solo-learn's order; the classes a run uses are sorted (as folders are).
IMAGENET100 = (
    'n02869837',
    'n01749939',
    'n02488291',
    'n02107142',
    'n13037406',
    'n02091831',
    'n04517823',
    'n04589890',
    'n03062245',
    'n01773797',
    'n01735189',
    'n07831146',
    'n07753275',
    'n03085013',
    'n04485082',
    'n02105505',
    'n01983481',
    'n02788148',
    'n03530642',
    'n04435653',
    'n02086910',
    'n02859443',
    'n13040303',
    'n03594734',
    'n02085620',
    'n02099849',
    'n01558993',
    'n04493381',
    'n02109047',
    'n04111531',
    'n02877765',
    'n04429376',
    'n02009229',
    'n01978455',
    'n02106550',
    'n01820546',
    'n01692333',
    'n07714571',
    'n02974003',
    'n02114855',
    'n03785016',
    'n03764736',
    'n03775546',
    'n02087046',
    'n07836838',
    'n04099969',
    'n04592741',
    'n03891251',
    'n02701002',
    'n03379051',
    'n02259212',
    'n07715103',
    'n03947888',
    'n04026417',
    'n02326432',
    'n03637318',
    'n01980166',
    'n02113799',
    'n02086240',
    'n03903868',
    'n02483362',
    'n04127249',
    'n02089973',
    'n03017168',
    'n02093428',
    'n02804414',
    'n02396427',
    'n04418357',
    'n02172182',
    'n01729322',
    'n02113978',
    'n03787032',
    'n02089867',
    'n02119022',
    'n03777754',
    'n04238763',
    'n02231487',
    'n03032252',
    'n02138441',
    'n02104029',
    'n03837869',
    'n03494278',
    'n04136333',
    'n03794056',
    'n03492542',
    'n02018207',
    'n04067472',
    'n03930630',
    'n03584829',
    'n02123045',
    'n04229816',
    'n02100583',
    'n03642806',
    'n04336792',
    'n03259280',
    'n02116738',
    'n02108089',
    'n03424325',
    'n01855672',
    'n02090622',
)

SUBSETS = {'imagenet100': IMAGENET100}


def class_subset(spec: str) -> Optional[tuple[str, ...]]:
  """The class names ``data.classes`` selects.

  Args:
    spec: '' (every class), a name in ``SUBSETS``, or a text file's path.

  Returns:
    The sorted class names, or None for every class.

  Raises:
    errors.ConfigError: the spec is neither a known subset nor a readable
      file.
  """
  if not spec:
    return None
  if spec in SUBSETS:
    return tuple(sorted(SUBSETS[spec]))
  try:
    with open(spec) as f:
      names = f.read().split()
  except OSError as e:
    raise errors.ConfigError(
        f'data.classes={spec!r} is neither a known subset '
        f'({", ".join(SUBSETS)}) nor a readable file of class names '
        f'({e.strerror}); pass --config.data.classes=imagenet100 or a path.'
    ) from None
  if not names:
    raise errors.ConfigError(
        f'data.classes={spec!r} lists no class; write one class name per line.'
    )
  return tuple(sorted(set(names)))
