"""The probe: measurements of a model's broken rotational symmetry (docs/probing.md).

- :mod:`symprobe.probe.error`: the rotational error of rotation sets against a reference set
  (`symprobe error`), the table of ../shared/notes/paper.md for any model and data set.
"""
