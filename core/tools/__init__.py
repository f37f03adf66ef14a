"""The tools: what users run on top of the model.

- ``cli``: the ``vmapsim`` command; ``compare`` and ``report``: stages side
  by side and their renderings; ``bisect``: the first stage where a
  behaviour changes; ``expr``: bisect's metric expressions; ``params``:
  ``KEY=VALUE`` and ``--with`` parsing; ``config``: stage selection from the
  command line, the environment and project files; ``progress``: ``--debug``'s
  progress bar; ``templates``: ``vmapsim new-plugin``'s package template.

Tools may import anything of vmapsim; nothing below imports a tool.
"""
