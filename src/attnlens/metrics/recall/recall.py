"""Recall as a local `evaluate` metric module: the fraction of examples of a class that are found, averaged over classes with equal weight (macro) by default.

The Hub's metric scripts cannot be fetched on offline machines, so attnlens ships its own and loads
them by path (`evaluate.load(<this folder>)`). `evaluate` scans this file's imports for dependencies,
hence one import per line.
"""

import datasets
import evaluate
from sklearn.metrics import recall_score

_DESCRIPTION = """Recall: the fraction of examples of a class that are found, averaged over classes with equal weight (macro) by default."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[int]`): predicted class ids.
    references (`list[int]`): true class ids.
    average (`str`, defaults to "macro"): "macro", "micro", "weighted" or "binary" as in scikit-learn.
    labels (`list[int]`, optional): the class ids to average over (default: all seen).
    sample_weight (`list[float]`, optional): a weight per example.
Returns:
    recall (`float`): between 0 and 1; classes never predicted count as 0 instead of raising.
"""

_CITATION = """Pedregosa et al., Scikit-learn: Machine Learning in Python, JMLR 12, 2011."""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Recall(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, average="macro", labels=None, sample_weight=None):
        return {
            "recall": float(
                recall_score(
                    references,
                    predictions,
                    average=average,
                    labels=labels,
                    sample_weight=sample_weight,
                    zero_division=0,
                )
            )
        }
