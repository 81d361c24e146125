"""Evaluation without models: ranking metrics (`metrics`), the predictions and metrics
artifacts every ranking command writes (`predictions`), and comparisons of evaluations
(`compare`). Imports neither torch nor the decoders, so reports and tables are quick."""

from mgr_cli.evaluation.compare import hit_overlap, metrics_table, overlap, predictions_by_user, top1_agreement
from mgr_cli.evaluation.metrics import Coverage, Mean, standard_errors, user_metrics, validation_rows
from mgr_cli.evaluation.predictions import PartWriter, finish, merge_parts, select_rows

__all__ = ["Coverage", "Mean", "PartWriter", "finish", "hit_overlap", "merge_parts", "metrics_table",
           "overlap", "predictions_by_user", "select_rows", "standard_errors", "top1_agreement",
           "user_metrics", "validation_rows"]
