"""Matrix files: validate (``load``) and expand into cells (``expand``, pure)."""

from harness.matrix.expand import Axis, MatrixSpec, Override, expand
from harness.matrix.load import Matrix, load_matrix

__all__ = ["Axis", "Matrix", "MatrixSpec", "Override", "expand", "load_matrix"]
