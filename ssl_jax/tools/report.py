"""Compares finished runs: ``python -m ssl_jax.tools.report DIR... --out REPORT.md``.

Each DIR is a run's workdir or a folder of them, searched recursively for
folders that hold both ``config.json`` and ``results.json``. The report is one
markdown file with the comparison tables; its plots go to ``<out stem>_files/``
beside it. Every figure is read from the runs' results.json and config.json.
"""

import datetime
import functools
import os
import sys
from typing import Sequence

from absl import app
from absl import flags

from ssl_jax import methods
from ssl_jax.tools import report_sections as sections
from ssl_jax.tools import runs as runs_lib

# The report's own entry points, beside build_report.
Run = runs_lib.Run
ReportError = runs_lib.ReportError
find_runs = runs_lib.find_runs

RULE = (
    'Nothing is selected on the test split: probe L2 and all other '
    'choices are made on a validation part carved from train; test '
    'figures are reported once.'
)


def build_report(
    runs: Sequence[Run], out_path: str, sources: Sequence[str] = ()
) -> str:
  """Builds the markdown report and writes its plots.

  Args:
    runs: the runs to compare (as from :func:`find_runs`).
    out_path: where the markdown will be written; links are relative to its
      folder and plots go to ``<out stem>_files/`` beside it.
    sources: the folders the runs were found in, named in the header.

  Returns:
    The markdown text.
  """
  out_dir = os.path.dirname(os.path.abspath(out_path))
  files_dir = os.path.join(
      out_dir, os.path.splitext(os.path.basename(out_path))[0] + '_files'
  )
  method_names = list(dict.fromkeys(r.method for r in runs))
  datasets = list(dict.fromkeys(str(r.config.get('dataset')) for r in runs))
  when = datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')
  lines = [
      '# Run comparison',
      '',
      f'{len(runs)} runs ({", ".join(method_names)} on {", ".join(datasets)})'
      + (f' from {", ".join(f"`{s}`" for s in sources)}' if sources else '')
      + f'; generated {when} by `python -m ssl_jax.tools.report`.',
      '',
      f'**{RULE}**',
      '',
      (
          "Figures are test accuracy (%) from each run's results.json;"
          f' `{sections.MISSING}` means the run did not report it. Classifier:'
          " the method's own head (methods with their own evaluation: "
          f'{", ".join(m.name for m in methods.METHODS.values() if m.evaluate)}).'
          ' Fine-tune: mean ± std over label draws. Wall time:'
          ' train/wall_seconds.'
      ),
      '',
  ]
  lines += sections.main_table(runs)
  lines += sections.few_label_table(runs)
  lines += sections.transfer_table(runs)
  lines += sections.embedding_table(runs)
  lines += sections.curve_section(runs, files_dir, out_dir)
  lines += sections.run_figures(runs, out_dir)
  return '\n'.join(lines).rstrip('\n') + '\n'


def main(argv: Sequence[str], *, out_flag) -> None:
  """The command line: finds the runs under argv and writes the report."""
  if len(argv) < 2:
    raise app.UsageError('Give at least one run workdir or folder of runs.')
  try:
    runs = find_runs(argv[1:])
  except ReportError as e:
    print(f'ssl_jax.tools.report: error: {e}', file=sys.stderr)
    sys.exit(2)
  text = build_report(runs, out_flag.value, sources=argv[1:])
  os.makedirs(os.path.dirname(os.path.abspath(out_flag.value)), exist_ok=True)
  with open(out_flag.value, 'w') as f:
    f.write(text)
  print(f'Compared {len(runs)} runs: {os.path.abspath(out_flag.value)}')


if __name__ == '__main__':
  app.run(
      functools.partial(
          main,
          out_flag=flags.DEFINE_string(
              'out',
              'report.md',
              'Markdown file to write; its plots go to <out stem>_files/'
              ' beside it.',
          ),
      )
  )
