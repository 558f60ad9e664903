"""Accuracy as a local `evaluate` metric module: the fraction of predictions equal to their reference.

The Hub's metric scripts cannot be fetched on offline machines, so attnlens ships its own and loads
them by path (`evaluate.load(<this folder>)`). `evaluate` scans this file's imports for dependencies,
hence one import per line.
"""

import datasets
import evaluate
from sklearn.metrics import accuracy_score

_DESCRIPTION = """Accuracy: the fraction of predictions equal to their reference."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[int]`): predicted class ids.
    references (`list[int]`): true class ids.
    normalize (`bool`, defaults to True): a fraction if True, else the count of correct predictions.
    sample_weight (`list[float]`, optional): a weight per example.
Returns:
    accuracy (`float`): between 0 and 1 (or a count when normalize is False).
"""

_CITATION = """Pedregosa et al., Scikit-learn: Machine Learning in Python, JMLR 12, 2011."""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        return {
            "accuracy": float(
                accuracy_score(references, predictions, normalize=normalize, sample_weight=sample_weight)
            )
        }
